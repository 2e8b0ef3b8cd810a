"""Tests of jepa_components.positional (parity with the official I-JEPA table and
V-JEPA 2's 3-D table)."""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.positional import (
    sincos_1d_positions,
    sincos_2d_positions,
    sincos_3d_positions,
)


@pytest.fixture(scope="module")
def official_vit(official_code):
    return official_code("src.models.vision_transformer")


@pytest.mark.parametrize("embed_dim, grid", [(4, 1), (8, 3), (32, 4), (192, 14), (384, 16)])
def test_sincos_2d__equals_official_square_grids(official_vit, embed_dim, grid):
    expected = official_vit.get_2d_sincos_pos_embed(embed_dim, grid, cls_token=False)
    table = sincos_2d_positions(embed_dim, grid)
    assert table.dtype == np.float32 and table.shape == (grid * grid, embed_dim)
    np.testing.assert_array_equal(table, expected.astype(np.float32))
    np.testing.assert_array_equal(sincos_2d_positions(embed_dim, grid, dtype="float64"), expected)


def test_sincos_1d__equals_official(official_vit):
    positions = np.array([0.0, 1.0, 2.5, 7.0])
    expected = official_vit.get_1d_sincos_pos_embed_from_grid(6, positions)
    np.testing.assert_array_equal(sincos_1d_positions(6, positions, dtype="float64"), expected)
    np.testing.assert_array_equal(
        sincos_1d_positions(6, 5, dtype="float64"), official_vit.get_1d_sincos_pos_embed(6, 5)
    )


def test_sincos_1d__hand_values():
    # D = 4: frequencies 1 and 1/100
    table = sincos_1d_positions(4, np.array([0.0, 2.0]), dtype="float64")
    np.testing.assert_allclose(table[0], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(
        table[1], [np.sin(2.0), np.sin(0.02), np.cos(2.0), np.cos(0.02)], rtol=1e-15
    )


def test_sincos_2d__first_half_encodes_column_second_half_row():
    # the official layout: emb_h is built from meshgrid(w, h)[0], i.e. the column
    height, width, dim = 2, 3, 8
    table = sincos_2d_positions(dim, (height, width), dtype="float64")
    columns = sincos_1d_positions(dim // 2, width, dtype="float64")
    rows = sincos_1d_positions(dim // 2, height, dtype="float64")
    for index in range(height * width):
        row, col = divmod(index, width)
        np.testing.assert_array_equal(table[index, : dim // 2], columns[col])
        np.testing.assert_array_equal(table[index, dim // 2 :], rows[row])
    assert table[1, 0] == np.sin(1.0) and table[1, dim // 2] == 0.0  # row 0, column 1


@given(height=st.integers(1, 9), width=st.integers(1, 9), quarter=st.integers(1, 8))
def test_sincos_2d__non_square_is_square_table_restricted(height, width, quarter):
    # an (H, W) grid is the top-left H x W corner of the square max(H, W) grid
    dim, side = 4 * quarter, max(height, width)
    square = sincos_2d_positions(dim, side).reshape(side, side, dim)
    table = sincos_2d_positions(dim, (height, width))
    assert table.shape == (height * width, dim)
    np.testing.assert_array_equal(table.reshape(height, width, dim), square[:height, :width])


def test_sincos_2d__int_equals_pair():
    np.testing.assert_array_equal(sincos_2d_positions(12, 5), sincos_2d_positions(12, (5, 5)))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sincos_2d_positions(6, 4), r"`embed_dim`.*divisible by 4.*embed_dim=6"),
        (lambda: sincos_2d_positions(0, 4), r"`embed_dim`"),
        (lambda: sincos_2d_positions(8.0, 4), r"`embed_dim`"),
        (lambda: sincos_2d_positions(8, 0), r"`grid_size`.*grid_size=0"),
        (lambda: sincos_2d_positions(8, (2, 3, 4)), r"`grid_size`"),
        (lambda: sincos_2d_positions(8, (2.0, 3)), r"`grid_size`"),
        (lambda: sincos_2d_positions(8, 2, dtype="int32"), r"`dtype`"),
        (lambda: sincos_1d_positions(3, 4), r"`embed_dim`.*divisible by 2.*embed_dim=3"),
        (lambda: sincos_1d_positions(4, -1), r"`positions`"),
        (lambda: sincos_1d_positions(4, [0.0, np.inf]), r"`positions`.*finite"),
    ],
)
def test_invalid_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- 3-D (V-JEPA)
VJEPA_FIXTURE = os.path.join(
    os.path.dirname(__file__), os.pardir, "fixtures", "vjepa_pos_embed.npz"
)


def test_sincos_3d__equals_vjepa2_tables_from_the_fixture():
    # tests/fixtures/make_vjepa_pos_embed.py: V-JEPA 2's get_3d_sincos_pos_embed, float64
    with np.load(VJEPA_FIXTURE) as tables:
        assert len(tables.files) == 7
        for key in tables.files:
            dim, depth, side, split = key.split("_")
            grid = (int(depth[1:]), int(side[1:]), int(side[1:]))
            expected = tables[key]
            got = sincos_3d_positions(
                int(dim[1:]), grid, uniform_power=split == "uniform", dtype="float64"
            )
            np.testing.assert_array_equal(got, expected, err_msg=key)
            np.testing.assert_array_equal(
                sincos_3d_positions(int(dim[1:]), grid, uniform_power=split == "uniform"),
                expected.astype(np.float32),
            )


def test_sincos_3d__hand_values_default_split():
    # D = 8: time 4 channels (frequencies 1, 1/100), row 2 and column 2 (frequency 1)
    table = sincos_3d_positions(8, (2, 2, 3), dtype="float64")
    t, r, c = 1, 1, 2
    np.testing.assert_allclose(
        table[(t * 2 + r) * 3 + c],
        [np.sin(1.0), np.sin(0.01), np.cos(1.0), np.cos(0.01), np.sin(1.0), np.cos(1.0),
         np.sin(2.0), np.cos(2.0)],
        rtol=1e-15,
    )  # fmt: skip
    np.testing.assert_array_equal(table[0], [0, 0, 1, 1, 0, 1, 0, 1])


def test_sincos_3d__hand_values_uniform_power():
    # D = 10: 2 * ceil(10 / 6) = 4 channels each for time, row, column; cut to 10
    table = sincos_3d_positions(10, (2, 1, 2), uniform_power=True, dtype="float64")
    t, c = 1, 1
    np.testing.assert_allclose(
        table[t * 2 + c],
        [np.sin(1.0), np.sin(0.01), np.cos(1.0), np.cos(0.01), 0.0, 0.0, 1.0, 1.0,
         np.sin(1.0), np.sin(0.01)],
        rtol=1e-15,
    )  # fmt: skip


@given(
    depth=st.integers(1, 4),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    eighth=st.integers(1, 6),
    uniform=st.booleans(),
)
def test_sincos_3d__parts_are_1d_tables_of_time_row_column(depth, height, width, eighth, uniform):
    # time-major index (t * H + r) * W + c; [time | row | column][:D]
    dim = 8 * eighth
    table = sincos_3d_positions(dim, (depth, height, width), uniform_power=uniform, dtype="float64")
    assert table.shape == (depth * height * width, dim)
    parts = (-(-dim // 6) * 2,) * 3 if uniform else (dim // 2, dim // 4, dim // 4)
    t, r, c = np.unravel_index(np.arange(depth * height * width), (depth, height, width))
    full = np.concatenate(
        [sincos_1d_positions(n, pos, dtype="float64") for n, pos in zip(parts, (t, r, c))], axis=1
    )
    np.testing.assert_array_equal(table, full[:, :dim])


def test_sincos_3d__int_equals_triple():
    np.testing.assert_array_equal(sincos_3d_positions(16, 3), sincos_3d_positions(16, (3, 3, 3)))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sincos_3d_positions(12, (2, 2, 2)), r"`embed_dim`.*divisible by 8.*embed_dim=12"),
        (lambda: sincos_3d_positions(0, 2, uniform_power=True), r"`embed_dim`"),
        (lambda: sincos_3d_positions(8, (2, 2)), r"`grid_size`"),
        (lambda: sincos_3d_positions(8, (2, 0, 2)), r"`grid_size`"),
        (lambda: sincos_3d_positions(8, 2, uniform_power=1), r"`uniform_power`"),
        (lambda: sincos_3d_positions(8, 2, dtype="int32"), r"`dtype`"),
    ],
)
def test_sincos_3d__invalid_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
