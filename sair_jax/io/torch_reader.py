"""Read files written by ``torch.save`` without importing torch, and without running their code.

Two on-disk formats exist:

* zip (torch >= 1.6): ``<name>/data.pkl`` holds the object tree; every storage lives in
  ``<name>/data/<key>`` as raw little-endian bytes.
* legacy (older checkpoints, e.g. many StyleGAN2 ports): five pickles back to back (magic number,
  protocol version, system info, the object tree, the list of storage keys), then every storage
  as an int64 element count followed by its raw bytes.

In both the object tree refers to storages through pickle's *persistent id* mechanism and
rebuilds tensors with ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.
The unpickler below resolves only an allow-list of globals (tensor/parameter rebuild functions,
the typed storage classes and ``collections.OrderedDict``), each mapped to a local numpy
implementation. Any other global -- ``os.system``, ``builtins.eval``, a user class -- raises
:class:`UnsafeCheckpointError` before anything is called.

Tensors come back as numpy arrays (copied, C-contiguous, with the stored dtype); views that
share a storage read the same bytes, so shared storages and strided views are exact.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Callable

import numpy as np

from sair_jax.errors import UserError
from sair_jax.io.files import not_what_it_seems

__all__ = ["load_torch_file", "CheckpointFormatError", "UnsafeCheckpointError"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class CheckpointFormatError(UserError, ValueError):
  """The file is not a readable torch checkpoint (truncated, wrong format, ...)."""


class UnsafeCheckpointError(CheckpointFormatError):
  """The pickle asks for something other than tensors and plain containers."""


# torch storage class name -> numpy dtype. bfloat16 has no numpy dtype: read as float32 below.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class _StorageType:
  """Stands in for ``torch.<X>Storage`` in the pickle: only carries the dtype."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = _STORAGE_DTYPES[name]

  @property
  def itemsize(self) -> int:
    return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
  """A flat typed buffer (numpy 1-D array) loaded from the file."""

  def __init__(self, array: np.ndarray):
    self.array = array


def _bytes_to_array(raw: bytes, storage_type: _StorageType, numel: int) -> np.ndarray:
  need = numel * storage_type.itemsize
  if len(raw) < need:
    raise CheckpointFormatError(
        f"storage holds {len(raw)} bytes but {need} are needed (truncated file?)")
  raw = raw[:need]
  if storage_type.dtype == "bfloat16":
    halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return halves.view(np.float32)
  return np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<")).astype(
      storage_type.dtype, copy=False)


def _rebuild_tensor(storage: _Storage, storage_offset: int, size, stride, *unused) -> np.ndarray:
  """numpy version of ``torch._utils._rebuild_tensor_v2`` (extra arguments ignored)."""
  if not isinstance(storage, _Storage):
    raise UnsafeCheckpointError("tensor rebuild called without a storage")
  if storage.array is None:  # first pass over a legacy file: data not read yet
    return None
  size = tuple(int(s) for s in size)
  stride = tuple(int(s) for s in stride)
  flat = storage.array
  n = int(np.prod(size)) if size else 1
  if n == 0:
    return np.zeros(size, dtype=flat.dtype)
  last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
  if storage_offset < 0 or last >= flat.size:
    raise CheckpointFormatError(
        f"tensor of size {size}, stride {stride}, offset {storage_offset} "
        f"reaches past its storage of {flat.size} elements")
  view = np.lib.stride_tricks.as_strided(
      flat[storage_offset:], shape=size,
      strides=tuple(st * flat.itemsize for st in stride), writeable=False)
  return np.array(view, copy=True, order="C")


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
  return data


def _ordered_dict(*args):
  return collections.OrderedDict(*args)


# (module, name) -> what the unpickler hands out. Nothing else resolves.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _SafeUnpickler(pickle.Unpickler):
  """Unpickler that resolves only allow-listed globals and loads storages lazily."""

  def __init__(self, file, load_storage: Callable[[tuple], _Storage]):
    super().__init__(file, encoding="utf-8")
    self._load_storage = load_storage

  def find_class(self, module, name):
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)  # a fresh instance: a pickle cannot alter a shared one
    try:
      return _ALLOWED[(module, name)]
    except KeyError:
      raise UnsafeCheckpointError(
          f"refusing to load global '{module}.{name}': only tensors and plain containers "
          "may be unpickled") from None

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise UnsafeCheckpointError(f"unsupported persistent id {pid!r:.80}")
    return self._load_storage(pid)


def _load_zip(path: str) -> Any:
  try:
    zf = zipfile.ZipFile(path)
  except zipfile.BadZipFile as e:
    raise CheckpointFormatError(f"broken zip archive ({e})") from None
  with zf:
    pkls = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
      raise CheckpointFormatError("zip archive has no single '<name>/data.pkl' (not a torch file)")
    prefix = pkls[0][: -len("data.pkl")]
    names = set(zf.namelist())
    if prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() != b"little":
      raise CheckpointFormatError("big-endian checkpoints are not supported")
    cache: dict[str, _Storage] = {}

    def load_storage(pid):
      _, storage_type, key, _location, numel = pid[:5]
      if not isinstance(storage_type, _StorageType):
        raise UnsafeCheckpointError(f"storage with unknown type {storage_type!r:.80}")
      if key not in cache:
        member = f"{prefix}data/{key}"
        if member not in names:
          raise CheckpointFormatError(f"storage '{member}' is missing from the archive")
        try:
          raw = zf.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
          raise CheckpointFormatError(f"cannot read storage '{member}' ({e})") from None
        cache[key] = _Storage(_bytes_to_array(raw, storage_type, int(numel)))
      return cache[key]

    try:
      data = zf.read(pkls[0])
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise CheckpointFormatError(f"cannot read '{pkls[0]}' ({e})") from None
    return _SafeUnpickler(io.BytesIO(data), load_storage).load()


def _load_legacy(f) -> Any:
  def plain(what):
    return _SafeUnpickler(f, _no_storage(what)).load()

  magic = plain("magic number")
  if magic != LEGACY_MAGIC:
    raise CheckpointFormatError("not a torch checkpoint (neither zip nor legacy magic number)")
  version = plain("protocol version")
  if version != 1001:
    raise CheckpointFormatError(f"unsupported legacy protocol version {version!r}")
  plain("system info")

  # The tree comes before the storage data, so it is read twice: once to find where the data
  # starts and what each storage holds, then again with every storage filled.
  tree_start = f.tell()
  types: dict[str, _StorageType] = {}

  def note_storage(pid):
    _, storage_type, root_key, _location, _numel, _view = pid
    if not isinstance(storage_type, _StorageType):
      raise UnsafeCheckpointError(f"storage with unknown type {storage_type!r:.80}")
    types[root_key] = storage_type
    return _Storage(None)

  _SafeUnpickler(f, note_storage).load()
  keys = plain("storage keys")
  arrays: dict[str, np.ndarray] = {}
  for key in keys:
    if key not in types:
      raise CheckpointFormatError(f"storage key {key!r} listed but never used")
    head = f.read(8)
    if len(head) != 8:
      raise CheckpointFormatError("file ends inside the storage data (truncated file?)")
    (numel,) = struct.unpack("<q", head)
    arrays[key] = _bytes_to_array(f.read(numel * types[key].itemsize), types[key], numel)

  def load_storage(pid):
    _, _type, root_key, _location, _numel, view_metadata = pid
    if root_key not in arrays:
      raise CheckpointFormatError(f"storage {root_key!r} has no data in the file")
    array = arrays[root_key]
    if view_metadata is not None:
      _view_key, offset, size = view_metadata
      array = array[int(offset):int(offset) + int(size)]
    return _Storage(array)

  f.seek(tree_start)
  return _SafeUnpickler(f, load_storage).load()


def _no_storage(what):
  def refuse(pid):
    raise UnsafeCheckpointError(f"unexpected storage reference while reading the {what}")
  return refuse


def load_torch_file(path: str | os.PathLike) -> Any:
  """Loads a ``torch.save`` file into dicts/lists/tuples of numpy arrays, safely.

  Raises:
    FileNotFoundError: the file does not exist.
    CheckpointFormatError: the file is empty, an HTML page or a Git LFS pointer (a failed
      download, said so), truncated, or not a torch checkpoint.
    UnsafeCheckpointError: the pickle references anything but tensors and plain containers.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  reason = not_what_it_seems(path)
  if reason:
    raise CheckpointFormatError(f"{path}: {reason}")
  try:
    if zipfile.is_zipfile(path):
      return _load_zip(path)
    with open(path, "rb") as f:
      return _load_legacy(f)
  except CheckpointFormatError as e:
    raise type(e)(f"{path}: {e}") from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
          struct.error, AttributeError, KeyError, MemoryError) as e:
    raise CheckpointFormatError(
        f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
