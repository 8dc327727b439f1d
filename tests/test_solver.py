"""The batched solver: per-image independence, chunking, NaN isolation, no re-tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sair_jax.configs import smoke
from sair_jax.core import objective, slots, solver
from sair_jax.pipeline.networks import untrained_networks


@pytest.fixture(scope="module")
def setup():
  config = smoke.get_config()
  nets = untrained_networks(config)
  spec = objective.spec_from_config(config, nets, factor=4)
  g = nets.g
  z = jax.random.normal(jax.random.PRNGKey(0), (3, g.z_dim))
  w_true = g.to_wplus(g.mapping(z))
  w_ref = w_true + 0.3 * jax.random.normal(jax.random.PRNGKey(1), w_true.shape)
  sol = solver.Solver(spec, nets.params(), steps=6, lr=0.05)
  gt = sol.render(w_true)
  lq = jax.vmap(lambda x: jax.image.resize(x, (16, 16, 3), "linear"))(gt)
  emb = jax.vmap(lambda x: objective.embed(spec, sol.params, x))(gt)
  hs = spec.histogram_size
  target = objective.make_target(lq, emb, w_ref, lq_hist=jnp.zeros((3, hs, hs, 3)), hist_size=hs)
  return sol, target, w_ref


def _run(sol, target, w_ref, seeds, chunk):
  """Every image for sol.steps steps in one batch: (w [B, L, D], {term: [steps, B]})."""
  target = jax.tree_util.tree_map(np.asarray, target)
  jobs = [slots.Job(i, np.asarray(w_ref[i]), jax.tree_util.tree_map(lambda a, i=i: a[i], target),
                    int(seed)) for i, seed in enumerate(seeds)]
  done = slots.run_all(sol, jobs, len(jobs), chunk=chunk)
  history = {k: np.stack([f.history[k] for f in done], axis=1) for k in done[0].history}
  return np.stack([f.w for f in done]), history


def test_each_image_is_optimised_independently(setup):
  sol, target, w_ref = setup
  w_all, hist_all = _run(sol, target, w_ref, np.arange(3), chunk=6)
  one = jax.tree_util.tree_map(lambda x: x[1:2], target)
  w_one, hist_one = _run(sol, one, w_ref[1:2], np.arange(1, 2), chunk=6)
  np.testing.assert_allclose(w_one[0], w_all[1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hist_one["total"][:, 0], hist_all["total"][:, 1], rtol=1e-5)
  assert hist_all["fidelity"][-1].mean() < hist_all["fidelity"][0].mean()


def test_chunking_does_not_change_the_result_and_does_not_retrace(setup):
  sol, target, w_ref = setup
  w_whole, _ = _run(sol, target, w_ref, np.arange(3), chunk=6)
  compiled_before = sol.n_compiled
  w_chunks, hist = _run(sol, target, w_ref, np.arange(3), chunk=2)
  assert hist["total"].shape == (6, 3)
  np.testing.assert_allclose(w_chunks, w_whole, rtol=1e-5, atol=1e-6)
  assert sol.n_compiled == compiled_before + 1  # 3 chunks, one compilation
  _run(sol, target, w_ref, np.arange(3), chunk=2)
  assert sol.n_compiled == compiled_before + 1
  assert sol._run_chunk._cache_size() == 0  # never traced again through the jit cache


def test_a_nan_image_is_frozen_and_leaves_and_the_others_go_on(setup):
  sol, target, w_ref = setup
  bad_lq = target.lq.at[0].set(jnp.nan)
  state = sol.init(w_ref, np.arange(3))
  state, _ = sol.run_chunk(state, sol.shard(target.replace(lq=bad_lq)), 3)
  assert np.asarray(state.bad).tolist() == [True, False, False]
  np.testing.assert_array_equal(np.asarray(state.w)[0], np.asarray(w_ref[0]))  # never updated
  target_np = jax.tree_util.tree_map(np.asarray, target.replace(lq=bad_lq))
  jobs = [slots.Job(i, np.asarray(w_ref[i]), jax.tree_util.tree_map(lambda a, i=i: a[i],
                                                                    target_np), i)
          for i in range(3)]
  done = slots.run_all(sol, jobs, 3, chunk=3)
  assert [f.bad for f in done] == [True, False, False]
  assert [f.steps for f in done] == [3, 6, 6]  # the bad image left after its first chunk
  np.testing.assert_array_equal(done[0].w, np.asarray(w_ref[0]))
  w_good, _ = _run(sol, target, w_ref, np.arange(3), chunk=3)
  np.testing.assert_allclose(np.stack([f.w for f in done[1:]]), w_good[1:], rtol=1e-5,
                             atol=1e-6)


def test_chunk_lengths_stop_at_phase_starts_and_the_last_step():
  assert slots.chunk_length([0], 4, [], 10) == 4
  assert slots.chunk_length([8], 4, [], 10) == 2
  assert slots.chunk_length([4], 4, [6], 10) == 2
  assert slots.chunk_length([6, 0], 4, [6], 10) == 4
  assert slots.chunk_length([150, 0], 50, range(200, 400, 50), 400) == 50
  assert slots.chunk_length([180], 50, range(200, 400, 50), 400) == 20
