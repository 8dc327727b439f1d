"""The safe torch-file reader: parity with torch's own view of the files, and refusal of code."""

import os
import pickle
import zipfile

import numpy as np
import pytest

from conftest import fixture
from sair_jax.io.torch_reader import (CheckpointFormatError, UnsafeCheckpointError,
                                     load_torch_file)


def _flatten(obj, prefix=""):
  if isinstance(obj, dict):
    for k, v in obj.items():
      yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
  elif isinstance(obj, (list, tuple)):
    for i, v in enumerate(obj):
      yield from _flatten(v, f"{prefix}.{i}" if prefix else str(i))
  else:
    yield prefix, obj


@pytest.mark.parametrize("name", ["reader_a_zip.pt", "reader_a_legacy.pt"])
def test_reads_every_tensor_exactly(name):
  ref = np.load(fixture("reader_a_ref.npz"))
  got = dict(_flatten(load_torch_file(fixture(name))))
  for key in ref.files:
    assert got[key].dtype == ref[key].dtype, key
    assert got[key].shape == ref[key].shape, key
    np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
  # Plain values and containers come through as Python objects.
  assert got["nested.inner.1.1"] == 7 and got["nested.name"] == "x"


@pytest.mark.parametrize("name", ["reader_a_zip.pt", "reader_a_legacy.pt"])
def test_views_and_shared_storage(name):
  tree = load_torch_file(fixture(name))
  assert tree["scalar"].shape == ()
  assert tree["transposed"].flags["C_CONTIGUOUS"]
  # Tensors are independent copies even when their storage was shared in the file.
  a = tree["shared_a"]
  before = tree["shared_b"].copy()
  a[...] = -12345
  np.testing.assert_array_equal(tree["shared_b"], before)


class _RunsShell:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def _zip_with_pickle(path, payload: bytes):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("evil/data.pkl", payload)
    zf.writestr("evil/byteorder", "little")


def _legacy_with_pickle(path, payload: bytes):
  with open(path, "wb") as f:
    f.write(payload)  # the very first pickle of a legacy file


@pytest.mark.parametrize("writer", [_zip_with_pickle, _legacy_with_pickle])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, writer):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pt"
  writer(path, pickle.dumps({"w": _RunsShell(marker)}, protocol=2))
  with pytest.raises(UnsafeCheckpointError, match=r"posix\.system|os\.system"):
    load_torch_file(path)
  assert not marker.exists()


class Unknown:
  pass


def test_unknown_class_is_refused(tmp_path):
  path = tmp_path / "unknown.pt"
  _zip_with_pickle(path, pickle.dumps({"x": Unknown()}))
  with pytest.raises(UnsafeCheckpointError, match="Unknown"):
    load_torch_file(path)


@pytest.mark.parametrize("name", ["reader_a_zip.pt", "reader_a_legacy.pt"])
def test_truncated_file_is_a_clear_error(tmp_path, name):
  data = fixture(name).read_bytes()
  path = tmp_path / "cut.pt"
  path.write_bytes(data[: len(data) * 2 // 3])
  with pytest.raises(CheckpointFormatError) as err:
    load_torch_file(path)
  assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_not_a_checkpoint(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("hello")
  with pytest.raises(CheckpointFormatError, match="notes.txt"):
    load_torch_file(path)
  with pytest.raises(FileNotFoundError, match="missing.pt"):
    load_torch_file(tmp_path / "missing.pt")
