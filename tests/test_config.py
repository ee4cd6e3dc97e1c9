import json

import pytest

from spade_tf import PRESETS, SPADEConfig, get_preset

# semantic_nc = label_nc + don't-care channel + instance-edge channel
# (official ``SPADEGenerator`` input); image (height, width).
PRESET_SIZES = {
    "ade20k": (151, (256, 256)),  # 150 + don't care
    "coco": (184, (256, 256)),  # 182 + don't care + edges
    "cityscapes": (36, (256, 512)),  # 35 + edges
    "custom": (13, (256, 256)),
    "synthetic": (8, (64, 64)),
}


def test_every_preset_has_known_sizes():
    assert set(PRESET_SIZES) == set(PRESETS)  # a new preset needs its sizes here


@pytest.mark.parametrize("name", sorted(PRESET_SIZES))
def test_preset_sizes_and_json_round_trip(name, tmp_path):
    semantic_nc, image_size = PRESET_SIZES[name]
    cfg = get_preset(name)
    assert cfg.preset == name
    assert cfg.semantic_nc == semantic_nc
    assert cfg.image_size == image_size
    path = tmp_path / "config.json"
    cfg.to_json(path)
    loaded = SPADEConfig.from_json(path)
    assert loaded == cfg
    assert (loaded.semantic_nc, loaded.image_size) == (semantic_nc, image_size)
    assert loaded.to_json() == cfg.to_json()


def test_cityscapes_latent_size_and_upsampling():
    cfg = get_preset("cityscapes")
    assert cfg.num_upsampling_layers == "more"
    assert cfg.latent_size == (4, 8)  # sw = 512 // 64, sh = round(8 / 2)
    assert cfg.batch_size == 16


def test_official_training_defaults():
    cfg = get_preset("coco")
    assert (cfg.ngf, cfg.ndf, cfg.num_D, cfg.n_layers_D, cfg.z_dim) == (64, 64, 2, 4, 256)
    assert (cfg.lambda_feat, cfg.lambda_vgg, cfg.lambda_kld) == (10.0, 10.0, 0.05)
    assert (cfg.lr, cfg.adam_betas, cfg.use_ttur) == (2e-4, (0.0, 0.9), True)
    assert cfg.learning_rates == (1e-4, 4e-4)
    no_ttur = get_preset("coco", use_ttur=False)
    assert no_ttur.adam_betas == (0.5, 0.999) and no_ttur.learning_rates == (2e-4, 2e-4)
    assert get_preset("coco", use_ttur=False, beta1=0.1).adam_betas == (0.1, 0.999)
    assert (cfg.gan_mode, cfg.init_type, cfg.init_variance) == ("hinge", "xavier", 0.02)
    assert cfg.param_free_norm_G == "syncbatch"


def test_overrides_are_applied_and_validated():
    cfg = get_preset("coco", ngf=16, use_vae=True, crop_size=128)
    assert (cfg.ngf, cfg.use_vae, cfg.crop_size) == (16, True, 128)
    assert cfg.image_size == (128, 128)
    assert cfg.latent_size == (4, 4)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown preset 'imagenet'.*ade20k"):
        get_preset("imagenet")


def test_unknown_field_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"Unknown config field 'ngff'.*'ngf'"):
        get_preset("coco", ngff=16)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_upsampling_layers="many"), r"num_upsampling_layers='many'.*normal"),
        (dict(crop_size=100), r"crop_size=100.*multiple of 32"),
        (dict(ngf=0), r"ngf=0"),
        (dict(ngf=1.5), r"ngf=1.5"),
        (dict(use_vae="yes"), r"use_vae='yes'"),
        (dict(gan_mode="wgan"), r"gan_mode='wgan'"),
        (dict(spade_kernel_size=4), r"spade_kernel_size=4"),
        (dict(param_free_norm_G="layer"), r"param_free_norm_G='layer'"),
        (dict(norm_mode="sean2"), r"norm_mode='sean2'.*\['spade', 'clade', 'sean'\]"),
        (dict(norm_mode="sean", use_vae=True), r"use_vae=True is not valid with norm_mode='sean'"),
        (dict(norm_mode="sean", num_upsampling_layers="most"), r"'most' is not valid with norm_mode='sean'"),
        (dict(norm_mode="sean", style_dim=0), r"style_dim=0"),
        (dict(use_positional_encoding=True), r"use_positional_encoding=True.*norm_mode='clade'"),
        (dict(aspect_ratio=100.0), r"aspect_ratio=100.0"),
        (dict(label_nc=300), r"label_nc=300"),
        (dict(lambda_vgg=-1.0), r"lambda_vgg=-1.0"),
        (dict(beta2=1.5), r"beta2=1.5"),
        (dict(load_size=200), r"load_size=200.*load_size >= crop size"),
    ],
)
def test_bad_values_raise_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_preset("coco", **overrides)


def test_json_round_trip(tmp_path):
    cfg = get_preset("cityscapes", ngf=32, use_vae=True)
    path = tmp_path / "config.json"
    cfg.to_json(path)
    assert json.loads(path.read_text())["ngf"] == 32
    assert SPADEConfig.from_json(path) == cfg


def test_from_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        SPADEConfig.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        SPADEConfig.from_json(bad)


def test_parse_overrides_reads_json_or_strings_and_names_a_bad_item():
    from spade_tf.config import parse_overrides

    assert parse_overrides(["ngf=16", "gan_mode=ls", "use_vae=true", "x=[1, 2]"]) == {
        "ngf": 16, "gan_mode": "ls", "use_vae": True, "x": [1, 2]}
    with pytest.raises(ValueError, match="--set='ngf': expected key=value"):
        parse_overrides(["ngf"])


FLOAT_FIELDS = ("aspect_ratio", "init_variance", "lambda_feat", "lambda_vgg", "lambda_kld", "lr", "beta1", "beta2")


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "-Infinity", "true", "[1]", "1" + "0" * 400])
def test_float_fields_refuse_non_numbers_and_non_finite_values(name, text):
    from spade_tf.config import parse_overrides

    overrides = parse_overrides([f"{name}={text}"])
    with pytest.raises(ValueError, match=rf"^{name}=.* is not valid; expected a finite number"):
        get_preset("coco", **overrides)


def test_from_json_refuses_nan_and_strings_naming_the_field(tmp_path):
    import dataclasses

    from spade_tf.config import parse_overrides

    types = {f.name: f.type for f in dataclasses.fields(SPADEConfig)}
    assert sorted(n for n, t in types.items() if t.startswith("float")) == sorted(FLOAT_FIELDS)
    assert set(types.values()) == {"bool", "int", "str", "float", "float | None"}  # all checked
    path = tmp_path / "config.json"
    values = get_preset("coco").to_dict()
    path.write_text(json.dumps({**values, "lambda_feat": float("nan")}))  # json writes NaN
    with pytest.raises(ValueError, match=r"lambda_feat=nan is not valid"):
        SPADEConfig.from_json(path)
    path.write_text(json.dumps({**values, "lr": "2e-4"}))
    with pytest.raises(ValueError, match=r"lr='2e-4' is not valid; expected a finite number"):
        SPADEConfig.from_json(path)
    # Finite numbers (ints too) and None betas still pass.
    cfg = get_preset("coco", **parse_overrides(["lr=1", "lambda_feat=0", "beta1=null", "beta2=0.99"]))
    assert (cfg.lr, cfg.lambda_feat, cfg.beta1, cfg.adam_betas) == (1, 0, None, (0.0, 0.99))


@pytest.mark.parametrize(
    "item, message",
    [
        ("vgg_weights=12", r"vgg_weights=12 is not valid; expected a string"),
        ("gan_mode=null", r"gan_mode=None is not valid; expected a string"),
    ],
)
def test_string_fields_refuse_other_types(item, message):  # int and bool fields already did
    from spade_tf.config import parse_overrides

    with pytest.raises(ValueError, match=message):
        get_preset("coco", **parse_overrides([item]))


def test_sean_celebamask_hq_setting():
    # Official SEAN README: --dataset_mode custom --label_nc 19 --no_instance
    # --load_size 256 --crop_size 256 (defaults: ngf 64, 'normal', no VAE).
    cfg = get_preset("custom", label_nc=19, load_size=256, norm_mode="sean")
    assert (cfg.semantic_nc, cfg.image_size, cfg.latent_size) == (19, (256, 256), (8, 8))
    assert (cfg.style_dim, cfg.ngf, cfg.use_vae, cfg.param_free_norm_G) == (512, 64, False, "syncbatch")
    assert SPADEConfig.from_dict(cfg.to_dict()) == cfg
