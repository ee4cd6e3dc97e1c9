"""Shared test helpers."""

import os

import keras
import numpy as np
from PIL import Image


def one_hot_segmap(rng, batch, height, width, channels):
    """Random one-hot label map [B, H, W, C] in float32, in blocks of 4 px."""
    ids = rng.integers(0, channels, size=(batch, max(1, height // 4), max(1, width // 4)))
    ids = np.repeat(np.repeat(ids, 4, axis=1), 4, axis=2)[:, :height, :width]
    return np.eye(channels, dtype=np.float32)[ids]


def to_numpy(x):
    if isinstance(x, (list, tuple)):
        return [to_numpy(v) for v in x]
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    return keras.ops.convert_to_numpy(x)


def assert_all_close(a, b, atol=1e-5, rtol=1e-5):
    a, b = to_numpy(a), to_numpy(b)
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_all_close(x, y, atol, rtol)
        return
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def keras_round_trip(model, tmp_path, name="model.keras"):
    """Saves to .keras and loads back."""
    path = os.path.join(tmp_path, name)
    model.save(path)
    return keras.models.load_model(path)


def layer_config_round_trip(layer):
    """Rebuilds a layer from its config; the config must match exactly."""
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    return clone


def write_pair(root, stem, labels, image=None, instance=None, image_ext=".jpg",
               image_dir="images", label_dir="labels", instance_dir="instances"):
    """Writes one image / label (/ instance) triple; returns the label array."""
    labels = np.asarray(labels, np.uint8)
    if image is None:
        rng = np.random.default_rng(abs(hash(stem)) % 2**32)
        image = rng.integers(0, 255, size=(*labels.shape, 3), dtype=np.uint8)
    for folder, array, ext in (
        (image_dir, image, image_ext), (label_dir, labels, ".png"), (instance_dir, instance, ".png"),
    ):
        if array is None:
            continue
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        Image.fromarray(array).save(os.path.join(root, folder, stem + ext))
    return labels


def blocks(rng, h, w, n, block=4):
    ids = rng.integers(0, n, size=(h // block + 1, w // block + 1))
    return np.repeat(np.repeat(ids, block, 0), block, 1)[:h, :w].astype(np.uint8)


def n_trainable(model):
    """Number of trainable parameters (scalars) of a layer or model."""
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


# --- keras-hub-style layer test --------------------------------------------

def _plain(value):
    """Tuples -> lists, recursively, so configs compare as they serialise."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _call_accepts_training(layer):
    import inspect

    return "training" in inspect.signature(layer.call).parameters


def _random_inputs(rng, shapes, dtypes):
    return [
        rng.normal(size=shape).astype(dtype) if np.dtype(dtype).kind == "f"
        else rng.integers(0, 4, size=shape).astype(dtype)
        for shape, dtype in zip(shapes, dtypes)
    ]


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shapes,
    expected_output_shape,
    tmp_path,
    input_dtypes=None,
    expected_output_dtype="float32",
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_mixed_precision_check=True,
    seed=0,
):
    """Checks what every layer of this package must do (keras-hub's
    ``TestCase.run_layer_test``, for layers with several positional inputs).

    * ``get_config`` holds every init argument and ``from_config`` rebuilds a
      layer with the same config;
    * a symbolic call on ``keras.Input``s gives ``expected_output_shape`` with
      the batch unknown, as ``compute_output_shape`` does;
    * an eager call gives that shape with the batch and ``expected_output_dtype``;
    * in a tiny functional model, a ``.keras`` save and load keeps the outputs
      (after a training-mode call, so moving statistics and spectral-norm
      vectors are not at their initial values);
    * under the ``mixed_float16`` and ``mixed_bfloat16`` policies the layer
      builds, runs (inference and, if it takes ``training``, training) and
      returns the policy's compute dtype with finite values.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shapes: one full shape (with batch) per positional call input.
        expected_output_shape: full output shape (with batch).
        tmp_path: a folder for the ``.keras`` file.
        input_dtypes: one dtype per input (default float32).
    """
    rng = np.random.default_rng(seed)
    input_shapes = [tuple(s) for s in input_shapes]
    input_dtypes = list(input_dtypes or ["float32"] * len(input_shapes))
    expected_output_shape = tuple(expected_output_shape)
    inputs = _random_inputs(rng, input_shapes, input_dtypes)

    # Config: every init argument is stored, and the config round-trips.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        if isinstance(value, (bool, int, float, str, list, tuple, type(None))):
            assert key in config, f"{layer_cls.__name__}.get_config() lacks {key!r}"
            assert _plain(config[key]) == _plain(value), (key, config[key], value)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # Symbolic call: static output shape, batch unknown.
    symbolic = [
        keras.Input(shape[1:], dtype=dtype) for shape, dtype in zip(input_shapes, input_dtypes)
    ]
    out = layer_cls(**init_kwargs)(*symbolic)
    assert tuple(out.shape) == (None, *expected_output_shape[1:]), out.shape

    # Eager call: shape and dtype.
    eager = layer_cls(**init_kwargs)
    training = {"training": True} if _call_accepts_training(eager) else {}
    out = eager(*inputs, **training)
    assert tuple(out.shape) == expected_output_shape, out.shape
    assert keras.backend.standardize_dtype(out.dtype) == expected_output_dtype, out.dtype
    assert np.isfinite(to_numpy(out)).all()
    if expected_num_trainable_weights is not None:
        assert len(eager.trainable_weights) == expected_num_trainable_weights, [
            w.path for w in eager.trainable_weights]
    if expected_num_non_trainable_weights is not None:
        assert len(eager.non_trainable_weights) == expected_num_non_trainable_weights, [
            w.path for w in eager.non_trainable_weights]

    # .keras round trip inside a functional model: same outputs.
    symbolic = [
        keras.Input(shape[1:], dtype=dtype) for shape, dtype in zip(input_shapes, input_dtypes)
    ]
    model = keras.Model(symbolic, layer_cls(**init_kwargs)(*symbolic))
    model(inputs, training=True)  # moves moving statistics and u, v off their initial values
    loaded = keras_round_trip(model, tmp_path, name=f"{layer_cls.__name__}.keras")
    if model.layers[-1]._seed_generators:
        # A SeedGenerator's state is not saved in .keras files: the loaded
        # layer restarts from its seed, like a new layer with that seed (and
        # the saved weights).
        fresh = keras.Model(symbolic, layer_cls(**init_kwargs)(*symbolic))
        fresh.set_weights(model.get_weights())
        model = fresh
    assert_all_close(loaded(inputs, training=False), model(inputs, training=False), atol=1e-6)

    if not run_mixed_precision_check:
        return
    previous = keras.config.dtype_policy()
    try:
        for policy in ("mixed_float16", "mixed_bfloat16"):
            # Given as the layer's dtype (sublayers must inherit it), then as
            # the global policy.
            for how in ("dtype argument", "global policy"):
                if how == "global policy":
                    keras.config.set_dtype_policy(policy)
                    mixed = layer_cls(**init_kwargs)
                else:
                    mixed = layer_cls(**init_kwargs, dtype=policy)
                _check_mixed_precision(mixed, policy, how, inputs, expected_output_shape, training)
    finally:
        keras.config.set_dtype_policy(previous)


def _check_mixed_precision(layer, policy, how, inputs, expected_output_shape, training):
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    for kwargs in [{}] + ([{"training": True}] if training else []):
        out = layer(*inputs, **kwargs)
        where = (policy, how, kwargs)
        assert keras.backend.standardize_dtype(out.dtype) == compute_dtype, (*where, out.dtype)
        assert tuple(out.shape) == expected_output_shape, where
        assert np.isfinite(to_numpy(keras.ops.cast(out, "float32"))).all(), where
    for sublayer in layer._flatten_layers():
        assert sublayer.dtype_policy.name == policy, (where, sublayer.name, sublayer.dtype_policy)
    for weight in layer.weights:  # float variables stay float32 under mixed policies
        dtype = keras.backend.standardize_dtype(weight.dtype)
        assert dtype == "float32" or "float" not in dtype, (where, weight.path, dtype)


# --- the export tests' small COCO-like model -------------------------------

EXPORT_SIZE = 64


def generator_inputs(config, label, instance=None, latent=None):
    """The generator's inputs for label maps: segmap, and latent / CLADE-ICPE maps where the config has them."""
    import tensorflow as tf

    from spade_tf.positional import positional_encoding
    from spade_tf.segmap import make_segmap

    inputs = {"segmap": make_segmap(label, instance, config)}
    if config.use_vae:
        inputs["latent"] = tf.constant(latent, tf.float32)
    if config.use_positional_encoding:
        inputs["positional"] = positional_encoding(tf.constant(label, tf.int32))
    return inputs


def warm_up_statistics(generator, config, steps=12, seed=0):
    """Training-mode passes so batch-norm moving statistics and spectral-norm
    vectors look like a trained model's rather than their initial values."""
    from spade_tf.export.calibration import random_layouts

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        examples = random_layouts(config, 2, seed=int(rng.integers(1 << 30)))
        label = np.stack([e["label"] for e in examples])
        instance = np.stack([e.get("instance", e["label"]) for e in examples])
        generator(generator_inputs(config, label, instance, rng.standard_normal((2, config.z_dim))), training=True)


def add_contrast(generator, config, target_std=0.6):
    """Scales the last conv so outputs span [-1, 1] like a trained model's.

    At initialisation (Xavier gain 0.02) every image is a flat grey, which
    would make any quantization error look small.
    """
    label, instance = labels_and_instances(config, 2, seed=99)
    inputs = generator_inputs(config, label, instance, np.random.default_rng(0).standard_normal((2, config.z_dim)))
    std = float(np.std(generator(inputs, training=False)))
    conv = generator.get_layer("conv_img")
    conv.kernel.assign(conv.kernel * (target_std / std))


def labels_and_instances(config, batch, seed=0):
    """Random block label maps [B, H, W] (don't-care corner where the config
    has that label) and instance maps (None without instance maps)."""
    from spade_tf.export.calibration import random_layouts

    examples = random_layouts(config, batch, seed=seed)
    label = np.stack([e["label"] for e in examples])
    instance = np.stack([e["instance"] for e in examples]) if config.use_instance_map else None
    if config.contain_dontcare_label:
        label[:, :4, :4] = 255  # don't-care pixels are valid input
    return label, instance


def numpy_edge_map(instance):
    """[B, H, W] instance ids -> float32 edges: both pixels of every
    horizontally or vertically adjacent pair with different ids (official
    ``get_edges``), written independently of ``spade_tf.segmap``."""
    instance = np.asarray(instance)
    edge = np.zeros(instance.shape, bool)
    dx = instance[..., :, 1:] != instance[..., :, :-1]
    dy = instance[..., 1:, :] != instance[..., :-1, :]
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    return edge.astype(np.float32)


def numpy_segmap(label, instance, config):
    """The generator's input encoded in NumPy, from the channel layout the
    config describes: ``label_nc`` one-hot class channels, then (with a
    don't-care label) one channel for id 255, then (with instance maps) the
    instance-edge map."""
    label = np.asarray(label).astype(np.int64)
    depth = config.label_nc + int(config.contain_dontcare_label)
    if config.contain_dontcare_label:
        label = np.where(label == 255, config.label_nc, label)
    assert label.min() >= 0 and label.max() < depth, "ids outside the one-hot range"
    channels = [np.eye(depth, dtype=np.float32)[label]]
    if config.use_instance_map:
        channels.append(numpy_edge_map(instance)[..., None])
    segmap = np.concatenate(channels, axis=-1)
    assert segmap.shape[-1] == config.semantic_nc
    return segmap


def assert_sgd_step_follows_the_gradient(model, x, y, loss, loss_fn, decrease=0.01, first_order=True):
    """One ``fit`` step with plain SGD on a fixed batch does what gradient
    descent should: ``fit`` reports the loss at the current weights, every
    trainable variable moves by ``-lr * grad`` (the gradient taken with
    ``tf.GradientTape`` at the same state), and the loss at the new weights
    is lower: by about ``lr * |grad|^2`` (within a factor 1.5) with
    ``first_order``, else by anything.

    The learning rate is chosen so that this first-order decrease is
    ``decrease`` of the loss: small enough for the first order to hold.

    Non-trainable state (moving statistics, spectral-norm vectors) is put
    back before each forward pass, so all passes start from the same state.

    Args:
        loss: the ``compile`` loss. loss_fn: the same loss as a function of
            ``(y_true, y_pred)`` returning a scalar.
        first_order: False where the loss is far from linear at that step
            (see the generator's test).
    Returns:
        (learning rate, loss before, loss after).
    """
    import tensorflow as tf

    state = [v.numpy() for v in model.non_trainable_variables]

    def restore():
        for variable, value in zip(model.non_trainable_variables, state):
            variable.assign(value)

    with tf.GradientTape() as tape:
        loss_tensor = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss_tensor, model.trainable_variables)
    loss_before = float(loss_tensor)
    disconnected = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not disconnected, f"no gradient reaches {disconnected}"
    grads = [g.numpy() for g in grads]
    squared_norm = sum(float(np.sum(np.square(g))) for g in grads)
    assert squared_norm > 0
    learning_rate = decrease * loss_before / squared_norm
    restore()
    before = [v.numpy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=loss)
    history = model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], loss_before, rtol=1e-5)
    # Gradients that are zero up to rounding (e.g. of a bias before a batch
    # norm) differ between two computations by rounding noise: tolerated up
    # to 1e-4 of the largest step.
    largest = learning_rate * max(np.abs(g).max() for g in grads)
    for variable, value, grad in zip(model.trainable_variables, before, grads):
        np.testing.assert_allclose(
            variable.numpy() - value, -learning_rate * grad, rtol=1e-3,
            atol=1e-6 * np.abs(value).max() + 1e-4 * largest, err_msg=variable.path,
        )
    restore()
    loss_after = float(loss_fn(y, model(x, training=True)))
    predicted = learning_rate * squared_norm
    if first_order:
        assert 0.5 * predicted < loss_before - loss_after < 1.5 * predicted, (loss_before, loss_after, predicted)
    else:
        assert loss_after < loss_before, (loss_before, loss_after)
    return learning_rate, loss_before, loss_after


def sean_config():
    from spade_tf.config import get_preset

    return get_preset("synthetic", crop_size=32, load_size=32, ngf=8, spade_hidden=16, style_dim=8, norm_mode="sean")


def sean_label(config, seed=0):
    """A synthetic scene's label map [1, H, W] and its photo uint8 [1, H, W, 3]."""
    import numpy as np

    from spade_tf.data import synthetic

    labels, image = synthetic.scene(seed, *config.image_size)
    return labels.astype(np.int32)[None], image[None]
