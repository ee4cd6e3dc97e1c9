"""The networks use keras.ops only: they must run, with the same numbers, on JAX."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import one_hot_segmap, to_numpy

from spade_tf import build_discriminator, build_generator, build_sean_network, get_preset
from spade_tf.layers import ACE, set_noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_no_tensorflow_import_in_networks():
    # layers/, models/ and losses.py must stay backend-agnostic; the one
    # allowed exception is synchronized batch norm's cross-replica moments.
    allowed = {os.path.join("spade_tf", "layers", "normalization.py")}
    offenders = []
    for sub in ("layers", "models"):
        folder = os.path.join(ROOT, "spade_tf", sub)
        for name in os.listdir(folder):
            path = os.path.join("spade_tf", sub, name)
            if name.endswith(".py") and path not in allowed:
                text = open(os.path.join(ROOT, path)).read()
                offenders += [path] if ("import tensorflow" in text or "from tensorflow" in text) else []
    assert "import tensorflow" not in open(os.path.join(ROOT, "spade_tf", "losses.py")).read()
    assert offenders == []


# One JAX process runs every norm mode's saved networks: its start and the kernels
# its first calls compile are paid once. What makes it slow is XLA compiling:
# each initializer's random draw when a network is loaded (their values are then
# overwritten by the saved ones) and each op of an eager call. Hence a jitted
# forward pass (one compile per network) and LLVM's -O0 (the same HLO, less
# code optimization): about 45 s for SPADE and CLADE instead of 140 s.
JAX_SCRIPT = textwrap.dedent("""
    import json, sys, jax, numpy as np, keras
    import spade_tf.models  # registers the custom layers (a bare `import spade_tf` loads nothing)
    root = sys.argv[1]
    for case in json.load(open(f"{root}/cases.json")):
        inputs = dict(np.load(f"{root}/{case}_in.npz"))
        network = keras.models.load_model(f"{root}/{case}_g.keras")
        outputs = {"image": np.asarray(jax.jit(lambda x: network(x))(inputs))}
        if case != "sean":
            d = keras.models.load_model(f"{root}/{case}_d.keras")
            pair = {"segmap": inputs["segmap"], "image": outputs["image"]}
            outputs["logits"] = np.asarray(jax.jit(lambda x: d(x)[1][-1])(pair))
        np.savez(f"{root}/{case}_out.npz", **outputs)
    print(json.dumps({"backend": keras.backend.backend()}))
""")
MODES = ["spade", "clade", "sean"]


def _tensorflow_case(root, mode, rng):
    """Saves mode's networks and inputs under root; returns TensorFlow's outputs."""
    if mode == "sean":
        cfg = get_preset("custom", label_nc=4, crop_size=32, load_size=32, ngf=4, spade_hidden=8, style_dim=8,
                         norm_mode="sean")
        generator = build_sean_network(cfg)
        inputs = {"segmap": one_hot_segmap(rng, 2, 32, 32, 4),
                  "image": rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")}
    else:
        cfg = get_preset("coco", ngf=4, ndf=4, crop_size=64, spade_hidden=8, norm_mode=mode)
        generator = build_generator(cfg)
        inputs = {"segmap": one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)}
    generator(inputs, training=True)  # non-trivial moving statistics (and SEAN's u, v)
    if mode == "sean":
        for layer in generator._flatten_layers():  # a noise that would show: off, so outputs compare
            if isinstance(layer, ACE):
                layer.noise_var.assign(np.full(layer.channels, 0.1, "float32"))
        set_noise(generator, False)
    expected = {"image": to_numpy(generator(inputs))}
    generator.save(root / f"{mode}_g.keras")
    if mode != "sean":
        discriminator = build_discriminator(cfg)
        expected["logits"] = to_numpy(discriminator({"segmap": inputs["segmap"], "image": expected["image"]})[1][-1])
        discriminator.save(root / f"{mode}_d.keras")
    np.savez(root / f"{mode}_in.npz", **inputs)
    return expected


@pytest.fixture(scope="module")
def on_jax(tmp_path_factory):
    root = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(0)
    expected = {mode: _tensorflow_case(root, mode, rng) for mode in MODES}
    (root / "cases.json").write_text(json.dumps(MODES))
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags}
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(root)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["backend"] == "jax"
    return {mode: (expected[mode], dict(np.load(root / f"{mode}_out.npz"))) for mode in MODES}


@pytest.mark.parametrize("norm_mode", MODES)
def test_saved_networks_give_same_outputs_on_jax(on_jax, norm_mode):
    expected, out = on_jax[norm_mode]
    assert set(out) == set(expected) == ({"image"} if norm_mode == "sean" else {"image", "logits"})
    np.testing.assert_allclose(out["image"], expected["image"], atol=1e-4)
    if "logits" in expected:
        np.testing.assert_allclose(out["logits"], expected["logits"], atol=1e-4, rtol=1e-4)
