"""The pixel-target baseline: I-JEPA's encoder, masks and predictor, regressing pixels.

I-JEPA's claim (Assran et al. 2023, Sec. 1, Table 1, Fig. 1) is that
predicting in representation space learns more semantic features, faster,
than reconstructing pixels (MAE). This model is the controlled other arm of
that comparison: everything is I-JEPA's -- the same context encoder, the same
multi-block masks (or any sampler's), the same predictor, the same batch
dict and training loop -- except the target. For every target block the
predictor regresses the *pixels* of the target patches, per-patch
normalised as MAE's ``norm_pix_loss`` (``jepa_components.pixels``), instead
of the layer-normed tokens of an EMA target encoder. There is no target
encoder and no EMA: the only encoder is the one trained by the optimizer,
and it is the one evaluated (:meth:`PixelBaseline.features`).

Differences from MAE, on purpose: MAE's encoder sees only visible patches
and its decoder reconstructs all masked patches of one random mask; here the
context and target blocks come from the I-JEPA sampler and the narrow
I-JEPA predictor does the regression, so the only variable is the target.

The predictor outputs ``embed_dim`` features per target token; a linear
``pixel_head`` (``embed_dim -> p * p * C``, init normal std ``init_std``,
bias 0) maps them to pixels.

Batch checks, the loss over valid target tokens, compilation (with the same
fast paths as I-JEPA), ``fit``'s data hooks, ``features`` and serialization
come from :class:`~jepa_components.backends.keras.models.base.JEPAModel`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_bool, check_float, check_seed, invalid
from jepa_components.backends.keras.layers import dense, derive_seed
from jepa_components.backends.keras.models.base import JEPAModel
from jepa_components.pixels import make_pixel_targets

__all__ = ["PixelBaseline"]


@keras.saving.register_keras_serializable(package="jepa_components")
class PixelBaseline(JEPAModel):
    """I-JEPA with pixel targets (no target encoder, no EMA): the baseline I-JEPA argues against.

    Args:
        encoder: the encoder, e.g. ``vit_tiny(image_size=32, patch_size=4)``;
            it must have ``patch_size``, ``in_channels``, ``embed_dim`` and
            ``num_patches`` attributes (:class:`VisionTransformer` has).
        predictor: a :class:`Predictor` with the encoder's ``embed_dim``,
            ``num_patches`` and patch grid (``Predictor.for_encoder``).
        normalize_targets: per-patch normalised pixels (MAE ``norm_pix_loss``,
            default) or raw pixels.
        target_eps: epsilon of that normalisation (MAE 1e-6), > 0.
        loss: ``"l2"`` (MSE, default) or ``"smooth_l1"``, as :class:`IJEPA`.
        reduction: ``"mean"`` (over valid target tokens and pixel values) or
            ``"paper"``; see ``jepa_components.losses``.
        init_std: init std of the ``pixel_head`` weights (official 0.02).
        seed: None or int, seeds the ``pixel_head`` initializer.

    Batches: the :class:`IJEPA` contract, dicts ``{"images" (B, H, W, C),
    "context" (B, Kc), "targets" (B, M, Kt)}`` plus optional
    ``context_valid`` / ``targets_valid`` bool masks; ``model.fit`` takes
    them as a numpy dict with ``batch_size`` or from a ``PyDataset`` such as
    :class:`MaskedImageDataset` (whose sampler must draw on the encoder's
    patch grid). ``model(batch)`` returns
    ``{"predictions": (B, M, Kt, P), "targets": (B, M, Kt, P)}`` with
    ``P = patch_size**2 * channels``; the loss is ``jepa_loss`` of the two
    over the valid target tokens (MSE by default).

    Features: :meth:`features` reads the (only, online) encoder.

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import Predictor, VisionTransformer
        >>> encoder = VisionTransformer(image_size=16, patch_size=4, in_channels=1,
        ...                             embed_dim=32, depth=1, num_heads=2, seed=0)
        >>> predictor = Predictor.for_encoder(encoder, embed_dim=16, depth=1, num_heads=2,
        ...                                   seed=1)
        >>> model = PixelBaseline(encoder=encoder, predictor=predictor, seed=2)
        >>> batch = {"images": np.zeros((2, 16, 16, 1), "float32"),
        ...          "context": np.array([[0, 1, 2, 3]] * 2),
        ...          "targets": np.array([[[5, 6], [9, 10]]] * 2)}
        >>> tuple(model(batch)["predictions"].shape)
        (2, 2, 2, 16)
    """

    def __init__(
        self,
        encoder: keras.layers.Layer,
        predictor: keras.layers.Layer,
        normalize_targets: bool = True,
        target_eps: float = 1e-6,
        loss: str = "l2",
        reduction: str = "mean",
        init_std: float = 0.02,
        seed: int | None = None,
        **kwargs: Any,
    ):
        for attribute in ("patch_size", "in_channels", "embed_dim", "num_patches"):
            if not isinstance(getattr(encoder, attribute, None), int):
                raise invalid(
                    "encoder",
                    f"a ViT encoder with an integer `{attribute}` "
                    "attribute (e.g. VisionTransformer)",
                    encoder,
                )
        normalize_targets = check_bool("normalize_targets", normalize_targets)
        target_eps = check_float("target_eps", target_eps, low=0.0, low_open=True)
        init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        seed = check_seed(seed)
        super().__init__(encoder, predictor, loss=loss, reduction=reduction, **kwargs)
        self.normalize_targets, self.target_eps = normalize_targets, target_eps
        self.init_std, self.seed = init_std, seed
        self.patch_size = encoder.patch_size
        self.pixels_per_patch = encoder.patch_size**2 * encoder.in_channels
        self.pixel_head = dense(
            self.pixels_per_patch,
            std=self.init_std,
            seed=derive_seed(seed, 0),
            name="pixel_head",
            dtype=self.dtype_policy,
        )
        self.pixel_head.build((None, None, None, encoder.embed_dim))
        self.built = True

    def _forward_batch(self, batch, training):
        images, context = batch["images"], batch["context"]
        targets = ops.cast(batch["targets"], "int32")
        context_valid, targets_valid = batch.get("context_valid"), batch.get("targets_valid")
        pixel_targets = make_pixel_targets(
            ops.cast(images, "float32"),
            targets,
            self.patch_size,
            normalize=self.normalize_targets,
            eps=self.target_eps,
            xp=ops,
        )
        context_tokens = self.encoder(images, indices=context, valid=context_valid)
        predicted = self.predictor(
            context_tokens,
            context,
            targets,
            context_valid=context_valid,
            targets_valid=targets_valid,
        )
        return {
            "predictions": self.pixel_head(predicted),
            "targets": ops.stop_gradient(pixel_targets),
        }

    def _own_config(self):
        return {
            "normalize_targets": self.normalize_targets,
            "target_eps": self.target_eps,
            "init_std": self.init_std,
            "seed": self.seed,
        }
