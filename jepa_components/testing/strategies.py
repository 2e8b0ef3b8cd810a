"""Hypothesis strategies for sampler configurations, samplers and mask batches.

hypothesis is a test dependency, imported when a strategy is built: importing
this module works without it, calling a strategy without it raises an
``ImportError`` with the install hint.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jepa_components._validation import check_choice, check_grid
from jepa_components.masks import SAMPLERS, make_sampler
from jepa_components.masks.geometry import check_grid_size
from jepa_components.masks.sampler import RAGGED_MODES, MaskSampler

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from jepa_components.masks.batch import MaskBatch

__all__ = ["SAMPLER_KINDS", "mask_batches", "sampler_configs", "samplers"]

SAMPLER_KINDS = (
    "multiblock",
    "block",
    "raster",
    "random",
    "mae",
    "inverse_block",
    "blockwise",
    "tube",
    "random_tube",
)


def _hypothesis():
    try:
        import hypothesis
        from hypothesis import strategies
    except ImportError:  # pragma: no cover - exercised in a subprocess test
        raise ImportError(
            "The strategies of jepa_components.testing need hypothesis, a test "
            "dependency: pip install hypothesis (or pip install 'jepa-components[dev]')."
        ) from None
    return hypothesis, strategies


def _ranges_strategy(st, low, high):
    return st.tuples(st.floats(low, high), st.floats(low, high)).map(lambda p: (min(p), max(p)))


def _grid_ndim(kind):
    """2 for ``(H, W)`` kinds, 3 for ``(T, H, W)`` (video) kinds."""
    return getattr(SAMPLERS.get(kind), "grid_ndim", 2)


def _config_strategy(kind, grid_size, ragged, max_grid):
    _, st = _hypothesis()
    check_choice("kind", kind, SAMPLER_KINDS)
    if ragged is not None:
        check_choice("ragged", ragged, RAGGED_MODES)
    ndim = _grid_ndim(kind)
    if grid_size is not None:
        grid_size = (
            check_grid_size(grid_size) if ndim == 2 else check_grid("grid_size", grid_size, 3)
        )

    @st.composite
    def configs(draw):
        if grid_size is None:  # video kinds: T up to max_grid[0] of a 3-tuple, else 4
            t_max = max_grid[0] if len(max_grid) == 3 else 4
            frames = (draw(st.integers(1, t_max)),) if ndim == 3 else ()
            H, W = draw(st.integers(2, max_grid[-2])), draw(st.integers(2, max_grid[-1]))
            grid = (*frames, H, W)
        else:
            grid, (H, W) = grid_size, grid_size[-2:]
        n = math.prod(grid)
        cfg = {"grid_size": grid, "seed": draw(st.integers(0, 2**32))}
        cfg["min_context"] = draw(st.integers(0, 3) | st.integers(0, max(3, n // 4)))
        cfg["ragged"] = draw(st.sampled_from(RAGGED_MODES)) if ragged is None else ragged
        if kind == "multiblock":
            cfg.update(
                num_targets=draw(st.integers(1, 8)),
                target_scale=draw(_ranges_strategy(st, 0.01, 0.5)),
                target_aspect_ratio=draw(_ranges_strategy(st, 0.3, 3.0)),
                context_scale=draw(_ranges_strategy(st, 0.3, 1.0)),
                context_aspect_ratio=draw(_ranges_strategy(st, 0.5, 2.0)),
                allow_overlap=draw(st.booleans()),
            )
        elif kind == "block":
            cfg.update(
                target_scale=draw(_ranges_strategy(st, 0.05, 0.8)),
                target_aspect_ratio=draw(_ranges_strategy(st, 0.3, 3.0)),
            )
        elif kind == "random":
            cfg["target_scale"] = draw(_ranges_strategy(st, 0.05, 0.8))
        elif kind == "tube":  # V-JEPA tubes on (T, H, W)
            cfg.update(
                num_blocks=draw(st.integers(1, 8)),
                spatial_scale=draw(_ranges_strategy(st, 0.01, 0.8)),
                temporal_scale=draw(st.just((1.0, 1.0)) | _ranges_strategy(st, 0.1, 1.0)),
                aspect_ratio=draw(_ranges_strategy(st, 0.3, 3.0)),
                max_temporal_keep=draw(st.just(1.0) | st.floats(0.1, 1.0)),
                full_complement=draw(st.booleans()),
            )
        elif kind == "random_tube":  # exact counts: no min_context argument
            del cfg["min_context"]
            cfg["ratio"] = draw(st.floats(0.05, 0.95))
            if draw(st.integers(0, 3)) == 0:  # lengths: context >= the kept count
                kept = grid[0] * max(1, int(H * W * (1 - cfg["ratio"])))
                cfg["context_length"] = draw(st.integers(min(kept, n), n))
                cfg["target_length"] = draw(st.integers(1, n))
            return cfg
        elif kind in ("mae", "inverse_block"):  # exact counts: no min_context argument
            del cfg["min_context"]
            cfg["mask_ratio"] = draw(st.floats(0.05, 0.95))
            if kind == "inverse_block":  # num_clones stays 1: one row per sample number
                cfg["mask_prob_adjust"] = draw(st.sampled_from([0.0, 0.07, 0.1]))
                cfg["block_size"] = draw(st.integers(1, min(5, max(H, W))))
            if draw(st.integers(0, 3)) == 0:  # lengths: context >= the visible count (+-1)
                visible = max(1, int(n * (1 - cfg["mask_ratio"])))
                cfg["context_length"] = draw(st.integers(visible, n))
                cfg["target_length"] = draw(st.integers(1, n))
            return cfg
        elif kind == "blockwise":  # no min_context argument: the context is the complement
            del cfg["min_context"]
            lo, hi = draw(_ranges_strategy(st, 0.05, 0.9))
            small = draw(st.integers(1, max(1, min(16, n // 2))))
            cfg.update(
                mask_ratio=draw(st.sampled_from([lo, (lo, hi)])),
                mask_probability=draw(st.sampled_from([1.0, 0.5]) | st.floats(0.05, 1.0)),
                min_block_patches=small,
                aspect_ratio=draw(_ranges_strategy(st, 0.2, 5.0)),
                max_block_tries=draw(st.integers(1, 10)),
            )
            if draw(st.booleans()):
                cfg["max_block_patches"] = draw(st.floats(float(small), float(n)))
            if draw(st.integers(0, 3)) == 0:
                cfg["context_length"] = draw(st.integers(1, n))
                cfg["target_length"] = draw(st.integers(1, n))
            return cfg
        if draw(st.integers(0, 3)) == 0:  # now and then a cap below the largest count
            cfg["context_length"] = draw(st.integers(max(1, cfg["min_context"]), n))
            cfg["target_length"] = draw(st.integers(1, n))
        return cfg

    return configs()


def _built(kind, grid_size, ragged, max_grid):
    """Strategy of ``(sampler, config)`` pairs the constructor accepts."""
    hypothesis, st = _hypothesis()
    kinds: tuple[str, ...] = SAMPLER_KINDS if kind is None else (kind,)
    if kind is None and grid_size is not None:  # the kinds whose grids have its dimensions
        ndim = len(grid_size) if isinstance(grid_size, (tuple, list)) else 2
        kinds = tuple(k for k in kinds if _grid_ndim(k) == ndim)

    def build(pair):
        name, cfg = pair
        try:
            return make_sampler(name, **cfg), cfg
        except ValueError:  # infeasible or invalid: not a configuration to test
            hypothesis.reject()

    return st.one_of(
        [st.tuples(st.just(k), _config_strategy(k, grid_size, ragged, max_grid)) for k in kinds]
    ).map(build)


def sampler_configs(
    kind: str = "multiblock",
    *,
    grid_size: int | tuple[int, ...] | None = None,
    ragged: str | None = None,
    max_grid: tuple[int, ...] = (16, 24),
    only_accepted: bool = True,
) -> SearchStrategy[dict[str, Any]]:
    """Hypothesis strategy: keyword-argument dicts that ``make_sampler(kind, **cfg)`` accepts.

    Args:
        kind: one of :data:`SAMPLER_KINDS`.
        grid_size: fix the grid (e.g. your model's patch grid); by default
            drawn up to ``max_grid``.
        ragged: fix the padding mode; by default one of "pad", "bucket",
            "truncate".
        max_grid: largest ``(H, W)`` drawn; ``(T, H, W)`` also bounds the frames
            of video kinds (``grid_ndim = 3``: "tube", "random_tube"; 4 frames at
            most otherwise), whose ``grid_size`` is ``(T, H, W)``.
        only_accepted: True (default): configurations the constructor refuses
            (infeasible ones included) are never produced. False: raw draws
            from the same ranges, some of which it refuses with a
            ``ValueError`` (to test that refusal is the only failure).

    Needs hypothesis (ImportError with an install hint).

    Example:
        >>> from hypothesis import given, settings
        >>> from jepa_components.masks import make_sampler
        >>> @settings(max_examples=5, deadline=None)
        ... @given(sampler_configs("random", grid_size=6))
        ... def test_configs(cfg):
        ...     assert make_sampler("random", **cfg).sample(2).num_targets == 1
        >>> test_configs()
    """
    if not only_accepted:
        return _config_strategy(kind, grid_size, ragged, max_grid)
    return _built(kind, grid_size, ragged, max_grid).map(lambda pair: pair[1])


def samplers(
    kind: str | None = None,
    *,
    grid_size: int | tuple[int, ...] | None = None,
    ragged: str | None = None,
    max_grid: tuple[int, ...] = (16, 24),
) -> SearchStrategy[MaskSampler]:
    """Hypothesis strategy: samplers (any of :data:`SAMPLER_KINDS` when ``kind`` is None).

    Same arguments as :func:`sampler_configs`; their ``repr`` shows the
    configuration in a falsifying example.
    """
    return _built(kind, grid_size, ragged, max_grid).map(lambda pair: pair[0])


def mask_batches(
    kind: str | None = None,
    *,
    grid_size: int | tuple[int, ...] | None = None,
    ragged: str | None = None,
    max_batch_size: int = 8,
    max_grid: tuple[int, ...] = (16, 24),
) -> SearchStrategy[tuple[MaskSampler, MaskBatch]]:
    """Hypothesis strategy: :class:`~jepa_components.masks.MaskBatch` es from drawn samplers.

    For testing code that consumes masks (a collate function, a model, a loss)
    on every shape and padding pattern the samplers can produce; pass your
    model's ``grid_size``.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, deadline=None)
        ... @given(mask_batches(grid_size=(4, 4)))
        ... def test_batches(batch):
        ...     assert batch.to_dense()[0].shape[1:] == (4, 4)
        >>> test_batches()
    """
    _, st = _hypothesis()
    return st.tuples(
        samplers(kind, grid_size=grid_size, ragged=ragged, max_grid=max_grid),
        st.integers(1, max_batch_size),
        st.integers(0, 10**6),
    ).map(lambda t: t[0].sample(t[1], start=t[2]))
