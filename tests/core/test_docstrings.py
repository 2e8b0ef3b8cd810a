"""Every docstring example of the NumPy core runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import jepa_components

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(jepa_components.__path__, "jepa_components.")
    if not m.name.startswith("jepa_components.backends")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
