"""A small COCO-like model (instance maps) exported once for the export tests."""

import os

import keras
import pytest
import tensorflow as tf
from helpers import EXPORT_SIZE as SIZE
from helpers import add_contrast, sean_config, sean_label, warm_up_statistics

from spade_tf.config import get_preset
from spade_tf.export import export_model
from spade_tf.export.calibration import random_layouts
from spade_tf.models import build_generator


@pytest.fixture(scope="session")
def coco_export(tmp_path_factory):
    """(config, generator, export_dir, calibration) with every artifact written."""
    keras.utils.set_random_seed(20261123)  # the same model whichever test builds it first
    config = get_preset("coco", crop_size=SIZE, load_size=SIZE, ngf=8)
    generator = build_generator(config)
    warm_up_statistics(generator, config)
    add_contrast(generator, config)
    export_dir = str(tmp_path_factory.mktemp("export") / "coco")
    calibration = random_layouts(config, 16, seed=1)
    paths = export_model(generator, config, export_dir, step=123, source="test",
                         calibration=calibration, calibration_source="16 random layouts", log=lambda *_: None)
    return config, generator, export_dir, paths


@pytest.fixture(scope="session")
def coco_signature(coco_export):
    _, _, export_dir, _ = coco_export
    loaded = tf.saved_model.load(os.path.join(export_dir, "serving", "1"))
    return loaded, loaded.signatures["serving_default"]


DAMAGES = {  # what a failed copy or a full disk leaves: file -> bytes kept (None: deleted)
    "truncated_pb": ("saved_model.pb", 1000),
    "truncated_variables": ("variables/variables.data-00000-of-00001", 1000),
    "missing_variables": ("variables/variables.data-00000-of-00001", None),
}


@pytest.fixture
def damaged_saved_model(coco_export, tmp_path):
    """damage -> (a copy of the exported SavedModel with that file damaged, the damaged file).

    The copy links the undamaged files instead of copying tens of MB.
    """
    _, _, export_dir, _ = coco_export
    source = os.path.join(export_dir, "serving", "1")

    def make(damage):
        damaged, keep = DAMAGES[damage]
        target = str(tmp_path / damage)
        for root, _, files in os.walk(source):
            rel = os.path.relpath(root, source)
            os.makedirs(os.path.join(target, rel), exist_ok=True)
            for name in files:
                relname = os.path.normpath(os.path.join(rel, name))
                if relname == damaged:
                    if keep is not None:
                        with open(os.path.join(root, name), "rb") as f:
                            data = f.read(keep)
                        with open(os.path.join(target, relname), "wb") as f:
                            f.write(data)
                else:
                    os.symlink(os.path.join(root, name), os.path.join(target, relname))
        return target, os.path.join(target, damaged)

    return make


@pytest.fixture(scope="session")
def sean_export(tmp_path_factory):
    """(config, generator, style encoder, mean styles, export dir, paths) of a small SEAN model.

    Synthetic preset at 32x32. The style path (per-class dense layers and
    the convs from the style map) is scaled 30x, as in the generator's own
    test, so that style codes change the picture as in a trained model
    (at init they are ~1e-3 of the output), and so is the Zencoder's last
    conv, for codes of a trained encoder's size; ``noise_var`` is 0.05 so that
    ACE's noise shows; the last conv is scaled for contrast. The mean style
    codes come from 16 synthetic scenes; the float32 TFLite file is written.
    """
    import numpy as np

    from spade_tf.layers import ACE
    from spade_tf.models import build_generator, build_sean_encoder
    from spade_tf.sean_styles import training_mean_styles
    from spade_tf.segmap import make_segmap

    keras.utils.set_random_seed(20261206)
    config = sean_config()
    generator = build_generator(config)
    encoder = build_sean_encoder(config)
    for layer in generator._flatten_layers():
        if isinstance(layer, ACE):
            layer.noise_var.assign(np.full(layer.channels, 0.05, "float32"))
            if layer.use_style:
                for w in (layer.fc_mu_kernel, layer.conv_gamma.kernel, layer.conv_beta.kernel):
                    w.assign(w * 30.0)
    conv = encoder.get_layer("conv_out")  # codes of a trained encoder's size (init: ~0.01; tanh up to 1)
    conv.kernel.assign(conv.kernel * 50.0)
    rng = np.random.default_rng(0)
    for seed in range(4):  # batch-norm statistics of a few scenes, with their own codes
        label, image = sean_label(config, 100 + seed)
        segmap = make_segmap(label, None, config).numpy()
        codes = encoder({"image": image.astype("float32") / 127.5 - 1.0, "segmap": segmap}).numpy()
        generator({"segmap": segmap, "style_codes": codes}, training=True)
    label, _ = sean_label(config, 99)
    codes = np.tanh(rng.normal(size=(1, config.semantic_nc, config.style_dim))).astype("float32")
    std = float(np.std(generator({"segmap": make_segmap(label, None, config).numpy(), "style_codes": codes})))
    conv = generator.get_layer("conv_img")
    conv.kernel.assign(conv.kernel * (0.6 / std))
    mean = training_mean_styles(encoder, config, 16)
    export_dir = str(tmp_path_factory.mktemp("export") / "sean")
    paths = export_model(generator, config, export_dir, step=7, source="test", tflite_variants=["float32"],
                         style_encoder=encoder, mean_styles=mean, log=lambda *_: None)
    return config, generator, encoder, mean, export_dir, paths


@pytest.fixture(scope="session")
def sean_signatures(sean_export):
    loaded = tf.saved_model.load(os.path.join(sean_export[4], "serving", "1"))
    return loaded.signatures
