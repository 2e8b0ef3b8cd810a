"""Shared test settings and fixtures.

- A hypothesis profile sized for a 2-core CI machine (``HYPOTHESIS_PROFILE``).
- ``official_code``: the official I-JEPA PyTorch code
  (facebookresearch/ijepa, ``../shared/anchors/ijepa`` next to the
  repository, or ``$IJEPA_OFFICIAL_CODE``) importable as ``src.*`` for the
  duration of a test module. Tests that use it skip, with the reason, when
  torch or the code is missing. This is the one place that knows the path.
"""

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFICIAL_CODE = os.environ.get(
    "IJEPA_OFFICIAL_CODE", os.path.join(os.path.dirname(REPO), "shared", "anchors", "ijepa")
)


def official_code_path():
    """Path of the official code, or None when it (or torch) is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    return OFFICIAL_CODE if os.path.isdir(os.path.join(OFFICIAL_CODE, "src")) else None


@pytest.fixture(scope="module")
def official_code():
    """Import helper for the official code: ``official_code("src.helper")`` -> module.

    The official package is called ``src``; it is put on ``sys.path`` only
    while importing, and its modules are returned (they stay cached in
    ``sys.modules`` under ``src.*``).
    """
    path = official_code_path()
    if path is None:
        pytest.skip(
            f"needs torch and the official I-JEPA code in {OFFICIAL_CODE} "
            "(set IJEPA_OFFICIAL_CODE to another checkout)"
        )

    def load(module_name):
        import importlib

        sys.path.insert(0, path)
        try:
            return importlib.import_module(module_name)
        except ImportError as error:
            pytest.skip(f"official code not importable from {path}: {error}")
        finally:
            sys.path.remove(path)

    return load
