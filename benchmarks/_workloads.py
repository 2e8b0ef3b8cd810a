"""Shared pieces of the training-step benchmarks: model sizes, masks, FLOPs, memory.

No deep-learning import here: the driver of ``bench_train_step.py`` uses it
before any framework is loaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time

import numpy as np


def _library_vit_sizes():
    """The library's ``VIT_SIZES`` table, read from its file without importing Keras."""
    spec = importlib.util.find_spec("jepa_components")  # finds the package, imports nothing
    root = (
        os.path.dirname(spec.origin)
        if spec is not None and spec.origin
        else os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "jepa_components")
    )
    path = os.path.join(root, "backends", "keras", "models", "sizes.py")
    loader = importlib.util.spec_from_file_location("_jepa_vit_sizes", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module.VIT_SIZES


# (embed_dim, depth, num_heads, mlp_ratio) by short name ("tiny", ...): the library's
# table of the official ``vit_*`` factories.
SIZES = {name.removeprefix("vit_"): dims for name, dims in _library_vit_sizes().items()}

# Default predictor (width, depth) per size. Official: ``init_model`` defaults
# to 384 / 6 and the ViT-H/14 config uses 384 / 12; the small encoders get a
# predictor narrower than themselves (half the width), as the paper's.
PREDICTORS = {
    "tiny": (96, 6),
    "small": (192, 6),
    "base": (384, 6),
    "large": (384, 12),
    "huge": (384, 12),
    "giant": (384, 12),
}

# Dense peak TFLOP/s per accelerator and dtype, for MFU (datasheet values,
# SXM parts; fp32 means TF32 tensor cores, what torch/XLA use by default for
# fp32 matmuls on Hopper unless told otherwise).
PEAK_TFLOPS = {
    ("H100", "bf16"): 989.4,
    ("H100", "fp32"): 494.7,
    ("H200", "bf16"): 989.4,
    ("H200", "fp32"): 494.7,
    ("A100", "bf16"): 312.0,
    ("A100", "fp32"): 156.0,
}

FIXED_MASKS = re.compile(r"^(\d+)/(\d+)x(\d+)$")


def parse_fixed_masks(text):
    """``"20/4x5"`` -> (context tokens 20, target blocks 4, tokens per block 5)."""
    match = FIXED_MASKS.match(text)
    if not match:
        raise ValueError(
            "Invalid value for argument `--masks`. Expected 'sampler' or fixed counts "
            f"'KC/MxKT' such as '20/4x5'. Received: --masks={text!r}"
        )
    kc, m, kt = (int(g) for g in match.groups())
    if min(kc, m, kt) < 1:
        raise ValueError(
            f"Invalid value for argument `--masks`. Expected counts >= 1. "
            f"Received: --masks={text!r}"
        )
    return kc, m, kt


def fixed_masks(batch_size, num_patches, num_context, num_blocks, block_size, seed=0):
    """Fixed-count masks: ``context`` (B, Kc) and ``targets`` (B, M, Kt) int32.

    Per sample, the context is ``Kc`` distinct random patches; every target
    block is ``Kt`` distinct patches outside the context (blocks may overlap
    each other when the grid is too small to keep them apart). Every slot is
    valid (no padding): the same work for both implementations.
    """
    if num_context + block_size > num_patches:
        raise ValueError(
            f"Invalid value for argument `--masks`. Expected Kc + Kt <= {num_patches} "
            f"patches. Received: Kc={num_context}, Kt={block_size}"
        )
    rng = np.random.default_rng(seed)
    context = np.empty((batch_size, num_context), np.int32)
    targets = np.empty((batch_size, num_blocks, block_size), np.int32)
    for b in range(batch_size):
        order = rng.permutation(num_patches)
        context[b] = np.sort(order[:num_context])
        rest = order[num_context:]
        for m in range(num_blocks):
            targets[b, m] = np.sort(rng.choice(rest, block_size, replace=False))
    return context, targets


def block_flops(tokens, width, mlp_ratio):
    """Forward FLOPs of one pre-norm block on one sequence of ``tokens`` tokens.

    Matmuls only (2 FLOPs per multiply-add): qkv 3D^2, proj D^2, MLP 2 D H per
    token, plus the two attention products 2 T^2 D. Norms, GELU and softmax
    are a few percent and left out, as in the usual MFU accounting.
    """
    hidden = int(width * mlp_ratio)
    per_token = 2 * (3 * width * width + width * width + 2 * width * hidden)
    return tokens * per_token + 2 * 2 * tokens * tokens * width


def step_flops(
    *,
    batch,
    image_size,
    patch_size,
    channels=3,
    embed_dim,
    depth,
    mlp_ratio,
    pred_dim,
    pred_depth,
    context_tokens,
    num_blocks,
    block_tokens,
):
    """FLOPs of one I-JEPA training step, split by component (dict, plus ``"total"``).

    Backward = 2 x forward for the trained parts (input and weight gradients),
    except the patch embedding whose input (the image) needs no gradient.
    The target encoder runs forward only, on all ``N`` patches.
    """
    n = (image_size // patch_size) ** 2
    patch = 2 * n * patch_size * patch_size * channels * embed_dim  # conv = matmul per patch
    enc = lambda tokens: depth * block_flops(tokens, embed_dim, mlp_ratio)  # noqa: E731
    seq = context_tokens + block_tokens
    pred_blocks = num_blocks * pred_depth * block_flops(seq, pred_dim, 4.0)
    pred_io = (
        2 * context_tokens * embed_dim * pred_dim
        + num_blocks * 2 * block_tokens * pred_dim * embed_dim
    )
    parts = {
        "target_encoder": batch * (patch + enc(n)),
        "context_encoder": batch * (2 * patch + 3 * enc(context_tokens)),
        "predictor": batch * 3 * (pred_blocks + pred_io),
    }
    parts["total"] = sum(parts.values())
    return parts


def peak_tflops(device_name, dtype):
    """Datasheet dense peak for a GPU name (``torch.cuda.get_device_name()``), or None."""
    for (chip, kind), value in PEAK_TFLOPS.items():
        if chip in (device_name or "") and kind == dtype:
            return value
    return None


def trim_heap():
    """glibc ``malloc_trim(0)`` (no-op elsewhere): a baseline without leftover free heap.

    The library's own ``release_free_heap`` is not imported: the official
    side's process never imports Keras.
    """
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def rss_bytes():
    """Resident set size of this process (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RSSPoller:
    """Polls this process's RSS in a thread; ``phase(name)`` starts a new maximum.

    ``peaks`` maps each phase to its maximum RSS (bytes). Polling every
    ``interval`` seconds misses spikes shorter than that (a lower bound).
    """

    def __init__(self, interval=0.005):
        self.interval, self.peaks, self._phase = interval, {}, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, phase):
        self.phase(phase)
        self._thread.start()
        return self

    def phase(self, name):
        self._phase = name
        self.peaks.setdefault(name, rss_bytes())

    def _run(self):
        while not self._stop.is_set():
            value, phase = rss_bytes(), self._phase
            if value > self.peaks.get(phase, 0):
                self.peaks[phase] = value
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peaks
