"""NVlabs checkpoint files, error messages, and training on from an import."""

import logging
import os
import sys

import numpy as np
import pytest
import torch
import torch_reference as tr

from spade_tf import get_preset
from spade_tf.convert import (
    StateDictMismatchError,
    find_checkpoint_files,
    import_checkpoint,
    import_generator,
    load_state_dict,
    write_training_checkpoint,
)
from spade_tf.training import SPADEGAN, TrainOptions, train
from spade_tf.workdir import ConfigMismatchError, checkpoint_objects

SMALL = dict(ngf=8, crop_size=64, load_size=64, spade_hidden=16)
# The trainer tests' tiny model: trains a step in seconds.
TINY = dict(ngf=4, ndf=4, crop_size=32, load_size=32, spade_hidden=8, batch_size=2, num_D=1, n_layers_D=2)


@pytest.fixture(scope="module")
def custom_state():
    """Official-layout state dict of a small 'custom' generator (13 labels)."""
    torch.manual_seed(0)
    return tr.state_dict_numpy(tr.SPADEGenerator(get_preset("custom", **SMALL)))


def save_pth(state, path):
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, path)
    return str(path)


# ------------------------------------------------------------------ errors


def test_wrong_ngf_names_the_first_key_and_both_shapes(custom_state):
    with pytest.raises(StateDictMismatchError, match=(
        r"'fc\.weight' has shape \(128, 13, 3, 3\) in the checkpoint, but the model expects "
        r"\(256, 13, 3, 3\)\..*Nothing was loaded"
    )) as info:
        import_generator(custom_state, get_preset("custom", **{**SMALL, "ngf": 16}), "latest_net_G.pth")
    assert str(info.value).startswith("latest_net_G.pth: the generator checkpoint does not fit")
    assert "ngf=16" in str(info.value)


def test_checkpoint_of_another_preset_is_refused():
    torch.manual_seed(0)
    state = tr.state_dict_numpy(tr.SPADEGenerator(get_preset("ade20k", **SMALL)))
    with pytest.raises(StateDictMismatchError, match=(
        r"preset='coco'.*'fc\.weight' has shape \(128, 151, 3, 3\) in the checkpoint, "
        r"but the model expects \(128, 184, 3, 3\)"
    )):
        import_generator(state, get_preset("coco", **SMALL))


def test_unused_and_missing_keys_are_named(custom_state):
    cfg = get_preset("custom", **SMALL)
    extra = {**custom_state, "up_3.extra.weight": np.zeros((3, 3), np.float32)}
    with pytest.raises(StateDictMismatchError, match=(
        r"the checkpoint's 'up_3\.extra\.weight' \(shape \(3, 3\)\) has no place in the model.*"
        r"0 key\(s\) differ in shape, 0 are missing from the checkpoint, 1 are not used"
    )):
        import_generator(extra, cfg)
    missing = {k: v for k, v in custom_state.items() if k != "up_1.norm_0.mlp_gamma.bias"}
    with pytest.raises(StateDictMismatchError, match=r"the model needs 'up_1\.norm_0\.mlp_gamma\.bias'"):
        import_generator(missing, cfg)
    # A batch-norm checkpoint into an instance-norm config: its statistics would be dropped.
    with pytest.raises(StateDictMismatchError, match=r"'head_0\.norm_0\.param_free_norm\.running_mean'.* no place"):
        import_generator(custom_state, cfg.replace(param_free_norm_G="instance"))
    # num_batches_tracked is not needed (checkpoints of old PyTorch lack it).
    import_generator({k: v for k, v in custom_state.items() if "num_batches" not in k}, cfg)


# ------------------------------------------------------------------- files


def test_missing_torch_gives_a_clear_error(tmp_path, monkeypatch, custom_state):
    path = save_pth(custom_state, tmp_path / "latest_net_G.pth")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r'needs PyTorch.*pip install "spade-tf\[torch\]"'):
        load_state_dict(path)


def test_load_state_dict(tmp_path, custom_state):
    save_pth(custom_state, tmp_path / "latest_net_G.pth")
    state = load_state_dict(tmp_path)  # a directory: its latest_net_G.pth
    assert list(state) == list(custom_state)
    assert all(np.array_equal(state[k], custom_state[k]) for k in state)
    # DataParallel prefix, half precision.
    path = tmp_path / "half.pth"
    torch.save({"module.a.weight": torch.ones(2, dtype=torch.float16),
                "module.a.bias": torch.zeros(2, dtype=torch.bfloat16)}, path)
    state = load_state_dict(path)
    assert list(state) == ["a.weight", "a.bias"] and state["a.bias"].dtype == np.float32
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth holds a list, not a state dict"):
        load_state_dict(tmp_path / "list.pth")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module, not a state dict
    with pytest.raises(ValueError, match=r"Cannot read PyTorch checkpoint .*module\.pth"):
        load_state_dict(tmp_path / "module.pth")
    with pytest.raises(FileNotFoundError, match="nothing.pth does not exist"):
        load_state_dict(tmp_path / "nothing.pth")


def test_find_checkpoint_files(tmp_path):
    for name in ("latest_net_G.pth", "latest_net_D.pth", "10_net_G.pth", "10_net_E.pth"):
        (tmp_path / name).write_bytes(b"")
    found = find_checkpoint_files(tmp_path)
    assert found == {"G": str(tmp_path / "latest_net_G.pth"), "D": str(tmp_path / "latest_net_D.pth")}
    assert find_checkpoint_files(tmp_path / "10_net_G.pth") == {
        "G": str(tmp_path / "10_net_G.pth"), "E": str(tmp_path / "10_net_E.pth")}
    os.remove(tmp_path / "latest_net_G.pth")
    with pytest.raises(FileNotFoundError, match=r"no latest_net_G\.pth \(nor best_net_G\.pth\)\. It holds 10_net_G"):
        find_checkpoint_files(tmp_path)
    (tmp_path / "best_net_G.pth").write_bytes(b"")  # tzt101/CLADE's released models
    assert find_checkpoint_files(tmp_path) == {"G": str(tmp_path / "best_net_G.pth")}


# ----------------------------------------------------------- training on


def test_import_then_training_resumes_from_step_0(tmp_path, rng, capsys):
    cfg = get_preset("synthetic", **TINY)
    g, seg, _ = tr.reference_generator(cfg, rng)
    torch.manual_seed(1)
    d = tr.MultiscaleDiscriminator(cfg)
    ckpt = tmp_path / "nvlabs"
    ckpt.mkdir()
    save_pth(tr.state_dict_numpy(g), ckpt / "latest_net_G.pth")
    save_pth(tr.state_dict_numpy(d), ckpt / "latest_net_D.pth")
    save_pth({}, ckpt / "latest_net_E.pth")
    with pytest.raises(ValueError, match=r"latest_net_E\.pth exists: .*use_vae=False"):
        import_checkpoint(ckpt, cfg)
    os.remove(ckpt / "latest_net_E.pth")

    networks = import_checkpoint(ckpt, cfg)
    assert networks.discriminator is not None and networks.encoder is None
    workdir = tmp_path / "run"
    path = write_training_checkpoint(cfg, workdir, networks.generator, networks.discriminator)
    assert path == str(workdir / "checkpoints" / "ckpt-0")
    assert (workdir / "config.json").exists()

    # What the trainer restores is the import.
    model = SPADEGAN(cfg)
    model.compile()
    model.build_optimizers()
    import tensorflow as tf

    tf.train.Checkpoint(**checkpoint_objects(model)).read(path).expect_partial().assert_existing_objects_matched()
    assert int(model.step.numpy()) == 0
    for net, imported in ((model.generator, networks.generator), (model.discriminator, networks.discriminator)):
        for a, b in zip(net.variables, imported.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_allclose(np.asarray(model.generator({"segmap": seg})), tr.to_nhwc(g(tr.to_nchw(seg))),
                               atol=1e-4)

    summary = train(cfg, TrainOptions(workdir=str(workdir), max_steps=2, checkpoint_every=2, log_every=1,
                                      sample_every=2, num_synthetic=8, verbose=True))
    assert "resumed from step 0" in capsys.readouterr().out
    assert summary["resumed"] and summary["step"] == 2
    assert all(np.isfinite(v) for v in summary["logs"].values())

    with pytest.raises(FileExistsError, match="already has a training checkpoint"):
        write_training_checkpoint(cfg, workdir, networks.generator)


def test_training_checkpoint_without_discriminator_or_encoder(tmp_path, rng, caplog):
    cfg = get_preset("synthetic", **TINY, use_vae=True)
    g, _, _ = tr.reference_generator(cfg, rng)
    generator = import_generator(tr.state_dict_numpy(g), cfg)
    workdir = tmp_path / "run"
    workdir.mkdir()
    get_preset("synthetic", **TINY).to_json(workdir / "config.json")
    with pytest.raises(ConfigMismatchError, match="use_vae: False in .*config.json, True now"):
        write_training_checkpoint(cfg, workdir, generator)
    os.remove(workdir / "config.json")
    with caplog.at_level(logging.WARNING, logger="spade_tf.workdir"):
        path = write_training_checkpoint(cfg, workdir, generator)
    assert os.path.exists(path + ".index")
    assert "discriminator in" in caplog.text and "freshly initialized" in caplog.text
    assert "VAE encoder in" in caplog.text
