"""Mask generation speed: jepa_components vs the official I-JEPA MaskCollator.

Same configuration (14x14 grid, 4 targets of scale 0.15-0.2 and aspect
0.75-1.5, one context block of scale 0.85-1.0, min_keep 10), batch 256, one
thread, mask generation only (the official collator is called on a batch of
plain ints so image collation costs nothing). Prints microseconds per sample
for both and the ratio. Needs torch and a checkout of facebookresearch/ijepa
(``--official-code PATH`` or ``$IJEPA_OFFICIAL_CODE``; see docs/performance.md).

    python benchmarks/bench_masks.py [--batch-size 256] [--repeats 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from jepa_components.masks import MultiBlockMaskSampler


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--official-code",
        "--anchors",
        dest="anchors",
        default=None,
        metavar="PATH",
        help="checkout of facebookresearch/ijepa (default: $IJEPA_OFFICIAL_CODE)",
    )
    args = parser.parse_args()
    B = args.batch_size

    import torch
    from _official import official_code_dir  # where the official code is

    torch.set_num_threads(1)
    sys.path.insert(0, official_code_dir(args.anchors))
    from src.masks.multiblock import MaskCollator

    logging.getLogger().setLevel(logging.ERROR)  # its retry warnings
    official = MaskCollator(
        input_size=(224, 224),
        patch_size=16,
        enc_mask_scale=(0.85, 1.0),
        pred_mask_scale=(0.15, 0.2),
        aspect_ratio=(0.75, 1.5),
        nenc=1,
        npred=4,
        min_keep=10,
        allow_overlap=False,
    )
    items = list(range(B))
    torch.manual_seed(0)
    ours = MultiBlockMaskSampler(grid_size=(14, 14), seed=0)

    ours.sample(B)  # warm-up
    official(items)
    t_ours, m_ours = best_time(lambda: ours.sample(B), args.repeats)
    t_off, m_off = best_time(lambda: official(items), max(3, args.repeats // 4))

    us = lambda t: 1e6 * t / B  # noqa: E731
    print(f"batch {B}, 14x14 grid, 4 targets, one thread (best of runs; median in brackets)")
    print(f"official MaskCollator : {us(t_off):9.2f} us/sample  ({us(m_off):.2f})")
    print(f"MultiBlockMaskSampler : {us(t_ours):9.2f} us/sample  ({us(m_ours):.2f})")
    print(f"speed-up              : {t_off / t_ours:9.1f}x  (goal: >= 200x)")


if __name__ == "__main__":
    main()
