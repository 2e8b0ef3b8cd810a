"""Feasibility of a sampler configuration, decided once at construction.

A sampler redraws a sample whose context keeps fewer than ``min_context``
patches, at most ``max_attempts`` times, then raises. With a per-draw failure
probability ``p`` (draws are independent: every attempt reads fresh numbers of
the counter-based stream), one sample fails with probability
``p ** max_attempts``. A training run must not die on sample 1,234,567
because of its configuration, so the constructor accepts a configuration only
when

    p ** max_attempts * RUN_SAMPLES <= RUN_FAILURE,
    i.e. p <= (1e-6 / 1e12) ** (1 / max_attempts)
            (0.66 for the default max_attempts=100, 0.016 for 10),

so that a run of ``RUN_SAMPLES = 1e12`` samples fails with probability at
most ``RUN_FAILURE = 1e-6``. The constructor decides in this order:

1. **Exact bounds.** Each sampler gives the smallest and the largest context
   count a draw can produce (e.g. multi-block: the smallest context block
   minus ``num_targets`` times the largest target area inside it). Largest
   ``< min_context``: every draw fails, refuse. Smallest ``>= min_context``:
   ``p = 0``, accept.
2. **Probe.** Otherwise the constructor draws ``256, 1024, 4096, 16384``
   (cumulative) probe samples from a fixed stream (independent of the
   sampler's seed, so acceptance depends on the configuration only, and of
   global random state) and counts the draws that fail. After each round it
   computes the Chernoff (KL) confidence interval of ``p`` at level
   ``1 - PROBE_DELTA / 4`` (``PROBE_DELTA = 1e-9`` over the four looks):
   upper end below the threshold, accept; lower end above it, refuse; after
   the last round still undecided, refuse. So a configuration whose true
   ``p`` exceeds the threshold is accepted with probability below ``1e-9``.
   The default 14x14 configuration is accepted after the first 256 draws
   (no failure seen; about 0.3 ms). With fewer than 7 ``max_attempts`` the
   threshold is below what 16384 failure-free draws can show, so only
   configurations feasible by the exact bound are accepted.

Example:
    >>> round(failure_threshold(100), 3), round(failure_threshold(10), 4)
    (0.661, 0.0158)
    >>> lo, hi = chernoff_interval(0, 256, 2.5e-10)
    >>> lo, round(hi, 3)
    (0.0, 0.083)
    >>> min_probe_attempts()
    7
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

RUN_SAMPLES = 1e12
RUN_FAILURE = 1e-6
PROBE_DELTA = 1e-9
PROBE_ROUNDS = (256, 1024, 4096, 16384)  # cumulative probe draws after each round


class Feasibility(NamedTuple):
    """How a configuration was accepted: ``sampler.feasibility``.

    ``method`` is ``"exact"`` (every draw keeps ``min_context``; then
    ``draws = failures = 0``) or ``"probe"``; ``failure_bound`` is the upper
    confidence bound on the per-draw failure probability, ``threshold`` the
    largest one ``max_attempts`` tolerates.
    """

    method: str
    draws: int
    failures: int
    failure_bound: float
    threshold: float


def failure_threshold(max_attempts: int) -> float:
    """Largest per-draw failure probability that ``max_attempts`` redraws tolerate."""
    return (RUN_FAILURE / RUN_SAMPLES) ** (1.0 / max_attempts)


def min_probe_attempts() -> int:
    """Fewest ``max_attempts`` with which a failure-free probe can accept (7)."""
    best = chernoff_interval(0, PROBE_ROUNDS[-1], PROBE_DELTA / len(PROBE_ROUNDS))[1]
    return math.ceil(math.log(RUN_FAILURE / RUN_SAMPLES) / math.log(best))


def _kl(p: float, q: float) -> float:
    """KL divergence of Bernoulli(p) from Bernoulli(q)."""
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def chernoff_interval(failures: int, draws: int, delta: float):
    """``(lo, hi)``: the ``p`` with ``draws * KL(failures / draws, p) <= log(1 / delta)``.

    Chernoff's bound ``P(p_hat <= x) <= exp(-n KL(x, p))`` (for ``x < p``,
    and its mirror) makes each end wrong with probability at most ``delta``.
    """
    p_hat, budget = failures / draws, math.log(1.0 / delta) / draws

    def solve(a, b):  # bisection between p_hat (inside) and a bound (outside)
        for _ in range(60):
            mid = 0.5 * (a + b)
            a, b = (mid, b) if _kl(p_hat, mid) <= budget else (a, mid)
        return a

    lo = 0.0 if failures == 0 else solve(p_hat, 0.0)
    hi = 1.0 if failures == draws else solve(p_hat, 1.0)
    return lo, hi


def probe(count_failures: Callable[[int, int], int], max_attempts: int):
    """Decide a configuration from probe draws.

    ``count_failures(start, n)`` draws probe samples ``start .. start + n - 1``
    and returns how many keep fewer than ``min_context`` patches. Returns
    ``(accepted, Feasibility)``.
    """
    threshold = failure_threshold(max_attempts)
    delta = PROBE_DELTA / len(PROBE_ROUNDS)
    draws = failures = 0
    hi = 1.0
    if max_attempts < min_probe_attempts():
        return False, Feasibility("probe", 0, 0, 1.0, threshold)  # no probe could accept
    for total in PROBE_ROUNDS:
        failures += count_failures(draws, total - draws)
        draws = total
        lo, hi = chernoff_interval(failures, draws, delta)
        if hi <= threshold:
            return True, Feasibility("probe", draws, failures, hi, threshold)
        if lo > threshold:
            break
    return False, Feasibility("probe", draws, failures, hi, threshold)
