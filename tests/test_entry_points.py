"""The CLI convention: flags live in the entry points, and defining them loads no TensorFlow."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOAD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("entry", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # defines the flags, does not run main
from absl import flags
print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules), len(list(flags.FLAGS)))
"""


def python(code, *args):
    return subprocess.run([sys.executable, *args, "-c", code] if code else [sys.executable, *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.parametrize("script", ["train.py", "export.py", "evaluate.py"])
def test_entry_points_define_their_flags_without_tensorflow(script):
    result = python(LOAD.format(path=os.path.join(ROOT, script)))
    assert result.returncode == 0, result.stderr[-2000:]
    loaded, count = result.stdout.split("]")
    assert loaded + "]" == "[]" and int(count) > 5  # flags defined, TensorFlow and Keras not loaded


def test_library_modules_define_no_flags_and_config_loads_no_tensorflow():
    result = python("import sys, spade_tf, spade_tf.config, spade_tf.synthesize\n"
                    "from absl import flags\n"
                    "print(sorted(n for n in ('tensorflow', 'keras') if n in sys.modules), 'labels' in flags.FLAGS)")
    assert result.returncode == 0, result.stderr[-2000:]
    # synthesize imports the data package (TensorFlow) but must not define its flags on import.
    assert result.stdout.split()[-1] == "False"
    result = python("import sys, spade_tf.config\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert result.stdout.split() == ["False", "False"]


def test_train_help_lists_dataset_modes_from_the_config():
    from spade_tf.config import DATASET_MODES

    result = python(None, "train.py", "--help")  # absl exits with 1 after printing the help
    assert "Train SPADE." in result.stdout and f"<{'|'.join(DATASET_MODES)}>" in result.stdout, result.stderr


@pytest.mark.parametrize("args, message", [
    (["--torch_checkpoint=x.pth", "--preset=coco", "--workdir=w"], "with --torch_checkpoint use --import_workdir"),
    (["--workdir=w", "--import_workdir=v"], "--import_workdir needs --torch_checkpoint"),
    (["--workdir=w", "--tflite=float32,dynamic"], "unknown ['dynamic']; expected some of ['float32', 'float16', "
                                                  "'dynamic_range', 'int8', 'int16x8'] or none"),
])
def test_export_flag_misuse_is_a_usage_error(args, message):
    result = python(None, "export.py", "--export_dir=e", *args)
    assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
