"""The objective a config describes: each objective's fidelity norm and histogram reach the loss."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import known_answer as known
from sair_jax.configs import default
from sair_jax.core import degradation, losses, objective
from sair_jax.nets import arcface, stylegan2
from sair_jax.pipeline.networks import Networks

FACTOR = 4


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
  """The 32 px fixture generator and the one-block ArcFace (quick to load)."""
  g, a = known.convert_networks(tmp_path_factory.mktemp("ckpt"))
  return Networks(g=stylegan2.load(g), arcface=arcface.load(a))


@pytest.fixture(scope="module")
def problem(nets):
  """One W+ code, an LQ of another face at 1/FACTOR, a face mask and the LQ at mask size."""
  g = nets.g
  ws = g.to_wplus(g.mapping(jax.random.normal(jax.random.PRNGKey(0), (2, g.z_dim))))
  other = objective.to_unit_range(g.synthesis(ws[1:]), "clip")
  lq = degradation.bicubic_downsample(other, FACTOR)[0]  # [h, w, 3]
  s = g.resolution
  yy, xx = np.mgrid[0:s, 0:s]
  mask = jnp.asarray(((yy - s / 2) ** 2 + (xx - s / 2) ** 2 < (s / 3) ** 2), jnp.float32)
  lq_hist = jax.image.resize(lq, (s, s, 3), "cubic")
  target = objective.make_target(lq[None], jnp.ones((1, 8)), ws[:1], lq_hist=lq_hist[None],
                                 hist_size=s, mask=mask[None])
  target = jax.tree_util.tree_map(lambda x: x[0], target.replace(histogram_on=jnp.ones((1,))))
  return ws[0], target


@pytest.mark.parametrize("name,norm,variant", [("paper", "sum", "paper"),
                                               ("official", "mean", "official")])
def test_each_objective_reaches_the_loss_with_its_fidelity_and_histogram(nets, problem, name,
                                                                         norm, variant):
  w, target = problem
  spec = objective.spec_from_config(default.get_config(name), nets, FACTOR)
  assert (spec.fidelity_norm, spec.histogram_variant) == (norm, variant)
  # (the temporal term is no objective's: a video setting, 0 by default)
  expected = {t: default.OBJECTIVES[name].get(f"loss.{t}", 0.0) for t in objective.TERMS}
  assert "loss.temporal" not in default.OBJECTIVES[name]
  assert dict(spec.weights) == {t: v for t, v in expected.items() if v}
  # the two terms under test only (the others are covered by tests/test_losses.py)
  spec = dataclasses.replace(spec, weights=(("fidelity", 1.0), ("histogram", 1.0)),
                             noise="const")
  _, terms = jax.jit(objective.make_objective(spec))(w, nets.params(), target, None)
  x01 = jax.jit(objective.render, static_argnums=0)(spec, nets.params(), w, None)  # [H, W, 3]
  sq = jnp.square(degradation.degrade(x01[None], spec.degradation)[0] - target.lq)
  want = jnp.sum(sq) if norm == "sum" else jnp.maximum(jnp.mean(sq), 1e-4)
  np.testing.assert_allclose(terms["fidelity"], want, rtol=1e-4)
  want = losses.histogram_loss(x01, target.lq_hist, target.mask, variant=variant,
                               bins=spec.histogram_bins)
  np.testing.assert_allclose(terms["histogram"], want, rtol=1e-4)
  assert float(terms["histogram"]) > 0


@pytest.mark.parametrize("case", ["down_64_16", "up_8_32", "odd_13_5", "up_5_12"])
def test_histogram_input_is_torch_bicubic_without_align_corners(case):
  """Both sides of the histogram term (the generated image down to 256, the LQ up to 256) go
  through one resize, torch's F.interpolate(mode='bicubic', align_corners=False): golden values
  made by that function (tests/fixtures/interpolate_ref.npz: random NHWC inputs, torch 2.13.0
  CPU, outside the project)."""
  from conftest import fixture
  ref = np.load(fixture("interpolate_ref.npz"))
  x, want = ref[f"{case}_in"], ref[f"{case}_out"]
  got = np.asarray(objective.histogram_input(jnp.asarray(x), want.shape[1]))
  assert got.shape == want.shape
  assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
  # and it is differentiable (the generated side is on the gradient's path)
  g = jax.grad(lambda v: jnp.sum(objective.histogram_input(v, want.shape[1]) ** 2))(
      jnp.asarray(x))
  assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0
