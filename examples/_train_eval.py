"""Frozen-feature evaluation and the verdict of examples/train_ijepa.py.

Three feature sets are compared on the same held-out split with the same
probe settings, fixed in advance (nothing is tuned on the held-out split):

- the trained target encoder (I-JEPA's evaluated encoder, official code;
  LeJEPA and ``--target-encoder online``: the encoder itself),
- the same architecture at its random initialization (same seed as the run),
- raw pixels (linear and k-NN only: the attentive probe needs tokens).

Each encoder is read once (``backends.keras.probes.encode_images``: the
mean-pooled last layer, the mean-pooled last ``--probe-layers`` blocks and
the last layer's patch tokens for both splits in one pass); every probe and
collapse figure reuses those arrays. The probes are the library's
(``diagnostics.probe_accuracies`` for linear and k-NN,
``probes.attentive_probe_accuracy``); ``diagnostics.PROBE_PROTOCOLS`` names
their protocols in ``report.json``. A LeJEPA run with labelled data also
reports its online linear probe (trained with the encoder, on the detached
embeddings of the training views) on the same held-out images.
"""

from __future__ import annotations

import math

import numpy as np

from jepa_components import diagnostics
from jepa_components.context import layer_norm

ATTENTIVE_NOT_FOR_PIXELS = "not applicable (no patch tokens to attend to)"


def _protocols(last_n, encoder_name="target encoder"):
    protocols = {name: diagnostics.PROBE_PROTOCOLS[name] for name in ("linear", "knn", "attentive")}
    protocols["attentive"] += f"; raw pixels: {ATTENTIVE_NOT_FOR_PIXELS}"
    protocols["features"] = (
        f"linear and k-NN: the {encoder_name}'s last-layer tokens, "
        "mean-pooled (I-JEPA has no class token); *_last_layers: the "
        f"mean-pooled outputs of the last {last_n} blocks (each through "
        "the final norm), concatenated; raw pixels: the flattened "
        "normalized images"
    )
    protocols["collapse"] = (
        "feature_std / effective_rank: mean per-dimension std and "
        f"effective rank (RankMe) of the {encoder_name}'s mean-pooled features of "
        "the held-out images (as the training health check); "
        "target_token_*: the same for its layer-normalized tokens "
        "(what the I-JEPA loss regresses)"
    )
    return protocols


def _encoder_figures(encoder, images, labels, num_train, last_n, seed, labelled):
    """Probe accuracies and collapse figures of one encoder, from one feature pass."""
    from jepa_components.backends.keras.evaluation.probes import (
        attentive_probe_accuracy,
        encode_images,
    )

    features = encode_images(encoder, images, last_n=last_n, tokens=True)
    pooled = features["pooled"]
    stacked = features.get("pooled_last_layers", pooled)  # depth 1: the last layer itself
    tokens = features["tokens"]
    held_out = slice(num_train, None)
    pooled_collapse = diagnostics.collapse_metrics(pooled[held_out])
    normed = layer_norm(tokens[held_out].astype(np.float64))
    token_collapse = diagnostics.collapse_metrics(normed.reshape(-1, normed.shape[-1]))
    figures = {
        "feature_std": pooled_collapse["feature_std_mean"],
        "feature_std_min": pooled_collapse["feature_std_min"],
        "effective_rank": pooled_collapse["effective_rank"],
        "target_token_feature_std": token_collapse["feature_std_mean"],
        "target_token_effective_rank": token_collapse["effective_rank"],
    }
    if not labelled:
        return figures
    train_y, test_y = labels[:num_train], labels[num_train:]
    last = diagnostics.probe_accuracies(pooled[:num_train], train_y, pooled[held_out], test_y)
    deep = diagnostics.probe_accuracies(stacked[:num_train], train_y, stacked[held_out], test_y)
    figures.update(
        linear_probe_accuracy=last["linear"],
        knn_accuracy=last["knn"],
        linear_probe_accuracy_last_layers=deep["linear"],
        knn_accuracy_last_layers=deep["knn"],
        attentive_probe_accuracy=attentive_probe_accuracy(
            tokens[:num_train], train_y, tokens[held_out], test_y, seed=seed
        ),
    )
    return figures


def evaluate(
    trained,
    random_init,
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    last_n=4,
    seed=0,
    labelled=True,
    encoder_name="target encoder",
):
    """Probe accuracies and collapse figures for trained / random init / raw pixels.

    Args:
        trained, random_init: ``VisionTransformer`` encoders.
        train_images, test_images: ``(N, H, W, C)`` normalized images.
        train_labels, test_labels: ``(N,)`` ints (ignored unless ``labelled``).
        last_n: blocks of the "last layers" view.
        seed: seed of the attentive probe (the same for both encoders).
        labelled: run the probes; else only the collapse figures.
        encoder_name: what ``trained`` is, for the protocols' text.

    Returns:
        a flat dict for ``report.json``: the trained encoder's figures,
        the same with a ``random_init_`` prefix, ``raw_pixel_*`` accuracies,
        and ``probe_protocols``.
    """
    num_train = len(train_images)
    images = np.concatenate([train_images, test_images])
    labels = np.concatenate([train_labels, test_labels])
    last_n = int(min(last_n, len(trained.blocks)))
    result = {
        "num_probe_train": int(num_train),
        "num_probe_test": int(len(test_images)),
        "probe_layers": last_n,
    }
    for prefix, encoder in (("", trained), ("random_init_", random_init)):
        figures = _encoder_figures(encoder, images, labels, num_train, last_n, seed, labelled)
        result.update({prefix + name: value for name, value in figures.items()})
    if labelled:
        raw = diagnostics.probe_accuracies(
            train_images.reshape(num_train, -1),
            train_labels,
            test_images.reshape(len(test_images), -1),
            test_labels,
        )
        result["raw_pixel_probe_accuracy"] = raw["linear"]
        result["raw_pixel_knn_accuracy"] = raw["knn"]
        # The first release's name for the random-init linear probe.
        result["random_init_probe_accuracy"] = result["random_init_linear_probe_accuracy"]
        result["probe_protocols"] = _protocols(last_n, encoder_name)
    return result


def online_probe_accuracy(model, images, labels, batch_size=256):
    """Held-out accuracy of a LeJEPA's online linear probe on its mean-pooled features."""
    from keras import ops

    correct = 0
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        logits = model.probe(model.features(chunk), training=False)
        predicted = np.argmax(ops.convert_to_numpy(logits), axis=-1)
        correct += int(np.sum(predicted == labels[start : start + batch_size]))
    return correct / max(len(images), 1)


def noise_margin(accuracy, num_test):
    """One binomial standard error of an accuracy on ``num_test`` images."""
    accuracy = min(max(accuracy, 1.0 / num_test), 1 - 1.0 / num_test)
    return math.sqrt(accuracy * (1 - accuracy) / num_test)


def spread_line(result):
    """Feature spread (collapse figures) of the trained encoder against random init."""
    ratio = result["feature_std"] / max(result["random_init_feature_std"], 1e-12)
    rank_ratio = result["effective_rank"] / max(result["random_init_effective_rank"], 1e-12)
    spread = (
        f"Target-feature spread vs random init (mean-pooled, held-out): per-dim std "
        f"x{ratio:.2f}, effective rank x{rank_ratio:.2f}"
    )
    if ratio < 0.1 or rank_ratio < 0.1:
        return spread + " -- the representations have collapsed."
    if ratio < 0.7 or rank_ratio < 0.7:
        return spread + " -- partial collapse: the loss fell partly by shrinking the features."
    return spread + " -- no sign of collapse."


def verdict(result):
    """A few honest sentences comparing trained, random-init and raw pixels."""
    trained = result["linear_probe_accuracy"]
    random_init = result["random_init_linear_probe_accuracy"]
    raw = result["raw_pixel_probe_accuracy"]
    n = result["num_probe_test"]
    margin = 2 * noise_margin(max(trained, random_init), n)
    lines = [
        f"Linear probe (logistic regression on standardized mean-pooled last-layer features; "
        f"{result['num_probe_train']} train, {n} held-out images): trained {trained:.1%}, "
        f"random init {random_init:.1%}, raw pixels {raw:.1%}.",
        f"Linear probe on the last {result['probe_layers']} layer(s): trained "
        f"{result['linear_probe_accuracy_last_layers']:.1%}, random init "
        f"{result['random_init_linear_probe_accuracy_last_layers']:.1%}. "
        f"k-NN (k={min(20, result['num_probe_train'])}, cosine on standardized features): "
        f"trained {result['knn_accuracy']:.1%}, random init "
        f"{result['random_init_knn_accuracy']:.1%}, raw pixels "
        f"{result['raw_pixel_knn_accuracy']:.1%}.",
        f"Attentive probe (cross-attention over the last layer's patch tokens): trained "
        f"{result['attentive_probe_accuracy']:.1%}, random init "
        f"{result['random_init_attentive_probe_accuracy']:.1%}; raw pixels: "
        f"{ATTENTIVE_NOT_FOR_PIXELS}.",
    ]
    if trained > random_init + margin:
        lines.append(
            f"Training helped: the trained encoder beats its random initialization by "
            f"more than the noise on the linear probe (+-{margin:.1%}, two standard "
            "errors)."
        )
    elif trained < random_init - margin:
        lines.append(
            "Training hurt: the trained encoder is worse than its own random "
            f"initialization on the linear probe (beyond +-{margin:.1%} noise)."
        )
    else:
        lines.append(
            "Training made no measurable difference on the linear probe: trained and "
            f"random-init features are within noise (+-{margin:.1%})."
        )
    if raw >= trained:
        lines.append(
            "Raw pixels are at least as good as the trained features on this data: "
            "a linear probe gains nothing from the encoder over the pixels."
        )
    if "online_probe_accuracy" in result:
        lines.append(
            f"LeJEPA's online linear probe (trained along, on the training views): "
            f"{result['online_probe_accuracy']:.1%} on the same held-out images."
        )
    lines.append(spread_line(result))
    return lines
