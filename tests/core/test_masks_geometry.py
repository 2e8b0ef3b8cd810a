"""Block geometry: sizes, exact size bounds, bit-mask boxes, packing, streams."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import _stream
from jepa_components.masks.geometry import (
    BoxBits,
    BoxIndexer,
    block_sizes,
    box_masks,
    feasible_sizes,
    pack_dense,
    place,
)


def test_block_sizes__square_grid_matches_official_formula():
    # official: h = round(sqrt(H*W*s*a)), w = round(sqrt(H*W*s/a)) on a square grid
    s = np.array([0.15, 0.2, 0.17])
    a = np.array([0.75, 1.5, 1.0])
    h, w = block_sizes(s, a, (14, 14))
    assert h.tolist() == [5, 8, 6] and w.tolist() == [6, 5, 6]


@given(
    st.integers(1, 20),
    st.integers(1, 20),
    st.floats(0.01, 1.0),
    st.floats(0.01, 1.0),
    st.floats(0.2, 4.0),
    st.floats(0.2, 4.0),
    st.integers(0, 2**31),
)
def test_feasible_sizes__contains_every_drawn_size(H, W, s0, s1, a0, a1, seed):
    scale, aspect = (min(s0, s1), max(s0, s1)), (min(a0, a1), max(a0, a1))
    rng = np.random.default_rng(seed)
    s = rng.uniform(*scale, 2000)
    a = rng.uniform(*aspect, 2000)
    h, w = block_sizes(s, a, (H, W))
    allowed = set(map(tuple, feasible_sizes(scale, aspect, (H, W)).tolist()))
    assert set(zip(h.tolist(), w.tolist())) <= allowed


def test_feasible_sizes__tight_on_default_targets():
    sizes = feasible_sizes((0.15, 0.2), (0.75, 1.5), (14, 14))
    assert (sizes[:, 0] * sizes[:, 1]).max() == 42  # not the loose 8 * 7 = 56


@given(st.integers(1, 30), st.integers(1, 30), st.data())
def test_place__start_in_range_and_reaches_the_end(H, W, data):
    size = data.draw(st.integers(1, H))
    u = np.linspace(0, 1, 200, endpoint=False)
    top = place(np.full(200, size), H, u)
    assert top.min() == 0 and top.max() == H - size


@given(st.integers(1, 12), st.integers(1, 64), st.integers(1, 6), st.integers(0, 2**31))
def test_box_bits__pack_equals_dense_packing(H, W, r, seed):
    rng = np.random.default_rng(seed)
    h = rng.integers(1, H + 1, (r, 3))
    w = rng.integers(1, W + 1, (r, 3))
    top = rng.integers(0, H - h + 1)
    left = rng.integers(0, W - w + 1)
    bb = BoxBits((H, W))
    words = np.bitwise_or.reduce(bb.bits(top, left, h, w), axis=1)  # union of 3 boxes per row
    dense = box_masks(top, left, h, w, (H, W)).any(axis=1)
    length = H * W
    idx, valid = bb.pack(words, length)
    ref_idx, ref_valid = pack_dense(dense, length)
    assert np.array_equal(idx, ref_idx) and np.array_equal(valid, ref_valid)


@given(st.integers(1, 300), st.integers(1, 6), st.integers(0, 2**31))
def test_pack_dense__sorted_indices_of_true_entries(n, r, seed):
    dense = np.random.default_rng(seed).random((r, n)) < 0.4
    length = int(dense.sum(1).max()) if dense.any() else 1
    idx, valid = pack_dense(dense, length)
    for i in range(r):
        assert idx[i, valid[i]].tolist() == np.flatnonzero(dense[i]).tolist()
        assert (idx[i, ~valid[i]] == 0).all()


@pytest.mark.parametrize("max_table_bytes", [0, 4 << 20])  # per-size offsets / whole-box table
def test_box_indexer__row_major_indices(max_table_bytes):
    ix = BoxIndexer(np.array([[2, 3], [1, 1]]), (4, 5), max_table_bytes=max_table_bytes)
    idx, valid = ix(np.array([1, 3]), np.array([2, 4]), np.array([2, 1]), np.array([3, 1]))
    assert idx[0, valid[0]].tolist() == [7, 8, 9, 12, 13, 14]
    assert idx[1, valid[1]].tolist() == [19]
    assert (idx[~valid] == 0).all() and ix.length == 6


def test_stream__pure_function_of_counters():
    key = _stream.seed_to_key(42, 1)
    u = _stream.uniform(key, np.arange(50)[:, None], np.arange(7))
    part = _stream.uniform(key, np.array([[20], [3]]), np.array([4, 5]))
    assert np.array_equal(part, u[[20, 3]][:, [4, 5]])
    assert ((u >= 0) & (u < 1)).all()
    assert _stream.seed_to_key(42, 1) != _stream.seed_to_key(42, 2)
    assert _stream.seed_to_key(2**70 + 5) != _stream.seed_to_key(5)


def test_stream__uniform_statistics():
    u = _stream.uniform(_stream.seed_to_key(0), np.arange(100000)[:, None], np.arange(4))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.std() - 12**-0.5) < 0.005
    c = np.corrcoef(u.T)
    assert np.abs(c - np.eye(4)).max() < 0.02
    # neighbouring samples are independent too
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.02
