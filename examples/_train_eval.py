"""Frozen-feature evaluation and the verdict of examples/train_ijepa.py.

The numbers come from :mod:`jepa_components.diagnostics`; this module only
embeds images with a Keras encoder and compares three feature sets on the
same held-out split with the same probe settings:

- the trained target encoder (I-JEPA's evaluated encoder, official code),
- the same architecture at its random initialization (same seed as the run),
- raw pixels.

Nothing is tuned on the held-out split: the probe's regularization, ``k``
and the layers probed are fixed in advance and identical for all three.
"""

from __future__ import annotations

import math

import numpy as np

from jepa_components import diagnostics
from jepa_components.context import layer_norm
from jepa_components.positional import sincos_2d_positions


def _feature_model(encoder, last_n):
    """A ``keras.Model`` mapping images to the pooled features of the last
    ``last_n`` blocks and the last layer's tokens; ``predict`` compiles it
    once (much faster than eager calls on jax)."""
    import keras
    from keras import ops

    positions = sincos_2d_positions(encoder.embed_dim, encoder.grid_size)
    first_kept = len(encoder.blocks) - last_n

    class LayerFeatures(keras.Model):
        def call(self, images):
            x = encoder.patch_embed(images)
            x = x + ops.convert_to_tensor(positions[None], dtype=x.dtype)
            pooled = []
            for i, block in enumerate(encoder.blocks):
                x = block(x)
                if i >= first_kept:
                    # The final norm on every kept block, as DINO's
                    # ``get_intermediate_layers`` (the usual "last 4 layers"
                    # linear evaluation of ViTs). The last one is encoder(images).
                    normed = encoder.norm(x)
                    pooled.append(ops.mean(normed, axis=1))
            return {"last": pooled[-1], "stacked": ops.concatenate(pooled, axis=-1),
                    "tokens": normed}

    return LayerFeatures()


def embed(encoder, images, *, last_n=4, batch_size=256):
    """Mean-pooled features of ``images`` from a Keras ViT encoder.

    Returns ``(last, last_n_concat, tokens)``: ``(N, D)`` last-layer
    features (``mean_pool(encoder(images))``), ``(N, last_n * D)``
    concatenated last-``last_n``-layer features and ``(N * T, D)``
    layer-normalized last-layer tokens (the I-JEPA targets, for the collapse
    metrics).
    """
    last_n = max(1, min(int(last_n), len(encoder.blocks)))
    outputs = _feature_model(encoder, last_n).predict(
        images, batch_size=min(batch_size, len(images)), verbose=0)
    tokens = layer_norm(outputs["tokens"])
    return outputs["last"], outputs["stacked"], tokens.reshape(-1, tokens.shape[-1])


def target_collapse_metrics(encoder, images, max_rows=8192):
    """Collapse metrics of the layer-normalized target tokens of ``images``."""
    from keras import ops

    tokens = ops.convert_to_numpy(encoder(images))
    tokens = layer_norm(tokens).reshape(-1, tokens.shape[-1])
    return diagnostics.collapse_metrics(tokens, max_rank_samples=max_rows)


def _probe(train, train_y, test, test_y, k):
    return {
        "linear": diagnostics.linear_probe_accuracy(train, train_y, test, test_y),
        "knn": diagnostics.knn_accuracy(train, train_y, test, test_y, k=min(k, len(train))),
    }


def evaluate(trained, random_init, train_images, train_labels, test_images, test_labels,
             *, last_n=4, knn_k=20):
    """Probe accuracies and collapse figures for trained / random / raw pixels."""
    result = {"num_probe_train": int(len(train_images)), "num_probe_test": int(len(test_images)),
              "probe_layers": int(min(last_n, len(trained.blocks)))}
    num_train = len(train_images)
    both = np.concatenate([train_images, test_images])
    for name, encoder in (("trained", trained), ("random_init", random_init)):
        # One predict call per encoder: one compilation.
        features_last, features_stack, all_tokens = embed(encoder, both, last_n=last_n)
        train_last, test_last = features_last[:num_train], features_last[num_train:]
        train_stack, test_stack = features_stack[:num_train], features_stack[num_train:]
        per_image = len(all_tokens) // len(both)
        tokens = all_tokens[num_train * per_image:]  # held-out images' target tokens
        last = _probe(train_last, train_labels, test_last, test_labels, knn_k)
        stacked = _probe(train_stack, train_labels, test_stack, test_labels, knn_k)
        collapse = diagnostics.collapse_metrics(tokens)
        pooled_rank = diagnostics.effective_rank(test_last)
        prefix = "" if name == "trained" else "random_init_"
        result[f"{prefix}linear_probe_accuracy"] = last["linear"]
        result[f"{prefix}knn_accuracy"] = last["knn"]
        result[f"{prefix}linear_probe_accuracy_last_layers"] = stacked["linear"]
        result[f"{prefix}knn_accuracy_last_layers"] = stacked["knn"]
        result[f"{prefix}feature_std"] = collapse["feature_std_mean"]
        result[f"{prefix}feature_std_min"] = collapse["feature_std_min"]
        result[f"{prefix}effective_rank"] = collapse["effective_rank"]
        result[f"{prefix}pooled_effective_rank"] = pooled_rank
    raw_train = train_images.reshape(len(train_images), -1)
    raw_test = test_images.reshape(len(test_images), -1)
    raw = _probe(raw_train, train_labels, raw_test, test_labels, knn_k)
    result["raw_pixel_probe_accuracy"] = raw["linear"]
    result["raw_pixel_knn_accuracy"] = raw["knn"]
    # The name for the random-init linear probe.
    result["random_init_probe_accuracy"] = result["random_init_linear_probe_accuracy"]
    return result


def noise_margin(accuracy, num_test):
    """One binomial standard error of an accuracy on ``num_test`` images."""
    accuracy = min(max(accuracy, 1.0 / num_test), 1 - 1.0 / num_test)
    return math.sqrt(accuracy * (1 - accuracy) / num_test)


def verdict(result):
    """A few honest sentences comparing trained, random-init and raw pixels."""
    trained = result["linear_probe_accuracy"]
    random_init = result["random_init_probe_accuracy"]
    raw = result["raw_pixel_probe_accuracy"]
    n = result["num_probe_test"]
    margin = 2 * noise_margin(max(trained, random_init), n)
    lines = [
        f"Linear probe on {n} held-out images (mean-pooled last layer): "
        f"trained {trained:.1%}, random init {random_init:.1%}, raw pixels {raw:.1%}.",
        f"Last {result['probe_layers']} layers: trained "
        f"{result['linear_probe_accuracy_last_layers']:.1%}, random init "
        f"{result['random_init_linear_probe_accuracy_last_layers']:.1%}. "
        f"k-NN: trained {result['knn_accuracy']:.1%}, random init "
        f"{result['random_init_knn_accuracy']:.1%}, raw pixels {result['raw_pixel_knn_accuracy']:.1%}.",
    ]
    if trained > random_init + margin:
        lines.append(f"Training helped: the trained encoder beats its random initialization by "
                     f"more than the noise (+-{margin:.1%}, two standard errors).")
    elif trained < random_init - margin:
        lines.append("Training hurt: the trained encoder is worse than its own random "
                     f"initialization (beyond +-{margin:.1%} noise).")
    else:
        lines.append(f"Training made no measurable difference: trained and random-init features "
                     f"are within noise (+-{margin:.1%}).")
    if raw >= trained:
        lines.append("Raw pixels are at least as good as the trained features on this data: "
                     "the encoder has not learned anything a linear probe needs beyond the pixels.")
    ratio = result["feature_std"] / max(result["random_init_feature_std"], 1e-12)
    rank_ratio = result["effective_rank"] / max(result["random_init_effective_rank"], 1e-12)
    spread = (f"Target-feature spread vs random init: per-dim std x{ratio:.2f}, "
              f"effective rank x{rank_ratio:.2f}")
    if ratio < 0.1 or rank_ratio < 0.1:
        spread += " -- the representations have collapsed."
    elif ratio < 0.7 or rank_ratio < 0.7:
        spread += " -- partial collapse: the loss fell partly by shrinking the features."
    else:
        spread += " -- no sign of collapse."
    lines.append(spread)
    return lines
