"""``JEPAModel``: what every JEPA-family model of this package shares.

A method is a thin subclass: its ``__init__`` validates its own arguments,
calls ``super().__init__(encoder, predictor, loss=..., reduction=...)`` and
adds its parts; it computes its outputs in ``_forward_batch(batch,
training)`` and lists its own constructor arguments in ``_own_config()``.
:class:`~jepa_components.backends.keras.IJEPA` adds an EMA target encoder
(:class:`~jepa_components.backends.keras.training.ema.EMATarget`),
:class:`~jepa_components.backends.keras.PixelBaseline` a pixel head. The
base owns:

- **Parts.** ``encoder`` and an optional ``predictor`` (a method without one
  passes None), checked against each other: same ``embed_dim``,
  ``num_patches`` and patch ``grid_size`` where both define them.
- **Batches.** ``call`` checks the batch dict (``BATCH_KEYS``; the
  ``REQUIRED_KEYS`` must be there) and hands it to ``_forward_batch``, which
  returns ``{"predictions", "targets"}``. ``images`` is whatever the encoder
  takes: ``(B, H, W, C)`` images, or ``(B, T, H, W, C)`` clips for a clip
  encoder (``VisionTransformer(num_frames=T)``, V-JEPA); the indices are
  on the encoder's ``grid_size`` (2-D or 3-D).
- **Loss.** ``compute_loss``: ``losses.jepa_loss`` of the predictions
  against the targets over the valid target tokens (``targets_valid``), in
  float32, with the model's ``loss_type`` and ``reduction``. The names a
  model accepts are its class's ``LOSSES`` (I-JEPA's two here; ``VJEPA``
  adds ``"l1"``, ``losses.l1_loss``).
- **Compilation.** ``compile(jit_compile="auto")`` also compiles with XLA on
  a CPU-only tensorflow, where Keras' "auto" would not (the step is faster
  compiled); ``make_train_function`` compiles the jax CPU step with XLA's
  memory-ordered scheduler (``compat.jax_train_step_jit``: without it,
  blocks built with ``remat=True`` save no memory there) and, on jax and
  tensorflow, gives the heap XLA's first compile freed back to the OS
  (``compat.release_heap_after_first_call``).
- **Data hooks.** ``fit(x)`` refuses a dataset whose ``x.sampler`` draws
  masks on another patch grid than the encoder's (:meth:`JEPAModel.check_sampler`),
  and asks ``x.fit_hooks(model)`` (any dataset may define it; see
  :class:`~jepa_components.backends.keras.data.FitHooks`) for callbacks to
  run first, a context to run ``fit`` in and the ``shuffle`` value it needs.
- **Features.** ``features(images, pooled=True)``: the tokens of
  ``feature_encoder()``, mean-pooled (no class token).
- **Serialization.** ``get_config`` / ``from_config``: the layers named in
  ``LAYER_ARGUMENTS``, serialized, plus ``loss``, ``reduction`` and the
  subclass's ``_own_config()``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_choice
from jepa_components.backends.keras.compat import (
    jax_train_step_jit,
    model_distribute_strategy,
    model_train_function,
    release_heap_after_first_call,
)
from jepa_components.losses import LOSSES, REDUCTIONS, jepa_loss, l1_loss
from jepa_components.masks import check_sampler_grid

__all__ = ["BATCH_KEYS", "JEPAModel", "REQUIRED_KEYS"]

BATCH_KEYS = ("images", "context", "context_valid", "targets", "targets_valid")
REQUIRED_KEYS = ("images", "context", "targets")


def _callbacks_with(callbacks, first, model):
    """``callbacks`` (None, a list or a ``CallbackList``) with the list ``first`` in front."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        for callback in reversed(first):  # a given CallbackList is used as it is
            callback.set_model(model)
            callbacks.callbacks.insert(0, callback)
        return callbacks
    return [*first, *(callbacks or [])]


class JEPAModel(keras.Model):
    """Base of the JEPA-family models: parts, batch checks, loss, compilation, data hooks.

    Args:
        encoder: the (context) encoder, e.g. ``vit_tiny(image_size=96)``.
        predictor: the predictor, or None for a method without one.
        loss: ``"l2"`` (default) or ``"smooth_l1"`` (any name in the class's
            ``LOSSES``), the regression loss of ``compute_loss``.
        reduction: ``"mean"`` or ``"paper"``; see ``jepa_components.losses``.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``, ...).

    Not used on its own: see the module docstring for what a subclass adds.
    """

    train_function: Any  # keras.Model's, wrapped by make_train_function

    #: Constructor arguments that are layers, serialized by ``get_config``.
    LAYER_ARGUMENTS = ("encoder", "predictor")
    #: The ``loss`` names the model accepts (``"l1"``: ``losses.l1_loss``, V-JEPA's).
    LOSSES: tuple[str, ...] = LOSSES
    BATCH_KEYS: tuple[str, ...] = BATCH_KEYS
    REQUIRED_KEYS: tuple[str, ...] = REQUIRED_KEYS

    def __init__(
        self,
        encoder: keras.layers.Layer,
        predictor: keras.layers.Layer | None = None,
        *,
        loss: str = "l2",
        reduction: str = "mean",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.loss_type = check_choice("loss", loss, self.LOSSES)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        if predictor is not None:
            for name in ("embed_dim", "num_patches", "grid_size"):
                mine, theirs = getattr(predictor, name, None), getattr(encoder, name, None)
                if isinstance(mine, list):
                    mine = tuple(mine)
                if isinstance(theirs, list):
                    theirs = tuple(theirs)
                if mine is not None and theirs is not None and mine != theirs:
                    raise ValueError(
                        f"Invalid value for argument `predictor`. Expected {name}={theirs} "
                        f"(the encoder's). Received: predictor with {name}={mine}"
                    )
        self.encoder = encoder
        self.predictor: Any = predictor  # None for a method without one
        for layer in (encoder, predictor):
            if layer is not None and not layer.built:
                layer.build(None)

    # ------------------------------------------------------------ the parts
    @property
    def grid_size(self) -> tuple[int, ...] | None:
        """The encoder's patch grid ``(H, W)`` (clips ``(T, H, W)``), or None for an encoder
        without ``grid_size``."""
        grid = getattr(self.encoder, "grid_size", None)
        return None if grid is None else tuple(grid)

    def feature_encoder(self) -> keras.layers.Layer:
        """The encoder whose tokens are the model's frozen features (here ``encoder``).

        A method, not a property: Keras' saver walks a model's public
        attributes in name order and would store a subclass's target
        encoder under this name.
        """
        return self.encoder

    def features(self, images: Any, pooled: bool = True) -> Any:
        """Frozen features: ``feature_encoder()`` tokens, ``(B, D)`` mean-pooled or ``(B, N, D)``.

        Mean over the patch tokens (I-JEPA has no class token).
        """
        tokens = self.feature_encoder()(images)
        return ops.mean(tokens, axis=1) if pooled else tokens

    def check_sampler(self, sampler: Any) -> None:
        """Refuse a mask sampler on another patch grid than the encoder's (ValueError).

        ``fit`` calls it with ``x.sampler``; call it before a custom loop.
        Samplers or encoders without a ``grid_size`` are not checked.
        """
        if getattr(sampler, "grid_size", None) is not None:
            check_sampler_grid(sampler, self.grid_size)

    # -------------------------------------------------------- step and loss
    def call(self, inputs: dict, training: bool = False) -> dict:
        if not isinstance(inputs, dict) or any(k not in inputs for k in self.REQUIRED_KEYS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            optional = [k for k in self.BATCH_KEYS if k not in self.REQUIRED_KEYS]
            raise ValueError(
                f"Invalid value for argument `inputs`. Expected a dict with keys "
                f"{self.BATCH_KEYS} ({', '.join(optional)} optional). Received: {got}"
            )
        return self._forward_batch(inputs, training)

    def _forward_batch(self, batch, training):
        """``{"predictions", "targets"}`` of a checked batch dict (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must define _forward_batch")

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The loss of ``y_pred["predictions"]`` against ``y_pred["targets"]`` over ``x``'s valid
        target tokens."""
        valid = x.get("targets_valid") if isinstance(x, dict) else None
        if valid is not None:
            valid = ops.cast(valid, "bool")
        pred = ops.cast(y_pred["predictions"], "float32")
        target = ops.cast(y_pred["targets"], "float32")
        if self.loss_type == "l1":  # V-JEPA's; not a `jepa_loss` name
            return l1_loss(pred, target, valid=valid, reduction=self.reduction, xp=ops)
        return jepa_loss(
            pred, target, valid=valid, loss=self.loss_type, reduction=self.reduction, xp=ops
        )

    # ------------------------------------------------------------ training
    def compile(self, *args: Any, jit_compile: Any = "auto", **kwargs: Any) -> None:
        """``keras.Model.compile``; ``jit_compile="auto"`` also means XLA on a CPU-only tensorflow.

        Keras' "auto" turns XLA off for tensorflow when no GPU is visible;
        this model's step runs faster compiled, so "auto" compiles it there
        too. Each new batch shape compiles once (as on jax): prefer fixed or
        bucketed mask lengths. ``run_eagerly=True`` and tf.distribute keep
        Keras' choice.
        """
        if (
            jit_compile == "auto"
            and keras.backend.backend() == "tensorflow"
            and not kwargs.get("run_eagerly")
            and model_distribute_strategy(self) is None
        ):
            jit_compile = True
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def make_train_function(self, force: bool = False) -> Any:
        """Keras' train function; on jax and tensorflow the heap is released after its first call.

        On jax's CPU the step is compiled with XLA's memory-ordered scheduler
        (``compat.jax_train_step_jit``): without it, blocks built with
        ``remat=True`` would save no memory there. The first call compiles,
        and XLA's compile leaves freed heap that glibc keeps mapped: it is
        returned to the OS once (``compat.release_heap_after_first_call``).
        """
        fresh = force or self.train_function is None
        step = jax_train_step_jit(self) if fresh else None
        function = None if step is None else model_train_function(self, step)
        if function is not None:  # jax on CPU: Keras' step with the memory-ordered scheduler
            self.train_function = function
        else:
            super().make_train_function(force=force)
        if fresh:
            self.train_function = release_heap_after_first_call(self.train_function)
        return self.train_function

    def compile_from_config(self, config: dict) -> None:
        """As ``keras.Model.compile_from_config`` (needed since ``compile`` is overridden)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    def _fit_callbacks(self):
        """The model's own ``fit`` callbacks, run before the user's (mixins add theirs)."""
        return []

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: Any = None,
        **kwargs: Any,
    ) -> Any:
        """``keras.Model.fit`` with the model's callbacks first and the dataset's hooks.

        A dataset with a ``sampler`` must draw on the encoder's patch grid
        (:meth:`check_sampler`). A dataset with a ``fit_hooks(model)``
        method (:class:`~jepa_components.backends.keras.MaskedImageDataset`
        has one) gets its callbacks run first, ``fit`` run inside its
        context, and ``shuffle`` defaulted to (and held at) the value it
        needs.
        """
        kwargs.update(y=y, batch_size=batch_size, epochs=epochs, verbose=verbose)
        self.check_sampler(getattr(x, "sampler", None))
        ask = getattr(x, "fit_hooks", None)
        hooks = ask(self) if callable(ask) else None
        first = self._fit_callbacks()
        context = contextlib.nullcontext()
        if hooks is not None:
            first = [*hooks.callbacks, *first]
            context = hooks.context()
            if hooks.shuffle is not None:
                shuffle = kwargs.setdefault("shuffle", hooks.shuffle)
                if shuffle != hooks.shuffle:
                    raise ValueError(
                        f"Invalid value for argument `shuffle`. Expected {hooks.shuffle} with "
                        f"{hooks.shuffle_reason}. Received: shuffle={shuffle}"
                    )
        with context:
            return super().fit(x, callbacks=_callbacks_with(callbacks, first, self), **kwargs)

    # -------------------------------------------------------- serialization
    def _own_config(self):
        """The subclass's own constructor arguments (besides the layers, loss, reduction)."""
        return {}

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        for name in self.LAYER_ARGUMENTS:
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        config.update(loss=self.loss_type, reduction=self.reduction, **self._own_config())
        return config

    @classmethod
    def from_config(cls, config: dict) -> JEPAModel:
        config = dict(config)
        for name in cls.LAYER_ARGUMENTS:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
