"""The NumPy core never imports a deep-learning framework."""

import subprocess
import sys
import textwrap


def test_core_imports_without_any_framework():
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        BLOCKED = ("torch", "jax", "jaxlib", "tensorflow", "keras")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"framework import blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        import jepa_components
        names = [m.name for m in pkgutil.walk_packages(jepa_components.__path__, "jepa_components.")]
        names = [n for n in names if not n.startswith("jepa_components.backends")]
        for name in names:
            importlib.import_module(name)
        loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not loaded, loaded
        assert "jepa_components.testing" in names, names
        print(len(names))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 10  # masks, context, losses, schedules, ...


def test_testing_module_imports_without_hypothesis():
    """check_masks needs only numpy; the strategies say how to install hypothesis."""
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("hypothesis", "torch", "jax", "tensorflow", "keras"):
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        from jepa_components.masks import MultiBlockMaskSampler
        from jepa_components.testing import check_masks, check_stream, samplers

        sampler = MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=0)
        check_masks(sampler.sample(3), sampler, sample_ids=range(3))
        check_stream(sampler)
        try:
            samplers("multiblock")
        except ImportError as error:
            print(error)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install hypothesis" in out.stdout, out.stdout
