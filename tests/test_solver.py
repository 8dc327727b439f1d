"""The batched solver: per-image independence, chunking, NaN isolation, no re-tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import smoke
from sair_jax.core import objective, solver
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
  state = sol.init(w_ref, seeds)
  state, history, _ = solver.optimise(sol, state, sol.shard(target), chunk=chunk)
  return np.asarray(state.w), history


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


def test_a_nan_image_is_frozen_and_the_others_go_on(setup):
  sol, target, w_ref = setup
  bad_lq = target.lq.at[0].set(jnp.nan)
  w, hist = _run(sol, target.replace(lq=bad_lq), w_ref, np.arange(3), chunk=3)
  state = sol.init(w_ref, np.arange(3))
  state, _ = sol.run_chunk(state, sol.shard(target.replace(lq=bad_lq)), 3)
  assert np.asarray(state.bad).tolist() == [True, False, False]
  np.testing.assert_array_equal(w[0], np.asarray(w_ref[0]))  # never updated
  w_good, _ = _run(sol, target, w_ref, np.arange(3), chunk=3)
  np.testing.assert_allclose(w[1:], w_good[1:], rtol=1e-5, atol=1e-6)


def test_chunk_plan_starts_phases_on_chunk_boundaries():
  assert solver.chunk_plan(10, 4) == [(0, 4), (4, 4), (8, 2)]
  assert solver.chunk_plan(10, 4, [6]) == [(0, 4), (4, 2), (6, 4)]
  plan = solver.chunk_plan(400, 50, range(200, 400, 50))
  assert sum(n for _, n in plan) == 400 and {200, 250, 300, 350} <= {s for s, _ in plan}
