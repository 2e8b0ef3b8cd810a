"""``compat``: every private framework access sits there, behind a probe, with a public path.

Three kinds of test:

- the probes find each private name on this installation (so a Keras or torch
  release that moves one fails here, in CI's newest-Keras run, before users
  meet the slower public path);
- with a probe switched off (``compat.public_paths``), each function takes its
  public path and computes the same result;
- no module of the package outside ``compat.py`` touches a private framework
  name or ``keras.src``;
- each per-backend fast path computes what the generic ``keras.ops`` path it
  replaces computes, on the backend it serves (elsewhere it declines, so the
  generic path runs).
"""

import ast
import importlib.util
import pathlib
import warnings

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, images, to_numpy, training_batch
from keras import ops

import jepa_components
from jepa_components.backends.keras import (
    IJEPA,
    HealthMonitor,
    Predictor,
    VisionTransformer,
    compat,
    make_adamw,
)
from jepa_components.backends.keras.layers import TransformerBlock
from jepa_components.backends.keras.layers import block as block_module

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


# ------------------------------------------------------------------ fast paths
X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
KEY_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def _block_outputs_and_grads(block, generic, monkeypatch):
    """Output and input gradient of ``sum(block(x) ** 2)``, fast or generic path."""
    if generic:
        monkeypatch.setattr(block_module, "torch_block_call", lambda *args: None)
    if BACKEND == "torch":
        import torch

        x = torch.tensor(X, requires_grad=True)
        out = block(x, key_mask=torch.tensor(KEY_MASK))
        (out**2).sum().backward()
        grads = [x.grad] + [w.value.grad for w in block.trainable_weights]
        result = to_numpy(out.detach()), [to_numpy(g) for g in grads]
        for w in block.trainable_weights:
            w.value.grad = None
        return result
    return to_numpy(block(X, key_mask=KEY_MASK)), []


@pytest.mark.parametrize("activation", ["gelu", "relu", "quick_gelu"])
def test_torch_block_call__equals_the_generic_block(activation, monkeypatch):
    """Bitwise-close outputs and gradients (input and every weight), padded keys included;
    an activation without a torch equivalent (quick_gelu) takes the generic path."""
    block = TransformerBlock(8, num_heads=2, activation=activation, seed=0)
    block.build(X.shape)
    fast_out, fast_grads = _block_outputs_and_grads(block, False, monkeypatch)
    generic_out, generic_grads = _block_outputs_and_grads(block, True, monkeypatch)
    np.testing.assert_allclose(fast_out, generic_out, rtol=1e-6, atol=1e-6)
    assert len(fast_grads) == len(generic_grads)
    for fast, generic in zip(fast_grads, generic_grads):
        np.testing.assert_allclose(fast, generic, rtol=1e-5, atol=1e-6)


def test_torch_block_call__declines_off_torch():
    block = TransformerBlock(8, num_heads=2, seed=0)
    block.build(X.shape)
    result = compat.torch_block_call(block, ops.convert_to_tensor(X))
    assert (result is None) == (BACKEND != "torch")


def test_residual_gradient_boundary__identity_value_and_gradient():
    x = ops.convert_to_tensor(X)
    np.testing.assert_array_equal(to_numpy(compat.residual_gradient_boundary(x)), X)
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def loss(v, boundary):
            v = compat.residual_gradient_boundary(v) if boundary else v
            return jnp.sum(jnp.sin(v) * v)

        for fn in (jax.grad, lambda f: jax.jit(jax.grad(f))):
            with_boundary = fn(lambda v: loss(v, True))(jnp.asarray(X))
            without = fn(lambda v: loss(v, False))(jnp.asarray(X))
            np.testing.assert_array_equal(np.asarray(with_boundary), np.asarray(without))


@pytest.mark.parametrize("fast_path", [True, False])
def test_scheduled_adamw__fused_torch_update_equals_keras_adamw(fast_path, monkeypatch):
    """``make_adamw``'s optimizer (fused kernel on torch) against Keras' own AdamW with the
    same constant LR and weight decay, weights excluded from decay included; also where the
    fused kernel is unavailable (the generic update must then apply the weight decay)."""
    if not fast_path:
        monkeypatch.setattr(compat, "torch_fused_adamw_supported", lambda opt: False)
    rng = np.random.default_rng(0)
    shapes = {"kernel": (6, 4), "bias": (4,)}  # bias: excluded from weight decay (official)
    values = {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}
    grads = [
        [rng.normal(size=shape).astype("float32") for shape in shapes.values()] for _ in range(5)
    ]

    def run(optimizer):
        variables = [keras.Variable(values[name], name=name) for name in shapes]
        for step_grads in grads:
            optimizer.apply([ops.convert_to_tensor(g) for g in step_grads], variables)
        return [to_numpy(v) for v in variables]

    ours = run(
        make_adamw(
            steps_per_epoch=10,
            epochs=1,
            warmup_epochs=0,
            start_lr=1e-2,
            ref_lr=1e-2,
            final_lr=1e-2,
            weight_decay=0.1,
            final_weight_decay=0.1,
        )
    )
    reference = keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=0.1)
    reference.exclude_from_weight_decay(var_names=["bias"])
    keras_adamw = run(reference)
    moved = max(np.abs(a - values[n]).max() for a, n in zip(ours, shapes))
    assert moved > 1e-2
    for a, b in zip(ours, keras_adamw):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ijepa_compile__xla_by_default_on_tensorflow():
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=0),
        predictor=Predictor(**TINY_PREDICTOR, seed=1),
        momentum=0.99,
    )
    model.compile(optimizer="adamw")
    if BACKEND == "tensorflow":
        assert model.jit_compile is True
    model.compile(optimizer="adamw", jit_compile=False)  # an explicit choice is kept
    assert model.jit_compile is False
    history = model.fit(training_batch(4), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_release_free_heap__runs_on_glibc():
    import platform

    released = compat.release_free_heap()
    assert released is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_ijepa_train_function__releases_the_heap_once_after_the_first_step(monkeypatch):
    calls = []
    monkeypatch.setattr(compat, "release_free_heap", lambda: calls.append(1) or True)
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=0),
        predictor=Predictor(**TINY_PREDICTOR, seed=1),
        momentum=0.99,
    )
    model.compile(optimizer="adamw")
    history = model.fit(training_batch(4), batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert len(calls) == (1 if BACKEND in ("jax", "tensorflow") else 0)  # 4 steps, one release
    model.compile(optimizer="adamw")  # a new train function compiles, and releases, again
    model.fit(training_batch(4), batch_size=2, epochs=1, verbose=0)
    assert len(calls) == (2 if BACKEND in ("jax", "tensorflow") else 0)


# ------------------------------------------------------------------ remat and jax's scheduler
DEEP_VIT = dict(image_size=32, patch_size=4, embed_dim=32, depth=4, num_heads=2)
DEEP_PREDICTOR = dict(num_patches=64, embed_dim=32, predictor_embed_dim=32, depth=3, num_heads=2)


def _deep_model(remat):
    model = IJEPA(
        encoder=VisionTransformer(**DEEP_VIT, remat=remat, seed=0),
        predictor=Predictor(**DEEP_PREDICTOR, remat=remat, seed=1),
        momentum=0.99,
    )
    model.compile(optimizer="adamw")
    return model


def _deep_batch(batch_size=8):
    order = np.argsort(np.random.default_rng(0).random((batch_size, 64)), axis=1)
    order = order.astype("int32")
    return {
        "images": images(batch_size, size=32),
        "context": order[:, :40],
        "targets": order[:, 40:].reshape(batch_size, 4, 6),
    }


@pytest.mark.skipif(BACKEND != "jax", reason="jax's compiled train step")
def test_jax_train_step_jit__remat_saves_memory_only_with_the_memory_ordered_scheduler(monkeypatch):
    """The compiled step's scratch memory (XLA's preallocated temp): rematerialized blocks
    need the memory-ordered scheduler, and IJEPA's train function uses it."""
    import jax

    from jepa_components.backends.keras.models import base as base_module

    def temp_bytes(remat, with_options):
        seen = {}

        def recording(model):
            step = compat.jax_train_step_jit(model)
            seen["plain"] = jax.jit(model.train_step, donate_argnums=0)
            seen["ours"] = step

            def call(state, data):
                seen["args"] = jax.tree_util.tree_map(
                    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (state, data)
                )
                return step(state, data)

            return call

        monkeypatch.setattr(base_module, "jax_train_step_jit", recording)
        model = _deep_model(remat)
        model.fit(_deep_batch(), batch_size=8, epochs=1, verbose=0)
        step = seen["ours" if with_options else "plain"]
        return step.lower(*seen["args"]).compile().memory_analysis().temp_size_in_bytes

    assert compat.jax_train_step_jit(_deep_model(False)) is not None  # CPU here
    plain, remat = temp_bytes(False, True), temp_bytes(True, True)
    remat_default_scheduler = temp_bytes(True, False)
    assert remat < 0.6 * plain, (remat, plain)
    assert remat < 0.6 * remat_default_scheduler, (remat, remat_default_scheduler)


def test_jax_train_step_jit__declines_where_keras_step_must_stay():
    model = _deep_model(False)
    assert (compat.jax_train_step_jit(model) is None) == (BACKEND != "jax")
    model.compile(optimizer="adamw", run_eagerly=True)
    assert compat.jax_train_step_jit(model) is None
    model.compile(optimizer="adamw", jit_compile=False)
    assert compat.jax_train_step_jit(model) is None


@pytest.mark.skipif(BACKEND != "torch", reason="torch autograd's saved tensors")
def test_transformer_block__remat_keeps_only_its_input_for_the_backward_pass(monkeypatch):
    import torch

    def saved_bytes(remat):
        block = TransformerBlock(8, num_heads=2, remat=remat, seed=0)
        block.build(X.shape)
        sizes = []

        def pack(tensor):
            sizes.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, grads = _block_outputs_and_grads(block, False, monkeypatch)
        return sum(sizes), out, grads

    plain, plain_out, plain_grads = saved_bytes(False)
    remat, remat_out, remat_grads = saved_bytes(True)
    np.testing.assert_allclose(remat_out, plain_out, rtol=1e-6, atol=1e-6)
    assert len(remat_grads) == len(plain_grads)
    for a, b in zip(remat_grads, plain_grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert remat < 0.5 * plain, (remat, plain)
