"""assign_state_dict: all or nothing, every problem named, on a two-layer model."""

import keras
import numpy as np
import pytest

from spade_tf.convert import KeyMap, StateDictMismatchError, assign_state_dict
from spade_tf.convert.key_map import Entry, dense_key_map


def tiny_model():
    return keras.Sequential([
        keras.Input((3,)), keras.layers.Dense(2, name="fc"), keras.layers.Dense(4, name="out"),
    ])


def key_map_of(model):
    return (dense_key_map("fc", model.get_layer("fc")) + dense_key_map("out", model.get_layer("out"))
            + KeyMap(optional=("fc.num_batches_tracked",)))


def torch_state(seed=0):
    """nn.Linear layouts: weight (out, in); values unlike Keras' initial ones (bias 0)."""
    rng = np.random.default_rng(seed)
    shapes = {"fc.weight": (2, 3), "fc.bias": (2,), "out.weight": (4, 2), "out.bias": (4,)}
    return {k: rng.normal(1.0, 1.0, s).astype(np.float32) for k, s in shapes.items()}


def snapshot(model):
    return [v.numpy().copy() for v in model.variables]


def assert_untouched(model, before):
    for variable, value in zip(model.variables, before):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


def test_assigns_every_variable_with_its_layout():
    model = tiny_model()
    state = {**torch_state(), "fc.num_batches_tracked": np.array(5)}  # optional: accepted, unused
    assert assign_state_dict(model, state, key_map_of(model)) is model
    np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), state["fc.weight"].T)
    np.testing.assert_array_equal(model.get_layer("out").kernel.numpy(), state["out.weight"].T)
    np.testing.assert_array_equal(model.get_layer("out").bias.numpy(), state["out.bias"])
    x = np.ones((1, 3), np.float32)
    expected = ((x @ state["fc.weight"].T + state["fc.bias"]) @ state["out.weight"].T) + state["out.bias"]
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-6)


def test_wrong_shape_names_key_and_both_shapes_and_loads_nothing():
    model = tiny_model()
    before = snapshot(model)
    # fc's keys fit and come first: a loader that assigned as it went would change fc.
    state = {**torch_state(), "out.weight": np.zeros((4, 3), np.float32)}
    del state["out.bias"]  # also missing, but the shape is reported first
    with pytest.raises(StateDictMismatchError) as info:
        assign_state_dict(model, state, key_map_of(model), "g.pth", what="generator",
                          target="the config (ngf=8)", advice="use the settings it was trained with")
    assert str(info.value) == (
        "g.pth: the generator checkpoint does not fit the config (ngf=8): 'out.weight' has shape (4, 3) "
        "in the checkpoint, but the model expects (4, 2). In all: 1 key(s) differ in shape, 1 are missing "
        "from the checkpoint, 0 are not used by the model. Nothing was loaded; use the settings it was "
        "trained with."
    )
    assert_untouched(model, before)


def test_missing_key_is_named_and_nothing_loads():
    model = tiny_model()
    before = snapshot(model)
    state = torch_state()
    del state["out.bias"]
    with pytest.raises(StateDictMismatchError, match=(
        r"^state dict: the network checkpoint does not fit the model: the model needs 'out\.bias', "
        r"which the checkpoint lacks\. In all: 0 key\(s\) differ in shape, 1 are missing .*Nothing was loaded\.$"
    )):
        assign_state_dict(model, state, key_map_of(model))
    assert_untouched(model, before)


def test_unused_key_is_named_and_nothing_loads():
    model = tiny_model()
    before = snapshot(model)
    state = {**torch_state(), "fc.num_batches_tracked": np.array(5), "extra.weight": np.zeros((3, 3))}
    with pytest.raises(StateDictMismatchError, match=(
        r"the checkpoint's 'extra\.weight' \(shape \(3, 3\)\) has no place in the model\. "
        r"In all: 0 key\(s\) differ in shape, 0 are missing from the checkpoint, 1 are not used"
    )):
        assign_state_dict(model, state, key_map_of(model))
    assert_untouched(model, before)


def test_a_key_map_that_misses_a_variable_or_repeats_a_key_is_a_bug():
    model = tiny_model()
    fc_only = dense_key_map("fc", model.get_layer("fc"))
    with pytest.raises(RuntimeError, match=r"maps no key to \['sequential.*/out/kernel', '.*out/bias'\]"):
        assign_state_dict(model, torch_state(), fc_only)
    with pytest.raises(RuntimeError, match="maps a key twice"):
        assign_state_dict(model, torch_state(), key_map_of(model) + fc_only)


def test_stacked_variable_is_filled_slice_by_slice_and_must_be_covered():
    # One variable standing in for several PyTorch modules (SEAN's fc_mu<j> in ACE's kernel).
    model = keras.Sequential([keras.Input((1,), dtype="int32"), keras.layers.Embedding(3, 2, name="table")])
    table = model.get_layer("table").embeddings

    def rows(indices, keys=None):
        keys = keys or [f"row{j}.weight" for j in indices]
        return KeyMap(tuple(Entry(k, table, (2,), index=j) for k, j in zip(keys, indices)))

    state = {f"row{j}.weight": np.full(2, j + 1.0, np.float32) for j in range(3)}
    assign_state_dict(model, state, rows([2, 0, 1]))
    np.testing.assert_array_equal(table.numpy(), [[1, 1], [2, 2], [3, 3]])
    with pytest.raises(RuntimeError, match=r"maps no key to \['.*table/embeddings\[1\]'\]"):
        assign_state_dict(model, state, rows([0, 2]))
    with pytest.raises(RuntimeError, match=r"maps a key to .*table/embeddings\[3\], past its end"):
        assign_state_dict(model, {**state, "row3.weight": state["row0.weight"]}, rows([0, 1, 2, 3]))
    with pytest.raises(RuntimeError, match=r"maps two keys to .*table/embeddings\[0\]"):
        assign_state_dict(model, state, rows([0, 1, 2, 0], keys=["row0.weight", "row1.weight", "row2.weight", "x"]))
    before = snapshot(model)
    with pytest.raises(StateDictMismatchError, match=r"'row1\.weight' has shape \(3,\)"):
        assign_state_dict(model, {**state, "row1.weight": np.zeros(3, np.float32)}, rows([0, 1, 2]))
    assert_untouched(model, before)
