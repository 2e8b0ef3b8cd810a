"""SIGReg and the LeJEPA invariance term (Balestriero & LeCun 2025, arXiv 2511.08544).

LeJEPA trains an encoder + projector with no teacher, no stop-gradient and no
schedule: ``loss = lam * SIGReg(proj) + (1 - lam) * invariance(proj)``.

* :func:`sigreg` (Sketched Isotropic Gaussian Regularization) projects the
  embeddings on ``K`` unit directions and, on each 1-D projection, measures
  the Epps-Pulley distance between the empirical characteristic function
  (ECF) and the standard normal one, ``exp(-t^2 / 2)``:
  ``N * integral over t of |ECF(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt``, by the
  trapezoid rule on ``[0, t_max]`` with weights doubled for the symmetric
  half ``[-t_max, 0]`` (as the reference ``EppsPulley``, rbalestr-lab/lejepa
  ``lejepa/univariate/epps_pulley.py``), averaged over the directions. Near 0
  for isotropic Gaussian embeddings (its expectation there is ``O(1)``: the
  statistic is scaled by ``N``); large for collapsed, low-rank, shifted or
  anisotropic ones.
* :func:`sigreg_directions` draws the ``K`` directions from a counter-based
  stream keyed by ``(seed, step)``: every device and every resumed run gets
  the same directions without communication (the reference seeds a
  ``torch.Generator`` with a step counter all-reduced across ranks).
* :func:`lejepa_invariance`: the mean squared distance of every view's
  projection to the mean of the global views (``MINIMAL.md``:
  ``(proj.mean(0) - proj).square().mean()``, all views global).

Array-namespace generic like :mod:`jepa_components.losses`: ``xp`` is
``numpy`` (default) or ``keras.ops``.

**Data parallelism.** The statistic squares the *batch mean* of
``cos(t x)`` and ``sin(t x)``; the reference all-reduces those means before
squaring, so the loss is the one of the global batch. A per-device SIGReg on
local batches is a different, biased loss (its minibatch bias is ``O(1/N)``
in the local ``N``). :func:`sigreg` takes the means over the batch axis of
whatever array it is given: under a framework that shards the batch axis of
one global array (jax ``jit`` with a ``keras.distribution.DataParallel``
layout), the means are global and the value is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jepa_components._validation import check_float, check_int, check_seed
from jepa_components.masks import _stream

__all__ = [
    "epps_pulley_weights",
    "lejepa_invariance",
    "sigreg",
    "sigreg_directions",
]

_DIRECTIONS = 7  # stream purpose tag of sigreg_directions


def epps_pulley_weights(t_max: float = 3.0, num_knots: int = 17):
    """Knots, quadrature weights and ``exp(-t^2/2)`` of the Epps-Pulley integral.

    Trapezoid rule on ``num_knots`` evenly spaced ``t`` in ``[0, t_max]``:
    ``dt`` at both ends, ``2 dt`` inside (the symmetric half doubled), times
    the Gaussian weight ``exp(-t^2/2)``; the reference's ``EppsPulley``
    buffers ``t``, ``weights`` and ``phi``.

    Returns:
        ``(t, weights, phi)``, three ``(num_knots,)`` float64 arrays.

    Example:
        >>> t, w, phi = epps_pulley_weights(t_max=2.0, num_knots=3)
        >>> t.tolist(), w.round(4).tolist()
        ([0.0, 1.0, 2.0], [1.0, 1.2131, 0.1353])
    """
    t_max = check_float("t_max", t_max, low=0.0, low_open=True)
    num_knots = check_int("num_knots", num_knots, low=2)
    t = np.linspace(0.0, t_max, num_knots)
    dt = t_max / (num_knots - 1)
    weights = np.full(num_knots, 2.0 * dt)
    weights[[0, -1]] = dt
    phi = np.exp(-0.5 * t * t)
    return t, weights * phi, phi


def sigreg_directions(
    dim: int, num_slices: int = 256, *, step: int = 0, seed: int = 0, dtype: Any = "float32"
) -> np.ndarray:
    """``num_slices`` random unit directions in ``R^dim``, a pure function of ``(seed, step)``.

    Gaussian vectors (Box-Muller on the counter-based uniforms of
    :mod:`jepa_components.masks._stream`) normalised to unit length, as the
    reference's ``randn`` directions. Draw new ones every training step
    (``step`` = the optimizer step) as the reference does; the same
    ``(seed, step)`` gives the same directions on every device, platform and
    resumed run.

    Args:
        dim: embedding width ``D`` (>= 1).
        num_slices: number of directions ``K`` (>= 1; the paper uses 1024,
            ``MINIMAL.md`` 256).
        step: int >= 0, the training step.
        seed: int >= 0.
        dtype: NumPy dtype of the result.

    Returns:
        ``(D, K)`` array whose columns have unit norm.

    Example:
        >>> a = sigreg_directions(8, 4, step=3, seed=1)
        >>> a.shape, bool(np.allclose(np.linalg.norm(a, axis=0), 1.0, atol=1e-6))
        ((8, 4), True)
        >>> bool((a == sigreg_directions(8, 4, step=3, seed=1)).all())
        True
    """
    dim = check_int("dim", dim, low=1)
    num_slices = check_int("num_slices", num_slices, low=1)
    step = check_int("step", step, low=0)
    seed = check_seed(seed)
    if seed is None:
        raise ValueError(
            "Invalid value for argument `seed`. Expected an integer >= 0 (the "
            "directions must be the same on every device). Received: seed=None"
        )
    n = dim * num_slices
    key = _stream.seed_to_key(seed, _DIRECTIONS)
    u = _stream.uniform(key, np.array([step]), np.arange(2 * ((n + 1) // 2)))
    u1, u2 = u[0::2], u[1::2]
    radius = np.sqrt(-2.0 * np.log1p(-u1))  # 1 - u1 in (0, 1]: finite
    gauss = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
    a = gauss[:n].reshape(dim, num_slices)
    a /= np.linalg.norm(a, axis=0, keepdims=True)
    return a.astype(dtype)


def sigreg(
    embeddings: Any,
    directions: Any,
    *,
    t_max: float = 3.0,
    num_knots: int = 17,
    xp: Any = np,
) -> Any:
    """SIGReg: the sliced Epps-Pulley statistic of ``embeddings``, averaged over directions.

    For every direction ``a`` (a column of ``directions``) and every knot
    ``t``: ``err(t) = (mean cos(t x a) - exp(-t^2/2))^2 + (mean sin(t x a))^2``
    with means over the ``N`` samples; the statistic is ``N * sum_t
    w(t) err(t)`` (:func:`epps_pulley_weights`), then the mean over the
    directions (and over any leading axes, e.g. views). Equals the reference
    ``SlicingUnivariateTest(EppsPulley(t_max, num_knots), K)`` on the same
    directions.

    Args:
        embeddings: ``(..., N, D)`` float: samples on axis -2 (leading axes,
            such as views ``(V, N, D)``, are averaged over).
        directions: ``(D, K)`` unit directions (:func:`sigreg_directions`).
        t_max, num_knots: the integration range and knots (reference: 3, 17).
        xp: ``numpy`` or ``keras.ops``.

    Returns:
        Scalar.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = sigreg_directions(16, 64, seed=0)
        >>> gaussian = sigreg(rng.standard_normal((512, 16)), a)
        >>> collapsed = sigreg(np.ones((512, 16)), a)
        >>> bool(gaussian < 2.0), bool(collapsed > 500.0)  # O(1) vs growing with N
        (True, True)
    """
    shape = tuple(embeddings.shape)
    if len(shape) < 2 or tuple(directions.shape)[:1] != shape[-1:]:
        raise ValueError(
            "Invalid value for argument `directions`. Expected (D, K) with D the "
            f"last axis of `embeddings` {shape}. Received: directions with shape "
            f"{tuple(directions.shape)}"
        )
    n = shape[-2]
    t, weights, phi = epps_pulley_weights(t_max, num_knots)
    dtype = embeddings.dtype
    t = xp.convert_to_tensor(t, dtype) if xp is not np else t.astype(dtype)
    weights = xp.convert_to_tensor(weights, dtype) if xp is not np else weights.astype(dtype)
    phi = xp.convert_to_tensor(phi, dtype) if xp is not np else phi.astype(dtype)
    proj = xp.matmul(embeddings, directions)  # (..., N, K)
    x_t = xp.expand_dims(proj, -1) * t  # (..., N, K, T)
    cos_mean = xp.mean(xp.cos(x_t), axis=-3)  # (..., K, T)
    sin_mean = xp.mean(xp.sin(x_t), axis=-3)
    err = xp.square(cos_mean - phi) + xp.square(sin_mean)
    if n is None:  # unknown until run time (a tensorflow graph)
        n = xp.cast(xp.shape(embeddings)[-2], dtype)
    return xp.mean(xp.matmul(err, weights)) * n


def lejepa_invariance(projections: Any, num_global: int | None = None, *, xp: Any = np) -> Any:
    """Mean squared distance of every view's projection to the mean of the global views.

    Args:
        projections: ``(V, N, d)``: ``V`` views of ``N`` images, the global
            views first.
        num_global: how many of the first views are global (their mean is the
            centre every view is pulled to); None: all ``V``, as ``MINIMAL.md``
            (``(proj.mean(0) - proj).square().mean()``).
        xp: ``numpy`` or ``keras.ops``.

    Returns:
        Scalar: mean over views, images and features.

    Example:
        >>> p = np.stack([np.zeros((2, 3)), np.full((2, 3), 2.0)])  # 2 views
        >>> float(lejepa_invariance(p))  # centre 1: every entry 1 away
        1.0
        >>> float(lejepa_invariance(p, num_global=1))  # centre 0: (0 + 4) / 2
        2.0
    """
    shape = tuple(projections.shape)
    if len(shape) != 3:
        raise ValueError(
            "Invalid value for argument `projections`. Expected a rank-3 array "
            f"(V, N, d). Received: projections with shape {shape}"
        )
    if num_global is not None:
        num_global = check_int("num_global", num_global, low=1, high=shape[0])
    centre = xp.mean(projections if num_global is None else projections[:num_global], axis=0)
    return xp.mean(xp.square(projections - centre))
