"""Imported ZPdesu/SEAN netG (generator + Zencoder) computes what the PyTorch one computes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import sean_reference as sr
import tensorflow as tf
import torch
import torch_reference as tr

from spade_tf import get_preset
from spade_tf.convert import (
    StateDictMismatchError,
    import_checkpoint,
    import_generator,
    import_style_encoder,
    write_training_checkpoint,
)
from spade_tf.layers import set_noise
from spade_tf.training import SPADEGAN, TrainOptions, train
from spade_tf.workdir import checkpoint_objects

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATOL = 1e-4
# Official CelebAMask-HQ labels (19, no instance map, no don't care), small networks.
SMALL = dict(ngf=8, crop_size=64, load_size=64, label_nc=19, use_instance_map=False, norm_mode="sean",
             style_dim=32, spade_hidden=16)
# The trainer tests' tiny model; 8 labels: 11 of the 19 official fc_mu layers are never called.
TINY = dict(ngf=4, ndf=4, crop_size=32, load_size=32, spade_hidden=8, batch_size=2, num_D=1, n_layers_D=2,
            norm_mode="sean", style_dim=8)


def save_pth(module, path):
    torch.save(module.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(config, reference netG, segmap, image, its state dict, ImportedNetworks from latest_net_G.pth)."""
    config = get_preset("custom", **SMALL)
    g, seg, image = sr.reference_sean(config, np.random.default_rng(0))
    folder = tmp_path_factory.mktemp("CelebA-HQ_pretrained")
    save_pth(g, folder / "latest_net_G.pth")
    return config, g, seg, image, tr.state_dict_numpy(g), import_checkpoint(folder, config)


def torch_outputs(g, seg, image):
    with torch.no_grad():
        codes = g.Zencoder(tr.to_nchw(image), tr.to_nchw(seg)).numpy()
        return codes, tr.to_nhwc(g(tr.to_nchw(seg), tr.to_nchw(image)))


def keras_outputs(networks, seg, image):
    codes = np.asarray(networks.style_encoder({"image": image, "segmap": seg}, training=False))
    return codes, np.asarray(networks.generator({"segmap": seg, "style_codes": codes}, training=False))


def test_generator_and_zencoder_match_pytorch(small):
    config, g, seg, image, _, networks = small
    assert networks.style_encoder is not None and networks.discriminator is None
    assert set_noise(networks.generator, False) == 18  # 3 ACE in up_0..up_3, 2 in the others
    want_codes, want = torch_outputs(g, seg, image)
    assert want.shape == (2, 64, 64, 3) and 0.05 < np.abs(want).mean() < 0.7
    # The style path matters: another image (other codes) changes the output.
    _, other = torch_outputs(g, seg, sr.region_image(seg, np.random.default_rng(1)))
    assert np.abs(other - want).mean() > 0.1 * np.abs(want).mean()
    codes, got = keras_outputs(networks, seg, image)
    np.testing.assert_allclose(codes, want_codes, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_keys_land_in_the_right_variables(small):
    _, _, _, _, state, networks = small
    up_1 = networks.generator.get_layer("up_1")
    ace = up_1.norm_s  # official up_1.ace_s
    for j in (0, 7, 18):
        np.testing.assert_array_equal(ace.fc_mu_kernel.numpy()[j], state[f"up_1.ace_s.fc_mu{j}.weight"].T)
        np.testing.assert_array_equal(ace.fc_mu_bias.numpy()[j], state[f"up_1.ace_s.fc_mu{j}.bias"])
    for name in ("noise_var", "blending_gamma", "blending_beta"):
        np.testing.assert_array_equal(getattr(ace, name).numpy(), state[f"up_1.ace_s.{name}"])
    assert np.abs(ace.noise_var.numpy()).min() > 0  # imported, though off in the comparison
    np.testing.assert_array_equal(ace.conv_gamma.kernel.numpy(),
                                  state["up_1.ace_s.conv_gamma.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(ace.mlp_beta.bias.numpy(), state["up_1.ace_s.Spade.mlp_beta.bias"])
    np.testing.assert_array_equal(ace.param_free_norm.moving_variance.numpy(),
                                  state["up_1.ace_s.param_free_norm.running_var"])
    np.testing.assert_array_equal(up_1.conv_s.v.numpy(), state["up_1.conv_s.weight_v"])
    # ConvTranspose2d [in, out, kh, kw] -> Conv2DTranspose [kh, kw, out, in].
    np.testing.assert_array_equal(networks.style_encoder.get_layer("upsample").kernel.numpy(),
                                  state["Zencoder.model.10.weight"].transpose(2, 3, 1, 0))
    # The last block has no style layers (official use_rgb=False).
    assert not any(k.startswith("up_3.ace_0.fc_mu") for k in state)


@pytest.mark.parametrize("overrides, message", [
    (dict(norm_mode="spade"), r"SEAN's but the config has norm_mode='spade'; pass --set=norm_mode=sean"),
    (dict(norm_mode="clade"), r"SEAN's but the config has norm_mode='clade'; pass --set=norm_mode=sean"),
    (dict(label_nc=13), r"its label maps have 19 channels \(fc\.weight; each ACE uses one of its per-class "
                        r"style layers fc_mu0\.\.fc_mu18 per channel\), but the config's have 13 \(label_nc=13, "
                        r".*pass --set=label_nc=19 \(official SEAN's CelebAMask-HQ model\)"),
    (dict(use_instance_map=True), r"config's have 20 .*pass --set=label_nc=19 --set=use_instance_map=false"),
    (dict(param_free_norm_G="instance"), r"ACE layers normalize with batch norm.*--set=param_free_norm_G=syncbatch"),
])
def test_contradicted_settings_are_named_with_the_set_that_fits(small, overrides, message):
    config, _, _, _, state, _ = small
    for importer in (import_generator, import_style_encoder):
        with pytest.raises(StateDictMismatchError, match=message) as info:
            importer(state, config.replace(**overrides), "latest_net_G.pth")
        assert str(info.value).startswith("latest_net_G.pth: ") and "Nothing was loaded" in str(info.value)


@pytest.mark.parametrize("preset, norm_mode", [("custom", "spade"), ("ade20k", "clade")])
def test_spade_or_clade_checkpoint_for_a_sean_config_is_named(preset, norm_mode):
    other = get_preset(preset, ngf=8, crop_size=64, load_size=64, spade_hidden=16, norm_mode=norm_mode)
    state = tr.state_dict_numpy(tr.SPADEGenerator(other))
    with pytest.raises(StateDictMismatchError, match=(
            rf"{norm_mode.upper()}'s but the config has norm_mode='sean'; pass --set=norm_mode={norm_mode}")):
        import_generator(state, other.replace(norm_mode="sean", use_positional_encoding=False))


def test_missing_keys_are_named(small):
    config, _, _, _, state, _ = small
    missing = {k: v for k, v in state.items() if k != "up_1.ace_0.fc_mu3.weight"}
    with pytest.raises(StateDictMismatchError, match=r"the model needs 'up_1\.ace_0\.fc_mu3\.weight', which the "
                                                     r"checkpoint lacks\. In all: 0 key\(s\) differ in shape, 1 are "
                                                     r"missing"):
        import_generator(missing, config)
    missing = {k: v for k, v in state.items() if k != "Zencoder.model.10.bias"}
    import_generator(missing, config)  # the generator does not need the Zencoder...
    with pytest.raises(StateDictMismatchError, match=r"the style encoder checkpoint does not fit the config "
                                                     r"\(preset='custom', norm_mode='sean', style_dim=32\): the "
                                                     r"model needs 'Zencoder\.model\.10\.bias'"):
        import_style_encoder(missing, config)  # ... the style encoder does
    wrong = {**state, "Zencoder.model.14.weight": np.zeros((512, 256, 3, 3), np.float32),
             "Zencoder.model.14.bias": np.zeros(512, np.float32)}
    with pytest.raises(StateDictMismatchError, match=r"'Zencoder\.model\.14\.weight' has shape \(512, 256, 3, 3\) "
                                                     r"in the checkpoint, but the model expects \(32, 256, 3, 3\)"):
        import_style_encoder(wrong, config)


def restored_gan(config, path):
    """SPADEGAN(config) with the trainer's checkpoint objects read from ``path``, as train() resumes."""
    model = SPADEGAN(config)
    model.compile()
    model.build_optimizers()
    tf.train.Checkpoint(**checkpoint_objects(model)).read(path).expect_partial().assert_existing_objects_matched()
    return model


def test_import_then_training_checkpoint_holds_the_style_encoder(tmp_path):
    config = get_preset("synthetic", **TINY)
    assert config.semantic_nc == 8
    g, seg, image = sr.reference_sean(config, np.random.default_rng(1))
    assert "up_0.ace_0.fc_mu18.weight" in g.state_dict()  # official: 19 whatever the labels
    torch.manual_seed(1)
    d = tr.MultiscaleDiscriminator(config)
    ckpt = tmp_path / "sean"
    ckpt.mkdir()
    save_pth(g, ckpt / "latest_net_G.pth")
    save_pth(d, ckpt / "latest_net_D.pth")
    networks = import_checkpoint(ckpt, config)
    assert networks.discriminator is not None and networks.style_encoder is not None
    set_noise(networks.generator, False)
    want_codes, want = torch_outputs(g, seg, image)
    codes, got = keras_outputs(networks, seg, image)
    np.testing.assert_allclose(codes, want_codes, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)

    path = write_training_checkpoint(config, tmp_path / "run", networks.generator, networks.discriminator,
                                     style_encoder=networks.style_encoder)
    model = restored_gan(config, path)
    for net, imported in ((model.generator, networks.generator), (model.style_encoder, networks.style_encoder),
                          (model.discriminator, networks.discriminator)):
        assert len(net.variables) == len(imported.variables)
        for a, b in zip(net.variables, imported.variables):
            if "seed_generator_state" not in a.path:  # the noise's seed, not PyTorch's
                np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.slow
def test_export_cli_import_workdir_resumes_training(tmp_path):
    # About a minute: a subprocess, and tracing a SEAN training step.
    config = get_preset("synthetic", **TINY)
    g, _, _ = sr.reference_sean(config, np.random.default_rng(2))
    ckpt = tmp_path / "CelebA-HQ_pretrained"
    ckpt.mkdir()
    save_pth(g, ckpt / "latest_net_G.pth")
    workdir = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in TINY.items() if k not in ("crop_size", "ngf")]
    result = subprocess.run(
        [sys.executable, "export.py", f"--torch_checkpoint={ckpt}", "--preset=synthetic", "--crop_size=32",
         "--ngf=4", *sets, f"--import_workdir={workdir}", f"--export_dir={tmp_path / 'export'}", "--tflite=none"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert f"wrote {workdir}/checkpoints/ckpt-0" in result.stdout, result.stdout + result.stderr[-3000:]
    assert "No style encoder" not in result.stderr
    model = restored_gan(config, str(workdir / "checkpoints" / "ckpt-0"))
    np.testing.assert_array_equal(model.style_encoder.get_layer("upsample").kernel.numpy(),
                                  g.Zencoder.model[10].weight.detach().numpy().transpose(2, 3, 1, 0))
    summary = train(config, TrainOptions(workdir=str(workdir), max_steps=1, checkpoint_every=1, log_every=1,
                                         sample_every=1, num_synthetic=4))
    assert summary["resumed"] and summary["step"] == 1
    assert all(np.isfinite(v) for v in summary["logs"].values())
