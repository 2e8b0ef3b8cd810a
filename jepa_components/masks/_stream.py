"""Counter-based random numbers: uniform draws keyed by (seed, sample, draw).

A mask sampler must give sample ``k`` of its stream the same masks however the
stream is split into batches or data-loader workers. A sequential generator
cannot do that cheaply, so every random number here is a pure function of
``(seed, sample_index, draw_index)``: SplitMix64 (Steele et al., "Fast
splittable pseudorandom number generators", OOPSLA 2014) with one stream per
sample, whose starting state is the SplitMix64 finaliser of the seed key and
the sample index. It is vectorised over numpy ``uint64`` arrays,
needs no state, and is far cheaper than creating one ``numpy.random.Generator``
per sample.

Speed notes (a batch needs a few thousand numbers, so each numpy call costs
more than its arithmetic): the per-sample state is hashed on the small
``sample_ids`` array only, the big ``(samples x draws)`` array is mixed in
place, and the float conversion is a bit trick (52 random mantissa bits under
the exponent of 1.0, minus 1.0) instead of a slow ``uint64 -> float64`` cast.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_SAMPLE_MUL = np.uint64(0xD1B54A32D192ED03)
_S30, _S27, _S31, _S12 = (np.uint64(v) for v in (30, 27, 31, 12))
_ONE_BITS = np.uint64(0x3FF0000000000000)  # float64 1.0


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    return z ^ (z >> _S31)


def _mix_inplace(z: np.ndarray) -> None:
    """:func:`_mix` on a writable uint64 array, without temporaries but one."""
    z += _GOLDEN
    t = np.right_shift(z, _S30, out=np.empty_like(z))
    z ^= t
    z *= _MUL1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _MUL2
    np.right_shift(z, _S31, out=t)
    z ^= t


def seed_to_key(seed: int, purpose: int = 0) -> np.uint64:
    """Turn a user seed (any int >= 0) and a purpose tag into a 64-bit key."""
    folded = 0
    seed = int(seed)
    while True:  # fold seeds wider than 64 bits (e.g. SeedSequence entropy)
        folded ^= seed & 0xFFFFFFFFFFFFFFFF
        seed >>= 64
        if not seed:
            break
    with np.errstate(over="ignore"):
        key = _mix(np.array([folded], dtype=np.uint64))
        key = _mix(key ^ np.uint64(purpose & 0xFFFFFFFFFFFFFFFF))
    return key[0]


def uniform(key: np.uint64, sample_ids: np.ndarray, draw_ids: np.ndarray) -> np.ndarray:
    """Uniform float64 in [0, 1) (multiples of 2**-52) for broadcast ``(sample_ids, draw_ids)``.

    ``sample_ids`` and ``draw_ids`` are non-negative integer arrays that
    broadcast together (e.g. ``(R, 1)`` and ``(D,)`` give ``(R, D)``, and
    ``(1, R)`` with ``(D, 1)`` gives the draw-major ``(D, R)``). The number
    for one ``(sample, draw)`` pair never depends on which other pairs are
    drawn with it. Returns a fresh, writable array.
    """
    s = np.asarray(sample_ids, dtype=np.uint64)
    d = np.asarray(draw_ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        # a SplitMix64 stream per sample: state_0 = mix(key ^ sample * odd), a
        # bijection of the sample index, so no two samples share a state; draw d
        # outputs mix(state_0 + d * golden)
        state = _mix(key ^ (s * _SAMPLE_MUL))
        z = np.asarray(state + d * _GOLDEN)  # fresh (samples x draws) array
    _mix_inplace(z)
    z >>= _S12
    z |= _ONE_BITS  # 1.0 + 52 random mantissa bits: a float in [1, 2)
    u = z.view(np.float64)
    u -= 1.0
    return u
