"""Tests of jepa_components.losses."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.losses import jepa_loss, l2_loss, masked_mean, smooth_l1_loss


def _random_pair(seed, shape=(2, 3, 4, 5), scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=scale, size=shape), rng.normal(scale=scale, size=shape)


def test_masked_mean__exact_and_all_invalid_is_zero():
    values = np.array([[1.0, 2.0], [3.0, 10.0]])
    assert masked_mean(values, np.array([[True, True], [True, False]])) == 2.0
    assert masked_mean(values, None) == 4.0
    with np.errstate(all="raise"):
        assert masked_mean(values, np.zeros((2, 2), bool)) == 0.0


def test_masked_mean__ignores_nan_and_inf_in_invalid_entries():
    values = np.array([1.0, np.nan, np.inf, 5.0])
    assert masked_mean(values, np.array([True, False, False, True])) == 3.0


def test_l2_loss__exact_small_example():
    # B=1, M=2, K=2, D=2; differences per token: (1, 1), (0, 2), (3, 0), (padding)
    pred = np.zeros((1, 2, 2, 2))
    target = np.array([[[[1.0, 1.0], [0.0, 2.0]], [[3.0, 0.0], [100.0, 100.0]]]])
    valid = np.array([[[True, True], [True, False]]])
    # mean: squared errors 1, 1, 0, 4, 9, 0 -> 15 / 6
    assert l2_loss(pred, target, valid) == pytest.approx(2.5, rel=1e-15)
    # paper Eq. 1: block sums (2 + 4) and 9, over M = 2
    assert l2_loss(pred, target, valid, reduction="paper") == pytest.approx(7.5, rel=1e-15)
    # unpadded: mean squared error per element
    assert l2_loss(pred, target) == pytest.approx((2 + 4 + 9 + 20000) / 8, rel=1e-15)


def test_l2_loss__paper_averages_over_batch():
    pred = np.zeros((2, 1, 1, 1))
    target = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)
    assert l2_loss(pred, target, reduction="paper") == 5.0  # (1 + 9) / 2


def test_smooth_l1_loss__exact_small_example():
    # |d| = 0.5 -> 0.5 * 0.25 = 0.125; |d| = 3 -> 3 - 0.5 = 2.5; |d| = 1 -> 0.5
    pred = np.zeros((1, 1, 2, 2))
    target = np.array([[[[0.5, -3.0], [1.0, 7.0]]]])
    valid = np.array([[[True, False]]])
    assert smooth_l1_loss(pred, target, valid) == pytest.approx((0.125 + 2.5) / 2, rel=1e-15)
    assert smooth_l1_loss(pred, target, valid, reduction="paper") == pytest.approx(2.625, rel=1e-15)
    # beta = 2: 0.5 * 0.25 / 2 = 0.0625, 3 - 1 = 2
    assert smooth_l1_loss(pred, target, valid, beta=2.0) == pytest.approx(
        (0.0625 + 2.0) / 2, rel=1e-15
    )
    assert smooth_l1_loss(pred, target, valid, beta=0.0) == pytest.approx(1.75, rel=1e-15)


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
def test_smooth_l1_loss__equals_torch(beta):
    torch = pytest.importorskip("torch")
    pred, target = _random_pair(0)
    expected = torch.nn.functional.smooth_l1_loss(
        torch.from_numpy(pred), torch.from_numpy(target), beta=beta
    ).item()
    assert smooth_l1_loss(pred, target, beta=beta) == pytest.approx(expected, rel=1e-12)
    valid = np.ones(pred.shape[:3], bool)
    assert smooth_l1_loss(pred, target, valid, beta=beta) == pytest.approx(expected, rel=1e-12)


def test_l2_loss__equals_torch_mse():
    torch = pytest.importorskip("torch")
    pred, target = _random_pair(1)
    expected = torch.nn.functional.mse_loss(torch.from_numpy(pred), torch.from_numpy(target)).item()
    assert l2_loss(pred, target) == pytest.approx(expected, rel=1e-12)
    assert l2_loss(pred, target, np.ones(pred.shape[:3], bool)) == pytest.approx(
        expected, rel=1e-12
    )


def test_paper_reduction__scales_with_block_size_and_width():
    pred, target = np.zeros((1, 1, 2, 3)), np.ones((1, 1, 2, 3))
    wide = np.zeros((1, 1, 4, 6)), np.ones((1, 1, 4, 6))
    assert l2_loss(pred, target) == l2_loss(*wide) == 1.0
    assert l2_loss(pred, target, reduction="paper") == 6.0
    assert l2_loss(*wide, reduction="paper") == 24.0


@pytest.mark.parametrize("loss", ["l2", "smooth_l1"])
@pytest.mark.parametrize("reduction", ["mean", "paper"])
@given(seed=st.integers(0, 2**32 - 1), pad=st.integers(1, 4), data=st.data())
def test_padding_does_not_change_the_loss(loss, reduction, seed, pad, data):
    rng = np.random.default_rng(seed)
    batch, blocks, keep, dim = 2, 3, 4, 3
    pred, target = rng.normal(size=(2, batch, blocks, keep, dim))
    valid = rng.random((batch, blocks, keep)) < 0.7
    base = jepa_loss(pred, target, valid, loss=loss, reduction=reduction)
    # append `pad` padded slots per block holding arbitrary values (even NaN)
    filler = data.draw(st.sampled_from([0.0, 1e6, np.nan]))
    padded_pred = np.concatenate([pred, np.full((batch, blocks, pad, dim), filler)], axis=2)
    padded_target = np.concatenate([target, rng.normal(size=(batch, blocks, pad, dim))], axis=2)
    padded_valid = np.concatenate([valid, np.zeros((batch, blocks, pad), bool)], axis=2)
    padded = jepa_loss(padded_pred, padded_target, padded_valid, loss=loss, reduction=reduction)
    assert padded == pytest.approx(base, rel=1e-12, abs=1e-15)
    # and the padded entries could be anything: shuffling token slots changes nothing
    order = rng.permutation(keep + pad)
    shuffled = jepa_loss(
        padded_pred[:, :, order],
        padded_target[:, :, order],
        padded_valid[:, :, order],
        loss=loss,
        reduction=reduction,
    )
    assert shuffled == pytest.approx(base, rel=1e-12, abs=1e-15)


@given(seed=st.integers(0, 2**32 - 1))
def test_mean_loss__equals_mean_over_valid_tokens_only(seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=(2, 2, 3, 5, 4))
    valid = rng.random((2, 3, 5)) < 0.5
    expected = np.mean((pred - target)[valid] ** 2) if valid.any() else 0.0
    assert l2_loss(pred, target, valid) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_jepa_loss__dispatches_by_name():
    pred, target = _random_pair(2)
    assert jepa_loss(pred, target) == l2_loss(pred, target)
    assert jepa_loss(pred, target, loss="smooth_l1") == smooth_l1_loss(pred, target)
    assert jepa_loss(pred, target, loss="smooth_l1", beta=0.5, reduction="paper") == smooth_l1_loss(
        pred, target, beta=0.5, reduction="paper"
    )


def test_float32_inputs_give_float32_loss():
    pred, target = (a.astype(np.float32) for a in _random_pair(3))
    valid = np.ones(pred.shape[:3], bool)
    for reduction in ("mean", "paper"):
        assert l2_loss(pred, target, valid, reduction=reduction).dtype == np.float32
        assert smooth_l1_loss(pred, target, valid, reduction=reduction).dtype == np.float32


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: l2_loss(np.zeros((2, 3)), np.zeros((2, 3))), r"`pred`.*rank-4.*\(2, 3\)"),
        (
            lambda: l2_loss(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 4))),
            r"`target`.*\(1, 1, 2, 3\)",
        ),
        (
            lambda: l2_loss(
                np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 3)), np.ones((1, 1, 3), bool)
            ),
            r"`valid`.*\(1, 1, 2\)",
        ),
        (
            lambda: l2_loss(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 3)), reduction="sum"),
            r"`reduction`.*'sum'",
        ),
        (
            lambda: smooth_l1_loss(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 3)), beta=-1.0),
            r"`beta`.*>= 0",
        ),
        (
            lambda: jepa_loss(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 3)), loss="l1"),
            r"`loss`.*'l1'",
        ),
        (
            lambda: jepa_loss(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 3)), beta=0.5),
            r"`beta`.*None.*'l2'",
        ),
        (lambda: masked_mean(np.zeros((2, 3)), np.ones((3, 2), bool)), r"`valid`.*\(2, 3\)"),
    ],
)
def test_invalid_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
