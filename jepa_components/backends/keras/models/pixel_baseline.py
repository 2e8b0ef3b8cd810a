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
"""

import keras
from keras import ops

from jepa_components._validation import check_bool, check_choice, check_float, check_seed, invalid
from jepa_components.losses import LOSSES, REDUCTIONS, jepa_loss
from jepa_components.pixels import make_pixel_targets
from jepa_components.backends.keras.layers import dense, derive_seed

__all__ = ["PixelBaseline"]

_REQUIRED_KEYS = ("images", "context", "targets")
_BATCH_KEYS = ("images", "context", "context_valid", "targets", "targets_valid")


@keras.saving.register_keras_serializable(package="jepa_components")
class PixelBaseline(keras.Model):
    """I-JEPA with pixel targets (no target encoder, no EMA): the baseline I-JEPA argues against.

    Args:
        encoder: the encoder, e.g. ``vit_tiny(image_size=32, patch_size=4)``;
            it must have ``patch_size``, ``in_channels``, ``embed_dim`` and
            ``num_patches`` attributes (:class:`VisionTransformer` has).
        predictor: a :class:`Predictor` with the encoder's ``embed_dim`` and
            ``num_patches``.
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
    :class:`MaskedImageDataset`. ``model(batch)`` returns
    ``{"predictions": (B, M, Kt, P), "targets": (B, M, Kt, P)}`` with
    ``P = patch_size**2 * channels``; the loss is ``jepa_loss`` of the two
    over the valid target tokens (MSE by default).

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import Predictor, VisionTransformer
        >>> encoder = VisionTransformer(image_size=16, patch_size=4, in_channels=1,
        ...                             embed_dim=32, depth=1, num_heads=2, seed=0)
        >>> predictor = Predictor(num_patches=16, embed_dim=32, predictor_embed_dim=16,
        ...                       depth=1, num_heads=2, seed=1)
        >>> model = PixelBaseline(encoder=encoder, predictor=predictor, seed=2)
        >>> batch = {"images": np.zeros((2, 16, 16, 1), "float32"),
        ...          "context": np.array([[0, 1, 2, 3]] * 2),
        ...          "targets": np.array([[[5, 6], [9, 10]]] * 2)}
        >>> tuple(model(batch)["predictions"].shape)
        (2, 2, 2, 16)
    """

    def __init__(self, encoder, predictor, normalize_targets=True, target_eps=1e-6, loss="l2",
                 reduction="mean", init_std=0.02, seed=None, **kwargs):
        super().__init__(**kwargs)
        for attribute in ("patch_size", "in_channels", "embed_dim", "num_patches"):
            if not isinstance(getattr(encoder, attribute, None), int):
                raise invalid("encoder", f"a ViT encoder with an integer `{attribute}` "
                              "attribute (e.g. VisionTransformer)", encoder)
        for name in ("embed_dim", "num_patches"):
            mine = getattr(predictor, name, None)
            if mine is not None and mine != getattr(encoder, name):
                raise invalid("predictor", f"a predictor with {name}={getattr(encoder, name)} "
                              "(the encoder's)", f"predictor with {name}={mine}")
        self.normalize_targets = check_bool("normalize_targets", normalize_targets)
        self.target_eps = check_float("target_eps", target_eps, low=0.0, low_open=True)
        self.loss_type = check_choice("loss", loss, LOSSES)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.seed = check_seed(seed)
        self.encoder = encoder
        self.predictor = predictor
        self.patch_size = encoder.patch_size
        self.pixels_per_patch = encoder.patch_size ** 2 * encoder.in_channels
        self.pixel_head = dense(self.pixels_per_patch, std=self.init_std,
                                seed=derive_seed(seed, 0), name="pixel_head",
                                dtype=self.dtype_policy)
        for layer in (encoder, predictor):
            if not layer.built:
                layer.build(None)
        self.pixel_head.build((None, None, None, encoder.embed_dim))
        self.built = True

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or any(k not in inputs for k in _REQUIRED_KEYS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"Invalid value for argument `inputs`. Expected a dict with keys {_BATCH_KEYS} "
                f"(the *_valid ones optional). Received: {got}")
        images, context = inputs["images"], inputs["context"]
        targets = ops.cast(inputs["targets"], "int32")
        context_valid, targets_valid = inputs.get("context_valid"), inputs.get("targets_valid")
        pixel_targets = make_pixel_targets(
            ops.cast(images, "float32"), targets, self.patch_size,
            normalize=self.normalize_targets, eps=self.target_eps, xp=ops)
        context_tokens = self.encoder(images, indices=context, valid=context_valid)
        predicted = self.predictor(context_tokens, context, targets,
                                   context_valid=context_valid, targets_valid=targets_valid)
        return {"predictions": self.pixel_head(predicted),
                "targets": ops.stop_gradient(pixel_targets)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The loss of ``y_pred`` against the pixel targets, over the valid target tokens."""
        valid = x.get("targets_valid") if isinstance(x, dict) else None
        if valid is not None:
            valid = ops.cast(valid, "bool")
        return jepa_loss(
            ops.cast(y_pred["predictions"], "float32"), ops.cast(y_pred["targets"], "float32"),
            valid=valid, loss=self.loss_type, reduction=self.reduction, xp=ops)

    def features(self, images, pooled=True):
        """Features of the (only, online) encoder: ``(B, D)`` mean-pooled, or ``(B, N, D)``.

        Mean over patch tokens, as :meth:`IJEPA.features` (no class token).
        """
        tokens = self.encoder(images)
        return ops.mean(tokens, axis=1) if pooled else tokens

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "normalize_targets": self.normalize_targets,
            "target_eps": self.target_eps,
            "loss": self.loss_type,
            "reduction": self.reduction,
            "init_std": self.init_std,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["predictor"] = keras.saving.deserialize_keras_object(config["predictor"])
        return cls(**config)
