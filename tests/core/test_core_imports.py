"""The NumPy core never imports a deep-learning framework, and has no import cycle."""

import ast
import pathlib
import subprocess
import sys
import textwrap

import pytest

import jepa_components


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
        found = pkgutil.walk_packages(jepa_components.__path__, "jepa_components.")
        names = [m.name for m in found]
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


# --- no import cycles in the core --------------------------------------------------

PACKAGE_DIR = pathlib.Path(jepa_components.__file__).parent


def _core_modules():
    """{module name: source path} of the NumPy core (backends excluded)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[1:2] == ("backends",):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name, path, modules):
    """Core modules that ``name`` imports, anywhere in its source (lazy ones too).

    ``from package import submodule`` counts as importing the submodule; a
    module's own parent packages are not edges (Python imports them first).
    """
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else base for t in targets]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` -> nearest core module
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def test_core_import_graph_has_no_cycle():
    modules = _core_modules()
    assert {"jepa_components.datasets", "jepa_components.fashion_mnist"} <= set(modules)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "jepa_components.fashion_mnist" in graph["jepa_components.datasets"]  # re-export
    done, active = set(), []

    def visit(name):
        if name in active:
            cycle = [*active[active.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        active.append(name)
        for target in sorted(graph[name]):
            visit(target)
        active.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_core_modules_have_no_lazy_module_getattr():
    """A module-level ``__getattr__`` is how a cycle hides; the core has none."""
    for name, path in _core_modules().items():
        tree = ast.parse(path.read_text(), str(path))
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "__getattr__" not in defined, name


@pytest.mark.parametrize(
    "order",
    [
        ("jepa_components.datasets", "jepa_components.fashion_mnist"),
        ("jepa_components.fashion_mnist", "jepa_components.datasets"),
    ],
)
def test_datasets_and_fashion_mnist_import_in_either_order(order):
    script = textwrap.dedent(
        f"""
        import importlib
        first, second = (importlib.import_module(n) for n in {order!r})
        from jepa_components import datasets, fashion_mnist
        assert datasets.load_fashion_mnist is fashion_mnist.load_fashion_mnist
        assert "load_fashion_mnist" in vars(datasets)  # bound at import, not lazily
        for name in datasets.__all__:
            getattr(datasets, name)
        for name in fashion_mnist.__all__:
            getattr(fashion_mnist, name)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_core_module_imports_first_in_a_fresh_interpreter():
    """Each module imported alone, before anything else of the package (in parallel)."""
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in _core_modules()
    }
    failed = {}
    for name, process in runs.items():
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            failed[name] = stderr.strip().splitlines()[-1:]
    assert not failed, failed


def test_a_plain_checkout_imports_the_backends_package(tmp_path):
    """``jepa_components.backends`` lives inside the package folder (no package-dir
    mapping): a checkout on ``PYTHONPATH`` imports it from there."""
    root = pathlib.Path(jepa_components.__file__).parent.parent
    code = "import jepa_components.backends as b; print(b.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert pathlib.Path(out.stdout.strip()) == root / "jepa_components" / "backends" / "__init__.py"
