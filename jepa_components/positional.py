"""Fixed sine-cosine positional embeddings of a patch grid.

I-JEPA (Assran et al. 2023) adds fixed, non-learned 2-D sin-cos positional
embeddings to the patch tokens of the encoder and of the predictor (official
code: ``get_2d_sincos_pos_embed`` in ``src/models/vision_transformer.py``,
itself taken from MAE). These functions reproduce that table exactly for
square grids and extend it to ``(H, W)`` grids.

Layout of one embedding vector of width ``D`` (official convention)::

    [ sin(c * w_k) | cos(c * w_k) | sin(r * w_k) | cos(r * w_k) ]
      k = 0..D/4-1   (column c)     k = 0..D/4-1   (row r)

with ``w_k = 1 / 10000 ** (k / (D / 4))``. The official code names the first
half ``emb_h``, but it builds it from ``np.meshgrid(grid_w, grid_h)[0]``,
which holds the *column* index: the first half encodes the column and the
second half the row. We keep that layout so official checkpoints and
predictors see the same embedding. Patch ``i`` of the table is the patch at
``row = i // W, col = i % W`` (row-major, as the official code).

Video (V-JEPA, Bardes et al. 2024): :func:`sincos_3d_positions` is
``get_3d_sincos_pos_embed`` of facebookresearch/jepa and vjepa2
(``src/models/utils/pos_embs.py``, MIT in vjepa2) for a grid of
``T`` tubelets by ``H x W`` patches, time-major. There the layout is
``[time | row | column]`` (V-JEPA's meshgrid is ordered so that its ``emb_h``
really holds the row, unlike I-JEPA's 2-D table).
"""

import numpy as np
import numpy.typing as npt

from jepa_components._validation import check_bool, check_grid, check_pair, invalid, is_int

__all__ = ["sincos_1d_positions", "sincos_2d_positions", "sincos_3d_positions"]


def _check_embed_dim(embed_dim, multiple_of):
    if not is_int(embed_dim) or embed_dim < 1 or embed_dim % multiple_of:
        raise invalid("embed_dim", f"a positive integer divisible by {multiple_of}", embed_dim)


def _check_dtype(dtype):
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or not np.issubdtype(resolved, np.floating):
        raise invalid("dtype", "a floating dtype", dtype)
    return resolved


def _grid_shape(grid_size):
    return check_pair("grid_size", grid_size, low=1)


def _sincos_table(embed_dim, positions):
    """float64 (M, embed_dim) table; same operations as the official code."""
    half = embed_dim // 2
    omega = np.arange(half, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    angles = np.einsum("m,d->md", positions.reshape(-1), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_1d_positions(
    embed_dim: int, positions: npt.ArrayLike, dtype: npt.DTypeLike = "float32"
) -> np.ndarray:
    """1-D sin-cos embedding of arbitrary (possibly fractional) positions.

    Equals the official ``get_1d_sincos_pos_embed_from_grid(embed_dim, pos)``
    (computed in float64, then cast to ``dtype``).

    Args:
        embed_dim: even positive int, the embedding width ``D``.
        positions: int, or array-like of any shape holding ``P`` positions.
            An int ``n`` means ``range(n)``.
        dtype: floating dtype of the result (default float32).

    Returns:
        ``(P, D)`` array: ``[sin(p * w_k) | cos(p * w_k)]`` with
        ``w_k = 10000 ** (-2k / D)``, ``k = 0..D/2-1``.

    Example:
        >>> sincos_1d_positions(4, 3).shape
        (3, 4)
    """
    _check_embed_dim(embed_dim, 2)
    resolved = _check_dtype(dtype)
    if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
        if positions < 0:
            raise ValueError(
                "Invalid value for argument `positions`. Expected a non-negative "
                f"integer or an array of positions. Received: positions={positions!r}"
            )
        positions = np.arange(positions, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise ValueError(
            "Invalid value for argument `positions`. Expected finite values. "
            f"Received: positions={positions!r}"
        )
    return _sincos_table(int(embed_dim), positions).astype(resolved)


def sincos_2d_positions(
    embed_dim: int, grid_size: int | tuple[int, int], dtype: npt.DTypeLike = "float32"
) -> np.ndarray:
    """2-D sin-cos positional embedding of a patch grid, row-major.

    Equals the official ``get_2d_sincos_pos_embed(embed_dim, grid_size)``
    (I-JEPA ``src/models/vision_transformer.py``, float64, then cast to
    ``dtype``; the official model casts to float32) for square grids.
    Non-square grids follow the same construction with
    ``meshgrid(arange(W), arange(H))``.

    Args:
        embed_dim: positive int divisible by 4 (each half is a 1-D sin-cos
            table, which itself needs an even width).
        grid_size: int (square grid) or ``(H, W)``.
        dtype: floating dtype of the result (default float32).

    Returns:
        ``(H * W, embed_dim)`` array. Row ``i`` embeds the patch at
        ``row = i // W, col = i % W``; columns ``[0, D/2)`` encode the
        column index, ``[D/2, D)`` the row index (the official layout, see
        the module docstring).

    Example:
        >>> table = sincos_2d_positions(8, (2, 3))
        >>> table.shape, table.dtype
        ((6, 8), dtype('float32'))
    """
    _check_embed_dim(embed_dim, 4)
    height, width = _grid_shape(grid_size)
    resolved = _check_dtype(dtype)
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    col_grid, row_grid = np.meshgrid(cols, rows)  # (H, W) each, as official
    half = int(embed_dim) // 2
    table = np.concatenate([_sincos_table(half, col_grid), _sincos_table(half, row_grid)], axis=1)
    return table.astype(resolved)


def _split_3d(embed_dim, uniform_power):
    """Widths ``(time, row, column)`` of the 3-D table, as V-JEPA's ``get_3d_sincos_pos_embed``."""
    if uniform_power:
        # ceil(D / 6) * 2 each (even), the concatenation cut back to D.
        width = int(np.ceil(embed_dim / 6) * 2)
        return width, width, width
    return embed_dim // 2, embed_dim // 4, embed_dim // 4


def sincos_3d_positions(
    embed_dim: int,
    grid_size: int | tuple[int, int, int],
    uniform_power: bool = False,
    dtype: npt.DTypeLike = "float32",
) -> np.ndarray:
    """3-D sin-cos positional embedding of a tubelet grid, time-major (V-JEPA).

    Equals V-JEPA's ``get_3d_sincos_pos_embed(embed_dim, grid_size=H,
    grid_depth=T, uniform_power=...)`` (facebookresearch/jepa and vjepa2,
    ``src/models/utils/pos_embs.py``; float64, then cast to ``dtype``) for
    square ``H == W``. Non-square ``(T, H, W)`` grids follow the same
    construction (V-JEPA's function takes one side for both).

    Layout of one vector, each part a 1-D sin-cos table
    (:func:`sincos_1d_positions`) of the tubelet's time index ``t``, row
    ``r`` or column ``c``::

        [ time (D_t) | row (D_h) | column (D_w) ][:D]

    ``uniform_power=False`` (V-JEPA's default): ``D_t = D / 2``,
    ``D_h = D_w = D / 4``. ``uniform_power=True`` (the V-JEPA 1 configs):
    ``D_t = D_h = D_w = 2 * ceil(D / 6)``, the concatenation cut to ``D``
    columns (the column part loses its last ones when ``D`` is not a multiple
    of 6).

    Args:
        embed_dim: positive int; divisible by 8 with ``uniform_power=False``
            (each part must have an even width that adds up to ``D``).
        grid_size: int (a cube) or ``(T, H, W)``, tubelets in time, rows and
            columns.
        uniform_power: bool, the channel split above.
        dtype: floating dtype of the result (default float32).

    Returns:
        ``(T * H * W, embed_dim)`` array. Row ``i`` embeds the tubelet at
        ``i = (t * H + r) * W + c`` (the mask samplers' 3-D index order).

    Example:
        >>> table = sincos_3d_positions(8, (2, 2, 3))
        >>> table.shape, table.dtype
        ((12, 8), dtype('float32'))
        >>> t, r, c = 1, 0, 2  # tubelet (t * H + r) * W + c = 8
        >>> bool(np.array_equal(table[8], np.concatenate(
        ...     [sincos_1d_positions(4, [t])[0], sincos_1d_positions(2, [r])[0],
        ...      sincos_1d_positions(2, [c])[0]])))
        True
    """
    uniform_power = check_bool("uniform_power", uniform_power)
    if uniform_power:
        if not is_int(embed_dim) or embed_dim < 1:
            raise invalid("embed_dim", "a positive integer", embed_dim)
    else:
        _check_embed_dim(embed_dim, 8)
    depth, height, width = check_grid("grid_size", grid_size, 3)
    resolved = _check_dtype(dtype)
    times, rows, cols = np.meshgrid(
        np.arange(depth, dtype=np.float64),
        np.arange(height, dtype=np.float64),
        np.arange(width, dtype=np.float64),
        indexing="ij",
    )  # (T, H, W) each: flattened, index (t * H + r) * W + c
    time_dim, row_dim, col_dim = _split_3d(int(embed_dim), uniform_power)
    table = np.concatenate(
        [
            _sincos_table(time_dim, times),
            _sincos_table(row_dim, rows),
            _sincos_table(col_dim, cols),
        ],
        axis=1,
    )
    return table[:, : int(embed_dim)].astype(resolved)
