"""Backend tests: everything under tests/backends needs Keras and a framework.

CI runs this folder once per KERAS_BACKEND (jax, torch, tensorflow). Without
KERAS_BACKEND set, jax is used. Every test here is marked ``backend``.
"""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.backend)
