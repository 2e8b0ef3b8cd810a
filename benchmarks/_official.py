"""The official I-JEPA training step (facebookresearch/ijepa ``src/train.py``), for benchmarks.

Built from the official modules themselves (``src.helper.init_model`` and
``init_opt``, ``src.masks.utils.apply_masks``, ``src.utils.tensors``), added
to ``sys.path`` from a checkout of facebookresearch/ijepa; nothing of it is
copied here. Where that checkout is (:func:`official_code_dir`): the
``--official-code PATH`` option of the benchmarks, else the environment
variable ``IJEPA_OFFICIAL_CODE`` (the same one the tests read), else
``../shared/anchors/ijepa`` next to the repository if it is there.

:class:`OfficialStep` runs what ``train.py::train_step`` runs, minus DDP and
the ``AllReduce`` of the loss (one process) and minus the ``GradScaler``
(fp32, or bf16 autocast which needs no loss scaling):

1. ``scheduler.step()`` and ``wd_scheduler.step()`` (host-side schedules);
2. target: ``target_encoder(imgs)`` under ``no_grad``, ``F.layer_norm``,
   ``apply_masks`` per target block, ``repeat_interleave_batch``;
3. context: ``encoder(imgs, masks_enc)`` then ``predictor(z, masks_enc,
   masks_pred)``;
4. ``F.smooth_l1_loss``, ``backward``, ``optimizer.step`` (AdamW, 4 param
   groups, no decay on biases / 1-D), ``zero_grad``;
5. EMA: ``param_k.mul_(m).add_((1 - m) * param_q)`` for every parameter;
6. ``float(loss)`` (a host sync, as ``train.py`` does every step).

``grad_stats=True`` adds ``train.py``'s ``grad_logger`` call (a norm and a
host sync per weight matrix, logging only; off by default).

For other recipes (``benchmarks/paper_claims.py``'s official arm):
``register_model`` adds a ViT of any width, depth and input channels to
the official factories, so that ``init_model`` builds and initializes it;
``optimizer`` overrides ``init_opt``'s values; ``loss="l2"`` takes
``F.mse_loss`` instead of ``F.smooth_l1_loss``; ``patch_init_std``
re-draws the patch-embedding kernel (``trunc_normal_``, as the model's own
``_init_weights``) with another std.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import time
import warnings

ENV_VAR = "IJEPA_OFFICIAL_CODE"
FALLBACK = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "anchors", "ijepa")
)


def official_code_dir(path=None):
    """The official code's folder: ``path``, else ``$IJEPA_OFFICIAL_CODE``, else the fallback.

    The fallback (``../shared/anchors/ijepa`` next to the repository) is only
    a default for a machine that has it; any checkout of
    facebookresearch/ijepa works (its ``src/`` package is imported).
    """
    return os.path.abspath(path or os.environ.get(ENV_VAR) or FALLBACK)


ANCHORS = official_code_dir()  # the default, resolved at import (kept for callers)


def missing_reason(anchors=None):
    """None when the official code is found, else a one-line reason."""
    folder = official_code_dir(anchors)
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (pip install torch)"
    if not os.path.isfile(os.path.join(folder, "src", "masks", "multiblock.py")):
        return (
            f"the official I-JEPA code is not at {folder!r} "
            "(--official-code PATH or $IJEPA_OFFICIAL_CODE)"
        )
    return None


def import_official(anchors=None):
    """Put the official code on ``sys.path`` and return its modules (helper, masks, tensors)."""
    anchors = official_code_dir(anchors)
    if not os.path.isdir(os.path.join(anchors, "src")):
        raise FileNotFoundError(
            f"The official I-JEPA code is not at {anchors!r}: pass --official-code PATH or "
            f"set {ENV_VAR} to a checkout of facebookresearch/ijepa."
        )
    if anchors not in sys.path:
        sys.path.insert(0, anchors)
    import src.helper as helper
    import src.masks.multiblock as multiblock
    import src.masks.utils as mask_utils
    import src.utils.logging as official_logging
    import src.utils.tensors as tensors

    logging.getLogger().setLevel(logging.WARNING)  # init_model logs the whole model
    return helper, multiblock, mask_utils, tensors, official_logging


def register_model(name, anchors=None, **kwargs):
    """Add ``name`` to the official ViT factories: ``VisionTransformer(**kwargs)``.

    The official ``vit_*`` factories fix width, depth and 3 input channels;
    ``init_model`` looks its ``model_name`` up in the module, so a
    registered name builds any size through ``init_model`` itself (its
    re-initialization included). Norm layers are ``LayerNorm(eps=1e-6)``,
    MLP ratio 4 and qkv biases, as every official factory.
    """
    import functools

    import torch

    import_official(anchors)
    import src.models.vision_transformer as vit

    vit.__dict__[name] = functools.partial(
        vit.VisionTransformer,
        mlp_ratio=4,
        qkv_bias=True,
        norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
        **kwargs,
    )
    return name


class OfficialStep:
    """One official I-JEPA training step on fixed tensors; ``step(...)`` returns the loss.

    Args:
        model_name: official factory name (``"vit_tiny"``, ..., ``"vit_huge"``).
        image_size, patch_size: square images (the official ``init_model``
            takes one crop size).
        pred_depth, pred_emb_dim: predictor depth and width.
        device: ``"cpu"`` or ``"cuda"``.
        bf16: run the forward passes and the loss under
            ``torch.autocast(dtype=bfloat16)``, as ``train.py`` with
            ``use_bfloat16`` (no GradScaler).
        steps_per_epoch, epochs, warmup_epochs: the schedules' length.
        grad_stats: also run ``train.py``'s ``grad_logger``.
        ema: (start, end) of the momentum schedule (official 0.996 -> 1.0).
        optimizer: None or a dict overriding ``init_opt``'s ``wd``,
            ``final_wd``, ``start_lr``, ``ref_lr``, ``final_lr`` (the
            official ImageNet values by default).
        loss: ``"smooth_l1"`` (``train.py``) or ``"l2"`` (``F.mse_loss``).
        patch_init_std: None (the model's init, ``trunc_normal_(std=0.02)``)
            or a float: the patch-embedding kernel re-drawn with that std.
    """

    def __init__(
        self,
        model_name,
        image_size,
        patch_size,
        pred_depth,
        pred_emb_dim,
        device="cpu",
        bf16=False,
        steps_per_epoch=1000,
        epochs=10,
        warmup_epochs=1,
        grad_stats=False,
        ema=(0.996, 1.0),
        anchors=None,
        seed=0,
        optimizer=None,
        loss="smooth_l1",
        patch_init_std=None,
    ):
        import torch
        import torch.nn.functional as F

        helper, self._multiblock, mask_utils, tensors, official_logging = import_official(anchors)
        torch.manual_seed(seed)
        self.torch, self.F = torch, F
        self.device = torch.device(device)
        self.encoder, self.predictor = helper.init_model(
            device=self.device,
            patch_size=patch_size,
            crop_size=image_size,
            pred_depth=pred_depth,
            pred_emb_dim=pred_emb_dim,
            model_name=model_name,
        )
        if patch_init_std is not None:
            tensors.trunc_normal_(self.encoder.patch_embed.proj.weight, std=patch_init_std)
        self.target_encoder = copy.deepcopy(self.encoder)
        for p in self.target_encoder.parameters():
            p.requires_grad = False
        if loss not in ("smooth_l1", "l2"):
            raise ValueError(f"loss must be 'smooth_l1' or 'l2', got {loss!r}")
        self.loss = F.smooth_l1_loss if loss == "smooth_l1" else F.mse_loss
        values = {"wd": 0.04, "final_wd": 0.4, "start_lr": 2e-4, "ref_lr": 1e-3, "final_lr": 1e-6}
        unknown = set(optimizer or {}) - set(values)
        if unknown:
            raise ValueError(f"optimizer: unknown keys {sorted(unknown)}; allowed {sorted(values)}")
        values.update(optimizer or {})
        self.optimizer, _, self.scheduler, self.wd_scheduler = helper.init_opt(
            encoder=self.encoder,
            predictor=self.predictor,
            **values,
            iterations_per_epoch=steps_per_epoch,
            warmup=warmup_epochs,
            num_epochs=epochs,
            ipe_scale=1.0,
            use_bfloat16=False,
        )
        total = steps_per_epoch * epochs  # train.py: ipe * num_epochs * ipe_scale
        self._momentum = (
            min(ema[1], ema[0] + i * (ema[1] - ema[0]) / total) for i in range(10**12)
        )
        self.apply_masks = mask_utils.apply_masks
        self.repeat_interleave_batch = tensors.repeat_interleave_batch
        self.grad_logger = official_logging.grad_logger if grad_stats else None
        self.bf16 = bool(bf16)
        self.num_patches = self.encoder.patch_embed.num_patches
        self.embed_dim = self.encoder.embed_dim

    def collator(self, **kwargs):
        """The official ``MaskCollator`` (``src.masks.multiblock``) with these kwargs."""
        return self._multiblock.MaskCollator(**kwargs)

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.device.type, dtype=self.torch.bfloat16)

    def to_device(self, images_nchw, masks_enc, masks_pred):
        """Numpy/torch inputs -> tensors on the step's device (int64 masks)."""
        torch = self.torch
        imgs = torch.as_tensor(images_nchw, device=self.device)
        enc = [torch.as_tensor(m, dtype=torch.int64, device=self.device) for m in masks_enc]
        pred = [torch.as_tensor(m, dtype=torch.int64, device=self.device) for m in masks_pred]
        return imgs, enc, pred

    def step(self, imgs, masks_enc, masks_pred):
        """``train.py::train_step`` on device tensors; returns the loss (python float)."""
        torch, F = self.torch, self.F
        self.scheduler.step()
        self.wd_scheduler.step()
        with torch.enable_grad(), self._autocast():
            with torch.no_grad():
                h = self.target_encoder(imgs)
                h = F.layer_norm(h, (h.size(-1),))
                batch = len(h)
                h = self.apply_masks(h, masks_pred)
                h = self.repeat_interleave_batch(h, batch, repeat=len(masks_enc))
            z = self.encoder(imgs, masks_enc)
            z = self.predictor(z, masks_enc, masks_pred)
            loss = self.loss(z, h)
        loss.backward()
        self.optimizer.step()
        if self.grad_logger is not None:
            self.grad_logger(self.encoder.named_parameters())
        self.optimizer.zero_grad()
        with torch.no_grad():
            m = next(self._momentum)
            for param_q, param_k in zip(
                self.encoder.parameters(), self.target_encoder.parameters()
            ):
                param_k.data.mul_(m).add_((1.0 - m) * param_q.detach().data)
        with warnings.catch_warnings():  # float() of a tensor that requires grad
            warnings.simplefilter("ignore", UserWarning)
            return float(loss)

    def synchronize(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def timed_step(self, imgs, masks_enc, masks_pred):
        """(seconds, loss, process CPU seconds) of one step, device work included."""
        self.synchronize()
        start, cpu = time.perf_counter(), process_cpu()
        loss = self.step(imgs, masks_enc, masks_pred)
        self.synchronize()
        return time.perf_counter() - start, loss, process_cpu() - cpu


def process_cpu():
    """User + system CPU seconds of this process, all threads."""
    return time.process_time()


def official_components(official, imgs, masks_enc, masks_pred):
    """Named closures timing the parts of the official step one by one (for profiling).

    Each runs one part as the step runs it: ``target`` (no_grad forward,
    layer norm, gathers), ``context_fwd`` / ``predictor_fwd`` (forwards with
    autograd recording, graph dropped), ``forward`` (target + context +
    predictor + loss), ``forward_backward`` (+ ``backward``, grads zeroed),
    ``optimizer`` (``AdamW.step`` on the last grads), ``ema`` (the
    per-parameter loop), ``step`` (the whole step).
    """
    torch, F = official.torch, official.F
    enc, pred = official.encoder, official.predictor

    def target():
        with torch.no_grad(), official._autocast():
            h = official.target_encoder(imgs)
            h = F.layer_norm(h, (h.size(-1),))
            h = official.apply_masks(h, masks_pred)
            return official.repeat_interleave_batch(h, len(imgs), repeat=len(masks_enc))

    context_tokens = enc(imgs, masks_enc).detach()

    def context_fwd():
        with official._autocast():
            return enc(imgs, masks_enc)

    def predictor_fwd():
        with official._autocast():
            return pred(context_tokens, masks_enc, masks_pred)

    def forward():
        h = target()
        with official._autocast():
            z = pred(enc(imgs, masks_enc), masks_enc, masks_pred)
            return F.smooth_l1_loss(z, h)

    def forward_backward():
        forward().backward()
        official.optimizer.zero_grad(set_to_none=False)

    forward().backward()  # grads for the optimizer part

    def optimizer():
        official.optimizer.step()

    def ema():
        with torch.no_grad():
            m = 0.996
            for param_q, param_k in zip(enc.parameters(), official.target_encoder.parameters()):
                param_k.data.mul_(m).add_((1.0 - m) * param_q.detach().data)

    def step():
        official.step(imgs, masks_enc, masks_pred)

    return {
        "target": target,
        "context_fwd": context_fwd,
        "predictor_fwd": predictor_fwd,
        "forward": forward,
        "forward_backward": forward_backward,
        "optimizer": optimizer,
        "ema": ema,
        "step": step,
    }
