"""I-JEPA training-step throughput: this library's Keras ``fit`` vs the official PyTorch step.

Times, in one run on one machine, the official step of facebookresearch/ijepa
(``benchmarks/_official.py``: target encoder under ``no_grad``, context
encoder, predictor, smooth-L1, backward, AdamW, EMA, as its ``train.py``
minus DDP/AMP scaling) and ``IJEPA.fit`` (``make_adamw`` + ``TargetEMA``,
``loss="smooth_l1"``) on each chosen Keras backend, with the same
architecture, batch, target blocks and tokens.

A Keras backend is fixed at import, so every backend runs in its own
subprocess; inside it the official step runs *interleaved* with ``fit``
(``--chunk`` Keras steps, then ``--chunk`` official steps, ...), from a
callback, so changes of machine load hit both and cancel in the ratio. Each
Keras step is timed from the end of the previous one (after the official
chunk, if any) to its ``on_train_batch_end`` with the loss fetched to the
host (the official step does ``float(loss)`` too), so Keras' per-batch
overhead and the data pipeline are included. The first (compiling) step and
``fit``'s set-up are reported apart; ``--warmup`` steps of each side are
discarded.

Two workloads (``--masks``):

- ``20/4x5`` (default; ``KC/MxKT``): fixed token counts, the same work for
  both: 20 context tokens and 4 target blocks of 5 tokens per image, no
  padding flags (``context_valid``/``targets_valid`` left out of the batch
  unless ``--valid-flags``).
- ``sampler``: what a user sees. Ours: ``MaskedImageDataset`` over
  ``MultiBlockMaskSampler(ragged=--ragged)`` (default ``"pad"``: every batch
  padded to the worst case); official: its ``MaskCollator`` (every batch cut
  to the batch minimum). Different masks, same distribution. The mask time
  of the official collator is reported apart (it normally runs in DataLoader
  workers); ours is inside the step (``workers=1``: the main thread).
  Prints the tokens each side actually computes, and the number of traces
  of the Keras train step (recompilations on jax/tensorflow).
  ``--context-length`` / ``--target-length`` cap our lengths (a sample with
  more patches keeps a uniformly random subset; one shape); ``official``
  sets each cap to the mean length of the official collator's cut batches,
  so that both sides compute the same tokens (equal work). A grid on which
  the official collator can draw a target block of no more than its
  ``min_keep`` patches (it then redraws forever) is refused.

Peak memory (``--memory``, on by default) is measured in separate processes,
one per side, so the two do not mix: on CPU the peak resident set size
(RSS, polled every 5 ms) above the process's RSS after imports, input
creation and a ``malloc_trim`` (free heap left by the warm-up is not
baseline), for the first (compiling) step and for the steady steps; on GPU
the framework's peak device allocation (torch ``max_memory_allocated``, jax
``memory_stats()["peak_bytes_in_use"]``, tensorflow
``get_memory_info()["peak"]``).

Examples::

    # the defaults: vit_tiny/16, 96 px, batch 16, 20 ctx / 4 x 5 tokens, fp32, all cores
    python benchmarks/bench_train_step.py --backends jax,torch,tensorflow
    # less memory: our predictor's blocks recomputed in the backward pass (remat=True)
    python benchmarks/bench_train_step.py --backends torch --remat predictor
    # what a user sees: real masks with padding, a few hundred steps
    python benchmarks/bench_train_step.py --masks sampler --image-size 224 --steps 200
    # equal work: our contexts and target blocks capped at the official cut's mean lengths
    python benchmarks/bench_train_step.py --masks sampler --image-size 224 --steps 40 \\
        --context-length official --target-length official
    # GPU (see benchmarks/gpu_train_step.sh): ViT-H/14, 224 px, batch 128, bf16
    python benchmarks/bench_train_step.py --device gpu --model huge --patch-size 14 \\
        --image-size 224 --batch 128 --dtype bf16 --masks sampler --backends jax
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from _workloads import (  # noqa: E402
    PREDICTORS,
    SIZES,
    RSSPoller,
    fixed_masks,
    parse_fixed_masks,
    peak_tflops,
    rss_bytes,
    step_flops,
    trim_heap,
)

RESULT = "RESULT "


# --------------------------------------------------------------------- options
def parse_args(argv=None, description=None, extra=None):
    """The options (``extra(parser)`` may add more, e.g. for the profiler)."""
    p = argparse.ArgumentParser(
        description=description or __doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if extra is not None:
        extra(p)
    p.add_argument(
        "--backends",
        default="jax,torch,tensorflow",
        help="comma-separated Keras backends, each run in a subprocess",
    )
    p.add_argument("--model", default="tiny", choices=sorted(SIZES), help="ViT size")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument(
        "--pred-dim",
        type=int,
        default=None,
        help="predictor width (default per size: tiny 96, small 192, else 384)",
    )
    p.add_argument(
        "--pred-depth",
        type=int,
        default=None,
        help="predictor depth (default 6; 12 for large and up)",
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--masks", default="20/4x5", help="'KC/MxKT' fixed token counts, or 'sampler' (real masks)"
    )
    p.add_argument(
        "--ragged",
        default="pad",
        help="ragged mode of our sampler with --masks sampler (pad, truncate, ...)",
    )
    p.add_argument(
        "--context-length",
        default=None,
        metavar="N|official",
        help="with --masks sampler: cap our context at N slots (a larger context keeps a "
        "uniformly random subset; one compiled shape with --ragged pad); 'official': the "
        "mean context length of the official collator's batches (equal work)",
    )
    p.add_argument(
        "--target-length",
        default=None,
        metavar="N|official",
        help="the same for each target block (official: the mean of its cut blocks)",
    )
    p.add_argument(
        "--valid-flags",
        action="store_true",
        help="fixed masks: also feed all-True context_valid/targets_valid",
    )
    p.add_argument(
        "--remat",
        default="none",
        choices=["none", "encoder", "predictor", "both"],
        help="our encoder, predictor or both built with remat=True (blocks "
        "recomputed in the backward pass)",
    )
    p.add_argument(
        "--dtype",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16: Keras 'mixed_bfloat16' policy / official bf16 autocast",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: all cores); pins the process to that many cores",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="measured steps per side (default 30; 200 with --masks sampler)",
    )
    p.add_argument("--warmup", type=int, default=3, help="discarded steps per side")
    p.add_argument("--chunk", type=int, default=5, help="steps per interleaved turn")
    p.add_argument(
        "--interleave",
        default="auto",
        choices=["auto", "yes", "no"],
        help="official steps inside the Keras process (auto: yes on cpu; no on gpu, "
        "where two big models in one process may not fit: then the official "
        "step is timed in its own process)",
    )
    p.add_argument(
        "--data",
        default="pydataset",
        choices=["pydataset", "numpy"],
        help="feed fit a PyDataset or a numpy dict (fixed masks only)",
    )
    p.add_argument(
        "--jit-compile",
        default="auto",
        choices=["auto", "true", "false"],
        help="model.compile(jit_compile=...)",
    )
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the peak-memory processes"
    )
    p.add_argument("--memory-steps", type=int, default=3)
    p.add_argument("--memory-only", action="store_true", help="skip the timing runs")
    p.add_argument(
        "--official-grad-stats",
        action="store_true",
        help="include train.py's grad_logger (logging) in the official step",
    )
    p.add_argument(
        "--patch",
        action="append",
        default=[],
        help="python file executed in each Keras worker after `import keras` and "
        "before the model is built (experiments: monkeypatches)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the worker processes, e.g. OMP_WAIT_POLICY=PASSIVE "
        "(fairer on a loaded machine) or GLIBC_TUNABLES=glibc.malloc.hugetlb=1",
    )
    p.add_argument(
        "--official-code",
        "--anchors",
        dest="anchors",
        default=None,
        metavar="PATH",
        help="checkout of facebookresearch/ijepa (default: $IJEPA_OFFICIAL_CODE)",
    )
    p.add_argument("--json", default=None, help="also write all results to this file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_backend", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    embed_dim, depth, heads, mlp = SIZES[args.model]
    pred_dim, pred_depth = PREDICTORS[args.model]
    args.pred_dim = args.pred_dim or pred_dim
    args.pred_depth = args.pred_depth or pred_depth
    args.sampler = args.masks == "sampler"
    if not args.sampler:
        args.fixed = parse_fixed_masks(args.masks)
    if args.steps is None:
        args.steps = 200 if args.sampler else 30
    if args.image_size % args.patch_size:
        p.error("--image-size must be a multiple of --patch-size")
    if args.sampler and args.data == "numpy":
        p.error("--data numpy needs fixed masks")
    args.interleaved = args.interleave == "yes" or (
        args.interleave == "auto" and args.device == "cpu"
    )
    args.grid = args.image_size // args.patch_size
    args.num_patches = args.grid**2
    args.arch = dict(embed_dim=embed_dim, depth=depth, num_heads=heads, mlp_ratio=mlp)
    min_keep = paper_collator_kwargs(args)["min_keep"]
    smallest = official_smallest_target(args) if args.sampler else None
    if smallest is not None and smallest <= min_keep:
        p.error(
            f"--masks sampler: on a {args.grid}x{args.grid} grid the official MaskCollator "
            f"can draw target blocks of {smallest} patches, no more than "
            f"its min_keep {min_keep}, and then redraws forever; use a larger grid (e.g. "
            "--image-size 224 with patch 16)"
        )
    for name in ("context_length", "target_length"):
        value, flag = getattr(args, name), "--" + name.replace("_", "-")
        if value is None:
            continue
        if not args.sampler:
            p.error(f"{flag} needs --masks sampler")
        if value != "official":
            if not value.isdigit() or int(value) < 1:
                p.error(f"{flag}: expected a positive integer or 'official', got {value!r}")
            setattr(args, name, int(value))
    return args


def worker_env(args):
    env = dict(os.environ)
    threads = args.threads or os.cpu_count()
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.setdefault("JAX_PLATFORMS", "cpu")
    else:  # two frameworks share the GPU in the timing worker
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(
                f"Invalid value for argument `--env`. Expected KEY=VALUE. Received: --env={item!r}"
            )
        env[key] = value
    return env


# -------------------------------------------------------------------- workers
def setup_threads(args):
    threads = args.threads or os.cpu_count()
    if args.threads and args.threads < os.cpu_count() and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    return threads


def make_inputs(args):
    """Images (B, H, W, 3) float32 and, for fixed masks, (context, targets)."""
    rng = np.random.default_rng(args.seed)
    shape = (args.batch, args.image_size, args.image_size, 3)
    images = rng.standard_normal(shape, dtype=np.float32)
    if args.sampler:
        return images, None
    kc, m, kt = args.fixed
    return images, fixed_masks(args.batch, args.num_patches, kc, m, kt, seed=args.seed)


def official_kwargs(args):
    return dict(
        model_name=f"vit_{args.model}",
        image_size=args.image_size,
        patch_size=args.patch_size,
        pred_depth=args.pred_depth,
        pred_emb_dim=args.pred_dim,
        device="cuda" if args.device == "gpu" else "cpu",
        bf16=args.dtype == "bf16",
        grad_stats=args.official_grad_stats,
        seed=args.seed,
        **({"anchors": args.anchors} if args.anchors else {}),
    )


def paper_collator_kwargs(args):
    return dict(
        input_size=(args.image_size, args.image_size),
        patch_size=args.patch_size,
        enc_mask_scale=(0.85, 1.0),
        pred_mask_scale=(0.15, 0.2),
        aspect_ratio=(0.75, 1.5),
        nenc=1,
        npred=4,
        min_keep=10,
        allow_overlap=False,
    )


def official_mask_lengths(args, batches=50):
    """Mean (context, per-block target) lengths of the official collator's batches.

    The official ``MaskCollator`` cuts every context and every target block
    to the batch minimum; these means, rounded, are the caps that give our
    sampler the same work per step on average (``--context-length official``).
    Seeded by ``--seed``, so every worker process resolves the same values.
    """
    import torch
    from _official import import_official

    multiblock = import_official(args.anchors)[1]
    torch.manual_seed(args.seed)
    collator = multiblock.MaskCollator(**paper_collator_kwargs(args))
    items, context, target = [0] * args.batch, [], []
    for _ in range(batches):
        _, enc, pred = collator(items)
        context.append(enc[0].shape[1])
        target.append(pred[0].shape[1])  # every block is cut to one length
    return int(round(np.mean(context))), int(round(np.mean(target)))


def resolve_official_lengths(args, argv):
    """Replace ``official`` caps by numbers (in ``args`` and in the workers' ``argv``)."""
    if "official" not in (args.context_length, args.target_length):
        return argv
    lengths = dict(zip(("context_length", "target_length"), official_mask_lengths(args)))
    argv = list(argv)
    for name, value in lengths.items():
        if getattr(args, name) == "official":
            setattr(args, name, value)
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


def official_smallest_target(args, draws=1001):
    """The fewest patches a target block of the official ``MaskCollator`` can have here.

    Its block size follows ``_sample_block_size`` (``max_keep = int(N * scale)``,
    ``h = round(sqrt(max_keep * ar))``, ``w = round(sqrt(max_keep / ar))``, both
    shrunk below the grid) over the range of one ``rand()``; it redraws a target
    block until it has more than ``min_keep`` patches, so a size at or below
    ``min_keep`` loops forever.
    """
    kwargs = paper_collator_kwargs(args)
    grid = args.grid
    u = np.linspace(0.0, 1.0, draws)
    scale = kwargs["pred_mask_scale"][0] + u * np.subtract(*kwargs["pred_mask_scale"][::-1])
    ratio = kwargs["aspect_ratio"][0] + u * np.subtract(*kwargs["aspect_ratio"][::-1])
    keep = np.floor(grid * grid * scale)
    h = np.minimum(np.round(np.sqrt(keep * ratio)), grid - 1)
    w = np.minimum(np.round(np.sqrt(keep / ratio)), grid - 1)
    return int((h * w).min())


class OfficialFeed:
    """Official-step inputs: fixed tensors, or a fresh MaskCollator batch per step."""

    def __init__(self, args, official, images):
        import torch

        self.official = official
        nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        self.images = torch.as_tensor(nchw, device=official.device)
        self.collator = None
        self.mask_seconds, self.context_tokens, self.block_tokens = [], [], []
        if args.sampler:
            torch.manual_seed(args.seed)
            self.collator = official.collator(**paper_collator_kwargs(args))
            self.items = [0] * args.batch
        else:
            context, targets = make_inputs_masks(args, images)
            _, self.enc, self.pred = official.to_device(
                nchw[:1], [context], [targets[:, m] for m in range(targets.shape[1])]
            )

    def reset(self):
        self.mask_seconds.clear()
        self.context_tokens.clear()
        self.block_tokens.clear()

    def stats(self):
        """Mean official token counts and mask time (sampler masks), else {}."""
        if self.collator is None or not self.context_tokens:
            return {}
        return {
            "official_context_tokens_mean": float(np.mean(self.context_tokens)),
            "official_target_tokens_mean": float(np.mean(self.block_tokens)),
            "official_mask_s_mean": float(np.mean(self.mask_seconds)),
        }

    def next(self):
        if self.collator is None:
            return self.images, self.enc, self.pred
        start = time.perf_counter()
        _, enc, pred = self.collator(self.items)
        self.mask_seconds.append(time.perf_counter() - start)
        self.context_tokens.append(enc[0].shape[1])
        self.block_tokens.append(pred[0].shape[1])
        _, enc, pred = self.official.to_device(self.images[:1], enc, pred)
        return self.images, enc, pred


def make_inputs_masks(args, images):
    kc, m, kt = args.fixed
    return fixed_masks(args.batch, args.num_patches, kc, m, kt, seed=args.seed)


def import_keras(args, backend):
    os.environ["KERAS_BACKEND"] = backend
    import keras

    if backend == "tensorflow":
        import tensorflow as tf

        threads = args.threads or os.cpu_count()
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if args.dtype == "bf16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    for path in args.patch:
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        exec(code, {"__name__": "__bench_patch__", "__file__": path, "ARGS": args})
    return keras


def build_keras(args, keras, total_steps):
    from jepa_components.backends.keras import (
        IJEPA,
        Predictor,
        TargetEMA,
        VisionTransformer,
        make_adamw,
    )

    encoder = VisionTransformer(
        image_size=args.image_size,
        patch_size=args.patch_size,
        remat=args.remat in ("encoder", "both"),
        seed=args.seed,
        **args.arch,
    )
    predictor = Predictor(
        num_patches=args.num_patches,
        embed_dim=args.arch["embed_dim"],
        predictor_embed_dim=args.pred_dim,
        depth=args.pred_depth,
        num_heads=args.arch["num_heads"],
        remat=args.remat in ("predictor", "both"),
        seed=args.seed + 1,
    )
    model = IJEPA(encoder=encoder, predictor=predictor, loss="smooth_l1")
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(
        optimizer=make_adamw(steps_per_epoch=1000, epochs=10, warmup_epochs=1),
        jit_compile=jit,
        steps_per_execution=args.steps_per_execution,
    )
    return model, TargetEMA(total_steps=10000)


class _Cycled:
    """A sequence of ``length`` images cycling over a small pool (no big allocation)."""

    def __init__(self, pool, length):
        self.pool, self.length = pool, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return self.pool[i % len(self.pool)]


def keras_data(args, keras, images, total_steps):
    """(x, fit kwargs, sampler or None)."""
    if args.sampler:
        from jepa_components.backends.keras import MaskedImageDataset
        from jepa_components.masks import MultiBlockMaskSampler

        sampler = MultiBlockMaskSampler(
            grid_size=(args.grid, args.grid),
            seed=args.seed,
            ragged=args.ragged,
            context_length=args.context_length,
            target_length=args.target_length,
        )
        data = MaskedImageDataset(
            _Cycled(images, total_steps * args.batch), sampler, batch_size=args.batch
        )
        return data, {}, sampler
    context, targets = make_inputs_masks(args, images)
    batch = {"images": images, "context": context, "targets": targets}
    if args.valid_flags:
        batch["context_valid"] = np.ones(context.shape, bool)
        batch["targets_valid"] = np.ones(targets.shape, bool)
    if args.data == "numpy":
        reps = total_steps
        x = {k: np.concatenate([v] * reps) for k, v in batch.items()}
        return x, {"batch_size": args.batch, "shuffle": False}, None

    class Fixed(keras.utils.PyDataset):
        def __len__(self):
            return total_steps

        def __getitem__(self, idx):
            return batch

    return Fixed(), {}, None


def sync_loss(logs):
    return float(logs["loss"])


def summarize(times):
    arr = np.asarray(times, float)
    return {
        "median_s": float(np.median(arr)),
        "mean_s": float(arr.mean()),
        "min_s": float(arr.min()),
        "n": int(arr.size),
    }


def warmed_up_official(args, images):
    """(official step, its feed, first-step seconds) after ``--warmup`` steps; feed restarted."""
    import torch

    torch.set_num_threads(args.threads or os.cpu_count())
    from _official import OfficialStep

    official = OfficialStep(**official_kwargs(args))
    feed = OfficialFeed(args, official, images)
    first = official.timed_step(*feed.next())[0]
    for _ in range(args.warmup - 1):
        official.timed_step(*feed.next())
    feed.reset()
    return official, feed, first


def official_time_worker(args):
    """The official step alone (``--interleave no``)."""
    setup_threads(args)
    images, _ = make_inputs(args)
    official, feed, first = warmed_up_official(args, images)
    runs = [official.timed_step(*feed.next()) for _ in range(args.steps)]
    result = {
        "official": summarize([r[0] for r in runs]),
        "cpu_official_median_s": float(np.median([r[2] for r in runs])),
        "first_step_official_s": first,
        "loss_official_last": runs[-1][1],
    }
    result.update(feed.stats())
    print(RESULT + json.dumps(result), flush=True)


def time_worker(args):
    """Keras timing of one backend, with the official step interleaved (``--interleave``)."""
    setup_threads(args)
    keras = import_keras(args, args._backend)
    images, _ = make_inputs(args)
    official = feed = first_official = None
    if args.interleaved:
        official, feed, first_official = warmed_up_official(args, images)

    total = args.warmup + args.steps
    spe = args.steps_per_execution
    total_batches = -(-total // spe) * spe
    model, ema = build_keras(args, keras, total_batches)
    x, fit_kwargs, sampler = keras_data(args, keras, images, total_batches)
    traces = [0]
    original_step = model.train_step

    def counting_step(*a, **k):
        traces[0] += 1
        return original_step(*a, **k)

    model.train_step = counting_step
    record = {
        "ours": [],
        "official": [],
        "official_loss": [],
        "ours_loss": [],
        "ours_cpu": [],
        "official_cpu": [],
    }

    class Interleave(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            record["train_begin"] = self.mark = time.perf_counter()
            self.cpu_mark = time.process_time()
            self.last = -1
            self.turn = 0

        def on_train_batch_end(self, batch, logs=None):
            loss = sync_loss(logs)
            now, cpu = time.perf_counter(), time.process_time()
            steps = batch - self.last
            self.last = batch
            if "first_step_s" not in record:
                record["first_step_s"] = now - self.mark
                record["first_step_steps"] = steps
            elif batch >= args.warmup:
                record["ours"].extend([(now - self.mark) / steps] * steps)
                record["ours_cpu"].extend([(cpu - self.cpu_mark) / steps] * steps)
                record["ours_loss"].append(loss)
                self.turn += steps
            if official is not None and (self.turn >= args.chunk or batch == total_batches - 1):
                for _ in range(self.turn):
                    seconds, official_loss, cpu_seconds = official.timed_step(*feed.next())
                    record["official"].append(seconds)
                    record["official_cpu"].append(cpu_seconds)
                    record["official_loss"].append(official_loss)
                self.turn = 0
            self.mark, self.cpu_mark = time.perf_counter(), time.process_time()

    fit_start = time.perf_counter()
    model.fit(x, epochs=1, verbose=0, callbacks=[ema, Interleave()], **fit_kwargs)
    fit_total = time.perf_counter() - fit_start
    result = {
        "backend": args._backend,
        "ours": summarize(record["ours"]),
        "cpu_ours_median_s": float(np.median(record["ours_cpu"])),
        "first_step_ours_s": record["first_step_s"],
        "fit_setup_s": record["train_begin"] - fit_start,
        "fit_total_s": fit_total,
        "traces": traces[0],
        "loss_ours_last": record["ours_loss"][-1] if record["ours_loss"] else None,
        "keras_dtype_policy": keras.config.dtype_policy().name,
        "device_peak_mib_ours": _mib(device_peak(args._backend)),
    }
    if official is not None:
        # Paired ratio per turn: both sides of a turn see the same load.
        o, f = np.asarray(record["ours"]), np.asarray(record["official"])
        n = min(o.size, f.size) // args.chunk * args.chunk
        paired = (
            f[:n].reshape(-1, args.chunk).mean(1) / o[:n].reshape(-1, args.chunk).mean(1)
            if n
            else np.array([np.nan])
        )
        result.update(
            {
                "official": summarize(record["official"]),
                "ratio_paired": float(np.median(paired)),
                "cpu_official_median_s": float(np.median(record["official_cpu"])),
                "first_step_official_s": first_official,
                "loss_official_last": record["official_loss"][-1],
            }
        )
        result.update(feed.stats())
    if args.sampler:
        probe = sampler.sample(256, start=10**7)
        result["ours_context_slots"] = int(probe.context.shape[1])
        result["ours_target_slots"] = int(probe.targets.shape[2])
        result["ours_context_valid_mean"] = float(probe.context_valid.sum(1).mean())
        result["ours_target_valid_mean"] = float(probe.targets_valid.sum(2).mean())
    print(RESULT + json.dumps(result), flush=True)


def _mib(value):
    return None if value is None else value / 2**20


def device_peak(framework):
    """Peak device allocation (bytes) on GPU for a framework, or None."""
    try:
        if framework == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
        if framework == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            return stats.get("peak_bytes_in_use")
        if framework == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpus else None
    except Exception:  # a missing statistic is reported as None
        return None
    return None


def _warm_up_imports(args, keras):
    """One step of a tiny model first, so lazy imports are not counted as training memory."""
    tiny = argparse.Namespace(**vars(args))
    tiny.image_size, tiny.patch_size, tiny.batch, tiny.grid, tiny.num_patches = 32, 16, 2, 2, 4
    tiny.sampler, tiny.fixed, tiny.valid_flags, tiny.data = False, (2, 1, 1), False, "pydataset"
    tiny.arch = dict(args.arch, embed_dim=32, depth=1, num_heads=2)
    tiny.pred_dim, tiny.pred_depth = 24, 1
    images, _ = make_inputs(tiny)
    if keras is None:
        from _official import OfficialStep

        tiny.model = "tiny"
        official = OfficialStep(**official_kwargs(tiny))
        official.timed_step(*OfficialFeed(tiny, official, images).next())
        return
    model, ema = build_keras(tiny, keras, 1)
    x, fit_kwargs, _ = keras_data(tiny, keras, images, 1)
    model.fit(x, epochs=1, verbose=0, callbacks=[ema], **fit_kwargs)


def memory_worker(args):
    """Peak memory of one side alone (official, or Keras on one backend)."""
    setup_threads(args)
    images, _ = make_inputs(args)
    side = args._worker.split("-", 1)[1]
    if side == "official":
        import torch

        torch.set_num_threads(args.threads or os.cpu_count())
        from _official import OfficialStep

        _warm_up_imports(args, None)
        trim_heap()  # the warm-up's freed heap would otherwise hide in the baseline
        base = rss_bytes()
        poller = RSSPoller().start("build")
        official = OfficialStep(**official_kwargs(args))
        feed = OfficialFeed(args, official, images)
        poller.phase("first_step")
        official.timed_step(*feed.next())
        poller.phase("steady")
        for _ in range(args.memory_steps):
            official.timed_step(*feed.next())
        framework = "torch"
    else:
        keras = import_keras(args, args._backend)
        total = 1 + args.memory_steps
        _warm_up_imports(args, keras)
        trim_heap()  # the warm-up's freed heap would otherwise hide in the baseline
        base = rss_bytes()
        poller = RSSPoller().start("build")
        model, ema = build_keras(args, keras, total)
        x, fit_kwargs, _ = keras_data(args, keras, images, total)

        class Phases(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                sync_loss(logs)
                poller.phase("steady")

        poller.phase("first_step")
        model.fit(x, epochs=1, verbose=0, callbacks=[ema, Phases()], **fit_kwargs)
        framework = args._backend
    peaks = poller.stop()
    result = {
        "side": side,
        "rss_base_mib": base / 2**20,
        "rss_peak_delta_mib": {k: (v - base) / 2**20 for k, v in peaks.items()},
        "device_peak_mib": None,
    }
    peak = device_peak(framework)
    if peak is not None:
        result["device_peak_mib"] = peak / 2**20
    print(RESULT + json.dumps(result), flush=True)


# --------------------------------------------------------------------- driver
def run_worker(args, argv, worker, backend=None):
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--_worker", worker]
    if backend:
        cmd += ["--_backend", backend]
    proc = subprocess.run(cmd, env=worker_env(args), capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
    return {"error": f"{worker} {backend or ''} failed (exit {proc.returncode}):\n{tail}"}


def describe(args):
    a = args.arch
    caps = "".join(
        f", {name} {getattr(args, name + '_length')}"
        for name in ("context", "target")
        if getattr(args, name + "_length") is not None
    )
    masks = (
        f"sampler (ours ragged={args.ragged!r}{caps}, official MaskCollator)"
        if args.sampler
        else "fixed {}/{}x{} (context / blocks x tokens)".format(*args.fixed)
    )
    return (
        f"vit_{args.model}/{args.patch_size} at {args.image_size} px "
        f"(D={a['embed_dim']}, depth {a['depth']}, heads {a['num_heads']}), predictor "
        f"{args.pred_dim}x{args.pred_depth}, batch {args.batch}, masks {masks}, "
        f"{args.dtype}{f', ours remat {args.remat}' if args.remat != 'none' else ''}, "
        f"{args.device}, "
        f"threads {args.threads or os.cpu_count()}, "
        f"{args.steps} steps per side after {args.warmup} warm-up, turns of {args.chunk}"
        + (f", env {' '.join(args.env)}" if args.env else "")
        + (f", patches {' '.join(args.patch)}" if args.patch else "")
        + f"; load average {os.getloadavg()[0]:.1f}"
    )


def flops_per_step(args, result):
    if args.sampler:
        kc = result.get("official_context_tokens_mean")
        kt = result.get("official_target_tokens_mean")
        if kc is None:
            return None
    else:
        kc, _, kt = args.fixed
    m = 4 if args.sampler else args.fixed[1]
    return step_flops(
        batch=args.batch,
        image_size=args.image_size,
        patch_size=args.patch_size,
        embed_dim=args.arch["embed_dim"],
        depth=args.arch["depth"],
        mlp_ratio=args.arch["mlp_ratio"],
        pred_dim=args.pred_dim,
        pred_depth=args.pred_depth,
        context_tokens=kc,
        num_blocks=m,
        block_tokens=kt,
    )["total"]


def gpu_name(args):
    if args.device != "gpu":
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip().splitlines()[0]
    except Exception:
        return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args._worker == "time":
        return time_worker(args)
    if args._worker == "time-official":
        return official_time_worker(args)
    if args._worker and args._worker.startswith("mem-"):
        return memory_worker(args)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("jax", "torch", "tensorflow"):
            raise SystemExit(
                f"Invalid value for argument `--backends`. Expected jax, torch "
                f"or tensorflow. Received: {b!r}"
            )
    argv = resolve_official_lengths(args, argv)
    print(describe(args), flush=True)
    device = gpu_name(args)
    results = {"config": vars(args).copy(), "gpu": device, "time": {}, "memory": {}}
    results["config"].pop("_worker"), results["config"].pop("_backend")
    official = None
    if args.memory_only:
        backends_timed = []
    else:
        backends_timed = backends
    if not args.interleaved and backends_timed:
        official = run_worker(args, argv, "time-official")
        results["time"]["official"] = official
        if "error" in official:
            print(f"[official] ERROR {official['error']}", flush=True)
            return results
    for backend in backends_timed:
        res = run_worker(args, argv, "time", backend)
        results["time"][backend] = res
        if "error" in res:
            print(f"[{backend}] ERROR {res['error']}", flush=True)
            continue
        if official is not None:
            res.update({k: v for k, v in official.items() if k not in res})
            res["ratio_paired"] = float("nan")
        res["ratio_median"] = res["official"]["median_s"] / res["ours"]["median_s"]
        o, f = res["ours"], res["official"]
        line = (
            f"[{backend:10s}] ours {1e3 * o['median_s']:8.1f} ms/step "
            f"{args.batch / o['median_s']:8.1f} img/s | official {1e3 * f['median_s']:8.1f} "
            f"ms/step {args.batch / f['median_s']:8.1f} img/s | ratio {res['ratio_median']:.2f}x "
            f"(paired {res['ratio_paired']:.2f}x) | first step ours "
            f"{res['first_step_ours_s']:.1f} s (+{res['fit_setup_s']:.1f} s fit set-up), "
            f"official {res['first_step_official_s']:.2f} s | traces {res['traces']} | "
            f"CPU s/step ours {res['cpu_ours_median_s']:.3f} official "
            f"{res['cpu_official_median_s']:.3f}"
        )
        print(line, flush=True)
        if args.sampler:
            print(
                f"{'':13s}tokens per image: ours context {res['ours_context_slots']} slots "
                f"({res['ours_context_valid_mean']:.1f} valid on average), target blocks "
                f"{res['ours_target_slots']} slots ({res['ours_target_valid_mean']:.1f} valid);"
                f" official context {res['official_context_tokens_mean']:.1f}, target blocks "
                f"{res['official_target_tokens_mean']:.1f} (cut to the batch minimum); "
                f"official masks {1e3 * res['official_mask_s_mean']:.1f} ms/batch (not in "
                f"its step)",
                flush=True,
            )
        flops = flops_per_step(args, res)
        peak = peak_tflops(device, args.dtype) if device else None
        if flops and peak:
            mfu_o = flops / o["median_s"] / (peak * 1e12)
            mfu_f = flops / f["median_s"] / (peak * 1e12)
            print(
                f"{'':13s}MFU (official-work FLOPs {flops / 1e12:.2f} TF/step, peak {peak} "
                f"TFLOP/s): ours {100 * mfu_o:.1f}%, official {100 * mfu_f:.1f}%",
                flush=True,
            )
    if args.memory:
        sides = [("official", None)] + [("keras", b) for b in backends]
        for side, backend in sides:
            res = run_worker(args, argv, f"mem-{side}", backend)
            key = backend or side
            results["memory"][key] = res
            if "error" in res:
                print(f"[memory {key}] ERROR {res['error']}", flush=True)
                continue
            d = res["rss_peak_delta_mib"]
            dev = res.get("device_peak_mib")
            print(
                f"[memory {key:10s}] peak RSS above post-import baseline "
                f"({res['rss_base_mib']:.0f} MiB): build {d.get('build', 0):.0f} MiB, first "
                f"step {d.get('first_step', 0):.0f} MiB, steady {d.get('steady', 0):.0f} MiB"
                + (f" | device peak {dev:.0f} MiB" if dev is not None else ""),
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
