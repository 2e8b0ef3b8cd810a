"""Counter-based random numbers: uniform draws keyed by (seed, sample, draw).

A mask sampler must give sample ``k`` of its stream the same masks however the
stream is split into batches or data-loader workers. A sequential generator
cannot do that cheaply, so every random number here is a pure function of
``(seed, sample_index, draw_index)``: a SplitMix64 finaliser (Steele et al.,
"Fast splittable pseudorandom number generators", OOPSLA 2014) applied twice to
a mix of the three counters. It is vectorised over numpy ``uint64`` arrays,
needs no state, and is far cheaper than creating one ``numpy.random.Generator``
per sample.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_SAMPLE_MUL = np.uint64(0xD1B54A32D192ED03)
_S30, _S27, _S31, _S11 = (np.uint64(v) for v in (30, 27, 31, 11))
_TO_UNIT = 2.0**-53


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    return z ^ (z >> _S31)


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
    """Uniform floats in [0, 1) for broadcast pairs ``(sample_ids, draw_ids)``.

    ``sample_ids`` and ``draw_ids`` are non-negative integer arrays that
    broadcast together (e.g. ``(R, 1)`` and ``(D,)`` give ``(R, D)``). The
    number for one ``(sample, draw)`` pair never depends on which other pairs
    are drawn with it.
    """
    s = np.asarray(sample_ids, dtype=np.uint64)
    d = np.asarray(draw_ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        # a SplitMix64 stream per sample: state_0 = hash(key, sample), draw d
        # outputs mix(state_0 + (d + 1) * golden)
        z = _mix(_mix(key ^ (s * _SAMPLE_MUL))) + d * _GOLDEN
        z = _mix(z)
    return (z >> _S11).astype(np.float64) * _TO_UNIT
