"""The I-JEPA model: context encoder, EMA target encoder and predictor.

One ``keras.Model`` that trains with ``model.compile(optimizer=...)`` and
``model.fit(...)`` on jax, torch and tensorflow (Assran et al. 2023;
official ``train.py``).

Training step (batch dict ``{"images", "context", "context_valid",
"targets", "targets_valid"}``, see :class:`IJEPA`):

1. targets: the target encoder on the full image, non-affine layer norm
   (eps 1e-5), gathered per target block (``context.make_targets``), no
   gradient;
2. predictions: the context encoder on the context patches, then the
   predictor for every target block;
3. loss: ``losses.jepa_loss`` over valid target tokens ("l2" by default,
   the paper's; "smooth_l1" is the official code's).

**Target EMA, inside the compiled step.** The official code updates the
target after every optimizer step: ``target = m * target + (1 - m) *
online``. A batch-level Keras callback doing that is slow (a Python loop of
assigns, and on jax a full state sync per batch) and easy to get wrong under
gradient accumulation. Here the model does it the way BatchNorm updates its
statistics: at the *start* of training step ``t``, before the targets are
computed, it applies the update pending from step ``t - 1`` (whose
optimizer update has happened by then). The targets of step ``t`` therefore
come from exactly the official target weights, the update is fused into the
compiled step on every backend, and nothing crosses the Python boundary.

**All EMA state is in saved variables** (non-trainable weights of the model,
so ``model.save("x.keras")`` keeps them and a loaded model continues the
run with the same momentum, with or without a callback):

- ``momentum_start``, ``momentum_end``, ``momentum_total_steps``: the
  schedule, ``schedules.ema_momentum(k, total, start, end)`` for EMA update
  ``k`` (linear, then held at ``end``); a constant momentum is
  ``start == end``. Set it with :meth:`IJEPA.set_momentum_schedule` (what
  ``TargetEMA`` does) or the ``momentum`` argument; ``total_steps == 0``
  marks "never set" (the constant 0.996, with a one-time warning in
  ``fit``).
- ``ema_updates``: EMA updates applied (the schedule's ``k``);
- ``ema_pending``: 1 if an optimizer update is not yet in the target;
- ``accumulation_step``: micro-batch counter; with
  ``optimizer.gradient_accumulation_steps = n`` only every n-th step is an
  optimizer update, so only those schedule an EMA update.

One method applies a pending update (``_apply_pending_update``): the
training step calls it first, and :meth:`IJEPA.apply_pending_ema` calls it
at the end of ``fit`` (before the other callbacks' ``on_train_end``) and at
the start of ``evaluate`` (so ``val_loss`` uses the current target). The
last update of a run that stops mid-``fit`` (an exception, or a checkpoint
written by a callback) stays pending in the saved state and is applied at
the start of the next training step. Custom loops (``train_on_batch``, a
hand-written step calling ``model(batch, training=True)``) get the same
behaviour; call ``apply_pending_ema()`` after them.

``fit`` on a :class:`~jepa_components.backends.keras.data.MaskedImageDataset`
also keeps the dataset on ``fit``'s epoch (``initial_epoch`` included) and
re-raises its reader errors unwrapped; see that module.
"""

import warnings

import keras
import numpy as np
from keras import ops

from jepa_components._validation import check_choice, check_float, check_int
from jepa_components.context import make_targets
from jepa_components.losses import LOSSES, REDUCTIONS, jepa_loss
from jepa_components.backends.keras.compat import (
    fused_blend,
    jax_train_step_jit,
    no_autocast,
    release_heap_after_first_call,
)
from jepa_components.backends.keras.data import MaskedImageDataset

__all__ = ["IJEPA", "BATCH_KEYS"]

BATCH_KEYS = ("images", "context", "context_valid", "targets", "targets_valid")
_REQUIRED_KEYS = ("images", "context", "targets")
_DEFAULT_MOMENTUM = 0.996


def _accumulation_steps(optimizer):
    """Micro-batches per optimizer update (1 without gradient accumulation)."""
    while optimizer is not None:
        steps = getattr(optimizer, "gradient_accumulation_steps", None)
        if steps:
            return int(steps)
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return 1


def _python_float(value):
    """A float32 value as the shortest python float that reads back to it (0.996, not 0.9959...)."""
    return float(str(np.float32(ops.convert_to_numpy(value))))


class _FitHooks(keras.callbacks.Callback):
    """``IJEPA.fit``'s own callback, placed first in the list.

    Warns once if no momentum schedule was ever set (checked at the first
    epoch begin, after every callback's ``on_train_begin``, so a
    ``TargetEMA`` or any other way of setting it counts), and applies the
    pending EMA update at the end of training, before the other callbacks'
    ``on_train_end`` see the target.
    """

    def __init__(self):
        super().__init__()
        self._checked = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._checked:
            self._checked = True
            self.model._warn_if_no_schedule()

    def on_train_end(self, logs=None):
        self.model.apply_pending_ema()


def _first(callbacks, callback, model):
    """``callbacks`` (None, a list or a ``CallbackList``) with ``callback`` first."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callback.set_model(model)  # a given CallbackList is used as it is
        callbacks.callbacks.insert(0, callback)
        return callbacks
    return [callback] + list(callbacks or [])


@keras.saving.register_keras_serializable(package="jepa_components")
class IJEPA(keras.Model):
    """I-JEPA: encoder, EMA target encoder and predictor in one Keras model.

    Args:
        encoder: the context encoder, e.g. ``vit_tiny(image_size=96)``. Any
            layer called as ``encoder(images, indices=None, valid=None)``
            returning ``(B, N, D)`` / ``(B, K, D)`` with a ``get_config``.
        predictor: a :class:`Predictor` with the encoder's ``embed_dim`` and
            ``num_patches``.
        loss: ``"l2"`` (paper, default) or ``"smooth_l1"`` (official code).
        reduction: ``"mean"`` (over valid tokens and features) or
            ``"paper"`` (Eq. 1); see ``jepa_components.losses``.
        target_eps: layer-norm epsilon of the targets (official 1e-5).
        momentum: float in [0, 1], the initial (constant) EMA momentum
            schedule, for ``fit`` without a :class:`TargetEMA` callback.
            None: 0.996 and a one-time warning unless a schedule is set. The
            saved schedule variables (module docstring) hold the truth after
            that.

    Attributes: ``encoder``, ``target_encoder`` (same architecture, weights
    copied from ``encoder`` at construction, not trainable, never seen by
    the optimizer), ``predictor``; the EMA state variables of the module
    docstring.

    Batches: dicts with ``images`` ``(B, H, W, C)`` float, ``context``
    ``(B, Kc)`` int, ``targets`` ``(B, M, Kt)`` int, and optionally
    ``context_valid`` ``(B, Kc)`` / ``targets_valid`` ``(B, M, Kt)`` bool
    (``MaskBatch.as_dict()`` plus the images). ``model(batch)`` returns
    ``{"predictions": (B, M, Kt, D), "targets": (B, M, Kt, D)}``.

    Frozen features for probes: :meth:`features` (mean-pooled target-encoder
    tokens; I-JEPA has no class token), or ``model.target_encoder(images)``
    for all tokens ``(B, N, D)``.

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import (
        ...     MaskedImageDataset, Predictor, TargetEMA, vit_tiny)
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> encoder = vit_tiny(image_size=32, patch_size=8, depth=1, seed=0)
        >>> predictor = Predictor(num_patches=16, embed_dim=192,
        ...                       predictor_embed_dim=32, depth=1, num_heads=2, seed=1)
        >>> model = IJEPA(encoder=encoder, predictor=predictor)
        >>> model.compile(optimizer="adamw")
        >>> images = np.random.default_rng(0).random((8, 32, 32, 3), "float32")
        >>> data = MaskedImageDataset(
        ...     images, MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0),
        ...     batch_size=4)
        >>> history = model.fit(data, epochs=1, verbose=0, callbacks=[TargetEMA()])
        >>> model.ema_update_count(), tuple(model.features(images).shape)
        (2, (8, 192))
    """

    def __init__(self, encoder, predictor, loss="l2", reduction="mean", target_eps=1e-5,
                 momentum=None, **kwargs):
        super().__init__(**kwargs)
        loss = check_choice("loss", loss, LOSSES)
        reduction = check_choice("reduction", reduction, REDUCTIONS)
        target_eps = check_float("target_eps", target_eps, low=0.0, low_open=True)
        momentum = check_float("momentum", momentum, low=0.0, high=1.0, allow_none=True)
        for name in ("embed_dim", "num_patches"):
            mine, theirs = getattr(predictor, name, None), getattr(encoder, name, None)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(
                    f"Invalid value for argument `predictor`. Expected {name}={theirs} "
                    f"(the encoder's). Received: predictor with {name}={mine}")
        self.loss_type, self.reduction, self.target_eps = loss, reduction, target_eps
        self.momentum = momentum
        self._warned_no_schedule = False
        self.encoder = encoder
        self.predictor = predictor
        config = encoder.get_config()
        config.update(name="target_encoder")
        self.target_encoder = encoder.__class__.from_config(config)
        for layer in (encoder, self.target_encoder, predictor):
            if not layer.built:
                layer.build(None)
        self.target_encoder.trainable = False
        if len(self.target_encoder.weights) != len(encoder.weights) or any(
            tuple(t.shape) != tuple(o.shape) for t, o in self._ema_pairs()
        ):
            raise ValueError("Invalid value for argument `encoder`. Expected a layer whose "
                             "`from_config(get_config())` copy has the same weights.")
        for target, online in self._ema_pairs():
            target.assign(ops.copy(online))  # a copy: jax must not share buffers
        self._add_ema_state(momentum)
        self.built = True

    # ------------------------------------------------------------------ EMA
    def _add_ema_state(self, momentum):
        """The saved EMA variables (module docstring)."""
        def scalar(name, dtype, value):
            return self.add_weight(name=name, shape=(), dtype=dtype, trainable=False,
                                   initializer=keras.initializers.Constant(value))

        constant = _DEFAULT_MOMENTUM if momentum is None else momentum
        self.ema_updates = scalar("ema_updates", "int32", 0)
        self.ema_pending = scalar("ema_pending", "int32", 0)
        self.accumulation_step = scalar("accumulation_step", "int32", 0)
        self.momentum_start = scalar("momentum_start", "float32", constant)
        self.momentum_end = scalar("momentum_end", "float32", constant)
        self.momentum_total_steps = scalar("momentum_total_steps", "int32",
                                           0 if momentum is None else 1)

    def set_momentum_schedule(self, start, end=None, total_steps=None):
        """Momentum of EMA update ``k``: ``schedules.ema_momentum(k, total_steps, start, end)``.

        ``end=None``: the constant ``start``. ``k`` counts EMA updates
        (``ema_updates``), i.e. optimizer updates. The values are written
        into the schedule variables (saved with the model), read by the
        compiled step: changing them needs no retracing.
        """
        start = check_float("start", start, low=0.0, high=1.0)
        end = start if end is None else check_float("end", end, low=0.0, high=1.0)
        total_steps = 1 if total_steps is None else check_int("total_steps", total_steps, low=1)
        self.momentum_start.assign(start)
        self.momentum_end.assign(end)
        self.momentum_total_steps.assign(total_steps)

    def momentum_schedule(self):
        """The saved schedule: ``{"start", "end", "total_steps"}`` (python numbers).

        ``total_steps == 0``: never set (the constant ``start`` is used).
        """
        return {"start": _python_float(self.momentum_start.value),
                "end": _python_float(self.momentum_end.value),
                "total_steps": int(ops.convert_to_numpy(self.momentum_total_steps.value))}

    def current_momentum(self, step=None):
        """Momentum of EMA update number ``step`` (0-based), a float32 scalar tensor.

        ``step=None``: the next update to apply (``ema_updates``; the pending
        one, if any). The formula of ``schedules.ema_momentum`` with the
        schedule variables as tensors (the core function takes python
        numbers); tests check the two agree.
        """
        step = self.ema_updates if step is None else step
        start = ops.convert_to_tensor(self.momentum_start)
        end = ops.convert_to_tensor(self.momentum_end)
        total = ops.cast(ops.maximum(self.momentum_total_steps, 1), "float32")
        progress = ops.minimum(ops.cast(step, "float32"), total)
        return start + progress * (end - start) / total

    def _ema_pairs(self):
        """(target weight, online weight) pairs, in build order."""
        return list(zip(self.target_encoder.weights, self.encoder.weights))

    def _blend_target(self, momentum):
        """``target = m * target + (1 - m) * online`` for every weight pair."""
        if fused_blend(self._ema_pairs(), momentum):  # torch: multi-tensor kernels
            return
        for target, online in self._ema_pairs():
            m = ops.cast(momentum, target.dtype)
            online = ops.stop_gradient(ops.cast(online, target.dtype))
            target.assign(m * target + (1.0 - m) * online)

    def _apply_pending_update(self):
        """The one place a pending update is applied (momentum 1, a no-op, if none).

        Inside ``call`` a mixed-precision policy (``mixed_bfloat16``) autocasts
        every float variable read to bfloat16: the momentum (0.996 -> 0.99609375),
        the target and the online weights would be rounded to 8 mantissa bits
        (the ``(1 - m) * (online - target)`` step is below that resolution), the
        torch fused update would write into temporary bfloat16 copies (updates
        silently lost) and tensorflow fails on a bfloat16 x float32 product.
        The EMA reads its variables as stored (float32).
        """
        with no_autocast():
            pending = ops.convert_to_tensor(self.ema_pending)
            momentum = self.current_momentum()
            self._blend_target(ops.where(pending > 0, momentum, ops.ones_like(momentum)))
            self.ema_updates.assign(self.ema_updates + pending)
            self.ema_pending.assign(ops.zeros_like(pending))

    def _ema_in_step(self):
        """Start of a training step: apply the pending update, then schedule this step's."""
        self._apply_pending_update()
        steps = self.accumulation_steps()
        if steps == 1:
            self.ema_pending.assign(1)
        else:
            micro = (self.accumulation_step + 1) % steps
            self.accumulation_step.assign(micro)
            self.ema_pending.assign(ops.cast(ops.equal(micro, 0), "int32"))

    def accumulation_steps(self):
        """Micro-batches per optimizer update of the compiled optimizer (1 if none)."""
        return _accumulation_steps(getattr(self, "optimizer", None))

    def ema_update_count(self):
        """EMA updates applied so far (python int; the schedule's next step)."""
        return int(ops.convert_to_numpy(self.ema_updates.value))

    def apply_pending_ema(self):
        """Apply the EMA update of the last optimizer step, if still pending.

        ``fit`` does it at the end of training and ``evaluate`` before it
        starts; call it after custom loops. Returns True if an update was
        applied.
        """
        if int(ops.convert_to_numpy(self.ema_pending.value)) == 0:
            return False
        self._apply_pending_update()
        return True

    def _warn_if_no_schedule(self):
        if self._warned_no_schedule or self.momentum_schedule()["total_steps"] > 0:
            return
        self._warned_no_schedule = True
        warnings.warn(
            "IJEPA.fit without a momentum schedule (no TargetEMA callback): the target "
            f"encoder follows the online encoder with the constant momentum "
            f"{_DEFAULT_MOMENTUM}. Pass callbacks=[TargetEMA()] for the paper's 0.996 -> 1.0 "
            "schedule, or IJEPA(..., momentum=m) to silence this warning.", stacklevel=2)

    # -------------------------------------------------------------- training
    def compile(self, *args, jit_compile="auto", **kwargs):
        """``keras.Model.compile``; ``jit_compile="auto"`` also means XLA on a CPU-only tensorflow.

        Keras' "auto" turns XLA off for tensorflow when no GPU is visible. This
        model's step is faster with it: vit_tiny/16, 96 px, batch 16, 1 thread,
        190 vs 240 ms CPU per step (backward 90 vs 150 ms);
        ``benchmarks/profile_train_step.py --backends tensorflow --jit-compile true``.
        Each new batch shape compiles once (as on jax): prefer fixed or bucketed
        mask lengths. ``run_eagerly=True`` and tf.distribute keep Keras' choice.
        """
        if (jit_compile == "auto" and keras.backend.backend() == "tensorflow"
                and not kwargs.get("run_eagerly") and self._distribute_strategy is None):
            jit_compile = True
        super().compile(*args, jit_compile=jit_compile, **kwargs)
        self.accumulation_step.assign(0)  # a new optimizer counts micro-batches from 0

    def make_train_function(self, force=False):
        """Keras' train function; on jax and tensorflow one ``malloc_trim`` follows its first call.

        On jax's CPU the step is compiled with XLA's memory-ordered scheduler
        (``compat.jax_train_step_jit``): without it, blocks built
        with ``remat=True`` would save no memory there.

        The first call compiles, and XLA's compile leaves freed heap that glibc
        keeps mapped: releasing it once cuts vit_tiny's steady resident memory
        by about 300 MiB on jax and 260 MiB on tensorflow
        (``compat.release_heap_after_first_call``).
        """
        fresh = force or self.train_function is None
        step = jax_train_step_jit(self) if fresh else None
        if step is not None:  # jax on CPU: Keras' step with the memory-ordered scheduler
            self.train_function = self._make_function(step)
        else:
            super().make_train_function(force=force)
        if fresh:
            self.train_function = release_heap_after_first_call(self.train_function)
        return self.train_function

    def compile_from_config(self, config):
        """As ``keras.Model.compile_from_config`` (needed since ``compile`` is overridden)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            **kwargs):
        """``keras.Model.fit`` with the EMA bookkeeping of the module docstring.

        On a :class:`MaskedImageDataset` it also sets the dataset's epoch to
        ``fit``'s at every epoch begin (so ``initial_epoch=done`` continues
        its shuffle and mask streams), re-raises a reader error as raised,
        and defaults ``shuffle`` to False: the dataset shuffles itself,
        reproducibly, while ``fit``'s shuffle would reorder its batches with
        Python's global random state (``shuffle=True`` is refused).
        """
        kwargs.update(y=y, batch_size=batch_size, epochs=epochs, verbose=verbose)
        callbacks = _first(callbacks, _FitHooks(), self)
        if not isinstance(x, MaskedImageDataset):
            return super().fit(x, callbacks=callbacks, **kwargs)
        if kwargs.setdefault("shuffle", False):
            raise ValueError(
                "Invalid value for argument `shuffle`. Expected False with a MaskedImageDataset "
                "(it shuffles itself from its seed and the epoch: pass shuffle=True to "
                "MaskedImageDataset instead). Received: shuffle=True")
        callbacks = _first(callbacks, x.epoch_callback(), self)
        with x.reader_errors_unwrapped():
            return super().fit(x, callbacks=callbacks, **kwargs)

    def evaluate(self, *args, **kwargs):
        """``keras.Model.evaluate`` on the current target (a pending update applied first)."""
        self.apply_pending_ema()
        return super().evaluate(*args, **kwargs)

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or any(k not in inputs for k in _REQUIRED_KEYS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"Invalid value for argument `inputs`. Expected a dict with keys {BATCH_KEYS} "
                f"(the *_valid ones optional). Received: {got}")
        images, context, targets = inputs["images"], inputs["context"], inputs["targets"]
        context_valid, targets_valid = inputs.get("context_valid"), inputs.get("targets_valid")
        if training:
            self._ema_in_step()
        # Targets in float32 (the official layer_norm runs in float32 under autocast).
        target_tokens = ops.cast(ops.stop_gradient(self.target_encoder(images)), "float32")
        target_blocks = make_targets(target_tokens, ops.cast(targets, "int32"),
                                     eps=self.target_eps, xp=ops)
        context_tokens = self.encoder(images, indices=context, valid=context_valid)
        predictions = self.predictor(context_tokens, context, targets,
                                     context_valid=context_valid, targets_valid=targets_valid)
        return {"predictions": predictions, "targets": ops.stop_gradient(target_blocks)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The JEPA loss of ``y_pred`` over the valid target tokens of ``x``."""
        valid = x.get("targets_valid") if isinstance(x, dict) else None
        if valid is not None:
            valid = ops.cast(valid, "bool")
        return jepa_loss(
            ops.cast(y_pred["predictions"], "float32"), ops.cast(y_pred["targets"], "float32"),
            valid=valid, loss=self.loss_type, reduction=self.reduction, xp=ops)

    def features(self, images, pooled=True):
        """Frozen target-encoder features: ``(B, D)`` mean-pooled, or ``(B, N, D)``."""
        tokens = self.target_encoder(images)
        return ops.mean(tokens, axis=1) if pooled else tokens

    # --------------------------------------------------------- serialization
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "loss": self.loss_type,
            "reduction": self.reduction,
            "target_eps": self.target_eps,
            "momentum": self.momentum,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["predictor"] = keras.saving.deserialize_keras_object(config["predictor"])
        return cls(**config)
