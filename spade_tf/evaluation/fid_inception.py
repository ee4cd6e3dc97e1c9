"""The FID Inception network (TTUR's 2015 TensorFlow graph) as a Keras model.

FID figures in the GAN literature come from the TensorFlow Inception graph of
2015-12-05 that the TTUR reference code uses, and that ``pytorch-fid`` ported
to PyTorch (``pytorch_fid.inception.fid_inception_v3``, weights file
``pt_inception-2015-12-05-6726825d.pth``). It is *not* Keras'
``InceptionV3``: besides different weights, it differs from torchvision's
Inception3 in three places, which this model reproduces:

* the average pool in the pool branch of Mixed_5b-d, Mixed_6b-e and Mixed_7b
  (3x3, stride 1, padding 1) does not count the padded zeros (PyTorch's
  ``count_include_pad=False``, TensorFlow's SAME average pool);
* Mixed_7c's pool branch is a 3x3 *max* pool (stride 1, padding 1);
* inputs are resized to 299x299 bilinearly (half-pixel centres, i.e.
  ``align_corners=False``, no antialiasing, also when downscaling), then
  scaled from [0, 255] to [-1, 1].

Every convolution is torchvision's ``BasicConv2d``: a bias-free convolution,
BatchNorm (epsilon 0.001) and ReLU. PyTorch pads symmetrically; every padded
convolution here has stride 1 and an odd kernel, for which Keras' ``"same"``
padding is the same symmetric padding; every stride-2 convolution and pool is
unpadded (``"valid"``, floor of the output size as PyTorch's
``ceil_mode=False``).

Layers are named after pytorch-fid's state-dict keys, "." written "__"
(Keras' torch backend rejects "." in layer names): the layer
``Mixed_5b__branch1x1__conv`` holds ``Mixed_5b.branch1x1.conv.weight``,
``Mixed_5b__branch1x1__bn`` the ``Mixed_5b.branch1x1.bn.*`` tensors, so
loading is a name map. The model uses keras.layers / keras.ops only and runs
on the TensorFlow, JAX and torch backends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPSILON = 0.001
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
RANDOM_WEIGHTS_WARNING = (
    "FID Inception has RANDOM weights (no weights_path): FID/KID from them are NOT comparable to "
    f"published numbers. Pass pytorch-fid's {FID_WEIGHTS_FILE} ({FID_WEIGHTS_URL})."
)
# The .pth also holds the 1008-way classifier (fc.weight, fc.bias), which the
# pool features do not use; BatchNorm's num_batches_tracked is not needed.
_IGNORED_KEY_PREFIXES = ("fc.",)
_IGNORED_KEY_SUFFIXES = (".num_batches_tracked",)
_FLOAT = "float32"
_SEP = "__"


def keras_layer_name(torch_path: str) -> str:
    """``Mixed_5b.branch1x1.conv`` -> ``Mixed_5b__branch1x1__conv``.

    Keras forbids "/" in layer names and the torch backend "." (layers become
    torch modules); the state-dict keys never contain "__".
    """
    return torch_path.replace(".", _SEP)


def torch_module_path(layer_name: str) -> str:
    """Inverse of ``keras_layer_name``."""
    return layer_name.replace(_SEP, ".")


@keras.saving.register_keras_serializable(package="spade_tf")
class AvgPool3x3ExcludePad(keras.layers.Layer):
    """3x3 average pool, stride 1, zero padding 1, divided by the number of
    real (unpadded) pixels in each window: PyTorch's
    ``F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)``.

    The divisor is computed explicitly (a pool of ones), so the result does not
    depend on how a backend's ``"same"`` average pool counts the padding.
    """

    def call(self, x):
        pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
        window_mean = ops.average_pool(ops.pad(x, pad), 3, strides=1, padding="valid")
        # Fraction of each window inside the image (9/9, 6/9 at edges, 4/9 in corners).
        inside = ops.average_pool(ops.pad(ops.ones_like(x[..., :1]), pad), 3, strides=1, padding="valid")
        return window_mean / inside

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="spade_tf")
class FIDPreprocess(keras.layers.Layer):
    """[B, H, W, 3] in [0, 255] -> [B, 299, 299, 3] in [-1, 1], as pytorch-fid.

    pytorch-fid: ``F.interpolate(x, size=(299, 299), mode="bilinear",
    align_corners=False)``, then ``2 * x - 1`` (its x is in [0, 1]). That is
    bilinear sampling at half-pixel centres with edge clamping and no
    antialiasing, also when downscaling: ``ops.image.resize(antialias=False)``
    (TF's ResizeBilinear with half_pixel_centers, JAX's scale_and_translate
    without antialias, torch's own interpolate).
    """

    def call(self, images):
        x = ops.image.resize(images, (INPUT_SIZE, INPUT_SIZE), interpolation="bilinear", antialias=False,
                             data_format="channels_last")
        return x / 255.0 * 2.0 - 1.0

    def compute_output_shape(self, input_shape):
        return (input_shape[0], INPUT_SIZE, INPUT_SIZE, input_shape[-1])


def _conv_bn(x, name, filters, kernel_size, strides=1, padding=0):
    """torchvision's BasicConv2d ``name``: Conv2d(bias=False) + BatchNorm(eps=0.001) + ReLU.

    ``padding`` is PyTorch's (int or (pad_h, pad_w)); only 0 or "half the
    kernel" at stride 1 occur in this network, i.e. "valid" or "same".
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    if (ph, pw) == (0, 0):
        mode = "valid"
    elif (ph, pw) == ((kh - 1) // 2, (kw - 1) // 2) and kh % 2 and kw % 2 and strides == 1:
        mode = "same"  # symmetric, exactly PyTorch's explicit padding
    else:  # pragma: no cover - not in this network
        raise ValueError(f"{name}: padding {padding} with kernel {kernel_size}, stride {strides} not supported.")
    x = keras.layers.Conv2D(filters, (kh, kw), strides=strides, padding=mode, use_bias=False,
                            name=keras_layer_name(f"{name}.conv"), dtype=_FLOAT)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=keras_layer_name(f"{name}.bn"), dtype=_FLOAT)(x)
    return keras.layers.ReLU(name=keras_layer_name(f"{name}.relu"), dtype=_FLOAT)(x)


def _max_pool(x, name, strides, padding):
    """3x3 max pool: unpadded (stride 2), or padded by 1 (stride 1; the padding never wins)."""
    return keras.layers.MaxPooling2D(3, strides=strides, padding=padding, name=keras_layer_name(name), dtype=_FLOAT)(x)


def _concat(tensors, name):
    return keras.layers.Concatenate(axis=-1, name=keras_layer_name(name), dtype=_FLOAT)(tensors)


def _inception_a(x, name, pool_features):  # FIDInceptionA
    b1 = _conv_bn(x, f"{name}.branch1x1", 64, 1)
    b5 = _conv_bn(x, f"{name}.branch5x5_1", 48, 1)
    b5 = _conv_bn(b5, f"{name}.branch5x5_2", 64, 5, padding=2)
    b3 = _conv_bn(x, f"{name}.branch3x3dbl_1", 64, 1)
    b3 = _conv_bn(b3, f"{name}.branch3x3dbl_2", 96, 3, padding=1)
    b3 = _conv_bn(b3, f"{name}.branch3x3dbl_3", 96, 3, padding=1)
    bp = AvgPool3x3ExcludePad(name=keras_layer_name(f"{name}.avg_pool"), dtype=_FLOAT)(x)
    bp = _conv_bn(bp, f"{name}.branch_pool", pool_features, 1)
    return _concat([b1, b5, b3, bp], name)


def _inception_b(x, name):  # torchvision InceptionB (Mixed_6a)
    b3 = _conv_bn(x, f"{name}.branch3x3", 384, 3, strides=2)
    bd = _conv_bn(x, f"{name}.branch3x3dbl_1", 64, 1)
    bd = _conv_bn(bd, f"{name}.branch3x3dbl_2", 96, 3, padding=1)
    bd = _conv_bn(bd, f"{name}.branch3x3dbl_3", 96, 3, strides=2)
    bp = _max_pool(x, f"{name}.max_pool", strides=2, padding="valid")
    return _concat([b3, bd, bp], name)


def _inception_c(x, name, c7):  # FIDInceptionC
    b1 = _conv_bn(x, f"{name}.branch1x1", 192, 1)
    b7 = _conv_bn(x, f"{name}.branch7x7_1", c7, 1)
    b7 = _conv_bn(b7, f"{name}.branch7x7_2", c7, (1, 7), padding=(0, 3))
    b7 = _conv_bn(b7, f"{name}.branch7x7_3", 192, (7, 1), padding=(3, 0))
    bd = _conv_bn(x, f"{name}.branch7x7dbl_1", c7, 1)
    bd = _conv_bn(bd, f"{name}.branch7x7dbl_2", c7, (7, 1), padding=(3, 0))
    bd = _conv_bn(bd, f"{name}.branch7x7dbl_3", c7, (1, 7), padding=(0, 3))
    bd = _conv_bn(bd, f"{name}.branch7x7dbl_4", c7, (7, 1), padding=(3, 0))
    bd = _conv_bn(bd, f"{name}.branch7x7dbl_5", 192, (1, 7), padding=(0, 3))
    bp = AvgPool3x3ExcludePad(name=keras_layer_name(f"{name}.avg_pool"), dtype=_FLOAT)(x)
    bp = _conv_bn(bp, f"{name}.branch_pool", 192, 1)
    return _concat([b1, b7, bd, bp], name)


def _inception_d(x, name):  # torchvision InceptionD (Mixed_7a)
    b3 = _conv_bn(x, f"{name}.branch3x3_1", 192, 1)
    b3 = _conv_bn(b3, f"{name}.branch3x3_2", 320, 3, strides=2)
    b7 = _conv_bn(x, f"{name}.branch7x7x3_1", 192, 1)
    b7 = _conv_bn(b7, f"{name}.branch7x7x3_2", 192, (1, 7), padding=(0, 3))
    b7 = _conv_bn(b7, f"{name}.branch7x7x3_3", 192, (7, 1), padding=(3, 0))
    b7 = _conv_bn(b7, f"{name}.branch7x7x3_4", 192, 3, strides=2)
    bp = _max_pool(x, f"{name}.max_pool", strides=2, padding="valid")
    return _concat([b3, b7, bp], name)


def _inception_e(x, name, max_pool):  # FIDInceptionE_1 (avg pool) / FIDInceptionE_2 (max pool)
    b1 = _conv_bn(x, f"{name}.branch1x1", 320, 1)
    b3 = _conv_bn(x, f"{name}.branch3x3_1", 384, 1)
    b3 = _concat([
        _conv_bn(b3, f"{name}.branch3x3_2a", 384, (1, 3), padding=(0, 1)),
        _conv_bn(b3, f"{name}.branch3x3_2b", 384, (3, 1), padding=(1, 0)),
    ], f"{name}.branch3x3")
    bd = _conv_bn(x, f"{name}.branch3x3dbl_1", 448, 1)
    bd = _conv_bn(bd, f"{name}.branch3x3dbl_2", 384, 3, padding=1)
    bd = _concat([
        _conv_bn(bd, f"{name}.branch3x3dbl_3a", 384, (1, 3), padding=(0, 1)),
        _conv_bn(bd, f"{name}.branch3x3dbl_3b", 384, (3, 1), padding=(1, 0)),
    ], f"{name}.branch3x3dbl")
    if max_pool:
        # F.max_pool2d(x, 3, 1, padding=1): PyTorch pads with -inf, i.e. the
        # padding never wins, as in a "same" max pool.
        bp = _max_pool(x, f"{name}.max_pool", strides=1, padding="same")
    else:
        bp = AvgPool3x3ExcludePad(name=keras_layer_name(f"{name}.avg_pool"), dtype=_FLOAT)(x)
    bp = _conv_bn(bp, f"{name}.branch_pool", 192, 1)
    return _concat([b1, b3, bd, bp], name)


def _build_model() -> keras.Model:
    images = keras.Input((None, None, 3), dtype=_FLOAT, name="images")
    # F.interpolate(x, (299, 299), mode="bilinear", align_corners=False):
    # half-pixel centres, no antialiasing (also when downscaling).
    # Not keras.layers.Resizing: its call defaults to training=True, which
    # puts every BatchNorm after it in training mode when the model is called
    # without `training` (Keras 3.15).
    x = FIDPreprocess(name="preprocess", dtype=_FLOAT)(images)
    # Block 0
    x = _conv_bn(x, "Conv2d_1a_3x3", 32, 3, strides=2)
    x = _conv_bn(x, "Conv2d_2a_3x3", 32, 3)
    x = _conv_bn(x, "Conv2d_2b_3x3", 64, 3, padding=1)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool1", dtype=_FLOAT)(x)
    # Block 1
    x = _conv_bn(x, "Conv2d_3b_1x1", 80, 1)
    x = _conv_bn(x, "Conv2d_4a_3x3", 192, 3)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool2", dtype=_FLOAT)(x)
    # Block 2
    x = _inception_a(x, "Mixed_5b", pool_features=32)
    x = _inception_a(x, "Mixed_5c", pool_features=64)
    x = _inception_a(x, "Mixed_5d", pool_features=64)
    x = _inception_b(x, "Mixed_6a")
    x = _inception_c(x, "Mixed_6b", c7=128)
    x = _inception_c(x, "Mixed_6c", c7=160)
    x = _inception_c(x, "Mixed_6d", c7=160)
    x = _inception_c(x, "Mixed_6e", c7=192)
    # Block 3
    x = _inception_d(x, "Mixed_7a")
    x = _inception_e(x, "Mixed_7b", max_pool=False)
    x = _inception_e(x, "Mixed_7c", max_pool=True)
    features = keras.layers.GlobalAveragePooling2D(name="avgpool", dtype=_FLOAT)(x)  # AdaptiveAvgPool2d(1)
    return keras.Model(images, features, name="fid_inception_v3")


def build_fid_inception(weights_path: str | os.PathLike | None = None) -> keras.Model:
    """Builds the FID Inception network: [B, H, W, 3] in [0, 255] -> [B, 2048].

    Any H and W: images are resized to 299x299 inside (bilinear, no
    antialiasing, half-pixel centres as pytorch-fid), scaled to [-1, 1], and
    the output is the float32 2048-d final average pool, pytorch-fid's
    ``InceptionV3([3])`` features. The model is frozen (BatchNorm always uses
    its moving statistics).

    Args:
        weights_path: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
            (a state dict; read with torch, imported only here), or None for
            random weights (a warning says FID from them is not comparable).

    Raises:
        FileNotFoundError: ``weights_path`` does not exist.
        ValueError: it is not a readable state dict, or a tensor is missing or
            has the wrong shape (the message names the file and the key).
        ImportError: torch is not installed.
    """
    state = None
    if weights_path is None:
        logging.warning(RANDOM_WEIGHTS_WARNING)
    else:
        state = read_fid_inception_state_dict(weights_path)  # fails fast, before the build
    model = _build_model()
    if state is not None:
        load_fid_inception_weights(model, state, source=os.fspath(weights_path))
    model.trainable = False
    return model


def read_fid_inception_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads pytorch-fid's ``.pth`` state dict as ``{key: float32 array}``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"FID Inception weights file {path} does not exist; expected pytorch-fid's {FID_WEIGHTS_FILE} "
            f"({FID_WEIGHTS_URL})."
        )
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading {path} needs PyTorch (the CPU wheel is enough): pip install 'spade-tf[torch]'."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise ValueError(
            f"Cannot read FID Inception weights file {path} ({type(e).__name__}: {e}); expected pytorch-fid's "
            f"{FID_WEIGHTS_FILE}, a state dict saved with torch.save."
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"FID Inception weights file {path} holds a {type(state).__name__}, not a state dict of tensors; "
            f"expected pytorch-fid's {FID_WEIGHTS_FILE}."
        )
    return {k: v.detach().cpu().float().numpy() for k, v in state.items()}


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def load_fid_inception_weights(model: keras.Model, state_dict: Mapping, source: str = "state dict") -> None:
    """Copies pytorch-fid's Inception state dict into ``model`` (from ``build_fid_inception``).

    Conv weights go OIHW -> HWIO; BatchNorm ``weight, bias, running_mean,
    running_var`` become gamma, beta and the moving mean / variance. The
    classifier (``fc.*``) and ``num_batches_tracked`` are ignored. Every
    tensor is checked before any is assigned, so a bad state dict leaves the
    model unchanged.

    Args:
        model: a model from ``build_fid_inception``.
        state_dict: ``{key: tensor}``, NumPy arrays or torch tensors.
        source: names the state dict in error messages (e.g. its file).

    Raises:
        ValueError: a key is missing or has the wrong shape, or the state dict
            holds tensors this network does not have (e.g. torchvision's
            ImageNet ``inception_v3``, which has ``AuxLogits``).
    """
    assignments = []
    used = set()

    def take(key, expected_shape):
        if key not in state_dict:
            raise ValueError(
                f"{source}: missing key {key!r}; expected pytorch-fid's FID Inception state dict ({FID_WEIGHTS_FILE})."
            )
        value = _as_array(state_dict[key])
        if value.shape != tuple(expected_shape):
            raise ValueError(f"{source}: {key!r} has shape {value.shape}; expected {tuple(expected_shape)}.")
        used.add(key)
        return value

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            weight = take(f"{torch_module_path(layer.name)}.weight", (cout, cin, kh, kw))
            assignments.append((layer, [np.transpose(weight, (2, 3, 1, 0))]))
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = (layer.gamma.shape[0],)
            assignments.append((layer, [take(f"{torch_module_path(layer.name)}.{k}", channels)
                                        for k in ("weight", "bias", "running_mean", "running_var")]))
    unexpected = sorted(
        k for k in state_dict
        if k not in used and not k.startswith(_IGNORED_KEY_PREFIXES) and not k.endswith(_IGNORED_KEY_SUFFIXES)
    )
    if unexpected:
        raise ValueError(
            f"{source}: {len(unexpected)} tensors this FID Inception does not have, e.g. {unexpected[:3]}; "
            f"expected pytorch-fid's {FID_WEIGHTS_FILE} (torchvision's ImageNet inception_v3 is a different "
            "network for FID)."
        )
    if not assignments:
        raise ValueError("load_fid_inception_weights: the model has no Conv2D/BatchNormalization layers.")
    for layer, weights in assignments:
        layer.set_weights(weights)
