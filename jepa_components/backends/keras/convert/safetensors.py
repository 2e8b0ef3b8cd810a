"""safetensors files, read and written without the ``safetensors`` package or torch.

The format is an 8-byte little-endian header length, a JSON header
(``{name: {"dtype", "shape", "data_offsets"}}``, plus an optional
``__metadata__``) and the raw little-endian arrays. Reading memory-maps the
file; ``bfloat16`` tensors come back as float32 (exactly).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["read_safetensors", "write_safetensors"]

_ST_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_NP_TO_ST = {np.dtype(v).str: k for k, v in _ST_DTYPES.items() if k != "BF16"}
_MAX_HEADER = 100 << 20


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: np.ndarray}`` of a ``.safetensors`` file (memory-mapped).

    bfloat16 tensors come back as float32 (exactly); other dtypes as stored.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x.safetensors")
        >>> write_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
        >>> read_safetensors(path)["w"].tolist()
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    where = repr(os.fspath(path))
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little") if size >= 8 else -1
        if not 2 <= length <= min(size - 8, _MAX_HEADER):
            raise ValueError(
                f"{where} is not a safetensors file, or it is truncated ({size} bytes)."
            )
        try:
            header = json.loads(handle.read(length))
        except ValueError as error:
            raise ValueError(
                f"{where} is not a safetensors file: its header is not JSON ({error})."
            ) from None
    data = (
        np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)
        if size > 8 + length
        else np.zeros(0, np.uint8)
    )
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            kind, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            dtype = np.dtype(_ST_DTYPES[kind])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{where}: tensor `{name}` has an unsupported or malformed header entry {info!r}."
            ) from None
        size_ok = end - begin == int(np.prod(shape)) * dtype.itemsize
        if not size_ok or not 0 <= begin <= end <= len(data):
            raise ValueError(
                f"{where}: tensor `{name}` lies outside the file (offsets "
                f"{begin}..{end} of {len(data)} data bytes): truncated file?"
            )
        array = data[begin:end].view(dtype).reshape(shape)
        if kind == "BF16":  # the top half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
    return tensors


def write_safetensors(
    path: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``{name: np.ndarray}`` as a ``.safetensors`` file.

    Args:
        path: str or path-like.
        tensors: mapping of names to numpy arrays (float16/32/64, ints, bool).
        metadata: None or ``{str: str}`` (transformers wants
            ``{"format": "pt"}``).
    """
    header: dict[str, dict[str, Any]] = {}
    arrays: list[np.ndarray] = []
    offset = 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        array = np.ascontiguousarray(value)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        kind = _NP_TO_ST.get(array.dtype.str)
        if kind is None:
            raise ValueError(f"Cannot write `{name}` of dtype {array.dtype} as safetensors.")
        header[name] = {
            "dtype": kind,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        arrays.append(array)
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little"))
        handle.write(text)
        for array in arrays:
            handle.write(array.tobytes())
