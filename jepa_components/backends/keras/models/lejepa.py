"""LeJEPA (Balestriero & LeCun 2025, arXiv 2511.08544): views, a projector and SIGReg.

No teacher, no stop-gradient, no EMA or momentum schedule: an encoder and a
projector are trained on ``V`` augmented views of every image with one
trade-off weight ``lambda`` (``sigreg_weight``)::

    loss = lambda * SIGReg(projections) + (1 - lambda) * invariance(projections)

* SIGReg (:func:`jepa_components.regularizers.sigreg`): the Epps-Pulley
  distance of the projections' 1-D slices to N(0, 1), on ``num_slices``
  random unit directions drawn anew every step, per view and averaged.
* invariance (:func:`jepa_components.regularizers.lejepa_invariance`): every
  view's projection pulled to the mean of the global views.

The directions come from the model's :class:`~jepa_components.backends.keras.layers.sigreg.SIGReg`
layer (``model.sigreg``), whose seed generator's state is a model variable:
the same on every device of a data-parallel run without communication, and
restored with the model, so a resumed run continues the same sequence.

**Exact under data parallelism.** Every batch mean of the loss (the
characteristic-function means of SIGReg, the view means, BatchNorm's
statistics) is taken over the batch axis of one global array, so under
``keras.distribution.DataParallel`` (jax) the loss and its gradients are those
of the global batch, as the reference's all-reduce before squaring; a
per-device SIGReg on local batches would be a different loss.

Online probe (optional, ``num_classes``): ``LayerNorm -> Dense`` on the
*detached* embeddings of every view with the batch's ``labels`` (as the
reference ``MINIMAL.md``), its cross-entropy added to the loss; it does not
change the encoder's gradients.

The encoder is any Keras layer mapping ``(B, H, W, C)`` images to ``(B, D)``
or to tokens ``(B, N, D)`` (mean-pooled), e.g. :class:`VisionTransformer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_float, check_int, check_seed, invalid
from jepa_components.backends.keras.layers import derive_seed
from jepa_components.backends.keras.layers.sigreg import SIGReg
from jepa_components.backends.keras.models.base import JEPAModel
from jepa_components.regularizers import lejepa_invariance

__all__ = ["LeJEPA", "make_projector"]

# MINIMAL.md's small-data recipe: MLP(512, [2048, 2048, proj_dim]) with BatchNorm, proj_dim 16
PROJECTOR_HIDDEN = (2048, 2048)
PROJECTOR_DIM = 16


def make_projector(
    output_dim: int = PROJECTOR_DIM,
    hidden_dims: Sequence[int] = PROJECTOR_HIDDEN,
    *,
    seed: int | None = None,
    name: str = "projector",
) -> keras.Sequential:
    """LeJEPA's projector: ``(Dense -> BatchNorm -> ReLU)`` per hidden width, then ``Dense``.

    The reference ``MINIMAL.md`` uses torchvision's ``MLP(512, [2048, 2048,
    proj_dim], norm_layer=BatchNorm1d)``: the same layers.

    Args:
        output_dim: projection width ``d`` (``MINIMAL.md``: 16).
        hidden_dims: widths of the hidden layers (``MINIMAL.md``: 2048, 2048).
        seed: None or int, seeds the Dense initializers.

    Returns:
        A ``keras.Sequential`` mapping ``(B, D)`` to ``(B, output_dim)``.

    Example:
        >>> import numpy as np
        >>> projector = make_projector(8, (32,), seed=0)
        >>> tuple(projector(np.zeros((4, 16), "float32")).shape)
        (4, 8)
    """
    output_dim = check_int("output_dim", output_dim, low=1)
    hidden = [check_int("hidden_dims", h, low=1) for h in hidden_dims]
    layers: list[keras.layers.Layer] = []
    for i, width in enumerate(hidden):
        init = keras.initializers.GlorotUniform(seed=derive_seed(seed, i))
        layers += [
            keras.layers.Dense(width, kernel_initializer=init, name=f"dense_{i}"),
            keras.layers.BatchNormalization(name=f"norm_{i}"),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
    init = keras.initializers.GlorotUniform(seed=derive_seed(seed, len(hidden)))
    layers.append(keras.layers.Dense(output_dim, kernel_initializer=init, name="output"))
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="jepa_components")
class LeJEPA(JEPAModel):
    """LeJEPA: encoder + projector trained with SIGReg and view invariance.

    Args:
        encoder: maps ``(B, H, W, C)`` images to ``(B, D)`` or ``(B, N, D)``
            (mean-pooled), e.g. ``vit_tiny(image_size=32, patch_size=4)``.
        projector: a layer ``(B, D) -> (B, d)``; None builds
            :func:`make_projector` (``MINIMAL.md``'s 2048-2048-16 with BatchNorm).
        num_global_views: how many of the first views are global (the centre
            of the invariance term); the paper uses 2 global and 8 local
            views, ``MINIMAL.md`` treats all ``V`` as global. None: all.
        sigreg_weight: ``lambda`` in [0, 1] (paper 0.05; ``MINIMAL.md`` 0.02).
        num_slices: SIGReg directions per step (paper 1024, ``MINIMAL.md`` 256).
        t_max, num_knots: the Epps-Pulley integration range and knots (3, 17).
        num_classes: None, or the number of classes of the online linear probe.
        seed: None or int: the directions' seed generator, the projector and
            the probe initializers.

    Batches: dicts ``{"views": (B, V, H, W, C)}`` (global views first) plus
    ``"labels": (B,) int`` when ``num_classes`` is set. ``model(batch)``
    returns ``{"embeddings": (B * V, D), "projections": (V, B, d)}`` and, with
    a probe, ``"logits": (B * V, num_classes)``; rows of ``embeddings`` are
    image-major (``b * V + v``).

    Features: :meth:`features` mean-pools the encoder's tokens (or returns
    its ``(B, D)`` output).

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> encoder = VisionTransformer(image_size=16, patch_size=4, in_channels=1,
        ...                             embed_dim=32, depth=1, num_heads=2, seed=0)
        >>> model = LeJEPA(encoder, make_projector(8, (32,), seed=1), seed=2)
        >>> views = np.random.default_rng(0).normal(size=(4, 3, 16, 16, 1))
        >>> out = model({"views": views.astype("float32")})
        >>> tuple(out["projections"].shape), tuple(out["embeddings"].shape)
        ((3, 4, 8), (12, 32))
    """

    LAYER_ARGUMENTS = ("encoder", "projector")
    BATCH_KEYS = ("views", "labels")
    REQUIRED_KEYS = ("views",)

    def __init__(
        self,
        encoder: keras.layers.Layer,
        projector: keras.layers.Layer | None = None,
        *,
        num_global_views: int | None = None,
        sigreg_weight: float = 0.05,
        num_slices: int = 256,
        t_max: float = 3.0,
        num_knots: int = 17,
        num_classes: int | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        if not isinstance(encoder, keras.layers.Layer):
            raise invalid("encoder", "a Keras layer or model", encoder)
        if projector is not None and not isinstance(projector, keras.layers.Layer):
            raise invalid("projector", "None or a Keras layer", projector)
        self.num_global_views = check_int(
            "num_global_views", num_global_views, low=1, allow_none=True
        )
        self.sigreg_weight = check_float("sigreg_weight", sigreg_weight, low=0.0, high=1.0)
        self.num_classes = check_int("num_classes", num_classes, low=2, allow_none=True)
        self.seed = check_seed(seed)
        sigreg = SIGReg(num_slices, t_max, num_knots, seed=derive_seed(self.seed, 1), name="sigreg")
        super().__init__(encoder, None, **kwargs)
        self.sigreg = sigreg
        self.projector = projector if projector is not None else make_projector(seed=seed)
        self.probe = None
        if self.num_classes is not None:
            self.probe = keras.Sequential(
                [
                    keras.layers.LayerNormalization(epsilon=1e-5, name="norm"),
                    keras.layers.Dense(
                        self.num_classes,
                        kernel_initializer=keras.initializers.GlorotUniform(
                            seed=derive_seed(self.seed, 2)
                        ),
                        name="logits",
                    ),
                ],
                name="probe",
            )
        width = getattr(encoder, "embed_dim", None)
        if isinstance(width, int):  # build the heads now (else on the first call)
            self.projector.build((None, width))
            if self.probe is not None:
                self.probe.build((None, width))
            self.built = True

    # ---------------------------------------------------------------- forward
    def _embed(self, images, training):
        emb = self.encoder(images, training=training)
        if len(emb.shape) == 3:  # tokens (B, N, D): mean-pool (no class token)
            emb = ops.mean(emb, axis=1)
        return emb

    def _forward_batch(self, batch, training):
        views = batch["views"]
        if len(views.shape) != 5:
            raise ValueError(
                "Invalid value for argument `views`. Expected a rank-5 array (B, V, H, W, C). "
                f"Received: views with shape {tuple(views.shape)}"
            )
        b, v = ops.shape(views)[0], views.shape[1]
        flat = ops.reshape(views, (-1, *views.shape[2:]))  # (B * V, H, W, C), image-major
        emb = self._embed(flat, training)
        proj = self.projector(emb, training=training)
        proj = ops.transpose(ops.reshape(proj, (b, v, proj.shape[-1])), (1, 0, 2))
        out = {"embeddings": emb, "projections": proj}
        if self.probe is not None:
            out["logits"] = self.probe(ops.stop_gradient(emb), training=training)
        return out

    # ------------------------------------------------------------------ loss
    def loss_terms(self, y_pred: dict, labels: Any = None) -> dict:
        """``{"sigreg", "invariance", "lejepa"}`` (and ``"probe"`` with labels) of one output."""
        proj = ops.cast(y_pred["projections"], "float32")
        sig = self.sigreg(proj)
        inv = lejepa_invariance(proj, self.num_global_views, xp=ops)
        lam = self.sigreg_weight
        terms = {"sigreg": sig, "invariance": inv, "lejepa": lam * sig + (1.0 - lam) * inv}
        if labels is not None and "logits" in y_pred:
            views = proj.shape[0]
            labels = ops.repeat(ops.cast(labels, "int32"), views, axis=0)  # image-major rows
            terms["probe"] = ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, ops.cast(y_pred["logits"], "float32"), from_logits=True
                )
            )
        return terms

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """``lambda * SIGReg + (1 - lambda) * invariance`` (+ the probe's cross-entropy)."""
        labels = x.get("labels") if isinstance(x, dict) else None
        terms = self.loss_terms(y_pred, labels)
        return terms["lejepa"] + terms["probe"] if "probe" in terms else terms["lejepa"]

    # --------------------------------------------------------- serialization
    def get_config(self) -> dict:
        config = super().get_config()
        for name in ("loss", "reduction"):  # the base's regression loss is not used
            config.pop(name)
        return config

    def _own_config(self):
        return {
            "num_global_views": self.num_global_views,
            "sigreg_weight": self.sigreg_weight,
            "num_slices": self.sigreg.num_slices,
            "t_max": self.sigreg.t_max,
            "num_knots": self.sigreg.num_knots,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }
