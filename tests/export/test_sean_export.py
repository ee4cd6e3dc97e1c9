"""SEAN exports: style signatures, mean style codes, seeded noise, TFLite with style codes."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import numpy_segmap, sean_label

from spade_tf.export import load_synthesizer, run_tflite
from spade_tf.export.tflite import make_interpreter
from spade_tf.layers import seeded_noise
from spade_tf.models import fold_spectral_norm
from spade_tf.utils.visualize import to_uint8

SIZE = 32


def levels(a, b):
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def random_codes(config, batch, seed):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(size=(batch, config.semantic_nc, config.style_dim))).astype(np.float32)


def keras_image(generator, config, label, codes, seed):
    """What the export must compute: ids one-hot encoded in NumPy -> Keras generator -> uint8,
    ACE's noise drawn from ``seed`` (None: the generator's noise switched off by a negative seed)."""
    with seeded_noise(seed):
        image = generator({"segmap": numpy_segmap(label, None, config), "style_codes": codes}, training=False)
    return to_uint8(keras.ops.convert_to_numpy(image))


def synthesize_styles(signatures, label, codes, seed):
    return signatures["synthesize_styles"](label=tf.constant(label, tf.int32), style_codes=tf.constant(codes),
                                           seed=tf.constant(seed))["image"].numpy()


def test_signatures_files_and_model_card(sean_export, sean_signatures):
    config, _, _, mean, export_dir, paths = sean_export
    assert set(sean_signatures) == {"serving_default", "predict_png", "synthesize_styles", "predict_png_styles",
                                    "encode_styles", "synthesize_from_photo"}
    inputs = {name: sorted(sig.structured_input_signature[1]) for name, sig in sean_signatures.items()}
    assert inputs["serving_default"] == ["label", "seed"]
    assert inputs["synthesize_styles"] == ["label", "seed", "style_codes"]
    assert inputs["encode_styles"] == ["style_image", "style_label"]
    assert inputs["synthesize_from_photo"] == ["label", "seed", "style_image", "style_label"]
    for path in (paths["mean_style_codes"], os.path.join(export_dir, "serving", "1", "assets.extra",
                                                         "mean_style_codes.npy")):
        np.testing.assert_array_equal(np.load(path), mean.codes)
    assert mean.codes.shape == (8, 8) and mean.source == "16 synthetic scenes"
    assert (mean.counts > 0).all() and np.abs(mean.codes).max() > 1e-3
    card = json.load(open(os.path.join(export_dir, "model_card.json")))
    assert card["signature"]["inputs"].keys() == {"label", "seed"}
    assert card["files"]["mean_style_codes"] == "mean_style_codes.npy"
    sean = card["sean"]
    assert sean["mean_style_codes"]["images_per_class"] == mean.counts.tolist()
    assert set(sean["signatures"]) == {"serving_default", "synthesize_styles", "predict_png_styles",
                                       "encode_styles", "synthesize_from_photo"}
    assert "negative seed" in sean["noise"]
    readme = open(os.path.join(export_dir, "README.md")).read()
    assert "## Styles (SEAN)" in readme and "'signature_name': 'synthesize_from_photo'" in readme
    assert 'style_codes=np.load("mean_style_codes.npy")[None]' in readme
    assert "'inputs': {'label': np.zeros((1, H, W), int).tolist(), 'seed': 0}" in readme  # columnar: scalar seed


def test_saved_model_equals_keras_generator_on_the_same_codes_and_noise(sean_export, sean_signatures):
    config, generator, _, _, _, _ = sean_export
    label = np.concatenate([sean_label(config, 1)[0], sean_label(config, 2)[0]])
    codes = random_codes(config, 2, 0)
    inference = fold_spectral_norm(generator)
    for seed in (5, -1):
        out = synthesize_styles(sean_signatures, label, codes, seed)
        assert out.dtype == np.uint8 and out.shape == (2, SIZE, SIZE, 3)
        assert levels(out, keras_image(inference, config, label, codes, seed)) <= 1
    # The noise shows, and one seed gives one image.
    noisy, other = (synthesize_styles(sean_signatures, label, codes, s) for s in (5, 6))
    quiet = synthesize_styles(sean_signatures, label, codes, -1)
    np.testing.assert_array_equal(noisy, synthesize_styles(sean_signatures, label, codes, 5))
    assert np.abs(noisy.astype(int) - other).mean() > 1 and np.abs(noisy.astype(int) - quiet).mean() > 1
    assert out.std() > 5  # a picture, not a constant


def test_serving_default_and_predict_png_use_the_mean_codes(sean_export, sean_signatures):
    config, _, _, mean, _, _ = sean_export
    label, _ = sean_label(config, 3)
    out = sean_signatures["serving_default"](label=tf.constant(label), seed=tf.constant(3))["image"].numpy()
    np.testing.assert_array_equal(out, synthesize_styles(sean_signatures, label, mean.codes[None], 3))
    png = tf.io.encode_png(label[0, ..., None].astype(np.uint8))
    images = sean_signatures["predict_png"](label_png_bytes=tf.stack([png]), seed=tf.constant(3))["image_png_bytes"]
    np.testing.assert_array_equal(tf.io.decode_png(images[0]).numpy(), out[0])
    styled = sean_signatures["predict_png_styles"](
        label_png_bytes=tf.stack([png]), style_codes=tf.constant(random_codes(config, 1, 4)),
        seed=tf.constant(3))["image_png_bytes"]
    np.testing.assert_array_equal(tf.io.decode_png(styled[0]).numpy(),
                                  synthesize_styles(sean_signatures, label, random_codes(config, 1, 4), 3)[0])


def test_photo_styles_fill_absent_regions_with_the_mean_code(sean_export, sean_signatures):
    config, _, encoder, mean, _, _ = sean_export
    label, _ = sean_label(config, 5)
    style_label, photo = sean_label(config, 6)
    style_label = style_label.copy()
    missing = sorted(set(np.unique(label)) - {0, 2})
    style_label[np.isin(style_label, missing)] = 0  # the photo shows only sky (0) and mountain (2)
    style_label[0, :16] = 0
    style_label[0, 16:] = 2
    encoded = sean_signatures["encode_styles"](style_image=tf.constant(photo), style_label=tf.constant(style_label))
    codes, present = encoded["style_codes"].numpy(), encoded["present"].numpy()
    assert present.tolist() == [[c in (0, 2) for c in range(config.semantic_nc)]]
    # The Zencoder's codes of the photo, and zero rows for the absent classes.
    expected = keras.ops.convert_to_numpy(encoder({"image": photo.astype("float32") / 127.5 - 1.0,
                                                   "segmap": numpy_segmap(style_label, None, config)}))
    np.testing.assert_allclose(codes, expected, atol=1e-5)
    assert not codes[0, ~present[0]].any() and np.abs(codes[0, present[0]]).min() > 0

    from_photo = sean_signatures["synthesize_from_photo"](
        label=tf.constant(label), style_image=tf.constant(photo), style_label=tf.constant(style_label),
        seed=tf.constant(1))["image"].numpy()
    filled = np.where(present[..., None], codes, mean.codes[None])
    np.testing.assert_array_equal(from_photo, synthesize_styles(sean_signatures, label, filled, 1))
    # The label's other classes are in the picture, and the mean codes (not zeros) made them.
    assert missing and levels(from_photo, synthesize_styles(sean_signatures, label, codes, 1)) > 8
    changed = levels(synthesize_styles(sean_signatures, label, filled, 1),
                     synthesize_styles(sean_signatures, label, mean.codes[None], 1))
    assert changed > 8  # the photo's sky and mountain codes


def test_swapping_one_regions_code_changes_mostly_that_region(sean_export, sean_signatures):
    # Sky, with sea (class 3) in the lower right quarter, whose code is replaced
    # (no noise). Outside pixels change through the convs' receptive fields
    # only (the 2x2 head sees everything). Measured over these 4 swaps:
    # inside / outside mean change 4.8, 8.2, 4.8, 5.5 (levels 14-31 inside).
    config = sean_export[0]
    label = np.zeros((1, SIZE, SIZE), np.int32)
    label[:, 16:, 16:] = 3
    inside, outside = [], []
    for seed in range(4):
        before = random_codes(config, 1, 10 + seed)
        after = before.copy()
        after[:, 3] = random_codes(config, 1, 50 + seed)[:, 3]
        a, b = (synthesize_styles(sean_signatures, label, c, -1).astype(float) for c in (before, after))
        change = np.abs(a - b).mean(-1)[0]
        inside.append(change[label[0] == 3].mean())
        outside.append(change[label[0] != 3].mean())
    ratios = np.array(inside) / np.array(outside)
    print(f"inside {np.round(inside, 1)}, outside {np.round(outside, 1)} levels, ratios {np.round(ratios, 1)}")
    assert min(inside) > 5 and ratios.min() > 3, (inside, outside)


SPEC = "[batch, 8, 8] (semantic_nc, style_dim) with the batch of label; got shape "


@pytest.mark.parametrize("case, message", [
    ("codes_dim", f"style_codes must be float32 {SPEC}[1,8,9]"),
    ("codes_rank", f"style_codes must be float32 {SPEC}[1,64]"),
    ("codes_batch", f"style_codes must be float32 {SPEC}[2,8,8] for label [1,{SIZE},{SIZE}]"),
    ("codes_nan", "style_codes has NaN or Inf values"),
    ("photo_shape", f"style_image must be uint8 [batch, {SIZE}, {SIZE}, 3]; got shape [1,{SIZE},{SIZE},4]"),
    ("style_label_shape", f"style_label must be int32 [batch, {SIZE}, {SIZE}] with the batch of style_image; "
                          f"got shape [1,16,{SIZE}]"),
    ("style_label_ids", "style_label has class ids out of range (expected 0..7); first bad ids:] [9]"),
    ("photo_batch", "style_image must be uint8 [batch, 32, 32, 3] with the batch of label (one style photo per "
                    f"label map); got shape [2,{SIZE},{SIZE},3] for label [1,{SIZE},{SIZE}]"),
    ("label_ids", "label has class ids out of range"),
])
def test_bad_style_requests_name_the_input(sean_export, sean_signatures, case, message):
    config = sean_export[0]
    label, photo = sean_label(config, 7)
    codes, style_label = random_codes(config, 1, 0), label.copy()
    signature = "synthesize_styles"
    if case == "codes_dim":
        codes = np.zeros((1, 8, 9), np.float32)
    elif case == "codes_rank":
        codes = codes.reshape(1, 64)
    elif case == "codes_batch":
        codes = np.concatenate([codes, codes])
    elif case == "codes_nan":
        codes[0, 2, 3] = np.nan
    elif case == "photo_shape":
        photo, signature = np.concatenate([photo, photo[..., :1]], -1), "synthesize_from_photo"
    elif case == "style_label_shape":
        style_label, signature = style_label[:, :16], "synthesize_from_photo"
    elif case == "style_label_ids":
        style_label[0, 3, 3], signature = 9, "synthesize_from_photo"
    elif case == "photo_batch":
        photo, style_label, signature = np.concatenate([photo, photo]), np.concatenate([label, label]), \
            "synthesize_from_photo"
    elif case == "label_ids":
        label = label.copy()
        label[0, 0, 0] = 8
    inputs = {"label": tf.constant(label), "seed": tf.constant(0)}
    if signature == "synthesize_styles":
        inputs["style_codes"] = tf.constant(codes)
    else:
        inputs.update(style_image=tf.constant(photo), style_label=tf.constant(style_label))
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        sean_signatures[signature](**inputs)


def test_tflite_float32_takes_style_codes_and_equals_the_saved_model_without_noise(sean_export, sean_signatures):
    config, _, _, _, _, paths = sean_export
    interpreter = make_interpreter(paths["tflite_float32"])
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not {o for o in ops if o.startswith("Flex") or o in ("CUSTOM", "DELEGATE")}, ops
    assert not {o for o in ops if "RANDOM" in o}, ops  # no noise: TFLite has no seeded RNG
    details = interpreter.get_signature_runner().get_input_details()
    assert {k: (list(v["shape"]), v["dtype"]) for k, v in details.items()} == {
        "label": ([1, SIZE, SIZE], np.int32), "style_codes": ([1, 8, 8], np.float32)}
    worst = 0
    for seed in range(3):
        label, _ = sean_label(config, 20 + seed)
        codes = random_codes(config, 1, seed)
        image = run_tflite(paths["tflite_float32"], label, style_codes=codes)
        worst = max(worst, levels(image, synthesize_styles(sean_signatures, label, codes, -1)))
    assert worst <= 1, worst


def test_synthesizer_styles_api(sean_export):
    from spade_tf.sean_styles import with_mean

    config, _, _, mean, export_dir, _ = sean_export
    synth = load_synthesizer(export_dir)
    assert synth.is_sean
    np.testing.assert_array_equal(synth.mean_style_codes, mean.codes)
    label, _ = sean_label(config, 8)
    style_label, photo = sean_label(config, 9)
    codes, present = synth.encode_styles(photo, style_label)
    filled = with_mean(codes, present, synth.mean_style_codes)
    from_photo = synth.synthesize_from_photo(label, photo, style_label, seed=2)
    np.testing.assert_array_equal(from_photo, synth.synthesize_styles(label, filled, seed=2))
    np.testing.assert_array_equal(synth(label, seed=2), synth.synthesize_styles(label, mean.codes[None], seed=2))
    with pytest.raises(ValueError, match="encode_styles takes uint8 RGB images; got dtype float32"):
        synth.encode_styles(photo.astype(np.float32), style_label)
    # evaluate.py: the real image's own region styles, as the official test (and the periodic evaluation).
    from spade_tf.evaluation.run import _synthesize

    evaluated = _synthesize(synth, config, {"label": style_label, "image": photo}, seed=4, encode=False)
    np.testing.assert_array_equal(evaluated, synth.synthesize_from_photo(style_label, photo, style_label, seed=4))


def test_non_sean_models_refuse_style_calls():
    from spade_tf.config import get_preset
    from spade_tf.export.runtime import Synthesizer

    synth = Synthesizer(get_preset("synthetic"), {}, "some/export")
    with pytest.raises(ValueError, match=r"synthesize_styles is for SEAN models \(norm_mode='sean'\); some/export "
                                         r"is norm_mode='spade'"):
        synth.synthesize_styles(np.zeros((1, 64, 64), np.int32), np.zeros((1, 8, 512), np.float32))


def test_int8_calibration_uses_the_photos_style_codes(sean_export):
    from spade_tf.export.exporter import _representative
    from spade_tf.export.serving import SynthesisModule

    config, generator, encoder, mean, _, _ = sean_export
    module = SynthesisModule(generator, config, style_encoder=encoder, mean_style_codes=mean.codes)
    assert module.fast is None and module.fast_reason.startswith("norm_mode='sean': ACE's style path")
    label, photo = sean_label(config, 30)
    examples = [{"label": label[0], "image": photo[0]}, {"label": label[0]}]
    first, second = list(_representative(examples, config, module)())
    assert set(first) == {"label", "style_codes"} and first["label"].shape == (1, SIZE, SIZE)
    codes = module.photo_style_codes(photo, label).numpy()
    np.testing.assert_array_equal(first["style_codes"], codes)
    np.testing.assert_array_equal(second["style_codes"], mean.codes[None])
    assert np.abs(codes - mean.codes[None]).max() > 1e-3


def test_the_export_readme_builds_valid_sean_requests(sean_export, sean_signatures, tmp_path, monkeypatch):
    """The README's REST bodies (columnar, a scalar seed) run against the SavedModel's signatures."""
    import subprocess
    import sys

    from PIL import Image

    config, _, _, _, export_dir, _ = sean_export
    readme = open(os.path.join(export_dir, "README.md")).read().splitlines()
    label, _ = sean_label(config, 60)
    style_label, photo = sean_label(config, 61)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(label[0].astype(np.uint8)).save("label.png")
    Image.fromarray(photo[0]).save("photo.png")
    Image.fromarray(style_label[0].astype(np.uint8)).save("photo_label.png")
    types = {"label": tf.int32, "style_label": tf.int32, "style_image": tf.uint8, "seed": tf.int32}
    for target in ("request.json", "request_photo.json"):
        start = next(i for i, line in enumerate(readme) if line.startswith('python -c "import json, numpy as np;')
                     and any(target in later for later in readme[i:i + 6]))
        end = next(i for i in range(start, len(readme)) if readme[i].endswith(f"> {target}"))
        command = "\n".join(readme[start:end + 1]).replace("python -c", f"{sys.executable} -c", 1)
        subprocess.run(command, shell=True, check=True)
        body = json.load(open(target))
        inputs = {k: tf.constant(v, types[k]) for k, v in body["inputs"].items()}
        out = sean_signatures[body["signature_name"]](**inputs)["image"].numpy()
        if target == "request.json":
            assert out.shape == (1, SIZE, SIZE, 3)
        else:
            expected = sean_signatures["synthesize_from_photo"](
                label=tf.constant(label), style_image=tf.constant(photo), style_label=tf.constant(style_label),
                seed=tf.constant(0))["image"].numpy()
            np.testing.assert_array_equal(out, expected)


def test_tflite_variants_of_sean():
    from helpers import sean_config

    from spade_tf.export.tflite import unsupported_reason

    config = sean_config()
    assert [v for v in ("float32", "float16", "dynamic_range") if unsupported_reason(v, config)] == []
    assert "9-14 dB" in unsupported_reason("int8", config) and "ONE_HOT" in unsupported_reason("int16x8", config)
