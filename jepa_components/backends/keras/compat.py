"""Every private framework access of the Keras backends, each behind a feature probe.

Two kinds of code live here and nowhere else in the package:

1. **Fast paths** for one backend that return a "not handled" value
   elsewhere, so callers keep one generic ``keras.ops`` path:

   - :func:`fused_blend`: the EMA update as one multi-tensor kernel on torch
     (``torch._foreach_lerp_``, ``t + (1 - m) * (o - t)``: the same update up
     to float rounding, exactly ``t`` when ``m = 1``; the weight stays a 0-d
     device tensor, so no host sync per step).
   - :func:`residual_gradient_boundary`: on jax, makes XLA materialize the
     gradient of the residual stream at every block input (else XLA CPU
     recomputes the whole backward add chain inside every consumer:
     O(depth^2)).
   - :func:`torch_block_call`: a transformer block in ``torch.nn.functional``
     (no per-op ``keras.ops`` / ``Layer.__call__`` overhead in eager torch).
   - :class:`TorchFusedAdamWHooks` and :func:`torch_fused_adamw`: AdamW as
     ``torch._fused_adamw_`` (one kernel per parameter group instead of a
     Python loop of Keras ops per variable).
   - :func:`jax_train_step_jit`: on jax's CPU, the train step compiled with
     XLA's memory-ordered scheduler (what makes ``remat`` save memory there).
   - :func:`release_heap_after_first_call`: on jax and tensorflow, gives the
     heap that XLA's compile freed back to the OS once the first (compiling)
     train step has run.

2. **Keras internals** with no public equivalent: :func:`no_autocast`
   (``AutocastScope``), :func:`callback_model` (a callback's model without
   the jax state sync of ``Callback.model``), the optimizer hooks above.

**Probes.** Each private name is looked up once (:data:`PROBES` lists them,
with whether this installation has it). Where one is missing (a Keras or
torch release that moved it), the function takes the public path: the
generic ``keras.ops`` update, Keras' own train function, ``Callback.model``;
:func:`no_autocast` warns once under a mixed-precision policy, where the
public path rounds the EMA's reads to the compute dtype. The tests run every
function both ways (``tests/backends/keras/test_compat.py``), and a test fails
if a private framework name is used anywhere else in the package. The
figures behind each fast path are in the docs' performance page.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import keras

__all__ = [
    "JAX_CPU_COMPILER_OPTIONS",
    "PROBES",
    "TorchFusedAdamWHooks",
    "callback_model",
    "fused_blend",
    "jax_train_step_jit",
    "no_autocast",
    "private_api",
    "release_free_heap",
    "release_heap_after_first_call",
    "residual_gradient_boundary",
    "torch_block_call",
    "torch_fused_adamw",
    "torch_fused_adamw_supported",
]


# ------------------------------------------------------------------------ probes
#: Every private framework name the package uses: ``name -> (module, attribute)``.
#: :func:`private_api` looks each up once and returns None where it is missing.
PROBES: dict[str, tuple[str, str]] = {
    "stateless_scope": ("keras.src.backend.common.stateless_scope", "in_stateless_scope"),
    "autocast_scope": ("keras.src.backend.common.variables", "AutocastScope"),
    "torch_foreach_lerp": ("torch", "_foreach_lerp_"),
    "torch_fused_adamw": ("torch", "_fused_adamw_"),
}

#: Private methods of ``keras.optimizers.Optimizer`` that :class:`TorchFusedAdamWHooks`
#: overrides or calls, and the optimizer state it reads.
OPTIMIZER_METHODS = (
    "_backend_update_step",
    "_apply_weight_decay",
    "_use_weight_decay",
    "_get_variable_index",
)
OPTIMIZER_STATE = ("_momentums", "_velocities")

_disabled: set[str] = set()  # probe names switched off (tests of the public paths)


@functools.cache
def _lookup(name: str) -> Any:
    module, attribute = PROBES[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None


def private_api(name: str) -> Any:
    """The private object probed as ``name`` (a key of :data:`PROBES`), or None if missing.

    Importing the module is deferred to the first call, so a backend's
    framework is imported only where that backend runs.
    """
    return None if name in _disabled else _lookup(name)


@contextlib.contextmanager
def public_paths(*names: str) -> Iterator[None]:
    """Context (for tests): the probes ``names`` report missing, so callers take the public path.

    ``"optimizer"`` switches off :class:`TorchFusedAdamWHooks`' use of the
    optimizer internals, ``"model_train_function"`` and ``"callback_model"``
    the Keras model / callback internals.
    """
    unknown = (
        set(names)
        - set(PROBES)
        - {"optimizer", "callback_model", "model_train_function", "model_distribute_strategy"}
    )
    if unknown:
        raise ValueError(
            f"Invalid value for argument `names`. Expected names of PROBES or "
            f"'optimizer', 'callback_model', 'model_train_function', "
            f"'model_distribute_strategy'. Received: {sorted(unknown)}"
        )
    added = set(names) - _disabled
    _disabled.update(added)
    try:
        yield
    finally:
        _disabled.difference_update(added)


def fused_blend(pairs: Sequence[tuple[Any, Any]], momentum: Any) -> bool:
    """``t = m * t + (1 - m) * o`` in place for all ``(t, o)`` pairs, if fusable.

    Args:
        pairs: list of ``(target, online)`` ``keras.Variable`` pairs, same
            shapes and dtypes.
        momentum: scalar tensor or float.

    Returns:
        True if the update was done here (torch backend, outside any
        stateless scope), False if the caller must use the generic path.
    """
    if keras.backend.backend() != "torch" or not pairs:
        return False
    in_stateless_scope = private_api("stateless_scope")
    lerp = private_api("torch_foreach_lerp")
    if in_stateless_scope is None or lerp is None or in_stateless_scope():
        return False  # e.g. `stateless_call`: assignments must go through Keras
    import torch

    targets = [target.value for target, _ in pairs]
    onlines = [online.value.detach() for _, online in pairs]
    if any(t.dtype != targets[0].dtype for t in targets + onlines):
        return False
    with torch.no_grad():
        m = torch.as_tensor(momentum, dtype=targets[0].dtype, device=targets[0].device)
        weight = 1.0 - m
        lerp(targets, onlines, [weight.expand_as(t) for t in targets])
    return True


def no_autocast() -> contextlib.AbstractContextManager[Any]:
    """Context: float variables read as stored, whatever the mixed-precision policy.

    ``Layer.__call__`` of a ``mixed_bfloat16`` layer opens an autocast scope
    in which every float variable reads as bfloat16; bookkeeping that must
    stay float32 inside ``call`` (the EMA) runs under this. Keras has no
    public API for it: ``AutocastScope(None)`` is the internal one. Where
    it is missing, a null context, with a warning (once) under a
    mixed-precision policy, whose variable reads are then rounded.
    """
    scope = private_api("autocast_scope")
    if scope is not None:
        return scope(None)
    policy = keras.config.dtype_policy()
    if policy.compute_dtype != policy.variable_dtype:
        _warn_once(
            "autocast_scope",
            "This Keras has no AutocastScope: under the mixed-precision policy "
            f"{policy.name!r} the EMA target update reads its float32 variables in "
            f"{policy.compute_dtype}. Use a float32 policy for exact EMA updates.",
        )
    return contextlib.nullcontext()


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def callback_model(callback: Any) -> Any:
    """``callback``'s model without the jax state sync of ``Callback.model`` (writes only).

    ``Callback.model`` on jax first copies the training state back into the
    model's variables; a callback that only sets ``stop_training`` needs
    none of it. The internal ``_model`` where Keras has it, else ``.model``.
    """
    model = None if "callback_model" in _disabled else getattr(callback, "_model", None)
    return callback.model if model is None else model


# --------------------------------------------------------------- jax: gradient boundary
_BOUNDARY: Callable[[Any], Any] | None = None


def _make_jax_boundary() -> Callable[[Any], Any]:
    """Identity whose backward passes the cotangent through a ``lax.cond``.

    XLA on CPU fuses cheap element-wise producers into every consumer, and
    the backward pass of a residual network is a long chain of adds
    (``dx_l = dx_{l+1} + branch terms``): each weight-gradient fusion then
    recomputes the whole remaining chain (fusions with 100-200 operands for
    12 blocks; per-block backward cost grows with depth).
    ``lax.optimization_barrier`` does not stop it (the CPU pipeline removes
    barriers before fusion); a conditional does, as fusion never crosses it.
    The predicate ``(bits(g[0]) | 1) != 0`` is always true but opaque to
    XLA's simplifier (identical branches would be folded away); the false
    branch never runs. Forward: plain identity, nothing saved.
    """
    import jax
    import jax.numpy as jnp

    def always_true(g):
        first = jnp.reshape(g, (-1,))[0]
        unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[first.dtype.itemsize]
        bits = jax.lax.bitcast_convert_type(first, unsigned)
        return (bits | 1) != 0

    def backward(_, g):
        return (jax.lax.cond(always_true(g), lambda g: g, lambda g: g + g, g),)

    @jax.custom_vjp
    def boundary(x):
        return x

    boundary.defvjp(lambda x: (x, None), backward)
    return boundary


def residual_gradient_boundary(x: Any) -> Any:
    """``x`` unchanged; on jax its gradient is materialized here.

    See :func:`_make_jax_boundary` for why and how.
    """
    global _BOUNDARY
    if keras.backend.backend() != "jax":
        return x
    if _BOUNDARY is None:
        _BOUNDARY = _make_jax_boundary()
    return _BOUNDARY(x)


# --------------------------------------------------- torch: functional transformer block
_TORCH_ACTIVATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "gelu": lambda F, x: F.gelu(x),
    "gelu_tanh": lambda F, x: F.gelu(x, approximate="tanh"),
    "relu": lambda F, x: F.relu(x),
    "silu": lambda F, x: F.silu(x),
    "swish": lambda F, x: F.silu(x),
}


def torch_block_call(block: Any, x: Any, key_mask: Any = None) -> Any:
    """``block(x, key_mask)`` of a ``TransformerBlock`` in ``torch.nn.functional``, or None.

    The same math and weights as the ``keras.ops`` path (bitwise equal
    outputs and gradients in float32, tested): LayerNorm computed in float32
    and cast back (as ``keras.ops.layer_normalization``), ``F.linear`` with
    the ``(in, out)`` kernel, ``F.scaled_dot_product_attention`` with the
    boolean key mask, the block's activation. Eager torch pays Python
    overhead per ``keras.ops`` call and per ``Layer.__call__`` (~10 per
    block); this path has none of it.

    Returns None (caller runs the generic path) on other backends, for
    symbolic inputs, or for an activation without a torch equivalent here.
    """
    if keras.backend.backend() != "torch":
        return None
    import torch
    import torch.nn.functional as F

    activation = _TORCH_ACTIVATIONS.get(block.mlp.activation)
    if activation is None or not isinstance(x, torch.Tensor):
        return None
    attn, mlp = block.attn, block.mlp

    def linear(dense, h):
        bias = dense.bias.value if dense.use_bias else None
        return F.linear(h, dense.kernel.value.t(), bias)

    def norm(layer, h):
        out = F.layer_norm(
            h.float(), (h.shape[-1],), layer.gamma.value, layer.beta.value, layer.epsilon
        )
        return out.to(h.dtype)

    batch, length, dim = x.shape
    heads = attn.num_heads
    qkv = linear(attn.qkv, norm(block.norm1, x)).view(batch, length, 3, heads, dim // heads)
    query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, T, head_dim)
    mask = None if key_mask is None else key_mask.to(torch.bool).view(batch, 1, 1, length)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    x = x + linear(attn.proj, out.transpose(1, 2).reshape(batch, length, dim))
    return x + linear(mlp.fc2, activation(F, linear(mlp.fc1, norm(block.norm2, x))))


# ----------------------------------------------------------------- torch: fused AdamW
def torch_fused_adamw_supported(optimizer: Any) -> bool:
    """Whether :func:`torch_fused_adamw` can run ``optimizer``'s update (weight decay included).

    Torch backend, no AMSGrad, and torch >= 2.4 (the first with a CPU kernel
    of ``_fused_adamw_``). The optimizer asks once, for both its update and
    its weight decay, so they never disagree.
    """
    if (
        keras.backend.backend() != "torch"
        or getattr(optimizer, "amsgrad", False)
        or "optimizer" in _disabled
        or private_api("torch_fused_adamw") is None
        or not all(hasattr(optimizer, name) for name in OPTIMIZER_METHODS + OPTIMIZER_STATE)
    ):
        return False
    import torch

    release = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return release >= (2, 4)


def torch_fused_adamw(
    optimizer: Any,
    grads: Sequence[Any],
    variables: Sequence[Any],
    learning_rate: Any,
    weight_decay: Any,
    use_decay: Callable[[Any], bool],
) -> None:
    """One Adam(W) update as ``torch._fused_adamw_``, Keras' formula.

    Keras: ``w -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps)``; the torch
    kernel: ``w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps')``; with
    ``eps' = eps / sqrt(bc2)`` they are the same expression (``bc = 1 -
    beta^t``). Decoupled decay ``w *= 1 - lr * wd`` is in both. Two kernel
    calls (with and without decay) replace a Python loop of ~10 Keras ops
    per variable (the tests check the weights against Keras' update).
    Only where :func:`torch_fused_adamw_supported` says so (after the
    optimizer is built: it reads the moment variables).

    Args:
        optimizer: a ``keras.optimizers.Adam``-family optimizer (its
            ``beta_1``, ``beta_2``, ``epsilon``, ``iterations``, moments).
        grads, variables: lists, as ``_backend_update_step`` receives them.
        learning_rate, weight_decay: this update's values (tensor or float;
            read on the host: one sync per step on GPU).
        use_decay: callable ``variable -> bool``.
    """
    import math

    import torch

    step = int(keras.ops.convert_to_numpy(optimizer.iterations)) + 1  # a Variable or a tensor
    eps = optimizer.epsilon / math.sqrt(1.0 - optimizer.beta_2**step)
    lr, wd = float(learning_rate), float(weight_decay or 0.0)
    groups: dict[bool, tuple[list[Any], list[Any], list[Any], list[Any]]] = {
        True: ([], [], [], []),
        False: ([], [], [], []),
    }
    for grad, variable in zip(grads, variables):
        index = optimizer._get_variable_index(variable)
        group = groups[wd > 0.0 and bool(use_decay(variable))]
        group[0].append(variable.value)
        group[1].append(grad)
        group[2].append(optimizer._momentums[index].value)
        group[3].append(optimizer._velocities[index].value)
    with torch.no_grad():
        for decay, (params, group_grads, moments, velocities) in groups.items():
            if not params:
                continue
            steps = torch.full((), float(step), dtype=torch.float32, device=params[0].device)
            private_api("torch_fused_adamw")(
                params,
                group_grads,
                moments,
                velocities,
                [],
                [steps] * len(params),
                lr=lr,
                beta1=optimizer.beta_1,
                beta2=optimizer.beta_2,
                weight_decay=wd if decay else 0.0,
                eps=eps,
                amsgrad=False,
                maximize=False,
            )


if TYPE_CHECKING:  # the mixin uses attributes of the AdamW it is mixed into
    _OptimizerMixinBase = Any
else:
    _OptimizerMixinBase = object


class TorchFusedAdamWHooks(_OptimizerMixinBase):
    """Mixin for a ``keras.optimizers.AdamW`` subclass: its update as :func:`torch_fused_adamw`.

    Overrides two private methods of ``keras.optimizers.Optimizer``:
    ``_backend_update_step`` (the update of all variables) runs the fused
    kernel, and ``_apply_weight_decay`` is skipped since the kernel applies
    the decay. Where :func:`torch_fused_adamw_supported` is False (other
    backends, AMSGrad, an older torch, or a Keras without these internals)
    both are Keras' own. Put it first in the bases:
    ``class MyAdamW(TorchFusedAdamWHooks, keras.optimizers.AdamW)``.
    """

    def _apply_weight_decay(self, variables: Sequence[Any]) -> None:
        if not torch_fused_adamw_supported(self):  # else inside `_backend_update_step`
            super()._apply_weight_decay(variables)

    def _backend_update_step(
        self, grads: Sequence[Any], trainable_variables: Sequence[Any], learning_rate: Any
    ) -> None:
        if torch_fused_adamw_supported(self):
            torch_fused_adamw(
                self,
                grads,
                trainable_variables,
                learning_rate,
                self.weight_decay,
                self._use_weight_decay,
            )
        else:
            super()._backend_update_step(grads, trainable_variables, learning_rate)


def release_free_heap() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``).

    Returns:
        True when it ran; False where the C library has no ``malloc_trim``
        (macOS, Windows, musl), where nothing is done.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return False
    trim(0)
    return True


def release_heap_after_first_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, calling :func:`release_free_heap` once after its first call (jax, tensorflow).

    XLA's compile of the train step frees hundreds of MiB that glibc keeps
    mapped, so the process's resident memory would stay high for the whole
    run. The release runs once, after the compiling call. On torch nothing
    is compiled and ``function`` is returned as is.
    """
    if keras.backend.backend() not in ("jax", "tensorflow"):
        return function
    pending = [True]

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        if pending:
            pending.clear()
            release_free_heap()
        return result

    return call


# ------------------------------------------------------ jax: the train step's compile options
#: XLA:CPU schedules for concurrency by default, which starts every
#: recomputation of a rematerialized block as early as its inputs allow, so
#: ``jax.checkpoint`` saves almost nothing. The memory-ordered scheduler
#: keeps recomputations next to their use, at no cost in speed (the docs'
#: performance page has the figures).
#: ``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false`` sets
#: the same for a whole process.
JAX_CPU_COMPILER_OPTIONS: dict[str, str] = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"
}


def jax_train_step_jit(model: Any) -> Callable[..., Any] | None:
    """Keras' jitted jax train step with :data:`JAX_CPU_COMPILER_OPTIONS`, or None.

    ``jax.jit(model.train_step, donate_argnums=0)``, what Keras' jax trainer
    compiles, plus the CPU compile options. None (the caller keeps Keras'
    own) off jax, off the CPU, when eager or not jit-compiled, under a
    ``keras.distribution`` (Keras adds output shardings there) or Flax NNX,
    and on a jax that does not take the options.
    """
    if keras.backend.backend() != "jax" or model.run_eagerly or not model.jit_compile:
        return None
    import jax

    nnx = getattr(keras.config, "is_nnx_enabled", lambda: False)  # before Keras 3.11: no NNX
    if (
        jax.default_backend() != "cpu"
        or keras.distribution.distribution() is not None
        or nnx()
        or not _jax_accepts_cpu_compiler_options()
    ):
        return None
    return jax.jit(model.train_step, donate_argnums=0, compiler_options=JAX_CPU_COMPILER_OPTIONS)


@functools.cache
def _jax_accepts_cpu_compiler_options() -> bool:
    """Whether this jax compiles with :data:`JAX_CPU_COMPILER_OPTIONS` (``jit(compiler_options=)``
    came in jax 0.4.36, the scheduler option in later jaxlibs)."""
    import jax
    import numpy as np

    try:
        jax.jit(lambda x: x + 1, compiler_options=JAX_CPU_COMPILER_OPTIONS).lower(
            np.float32(0)
        ).compile()
    except Exception:  # TypeError (old jit) or an unknown-option error
        return False
    return True


# ------------------------------------------------ keras.Model internals of the JEPA base
__all__ += ["model_distribute_strategy", "model_train_function"]

_NOT_FOUND = object()


def model_train_function(model: Any, step: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function ``fit`` calls, made by Keras around the compiled train ``step``, or None.

    ``keras.Model`` wraps a compiled step (the loop over
    ``steps_per_execution``, the state passed in and out) with its internal
    ``_make_function``; the JEPA base hands it the jax CPU step of
    :func:`jax_train_step_jit`. None where this Keras has no such method (or
    ``public_paths("model_train_function")``): the caller then keeps
    ``keras.Model.make_train_function``, Keras' own step.
    """
    make = None if "model_train_function" in _disabled else getattr(model, "_make_function", None)
    return None if make is None else make(step)


def model_distribute_strategy(model: Any) -> Any:
    """The ``tf.distribute`` strategy ``model`` runs under; None without one or off tensorflow.

    Keras' tensorflow trainer keeps it in the internal ``_distribute_strategy``.
    Where that is missing (or ``public_paths("model_distribute_strategy")``):
    the strategy of the current ``tf.distribute`` scope, if any.
    """
    strategy = (
        _NOT_FOUND
        if "model_distribute_strategy" in _disabled
        else getattr(model, "_distribute_strategy", _NOT_FOUND)
    )
    if strategy is not _NOT_FOUND:
        return strategy
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
