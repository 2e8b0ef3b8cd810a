"""Checks shared by the mask test modules (not a test module itself)."""

import numpy as np


def check_packed(idx, valid, num_patches):
    """Valid entries first, unique and ascending, in range; padding holds 0."""
    idx = idx.reshape(-1, idx.shape[-1])
    valid = valid.reshape(-1, valid.shape[-1])
    counts = valid.sum(axis=1)
    assert np.array_equal(valid, np.arange(valid.shape[1]) < counts[:, None]), "valid not a prefix"
    assert (idx[~valid] == 0).all(), "padding slots must hold 0"
    assert ((idx >= 0) & (idx < num_patches)).all()
    gaps = np.diff(idx, axis=1)
    both = valid[:, 1:]  # pairs of valid neighbours
    assert (gaps[both] > 0).all(), "indices must be unique and ascending"


def check_dense_consistent(batch):
    """to_dense() marks exactly the valid indices."""
    ctx, tgt = batch.to_dense()
    assert ctx.reshape(len(batch), -1).sum(1).tolist() == batch.context_valid.sum(1).tolist()
    assert np.array_equal(tgt.reshape(*tgt.shape[:2], -1).sum(-1), batch.targets_valid.sum(-1))
    return ctx, tgt


def size_matches_ranges(h, w, grid, scale, aspect):
    """(h, w) can come from some scale/aspect in the ranges, up to rounding.

    With x = H*sqrt(s*a), y = W*sqrt(s/a): x*y = s*H*W and (x/H)/(y/W) = a;
    rounding moves x and y by at most 0.5 each. Clipped sides may have been
    larger (h == H, w == W) or smaller (h == 1, w == 1) before clipping.
    """
    H, W = grid
    x_lo, x_hi = (0.0 if h == 1 else h - 0.5), (np.inf if h == H else h + 0.5)
    y_lo, y_hi = (0.0 if w == 1 else w - 0.5), (np.inf if w == W else w + 0.5)
    n = H * W
    area_ok = x_lo * y_lo <= scale[1] * n + 1e-9 and x_hi * y_hi >= scale[0] * n - 1e-9
    a_lo = (x_lo / H) / (y_hi / W) if np.isfinite(y_hi) else 0.0
    a_hi = (x_hi / H) / (y_lo / W) if y_lo > 0 else np.inf
    aspect_ok = a_lo <= aspect[1] + 1e-9 and a_hi >= aspect[0] - 1e-9
    return area_ok and aspect_ok
