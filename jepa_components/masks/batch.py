"""MaskBatch: the padded index form of a batch of context/target masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskBatch:
    """Context and target patch indices for a batch, padded to fixed lengths.

    Attributes:
        context: ``(B, Kc) int32`` patch indices seen by the context encoder,
            sorted ascending within a row; padding slots hold ``0``.
        context_valid: ``(B, Kc) bool``, False marks padding.
        targets: ``(B, M, Kt) int32`` patch indices of the ``M`` target blocks,
            sorted ascending within a block; padding slots hold ``0``.
        targets_valid: ``(B, M, Kt) bool``, False marks padding.
        grid_size: ``(H, W)`` of the patch grid, index ``i = row * W + col``; or
            ``(T, H, W)`` for video, index ``i = (t * H + row) * W + col``.
        context_boxes: optional ``(B, 4) int32`` ``(top, left, height, width)``
            of the context block before target removal (block samplers only).
        target_boxes: optional ``(B, M, 4) int32`` boxes of the target blocks.

    Example:
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> batch = MultiBlockMaskSampler(grid_size=(14, 14), seed=0).sample(2)
        >>> ctx, tgt = batch.to_dense()
        >>> ctx.shape, tgt.shape
        ((2, 14, 14), (2, 4, 14, 14))
    """

    context: np.ndarray
    context_valid: np.ndarray
    targets: np.ndarray
    targets_valid: np.ndarray
    grid_size: tuple[int, ...]
    context_boxes: np.ndarray | None = None
    target_boxes: np.ndarray | None = None

    def __post_init__(self):
        b = self.context.shape[0]
        if self.context.ndim != 2 or self.context_valid.shape != self.context.shape:
            raise ValueError(
                "`context` must be (B, Kc) with `context_valid` of the same shape. "
                f"Received: {self.context.shape} and {self.context_valid.shape}"
            )
        if (
            self.targets.ndim != 3
            or self.targets.shape[0] != b
            or self.targets_valid.shape != self.targets.shape
        ):
            raise ValueError(
                "`targets` must be (B, M, Kt) with `targets_valid` of the same shape "
                f"and B={b}. Received: {self.targets.shape} and {self.targets_valid.shape}"
            )

    @property
    def batch_size(self) -> int:
        return int(self.context.shape[0])

    @property
    def num_targets(self) -> int:
        return int(self.targets.shape[1])

    def __len__(self) -> int:
        return self.batch_size

    def as_dict(self) -> dict[str, np.ndarray]:
        """The four arrays under the keys of a training batch dict."""
        return {
            "context": self.context,
            "context_valid": self.context_valid,
            "targets": self.targets,
            "targets_valid": self.targets_valid,
        }

    def to_dense(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean grids: context ``(B, *grid_size)`` and targets ``(B, M, *grid_size)``."""
        n = int(np.prod(self.grid_size))
        b, m = self.batch_size, self.num_targets
        ctx = np.zeros((b, n), dtype=bool)
        rows = np.broadcast_to(np.arange(b)[:, None], self.context.shape)
        ctx[rows[self.context_valid], self.context[self.context_valid]] = True
        tgt = np.zeros((b * m, n), dtype=bool)
        t_idx = self.targets.reshape(b * m, -1)
        t_val = self.targets_valid.reshape(b * m, -1)
        rows = np.broadcast_to(np.arange(b * m)[:, None], t_idx.shape)
        tgt[rows[t_val], t_idx[t_val]] = True
        return ctx.reshape(b, *self.grid_size), tgt.reshape(b, m, *self.grid_size)
