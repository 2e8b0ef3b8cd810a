import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.context import gather_tokens
from jepa_components.pixels import make_pixel_targets, normalize_patches, patchify, unpatchify

# --- patchify / unpatchify -------------------------------------------------------


def test_patchify__exact_small_example():
    # 4x6 image, 2 channels, patch 2: a 2x3 grid.
    images = np.arange(4 * 6 * 2).reshape(1, 4, 6, 2)
    patches = patchify(images, 2)
    assert patches.shape == (1, 6, 8)
    # patch 4 = grid cell (row 1, col 1): pixel rows 2-3, cols 2-3, (y, x, c) order.
    expected = [
        images[0, 2, 2, 0],
        images[0, 2, 2, 1],
        images[0, 2, 3, 0],
        images[0, 2, 3, 1],
        images[0, 3, 2, 0],
        images[0, 3, 2, 1],
        images[0, 3, 3, 0],
        images[0, 3, 3, 1],
    ]
    assert patches[0, 4].tolist() == expected
    assert patches[0, 4].tolist() == [28, 29, 30, 31, 40, 41, 42, 43]


def test_patchify__matches_mae_layout():
    """MAE's patchify (models_mae.py) written out with numpy on a channels-first copy."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 8, 12, 3))
    p, h, w = 4, 2, 3
    nchw = images.transpose(0, 3, 1, 2)
    x = nchw.reshape(3, 3, h, p, w, p)
    x = np.einsum("nchpwq->nhwpqc", x).reshape(3, h * w, p * p * 3)
    np.testing.assert_array_equal(patchify(images, p), x)


@given(
    batch=st.integers(1, 3),
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    patch=st.integers(1, 4),
    channels=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_patchify__round_trip_and_patch_i_is_grid_cell_row_col(
    batch, rows, cols, patch, channels, seed
):
    images = np.random.default_rng(seed).normal(size=(batch, rows * patch, cols * patch, channels))
    patches = patchify(images, patch)
    assert patches.shape == (batch, rows * cols, patch * patch * channels)
    np.testing.assert_array_equal(unpatchify(patches, patch, (rows, cols)), images)
    for i in range(rows * cols):
        row, col = divmod(i, cols)
        cell = images[:, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch]
        np.testing.assert_array_equal(patches[:, i], cell.reshape(batch, -1))


def test_unpatchify__square_default_grid():
    images = np.random.default_rng(1).normal(size=(2, 6, 6, 1))
    np.testing.assert_array_equal(unpatchify(patchify(images, 2), 2), images)


def test_patchify__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `patch_size`"):
        patchify(np.zeros((1, 6, 8, 1)), 4)
    with pytest.raises(ValueError, match="Invalid value for argument `patch_size`"):
        patchify(np.zeros((1, 8, 8, 1)), 0)
    with pytest.raises(ValueError, match="Invalid value for argument `images`"):
        patchify(np.zeros((8, 8, 1)), 4)
    with pytest.raises(ValueError, match="Invalid value for argument `grid_size`"):
        unpatchify(np.zeros((1, 6, 4)), 2)
    with pytest.raises(ValueError, match="Invalid value for argument `grid_size`"):
        unpatchify(np.zeros((1, 6, 4)), 2, (2, 2))
    with pytest.raises(ValueError, match="Invalid value for argument `patch_size`"):
        unpatchify(np.zeros((1, 4, 6)), 2)


# --- normalisation -------------------------------------------------------------------


def test_normalize_patches__exact_unbiased_variance_as_mae():
    patch = np.array([[1.0, 2.0, 3.0, 6.0]])
    mean, var = 3.0, ((4 + 1 + 0 + 9) / 3)  # torch.var default: unbiased
    expected = (patch - mean) / np.sqrt(var + 1e-6)
    np.testing.assert_allclose(normalize_patches(patch), expected, rtol=1e-12)


def test_normalize_patches__constant_patch_is_zero_not_nan():
    out = normalize_patches(np.full((2, 3, 4), 7.0))
    np.testing.assert_array_equal(out, 0.0)


@given(st.integers(0, 2**16), st.floats(-5, 5), st.floats(0.1, 10))
def test_normalize_patches__invariant_to_affine_pixel_changes(seed, shift, scale):
    patches = np.random.default_rng(seed).normal(size=(3, 5, 12))
    out = normalize_patches(patches, eps=1e-12)
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-9)
    np.testing.assert_allclose(out.var(axis=-1, ddof=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        normalize_patches(patches * scale + shift, eps=1e-12), out, rtol=1e-6, atol=1e-6
    )


def test_normalize_patches__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `eps`"):
        normalize_patches(np.zeros((1, 4)), eps=0.0)
    with pytest.raises(ValueError, match="Invalid value for argument `patches`"):
        normalize_patches(np.zeros((1, 1)))


# --- targets per block ------------------------------------------------------------


def test_make_pixel_targets__gathers_blocks_then_normalises():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(2, 8, 8, 3))
    indices = np.array([[[0, 5, 15], [3, 3, 2]], [[1, 2, 4], [14, 13, 0]]])
    raw = make_pixel_targets(images, indices, 2, normalize=False)
    assert raw.shape == (2, 2, 3, 12)
    np.testing.assert_array_equal(raw[1, 1, 0], images[1, 6:8, 4:6].reshape(-1))  # patch 14
    np.testing.assert_array_equal(raw, gather_tokens(patchify(images, 2), indices))
    normed = make_pixel_targets(images, indices, 2)
    np.testing.assert_allclose(normed, normalize_patches(raw), rtol=1e-12)
    # Normalising every patch first, then gathering, is the same thing.
    np.testing.assert_allclose(
        normed, gather_tokens(normalize_patches(patchify(images, 2)), indices), rtol=1e-12
    )


def test_make_pixel_targets__validates():
    images = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match="Invalid value for argument `target_indices`"):
        make_pixel_targets(images, np.zeros((1, 2), "int64"), 2)
    with pytest.raises(ValueError, match="Invalid value for argument `indices`"):
        make_pixel_targets(images, np.full((1, 1, 1), 4), 2)
    with pytest.raises(ValueError, match="Invalid value for argument `normalize`"):
        make_pixel_targets(images, np.zeros((1, 1, 1), "int64"), 2, normalize="yes")
