"""Data-parallel I-JEPA training with ``keras.distribution`` (jax backend).

``keras.distribution.DataParallel`` replicates every variable on all
devices and splits each input batch along its first axis; ``fit`` then
averages the gradients over the devices. Nothing in :class:`IJEPA` needs to
change: the target-encoder EMA is an elementwise update of replicated
variables, so it stays exact (the same numbers as one device, to float
rounding of the gradient all-reduce). ``keras.distribution`` is implemented
for the jax backend only; on torch and tensorflow :func:`data_parallel`
refuses with a clear error instead of silently training on one device.

Several hosts: start every process with ``keras.distribution.initialize()``
(it calls ``jax.distributed.initialize``; on a cluster with a launcher such
as SLURM or Cloud TPU the arguments are found automatically, else pass
``job_addresses``, ``num_processes`` and ``process_id``) *before* building
the model, then call :func:`data_parallel`. Each process feeds its own
``global_batch / num_processes`` images; to keep the mask stream identical
to a one-process run, process ``p`` draws its rows of global batch ``k``
with ``sampler.sample(local_batch, start=k * global_batch + p * local_batch)``
(sample ``k`` of a stream never depends on how the stream is split; see
:func:`process_mask_start`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from jepa_components._validation import check_int, invalid

__all__ = ["data_parallel", "process_mask_start"]


def data_parallel(
    devices: Sequence[str] | None = None, global_batch_size: int | None = None
) -> Any:
    """Set a ``keras.distribution.DataParallel`` over ``devices`` and return it.

    Args:
        devices: None (every device jax sees: all local GPUs/TPUs, or the CPU
            devices made by ``XLA_FLAGS=--xla_force_host_platform_device_count=N``)
            or a list of device strings such as ``["gpu:0", "gpu:1"]``.
        global_batch_size: optional int; checked to be divisible by the
            number of devices (each device gets an equal share).

    Returns:
        The ``DataParallel`` distribution (already set globally; build the
        model after this call).

    Raises:
        ValueError: on a backend other than jax, or a batch size that does
            not split evenly over the devices.

    Example:
        >>> import keras
        >>> if keras.backend.backend() == "jax":
        ...     distribution = data_parallel()
        ...     keras.distribution.set_distribution(None)  # back to one device
    """
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            "Invalid value for argument `backend`. Expected KERAS_BACKEND=jax: "
            "keras.distribution (DataParallel) is implemented for the jax backend only. "
            f"Received: backend={backend!r}. Run with KERAS_BACKEND=jax, or train on one device."
        )
    if devices is None:
        devices = keras.distribution.list_devices()
    elif not isinstance(devices, (list, tuple)) or not devices:
        raise invalid("devices", "None or a non-empty list of device names", devices)
    count = len(devices)
    if global_batch_size is not None:
        global_batch_size = check_int("global_batch_size", global_batch_size, low=1)
        if global_batch_size % count:
            raise invalid(
                "global_batch_size",
                f"a multiple of the number of devices ({count})",
                global_batch_size,
            )
    distribution = keras.distribution.DataParallel(devices=list(devices))
    keras.distribution.set_distribution(distribution)
    return distribution


def process_mask_start(
    step: int, global_batch_size: int, process_index: int = 0, num_processes: int = 1
) -> int:
    """First stream index of this process's rows of global batch ``step``.

    ``sampler.sample(global_batch_size // num_processes, start=...)`` with
    this start gives every process its slice of the same global mask stream
    a single process would draw.

    Example:
        >>> process_mask_start(step=3, global_batch_size=64, process_index=1, num_processes=4)
        208
    """
    step = check_int("step", step, low=0)
    global_batch_size = check_int("global_batch_size", global_batch_size, low=1)
    num_processes = check_int("num_processes", num_processes, low=1)
    process_index = check_int("process_index", process_index, low=0, high=num_processes - 1)
    if global_batch_size % num_processes:
        raise invalid(
            "global_batch_size", f"a multiple of num_processes={num_processes}", global_batch_size
        )
    local = global_batch_size // num_processes
    return step * global_batch_size + process_index * local
