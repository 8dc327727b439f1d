"""Shared test helpers: fixture paths. Tests run on the CPU."""

import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


def fixture(name: str) -> pathlib.Path:
  """Path of a committed test fixture (copied from ../shared/fixtures)."""
  path = FIXTURES / name
  assert path.exists(), f"committed fixture {path} is missing"
  return path


def shared(relpath: str) -> pathlib.Path:
  """Path of a file under ../shared, skipping the test when it is absent."""
  path = SHARED / relpath
  if not path.exists():
    pytest.skip(f"{path} not available")
  return path


def rel_err(got, want) -> float:
  """The golden tests' error measure: max |got - want| / max |want| (float64)."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
