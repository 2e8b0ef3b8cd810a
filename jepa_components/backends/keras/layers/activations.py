"""Activations of the MLP hidden layer, by name (``ACTIVATIONS``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

__all__ = ["ACTIVATIONS"]


def _gelu(x: Any) -> Any:
    return ops.gelu(x, approximate=False)


def _gelu_tanh(x: Any) -> Any:
    return ops.gelu(x, approximate=True)


def _quick_gelu(x: Any) -> Any:
    return x * ops.sigmoid(1.702 * x)


# name -> function of the MLP hidden layer. Hugging Face ``hidden_act``
# equivalents: "gelu" = "gelu"; "gelu_tanh" = "gelu_new" / "gelu_pytorch_tanh"
# / "gelu_fast" (same formula); "quick_gelu", "relu", "silu" / "swish" = same name.
ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "gelu": _gelu,  # exact erf GELU, torch.nn.GELU(): the official I-JEPA one
    "gelu_tanh": _gelu_tanh,  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    "quick_gelu": _quick_gelu,  # x * sigmoid(1.702 x)
    "relu": ops.relu,
    "silu": ops.silu,  # x * sigmoid(x)
    "swish": ops.silu,
}
