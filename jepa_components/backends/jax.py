"""JAX glue: a fused, in-place EMA update of a target-encoder parameter tree.

``target <- m * target + (1 - m) * online`` for every leaf in one compiled
call, donating the old target buffers so no second copy of the encoder is
allocated (I-JEPA, Assran et al. 2023, Sec. 3: the target encoder is an EMA
of the context encoder). Apply it after every optimizer step, with ``m`` from
:func:`jepa_components.schedules.ema_momentum`.

Example:
    >>> import jax.numpy as jnp
    >>> from jepa_components.backends.jax import ema_update
    >>> target = {"w": jnp.zeros(3)}
    >>> online = {"w": jnp.ones(3)}
    >>> ema_update(target, online, 0.75)["w"].tolist()
    [0.25, 0.25, 0.25]
"""

from __future__ import annotations

try:
    import jax
except ImportError as error:  # pragma: no cover - exercised without jax
    raise ImportError(
        'jepa_components.backends.jax needs JAX: pip install "jepa-components[jax]"'
    ) from error

__all__ = ["ema_update"]


def _ema_tree(target, online, momentum):
    return jax.tree_util.tree_map(
        lambda t, o: (momentum * t + (1.0 - momentum) * jax.lax.stop_gradient(o)).astype(t.dtype),
        target,
        online,
    )


_ema = jax.jit(_ema_tree)
_ema_donated = jax.jit(_ema_tree, donate_argnums=0)


def ema_update(target, online, momentum, *, donate: bool = False):
    """EMA of ``online`` into ``target`` (same tree structure), momentum in [0, 1].

    With ``donate=True`` the old ``target`` buffers are reused for the result
    and must not be used afterwards (on CPU JAX may ignore donation).
    """
    if isinstance(momentum, (int, float)) and not 0.0 <= momentum <= 1.0:
        raise ValueError(
            "Invalid value for argument `momentum`. Expected 0 <= momentum <= 1. "
            f"Received: {momentum!r}"
        )
    return (_ema_donated if donate else _ema)(target, online, momentum)
