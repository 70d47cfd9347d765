"""Restricted unpickling of StyleGAN pickles: plain data and tensors only, no code runs.

NVIDIA's pickles normally load by importing whatever globals the file names and by
``exec``-ing the network source stored inside them. Here ``find_class`` resolves only the
explicit allow-list below, each entry mapped to a data-only stand-in:

- ``torch_utils.persistence._reconstruct_persistent_obj`` -> ``PersistentObject`` (class name
  and the pickled ``__dict__``; the stored ``module_src`` is kept as text, never executed);
- ``dnnlib.tflib.network.Network`` -> ``TFNetwork`` (its pickled state);
- ``dnnlib.util.EasyDict`` -> ``EasyDict`` (a dict with attribute reads);
- torch tensor / parameter rebuilds and ``torch.storage._load_from_bytes``, whose payload (a
  legacy ``torch.save`` stream of one storage) is parsed here by another restricted
  unpickler plus the raw little-endian bytes;
- numpy ``dtype`` (numeric kinds only), scalars and arrays in both numpy 1.x
  (``numpy.core.*``) and numpy 2 (``numpy._core.*``) spellings;
- ``collections.OrderedDict``, ``builtins.set`` / ``frozenset`` / ``bytearray`` / ``complex``
  and ``_codecs.encode`` (bytes written with protocol 2).

Any other global raises ``UnsafeCheckpointError`` naming it before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch

from draggan.errors import CheckpointError, UnsafeCheckpointError

# torch.save's legacy (non-zip) stream: magic number and protocol version.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}


class MalformedPickleError(Exception):
    """Raised inside the unpickler when allowed globals receive nonsense; wrapped with the path."""


@dataclass
class PersistentObject:
    """An NVIDIA ``persistent_class`` instance, as data.

    ``state`` is the object's pickled ``__dict__`` (``_parameters``, ``_buffers``,
    ``_modules``, ``_init_kwargs`` and plain attributes); ``module_src`` is the source of
    the defining module, kept only as text to recognise the code base.
    """

    class_name: str
    state: dict[str, Any]
    module_src: str
    version: Any


class TFNetwork:
    """A ``dnnlib.tflib.network.Network`` from a TensorFlow pickle, as data (``state``)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise MalformedPickleError("a TensorFlow Network's state is not a dict")
        self.state = state


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict whose items read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


class _NdarrayType:
    """What ``numpy.ndarray`` resolves to: only accepted as ``_reconstruct``'s subtype."""


_NDARRAY = _NdarrayType()


class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to inside a storage stream: just a dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


# --------------------------------------------------------------------------- stand-ins


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
        raise MalformedPickleError("a persistent object without a state dict")
    if meta.get("type", "class") != "class":
        raise MalformedPickleError(f"persistent object of type {meta.get('type')!r}")
    return PersistentObject(
        class_name=str(meta.get("class_name", "")),
        state=dict(meta["state"]),
        module_src=str(meta.get("module_src", "")),
        version=meta.get("version"),
    )


def _check_numeric(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS:
        raise MalformedPickleError(f"numpy data of dtype {dtype!r} (only numeric data is read)")
    return dtype


def _np_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    if not isinstance(obj, str):
        raise MalformedPickleError(f"numpy dtype from {type(obj).__name__} (expected a name)")
    # copy=True always: pickle then calls __setstate__ on it, never on numpy's shared dtypes.
    return _check_numeric(np.dtype(obj, bool(align), True))


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _check_numeric(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise MalformedPickleError(f"numpy {dtype} scalar with a bad payload")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _np_reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise MalformedPickleError("numpy array of a subclass")
    # numpy's own pickling creates an empty array here and fills it in __setstate__.
    return np.ndarray.__new__(np.ndarray, (0,), "b")


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    dtype = _check_numeric(dtype)
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(shape, tuple) or order not in "CF":
        raise MalformedPickleError("a numpy array with a bad payload")
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise MalformedPickleError("a numpy array with a bad shape")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(buf):
        raise MalformedPickleError("a numpy array whose data does not match its shape")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise MalformedPickleError("bytes encoded other than as latin1")
    return text.encode("latin1")


def _rebuild_tensor(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """A contiguous copy of ``storage`` viewed with (offset, size, stride), bounds-checked."""
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
        raise MalformedPickleError("a tensor whose storage is not a storage")
    ints = (int, np.integer)
    if (
        not isinstance(storage_offset, ints)
        or not isinstance(size, (tuple, list))
        or not isinstance(stride, (tuple, list))
        or len(size) != len(stride)
        or not all(isinstance(v, ints) and v >= 0 for v in (*size, *stride, storage_offset))
    ):
        raise MalformedPickleError("a tensor with an invalid size, stride or offset")
    size, stride, offset = [int(s) for s in size], [int(s) for s in stride], int(storage_offset)
    if all(s > 0 for s in size):
        last = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True))
        if last >= storage.numel():
            raise MalformedPickleError(
                f"a tensor of size {size} reaches past its storage of {storage.numel()} elements"
            )
    return storage.as_strided(size, stride, offset).clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data: Any, requires_grad: Any = False, *_hooks_and_state: Any) -> Any:
    if not isinstance(data, torch.Tensor):
        raise MalformedPickleError("a parameter whose data is not a tensor")
    return data


def _load_storage_from_bytes(data: Any) -> torch.Tensor:  # -> flat [numel] tensor
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedPickleError("a storage whose payload is not bytes")
    return parse_legacy_storage(bytes(data))


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy", "dtype"): _np_dtype,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _codecs_encode,
}

# The inner legacy storage stream may name only storage classes (CPU or CUDA ones).
_STORAGE_ALLOWED: dict[tuple[str, str], Any] = {
    (module, name): _StorageType(dtype)
    for name, dtype in _STORAGE_DTYPES.items()
    for module in ("torch", "torch.cuda")
}


# --------------------------------------------------------------------------- unpicklers


class _RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from ``allowed``; persistent ids refused."""

    def __init__(self, file: BinaryIO, source: str, allowed: dict[tuple[str, str], Any]):
        super().__init__(file)
        self._source = source
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._source}: refused to load: the pickle asks for the Python global "
                f"'{module}.{name}', which is not model data (nothing from the file was run); "
                "use an official StyleGAN2 checkpoint or one saved by dragpipe"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise MalformedPickleError("a persistent id outside a storage stream")


class _StorageStreamUnpickler(_RestrictedUnpickler):
    """Main pickle of a legacy storage stream: its persistent ids describe storages."""

    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file, source, _STORAGE_ALLOWED)
        self.storages: dict[str, tuple[torch.dtype, int]] = {}

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise MalformedPickleError("an unknown persistent id in a storage stream")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise MalformedPickleError("a storage record with a bad type or size")
        self.storages[str(key)] = (storage_type.dtype, numel)
        return (str(key), view)


def _load_plain(f: BinaryIO, what: str) -> Any:
    return _RestrictedUnpickler(f, what, {}).load()


def parse_legacy_storage(data: bytes) -> torch.Tensor:  # -> flat [numel] tensor
    """Parse one storage written by ``torch.save(storage, _use_new_zipfile_serialization=False)``.

    Layout: pickled magic number, protocol version, sys_info; a pickle whose persistent id
    describes the storage; the pickled list of storage keys; then per key an int64
    element count and the raw little-endian bytes.
    """
    f = io.BytesIO(data)
    source = "storage stream"
    if _load_plain(f, source) != _LEGACY_MAGIC:
        raise MalformedPickleError("a storage payload that is not a torch storage stream")
    if _load_plain(f, source) != _LEGACY_PROTOCOL:
        raise MalformedPickleError("a storage stream of an unknown protocol version")
    sys_info = _load_plain(f, source)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise MalformedPickleError("a big-endian storage stream")
    unpickler = _StorageStreamUnpickler(f, source)
    ref = unpickler.load()
    keys = _load_plain(f, source)
    if not isinstance(ref, tuple) or not isinstance(keys, list):
        raise MalformedPickleError("a storage stream without a storage")
    flats: dict[str, torch.Tensor] = {}
    for key in keys:
        if str(key) not in unpickler.storages:
            raise MalformedPickleError("a storage stream listing an unknown storage")
        dtype, numel = unpickler.storages[str(key)]
        header = f.read(8)
        if len(header) != 8:
            raise MalformedPickleError("a truncated storage")
        (count,) = struct.unpack("<q", header)
        nbytes = count * torch.empty((), dtype=dtype).element_size()
        raw = f.read(nbytes) if count >= 0 else b""
        if count != numel or len(raw) != nbytes:
            raise MalformedPickleError("a truncated storage")
        flats[str(key)] = (
            torch.frombuffer(bytearray(raw), dtype=dtype)
            if nbytes
            else (torch.empty(0, dtype=dtype))
        )
    key, view = ref
    if key not in flats:
        raise MalformedPickleError("a storage stream without the storage's data")
    flat = flats[key]
    if view is not None:  # old torch: (view_key, offset, size) into the root storage
        if not (isinstance(view, tuple) and len(view) == 3):
            raise MalformedPickleError("a storage view with bad metadata")
        _, offset, size = view
        if not (isinstance(offset, int) and isinstance(size, int)) or offset < 0 or size < 0:
            raise MalformedPickleError("a storage view with bad metadata")
        if offset + size > flat.numel():
            raise MalformedPickleError("a storage view past its storage")
        flat = flat[offset : offset + size]
    return flat


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def open_checkpoint(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading; missing / unreadable files become one-line errors."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; check the checkpoint path") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({_one_line(exc)})") from None


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with the allow-list; returns plain data and stand-in objects.

    Raises ``UnsafeCheckpointError`` for a global outside the allow-list and
    ``CheckpointError`` for a missing, truncated or corrupt file.
    """
    with open_checkpoint(path) as f:
        return safe_loads_from(f, str(path))


def safe_loads_from(f: BinaryIO, source: str) -> Any:
    """``safe_load`` on an open binary file; ``source`` names it in errors."""
    unpickler = _RestrictedUnpickler(f, source, _ALLOWED)
    try:
        return unpickler.load()
    except CheckpointError:
        raise
    except MalformedPickleError as exc:
        raise CheckpointError(
            f"{source}: not a valid StyleGAN checkpoint: it contains {exc}; "
            "re-download or re-export the file"
        ) from None
    except EOFError:
        raise CheckpointError(
            f"{source}: the pickle ends early (truncated file); re-download the checkpoint"
        ) from None
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):
            raise CheckpointError(
                f"{source}: the pickle ends early (truncated file); re-download the checkpoint"
            ) from None
        raise CheckpointError(
            f"{source}: corrupt pickle ({_one_line(exc)}); re-download the checkpoint"
        ) from None
    except MemoryError:
        raise CheckpointError(f"{source}: not enough memory to read the checkpoint") from None
    except Exception as exc:  # any other unpickling failure means a corrupt file
        raise CheckpointError(
            f"{source}: corrupt pickle ({type(exc).__name__}: {_one_line(exc)}); "
            "re-download the checkpoint"
        ) from None
