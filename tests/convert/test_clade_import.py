"""Imported tzt101/CLADE generators compute what the PyTorch ones compute."""

import numpy as np
import pytest
import torch
import torch_reference as tr

from spade_tf import get_preset
from spade_tf.convert import StateDictMismatchError, import_checkpoint, import_generator

ATOL = 1e-4

CASES = {
    "ade20k": ("ade20k", dict()),  # don't care, no instance map
    "coco_edges": ("coco", dict(num_upsampling_layers="more")),  # edge conv appended, convs one wider
    "ade20k_icpe": ("ade20k", dict(use_positional_encoding=True)),  # the `_dist` models
}


def clade_config(case):
    preset, overrides = CASES[case]
    return get_preset(preset, ngf=8, crop_size=64, load_size=64, norm_mode="clade", **overrides)


def reference(config, seed=0):
    """A warmed-up PyTorch CLADE generator (random class tables and ICPE convs), its segmap and maps."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    g = tr.SPADEGenerator(config)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if "class_specified_affine.bias" in name:
                p.normal_(0, 0.3)  # the official init is zero: make the lookup show
    h, w = config.image_size

    def dist(batch):
        return torch.from_numpy(rng.uniform(-1, 1, (batch, 2, h, w)).astype(np.float32)) \
            if config.use_positional_encoding else None

    tr.warm_up(g, tr.to_nchw(tr.segmap_for(config, rng, batch=4)), None, dist(4))
    return g, tr.segmap_for(config, rng), dist(2)


@pytest.mark.parametrize("case", list(CASES))
def test_clade_generator_matches_pytorch(case):
    config = clade_config(case)
    g, seg, dist = reference(config)
    with torch.no_grad():
        expected = tr.to_nhwc(g(tr.to_nchw(seg), None, dist))
    assert 0.05 < np.abs(expected).mean() < 0.7
    state = tr.state_dict_numpy(g)
    assert any(".class_specified_affine.weight" in k for k in state)
    model = import_generator(state, config)
    inputs = {"segmap": seg}
    if dist is not None:
        inputs["positional"] = tr.to_nhwc(dist)
    got = np.asarray(model(inputs, training=False))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("state_case, config_overrides, message", [
    ("ade20k", dict(norm_mode="spade"), "CLADE's.*norm_mode='spade'.*--set=norm_mode=clade"),
    ("ade20k_icpe", dict(), "has CLADE-ICPE.*--set=use_positional_encoding=true"),
    ("ade20k", dict(use_positional_encoding=True), "has no CLADE-ICPE.*--set=use_positional_encoding=false"),
])
def test_wrong_norm_mode_is_named_with_the_setting_that_fits(state_case, config_overrides, message):
    state = tr.state_dict_numpy(tr.SPADEGenerator(clade_config(state_case)))
    config = clade_config("ade20k").replace(**config_overrides)
    with pytest.raises(StateDictMismatchError, match=message):
        import_generator(state, config, "best_net_G.pth")


def test_spade_checkpoint_for_a_clade_config_is_named():
    spade = get_preset("ade20k", ngf=8, crop_size=64, load_size=64)
    state = tr.state_dict_numpy(tr.SPADEGenerator(spade))
    with pytest.raises(StateDictMismatchError, match="SPADE's.*--set=norm_mode=spade"):
        import_generator(state, clade_config("ade20k"))


def test_released_layout_best_net_g(tmp_path):
    # tzt101/CLADE's released models: checkpoints/<name>/best_net_G.pth, no latest_net_G.pth.
    config = clade_config("ade20k")
    g, seg, _ = reference(config)
    folder = tmp_path / "ade20k"
    folder.mkdir()
    torch.save(g.state_dict(), folder / "best_net_G.pth")
    networks = import_checkpoint(folder, config)
    assert networks.files == {"G": str(folder / "best_net_G.pth")}
    with torch.no_grad():
        expected = tr.to_nhwc(g(tr.to_nchw(seg)))
    np.testing.assert_allclose(np.asarray(networks.generator({"segmap": seg}, training=False)), expected,
                               atol=ATOL, rtol=0)
