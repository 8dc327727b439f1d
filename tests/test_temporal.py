"""Warm starts along time (sair_jax/pipeline/temporal.py), the temporal term, per-item starts,
and the flicker measure. The window logic runs against a stand-in session that "restores" an
item by saving a code derived from where it started; the objective and the stages run on the
smoke preset's untrained networks."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sair_jax.configs import default, smoke
from sair_jax.core import losses, objective
from sair_jax.io import files, images
from sair_jax.metrics import video as video_metrics
from sair_jax.pipeline import inputs, outputs, temporal

L, D = 4, 3


class FakeSession:
  """Records every restore call; an item's saved W+ is its start + 1 (its w_z + 100 when
  cold), so a test can tell where each face started. Names in ``fail`` never finish."""

  def __init__(self, root, fail=(), pool_choice=None):
    self.folder = outputs.RunFolder(str(root))
    self.manifest = {"pool_choices": {}}
    self.calls, self.fail, self.pool_choice = [], set(fail), pool_choice

  def restore(self, items, lq_size=None, pool=None, steps=None, lr=None, quiet=False):
    self.calls.append({"names": [it.name for it in items], "lq_size": lq_size, "steps": steps,
                       "lr": lr,
                       "items": list(items)})
    for it in items:
      if self.folder.done(it.name) or it.name in self.fail:
        continue
      if it.reference is None:  # pool mode: the session picks, and records it
        self.manifest["pool_choices"][it.name] = {"reference": self.pool_choice}
        start = np.zeros((L, D))
      else:
        start = it.start if it.start is not None else np.asarray(it.reference) + 99
      files.write_npy(self.folder.path("latents", it.name, ".npy"), start + 1)
      images.write_image(self.folder.path("restored", it.name, ".png"),
                         np.zeros((2, 2, 3), np.float32))


def faces(track, frames, ref_value=0.0):
  return [inputs.Item(f"t{track}_f{t}", np.zeros((8, 8, 3)), np.full((L, D), ref_value))
          for t in frames]


def test_a_track_starts_cold_once_then_every_frame_starts_from_the_last_solved(tmp_path):
  s = FakeSession(tmp_path)
  warm = temporal.WarmStarts(s, cold_steps=40, warm_steps=10, warm_lr=0.02)
  done = warm.restore_window({0: faces(0, range(0, 3)), 1: faces(1, range(1, 3), 5.0)},
                             {0: 8, 1: 8})
  assert all(done.values()) and len(done) == 5
  cold, warm_call = s.calls
  assert cold["names"] == ["t0_f0", "t1_f1"] and cold["steps"] == 40
  assert warm_call["names"] == ["t0_f1", "t0_f2", "t1_f2"] and warm_call["steps"] == 10
  assert (cold["lr"], warm_call["lr"]) == (None, 0.02)  # cold: the config's lr
  by_name = {it.name: it for it in warm_call["items"]}
  # every warm face of the window starts at (and is pulled towards) the track's cold result
  np.testing.assert_array_equal(by_name["t0_f1"].start, np.full((L, D), 100.0))
  np.testing.assert_array_equal(by_name["t0_f2"].neighbour, np.full((L, D), 100.0))
  np.testing.assert_array_equal(by_name["t1_f2"].start, np.full((L, D), 105.0))
  # the next window: no cold face; each track continues from its last solved frame
  warm.restore_window({0: faces(0, [3, 4]), 1: faces(1, [3])}, {0: 8, 1: 8})
  assert len(s.calls) == 3 and s.calls[2]["steps"] == 10
  starts = {it.name: it.start[0, 0] for it in s.calls[2]["items"]}
  assert starts == {"t0_f3": 101.0, "t0_f4": 101.0, "t1_f3": 106.0}
  assert warm.restored == {"cold": 2, "warm": 6}


def test_a_failed_cold_face_passes_the_cold_start_to_the_next_face(tmp_path):
  s = FakeSession(tmp_path, fail={"t0_f0"})
  warm = temporal.WarmStarts(s, cold_steps=40, warm_steps=10)
  done = warm.restore_window({0: faces(0, range(3))}, {0: 8})
  assert done == {"t0_f0": False, "t0_f1": True, "t0_f2": True}
  assert [c["names"] for c in s.calls] == [["t0_f0"], ["t0_f1"], ["t0_f2"]]
  assert [c["steps"] for c in s.calls] == [40, 40, 10]
  assert s.calls[2]["items"][0].start[0, 0] == 100.0


def _starts(session) -> dict[int, tuple[int, float]]:
  """{frame: (steps, where its restore started)} over a session's calls (a cold face: its
  reference; a warm one: the code it started from)."""
  starts = {}
  for call in session.calls:
    for it in call["items"]:
      start = it.start if it.start is not None else np.asarray(it.reference)
      starts[int(it.name.split("_f")[1])] = (call["steps"], float(start[0, 0]))
  return starts


def test_a_track_is_re_anchored_with_a_cold_face_every_k_faces(tmp_path):
  """anchor_every=3, windows of 2 frames: once 3 faces were restored since the last cold one,
  the next window's first face is cold again, from the track's reference (the later faces'
  own reference, 7, is not used), and the frames after it go on from its result."""
  s = FakeSession(tmp_path)
  warm = temporal.WarmStarts(s, cold_steps=40, warm_steps=10, anchor_every=3)
  for frames, ref in (([0, 1], 0.0), ([2, 3], 7.0), ([4, 5], 7.0), ([6, 7], 7.0)):
    warm.restore_window({0: faces(0, frames, ref)}, {0: 8})
  # frame 0 cold (saved 100), 1 from it (saved 101), 2 and 3 from 1 (2 faces since the cold
  # one: < 3); then 4 faces since: frame 4 cold from the track's reference 0 (saved 100), 5
  # from it, and 6 and 7 from 5 (2 since)
  assert _starts(s) == {0: (40, 0.0), 1: (10, 100.0), 2: (10, 101.0), 3: (10, 101.0),
                        4: (40, 0.0), 5: (10, 100.0), 6: (10, 101.0), 7: (10, 101.0)}
  assert warm.restored == {"cold": 2, "warm": 6}
  # a resumed run: the faces already on disk are not redone, and the track's state (the cold
  # faces, the codes) is read back, so frames 6 and 7 start where they started above
  again = FakeSession(tmp_path)
  warm = temporal.WarmStarts(again, cold_steps=40, warm_steps=10, anchor_every=3)
  for frames, ref in (([0, 1], 0.0), ([2, 3], 7.0), ([4, 5], 7.0)):
    warm.restore_window({0: faces(0, frames, ref)}, {0: 8})
  for i in (6, 7):  # as if the first run had been killed before frames 6 and 7 were written
    os.remove(again.folder.path("restored", f"t0_f{i}", ".png"))
    os.remove(again.folder.path("latents", f"t0_f{i}", ".npy"))
  again.calls.clear()
  warm.restore_window({0: faces(0, [6, 7], 7.0)}, {0: 8})
  assert _starts(again) == {6: (10, 101.0), 7: (10, 101.0)}


def test_a_re_anchored_cold_face_is_pulled_toward_the_last_solved_code(tmp_path):
  """anchor_pull > 0: the cold face of a re-anchoring (not the track's first) carries the
  track's last solved code as its temporal centre, at anchor_pull times the term's weight."""
  s = FakeSession(tmp_path)
  warm = temporal.WarmStarts(s, cold_steps=40, warm_steps=10, anchor_every=2, anchor_pull=0.01)
  for frames in ([0, 1], [2, 3]):
    warm.restore_window({0: faces(0, frames)}, {0: 8})
  cold = [it for c in s.calls if c["steps"] == 40 for it in c["items"]]
  assert [it.name for it in cold] == ["t0_f0", "t0_f2"]
  assert cold[0].neighbour is None  # the first cold face: nothing to hold to
  # frame 1 started from frame 0's result (100) and saved 101: the code before the anchor
  np.testing.assert_array_equal(cold[1].neighbour, np.full((L, D), 101.0))
  assert cold[1].neighbour_weight == 0.01
  assert cold[1].start is None  # still cold: from the reference's w_z
  # and the warm face after it: from the anchor's result, at the full weight
  after = s.calls[-1]["items"][0]
  assert after.name == "t0_f3" and after.start[0, 0] == 100.0 and after.neighbour_weight == 1.0
  # without a pull the re-anchored face has no temporal term
  s2 = FakeSession(tmp_path / "nopull")
  warm = temporal.WarmStarts(s2, cold_steps=40, warm_steps=10, anchor_every=2)
  for frames in ([0, 1], [2, 3]):
    warm.restore_window({0: faces(0, frames)}, {0: 8})
  assert all(it.neighbour is None for c in s2.calls if c["steps"] == 40 for it in c["items"])


def test_re_anchoring_off_keeps_one_cold_face(tmp_path):
  s = FakeSession(tmp_path)
  warm = temporal.WarmStarts(s, cold_steps=40, warm_steps=10)
  for frames in ([0, 1], [2, 3], [4, 5]):
    warm.restore_window({0: faces(0, frames)}, {0: 8})
  assert [t for t, (steps, _) in _starts(s).items() if steps == 40] == [0]


def test_tracks_of_different_sizes_are_restored_apart(tmp_path):
  s = FakeSession(tmp_path)
  temporal.WarmStarts(s, cold_steps=4, warm_steps=2).restore_window(
      {0: faces(0, [0, 1]), 1: faces(1, [0, 1])}, {0: 16, 1: 8})
  assert [(c["lq_size"], c["names"]) for c in s.calls] == [
      (8, ["t1_f0"]), (16, ["t0_f0"]), (8, ["t1_f1"]), (16, ["t0_f1"])]


def test_a_resumed_run_warm_starts_from_the_saved_codes(tmp_path):
  first = FakeSession(tmp_path)
  temporal.WarmStarts(first, cold_steps=4, warm_steps=2).restore_window(
      {0: faces(0, [0, 1])}, {0: 8})
  saved = files.read_npy(first.folder.path("latents", "t0_f1", ".npy"))
  # a new run (the first was killed after its first window): the window's faces are done, so
  # nothing is redone, and the next window starts from what the disk holds
  again = FakeSession(tmp_path)
  warm = temporal.WarmStarts(again, cold_steps=4, warm_steps=2)
  warm.restore_window({0: faces(0, [0, 1])}, {0: 8})
  warm.restore_window({0: faces(0, [2])}, {0: 8})
  np.testing.assert_array_equal(again.calls[-1]["items"][0].start, saved)
  assert files.read_npy(again.folder.path("latents", "t0_f2", ".npy"))[0, 0] == saved[0, 0] + 1


def test_pool_mode_keeps_the_first_faces_choice(tmp_path):
  s = FakeSession(tmp_path, pool_choice="pool/b.png")
  pool = inputs.Pool(("pool/a.png", "pool/b.png"), (np.zeros((4, 4, 3)), np.ones((4, 4, 3))))
  items = [inputs.Item(f"f{t}", np.zeros((8, 8, 3)), None) for t in range(3)]
  temporal.WarmStarts(s, cold_steps=4, warm_steps=2, pool=pool).restore_window({0: items},
                                                                              {0: 8})
  warm_items = s.calls[1]["items"]
  assert [it.reference_origin for it in warm_items] == ["pool/b.png"] * 2
  assert all(np.array_equal(it.reference, np.ones((4, 4, 3))) for it in warm_items)


# ------------------------------------------------------------------------- objective, stages


def test_the_temporal_term_is_the_squared_distance_to_the_neighbour():
  w, n = jnp.arange(6.0).reshape(2, 3), jnp.ones((2, 3))
  assert float(losses.temporal_loss(w, n)) == pytest.approx(float(jnp.sum((w - n) ** 2)))
  grad = jax.grad(lambda x: losses.temporal_loss(x, n))(n)
  assert float(jnp.abs(grad).max()) == 0.0


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
  from sair_jax.pipeline import networks, stages
  c = smoke.get_config()
  c.loss.temporal = 0.5
  nets = networks.load_networks(c)
  return stages.Context(c, nets, outputs.RunFolder(str(tmp_path_factory.mktemp("ctx"))))


def test_an_items_start_and_neighbour_reach_the_solver(ctx):
  from sair_jax.pipeline import stages
  g = ctx.nets.g
  rng = np.random.default_rng(0)
  w_ref, w_start = (rng.normal(size=(2, g.n_latent, g.w_dim)).astype(np.float32)
                    for _ in range(2))
  lq = rng.uniform(size=(2, 8, 8, 3)).astype(np.float32)
  items = [inputs.Item("cold", lq[0], w_ref[0]),
           inputs.Item("warm", lq[1], w_ref[1], start=w_start[1], neighbour=w_start[0])]
  rows, failures = stages.prepare(ctx, items)
  assert not failures
  cold, warm = stages.jobs(ctx, rows, 2)
  np.testing.assert_array_equal(cold.w_init, w_ref[0])  # solver.start = the reference's w_z
  assert float(cold.target.temporal_scale) == 0.0
  np.testing.assert_array_equal(warm.w_init, w_start[1])
  np.testing.assert_array_equal(warm.target.w_neighbour, w_start[0])
  np.testing.assert_array_equal(warm.target.w_ref, w_ref[1])  # the prior keeps w_z
  assert float(warm.target.temporal_scale) == 1.0
  # the loss carries λ ||w - w_s||² for the warm face only
  loss = objective.make_objective(ctx.spec)
  params = ctx.nets.params()
  _, terms = loss(jnp.asarray(w_start[1]), params, warm.target, None)
  want = float(jnp.sum((w_start[1] - w_start[0]) ** 2))
  assert float(terms["temporal"]) == pytest.approx(want, rel=1e-5)
  assert dict(ctx.spec.weights)["temporal"] == 0.5
  # an item's neighbour_weight scales the term (a re-anchored video frame's pull)
  pulled = inputs.Item("pulled", lq[1], w_ref[1], neighbour=w_start[0], neighbour_weight=0.01)
  rows, _ = stages.prepare(ctx, [pulled])
  (job,) = stages.jobs(ctx, rows, 1)
  np.testing.assert_array_equal(job.w_init, w_ref[1])
  assert float(job.target.temporal_scale) == pytest.approx(0.01)
  _, terms = loss(jnp.asarray(w_start[1]), params, job.target, None)
  assert float(terms["temporal"]) == pytest.approx(0.01 * want, rel=1e-5)
  _, terms = loss(jnp.asarray(w_ref[0]), params, cold.target, None)
  assert float(terms["temporal"]) == 0.0


def test_with_steps_moves_the_histogram_phases_and_leaves_the_config():
  c = default.get_config("official")
  short = default.with_steps(c, 100)
  assert (short.solver.steps, short.loss.histogram_start, short.loss.mask_every) == (100, 50, 12)
  assert (c.solver.steps, c.loss.histogram_start) == (400, 200)
  assert default.with_steps(c, 400).to_dict() == c.to_dict()


# ------------------------------------------------------------------------------------ flicker


def test_flicker_is_one_for_the_truth_and_grows_with_frame_to_frame_noise():
  t = np.linspace(0, 1, 10)[:, None, None, None]
  gt = np.broadcast_to(t * 0.5, (10, 4, 4, 3))
  assert video_metrics.flicker(gt, gt) == pytest.approx(1.0)
  noisy = gt + np.random.default_rng(0).normal(0, 0.2, gt.shape)  # |noise diff| ~ 0.23
  assert video_metrics.flicker(noisy, gt) > 2.0
  frozen = np.broadcast_to(gt[:1], gt.shape)
  assert video_metrics.flicker(frozen, gt) == 0.0
  with pytest.raises(ValueError, match="undefined"):
    video_metrics.flicker(gt, frozen)
  with pytest.raises(ValueError, match="shape"):
    video_metrics.flicker(gt[:3], gt)
