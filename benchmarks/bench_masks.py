"""Mask generation speed: every mask family of jepa_components vs its reference code.

Each row times one sampler against the reference implementation it follows,
at the reference's default configuration, batch 256, one thread
(``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``, set in this process
for both sides), mask generation only, the calls of both sides interleaved
so that load changes hit both. Prints microseconds per sample (best of the
repeats, median in brackets) and the ratio, against the goal "ours >= 100x
the reference per sample". ``--profile`` then shows which calls take our
time (cProfile).

Families (``--families``, comma-separated; default all):

* ``ijepa``: :class:`MultiBlockMaskSampler` vs the official I-JEPA
  ``src/masks/multiblock.py`` ``MaskCollator`` (14x14 grid, 4 targets of
  scale 0.15-0.2, aspect 0.75-1.5, one context block of scale 0.85-1.0,
  min_keep 10), called on a batch of plain ints so image collation costs
  nothing.
* ``vjepa``: ``vjepa_samplers`` vs V-JEPA ``src/masks/multiblock3d.py``
  ``_MaskGenerator(...)(batch_size)``, the two ``configs/pretrain/vitl16.yaml``
  mask configurations timed one by one (16 frames, 224 px, patch 16, tubelet
  2: an 8x14x14 grid); ours twice: ``ragged="truncate"`` (what
  ``VJEPAMaskCollator`` returns: rows cut to the batch minimum like the
  reference's, a random subset kept) and the default ``ragged="pad"``.
* ``vjepa_tube``: :class:`RandomTubeMaskSampler` vs V-JEPA
  ``src/masks/random_tube.py`` ``_MaskGenerator`` (ratio 0.9, same grid).
* ``mae``: :class:`MAEMaskSampler` vs MAE ``models_mae.py``
  ``random_masking`` (14x14, ratio 0.75) on a ``(256, 196, 1)`` tensor; the
  function is taken out of the file with ``ast`` (the module imports timm).
* ``dinov2``: :class:`BlockwiseMaskSampler` vs DINOv2
  ``data/collate.py`` ``collate_data_and_cast`` with ``data/masking.py``
  ``MaskingGenerator`` as ``train.py`` builds it (16x16 grid, at most half
  the patches, ratio U(0.1, 0.5) on half the images); called on 256 samples
  whose crops are one-element tensors (their stacking is part of the time,
  under 1% of it).
* ``data2vec``: :class:`InverseBlockMaskSampler` (14x14, data2vec 2.0's
  image defaults, one mask per image): no reference code is available, ours
  is timed alone.

Where the reference code is: the I-JEPA checkout from ``--official-code
PATH``, else ``$IJEPA_OFFICIAL_CODE``, else ``<anchors>/ijepa``; the others
under the anchors folder (``--anchors DIR``, else ``$JEPA_ANCHORS``, else
``../shared/anchors`` next to the repository) as ``vjepa/``, ``mae/`` and
``dinov2/`` checkouts of facebookresearch/jepa, facebookresearch/mae and
facebookresearch/dinov2. ``--anchors`` pointing at an I-JEPA checkout itself
(its older meaning) still works. A family whose reference is missing is
timed without it, with the reason printed. See docs/performance.md.

    python benchmarks/bench_masks.py [--families ijepa,vjepa,...] [--batch-size 256]
        [--repeats 20] [--anchors DIR] [--official-code PATH] [--output FILE] [--profile]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANCHORS_ENV = "JEPA_ANCHORS"
IJEPA_ENV = "IJEPA_OFFICIAL_CODE"
DEFAULT_ANCHORS = os.path.join(os.path.dirname(REPO), "shared", "anchors")
GOAL = 100.0  # ours >= GOAL x the reference, per sample
FAMILIES = ("ijepa", "vjepa", "vjepa_tube", "mae", "dinov2", "data2vec")


class Missing(Exception):
    """A reference that is not there: the family is timed without it."""


@dataclass
class Row:
    family: str
    config: str
    ours_name: str
    ours: Callable[[], object]
    reference_name: str = ""
    reference: Callable[[], object] | None = None
    note: str = ""
    results: dict = field(default_factory=dict)


def best_time(fn, repeats):
    """(best, median) seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def interleaved_times(ours, reference, repeats, reference_repeats):
    """(best, median) seconds of both sides, their calls interleaved.

    ``reference_repeats`` rounds, each a share of the ``repeats`` calls of
    ``ours`` then one call of ``reference``, so that a change of machine load
    hits both sides alike (both run in this process, one thread each).
    """
    ours(), reference()  # warm-up
    per_round = [len(r) for r in np.array_split(np.arange(repeats), reference_repeats)]
    t_ours, t_ref = [], []
    for n in per_round:
        t_ours += [best_time(ours, 1)[0] for _ in range(n)]
        t_ref.append(best_time(reference, 1)[0])
    return (min(t_ours), float(np.median(t_ours))), (min(t_ref), float(np.median(t_ref)))


def load_file(path, name):
    """Import one reference file by path under a private module name (no ``src`` clashes)."""
    if not os.path.isfile(path):
        raise Missing(f"{path} not found")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors_dirs(args):
    """(anchors folder, I-JEPA checkout) from the options and environment."""
    anchors = args.anchors or os.environ.get(ANCHORS_ENV) or DEFAULT_ANCHORS
    ijepa = args.official_code or os.environ.get(IJEPA_ENV)
    if args.anchors and os.path.isfile(os.path.join(args.anchors, "src", "masks", "multiblock.py")):
        ijepa = ijepa or args.anchors  # the older meaning: --anchors was the I-JEPA checkout
        anchors = os.environ.get(ANCHORS_ENV) or DEFAULT_ANCHORS
    return os.path.abspath(anchors), os.path.abspath(ijepa or os.path.join(anchors, "ijepa"))


# -- families -----------------------------------------------------------------
def ijepa_rows(B, anchors, ijepa):
    import torch

    from jepa_components.masks import MultiBlockMaskSampler

    ours = MultiBlockMaskSampler(grid_size=(14, 14), seed=0)
    row = Row(
        "ijepa",
        "14x14, 4 targets 0.15-0.2, context 0.85-1.0",
        "MultiBlockMaskSampler",
        lambda: ours.sample(B),
    )
    path = os.path.join(ijepa, "src", "masks", "multiblock.py")
    try:
        module = load_file(path, "_bench_ijepa_multiblock")
    except Missing as error:
        row.note = f"reference missing ({error}; --official-code or ${IJEPA_ENV})"
        return [row]
    logging.getLogger().setLevel(logging.ERROR)  # its retry warnings
    official = module.MaskCollator(
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
    row.reference_name, row.reference = "ijepa MaskCollator", lambda: official(items)
    return [row]


def _vitl16_masks(anchors):
    path = os.path.join(anchors, "vjepa", "configs", "pretrain", "vitl16.yaml")
    try:
        import yaml

        with open(path) as f:
            return yaml.safe_load(f)["mask"]
    except (ImportError, OSError):  # the same list, as the library holds it
        from jepa_components.masks import VJEPA_MASK_CONFIGS

        return [dict(config) for config in VJEPA_MASK_CONFIGS]


def vjepa_rows(B, anchors, ijepa):
    import torch

    from jepa_components.masks import vjepa_samplers

    configs = _vitl16_masks(anchors)
    # "truncate": the collator's output (every row cut to the batch minimum, a
    # random subset kept), the same shapes as the reference's; "pad": the default
    rows = []
    for ragged in ("truncate", "pad"):
        ours = vjepa_samplers((8, 14, 14), configs=configs, seed=0, ragged=ragged)
        rows += [
            Row(
                "vjepa",
                f"8x14x14, {c['num_blocks']} blocks x {c['spatial_scale'][0]}, tubes",
                f'vjepa_samplers[{i}], ragged="{ragged}"',
                (lambda s: lambda: s.sample(B))(sampler),
            )
            for i, (c, sampler) in enumerate(zip(configs, ours))
        ]
    try:
        module = load_file(
            os.path.join(anchors, "vjepa", "src", "masks", "multiblock3d.py"),
            "_bench_vjepa_multiblock3d",
        )
    except Missing as error:
        for row in rows:
            row.note = f"reference missing ({error}; --anchors or ${ANCHORS_ENV})"
        return rows
    torch.manual_seed(0)
    for i, c in enumerate(configs):
        generator = module._MaskGenerator(
            crop_size=(224, 224),
            num_frames=16,
            spatial_patch_size=16,
            temporal_patch_size=2,
            spatial_pred_mask_scale=c["spatial_scale"],
            temporal_pred_mask_scale=c["temporal_scale"],
            aspect_ratio=c["aspect_ratio"],
            npred=c["num_blocks"],
            max_context_frames_ratio=c.get("max_temporal_keep", 1.0),
            max_keep=c.get("max_keep"),
        )
        reference = (lambda g: lambda: g(B))(generator)
        for row in rows[i :: len(configs)]:  # timed again in each row, interleaved with ours
            row.reference_name = "vjepa multiblock3d _MaskGenerator"
            row.reference = reference
    return rows


def vjepa_tube_rows(B, anchors, ijepa):
    from jepa_components.masks import RandomTubeMaskSampler

    ours = RandomTubeMaskSampler(grid_size=(8, 14, 14), ratio=0.9, seed=0)
    row = Row("vjepa_tube", "8x14x14, ratio 0.9", "RandomTubeMaskSampler", lambda: ours.sample(B))
    try:
        module = load_file(
            os.path.join(anchors, "vjepa", "src", "masks", "random_tube.py"),
            "_bench_vjepa_random_tube",
        )
    except Missing as error:
        row.note = f"reference missing ({error}; --anchors or ${ANCHORS_ENV})"
        return [row]
    np.random.seed(0)  # noqa: NPY002 - the reference shuffles with the global NumPy RNG
    generator = module._MaskGenerator(
        crop_size=(224, 224), num_frames=16, spatial_patch_size=16, temporal_patch_size=2, ratio=0.9
    )
    row.reference_name, row.reference = "vjepa random_tube _MaskGenerator", lambda: generator(B)
    return [row]


def _mae_random_masking(path):
    """``MaskedAutoencoderViT.random_masking`` compiled alone (models_mae.py imports timm)."""
    if not os.path.isfile(path):
        raise Missing(f"{path} not found")
    import torch

    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "random_masking":
            namespace = {"torch": torch}
            exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), namespace)
            return namespace["random_masking"]
    raise Missing(f"no random_masking in {path}")


def mae_rows(B, anchors, ijepa):
    import torch

    from jepa_components.masks import MAEMaskSampler

    ours = MAEMaskSampler(grid_size=(14, 14), mask_ratio=0.75, seed=0)
    row = Row("mae", "14x14, ratio 0.75", "MAEMaskSampler", lambda: ours.sample(B))
    try:
        random_masking = _mae_random_masking(os.path.join(anchors, "mae", "models_mae.py"))
    except Missing as error:
        row.note = f"reference missing ({error}; --anchors or ${ANCHORS_ENV})"
        return [row]
    torch.manual_seed(0)
    x = torch.randn(B, 196, 1)
    row.reference_name = "mae random_masking (torch, vectorised)"
    row.reference = lambda: random_masking(None, x, 0.75)
    return [row]


def dinov2_rows(B, anchors, ijepa):
    import random

    import torch

    from jepa_components.masks import BlockwiseMaskSampler

    ours = BlockwiseMaskSampler(grid_size=(16, 16), seed=0)
    row = Row(
        "dinov2",
        "16x16, ratio U(0.1, 0.5), p 0.5, blocks >= 4",
        "BlockwiseMaskSampler",
        lambda: ours.sample(B),
    )
    try:
        base = os.path.join(anchors, "dinov2", "dinov2", "data")
        masking = load_file(os.path.join(base, "masking.py"), "_bench_dinov2_masking")
        collate = load_file(os.path.join(base, "collate.py"), "_bench_dinov2_collate")
    except Missing as error:
        row.note = f"reference missing ({error}; --anchors or ${ANCHORS_ENV})"
        return [row]
    side = 16  # train.py: img_size // patch_size (224 // 14)
    generator = masking.MaskingGenerator(input_size=(side, side), max_num_patches=0.5 * side * side)
    crop = torch.zeros(1)
    samples = [({"global_crops": [crop], "local_crops": [crop]}, None) for _ in range(B)]
    random.seed(0)

    def reference():
        return collate.collate_data_and_cast(
            samples,
            mask_ratio_tuple=(0.1, 0.5),
            mask_probability=0.5,
            dtype=torch.float32,
            n_tokens=side * side,
            mask_generator=generator,
        )

    row.reference_name, row.reference = "dinov2 collate + MaskingGenerator", reference
    return [row]


def data2vec_rows(B, anchors, ijepa):
    from jepa_components.masks import InverseBlockMaskSampler

    ours = InverseBlockMaskSampler(grid_size=(14, 14), seed=0)
    return [
        Row(
            "data2vec",
            "14x14, mask 0.8 (+0.07), block 3",
            "InverseBlockMaskSampler",
            lambda: ours.sample(B),
            note="no reference code available: ours only",
        )
    ]


BUILDERS = {
    "ijepa": ijepa_rows,
    "vjepa": vjepa_rows,
    "vjepa_tube": vjepa_tube_rows,
    "mae": mae_rows,
    "dinov2": dinov2_rows,
    "data2vec": data2vec_rows,
}


# -- report ---------------------------------------------------------------------
def _us(seconds, B):
    return 1e6 * seconds / B


def table(rows, B):
    lines = [
        f"| family | configuration | reference | reference us/sample | ours | "
        f"ours us/sample | speed-up | goal >= {GOAL:g}x |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row.results
        ours = "{:.2f} ({:.2f})".format(_us(r["ours"][0], B), _us(r["ours"][1], B))
        if "reference" in r:
            ref = "{:.1f} ({:.1f})".format(_us(r["reference"][0], B), _us(r["reference"][1], B))
            best = r["reference"][0] / r["ours"][0]
            median = r["reference"][1] / r["ours"][1]
            speed = f"{best:.0f}x ({median:.0f}x)" if best >= 10 else f"{best:.1f}x ({median:.1f}x)"
            goal = "met" if best >= GOAL else "NOT met"
            reference = row.reference_name
        else:
            ref, speed, goal, reference = "-", "-", "no reference", row.note or "-"
        lines.append(
            f"| {row.family} | {row.config} | {reference} | {ref} | {row.ours_name} | "
            f"{ours} | {speed} | {goal} |"
        )
    return "\n".join(lines)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores visible, {platform.system()} {platform.machine()}"


def _load():
    """1-minute load average (other processes share the machine), or nan."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def versions():
    import torch

    import jepa_components

    try:
        commit = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    version = getattr(jepa_components, "__version__", "?")
    return (
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"jepa_components {version} (checkout at commit {commit})"
    )


def profile_ours(rows, B, repeats):
    """cProfile of our side of each row: the calls that take the time."""
    import cProfile
    import pstats

    for row in rows:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeats):
            row.ours()
        profiler.disable()
        print(f"\n== profile: {row.ours_name} ({row.family}), {repeats} batches of {B} ==")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--repeats",
        type=int,
        default=20,
        help="timed calls of ours (the reference: a quarter of it, at least 3)",
    )
    parser.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help=f"comma-separated subset of {','.join(FAMILIES)} (default: all)",
    )
    parser.add_argument(
        "--official-code",
        default=None,
        metavar="PATH",
        help=f"checkout of facebookresearch/ijepa (default: ${IJEPA_ENV}, else <anchors>/ijepa)",
    )
    parser.add_argument(
        "--anchors",
        default=None,
        metavar="DIR",
        help=f"folder with the vjepa/, mae/, dinov2/ (and ijepa/) reference checkouts "
        f"(default: ${ANCHORS_ENV}, else ../shared/anchors next to the repository)",
    )
    parser.add_argument(
        "--output", default=None, metavar="FILE", help="also write a markdown report"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile our side of each row (cProfile)"
    )
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or args.batch_size < 1 or args.repeats < 1:
        parser.error(
            f"unknown families {unknown} (choose from {', '.join(FAMILIES)})"
            if unknown
            else "--batch-size and --repeats must be >= 1"
        )
    B = args.batch_size

    import torch

    torch.set_num_threads(1)
    anchors, ijepa = anchors_dirs(args)
    load_before = _load()
    rows = []
    for family in families:
        try:
            rows += BUILDERS[family](B, anchors, ijepa)
        except ImportError as error:  # a sampler of ours not there
            print(f"{family}: skipped, {error}", flush=True)
    reference_repeats = max(3, args.repeats // 4)
    for row in rows:
        if row.reference is None:
            if row.note:
                print(f"{row.family}: {row.note}", flush=True)
            row.ours()  # warm-up
            row.results["ours"] = best_time(row.ours, args.repeats)
        else:
            row.results["ours"], row.results["reference"] = interleaved_times(
                row.ours, row.reference, args.repeats, reference_repeats
            )

    header = (
        f"batch {B}, one thread (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        "torch.set_num_threads(1), both sides in this process, their calls interleaved); "
        f"microseconds per sample, best of {args.repeats} calls for ours and "
        f"{reference_repeats} for the reference (median in brackets); "
        "speed-up = reference / ours, best (median)."
    )
    text = table(rows, B)
    print(header)
    print(text)
    if args.output:
        command = "python " + " ".join(
            [os.path.relpath(__file__, REPO)] + (sys.argv[1:] if argv is None else list(argv))
        )
        if os.environ.get("PYTHONPATH"):
            command = f"PYTHONPATH={os.environ['PYTHONPATH']} {command}"
        with open(args.output, "w") as f:
            f.write(
                "# Mask generation speed\n\n"
                f"Command (from the repository root): `{command}`\n\n"
                f"Machine: {machine()}; {versions()}. Load average (1 min) "
                f"{load_before:.1f} at the start, {_load():.1f} at the end.\n\n"
                f"{header}\n\n{text}\n"
            )
        print(f"wrote {args.output}")
    if args.profile:
        profile_ours(rows, B, args.repeats)


if __name__ == "__main__":
    main()
