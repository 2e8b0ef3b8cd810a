"""safetensors files, read and written without the ``safetensors`` package or torch.

The format is an 8-byte little-endian header length, a JSON header
(``{name: {"dtype", "shape", "data_offsets"}}``, plus an optional
``__metadata__``) and the raw little-endian arrays. Reading memory-maps the
file; ``bfloat16`` tensors come back as float32 (exactly).
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jepa_components._images import open_regular_file

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
MAX_NDIM = 32


def _refuse_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate names {sorted({k for k in keys if keys.count(k) > 1})[:5]}")
    return dict(pairs)


def _size(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_header(raw: bytes, where: str) -> dict[str, Any]:
    try:
        header = json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except RecursionError:
        raise ValueError(f"{where}: its safetensors header nests too deeply: refused.") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, duplicates
        raise ValueError(
            f"{where} is not a safetensors file: its header is not valid JSON ({error})."
        ) from None
    if not isinstance(header, dict):
        raise ValueError(
            f"{where} is not a safetensors file: its header is a JSON "
            f"{type(header).__name__}, not an object."
        )
    return header


def _entry(name: str, info: Any, where: str) -> tuple[str, tuple[int, ...], int, int]:
    """``(dtype name, shape, begin, end)`` of one header entry, every field checked."""
    problem = None
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        problem = "expected exactly the fields dtype, shape and data_offsets"
    elif info["dtype"] not in _ST_DTYPES:
        problem = f"unsupported dtype (supported: {sorted(_ST_DTYPES)})"
    elif not isinstance(info["shape"], list) or not all(_size(n) for n in info["shape"]):
        problem = "the shape must be a list of integers >= 0"
    elif len(info["shape"]) > MAX_NDIM:
        problem = f"more than {MAX_NDIM} dimensions"
    elif (
        not isinstance(info["data_offsets"], list)
        or len(info["data_offsets"]) != 2
        or not all(_size(n) for n in info["data_offsets"])
    ):
        problem = "data_offsets must be two integers >= 0"
    if problem is not None:
        raise ValueError(
            f"{where}: tensor `{name}` has a malformed header entry "
            f"{reprlib.repr(info)}: {problem}."
        )
    begin, end = info["data_offsets"]
    return info["dtype"], tuple(info["shape"]), begin, end


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: np.ndarray}`` of a ``.safetensors`` file (memory-mapped).

    bfloat16 tensors come back as float32 (exactly); other dtypes as stored.
    The header is checked as the ``safetensors`` package checks it, before
    any tensor is made: valid JSON (an object; no duplicate names), known
    dtypes, integer shapes and offsets, every tensor's byte size equal to
    its shape's, and the tensors covering the data exactly (no overlap, no
    gap, nothing after). A file that is not a regular file (a FIFO, a
    device) is refused without being opened for reading.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file, damaged or truncated; the
            message names the file (and the tensor).

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x.safetensors")
        >>> write_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
        >>> read_safetensors(path)["w"].tolist()
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    where = repr(os.fspath(path))
    with open_regular_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        length = int.from_bytes(handle.read(8), "little") if size >= 8 else -1
        if not 2 <= length <= min(size - 8, _MAX_HEADER):
            raise ValueError(
                f"{where} is not a safetensors file, or it is truncated ({size} bytes; "
                f"the header declares {length} bytes)."
            )
        header = _parse_header(handle.read(length), where)
        data = (
            np.memmap(handle, dtype=np.uint8, mode="r", offset=8 + length)
            if size > 8 + length
            else np.zeros(0, np.uint8)
        )
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise ValueError(f"{where}: its `__metadata__` must map strings to strings.")
    entries = {name: _entry(name, info, where) for name, info in header.items()}
    covered = 0
    for name, (kind, shape, begin, end) in sorted(entries.items(), key=lambda e: e[1][2:]):
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(_ST_DTYPES[kind]).itemsize
        if end - begin != nbytes or end > len(data):
            raise ValueError(
                f"{where}: tensor `{name}` (shape {shape}, {kind}) needs {nbytes} bytes but "
                f"its offsets are {begin}..{end} of {len(data)} data bytes: truncated file?"
            )
        if begin != covered:
            raise ValueError(
                f"{where}: tensor `{name}` starts at byte {begin}, where the tensors before "
                f"it end at {covered}: "
                + ("overlapping tensors." if begin < covered else "a gap between tensors.")
            )
        covered = end
    if covered != len(data):
        raise ValueError(
            f"{where}: the tensors end at byte {covered} of {len(data)} data bytes: "
            "trailing data is refused."
        )
    tensors = {}
    for name, (kind, shape, begin, end) in entries.items():
        array = data[begin:end].view(_ST_DTYPES[kind]).reshape(shape)
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
