"""FastGenerator computes what the generator computes in inference, from ids.

Every case has batch-norm moving statistics far from their initial (0, 1):
warmed up by training-mode passes, then each mean shifted and each variance
scaled at random, so that a wrong fold of the statistics shows. Outputs span
[-1, 1] (``add_contrast``), so a wrong lookup row shows too.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import add_contrast, labels_and_instances, warm_up_statistics

from spade_tf.config import get_preset
from spade_tf.export import SynthesisModule, make_interpreter, run_tflite, to_tflite
from spade_tf.export.fast_graph import FastGenerator, unsupported_reason
from spade_tf.models import build_generator, fold_spectral_norm
from spade_tf.positional import positional_encoding_numpy
from spade_tf.segmap import edge_map, label_channels, make_segmap
from spade_tf.utils.visualize import to_uint8

ATOL = 1e-4  # float32 rounding: sums in another order, batch norm folded into the weights

CASES = {
    # instance edges + don't care (id 255), 'more' upsampling (G_middle_1 at 2x)
    "coco": ("coco", dict(num_upsampling_layers="more")),
    "ade20k": ("ade20k", dict(spade_hidden=32)),  # no instance map; id 0 is a class
    "coco_vae": ("coco", dict(use_vae=True)),
    # CLADE: class tables with batch norm folded; edges append a channel; 'more' upsampling
    "coco_clade": ("coco", dict(norm_mode="clade", num_upsampling_layers="more")),
    # CLADE-ICPE: positional maps computed in the graph (reference: SciPy's)
    "ade20k_icpe": ("ade20k", dict(norm_mode="clade", use_positional_encoding=True)),
}


def perturb_statistics(generator, seed=0):
    """Shifts every moving mean by ~N(0, 0.5) std and scales every variance by U(0.5, 2)."""
    rng = np.random.default_rng(seed)
    variables = {v.path: v for v in generator.variables}
    for path, mean in variables.items():
        if path.endswith("moving_mean"):
            var = variables[path[: -len("moving_mean")] + "moving_variance"]
            std = np.sqrt(var.numpy())
            mean.assign(mean.numpy() + rng.normal(0.0, 0.5, mean.shape).astype(np.float32) * std)
            var.assign(var.numpy() * rng.uniform(0.5, 2.0, var.shape).astype(np.float32))


def randomize_weights(generator, seed=0):
    """Kernels ~ N(0, 1 / fan_in), biases ~ N(0, 0.1): gamma, beta and every
    residual branch matter (at the official init, Xavier gain 0.02, they are
    nearly zero and a wrong fold of them would hardly show)."""
    rng = np.random.default_rng(seed)
    for v in generator.trainable_variables:
        if v.path.endswith("kernel"):
            fan_in = int(np.prod(v.shape[:-1]))
            if "mlp_shared" in v.path or v.path.startswith("fc/") and len(v.shape) == 4:
                fan_in = 9  # one-hot input: 9 non-zero inputs per pixel
            v.assign(rng.normal(0.0, 1.0 / np.sqrt(fan_in), v.shape).astype(np.float32))
        elif v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.1, v.shape).astype(np.float32))


def make_generator(preset, overrides, seed=0):
    keras.utils.set_random_seed(seed)
    config = get_preset(preset, crop_size=64, load_size=64, ngf=8, spade_hidden=16).replace(**overrides)
    generator = build_generator(config)
    randomize_weights(generator, seed)
    warm_up_statistics(generator, config, steps=4)
    perturb_statistics(generator, seed)
    add_contrast(generator, config)
    return config, fold_spectral_norm(generator)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    preset, overrides = CASES[request.param]
    return make_generator(preset, overrides)


def inputs_for(config, batch=2, seed=7):
    label, instance = labels_and_instances(config, batch, seed=seed)
    label = label.astype(np.int32)
    label[0, -3:, -5:] = 300  # out of range: one_hot gives an all-zero vector, so must the lookup
    latent = np.random.default_rng(seed).standard_normal((batch, config.z_dim)).astype(np.float32) \
        if config.use_vae else None
    return label, instance, latent


def numpy_positional(config, label):
    """CLADE-ICPE's maps by the SciPy reference, or None."""
    if not config.use_positional_encoding:
        return None
    return np.stack([positional_encoding_numpy(one) for one in label])


def reference(generator, config, label, instance, latent):
    inputs = {"segmap": make_segmap(label, instance, config)}
    if latent is not None:
        inputs["latent"] = tf.constant(latent)
    if config.use_positional_encoding:
        inputs["positional"] = tf.constant(numpy_positional(config, label))
    return np.asarray(generator(inputs, training=False))


def fast_outputs(fast, config, label, instance, latent):
    ids = label_channels(label, config.label_nc, config.contain_dontcare_label)
    edges = edge_map(instance) if config.use_instance_map else None
    positional = numpy_positional(config, label)
    return np.asarray(tf.function(fast, autograph=False)(ids, edges, latent, positional))


def assert_same_image(got, expected, atol=ATOL):
    assert 0.2 < np.std(expected) and np.abs(expected).mean() < 0.9  # informative, not saturated
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    assert np.abs(to_uint8(got).astype(int) - to_uint8(expected).astype(int)).max() <= 1


@pytest.mark.parametrize("constants, matmul_max_pixels", [(False, 0), (True, 0), (False, 16 * 16)])
def test_matches_generator(case, constants, matmul_max_pixels):
    config, generator = case
    label, instance, latent = inputs_for(config)
    fast = FastGenerator(generator, config, constants=constants, matmul_max_pixels=matmul_max_pixels)
    assert_same_image(fast_outputs(fast, config, label, instance, latent),
                      reference(generator, config, label, instance, latent))


def test_weights_are_variables_or_constants(case):
    config, generator = case
    assert FastGenerator(generator, config, constants=True).variables == ()
    variables = FastGenerator(generator, config).variables
    assert variables and not any(v.trainable for v in variables)


def test_imported_nvlabs_weights():
    """Weights from a PyTorch state dict in NVlabs' layout, with its running statistics."""
    torch = pytest.importorskip("torch")
    from spade_tf.convert import import_generator
    from tests.convert import torch_reference as tr

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = get_preset("coco", ngf=8, crop_size=64, load_size=64, spade_hidden=16)
        g, seg, _ = tr.reference_generator(config, np.random.default_rng(0))
        generator = fold_spectral_norm(import_generator(tr.state_dict_numpy(g), config))
        running_means = [m.running_mean.numpy() for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert min(np.abs(m).max() for m in running_means) > 1e-3  # non-trivial statistics
        label, instance, _ = inputs_for(config)
        expected = reference(generator, config, label, instance, None)
        got = fast_outputs(FastGenerator(generator, config, constants=True), config, label, instance, None)
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
        assert np.abs(to_uint8(got).astype(int) - to_uint8(expected).astype(int)).max() <= 1
        # and PyTorch's own output on its (one-hot + edges) segmap
        with torch.no_grad():
            torch_image = tr.to_nhwc(g(tr.to_nchw(make_segmap(label, instance, config).numpy())))
        np.testing.assert_allclose(got, torch_image, atol=ATOL, rtol=0)
    finally:
        torch.set_num_threads(threads)


def test_synthesis_module_and_saved_model(case, tmp_path):
    config, generator = case
    module = SynthesisModule(generator, config)
    plain = SynthesisModule(generator, config, fast=False)
    assert module.fast is not None and module.fast.variables
    assert plain.fast is None and plain.fast_reason == "fast=False"
    label, instance, _ = inputs_for(config)
    label[0, -3:, -5:] = 0
    path = str(tmp_path / "saved")
    module.save(path)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    kwargs = {"label": tf.constant(label)}
    if config.use_instance_map:
        kwargs["instance"] = tf.constant(instance)
    if config.use_vae:
        kwargs["seed"] = tf.constant(5)
    got = signature(**kwargs)["image"].numpy()
    expected = plain.checked(tf.constant(label), None if instance is None else tf.constant(instance),
                             seed=tf.constant(5) if config.use_vae else None)["image"].numpy()
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    # The weights are stored once: the fast path's copy, not the generator's too.
    weights = sum(np.prod(v.shape) for v in generator.variables) * 4
    stored = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    assert stored < 1.6 * weights  # coco: the lookup tables hold each row with and without the edge


@pytest.mark.parametrize("overrides, reason", [
    (dict(param_free_norm_G="instance"), "instance"),
    (dict(spade_kernel_size=5), "spade_kernel_size=5"),
])
def test_unsupported_configs_fall_back(overrides, reason):
    config = get_preset("ade20k", crop_size=32, load_size=32, ngf=4, spade_hidden=8, **overrides)
    generator = fold_spectral_norm(build_generator(config))
    assert reason in unsupported_reason(generator, config)
    with pytest.raises(ValueError, match=reason):
        FastGenerator(generator, config)
    module = SynthesisModule(generator, config)
    assert module.fast is None and reason in module.fast_reason
    label, _, _ = inputs_for(config, batch=1)
    image = module.generate(tf.constant(label)).numpy()
    expected = to_uint8(reference(generator, config, label, None, None))
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("overrides", [
    dict(use_vae=True), dict(norm_mode="clade"), dict(norm_mode="clade", use_positional_encoding=True),
], ids=["spade_vae", "clade", "clade_icpe"])
def test_tflite_float32(overrides):
    config, generator = make_generator("coco", overrides, seed=3)
    module = SynthesisModule(generator, config)
    model = to_tflite(module, "float32")
    ops = {op["op_name"] for op in make_interpreter(model)._get_ops_details()}
    assert not {o for o in ops if o.startswith("Flex") or o in ("CUSTOM", "DELEGATE")}, ops
    assert "GATHER" in ops and not ops & {"VAR_HANDLE", "READ_VARIABLE"}, ops  # the fast graph, frozen
    label, instance, latent = inputs_for(config, batch=1)
    got = run_tflite(model, label, instance, latent)
    expected = to_uint8(reference(generator, config, label, instance, latent))
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("with_int16x8", [True, False])
def test_icpe_card_and_readme_name_the_positional_file_only_when_it_was_written(with_int16x8):
    from spade_tf import get_preset
    from spade_tf.export.exporter import model_card, model_readme

    config = get_preset("ade20k", norm_mode="clade", use_positional_encoding=True)
    files = {"tflite_float32": "tflite/generator_float32.tflite"}
    if with_int16x8:
        files.update(tflite_int16x8="tflite/generator_int16x8.tflite",
                     tflite_positional_encoding="tflite/positional_encoding.tflite")
    card = model_card(config, version=1, step=None, source=None, calibration_source=None, files=files)
    readme = model_readme(card)
    assert ("positional" in card["tflite"]) == with_int16x8
    assert ("positional_encoding.tflite" in readme) == with_int16x8
    assert ("Chain them" in readme) == with_int16x8


def test_icpe_int8_keeps_positional_maps_in_float_and_int16x8_reads_them_from_their_own_file(tmp_path):
    """CLADE-ICPE: the int8 file computes the maps in float32 (QUANTIZE/DEQUANTIZE at their
    boundary) and keeps the picture; the int16x8 file takes them as an input, from
    positional_encoding.tflite (float32), which computes them exactly."""
    import json

    from spade_tf.export import export_model
    from spade_tf.export.calibration import random_layouts

    config, generator = make_generator("ade20k", dict(norm_mode="clade", use_positional_encoding=True), seed=5)
    export_dir = str(tmp_path / "icpe")
    paths = export_model(generator, config, export_dir, tflite_variants=["float16", "int8", "int16x8"],
                         calibration=random_layouts(config, 4), log=lambda m: None)
    assert [k for k in paths if k.startswith("tflite_")] == [
        "tflite_float16", "tflite_int8", "tflite_int16x8", "tflite_positional_encoding"]
    card = json.load(open(os.path.join(export_dir, "model_card.json")))
    assert "skipped" not in card["tflite"] and set(card["tflite"]["variants"]) == {"float16", "int8", "int16x8"}
    assert card["tflite"]["variants"]["int16x8"]["positional_from"] == "tflite/positional_encoding.tflite"
    assert "positional_from" not in card["tflite"]["variants"]["int8"]
    assert card["tflite"]["positional_encoding"]["size_bytes"] == os.path.getsize(paths["tflite_positional_encoding"])
    assert "positional_encoding.tflite" in open(os.path.join(export_dir, "README.md")).read()

    interpreter = make_interpreter(paths["tflite_int8"])
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    float_ops = {op["op_name"] for op in ops if tensors[op["outputs"][0]]["name"].startswith("positional_encoding/")
                 and tensors[op["outputs"][0]]["dtype"] == np.float32}
    assert {"DIV", "UNSORTED_SEGMENT_MAX"} <= float_ops, float_ops  # the maps in float32
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    assert convs and all(tensors[op["inputs"][1]]["dtype"] == np.int8 for op in convs)
    assert all(tensors[op["inputs"][0]]["dtype"] == np.int8 for op in convs)

    label, _, _ = inputs_for(config, batch=1)
    label[label == 300] = 0
    expected = to_uint8(reference(generator, config, label, None, None)).astype(float)
    got = run_tflite(paths["tflite_float16"], label)
    assert np.abs(got - expected).max() <= 2  # float16 weights
    got = run_tflite(paths["tflite_int8"], label).astype(float)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((got - expected) ** 2))
    # Measured 34.2 dB on this random-weight model (the quickstart's int8: 47.9 dB); with the maps
    # quantized to int8 activations the file did not run at all (DIV by a zero divisor).
    assert psnr >= 30.0, psnr
    assert card["tflite"]["variants"]["int8"]["psnr_db"] >= 30.0

    # int16x8: the maps come in; the file has no connected-components loop of its own.
    maps_runner = make_interpreter(paths["tflite_positional_encoding"]).get_signature_runner()
    maps = maps_runner(label=label.astype(np.int32))["positional"]
    np.testing.assert_allclose(maps[0], positional_encoding_numpy(label[0]), atol=2e-6)
    interpreter = make_interpreter(paths["tflite_int16x8"])
    assert interpreter.get_signature_list()["serving_default"]["inputs"] == ["label", "positional"]
    assert "WHILE" not in {op["op_name"] for op in interpreter._get_ops_details()}
    got = run_tflite(paths["tflite_int16x8"], label, positional=maps).astype(float)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((got - expected) ** 2))
    assert psnr >= 40.0, psnr  # measured 46.2 dB
    assert card["tflite"]["variants"]["int16x8"]["psnr_db"] >= 40.0
    # Maps that are not this label's change the picture: the input is read.
    shuffled = run_tflite(paths["tflite_int16x8"], label, positional=maps[:, ::-1]).astype(float)
    assert np.abs(shuffled - got).max() > 8
