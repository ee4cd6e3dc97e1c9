"""What each TFLite file costs and keeps: size, CPU latency, PSNR against float32."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from spade_tf.export.tflite import make_interpreter
from spade_tf.export.variants import RECOMMENDED_MIN_PSNR_DB


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _runner(path: str, output: str = "image"):
    """``inputs -> output`` of a file's signature; inputs it does not take are left out
    (``positional`` goes only to the files that read CLADE-ICPE's maps)."""
    runner = make_interpreter(path).get_signature_runner()
    names = set(runner.get_input_details())
    return lambda inputs: runner(**{k: v for k, v in inputs.items() if k in names})[output]


def _median_ms(run, inputs, calls: int) -> float:
    run(inputs)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def measure_positional(path: str, inputs: list[dict], latency_calls: int = 5) -> dict:
    """Size and median latency of ``positional_encoding.tflite``, and its maps of each input
    (``"outputs"``: float32 [1, H, W, 2] each)."""
    run = _runner(path, "positional")
    return {
        "file": os.path.join("tflite", os.path.basename(path)),
        "size_bytes": os.path.getsize(path),
        "latency_ms": _median_ms(run, inputs[0], latency_calls),
        "outputs": [run(x) for x in inputs],
    }


def measure_variants(paths: dict[str, str], inputs: list[dict], reference: list[np.ndarray] | None = None,
                     latency_calls: int = 5) -> dict[str, dict]:
    """Size, median batch-1 latency and worst PSNR of each TFLite file.

    Args:
        paths: ``{variant: file}``.
        inputs: TFLite inputs per example (``{"label": int32 [1, H, W], ...}``);
            each file gets those of its signature.
        reference: uint8 images to compare with; default the float32 file's
            outputs (``paths["float32"]``).
        latency_calls: timed calls on the first example (median, after one
            warm-up call), on this machine's CPU with the interpreter's default
            threads.

    Returns:
        ``{variant: {"file", "size_bytes", "latency_ms", "psnr_db"}}``, the PSNR
        the worst over ``inputs`` (None for the reference itself).
    """
    if reference is None:
        run = _runner(paths["float32"])
        reference = [run(x) for x in inputs]
    out = {}
    for variant, path in paths.items():
        run = _runner(path)
        images = [run(x) for x in inputs]
        worst = min(psnr(a, b) for a, b in zip(images, reference))
        out[variant] = {
            "file": os.path.join("tflite", os.path.basename(path)),
            "size_bytes": os.path.getsize(path),
            "latency_ms": _median_ms(run, inputs[0], latency_calls),
            "psnr_db": None if np.isinf(worst) else round(worst, 1),
        }
    return out


def recommend(variants: dict[str, dict], min_psnr_db: float = RECOMMENDED_MIN_PSNR_DB) -> str | None:
    """The on-device file to ship: the fastest (on this CPU) whose worst PSNR is at least
    ``min_psnr_db`` (float32 counts as exact); ties go to the smaller one."""
    good = [(v["latency_ms"], v["size_bytes"], name) for name, v in variants.items()
            if v["psnr_db"] is None or v["psnr_db"] >= min_psnr_db]
    return min(good)[2] if good else None
