"""Draw masks from any sampler of jepa_components.masks over a grid.

    python examples/visualize_masks.py [--masking multiblock|block|raster|random]
                                       [--grid 14] [--num 8] [--seed 0] [--out masks.png]

Prints a text rendering (C context, 1-8 target blocks, . unused) and, if
matplotlib is installed, writes a PNG with one panel per sample.
"""

from __future__ import annotations

import argparse

import numpy as np

from jepa_components.masks import make_sampler


def text_grid(ctx: np.ndarray, tgt: np.ndarray) -> str:
    """One sample as text: ``C`` context, ``1..M`` target block, ``.`` neither."""
    H, W = ctx.shape
    rows = []
    for r in range(H):
        line = []
        for c in range(W):
            hits = np.flatnonzero(tgt[:, r, c])
            line.append(str(hits[0] + 1) if hits.size else ("C" if ctx[r, c] else "."))
        rows.append(" ".join(line))
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--masking", default="multiblock", choices=["multiblock", "block", "raster", "random"]
    )
    parser.add_argument("--grid", type=int, default=14, help="patches per side")
    parser.add_argument("--num", type=int, default=8, help="samples to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="masks.png")
    args = parser.parse_args(argv)

    sampler = make_sampler(args.masking, grid_size=args.grid, seed=args.seed)
    batch = sampler.sample(args.num)
    ctx, tgt = batch.to_dense()
    print(f"{type(sampler).__name__}: context {batch.context.shape}, targets {batch.targets.shape}")
    print(f"context patches per sample: {batch.context_valid.sum(1).tolist()}")
    print(text_grid(ctx[0], tgt[0]))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib for a PNG)")
        return
    fig, axes = plt.subplots(1, args.num, figsize=(2 * args.num, 2.2))
    for i, ax in enumerate(np.atleast_1d(axes)):
        image = np.zeros(ctx.shape[1:] + (3,))
        image[ctx[i]] = (0.3, 0.5, 1.0)
        colours = plt.cm.autumn(np.linspace(0, 1, tgt.shape[1]))[:, :3]
        for m in range(tgt.shape[1]):
            image[tgt[i, m]] = 0.5 * image[tgt[i, m]] + 0.5 * colours[m]
        ax.imshow(image, interpolation="nearest")
        ax.set_axis_off()
    fig.suptitle(f"{args.masking}: blue context, warm colours targets")
    fig.savefig(args.out, dpi=100, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
