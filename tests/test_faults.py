"""Faults a long batch run meets: a kill in the middle of a write, a full disk, damaged files
from an earlier run, two runs on one folder, an image whose expression is unavailable, and two
hosts sharing a set. Every run is ``python -m sair_jax.main`` on the smoke preset's untrained
networks (3 faces, 4 steps), so each costs one small compile.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from sair_jax.pipeline import outputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--config.solver.steps=4", "--config.solver.chunk=2", "--config.projection.steps=2",
        "--config.loss.histogram_start=2", "--config.loss.mask_every=2"]
NAMES = ["face0", "face1", "face2"]


def run(out, *extra, fault=None, env=None, wait=True):
  """The main command (or, with ``fault=(mode, file, count)``, tests/fault_runner.py)."""
  flags = ["--config=configs/smoke.py", f"--config.output={out}", *FAST, *extra]
  if fault:
    cmd = [sys.executable, os.path.join(REPO, "tests", "fault_runner.py"), *map(str, fault),
           "--", *flags]
  else:
    cmd = [sys.executable, "-m", "sair_jax.main", *flags]
  full_env = dict(os.environ, **(env or {}))
  if not wait:
    return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                        env=full_env)


def manifest(out, name="manifest.json"):
  return json.loads((pathlib.Path(out) / name).read_text())


def temporaries(out):
  return [p for p in pathlib.Path(out).rglob(".*.tmp")]


def restored_by(m):
  """How many images each batch of a manifest restored (its timings record every solve)."""
  return sum(b["images"] for b in m["timings"]["batches"])


def mtimes(out, names):
  return {n: os.stat(pathlib.Path(out) / "restored" / f"{n}.png").st_mtime_ns for n in names}


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
  """The smoke preset's 3 synthetic LQ faces and references, made once."""
  import known_answer
  lq, refs = known_answer.smoke_inputs(tmp_path_factory.mktemp("faults_data"))
  return [f"--config.data.lq={lq}", f"--config.data.references={refs}"]


def test_killed_mid_write_resumes_with_every_image_restored_once(tmp_path, smoke_data):
  out = tmp_path / "out"
  # Batches of one; SIGKILL half-way through writing the second restored PNG.
  r = run(out, *smoke_data, "--config.solver.batch_size=1",
          fault=("kill", "restored/face1.png", 1))
  assert r.returncode == -9, r.stderr
  assert [p.name for p in (out / "restored").glob("[!.]*")] == ["face0.png"]
  assert len(temporaries(out)) == 1  # the half-written temporary, never under its real name
  first = mtimes(out, ["face0"])
  r = run(out, *smoke_data, "--config.solver.batch_size=1")
  assert r.returncode == 0, r.stderr
  assert "removed 1 partial file(s)" in r.stderr
  m = manifest(out)
  assert sorted(m["finished"]) == NAMES and len(m["finished"]) == 3 and not m["failures"]
  assert restored_by(m) == 2  # face1 and face2 only: face0 was not redone
  assert mtimes(out, ["face0"]) == first
  assert temporaries(out) == []
  for n in NAMES:  # every file of every image is whole
    assert np.load(out / "latents" / f"{n}.npy").shape[0] > 0
    json.loads((out / "reports" / f"{n}.json").read_text())


def test_disk_full_ends_the_run_in_one_line_and_loses_nothing(tmp_path, smoke_data):
  out = tmp_path / "out"
  r = run(out, *smoke_data, "--config.solver.batch_size=1",
          fault=("enospc", "latents/face1.npy", 1))
  assert r.returncode == 1
  assert "Traceback" not in r.stderr
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "latents/face1.npy: cannot write (No space left" in last
  assert temporaries(out) == []
  m = manifest(out)
  assert m["finished"] == ["face0"]  # written after face0's batch, still there
  first = mtimes(out, ["face0"])
  r = run(out, *smoke_data, "--config.solver.batch_size=1")
  assert r.returncode == 0, r.stderr
  assert sorted(manifest(out)["finished"]) == NAMES and mtimes(out, ["face0"]) == first


def test_damaged_manifest_and_cache_are_reported_and_rebuilt(tmp_path, smoke_data):
  out = tmp_path / "out"
  r = run(out, *smoke_data)
  assert r.returncode == 0, r.stderr
  caches = sorted((out / "cache").glob("ref-face1-*.npy"))
  assert len(caches) == 1  # the projected reference of face1
  caches[0].write_bytes(b"\x93NUMPY garbage")
  (out / "manifest.json").write_text('{"finished": ["face0", "face1"')
  os.remove(out / "restored" / "face1.png")
  r = run(out, *smoke_data)
  assert r.returncode == 0, r.stderr
  lines = r.stderr.splitlines()
  damaged_manifest = [s for s in lines if "manifest.json: unreadable JSON" in s]
  damaged_cache = [s for s in lines if "damaged cache entry" in s]
  assert len(damaged_manifest) == 1 and "rebuilding" in damaged_manifest[0]
  assert len(damaged_cache) == 1 and caches[0].name in damaged_cache[0]
  m = manifest(out)
  assert sorted(m["finished"]) == NAMES and restored_by(m) == 1
  assert np.load(caches[0]).ndim == 2  # recomputed and rewritten


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, smoke_data):
  out = tmp_path / "out"
  with outputs.RunFolder(str(out)).lock():  # as a first run would hold it
    r = run(out, *smoke_data)
  assert r.returncode == 1
  assert "another run is using this folder" in r.stderr and "Traceback" not in r.stderr
  assert not (out / "manifest.json").exists()  # the refused run wrote nothing


def test_an_unavailable_expression_fails_alone(tmp_path, smoke_data):
  from sair_jax.expression_directions import file as dirs
  from sair_jax.pipeline.networks import SMOKE_G
  raw = np.random.default_rng(0).standard_normal((7, SMOKE_G.n_latent, SMOKE_G.w_dim))
  unit = (raw / np.linalg.norm(raw, axis=-1, keepdims=True)).astype(np.float32)
  available = np.asarray([e == "happy" for e in dirs.EXPRESSIONS])
  zeros = np.zeros((7, SMOKE_G.n_latent), np.float32)
  dirs.save_directions(tmp_path / "dirs.npz", dirs.Directions(
      unit * available[:, None, None], available, available.astype(np.int64), zeros, zeros,
      zeros + 1, "test"))
  (tmp_path / "expressions.csv").write_text("face0,happy\nface1,sad\n")
  out = tmp_path / "out"
  r = run(out, *smoke_data, "--config.expression.mode=csv", "--config.loss.expression=1.0",
          f"--config.expression.file={tmp_path / 'expressions.csv'}",
          f"--config.checkpoints.directions={tmp_path / 'dirs.npz'}")
  assert r.returncode == 0, r.stderr
  m = manifest(out)
  assert sorted(m["finished"]) == ["face0", "face2"]
  assert list(m["failures"]) == ["face1"] and "no direction for 'sad'" in m["failures"]["face1"]
  assert json.loads((out / "reports" / "face0.json").read_text())["expression_requested"] == \
      "happy"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_share_a_set_with_every_image_done_once(tmp_path, smoke_data):
  out = tmp_path / "out"
  address = f"localhost:{_free_port()}"
  procs = [run(out, *smoke_data, "--config.distributed=True",
               f"--config.coordinator_address={address}", "--config.num_processes=2",
               f"--config.process_id={i}", wait=False) for i in range(2)]
  results = [p.communicate(timeout=900) for p in procs]
  for p, (_, err) in zip(procs, results):
    assert p.returncode == 0, err
  hosts = [manifest(out, f"manifest-host{i}.json") for i in range(2)]
  assert [h["host"] for h in hosts] == [[0, 2], [1, 2]]
  done = [set(h["finished"]) for h in hosts]
  assert done[0] and done[1] and not done[0] & done[1]  # each image on exactly one host
  assert done[0] | done[1] == set(NAMES)
  assert sum(restored_by(h) for h in hosts) == 3
  assert sorted(p.stem for p in (out / "restored").iterdir()) == NAMES
