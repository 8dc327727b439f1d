"""The slot stream: images enter and leave a compiled batch between chunks, results unchanged."""

import jax
import numpy as np
import pytest

from sair_jax.configs import smoke
from sair_jax.core import degradation, objective, slots, solver
from sair_jax.pipeline.networks import untrained_networks

STEPS, CHUNK = 6, 2


class StartsConverged(slots.StopRule):
  """A rule whose verdict is known in advance: an image that started at its answer (first loss
  ~0) has converged; images that start far (first loss >= 10) have not (StopRule's own
  criterion is tested on its own below)."""

  def converged(self, totals, since=0):
    return len(totals) >= self.min_steps and totals[0] < 1e-3


@pytest.fixture(scope="module")
def setup():
  """Four images of the smoke networks; image 0 starts at its answer (LQ = the objective's own
  D(G(w*)), no identity term), so its first loss is ~0."""
  config = smoke.get_config()
  config.loss.identity = 0.0
  nets = untrained_networks(config)
  spec = objective.spec_from_config(config, nets, factor=4)
  g = nets.g
  w_true = np.asarray(g.to_wplus(g.mapping(jax.random.normal(jax.random.PRNGKey(0),
                                                             (4, g.z_dim)))))
  w_init = w_true + 0.5 * np.asarray(jax.random.normal(jax.random.PRNGKey(1), w_true.shape))
  w_init[0] = w_true[0]
  sol = solver.Solver(spec, nets.params(), steps=STEPS, lr=0.05)
  gt = sol.render(w_true)
  lq = degradation.degrade(gt, spec.degradation)
  emb = jax.vmap(lambda x: objective.embed(spec, sol.params, x))(gt)
  hs = spec.histogram_size
  target = jax.tree_util.tree_map(np.asarray, objective.make_target(lq, emb, w_init,
                                                                   hist_size=hs))
  jobs = [slots.Job(f"img{i}", w_init[i], jax.tree_util.tree_map(lambda a, i=i: a[i], target),
                    100 + i) for i in range(4)]
  return sol, jobs


def _alone(sol, job):
  return slots.run_all(sol, [job], 1, chunk=CHUNK)[0]


def jobs_first_loss(sol, jobs):
  return min(f.history["total"][0] for f in slots.run_all(sol, jobs, len(jobs), chunk=1))


def test_a_result_does_not_depend_on_its_slot_or_neighbours(setup):
  sol, jobs = setup
  seen = []
  stream = slots.Stream(sol, jobs, 2, chunk=CHUNK,
                        on_chunk=lambda h, s, active: seen.append([k for _, k, _ in active]))
  done = {f.key: f for group in stream for f in group}
  # four images through two slots: img2 and img3 entered as img0 and img1 left
  assert seen[0] == ["img0", "img1"] and seen[-1] == ["img2", "img3"]
  assert stream.image_steps == 2 * 2 * STEPS  # two rounds of STEPS for two slots, no waste
  for job in jobs[1:]:
    f, alone = done[job.key], _alone(sol, job)
    assert f.steps == STEPS and not f.bad and not f.converged
    np.testing.assert_allclose(f.w, alone.w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f.history["total"], alone.history["total"], rtol=1e-5)


def test_a_converged_image_leaves_early_and_the_next_takes_its_slot(setup):
  sol, jobs = setup
  stop = StartsConverged(tol=1.0, min_steps=CHUNK, window=CHUNK)
  assert _alone(sol, jobs[0]).history["total"][0] < 1e-3 < 10 < jobs_first_loss(sol, jobs[1:3])
  rounds = []
  stream = slots.Stream(sol, jobs[:3], 2, chunk=CHUNK, stop=stop,
                        on_chunk=lambda h, s, active: rounds.append(
                            {k: step for _, k, step in active}))
  done = {f.key: f for group in stream for f in group}
  assert sorted(done) == ["img0", "img1", "img2"]  # each image once
  early = done["img0"]
  assert early.converged and early.steps < STEPS and len(early.history["total"]) == early.steps
  # img1 starts far from its answer: its loss keeps falling, so it runs every step
  assert done["img1"].steps == STEPS and not done["img1"].converged
  # img2 waited for a free slot and entered the moment img0 left, while img1 was running
  entered = next(n for n, r in enumerate(rounds) if "img2" in r)
  assert "img0" in rounds[entered - 1] and "img0" not in rounds[entered]
  assert rounds[entered]["img1"] < STEPS and rounds[entered]["img2"] == CHUNK
  # its result is what it gets alone (the stop rule is per image)
  alone = slots.run_all(sol, [jobs[2]], 1, chunk=CHUNK, stop=stop)[0]
  np.testing.assert_allclose(done["img2"].w, alone.w, rtol=1e-5, atol=1e-6)
  assert done["img2"].steps == alone.steps


def test_stop_rule():
  rule = slots.StopRule(tol=0.01, min_steps=4, window=2)
  assert not rule.converged(np.asarray([5.0, 5.0, 5.0]))  # fewer than min_steps
  assert rule.converged(np.asarray([9.0, 8.0, 5.0, 5.0, 4.99, 4.99]))
  assert not rule.converged(np.asarray([9.0, 8.0, 5.0, 5.0, 4.0, 4.0]))
  assert not slots.StopRule(tol=0.0, min_steps=0, window=1).converged(np.ones(10))
  # windows must follow the latest phase start (a term switching on moves the loss)
  flat = np.asarray([9.0, 8.0, 5.0, 5.0, 5.0, 5.0])
  assert rule.converged(flat, since=2) and not rule.converged(flat, since=3)


def test_phase_starts_refresh_each_slot_at_its_own_steps(setup):
  sol, jobs = setup
  calls = []

  def refresh(state, target, due):
    steps = np.asarray(jax.device_get(state.step))
    calls.append(sorted(int(steps[i]) for i in due))
    return target

  done = slots.run_all(sol, jobs[1:4], 2, chunk=3, phase_starts=[0, 4], refresh=refresh)
  assert [f.steps for f in done] == [STEPS] * 3
  # chunks stop at step 4 (chunk 3 -> 3, 1, 2); every image is refreshed at 0 and at 4
  assert sorted(s for c in calls for s in c) == [0, 0, 0, 4, 4, 4]


def test_shrink_moves_the_last_images_to_a_smaller_batch(setup):
  sol, jobs = setup
  asked = []

  def shrink(active, size, steps_left):
    asked.append((active, size, steps_left))
    return 1

  stop = StartsConverged(tol=1.0, min_steps=CHUNK, window=CHUNK)
  stream = slots.Stream(sol, jobs[:2], 2, chunk=CHUNK, stop=stop, shrink=shrink)
  done = {f.key: f for group in stream for f in group}
  assert asked and asked[0][:2] == (1, 2)  # img0 left early; img1 alone went on in 1 slot
  assert stream.size == 1
  alone = _alone(sol, jobs[1])
  np.testing.assert_allclose(done["img1"].w, alone.w, rtol=1e-5, atol=1e-6)
