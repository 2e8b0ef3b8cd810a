"""``SIGReg``: LeJEPA's regularizer as a Keras layer that draws its own directions.

The statistic is :func:`jepa_components.regularizers.sigreg` (the reference
``SlicingUnivariateTest(EppsPulley())`` of rbalestr-lab/lejepa); this layer
adds the part that needs framework state: ``num_slices`` new random unit
directions at every call, from a ``keras.random.SeedGenerator`` whose state
is a variable of the layer. So the directions are the same on every device
of a data-parallel run without communication, and a model loaded from a
``.keras`` file continues the same sequence (the reference seeds a
``torch.Generator`` with a step counter all-reduced across ranks).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_int, check_seed
from jepa_components.regularizers import epps_pulley_weights, sigreg

__all__ = ["SIGReg"]


@keras.saving.register_keras_serializable(package="jepa_components")
class SIGReg(keras.layers.Layer):
    """Sketched Isotropic Gaussian Regularization of ``(..., N, D)`` embeddings.

    Args:
        num_slices: directions drawn per call (paper 1024; the reference's
            small-data recipe 256).
        t_max, num_knots: the Epps-Pulley integration range and knots
            (reference 3, 17).
        seed: None or int >= 0, the seed of the directions' generator (None: 0,
            so every process draws the same directions).

    Call: ``sigreg_layer(embeddings)`` with ``embeddings`` ``(..., N, D)``
    (samples on axis -2; leading axes such as views are averaged over) ->
    scalar float32. Each call draws new directions (one call per training
    step).

    Example:
        >>> import numpy as np
        >>> layer = SIGReg(num_slices=64, seed=0)
        >>> gaussian = np.random.default_rng(0).standard_normal((256, 8)).astype("float32")
        >>> bool(layer(gaussian) < 2.0), bool(layer(np.ones((256, 8), "float32")) > 100.0)
        (True, True)
    """

    def __init__(
        self,
        num_slices: int = 256,
        t_max: float = 3.0,
        num_knots: int = 17,
        seed: int | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("dtype", "float32")  # the statistic in float32 under mixed precision
        super().__init__(**kwargs)
        self.num_slices = check_int("num_slices", num_slices, low=1)
        epps_pulley_weights(t_max, num_knots)  # validates both
        self.t_max, self.num_knots = float(t_max), int(num_knots)
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(0 if self.seed is None else self.seed)
        self.built = True

    def directions(self, width: int) -> Any:
        """``(width, num_slices)`` unit directions; new ones at every call."""
        a = keras.random.normal((width, self.num_slices), seed=self.seed_generator)
        return a / ops.sqrt(ops.sum(ops.square(a), axis=0, keepdims=True))

    def call(self, embeddings: Any) -> Any:
        embeddings = ops.cast(embeddings, "float32")
        return sigreg(
            embeddings,
            self.directions(embeddings.shape[-1]),
            t_max=self.t_max,
            num_knots=self.num_knots,
            xp=ops,
        )

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return ()

    # The seed generator's state is not among a layer's saved variables: save it
    # here, so a loaded model continues the same sequence of directions.
    def save_own_variables(self, store: Any) -> None:
        store["0"] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store: Any) -> None:
        if list(store.keys()) != ["0"]:
            raise ValueError(
                f"SIGReg layer '{self.name}': expected one saved variable (the state of "
                f"its directions' seed generator). Received: {sorted(store.keys())}"
            )
        self.seed_generator.state.assign(store["0"])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_slices": self.num_slices,
            "t_max": self.t_max,
            "num_knots": self.num_knots,
            "seed": self.seed,
        }
