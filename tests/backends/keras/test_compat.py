"""``compat``: every private framework access sits there, behind a probe, with a public path.

Three kinds of test:

- the probes find each private name on this installation (so a Keras or torch
  release that moves one fails here, in CI's newest-Keras run, before users
  meet the slower public path);
- with a probe switched off (``compat.public_paths``), each function takes its
  public path and computes the same result;
- no module of the package outside ``compat.py`` touches a private framework
  name or ``keras.src``.
"""

import ast
import importlib.util
import pathlib
import warnings

import keras
import numpy as np
import pytest
from harness import to_numpy
from keras import ops

import jepa_components
from jepa_components.backends.keras import HealthMonitor, compat, make_adamw

BACKEND = keras.backend.backend()
PACKAGE = pathlib.Path(jepa_components.__file__).parent
ROOT = PACKAGE.parent
COMPAT = PACKAGE / "backends" / "keras" / "compat.py"

# Framework classes whose private members count as framework internals even where the
# package defines a member of the same name (an override of a private method).
FRAMEWORK_CLASSES = (
    keras.Model,
    keras.layers.Layer,
    keras.optimizers.AdamW,
    keras.callbacks.Callback,
    keras.utils.PyDataset,
    keras.Variable,
)


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def _sources():
    """Every Python file of the package and the examples."""
    return sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "examples").glob("*.py"))


def _own_names(trees):
    """Names the project itself defines: functions, classes, assigned attributes and names."""
    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def private_framework_uses(paths):
    """``path:line: what`` for each private framework access in ``paths`` outside compat.py."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in paths}
    own = _own_names(trees)
    framework = {name for cls in FRAMEWORK_CLASSES for name in dir(cls) if _private(name)}
    found = []
    for path, tree in trees.items():
        if path == COMPAT:
            continue
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if "keras.src" in path.read_text():
            found.append(f"{where}: keras.src")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                if node.attr not in own or node.attr in framework:
                    found.append(f"{where}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.FunctionDef) and node.name in framework:
                found.append(f"{where}:{node.lineno}: overrides {node.name}")
    return found


def test_no_private_framework_access_outside_compat():
    assert private_framework_uses(_sources()) == []


def test_private_framework_uses__finds_each_kind(tmp_path):
    """The scanner itself: a ``keras.src`` import, a framework attribute, a private override."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from keras.src.backend import config\n"
        "import torch\n"
        "torch._foreach_add_([], [])\n"
        "class Opt:\n"
        "    def _backend_update_step(self, grads, variables, lr):\n"
        "        return self._momentums\n"
    )
    found = private_framework_uses([bad])
    assert any("keras.src" in line for line in found)
    assert any("._foreach_add_" in line for line in found)
    assert any("overrides _backend_update_step" in line for line in found)
    assert any("._momentums" in line for line in found)


def test_compat_itself_is_where_the_private_names_are():
    found = private_framework_uses([COMPAT, PACKAGE / "backends" / "keras" / "data.py"])
    assert found == []  # compat.py is exempt; data.py has none
    assert "keras.src" in COMPAT.read_text()


# ------------------------------------------------------------------------- probes
@pytest.mark.parametrize("name", sorted(compat.PROBES))
def test_probe__finds_the_private_name_on_this_installation(name):
    module = compat.PROBES[name][0].split(".")[0]
    if module == "torch" and BACKEND != "torch":
        pytest.skip("torch's private kernels are probed only on the torch backend")
    assert importlib.util.find_spec(module) is not None
    assert compat.private_api(name) is not None, (
        f"{compat.PROBES[name]} is gone from this {module}: compat.py's public path now runs"
    )


def test_optimizer_internals__present_on_this_keras():
    optimizer = make_adamw(steps_per_epoch=2, epochs=1, warmup_epochs=0)
    optimizer.build([keras.Variable(np.zeros((2, 2), "float32"))])
    for name in compat.OPTIMIZER_METHODS + compat.OPTIMIZER_STATE:
        assert hasattr(optimizer, name), name


def test_public_paths__switches_probes_off_and_back():
    with compat.public_paths("autocast_scope", "optimizer"):
        assert compat.private_api("autocast_scope") is None
    assert compat.private_api("autocast_scope") is not None


def test_public_paths__refuses_unknown_names():
    with pytest.raises(ValueError, match="Received: \\['nope'\\]"):
        with compat.public_paths("nope"):
            pass


# ------------------------------------------------------------------- public paths
def test_fused_blend__declines_without_its_probes():
    target = keras.Variable(np.zeros(3, "float32"))
    online = keras.Variable(np.ones(3, "float32"))
    for name in ("stateless_scope", "torch_foreach_lerp"):
        with compat.public_paths(name):
            assert compat.fused_blend([(target, online)], 0.5) is False
    assert compat.fused_blend([(target, online)], 0.5) is (BACKEND == "torch")
    if BACKEND == "torch":
        np.testing.assert_allclose(to_numpy(target), 0.5)


def test_no_autocast__public_path_warns_only_under_mixed_precision():
    with compat.public_paths("autocast_scope"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with compat.no_autocast():
                pass  # float32 policy: nothing is rounded, no warning
        compat._warned.discard("autocast_scope")
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            with pytest.warns(RuntimeWarning, match="mixed_bfloat16"):
                with compat.no_autocast():
                    pass
        finally:
            keras.config.set_dtype_policy(previous)
            compat._warned.discard("autocast_scope")


def test_no_autocast__keeps_float32_reads_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = keras.layers.Dense(2)
        layer.build((None, 2))
        value = np.float32(1.0 + 2.0**-12)  # not representable in bfloat16
        layer.kernel.assign(np.full((2, 2), value, "float32"))
        with compat.no_autocast():
            read = ops.convert_to_tensor(layer.kernel)
        assert to_numpy(read).dtype == np.float32
        assert to_numpy(read)[0, 0] == value
    finally:
        keras.config.set_dtype_policy(previous)


def test_callback_model__public_path_is_callback_model():
    monitor = HealthMonitor(probe_images=np.zeros((8, 8, 8, 3), "float32"))
    model = keras.Sequential([keras.layers.Dense(1)])
    monitor.set_model(model)
    assert compat.callback_model(monitor) is model
    with compat.public_paths("callback_model"):
        assert compat.callback_model(monitor) is model


def test_scheduled_adamw__public_path_equals_the_fused_update():
    """With the optimizer internals switched off, Keras' own update and weight decay run:
    the same weights as the fused torch kernel (and as the same optimizer elsewhere)."""
    rng = np.random.default_rng(0)
    start = {
        "kernel": rng.normal(size=(6, 4)).astype("float32"),
        "bias": rng.normal(size=(4,)).astype("float32"),
    }
    grads = [[rng.normal(size=v.shape).astype("float32") for v in start.values()] for _ in range(4)]

    def run():
        optimizer = make_adamw(
            steps_per_epoch=4, epochs=1, warmup_epochs=0, weight_decay=0.1, final_weight_decay=0.2
        )
        variables = [keras.Variable(value, name=name) for name, value in start.items()]
        for step in grads:
            optimizer.apply([ops.convert_to_tensor(g) for g in step], variables)
        return [to_numpy(v) for v in variables]

    fast = run()
    with compat.public_paths("optimizer", "torch_fused_adamw"):
        public = run()
    for a, b in zip(fast, public):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
