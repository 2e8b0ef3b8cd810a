"""V-JEPA's attentive probe: the pooler against NumPy, saving, training, seeds."""

import keras
import numpy as np
import pytest
from harness import check_layer, to_numpy, weights_numpy

from jepa_components.backends.keras.evaluation.attentive_probe import (
    AttentivePooler,
    AttentiveProbe,
    attentive_probe_accuracy,
    token_statistics,
    train_attentive_probe,
)


def separable_tokens(n=96, tokens=4, dim=8, classes=3, seed=0):
    """Every token of a sample carries its class on one dimension, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = rng.normal(size=(n, tokens, dim)).astype("float32")
    x[np.arange(n), :, labels] += 3.0
    return x, labels


FAST = dict(num_heads=2, epochs=12, batch_size=16, learning_rate=1e-2, warmup_epochs=1)


# --- the attentive pooler and probe --------------------------------------------------------


def test_attentive_pooler__layer_harness():
    tokens = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    check_layer(
        lambda: AttentivePooler(8, num_heads=2, num_queries=3, seed=0),
        lambda layer: layer(tokens),
        (2, 3, 8),
    )


def test_attentive_pooler__matches_a_numpy_cross_attention_block():
    pooler = AttentivePooler(8, num_heads=2, num_queries=2, mlp_ratio=2.0, seed=1)
    tokens = np.random.default_rng(1).normal(size=(3, 5, 8)).astype("float32")
    got = to_numpy(pooler(tokens))

    def layer_norm(x, eps=1e-5):
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)

    def linear(layer, x):
        return x @ to_numpy(layer.kernel) + to_numpy(layer.bias)

    from scipy.special import erf

    queries = np.broadcast_to(to_numpy(pooler.query_tokens), (3, 2, 8))
    keys = layer_norm(tokens)  # LayerNorm scale 1, offset 0 at init
    q = linear(pooler.q, queries).reshape(3, 2, 2, 4).transpose(0, 2, 1, 3)
    kv = linear(pooler.kv, keys).reshape(3, 5, 2, 2, 4)
    k, v = kv[:, :, 0].transpose(0, 2, 1, 3), kv[:, :, 1].transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(4)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = (weights @ v).transpose(0, 2, 1, 3).reshape(3, 2, 8)
    x = queries + linear(pooler.proj, attended)
    hidden = linear(pooler.mlp.fc1, layer_norm(x, 1e-5))
    hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
    expected = x + linear(pooler.mlp.fc2, hidden)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_attentive_probe__shapes_and_save_load_round_trip(tmp_path):
    probe = AttentiveProbe(8, 3, num_heads=2, num_queries=2, seed=0)
    tokens = separable_tokens(4)[0]
    logits = to_numpy(probe(tokens))
    assert logits.shape == (4, 3)
    probe.set_token_statistics(np.arange(8.0), np.full(8, 2.0))
    logits = to_numpy(probe(tokens))
    path = str(tmp_path / "probe.keras")
    probe.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, AttentiveProbe) and loaded.get_config() == probe.get_config()
    np.testing.assert_allclose(to_numpy(loaded(tokens)), logits, rtol=1e-6, atol=1e-6)


def test_attentive_probe__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `num_heads`"):
        AttentivePooler(10, num_heads=4)
    with pytest.raises(ValueError, match="Invalid value for argument `num_queries`"):
        AttentivePooler(8, num_heads=2, num_queries=0)
    with pytest.raises(ValueError, match="Invalid value for argument `num_classes`"):
        AttentiveProbe(8, 1)
    with pytest.raises(ValueError, match="Invalid value for argument `std`"):
        AttentiveProbe(8, 2, num_heads=2).set_token_statistics(np.zeros(8), np.zeros(8))


# --- training ---------------------------------------------------------------------


def test_attentive_probe_accuracy__high_on_separable_tokens():
    x, y = separable_tokens(160, seed=2)
    accuracy = attentive_probe_accuracy(x[:128], y[:128], x[128:], y[128:], **FAST)
    assert accuracy >= 0.9


def test_attentive_probe_accuracy__offset_scale_and_label_values_do_not_matter():
    """Tokens far from the origin with one huge nuisance dimension (standardized first),
    labels 7 and 12 (mapped to classes 0 and 1)."""
    x, y = separable_tokens(160, classes=2, seed=3)
    x = x + 100.0
    x[:, :, -1] *= 1000.0
    labels = 7 + 5 * y
    accuracy = attentive_probe_accuracy(x[:128], labels[:128], x[128:], labels[128:], **FAST)
    assert accuracy >= 0.9


def test_train_attentive_probe__token_statistics_come_from_the_train_tokens():
    x, y = separable_tokens(64, seed=1)
    x = x * 3.0 + 5.0
    probe, _ = train_attentive_probe(x, y, **dict(FAST, epochs=1))
    rows = x.reshape(-1, x.shape[-1]).astype("float64")
    np.testing.assert_allclose(to_numpy(probe.token_mean), rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(probe.token_std), rows.std(0), rtol=1e-5)
    mean, _ = token_statistics(x, chunk=7)
    np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-10)
    np.testing.assert_allclose(token_statistics(np.ones((2, 3, 4)))[1], 1.0)  # std 0 -> 1


def test_train_attentive_probe__seed_determines_weights_and_training():
    x, y = separable_tokens(64, seed=4)
    kwargs = dict(FAST, epochs=2)
    first, classes = train_attentive_probe(x, y, seed=5, **kwargs)
    second, _ = train_attentive_probe(x, y, seed=5, **kwargs)
    other, _ = train_attentive_probe(x, y, seed=6, **kwargs)
    assert classes.tolist() == [0, 1, 2]
    for a, b in zip(weights_numpy(first), weights_numpy(second)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_numpy(first.pooler.query_tokens), to_numpy(other.pooler.query_tokens))


def test_train_attentive_probe__validates():
    x, y = separable_tokens(16)
    with pytest.raises(ValueError, match="Invalid value for argument `train_tokens`"):
        train_attentive_probe(x[:, 0], y)
    with pytest.raises(ValueError, match="Invalid value for argument `train_labels`"):
        train_attentive_probe(x, y[:5])
    with pytest.raises(ValueError, match="Invalid value for argument `train_labels`"):
        train_attentive_probe(x, np.zeros(16))
    with pytest.raises(ValueError, match="Invalid value for argument `epochs`"):
        train_attentive_probe(x, y, epochs=0)
    with pytest.raises(ValueError, match="Invalid value for argument `warmup_epochs`"):
        train_attentive_probe(x, y, epochs=2, warmup_epochs=3)


def test_epoch_rows__full_sorted_batches_of_a_seeded_permutation_and_bad_values_refused():
    from jepa_components.backends.keras.evaluation.attentive_probe import epoch_rows

    rows = epoch_rows(50, 16, seed=3, epoch=1)
    assert rows.shape == (48,) and len(set(rows.tolist())) == 48  # 3 full batches, no repeat
    assert (np.diff(rows.reshape(3, 16), axis=1) > 0).all()  # each batch in memory order
    np.testing.assert_array_equal(rows, epoch_rows(50, 16, seed=3, epoch=1))
    assert not np.array_equal(rows, epoch_rows(50, 16, seed=3, epoch=2))  # a new order per epoch
    with pytest.raises(ValueError, match="Invalid value for argument `batch_size`"):
        epoch_rows(10, 11, seed=0, epoch=0)
    with pytest.raises(ValueError, match="Invalid value for argument `epoch`"):
        epoch_rows(10, 2, seed=0, epoch=-1)
