import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO_MINI = os.environ.get(
    "SPADE_TF_COCO_MINI", os.path.join(ROOT, "..", "shared", "data", "coco_stuff_mini")
)


@pytest.fixture
def coco_mini():
    """The real COCO-Stuff sample beside the repository (never copied into it)."""
    if not os.path.isdir(COCO_MINI):
        message = f"COCO-Stuff sample not found at {COCO_MINI} (set SPADE_TF_COCO_MINI)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has it: a missing sample is a failure there
        pytest.skip(message)
    return COCO_MINI


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the default, see pyproject): one worker per core, at most 4.

    Each worker is a TensorFlow process of its own (1-3 GB); past a few
    workers the largest group below sets the wall time anyway.
    """
    return max(1, min(4, len(os.sched_getaffinity(0))))


# Under pytest-xdist, the tests that share a module or a session-scoped fixture
# (a trained run, the COCO export, the browser) run on one worker, so that no
# such fixture is built twice. Groups are the connected parts of "test uses
# fixture" and "test is in module". The workers collect and compute them and
# write {nodeid: group} to a file the controller named; the controller's
# scheduler hands out whole groups, most tests first. (xdist's own
# `--dist loadgroup` tags nodeids, which pytest 9.2 no longer lets a plugin do.)
def fixture_groups(items):
    parent = {}

    def root(key):
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    modules = {item.nodeid: item.nodeid.split("::")[0] for item in items}
    for item in items:
        for name, defs in item._fixtureinfo.name2fixturedefs.items():
            if defs and defs[-1].scope == "session" and defs[-1].baseid:  # ours, not pytest's
                parent[root(f"fixture {name}")] = root(modules[item.nodeid])
    return {nodeid: root(module) for nodeid, module in modules.items()}


def pytest_configure(config):
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        config.test_groups_file = os.path.join(tempfile.mkdtemp(prefix="pytest-groups-"), "groups.json")


def pytest_unconfigure(config):
    if hasattr(config, "test_groups_file"):
        shutil.rmtree(os.path.dirname(config.test_groups_file), ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["test_groups_file"] = node.config.test_groups_file


def pytest_collection_modifyitems(config, items):
    path = getattr(config, "workerinput", {}).get("test_groups_file")
    if path:
        with open(f"{path}.{os.getpid()}", "w") as f:
            json.dump(fixture_groups(items), f)
        os.replace(f"{path}.{os.getpid()}", path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "load":  # -n's default; any other --dist is xdist's own
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        groups = None

        def _split_scope(self, nodeid):
            if self.groups is None:  # read once the workers have collected
                with open(config.test_groups_file) as f:
                    self.groups = json.load(f)
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)
