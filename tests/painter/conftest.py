"""One painter server for the painter tests, serving a model whose colours are known.

The model maps each class to a fixed colour (a 1x1 convolution of the one-hot
segmap, the synthetic scenes' base colours): the output of any label map is
known exactly, so the tests can check what the browser painted, pixel by
pixel, through the whole path (page buffer -> PNG encoder -> REST API ->
``predict_png`` -> image). It goes through the real export
(``export_model``, ``SynthesisModule``, SavedModel loading); only the
generator is replaced. An untrained SPADE generator paints flat grey, and a
trained one is minutes of CPU.
"""

import os
import threading

import keras
import numpy as np
import pytest
from painter_helpers import CLASS_COLOURS

from spade_tf.config import get_preset

# What each class of the synthetic preset paints, RGB.


def palette_generator(config, colours: np.ndarray) -> keras.Model:
    """segmap [B, H, W, C] -> image [-1, 1] [B, H, W, 3]: class c paints ``colours[c]`` exactly."""
    segmap = keras.Input((*config.image_size, config.semantic_nc), name="segmap")
    layer = keras.layers.Dense(3, use_bias=False, name="palette")
    model = keras.Model({"segmap": segmap}, layer(segmap), name="palette_generator")
    kernel = np.zeros((config.semantic_nc, 3), np.float32)
    kernel[: len(colours)] = colours.astype(np.float32) / 127.5 - 1.0  # export's uint8: round((x + 1) * 127.5)
    layer.kernel.assign(kernel)
    return model


def vae_palette_generator(config, colours: np.ndarray) -> keras.Model:
    """The palette model plus a uniform colour shift drawn from the latent: the style of a VAE model."""
    base = palette_generator(config, colours)
    latent = keras.Input((config.z_dim,), name="latent")
    shift = keras.layers.Dense(3, use_bias=False, name="style",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=0))(latent)
    shift = keras.layers.UpSampling2D(config.image_size, name="spread")(keras.layers.Reshape((1, 1, 3))(shift))
    segmap = keras.Input((*config.image_size, config.semantic_nc), name="segmap")
    image = keras.layers.Add()([base({"segmap": segmap}), shift])
    return keras.Model({"segmap": segmap, "latent": latent}, image, name="vae_palette_generator")


@pytest.fixture(scope="session")
def palette_export(tmp_path_factory):
    """(config, export dir) of the palette model (synthetic preset, 64x64, 8 classes)."""
    from spade_tf.export import export_model

    config = get_preset("synthetic", ngf=8)
    export_dir = str(tmp_path_factory.mktemp("painter") / "palette")
    export_model(palette_generator(config, CLASS_COLOURS), config, export_dir, tflite_variants=[],
                 log=lambda *_: None)
    return config, export_dir


@pytest.fixture(scope="session")
def painter(palette_export):
    """A running painter (in a thread) for the palette model; ``.url`` is its address."""
    from spade_tf.painter.model import load_painter_model
    from spade_tf.painter.server import PainterServer

    _, export_dir = palette_export
    model = load_painter_model(export_dir, log=lambda *_: None)
    server = PainterServer(("127.0.0.1", 0), model, log_requests=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(scope="session")
def vae_painter(tmp_path_factory):
    """A running painter for a VAE palette model (``seed`` input)."""
    from spade_tf.export import export_model
    from spade_tf.painter.model import load_painter_model
    from spade_tf.painter.server import PainterServer

    config = get_preset("synthetic", ngf=8, use_vae=True, z_dim=8)
    export_dir = str(tmp_path_factory.mktemp("painter") / "vae")
    export_model(vae_palette_generator(config, CLASS_COLOURS), config, export_dir, tflite_variants=[],
                 log=lambda *_: None)
    server = PainterServer(("127.0.0.1", 0), load_painter_model(export_dir, log=lambda *_: None), log_requests=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def sean_palette_models(config):
    """A SEAN stand-in whose output is known exactly: (generator, style encoder).

    The encoder's style code of a region is its mean colour in [-1, 1] (the
    ``codes`` layer is the photo itself, region-averaged by the Zencoder's own
    ``RegionAverage``); the generator paints each region with its code as a
    colour (style_dim 3). So a region styled by a photo takes the photo's mean
    colour of that class, and one with the mean code the mean over the
    training scenes of that colour. Built-in layers only (the export folds
    and saves it).
    """
    from spade_tf.layers import RegionAverage

    h, w = config.image_size
    nc = config.semantic_nc
    image = keras.Input((h, w, 3), name="image")
    segmap = keras.Input((h, w, nc), name="segmap")
    codes = keras.layers.Identity(name="codes")(image)
    encoder = keras.Model({"image": image, "segmap": segmap},
                          RegionAverage(name="style_codes")(codes, segmap), name="palette_encoder")
    segmap_in = keras.Input((h, w, nc), name="segmap")
    style_codes = keras.Input((nc, 3), name="style_codes")
    flat = keras.layers.Reshape((h * w, nc), name="flat")(segmap_in)
    painted = keras.layers.Dot(axes=(2, 1), name="paint")([flat, style_codes])
    generator = keras.Model({"segmap": segmap_in, "style_codes": style_codes},
                            keras.layers.Reshape((h, w, 3), name="image")(painted), name="sean_palette_generator")
    return generator, encoder


@pytest.fixture(scope="session")
def sean_painter(tmp_path_factory):
    """(running painter, mean styles) for a SEAN palette model (synthetic preset, 64x64, style_dim 3)."""
    from spade_tf.export import export_model
    from spade_tf.painter.model import load_painter_model
    from spade_tf.painter.server import PainterServer
    from spade_tf.sean_styles import training_mean_styles

    config = get_preset("synthetic", ngf=8, norm_mode="sean", style_dim=3)
    generator, encoder = sean_palette_models(config)
    mean = training_mean_styles(encoder, config, 16)
    export_dir = str(tmp_path_factory.mktemp("painter") / "sean")
    export_model(generator, config, export_dir, tflite_variants=[], style_encoder=encoder, mean_styles=mean,
                 log=lambda *_: None)
    server = PainterServer(("127.0.0.1", 0), load_painter_model(export_dir, log=lambda *_: None), log_requests=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, mean
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(scope="session")
def chromium_path():
    """The system Chromium (Debian package ``chromium``); a failure under CI, a skip elsewhere."""
    import shutil

    path = os.environ.get("PAINTER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    if path is None:
        reason = "no chromium on PATH (apt-get install -y chromium; or set PAINTER_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[test]')"
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Browser tests cannot run under CI: {reason}.")
        pytest.skip(reason)
    return path
