"""Hypothesis strategies for sampler configurations, samplers and mask batches.

hypothesis is a test dependency, imported when a strategy is built: importing
this module works without it, calling a strategy without it raises an
``ImportError`` with the install hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jepa_components._validation import check_choice
from jepa_components.masks import make_sampler
from jepa_components.masks.geometry import check_grid_size
from jepa_components.masks.sampler import RAGGED_MODES, MaskSampler

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from jepa_components.masks.batch import MaskBatch

__all__ = ["SAMPLER_KINDS", "mask_batches", "sampler_configs", "samplers"]

SAMPLER_KINDS = ("multiblock", "block", "raster", "random")


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


def _config_strategy(kind, grid_size, ragged, max_grid):
    _, st = _hypothesis()
    check_choice("kind", kind, SAMPLER_KINDS)
    if ragged is not None:
        check_choice("ragged", ragged, RAGGED_MODES)
    if grid_size is not None:
        grid_size = check_grid_size(grid_size)

    @st.composite
    def configs(draw):
        if grid_size is None:
            H, W = draw(st.integers(2, max_grid[0])), draw(st.integers(2, max_grid[1]))
        else:
            H, W = grid_size
        n = H * W
        cfg = {"grid_size": (H, W), "seed": draw(st.integers(0, 2**32))}
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
        if draw(st.integers(0, 3)) == 0:  # now and then a cap below the largest count
            cfg["context_length"] = draw(st.integers(max(1, cfg["min_context"]), n))
            cfg["target_length"] = draw(st.integers(1, n))
        return cfg

    return configs()


def _built(kind, grid_size, ragged, max_grid):
    """Strategy of ``(sampler, config)`` pairs the constructor accepts."""
    hypothesis, st = _hypothesis()
    kinds = SAMPLER_KINDS if kind is None else (kind,)

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
    grid_size: int | tuple[int, int] | None = None,
    ragged: str | None = None,
    max_grid: tuple[int, int] = (16, 24),
    only_accepted: bool = True,
) -> SearchStrategy[dict[str, Any]]:
    """Hypothesis strategy: keyword-argument dicts that ``make_sampler(kind, **cfg)`` accepts.

    Args:
        kind: one of :data:`SAMPLER_KINDS`.
        grid_size: fix the grid (e.g. your model's patch grid); by default
            drawn up to ``max_grid``.
        ragged: fix the padding mode; by default one of "pad", "bucket",
            "truncate".
        max_grid: largest ``(H, W)`` drawn.
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
    grid_size: int | tuple[int, int] | None = None,
    ragged: str | None = None,
    max_grid: tuple[int, int] = (16, 24),
) -> SearchStrategy[MaskSampler]:
    """Hypothesis strategy: samplers (any of :data:`SAMPLER_KINDS` when ``kind`` is None).

    Same arguments as :func:`sampler_configs`; their ``repr`` shows the
    configuration in a falsifying example.
    """
    return _built(kind, grid_size, ragged, max_grid).map(lambda pair: pair[0])


def mask_batches(
    kind: str | None = None,
    *,
    grid_size: int | tuple[int, int] | None = None,
    ragged: str | None = None,
    max_batch_size: int = 8,
    max_grid: tuple[int, int] = (16, 24),
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
