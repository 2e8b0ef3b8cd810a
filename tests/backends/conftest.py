"""Backend tests: everything under tests/backends needs Keras and a framework.

CI runs this folder once per KERAS_BACKEND (jax, torch, tensorflow). Without
KERAS_BACKEND set, jax is used. Every test here is marked ``backend``.

Tests that import torch into the process (comparisons with the official code,
writing ``.pth`` files, transformers) are marked ``torch``: explicitly, or
here when they use the ``official_code`` fixture. They skip without torch.

torch imported after tensorflow in one process makes tensorflow abort or
segfault now and then: 2 crashes in 38 runs of ``test_attentive_probe.py``
after ``import keras, torch``, none in 16 without torch (and CI lost a
tensorflow run to it). So on tensorflow CI runs the tests in two processes:
``-m "not torch"``, where a test that brings torch in fails by name, and
``-m torch``, where torch is imported first, before keras (the usual advice;
none in 22 runs crashed). The library never imports torch to read files
(``convert.torch_save``). One more crash, without torch, came from the
attentive probe's ``PyDataset`` (tensorflow's ``from_generator`` iterator
set-up); the probe now trains on arrays.
"""

import importlib.util
import os
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = os.path.dirname(__file__)
HAS_TORCH = importlib.util.find_spec("torch") is not None
TENSORFLOW = os.environ["KERAS_BACKEND"] == "tensorflow"
_guard = {"on": False}


def pytest_configure(config):
    if TENSORFLOW and config.option.markexpr.replace(" ", "") == "nottorch":
        _guard["on"] = True
    elif TENSORFLOW and HAS_TORCH:
        import torch  # noqa: F401  (before any test module imports keras)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not str(item.fspath).startswith(HERE):
            continue
        item.add_marker(pytest.mark.backend)
        if "official_code" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.torch)
        if item.get_closest_marker("torch") and not HAS_TORCH:
            item.add_marker(pytest.mark.skip(reason="needs torch, which is not installed"))


@pytest.fixture(autouse=True)
def _torch_stays_out_of_tensorflow(request):
    """Under ``-m "not torch"`` on tensorflow: fail the test that imports torch."""
    before = sys.modules.get("torch") is not None
    yield
    if _guard["on"] and not before and sys.modules.get("torch") is not None:
        pytest.fail(
            f"{request.node.nodeid} imported torch into a tensorflow process; mark "
            "it @pytest.mark.torch (see tests/backends/conftest.py)",
            pytrace=False,
        )
