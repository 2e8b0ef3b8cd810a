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

import io
import os
import pickle
import reprlib
import zipfile
from collections import OrderedDict
from types import ModuleType
from typing import Any

import numpy as np

from jepa_components._images import open_regular_file
from jepa_components.backends.keras.convert.pickle_scan import scan_pickle

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
MAX_NDIM = 32  # dimensions of one tensor
MAX_ELEMENTS = 1 << 40  # elements of one tensor (a stride-0 view may declare many)
MAX_PICKLE_BYTES = 256 << 20  # data.pkl: the tensors live outside it
MAX_BYTEORDER_BYTES = 16  # "little" or "big"
_CHUNK = 1 << 20


class _Refused(pickle.UnpicklingError):
    """A global or persistent id outside the allowlist."""


class _Storage:
    """One storage of the archive: its dtype, its name, its size in bytes and its bytes.

    ``data`` is a 1-D ``uint8`` view of the memory map for a stored entry
    (what ``torch.save`` writes); a deflated entry is inflated the first
    time a tensor needs it (``inflate``), never past ``nbytes``.
    """

    def __init__(self, type_name, name, nbytes, data=None, inflate=None):
        self.type_name, self.name, self.nbytes = type_name, name, nbytes
        self._data, self._inflate = data, inflate

    @property
    def data(self):
        if self._data is None:
            self._data = self._inflate()
        return self._data


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _overlaps(size, stride):
    """True when two indices of ``(size, stride)`` reach one element (stride 0 included)."""
    reach = 0  # the largest offset the dimensions with smaller strides reach
    for step, count in sorted((s, n) for n, s in zip(size, stride) if n > 1):
        if step <= reach:
            return True
        reach += (count - 1) * step
    return False


def _rebuild(storage, offset, size, stride, dtype, where):
    """``(size)`` array: ``storage`` viewed with element ``offset`` and ``stride``.

    Contiguous tensors are read-only views of the file; other dense layouts
    copies (at most the storage's size); overlapping ones (stride 0,
    ``expand``) read-only views, never materialized.
    """
    itemsize = np.dtype(dtype).itemsize
    place = f"{where}: a tensor of the storage {storage.name!r}"
    if not (
        _is_int(offset)
        and isinstance(size, tuple)
        and isinstance(stride, tuple)
        and all(_is_int(n) for n in size + stride)
    ):
        raise ValueError(
            f"{place} has a malformed size {reprlib.repr(size)}, stride "
            f"{reprlib.repr(stride)} or offset {reprlib.repr(offset)}."
        )
    if len(size) > MAX_NDIM or len(size) != len(stride):
        raise ValueError(
            f"{place} has {len(size)} sizes and {len(stride)} strides (at most {MAX_NDIM})."
        )
    if min(size, default=0) < 0 or min(stride, default=0) < 0 or offset < 0:
        raise ValueError(
            f"{place} has size {size}, stride {stride} and offset {offset}: negative "
            "values are malformed."
        )
    numel = storage.nbytes // itemsize
    count = int(np.prod(size, dtype=object))
    if count > MAX_ELEMENTS:
        raise ValueError(f"{place} declares {count} elements (size {size}): refused.")
    wide = storage.type_name == "BFloat16Storage"  # the top half of a float32
    if count == 0:
        return np.zeros(size, dtype=np.float32 if wide else dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= numel:
        raise ValueError(
            f"{place} (size {size}, stride {stride}, offset {offset}) reaches past its "
            f"storage of {numel} elements: truncated file?"
        )
    flat = storage.data[: numel * itemsize].view(dtype)
    if wide:  # widened where the tensor lies, at most the storage's size
        flat = np.asarray(flat[offset : last + 1].astype(np.uint32) << 16).view(np.float32)
        offset, itemsize = 0, 4
    array = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    if not array.flags.c_contiguous and not _overlaps(size, stride):
        array = array.copy()  # contiguous tensors stay views of the file
    elif wide and array.flags.c_contiguous:
        array = flat[:count].reshape(size)  # the owned float32 array, writable as before
    return array


class _Unpickler(pickle.Unpickler):
    """``data.pkl`` of one archive, with tensors rebuilt as NumPy arrays."""

    def __init__(self, handle, archive, prefix, mapped, where):
        super().__init__(handle)
        self.archive, self.prefix, self.mapped, self.where = archive, prefix, mapped, where
        self.storages = {}

    def _storage(self, key, type_name, declared):
        name = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise ValueError(
                f"{self.where}: the archive misses the storage {name!r}: truncated file?"
            ) from None
        if info.compress_type != zipfile.ZIP_STORED:  # torch.save never deflates
            if info.file_size > declared:
                raise ValueError(
                    f"{self.where}: the deflated storage {name!r} declares {info.file_size} "
                    f"bytes, more than the {declared} its tensors' storage holds: refused "
                    "without inflating it (a decompression bomb?)."
                )
            return _Storage(
                type_name,
                name,
                info.file_size,
                inflate=lambda: np.frombuffer(
                    read_entry(self.archive, info, info.file_size, self.where), np.uint8
                ),
            )
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
        return _Storage(
            type_name, name, info.file_size, data=self.mapped[start : start + info.file_size]
        )

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], str)
            and pid[1] in STORAGE_DTYPES
            and isinstance(pid[2], (str, int))
            and _is_int(pid[4])
            and pid[4] >= 0
        ):
            raise _Refused(f"unsupported persistent id {reprlib.repr(pid)}")
        type_name, key = pid[1], str(pid[2])
        if key not in self.storages:
            declared = pid[4] * np.dtype(STORAGE_DTYPES[type_name]).itemsize
            self.storages[key] = self._storage(key, type_name, declared)
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


def read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str
) -> bytearray:
    """The bytes of one zip entry, inflated by chunks, never more than ``limit``; CRC checked.

    Refused (``ValueError`` naming ``where`` and the entry): an entry that
    declares or inflates to more than ``limit`` bytes, fewer bytes than it
    declares, a bad CRC-32, an unsupported compression.
    """
    if info.file_size > limit:
        raise ValueError(
            f"{where}: the zip entry {info.filename!r} declares {info.file_size} bytes, more "
            f"than the {limit} it may hold: refused without reading it."
        )
    buffer, total = bytearray(info.file_size), 0
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(min(_CHUNK, info.file_size - total + 1))
                if not chunk:
                    break
                if total + len(chunk) > info.file_size:
                    raise ValueError(
                        f"{where}: the zip entry {info.filename!r} inflates past the "
                        f"{info.file_size} bytes it declares (a decompression bomb?): refused."
                    )
                buffer[total : total + len(chunk)] = chunk
                total += len(chunk)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, RuntimeError) as error:
        raise ValueError(
            f"{where}: the zip entry {info.filename!r} is damaged ({error}); truncated file?"
        ) from None
    if total != info.file_size:
        raise ValueError(
            f"{where}: the zip entry {info.filename!r} holds {total} bytes, not the "
            f"{info.file_size} it declares: truncated file?"
        )
    return buffer


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
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file at {os.fspath(path)!r}")
    with open_regular_file(path) as handle:  # never a FIFO or a device
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
    with open_regular_file(path) as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
            raise ValueError(
                f"Could not read {where}: not a readable zip archive ({error}); truncated file?"
            ) from None
        with archive:
            return _read_archive(archive, handle, where)


def _read_archive(archive, handle, where):
    name = _data_pickle(archive, where)
    prefix = name[: -len("data.pkl")]
    if f"{prefix}byteorder" in archive.namelist():
        info = archive.getinfo(f"{prefix}byteorder")
        if read_entry(archive, info, MAX_BYTEORDER_BYTES, where).strip() == b"big":
            raise ValueError(
                f"{where} was written on a big-endian machine; read it with torch.load."
            )
    data = read_entry(archive, archive.getinfo(name), MAX_PICKLE_BYTES, where)
    scan_pickle(data, where)  # bombs refused before anything is built
    mapped = np.memmap(handle, dtype=np.uint8, mode="r")
    try:
        return _Unpickler(io.BytesIO(data), archive, prefix, mapped, where).load()
    except _Refused as error:
        raise ValueError(
            f"{where} holds objects a weights-only reader refuses ({error}). If you "
            "trust the file, read it with torch.load(weights_only=False)."
        ) from None
    except ValueError:
        raise  # ours: says what is wrong
    except RecursionError:
        raise ValueError(f"Could not read {where}: its pickle nests too deeply.") from None
    except Exception as error:  # a damaged pickle raises many types
        raise ValueError(
            f"Could not read {where}: its pickle is damaged "
            f"({type(error).__name__}: {reprlib.repr(str(error))}); truncated file?"
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
