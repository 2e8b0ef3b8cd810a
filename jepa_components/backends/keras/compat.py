"""Backend-specific code of the Keras I-JEPA: each function is a fast path for one backend
and returns a "not handled" value elsewhere, so callers keep one generic ``keras.ops`` path.

- :func:`fused_blend`: the EMA update as one multi-tensor kernel on torch.
- :func:`no_autocast`: float variables read as stored under a mixed-precision policy.
- :func:`residual_gradient_boundary`: on jax, makes XLA materialize the gradient
  of the residual stream at every block input (else XLA CPU re-computes the
  whole backward add chain inside every consumer: O(depth^2)).
- :func:`torch_block_call`: a transformer block in ``torch.nn.functional`` (no
  per-op ``keras.ops`` / ``Layer.__call__`` overhead in eager torch).
- :func:`torch_fused_adamw`: AdamW as ``torch._fused_adamw_`` (one kernel per
  parameter group instead of a Python loop of Keras ops per variable).
- :func:`jax_train_step_jit`: on jax's CPU, the train step compiled with
  XLA's memory-ordered scheduler (what makes ``remat`` save memory there).
- :func:`release_heap_after_first_call`: on jax and tensorflow, gives the heap
  that XLA's compile freed back to the OS once the first (compiling) train
  step has run.

**Fused EMA on torch.**

On jax and tensorflow the target update ``target = m * target + (1 - m) *
online`` runs inside the compiled train step, where XLA fuses the
per-variable expressions into a few kernels. The torch backend runs the step
eagerly: the same expression written with ``keras.ops`` costs ~8 dispatched
ops per variable (vit_tiny, 152 variables, 2-core CPU: 9-190 ms per update,
depending on load). This module does it with one multi-tensor kernel,
``torch._foreach_lerp_(targets, onlines, 1 - m)`` (~1 ms), i.e.
``t + (1 - m) * (o - t)``: the same update up to float rounding, and exactly
``t`` when ``m = 1``. The weight is passed as (expanded) 0-d tensors, so the
momentum never leaves the device (no host sync per step on GPU); a python
scalar ``m`` would be equally fast on CPU but needs ``.item()`` there, and
``_foreach_mul_`` with a 0-d tensor is ~10x slower (measured).
"""

import ctypes
import functools

import keras

__all__ = ["JAX_CPU_COMPILER_OPTIONS", "fused_blend", "jax_train_step_jit", "no_autocast",
           "release_free_heap", "release_heap_after_first_call",
           "residual_gradient_boundary", "torch_block_call", "torch_fused_adamw",
           "torch_fused_adamw_supported"]


def fused_blend(pairs, momentum):
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
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    if in_stateless_scope():
        return False  # e.g. `stateless_call`: assignments must go through Keras
    import torch

    targets = [target.value for target, _ in pairs]
    onlines = [online.value.detach() for _, online in pairs]
    if any(t.dtype != targets[0].dtype for t in targets + onlines):
        return False
    with torch.no_grad():
        m = torch.as_tensor(momentum, dtype=targets[0].dtype, device=targets[0].device)
        weight = 1.0 - m
        torch._foreach_lerp_(targets, onlines, [weight.expand_as(t) for t in targets])
    return True


def no_autocast():
    """Context: float variables read as stored, whatever the mixed-precision policy.

    ``Layer.__call__`` of a ``mixed_bfloat16`` layer opens an autocast scope
    in which every float variable reads as bfloat16; bookkeeping that must
    stay float32 inside ``call`` (the EMA) runs under this. Keras has no
    public API for it: ``AutocastScope(None)`` is the internal one.
    """
    from keras.src.backend.common.variables import AutocastScope

    return AutocastScope(None)


# --------------------------------------------------------------- jax: gradient boundary
_BOUNDARY = None


def _make_jax_boundary():
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


def residual_gradient_boundary(x):
    """``x`` unchanged; on jax its gradient is materialized here (see :func:`_make_jax_boundary`).

    Measured (vit_tiny/16, 96 px, batch 16, 1 thread, CPU time): forward +
    backward of the I-JEPA loss 356 -> 213 ms (with
    ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), first (compiling) step 62 -> 33 s.
    """
    global _BOUNDARY
    if keras.backend.backend() != "jax":
        return x
    if _BOUNDARY is None:
        _BOUNDARY = _make_jax_boundary()
    return _BOUNDARY(x)


# --------------------------------------------------- torch: functional transformer block
_TORCH_ACTIVATIONS = {
    "gelu": lambda F, x: F.gelu(x),
    "gelu_tanh": lambda F, x: F.gelu(x, approximate="tanh"),
    "relu": lambda F, x: F.relu(x),
    "silu": lambda F, x: F.silu(x),
    "swish": lambda F, x: F.silu(x),
}


def torch_block_call(block, x, key_mask=None):
    """``block(x, key_mask)`` of a ``TransformerBlock`` in ``torch.nn.functional``, or None.

    The same math and weights as the ``keras.ops`` path (bitwise equal
    outputs and gradients in float32, tested): LayerNorm computed in float32
    and cast back (as ``keras.ops.layer_normalization``), ``F.linear`` with
    the ``(in, out)`` kernel, ``F.scaled_dot_product_attention`` with the
    boolean key mask, the block's activation. Eager torch pays Python
    overhead per ``keras.ops`` call and per ``Layer.__call__`` (~10 per
    block); this path has none of it: Keras-torch forward 210 -> 156 ms,
    forward + backward 354 -> 297 ms (official: 149 / 291 ms; vit_tiny/16,
    96 px, batch 16, 1 thread, CPU time).

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
        out = F.layer_norm(h.float(), (h.shape[-1],), layer.gamma.value, layer.beta.value,
                           layer.epsilon)
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
def torch_fused_adamw_supported(optimizer):
    """Whether :func:`torch_fused_adamw` can run ``optimizer``'s update (weight decay included).

    Torch backend, no AMSGrad, and torch >= 2.4 (the first with a CPU kernel
    of ``_fused_adamw_``). The optimizer asks once, for both its update and
    its weight decay, so they never disagree.
    """
    if keras.backend.backend() != "torch" or getattr(optimizer, "amsgrad", False):
        return False
    import torch

    release = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return release >= (2, 4)


def torch_fused_adamw(optimizer, grads, variables, learning_rate, weight_decay, use_decay):
    """One Adam(W) update as ``torch._fused_adamw_``, Keras' formula.

    Keras: ``w -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps)``; the torch
    kernel: ``w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps')``; with
    ``eps' = eps / sqrt(bc2)`` they are the same expression (``bc = 1 -
    beta^t``). Decoupled decay ``w *= 1 - lr * wd`` is in both. Two kernel
    calls (with and without decay) replace a Python loop of ~10 Keras ops
    per variable: vit_tiny + predictor (~9.7M parameters), 1 thread:
    54.7 -> 9.2 ms per update, weights equal to 7e-7 after 12 updates.
    Only where :func:`torch_fused_adamw_supported` says so.

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
    eps = optimizer.epsilon / math.sqrt(1.0 - optimizer.beta_2 ** step)
    lr, wd = float(learning_rate), float(weight_decay or 0.0)
    groups = {True: ([], [], [], []), False: ([], [], [], [])}
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
            torch._fused_adamw_(params, group_grads, moments, velocities, [],
                                [steps] * len(params), lr=lr, beta1=optimizer.beta_1,
                                beta2=optimizer.beta_2, weight_decay=wd if decay else 0.0,
                                eps=eps, amsgrad=False, maximize=False)


def release_free_heap():
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


def release_heap_after_first_call(function):
    """``function``, calling :func:`release_free_heap` once after its first call (jax, tensorflow).

    XLA's compile of the train step frees hundreds of MiB that glibc keeps
    mapped, so the process's resident memory stays high for the whole run.
    ``python benchmarks/bench_train_step.py --memory-only --backends
    jax,tensorflow --threads 2`` (vit_tiny/16, 96 px, batch 16; peak RSS of
    the steady steps above the post-import baseline), two runs each: jax
    890 / 869 MiB without the release, 582 / 578 MiB with it; tensorflow
    1870 / 1875 against 1608 / 1612 MiB. The step time is unchanged within
    noise (jax 156 vs 160 ms); the call itself takes 25-140 ms, once. On
    torch nothing is compiled and ``function`` is returned as is.
    """
    if keras.backend.backend() not in ("jax", "tensorflow"):
        return function
    pending = [True]

    @functools.wraps(function)
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        if pending:
            pending.clear()
            release_free_heap()
        return result

    return call


# ------------------------------------------------------ jax: the train step's compile options
#: XLA:CPU schedules for concurrency by default, which starts every
#: recomputation of a rematerialized block as early as its inputs allow, so
#: ``jax.checkpoint`` saves nothing (vit_tiny/16 at 96 px, batch 16, every
#: block ``remat=True``: XLA's preallocated temp 222 MiB, against 197 MiB
#: without remat). The memory-ordered scheduler keeps recomputations next to
#: their use: 29 MiB with remat, 176 MiB without, and the step is no slower
#: (one run each: 1.81x the official step against 1.79x without remat,
#: 2.15x with it). ``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false``
#: sets the same for a whole process.
JAX_CPU_COMPILER_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def jax_train_step_jit(model):
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
    from keras.src.backend.config import is_nnx_enabled
    from keras.src.distribution import distribution_lib

    if (jax.default_backend() != "cpu" or distribution_lib.distribution() is not None
            or is_nnx_enabled() or not _jax_accepts_cpu_compiler_options()):
        return None
    return jax.jit(model.train_step, donate_argnums=0, compiler_options=JAX_CPU_COMPILER_OPTIONS)


@functools.cache
def _jax_accepts_cpu_compiler_options():
    """Whether this jax compiles with :data:`JAX_CPU_COMPILER_OPTIONS` (``jit(compiler_options=)``
    came in jax 0.4.36, the scheduler option in later jaxlibs)."""
    import jax
    import numpy as np

    try:
        jax.jit(lambda x: x + 1, compiler_options=JAX_CPU_COMPILER_OPTIONS).lower(
            np.float32(0)).compile()
    except Exception:  # noqa: BLE001 - TypeError (old jit) or an unknown-option error
        return False
    return True
