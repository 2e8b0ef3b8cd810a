"""Reading ``torch.save`` files without torch: tensors come back as NumPy arrays.

``torch.save`` (torch >= 1.6) writes a zip archive: ``<name>/data.pkl``, a
pickle whose tensors point, through pickle "persistent ids", at raw storages
``<name>/data/<key>``, plus ``<name>/byteorder``. :func:`read_torch_save`
unpickles ``data.pkl`` with an allowlist (the containers, tensors, parameters
and storage types of state dicts and optimizer states: a subset of what
``torch.load(weights_only=True)`` accepts; any other global is refused) and
builds every tensor as a view of one memory map of the file.

So official I-JEPA checkpoints and ``pytorch_model.bin`` files load on every
Keras backend without torch installed, and a tensorflow process never has to
import torch: torch imported after tensorflow in one process can make
tensorflow abort or segfault (see ``tests/backends/conftest.py``).

Files from torch < 1.6 (a bare pickle, not a zip) and files holding other
objects (``weights_only=False`` territory) still need ``torch.load``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["load_torch_file", "read_torch_save"]

ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"  # torch.save >= 1.6, older torch
INSTALL_HINT = 'pip install "jepa-components[torch]"'

# torch storage classes -> numpy dtypes (BFloat16 is read as uint16, then widened).
STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16",
    "UntypedStorage": "u1",
}
# torch dtypes named by _rebuild_tensor_v3 (the dtypes added after torch 2.0).
V3_DTYPES = {"uint16": "u2", "uint32": "u4", "uint64": "u8"}
_BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex}


class _Refused(pickle.UnpicklingError):
    """A global or persistent id outside the allowlist."""


class _Storage:
    """One storage of the archive: its dtype and a 1-D view of its bytes."""

    def __init__(self, type_name, data):
        self.type_name = type_name
        self.data = data  # (numel * itemsize,) uint8


def _rebuild(storage, offset, size, stride, dtype, where):
    """``(size)`` array: ``storage`` viewed with element ``offset`` and ``stride``."""
    itemsize = np.dtype(dtype).itemsize
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    numel = len(storage.data) // itemsize
    if len(size) != len(stride) or min(size, default=1) < 0 or offset < 0:
        raise ValueError(
            f"{where}: a tensor with size {size}, stride {stride} and offset {offset} is malformed."
        )
    if 0 in size:
        array = np.zeros(size, dtype=dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= numel or min(stride, default=0) < 0:
            raise ValueError(
                f"{where}: a tensor (size {size}, stride {stride}, offset "
                f"{offset}) reaches past its storage of {numel} elements: "
                "truncated file?"
            )
        flat = storage.data[: numel * itemsize].view(dtype)
        array = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
        )
        if not array.flags.c_contiguous:  # contiguous tensors stay views of the file
            array = array.copy()
    if storage.type_name == "BFloat16Storage":  # the top half of a float32
        array = np.asarray(array.astype(np.uint32) << 16).view(np.float32)
    return array


class _Unpickler(pickle.Unpickler):
    """``data.pkl`` of one archive, with tensors rebuilt as NumPy arrays."""

    def __init__(self, handle, archive, prefix, mapped, where):
        super().__init__(handle)
        self.archive, self.prefix, self.mapped, self.where = archive, prefix, mapped, where
        self.storages = {}

    def _storage_bytes(self, key):
        name = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise ValueError(
                f"{self.where}: the archive misses the storage {name!r}: truncated file?"
            ) from None
        if info.compress_type != zipfile.ZIP_STORED:
            return np.frombuffer(self.archive.read(name), np.uint8)
        # Local header: 30 bytes, then the name and the extra field, then the data.
        header = self.mapped[info.header_offset : info.header_offset + 30]
        if len(header) < 30 or bytes(header[:4]) != ZIP_MAGIC:
            raise ValueError(f"{self.where}: the zip entry {name!r} is damaged.")
        start = (
            info.header_offset
            + 30
            + int.from_bytes(bytes(header[26:28]), "little")
            + int.from_bytes(bytes(header[28:30]), "little")
        )
        if start + info.file_size > len(self.mapped):
            raise ValueError(
                f"{self.where}: the storage {name!r} lies past the end of the file: truncated file?"
            )
        return self.mapped[start : start + info.file_size]

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and pid[1] in STORAGE_DTYPES
        ):
            raise _Refused(f"unsupported persistent id {pid!r}")
        type_name, key = pid[1], str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(type_name, self._storage_bytes(key))
        return self.storages[key]

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTINS:  # py3, protocol 2
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":  # bytes in protocol-2 pickles
            return lambda text, encoding="utf-8": text.encode(encoding)
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return name  # a storage type travels as its name (see persistent_load)
        if module == "torch" and name in V3_DTYPES:
            return np.dtype(V3_DTYPES[name])
        if module == "torch" and name == "Size":
            return tuple
        if module == "torch._utils":
            if name == "_rebuild_tensor_v2":
                return self._tensor_v2
            if name == "_rebuild_tensor_v3":
                return self._tensor_v3
            if name == "_rebuild_parameter":
                return lambda data, requires_grad, hooks: data
            if name == "_rebuild_parameter_with_state":
                return lambda data, requires_grad, hooks, state: data
        raise _Refused(f"refused global {module}.{name}")

    def _tensor_v2(
        self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None
    ):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("a tensor without a storage")
        return _rebuild(
            storage, offset, size, stride, STORAGE_DTYPES[storage.type_name], self.where
        )

    def _tensor_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
        if not isinstance(storage, _Storage) or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("a tensor without a storage or a dtype")
        return _rebuild(storage, offset, size, stride, dtype, self.where)


def import_torch(purpose: str) -> ModuleType:
    """``torch``, or an ``ImportError`` that says what needed it and how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs PyTorch, which is not installed (whatever the Keras "
            f"backend). Install it with: {INSTALL_HINT}"
        ) from error
    return torch


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            "Invalid value for argument `path`. Expected a str or path-like. "
            f"Received: path={path!r}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No file at {os.fspath(path)!r}")
    with open(path, "rb") as handle:
        return handle.read(4)


def _data_pickle(archive, where):
    names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(names) != 1:
        raise ValueError(
            f"{where} is a zip file but not a torch.save archive: expected one "
            f"'<name>/data.pkl' entry, found {len(names)}."
        )
    return names[0]


def read_torch_save(path: str | os.PathLike) -> Any:
    """Read a ``torch.save`` file (torch >= 1.6) without torch.

    Tensors and ``nn.Parameter`` values come back as NumPy arrays (read-only
    views of a memory map of the file when stored contiguously, else copies;
    bfloat16 widened exactly to float32; ``torch.Size`` as a tuple); dicts, ``OrderedDict``,
    lists, tuples, sets, numbers, strings, bytes and None as themselves.
    Everything else a pickle can name is refused: a subset of what
    ``torch.load(weights_only=True)`` accepts (no sparse or quantized tensors,
    no ``torch.device``).

    Args:
        path: str or path-like of a file ``torch.save`` wrote.

    Returns:
        The saved object.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a zip ``torch.save`` archive (a torch < 1.6 pickle
            names ``torch.load`` as the way out), a refused global (named),
            a truncated or damaged file.

    Example (the file written by torch here; reading it needs no torch):
        >>> import tempfile, torch
        >>> path = os.path.join(tempfile.mkdtemp(), "state.pth")
        >>> torch.save({"w": torch.arange(6.0).reshape(2, 3).T, "step": 7}, path)
        >>> state = read_torch_save(path)
        >>> state["w"].tolist(), state["w"].dtype, state["step"]
        ([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]], dtype('float32'), 7)
    """
    head = _check_path(path)
    where = repr(os.fspath(path))
    if head != ZIP_MAGIC:
        raise ValueError(
            f"{where} is not a zip torch.save archive (torch >= 1.6 writes one). A file from "
            "an older torch is a bare pickle: read it with torch.load."
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(
            f"Could not read {where}: not a readable zip archive ({error}); truncated file?"
        ) from None
    with archive:
        name = _data_pickle(archive, where)
        prefix = name[: -len("data.pkl")]
        if (
            f"{prefix}byteorder" in archive.namelist()
            and archive.read(f"{prefix}byteorder").strip() == b"big"
        ):
            raise ValueError(
                f"{where} was written on a big-endian machine; read it with torch.load."
            )
        mapped = np.memmap(path, dtype=np.uint8, mode="r")
        try:
            with archive.open(name) as handle:
                return _Unpickler(handle, archive, prefix, mapped, where).load()
        except _Refused as error:
            raise ValueError(
                f"{where} holds objects a weights-only reader refuses ({error}). If you "
                "trust the file, read it with torch.load(weights_only=False)."
            ) from None
        except ValueError:
            raise  # ours: says what is wrong
        except Exception as error:  # a damaged pickle raises many types
            raise ValueError(
                f"Could not read {where}: its pickle is damaged "
                f"({type(error).__name__}: {error}); truncated file?"
            ) from None


def load_torch_file(path: str | os.PathLike, weights_only: bool = True) -> Any:
    """A ``torch.save`` file's object, read without torch whenever that is possible.

    A zip archive (torch >= 1.6) read weights-only goes through
    :func:`read_torch_save` (tensors as NumPy arrays, torch never imported).
    ``weights_only=False`` and the bare pickles of torch < 1.6 go through
    ``torch.load(path, map_location="cpu")`` (tensors as torch tensors), which
    needs torch.

    Args:
        path: str or path-like.
        weights_only: True (default) refuses objects that would run code when
            unpickled; False trusts the file (torch needed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a ``torch.save`` file, truncated, or refused objects.
        ImportError: the torch path without torch installed.
    """
    head = _check_path(path)
    where = repr(os.fspath(path))
    if head == ZIP_MAGIC and weights_only:
        return read_torch_save(path)
    if not (head == ZIP_MAGIC or head[:1] == PICKLE_MAGIC):
        raise ValueError(
            f"{where} is not a PyTorch file: torch.save writes a zip archive (or, before "
            f"torch 1.6, a pickle); this file starts with {head!r}."
        )
    torch = import_torch(
        f"Reading {where} with torch.load (a torch < 1.6 file, or weights_only=False)"
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=bool(weights_only))
    except Exception as error:  # torch raises many types on corrupt files
        hint = (
            " If you trust this file, pass weights_only=False."
            if "weights_only" in str(error).lower()
            else ""
        )
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(
            f"Could not read {where} with torch.load: the file is not a "
            f"torch.save file or is truncated ({type(error).__name__}: "
            f"{first_line}).{hint}"
        ) from error
