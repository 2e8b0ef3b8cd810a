"""Tests of jepa_components.context (parity with the official I-JEPA helpers)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.context import (
    apply_masks,
    gather_tokens,
    layer_norm,
    make_targets,
    repeat_interleave_batch,
)


@pytest.fixture(scope="module")
def official(official_code):
    import torch

    return (
        torch,
        official_code("src.masks.utils").apply_masks,
        official_code("src.utils.tensors").repeat_interleave_batch,
    )


def _random_case(seed, batch=3, tokens=10, dim=4, blocks=2, keep=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, tokens, dim))
    indices = np.stack(
        [
            np.stack([rng.choice(tokens, keep, replace=False) for _ in range(blocks)])
            for _ in range(batch)
        ]
    )
    return x, indices  # (B, N, D), (B, M, K)


def test_gather_tokens__exact_small_example():
    x = np.arange(2 * 4 * 2).reshape(2, 4, 2)
    out = gather_tokens(x, np.array([[3, 0, 3], [1, 1, 2]]))
    np.testing.assert_array_equal(out, [[[6, 7], [0, 1], [6, 7]], [[10, 11], [10, 11], [12, 13]]])


def test_gather_tokens__blocks_equal_per_block_gather():
    x, indices = _random_case(0)
    out = gather_tokens(x, indices)
    assert out.shape == (3, 2, 5, 4)
    for block in range(indices.shape[1]):
        np.testing.assert_array_equal(out[:, block], gather_tokens(x, indices[:, block]))
    np.testing.assert_array_equal(out, x[np.arange(3)[:, None, None], indices])


def test_apply_masks__exact_small_example():
    x = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    masks = [np.array([[0, 1], [2, 0]]), np.array([[2, 2], [1, 0]])]
    out = apply_masks(x, masks)
    assert out.shape == (4, 2, 1)
    np.testing.assert_array_equal(out[..., 0], [[0, 1], [5, 3], [2, 2], [4, 3]])


def test_apply_masks__equals_official(official):
    torch, official_apply_masks, _ = official
    x, indices = _random_case(1, blocks=3)
    masks = [indices[:, j] for j in range(indices.shape[1])]
    expected = official_apply_masks(
        torch.from_numpy(x), [torch.from_numpy(m) for m in masks]
    ).numpy()
    np.testing.assert_array_equal(apply_masks(x, masks), expected)


def test_repeat_interleave_batch__exact_small_example():
    x = np.array([[0], [1], [2], [3], [4], [5]])
    out = repeat_interleave_batch(x, batch_size=2, repeat=2)
    np.testing.assert_array_equal(out[:, 0], [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5])


@pytest.mark.parametrize("chunks, batch_size, repeat", [(1, 1, 1), (2, 3, 2), (4, 2, 3), (3, 5, 1)])
def test_repeat_interleave_batch__equals_official(official, chunks, batch_size, repeat):
    torch, _, official_repeat = official
    x = np.random.default_rng(2).normal(size=(chunks * batch_size, 3, 2))
    expected = official_repeat(torch.from_numpy(x), batch_size, repeat=repeat).numpy()
    np.testing.assert_array_equal(repeat_interleave_batch(x, batch_size, repeat), expected)


def test_layer_norm__exact_small_example():
    # mean 2, biased var 2/3 -> (x - 2) / sqrt(2/3 + eps)
    out = layer_norm(np.array([[1.0, 2.0, 3.0]]), eps=1e-5)
    scale = 1 / np.sqrt(2 / 3 + 1e-5)
    np.testing.assert_allclose(out, [[-scale, 0.0, scale]], rtol=1e-15)


def test_layer_norm__equals_torch_default_eps(official):
    torch = official[0]
    x = np.random.default_rng(3).normal(loc=2.0, scale=3.0, size=(2, 5, 16))
    expected = torch.nn.functional.layer_norm(torch.from_numpy(x), (16,)).numpy()
    np.testing.assert_allclose(layer_norm(x), expected, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(2, 33))
def test_layer_norm__zero_mean_unit_variance(seed, dim):
    x = np.random.default_rng(seed).normal(scale=10.0, size=(4, dim))
    out = layer_norm(x, eps=1e-12)
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.var(-1), 1.0, rtol=1e-6)


def test_make_targets__equals_official_train_step(official):
    # train.py forward_target: layer_norm, apply_masks(h, masks_pred),
    # repeat_interleave_batch(h, B, repeat=len(masks_enc))
    torch, official_apply_masks, official_repeat = official
    x, indices = _random_case(4, batch=3, tokens=12, dim=8, blocks=4, keep=3)
    batch, blocks, keep, dim = 3, 4, 3, 8
    h = torch.nn.functional.layer_norm(torch.from_numpy(x), (dim,))
    h = official_apply_masks(h, [torch.from_numpy(indices[:, j]) for j in range(blocks)])
    expected = official_repeat(h, batch, repeat=2).numpy()  # two context masks
    targets = make_targets(x, indices)
    assert targets.shape == (batch, blocks, keep, dim)
    official_layout = targets.transpose(1, 0, 2, 3).reshape(blocks * batch, keep, dim)
    np.testing.assert_allclose(
        repeat_interleave_batch(official_layout, batch, 2), expected, rtol=1e-12, atol=1e-12
    )


def test_make_targets__equals_layer_norm_then_gather():
    x, indices = _random_case(5)
    np.testing.assert_allclose(
        make_targets(x, indices, eps=1e-3),
        gather_tokens(layer_norm(x, eps=1e-3), indices),
        rtol=1e-14,
        atol=1e-14,
    )


def test_functions_keep_float32():
    x, indices = _random_case(6)
    x = x.astype(np.float32)
    assert gather_tokens(x, indices).dtype == np.float32
    assert layer_norm(x).dtype == np.float32
    assert make_targets(x, indices).dtype == np.float32


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gather_tokens(np.zeros((2, 4)), np.zeros((2, 1), int)), r"`x`.*rank-3.*\(2, 4\)"),
        (lambda: gather_tokens(np.zeros((2, 4, 1)), np.zeros(2, int)), r"`indices`.*rank-2"),
        (
            lambda: gather_tokens(np.zeros((2, 4, 1)), np.array([[0], [4]])),
            r"`indices`.*< 4.*\[0, 4\]",
        ),
        (lambda: gather_tokens(np.zeros((2, 4, 1)), np.array([[0], [-1]])), r"`indices`"),
        (lambda: gather_tokens(np.zeros((2, 4, 1)), np.zeros((2, 1))), r"`indices`.*integer"),
        (lambda: apply_masks(np.zeros((2, 4, 1)), []), r"`masks`.*non-empty"),
        (lambda: apply_masks(np.zeros((2, 4, 1)), np.zeros((2, 1), int)), r"`masks`.*list"),
        (lambda: apply_masks(np.zeros((2, 4, 1)), [np.zeros((2, 1, 1), int)]), r"`masks`.*rank-2"),
        (
            lambda: repeat_interleave_batch(np.zeros((5, 1)), 2, 1),
            r"`batch_size`.*divisor.*len\(x\)=5",
        ),
        (
            lambda: repeat_interleave_batch(np.zeros((4, 1)), 0, 1),
            r"`batch_size`.*>= 1.*batch_size=0",
        ),
        (lambda: repeat_interleave_batch(np.zeros((4, 1)), 2, 0), r"`repeat`.*repeat=0"),
        (lambda: repeat_interleave_batch(np.zeros(()), 1, 1), r"`x`.*rank >= 1"),
        (lambda: layer_norm(np.zeros((1, 2)), eps=0.0), r"`eps`.*> 0"),
        (
            lambda: make_targets(np.zeros((1, 4, 2)), np.zeros((1, 3), int)),
            r"`target_indices`.*rank-3",
        ),
        (
            lambda: make_targets(np.zeros((4, 2)), np.zeros((1, 1, 3), int)),
            r"`target_tokens`.*rank-3",
        ),
    ],
)
def test_invalid_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
