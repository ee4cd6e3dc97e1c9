"""The SavedModel: signature, parity with Keras, input checks, versions, model card."""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import EXPORT_SIZE as SIZE
from helpers import add_contrast, labels_and_instances, numpy_segmap, warm_up_statistics

from spade_tf.config import get_preset
from spade_tf.export import export_model, load_synthesizer, next_version
from spade_tf.export.exporter import OutputError
from spade_tf.models import build_generator, fold_spectral_norm
from spade_tf.segmap import make_segmap
from spade_tf.utils.visualize import to_uint8


def keras_reference(generator, config, label, instance, latent=None):
    """What the export must compute: ids one-hot encoded in NumPy (not with
    ``make_segmap``, which the export reuses) -> Keras generator -> uint8."""
    inputs = {"segmap": numpy_segmap(label, instance, config)}
    if latent is not None:
        inputs["latent"] = np.asarray(latent, np.float32)
    return to_uint8(keras.ops.convert_to_numpy(generator(inputs, training=False)))


def test_signature_as_saved_model_cli_prints_it(coco_export):
    _, _, export_dir, _ = coco_export
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable)) or "saved_model_cli"
    out = subprocess.run(
        [cli, "show", "--dir", os.path.join(export_dir, "serving", "1"), "--tag_set", "serve",
         "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True,
    ).stdout
    compact = " ".join(out.split())
    assert f"inputs['label'] tensor_info: dtype: DT_INT32 shape: (-1, {SIZE}, {SIZE})" in compact, out
    assert f"inputs['instance'] tensor_info: dtype: DT_INT32 shape: (-1, {SIZE}, {SIZE})" in compact, out
    assert f"outputs['image'] tensor_info: dtype: DT_UINT8 shape: (-1, {SIZE}, {SIZE}, 3)" in compact, out
    assert compact.count("inputs[") == 2  # no seed: not a VAE model


@pytest.mark.parametrize("batch", [1, 3])
def test_saved_model_equals_keras_generator(coco_export, coco_signature, batch):
    config, generator, _, _ = coco_export
    _, signature = coco_signature
    label, instance = labels_and_instances(config, batch, seed=batch)
    # Instance boundaries that are not class boundaries: the edge channel
    # must come from the instance map, not the label map.
    instance[:, :, SIZE // 2:] += 1000
    assert (label == 255).any()  # the don't-care channel is exercised too
    out = signature(label=tf.constant(label), instance=tf.constant(instance))["image"].numpy()
    assert out.dtype == np.uint8 and out.shape == (batch, SIZE, SIZE, 3)
    expected = keras_reference(generator, config, label, instance)
    # Folded spectral norm vs on-the-fly sigma: float rounding may move a
    # value across a .5 boundary.
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert out.std() > 5  # a picture, not a constant


def amplify_label_modulation(generator, factor=300.0):
    """Scales every SPADE's shared conv so that gamma and beta depend on the
    label map as much as in a trained model. At initialisation (Xavier gain
    0.02) they are ~1e-5 and the image barely depends on any one channel: a
    wrong edge map or don't-care channel would change no output level."""
    for layer in generator.layers:
        for sublayer in layer._flatten_layers():
            if sublayer.name == "mlp_shared":
                sublayer.kernel.assign(sublayer.kernel * factor)


def test_saved_model_encodes_ids_dontcare_and_instance_edges_as_numpy(tmp_path):
    # A tiny COCO model (don't-care label and instance maps) that responds to
    # every segmap channel; the shared export fixture's model barely does.
    config = get_preset("coco", crop_size=32, load_size=32, ngf=4, spade_hidden=16)
    generator = build_generator(config)
    amplify_label_modulation(generator)
    add_contrast(generator, config)
    export_dir = str(tmp_path / "coco")
    export_model(generator, config, export_dir, tflite_variants=[], log=lambda *_: None)
    signature = tf.saved_model.load(os.path.join(export_dir, "serving", "1")).signatures["serving_default"]
    label, instance = labels_and_instances(config, 2, seed=5)
    instance[:, :, 16:] += 1000  # instance edges that are not class edges
    out = signature(label=tf.constant(label), instance=tf.constant(instance))["image"].numpy()
    inference = fold_spectral_norm(generator)

    def reference(segmap):
        return to_uint8(keras.ops.convert_to_numpy(inference({"segmap": segmap}, training=False)))

    segmap = numpy_segmap(label, instance, config)
    expected = reference(segmap)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    # The model sees the encoding mistakes this comparison must catch.
    no_edges = segmap.copy()
    no_edges[..., -1] = 0
    dontcare_as_class_0 = segmap.copy()
    dontcare_as_class_0[:, :4, :4] = np.eye(config.semantic_nc)[0]
    for wrong in (no_edges, dontcare_as_class_0):
        assert np.abs(reference(wrong).astype(int) - expected.astype(int)).max() > 8


LABEL_SPEC = f"label must be int32 [batch, {SIZE}, {SIZE}] with batch >= 1; got shape "


@pytest.mark.parametrize("case, message", [
    ("id_too_large", "out of range"),
    ("negative_id", "out of range"),
    ("wrong_size", f"{LABEL_SPEC}[2,32,{SIZE}]"),
    ("rank_2", f"{LABEL_SPEC}[{SIZE},{SIZE}]"),
    # The signature's TensorSpec is not enforced on a loaded SavedModel (nor by
    # TF Serving): a [B, H, W, 1] label used to reach the generator.
    ("rank_4", f"{LABEL_SPEC}[2,{SIZE},{SIZE},1]"),
    ("rank_4_rgb", f"{LABEL_SPEC}[2,{SIZE},{SIZE},3]"),
    ("batch_0", f"{LABEL_SPEC}[0,{SIZE},{SIZE}]"),
    ("instance_rank_4", f"instance must be int32 [batch, {SIZE}, {SIZE}] with batch >= 1, the shape of label; "
                        f"got shape [2,{SIZE},{SIZE},1]"),
    ("instance_batch", f"different batch sizes: instance [1,{SIZE},{SIZE}], label [2,{SIZE},{SIZE}]"),
])
def test_bad_requests_raise_invalid_argument(coco_export, coco_signature, case, message):
    config, _, _, _ = coco_export
    _, signature = coco_signature
    label, instance = labels_and_instances(config, 2)
    if case == "id_too_large":
        label[1, 10, 10] = config.label_nc + 1  # 182 is don't-care's channel too, 183 is not valid
        label[1, 10, 11] = 254
    elif case == "negative_id":
        label[0, 0, 5] = -3
    elif case == "wrong_size":
        label, instance = label[:, :32], instance[:, :32]
    elif case == "rank_2":
        label, instance = label[0], instance[0]
    elif case == "rank_4":
        label, instance = label[..., None], instance[..., None]
    elif case == "rank_4_rgb":
        label = np.repeat(label[..., None], 3, axis=-1)
    elif case == "batch_0":
        label, instance = label[:0], instance[:0]
    elif case == "instance_rank_4":
        instance = instance[..., None]
    elif case == "instance_batch":
        instance = instance[:1]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        signature(label=tf.constant(label), instance=tf.constant(instance))
    if case == "id_too_large":
        assert "[183 254]" in str(info.value) and "254" in str(info.value)


@pytest.mark.parametrize("label, message", [
    (np.zeros((1, SIZE, SIZE), np.float32), "got dtype float32"),  # whole values, still refused
    (np.full((1, SIZE, SIZE), 2.7, np.float64), "got dtype float64"),
    (np.zeros((1, SIZE, SIZE), bool), "got dtype bool"),
    (np.full((1, SIZE, SIZE), 2**31 + 3, np.int64), "ids 2147483651..2147483651 outside int32"),
    (np.full((1, SIZE, SIZE), -2**31 - 1, np.int64), "ids -2147483649..-2147483649 outside int32"),
    # Wrapped to id 1 before:
    (np.full((1, SIZE, SIZE), 2**32 + 1, np.uint64), "ids 4294967297..4294967297 outside int32"),
])
def test_synthesizer_refuses_ids_that_are_not_int32(coco_export, coco_signature, label, message):
    from spade_tf.export.runtime import Signature, Synthesizer

    config, _, _, _ = coco_export
    synth = Synthesizer(config, {"serving_default": Signature.from_concrete_function(coco_signature[1])}, "test")
    with pytest.raises(ValueError, match="^label (must be an integer array of ids|has ids)") as info:
        synth(label, np.zeros((1, SIZE, SIZE), np.int32))
    assert message in str(info.value)
    with pytest.raises(ValueError, match="instance must be an integer array of ids; got dtype float32"):
        synth(np.zeros((1, SIZE, SIZE), np.int32), np.zeros((1, SIZE, SIZE), np.float32))
    ok = synth(np.zeros((1, SIZE, SIZE), np.uint8), np.zeros((1, SIZE, SIZE), np.int64))  # any int that fits
    assert ok.dtype == np.uint8 and ok.shape == (1, SIZE, SIZE, 3)


@pytest.mark.parametrize("damage", ["truncated_pb", "truncated_variables", "missing_variables"])
def test_damaged_saved_model_names_the_file(damaged_saved_model, damage):
    path, damaged = damaged_saved_model(damage)
    with pytest.raises(ValueError) as info:
        load_synthesizer(path)
    message = str(info.value)
    assert "\n" not in message and message.endswith("export the model again.")
    if damage == "truncated_pb":
        assert message.startswith(f"{damaged} is truncated or corrupt")
    else:
        assert message.startswith(f"the variables of {path} ")
        assert os.path.basename(damaged) in message and "variables.index" in message


def test_keras_file_is_the_folded_generator(coco_export):
    config, generator, export_dir, _ = coco_export
    loaded = keras.saving.load_model(os.path.join(export_dir, "generator.keras"))
    names = {v.path.rsplit("/", 1)[-1] for v in loaded.variables}
    assert not names & {"u", "v"}, "spectral-norm vectors left in the inference model"
    label, instance = labels_and_instances(config, 2, seed=7)
    segmap = make_segmap(label, instance, config)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded({"segmap": segmap}, training=False)),
        keras.ops.convert_to_numpy(generator({"segmap": segmap}, training=False)), atol=2e-5)


def test_model_card_and_readme(coco_export):
    config, _, export_dir, _ = coco_export
    with open(os.path.join(export_dir, "model_card.json")) as f:
        card = json.load(f)
    assert card["preset"] == "coco" and card["image_size"] == [SIZE, SIZE]
    assert card["training_steps"] == 123 and card["serving_version"] == 1
    assert card["signature"]["inputs"].keys() == {"label", "instance"}
    assert card["valid_label_ids"] == "0..182 or 255 (don't care)"
    tflite = card["tflite"]
    assert tflite["calibration"] == "16 random layouts"
    assert set(tflite["variants"]) == {"float32", "float16", "dynamic_range", "int8", "int16x8"}
    for name, measured in tflite["variants"].items():
        path = os.path.join(export_dir, measured["file"])
        assert measured["size_bytes"] == os.path.getsize(path) and measured["latency_ms"] > 0
        assert (measured["psnr_db"] is None) == (name == "float32"), (name, measured)
    float16 = tflite["variants"]["float16"]["psnr_db"]
    assert float16 > tflite["variants"]["dynamic_range"]["psnr_db"] > 30  # less precision, less PSNR
    assert tflite["recommended_on_device"] in tflite["variants"]
    best = tflite["variants"][tflite["recommended_on_device"]]
    assert (best["psnr_db"] or 99) >= 40 and all(  # the fastest file that keeps the picture
        v["latency_ms"] >= best["latency_ms"] for v in tflite["variants"].values()
        if v["psnr_db"] is None or v["psnr_db"] >= 40)
    for rel in card["files"].values():
        assert os.path.exists(os.path.join(export_dir, rel)), rel
    assert card["config"] == config.to_dict()
    readme = open(os.path.join(export_dir, "README.md")).read()
    assert "curl -s -X POST -d @request.json http://localhost:8501/v1/models/spade:predict" in readme
    assert "get_signature_runner" in readme and "instance=np.zeros((1, H, W), np.int32)" in readme
    assert f"Recommended on device: `generator_{tflite['recommended_on_device']}.tflite`" in readme
    assert "| int16x8 |" in readme
    # The README's request builder is a real shell command that makes a valid body.
    import subprocess
    import sys
    import tempfile

    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('python -c "import json'))
    end = next(i for i in range(start, len(lines)) if lines[i].endswith("> request.json"))
    command = "\n".join(lines[start:end + 1]).replace("python -c", f"{sys.executable} -c", 1)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(command, shell=True, check=True, cwd=tmp)
        body = json.load(open(os.path.join(tmp, "request.json")))
    assert np.array(body["instances"][0]["label"]).shape == (SIZE, SIZE)


def test_versions_are_never_overwritten(tmp_path):
    config = get_preset("synthetic", crop_size=32, load_size=32, ngf=4)
    generator = build_generator(config)
    export_dir = str(tmp_path / "exp")
    quiet = dict(tflite_variants=[], log=lambda *_: None)
    export_model(generator, config, export_dir, **quiet)
    first = open(os.path.join(export_dir, "serving", "1", "saved_model.pb"), "rb").read()
    assert next_version(os.path.join(export_dir, "serving")) == 2
    # Files of an earlier export that this one does not write (TFLite variants
    # no longer asked for, a half-written file) must not sit beside the new
    # model card looking current.
    os.makedirs(os.path.join(export_dir, "tflite"))
    for name in ("generator_float16.tflite", "generator_int8.tflite.tmp"):
        with open(os.path.join(export_dir, "tflite", name), "wb") as f:
            f.write(b"earlier " + name.encode())
    logged = []
    export_model(generator, config, export_dir, tflite_variants=[], log=logged.append)
    assert sorted(os.listdir(os.path.join(export_dir, "serving"))) == ["1", "2"]
    (stale,) = [d for d in os.listdir(export_dir) if d.startswith("stale-")]
    for name in ("generator_float16.tflite", "generator_int8.tflite.tmp"):
        assert open(os.path.join(export_dir, stale, "tflite", name), "rb").read() == b"earlier " + name.encode()
        assert (f"moved tflite/{name} (from an earlier export, not written by this one) "
                f"to {stale}/tflite/{name}") in logged
    assert not os.path.exists(os.path.join(export_dir, "tflite"))
    card = json.load(open(os.path.join(export_dir, "model_card.json")))
    present = {f for f in os.listdir(export_dir) if f not in ("serving", stale)} | {"serving/2"}
    assert set(card["files"].values()) == present == {
        "serving/2", "generator.keras", "model_card.json", "README.md"}
    with pytest.raises(FileExistsError, match="serving/1 exists already"):
        export_model(generator, config, export_dir, version=1, **quiet)
    assert open(os.path.join(export_dir, "serving", "1", "saved_model.pb"), "rb").read() == first
    assert not [d for d in os.listdir(os.path.join(export_dir, "serving")) if d.startswith(".tmp")]
    # Unwritable export dirs: one line naming the path (root ignores chmod, so
    # through paths that no user can write: under a file, or a file itself).
    with pytest.raises(OutputError,
                       match=f"^cannot write {re.escape(export_dir)}/model_card.json/sub: Not a directory$"):
        export_model(generator, config, os.path.join(export_dir, "model_card.json", "sub"), **quiet)
    with pytest.raises(OutputError,
                       match=f"^cannot write {re.escape(export_dir)}/README.md: exists and is not a directory$"):
        export_model(generator, config, os.path.join(export_dir, "README.md"), **quiet)


def test_vae_model_signatures(tmp_path):
    config = get_preset("synthetic", crop_size=32, load_size=32, ngf=4, use_vae=True, z_dim=8)
    generator = build_generator(config)
    warm_up_statistics(generator, config, steps=3)
    add_contrast(generator, config)
    export_dir = str(tmp_path / "vae")
    export_model(generator, config, export_dir, tflite_variants=[], log=lambda *_: None)
    loaded = tf.saved_model.load(os.path.join(export_dir, "serving", "1"))
    assert set(loaded.signatures) == {"serving_default", "synthesize_latent", "predict_png"}
    label, _ = labels_and_instances(config, 2)
    default = loaded.signatures["serving_default"]
    a = default(label=tf.constant(label), seed=tf.constant(1))["image"].numpy()
    b = default(label=tf.constant(label), seed=tf.constant(1))["image"].numpy()
    c = default(label=tf.constant(label), seed=tf.constant(2))["image"].numpy()
    np.testing.assert_array_equal(a, b)
    # predict_png draws the same style sample for the same seed.
    pngs = tf.constant([tf.io.encode_png(x[..., None]).numpy() for x in label.astype(np.uint8)])
    out = loaded.signatures["predict_png"](label_png_bytes=pngs, seed=tf.constant(1))["image_png_bytes"]
    np.testing.assert_array_equal(np.stack([tf.io.decode_png(x).numpy() for x in out]), a)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5  # another style sample
    latent = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    out = loaded.signatures["synthesize_latent"](label=tf.constant(label), latent=tf.constant(latent))["image"]
    expected = keras_reference(fold_spectral_norm(generator), config, label, None, latent)
    assert np.abs(out.numpy().astype(int) - expected.astype(int)).max() <= 1
    bad_latents = [(latent[:, :5], "[2,5]"), (latent[:, :, None], "[2,8,1]"),
                   (latent[:1], "[1,8] for label [2,32,32]")]
    for bad, shape in bad_latents:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=re.escape("latent must be float32 [batch, 8] with the batch of label; "
                                           f"got shape {shape}")):
            loaded.signatures["synthesize_latent"](label=tf.constant(label), latent=tf.constant(bad))


def test_vae_export_with_its_encoder_has_encode_style(tmp_path):
    """The style encoder's signature: uint8 photos -> the Keras encoder's (mean, logvar); the
    official test's latent from it gives the image synthesize_latent gives."""
    from spade_tf.models import build_encoder

    config = get_preset("synthetic", crop_size=32, load_size=32, ngf=4, use_vae=True, z_dim=8)
    generator = build_generator(config)
    encoder = build_encoder(config)
    for v in encoder.trainable_variables:  # non-trivial outputs (the official init gives ~0)
        v.assign(np.random.default_rng(3).normal(0, 0.2, v.shape).astype(np.float32))
    export_dir = str(tmp_path / "vae")
    export_model(generator, config, export_dir, tflite_variants=[], encoder=encoder, log=lambda *_: None)
    card = json.load(open(os.path.join(export_dir, "model_card.json")))
    assert card["style_signature"]["name"] == "encode_style"
    synthesizer = load_synthesizer(export_dir)
    assert synthesizer.can_encode and set(synthesizer.signatures) == {
        "serving_default", "synthesize_latent", "predict_png", "encode_style"}
    photos = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    mean, logvar = synthesizer.encode_style(photos)
    expected_mean, expected_logvar = fold_spectral_norm(encoder)(
        {"image": tf.constant(photos, tf.float32) / 127.5 - 1.0}, training=False)
    np.testing.assert_allclose(mean, expected_mean.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(logvar, expected_logvar.numpy(), rtol=1e-5, atol=1e-4)
    assert np.abs(mean).max() > 0.01  # the comparison is not between zeros
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=re.escape("image must be uint8 [batch, 32, 32, 3]; got shape [2,32,16,3]")):
        synthesizer.encode_style(photos[:, :, :16])
    with pytest.raises(ValueError, match="uint8"):
        synthesizer.encode_style(photos.astype(np.float32))
    # Without the encoder (exports of generators only) the signature is absent and says why.
    export_model(generator, config, str(tmp_path / "no_encoder"), tflite_variants=[], log=lambda *_: None)
    with pytest.raises(KeyError, match="no style encoder.*export it again"):
        load_synthesizer(str(tmp_path / "no_encoder")).encode_style(photos)


def test_load_synthesizer_workdir_equals_export(coco_export, tmp_path):
    config, generator, export_dir, _ = coco_export
    workdir = tmp_path / "wd"
    (workdir / "checkpoints").mkdir(parents=True)
    config.to_json(str(workdir / "config.json"))
    step = tf.Variable(7, dtype=tf.int64)
    tf.train.Checkpoint(generator=generator, step=step).write(str(workdir / "checkpoints" / "ckpt-7"))
    # CheckpointManager's index file, as train() leaves it.
    tf.train.CheckpointManager(tf.train.Checkpoint(), str(workdir / "checkpoints"), 1)
    with open(workdir / "checkpoints" / "checkpoint", "w") as f:
        f.write('model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
    from_workdir = load_synthesizer(str(workdir))
    from_export = load_synthesizer(export_dir)
    assert from_workdir.step == 7 and from_export.step == 123
    assert from_export.config == from_workdir.config == config
    label, instance = labels_and_instances(config, 2, seed=3)
    np.testing.assert_array_equal(from_workdir(label, instance), from_export(label, instance))
    # predict_png: traced from the workdir, loaded from the export; the same signature either way.
    pngs = [tf.io.encode_png(x[..., None]).numpy() for x in label.astype(np.uint8)]
    instance_pngs = [tf.io.encode_png(x[..., None]).numpy() for x in instance.astype(np.uint16)]
    assert from_workdir.predict_png(pngs, instance_pngs) == from_export.predict_png(pngs, instance_pngs)
    for synth in (from_workdir, from_export):
        assert {k: (v.dtype, v.shape.as_list()) for k, v in synth.signatures["predict_png"].inputs.items()} == {
            "label_png_bytes": (tf.string, [None]), "instance_png_bytes": (tf.string, [None])}
        assert synth.signatures["predict_png"].outputs["image_png_bytes"].dtype == tf.string
    decoded = np.stack([tf.io.decode_png(x).numpy() for x in from_export.predict_png(pngs, instance_pngs)])
    np.testing.assert_array_equal(decoded, from_export(label, instance))
    with pytest.raises(ValueError, match="uses instance maps"):
        from_export(label)
    with pytest.raises(FileNotFoundError, match="neither an export dir"):
        load_synthesizer(str(tmp_path))
