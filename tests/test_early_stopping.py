"""Per-image early stopping through a whole run: an image that converges leaves its slot, is
finished and written at once, the next image takes the slot, nothing is restored twice, and a
rerun resumes. In process, on the smoke preset's untrained networks (5 faces, 2 slots)."""

import json
import os

import numpy as np
import pytest

from sair_jax.configs import smoke
from sair_jax.core import slots
from sair_jax.pipeline import known_answer, restore
from sair_jax.pipeline.networks import untrained_networks

STEPS, CHUNK = 8, 2


@pytest.fixture
def config(tmp_path):
  """A known-answer test set whose face0 is given its answer as the reference."""
  c = smoke.get_config()
  c.output = str(tmp_path / "out")
  nets = untrained_networks(c)
  p = known_answer.build_problem(nets.g, 5, nets.g.resolution // c.data.lq_size, seed=3)
  known_answer.write_problem(tmp_path / "data", p, reference="latent")
  np.save(tmp_path / "data" / "references" / "face0.npy", p.w_true[0])
  c.data.lq, c.data.references = str(tmp_path / "data" / "lq"), str(tmp_path / "data" / "references")
  c.solver.steps, c.solver.chunk, c.solver.batch_size = STEPS, CHUNK, 2
  c.solver.stop_tol, c.solver.stop_min_steps, c.solver.stop_window = 0.5, CHUNK, CHUNK
  return c


@pytest.fixture
def starts_converged(monkeypatch):
  """The stop rule's verdict made known in advance: an image that starts at its answer (first
  loss ~0: only face0) has converged after its first chunk. StopRule's own criterion is tested
  in test_slots.py; this test is about what the run does with the verdict."""
  monkeypatch.setattr(slots.StopRule, "converged", lambda self, totals, since=0: (
      len(totals) >= self.min_steps and totals[0] < 1e-2))


def _restored(out, name):
  return os.path.join(out, "restored", f"{name}.png")


def test_an_early_image_is_written_its_slot_refilled_and_a_rerun_resumes(config, starts_converged,
                                                                          capsys):
  manifest = restore.restore(config)
  names = ["face0", "face1", "face2", "face3", "face4"]
  assert sorted(manifest["finished"]) == names and len(manifest["finished"]) == 5
  assert not manifest["failures"]
  assert manifest["steps"] == {"face0": CHUNK, "face1": STEPS, "face2": STEPS, "face3": STEPS,
                               "face4": STEPS}
  with open(os.path.join(config.output, "losses", "face0.json")) as f:
    losses = json.load(f)
  assert losses["steps"] == CHUNK and losses["max_steps"] == STEPS
  assert len(losses["terms"]["total"]) == CHUNK
  (stream,) = manifest["timings"]["batches"]
  assert (stream["images"], stream["batch"]) == (5, 2)
  # slot A: face0 (2 steps), face2, face4; slot B: face1, face3 -> 18 rounds of steps (34 with
  # the tail moved to one slot); without the early stop A would run 24, so 48
  assert 2 + 4 * STEPS <= stream["image_steps"] <= 2 * (2 + 2 * STEPS)
  log = capsys.readouterr().err
  assert "steps 2-4/8" in log  # face2 took face0's slot while face1 was running

  # Rerun after losing face3's image: only face3 is restored again.
  os.remove(_restored(config.output, "face3"))
  kept = [n for n in names if n != "face3"]
  before = {n: os.stat(_restored(config.output, n)).st_mtime_ns for n in kept}
  again = restore.restore(config)
  assert {n: os.stat(_restored(config.output, n)).st_mtime_ns for n in kept} == before
  assert sorted(again["finished"]) == names
  assert again["steps"]["face0"] == CHUNK and again["steps"]["face3"] == STEPS
  assert [b["images"] for b in again["timings"]["batches"]] == [1]
  # the first run's record is kept: how the other four images were made
  (first,) = again["history"]
  assert first["timings"]["batches"] == manifest["timings"]["batches"]
  assert first["started"] == manifest["started"] and first["lq_sizes"] == manifest["lq_sizes"]
