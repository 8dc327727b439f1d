"""Shared test helpers: fixture paths. Tests run on the CPU.

The session shares one persistent XLA compilation cache (a fresh temporary folder, inherited by
the commands the tests start): most end-to-end tests run the same small programs in new
processes, and compiling them once instead of in every process is most of the suite's time.
Programs are keyed by their full HLO and compile options, so a cached one is the same program.
Set ``SAIR_TEST_JAX_CACHE=0`` to compile everything afresh.
"""

import os
import pathlib
import tempfile

if os.environ.get("SAIR_TEST_JAX_CACHE", "1") != "0":
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="sair_jax_xla_"))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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


def jaxpr_equations(jaxpr, primitive: str) -> list:
  """Every equation of ``primitive`` in a jaxpr, those of nested jaxprs (scan, jit, custom
  derivatives) included."""
  import jax.extend  # noqa: PLC0415  (`import jax` alone does not load jax.extend)
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == primitive:
      found.append(eqn)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      found += jaxpr_equations(sub, primitive)
  return found
