"""Weight initialization of the official I-JEPA code: seeds, normal init, linear layers.

Linear and patch-embedding weights come from a normal with std ``init_std``
(0.02), biases zero (the official model's ``_init_weights`` and
``init_model`` of ``src/helper.py``). The official ``trunc_normal_(std=0.02)``
cuts at the *absolute* bounds ``a=-2, b=2``, i.e. at 100 standard deviations,
so it is a plain normal in practice; Keras' ``TruncatedNormal`` would cut at
2 std (std ~0.88 of the requested one), hence ``RandomNormal`` here.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from jepa_components._validation import check_float

__all__ = ["check_output_init_std", "dense", "derive_seed", "normal_init", "output_init_stds"]


def derive_seed(seed: int | None, *path: int) -> int | None:
    """An independent int seed for one weight, derived from ``seed`` and a path.

    Keras initializers given the same int seed return the same values, so
    every weight needs its own seed. ``None`` stays ``None`` (Keras then
    draws from its global seed generator, see ``keras.utils.set_random_seed``).

    Example:
        >>> derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
        True
    """
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed), *[int(p) for p in path]])
    return int(state.generate_state(1)[0] % (2**31 - 1))


def check_output_init_std(value: object) -> float | None:
    """``value`` as a float > 0, or None (the layer's ``init_std``); else a ValueError."""
    return check_float("output_init_std", value, low=0.0, low_open=True, allow_none=True)


def output_init_stds(init_std: float, depth: int, depth_scaled_init: bool) -> list[float | None]:
    """Init std of ``attn.proj`` / ``mlp.fc2`` per block; None = ``init_std``.

    ``depth_scaled_init=True``: ``init_std / sqrt(2 l)`` for block ``l``
    (1-based), the official model's ``fix_init_weight``; False: what the
    official ``init_model`` leaves, ``init_std`` everywhere.

    Example:
        >>> output_init_stds(0.02, 2, depth_scaled_init=False)
        [None, None]
        >>> [round(s, 4) for s in output_init_stds(0.02, 2, depth_scaled_init=True)]
        [0.0141, 0.01]
    """
    if not depth_scaled_init:
        return [None] * depth
    return [float(init_std / np.sqrt(2.0 * layer_id)) for layer_id in range(1, depth + 1)]


def normal_init(std: float, seed: int | None) -> keras.initializers.Initializer:
    """``RandomNormal(0, std)`` with ``seed``: the official weight init (see the module)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=float(std), seed=seed)


def dense(
    units: int, *, use_bias: bool = True, std: float, seed: int | None, name: str, dtype: Any
) -> keras.layers.Dense:
    """Linear layer with the official init (normal std, zero bias)."""
    return keras.layers.Dense(
        units,
        use_bias=use_bias,
        kernel_initializer=normal_init(std, seed),
        bias_initializer="zeros",
        name=name,
        dtype=dtype,
    )
