"""loss.png, masks.png and views.png (LeJEPA) of examples/train_ijepa.py (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np

TARGET_COLORS = np.array(
    [
        [0.90, 0.20, 0.20],
        [0.20, 0.70, 0.20],
        [0.95, 0.65, 0.10],
        [0.70, 0.25, 0.80],
        [0.10, 0.75, 0.80],
        [0.85, 0.45, 0.60],
    ]
)
CONTEXT_COLOR = np.array([0.15, 0.35, 0.95])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(rows, path, loss_name="I-JEPA loss"):
    """Loss per step (and its running mean) plus the collapse figures."""
    plt = _pyplot()
    steps = np.array([r["step"] for r in rows], dtype=float)
    loss = np.array([r["loss"] for r in rows], dtype=float)
    checked = [r for r in rows if r.get("feature_std") not in (None, "")]
    fig, axes = plt.subplots(
        1, 2 if checked else 1, figsize=(11 if checked else 6, 4), squeeze=False
    )
    ax = axes[0, 0]
    ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss per step")
    if len(loss) >= 10:
        width = max(2, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
        ax.plot(steps[width - 1 :], smooth, lw=2, label=f"mean of {width} steps")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(loss_name)
    ax.set_title("training loss (a proxy: watch the feature spread too)")
    ax.legend()
    if checked:
        ax = axes[0, 1]
        check_steps = [r["step"] for r in checked]
        ax.plot(
            check_steps,
            [float(r["feature_std"]) for r in checked],
            "o-",
            label="mean per-dim std (left)",
        )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("per-dim std, mean-pooled target features")
        ax.set_ylim(bottom=0)
        twin = ax.twinx()
        twin.plot(
            check_steps,
            [float(r["effective_rank"]) for r in checked],
            "s--",
            color="C1",
            label="effective rank (right)",
        )
        twin.set_ylabel("effective rank (RankMe)")
        twin.set_ylim(bottom=0)
        ax.set_title("collapse watch (HealthMonitor, fixed batch)")
        lines = ax.get_legend_handles_labels()
        twin_lines = twin.get_legend_handles_labels()
        ax.legend(lines[0] + twin_lines[0], lines[1] + twin_lines[1], loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mask_overlay(image, context, targets, patch_size):
    """RGB picture of one sample: context tinted blue, targets in colors.

    Args:
        image: ``(H, W, C)`` float in ``[0, 1]``.
        context: ``(h, w)`` bool patch grid.
        targets: ``(M, h, w)`` bool patch grids.
        patch_size: pixels per patch side.
    """
    gray = image.mean(axis=-1) if image.shape[-1] > 1 else image[..., 0]
    rgb = np.repeat(gray[..., None], 3, axis=-1) if image.shape[-1] == 1 else image.copy()
    rgb = np.clip(rgb, 0, 1)
    block = np.ones((patch_size, patch_size), dtype=bool)
    seen = np.kron(context, block).astype(bool)
    out = rgb * 0.25  # patches neither seen nor predicted are dimmed
    out[seen] = 0.6 * rgb[seen] + 0.4 * CONTEXT_COLOR
    for m, target in enumerate(targets):
        pixels = np.kron(target, block).astype(bool)
        color = TARGET_COLORS[m % len(TARGET_COLORS)]
        out[pixels] = 0.45 * rgb[pixels] + 0.55 * color
    return out


def plot_masks(images, batch, patch_size, path, title):
    """A grid of samples: the image, then the masks drawn over it."""
    plt = _pyplot()
    context, targets = batch.to_dense()
    count = len(images)
    fig, axes = plt.subplots(2, count, figsize=(1.6 * count, 3.6), squeeze=False)
    for i in range(count):
        shown = np.clip(images[i], 0, 1)
        axes[0, i].imshow(
            shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray", vmin=0, vmax=1
        )
        axes[1, i].imshow(mask_overlay(images[i], context[i], targets[i], patch_size))
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("masks")
    fig.suptitle(
        f"{title}\nblue: context the encoder sees; colors: target blocks to predict; dark: neither",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_views(images, views, normalize, path, title, seed=0):
    """One row per image: the image, then its views (``views``: a ``MultiView``).

    ``normalize`` (an ``augment.Normalize``) is undone for display.
    """
    plt = _pyplot()
    drawn = np.asarray(views(images, rng=seed))  # (B, V, h, w, C), normalised
    mean = np.asarray(normalize.mean, dtype=np.float32)
    std = np.asarray(normalize.std, dtype=np.float32)
    drawn = np.clip(drawn * std + mean, 0, 1)
    count, num_views = drawn.shape[:2]
    fig, axes = plt.subplots(
        count, num_views + 1, figsize=(1.4 * (num_views + 1), 1.4 * count + 0.6), squeeze=False
    )
    for i in range(count):
        for j, picture in enumerate([np.clip(images[i], 0, 1), *drawn[i]]):
            ax = axes[i, j]
            ax.imshow(
                picture[..., 0] if picture.shape[-1] == 1 else picture,
                cmap="gray",
                vmin=0,
                vmax=1,
            )
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    for j in range(num_views):
        axes[0, j + 1].set_title(f"view {j + 1}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
