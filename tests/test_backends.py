"""The networks use keras.ops only: they must run, with the same numbers, on JAX."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import one_hot_segmap, to_numpy

from spade_tf import build_discriminator, build_generator, get_preset

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


@pytest.mark.parametrize("norm_mode", ["spade", "clade"])
def test_saved_generator_and_discriminator_give_same_outputs_on_jax(tmp_path, rng, norm_mode):
    cfg = get_preset("coco", ngf=4, ndf=4, crop_size=64, spade_hidden=8, norm_mode=norm_mode)
    generator = build_generator(cfg)
    discriminator = build_discriminator(cfg)
    seg = one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)
    generator({"segmap": seg}, training=True)  # non-trivial moving statistics
    image = to_numpy(generator({"segmap": seg}))
    logits = to_numpy(discriminator({"segmap": seg, "image": image})[1][-1])
    generator.save(tmp_path / "g.keras")
    discriminator.save(tmp_path / "d.keras")
    np.savez(tmp_path / "io.npz", seg=seg)

    script = textwrap.dedent(f"""
        import json, numpy as np, keras
        import spade_tf.models  # registers the custom layers (a bare `import spade_tf` loads nothing)
        seg = np.load({str(tmp_path / 'io.npz')!r})["seg"]
        g = keras.models.load_model({str(tmp_path / 'g.keras')!r})
        d = keras.models.load_model({str(tmp_path / 'd.keras')!r})
        image = np.asarray(g({{"segmap": seg}}))
        logits = np.asarray(d({{"segmap": seg, "image": image}})[1][-1])
        np.savez({str(tmp_path / 'out.npz')!r}, image=image, logits=logits)
        print(json.dumps({{"backend": keras.backend.backend()}}))
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["backend"] == "jax"
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["image"], image, atol=1e-4)
    np.testing.assert_allclose(out["logits"], logits, atol=1e-4, rtol=1e-4)
