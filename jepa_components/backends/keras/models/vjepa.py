"""The V-JEPA model: I-JEPA's model on clips, with V-JEPA's L1 loss.

V-JEPA (Bardes et al. 2024; facebookresearch/jepa and vjepa2
``app/vjepa/train.py``) trains exactly I-JEPA's step on video: the context
encoder on the context tubelets, the predictor for the target tubelets, an
EMA target encoder on the whole clip with a non-affine layer norm (eps
1e-5), no gradient to the target. What changes is outside the model class:

- the encoder and predictor take clips (``VisionTransformer(num_frames=T,
  tubelet_size=2)``, ``Predictor.for_encoder``): tubelet embedding and the
  3-D sin-cos table;
- the masks are 3-D (time-major indices on ``grid_size = (T', H', W')``,
  e.g. ``masks.MultiBlock3DMaskSampler``: the target is the union of the
  blocks, one target row per sample);
- the loss is ``mean(|z - h| ** loss_exp) / loss_exp`` with ``loss_exp = 1``
  (``losses.l1_loss``); the EMA schedule of the configs is 0.998 -> 1.0
  (``TargetEMA(0.998, 1.0)``).

So :class:`VJEPA` is :class:`~jepa_components.backends.keras.IJEPA` with
``"l1"`` among its losses and as its default; everything else (the step,
the EMA target, saving) is IJEPA's. The batch dict is IJEPA's with
``images`` holding the clips ``(B, T, H, W, C)``.

Not here: V-JEPA's several mask configurations per batch with one mask
token each (use one sampler per batch), its zero-initialized mask tokens,
V-JEPA 2's RoPE attention and action-conditioned predictor.
"""

from __future__ import annotations

from typing import Any

import keras

from jepa_components.backends.keras.models.ijepa import IJEPA
from jepa_components.losses import LOSSES

__all__ = ["VJEPA"]


@keras.saving.register_keras_serializable(package="jepa_components")
class VJEPA(IJEPA):
    """V-JEPA: :class:`IJEPA` with V-JEPA's L1 loss, for clip encoders (module docstring).

    Args:
        encoder: the context encoder, e.g. ``VisionTransformer(num_frames=16,
            tubelet_size=2, ...)`` (an image encoder works too).
        predictor: ``Predictor.for_encoder(encoder, ...)``.
        loss: ``"l1"`` (default, V-JEPA's ``loss_exp: 1``), ``"l2"`` or
            ``"smooth_l1"``.
        reduction, target_eps, momentum: as :class:`IJEPA`.

    Batches: ``{"images": (B, T, H, W, C), "context": (B, Kc), "targets":
    (B, M, Kt)}`` plus the optional ``context_valid`` / ``targets_valid``
    (``MaskBatch.as_dict()`` of a 3-D sampler and the clips).

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import Predictor, VisionTransformer
        >>> encoder = VisionTransformer(image_size=16, patch_size=8, num_frames=4,
        ...                             embed_dim=32, depth=1, num_heads=2, seed=0)
        >>> predictor = Predictor.for_encoder(encoder, embed_dim=16, depth=1, num_heads=2,
        ...                                   seed=1)
        >>> model = VJEPA(encoder=encoder, predictor=predictor, momentum=0.998)
        >>> model.grid_size, model.loss_type
        ((2, 2, 2), 'l1')
        >>> batch = {  # a tube through both time steps: patches 2, 3 of each frame pair
        ...     "images": np.random.default_rng(0).random((2, 4, 16, 16, 3), "float32"),
        ...     "context": np.array([[0, 1, 4, 5]] * 2), "targets": np.array([[[2, 3, 6, 7]]] * 2)}
        >>> model.compile(optimizer="adamw")
        >>> history = model.fit(batch, batch_size=2, verbose=0)
        >>> model.ema_update_count(), tuple(model(batch)["predictions"].shape)
        (1, (2, 1, 4, 32))
    """

    LOSSES = ("l1", *LOSSES)

    def __init__(
        self,
        encoder: keras.layers.Layer,
        predictor: keras.layers.Layer,
        loss: str = "l1",
        reduction: str = "mean",
        target_eps: float = 1e-5,
        momentum: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            encoder,
            predictor,
            loss=loss,
            reduction=reduction,
            target_eps=target_eps,
            momentum=momentum,
            **kwargs,
        )
