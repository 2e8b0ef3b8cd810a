"""The transformer MLP: Linear, activation, Linear (official ``MLP``)."""

from __future__ import annotations

from typing import Any

import keras

from jepa_components._validation import check_choice, check_float, check_int, check_seed
from jepa_components.backends.keras.layers.activations import ACTIVATIONS
from jepa_components.backends.keras.layers.initializers import (
    check_output_init_std,
    dense,
    derive_seed,
)

__all__ = ["MLP"]

_PACKAGE = "jepa_components"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MLP(keras.layers.Layer):
    """``fc1`` -> activation -> ``fc2``, as the official ``MLP``.

    ``activation`` is a name of ``ACTIVATIONS``. The default ``"gelu"`` is
    the exact (erf) GELU of ``torch.nn.GELU``, the official one;
    ``keras.ops.gelu`` defaults to the tanh approximation (``"gelu_tanh"``
    here), which differs by ~1e-3.

    Example:
        >>> import numpy as np
        >>> tuple(MLP(8, hidden_dim=32)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
        >>> MLP(8, hidden_dim=32, activation="gelu_tanh").get_config()["activation"]
        'gelu_tanh'
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        init_std: float = 0.02,
        output_init_std: float | None = None,
        activation: str = "gelu",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dim = check_int("dim", dim, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.output_init_std = check_output_init_std(output_init_std)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.seed = check_seed(seed)
        self._activation_fn = ACTIVATIONS[self.activation]
        out_std = self.init_std if self.output_init_std is None else self.output_init_std
        self.fc1 = dense(
            self.hidden_dim,
            std=init_std,
            seed=derive_seed(seed, 0),
            name="fc1",
            dtype=self.dtype_policy,
        )
        self.fc2 = dense(
            self.dim, std=out_std, seed=derive_seed(seed, 1), name="fc2", dtype=self.dtype_policy
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x: Any) -> Any:
        return self.fc2(self._activation_fn(self.fc1(x)))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            dim=self.dim,
            hidden_dim=self.hidden_dim,
            init_std=self.init_std,
            output_init_std=self.output_init_std,
            activation=self.activation,
            seed=self.seed,
        )
        return config
