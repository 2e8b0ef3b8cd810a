"""Every docstring example under ``backends/`` runs and prints what it says.

The Keras modules (``backends/keras/*.py``) run on the current
``KERAS_BACKEND`` (CI runs this file once per backend); the framework glue
(``backends/torch.py``, ``tensorflow.py``, ``jax.py``) runs wherever its
framework is installed and skips, with the reason, where it is not.

(Named ``test_backend_docstrings.py``: ``tests/core/test_docstrings.py``
already holds the bare module name ``test_docstrings``, and test modules are
imported by bare name.)
"""

import doctest
import importlib
import importlib.util
import os
import pkgutil

import pytest

import jepa_components.backends

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Modules left out, each with the reason. Empty: every module's examples run.
EXCLUDED = {}

# Glue modules and the framework each needs (whatever KERAS_BACKEND is).
GLUE_FRAMEWORKS = {
    "jepa_components.backends.torch": "torch",
    "jepa_components.backends.tensorflow": "tensorflow",
    "jepa_components.backends.jax": "jax",
}
KERAS_FRAMEWORKS = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(jepa_components.backends.__path__, "jepa_components.backends.")
)


def _needed_framework(name):
    if name in GLUE_FRAMEWORKS:
        return GLUE_FRAMEWORKS[name]
    return KERAS_FRAMEWORKS.get(os.environ.get("KERAS_BACKEND", "jax"))


def test_every_backend_module_is_listed():
    names = set(MODULES)
    assert "jepa_components.backends.keras.models.ijepa" in names
    assert set(GLUE_FRAMEWORKS) <= names
    assert set(EXCLUDED) <= names, "an exclusion names a module that does not exist"
    assert TORCH_EXAMPLES <= names, "TORCH_EXAMPLES names a module that does not exist"


# Modules whose examples import torch (marked ``torch``: see tests/backends/conftest.py).
TORCH_EXAMPLES = {
    "jepa_components.backends.torch",
    "jepa_components.backends.keras.convert.official",
    "jepa_components.backends.keras.convert.official_reader",
    "jepa_components.backends.keras.convert.torch_save",
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.torch] if name in TORCH_EXAMPLES else [])
        for name in MODULES
    ],
)
def test_docstring_examples(name):
    if name in EXCLUDED:
        pytest.skip(EXCLUDED[name])
    framework = _needed_framework(name)
    if framework is not None and importlib.util.find_spec(framework) is None:
        pytest.skip(f"{name} needs {framework}, which is not installed")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    tests = finder.find(module, name, globs=dict(vars(module)))
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
