"""Tests of the SAIR loss terms (sair_jax.core.losses) and the learning-rate schedules."""

import functools
import math
import re

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import fixture
from sair_jax.core import losses as L
from sair_jax.core import schedules


def normal(key, shape):
  return jax.random.normal(jax.random.PRNGKey(key), shape)


def uniform(key, shape, lo=0.0, hi=1.0):
  return jax.random.uniform(jax.random.PRNGKey(key), shape, minval=lo, maxval=hi)


# ------------------------------------------------------------------------- PULSE cross loss


def test_cross_loss_matches_golden():
  with np.load(fixture("cross_loss_ref.npz")) as data:
    latent, value = data["latent"], float(data["value"])
  per_image = L.cross_loss(jnp.asarray(latent))
  assert per_image.shape == (latent.shape[0],)
  assert abs(float(jnp.sum(per_image)) - value) <= 1e-5 * abs(value)


@pytest.mark.parametrize("width", [16, 128])
def test_cross_loss_is_squared_angle_times_pulse_constant(width):
  """On a latent narrower than 512 the factor stays PULSE's 512, not the width."""
  theta = 0.7
  a = jnp.zeros(width).at[0].set(3.0)
  b = jnp.zeros(width).at[0].set(3.0 * math.cos(theta)).at[1].set(3.0 * math.sin(theta))
  w = jnp.stack([jnp.stack([a, b]), jnp.stack([a, a])])  # [2, 2, width]
  # the 2x2 angle matrix is [[0, θ], [θ, 0]]: mean of 512·angle² over 4 entries, / 8
  np.testing.assert_allclose(L.cross_loss(w), [theta**2 * 512 * 2 / 4 / 8, 0.0], atol=1e-4)


# -------------------------------------------------------------------- simple terms, values


def test_fidelity_loss_values_and_clamp():
  y = uniform(0, (2, 8, 8, 3))
  x = y.at[1].add(0.1)
  np.testing.assert_allclose(L.fidelity_loss(y, x), [0.0, 0.01], atol=1e-7)
  np.testing.assert_allclose(L.fidelity_loss(y, x, clamp_min=1e-4), [1e-4, 0.01], atol=1e-7)
  # paper Eq. 3: the squared Frobenius norm, a sum over the 8·8·3 values
  np.testing.assert_allclose(L.fidelity_loss(y, x, reduction="sum"), [0.0, 0.01 * 192],
                             rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match="reduction"):
    L.fidelity_loss(y, x, reduction="max")


def test_identity_and_prior_values():
  e = normal(2, (3, 16))
  np.testing.assert_allclose(L.identity_loss(e, 5.0 * e), 0.0, atol=1e-6)  # scale-invariant
  np.testing.assert_allclose(L.identity_loss(e, -e), 2.0, atol=1e-6)
  w, w0 = normal(3, (2, 4, 8)), normal(4, (2, 4, 8))
  np.testing.assert_allclose(L.latent_prior_loss(w, w0), jnp.sum((w - w0) ** 2, axis=(1, 2)),
                             rtol=1e-6)


def test_expression_losses():
  d = normal(5, (4, 8))
  w = normal(6, (2, 4, 8))
  # Eq. 6 is zero when w is along the direction, and tends to zero as γ grows.
  np.testing.assert_allclose(L.expression_loss(jnp.stack([3.0 * d, 3.0 * d]), d), 0.0, atol=1e-6)
  losses = [float(L.expression_loss(w, d, g)[0]) for g in (0.0, 1.0, 10.0, 100.0)]
  assert losses == sorted(losses, reverse=True) and losses[-1] < 1e-3
  flat = lambda t: t.reshape(-1)
  want = 1 - jnp.dot(flat(w[0]), flat(d)) / jnp.linalg.norm(w[0]) / jnp.linalg.norm(d)
  np.testing.assert_allclose(L.expression_loss(w, d)[0], want, rtol=1e-5)
  # Authors' variant: mean |cos| per row; blind to the sign of each row.
  rows = jnp.sum(w * d, -1) / jnp.linalg.norm(w, axis=-1) / jnp.linalg.norm(d, axis=-1)
  np.testing.assert_allclose(L.expression_loss_rows(w, d), 1 - jnp.mean(jnp.abs(rows), -1),
                             rtol=1e-5)
  flipped = w * jnp.array([1.0, -1.0, 1.0, -1.0])[:, None]
  np.testing.assert_allclose(L.expression_loss_rows(flipped, d), L.expression_loss_rows(w, d),
                             rtol=1e-6)
  # one [D] direction shared by every row broadcasts
  np.testing.assert_allclose(L.expression_loss(w, d[0]),
                             L.expression_loss(w, jnp.broadcast_to(d[0], (4, 8))), rtol=1e-6)


# ------------------------------------------------------------------------ skin colour (Eq. 7)

HIST_CASES = [
    dict(variant="paper", color_space="yuv"),
    dict(variant="paper", color_space="rgb", bins=32, width=0.5),
    dict(variant="official", color_space="yuv"),
]
HIST_IDS = ["paper-yuv", "paper-rgb-32", "official-yuv"]


@pytest.fixture(scope="module")
def face():
  """A 24x24 'face': skin-toned noise inside a disc mask, unrelated colours outside."""
  yy, xx = np.mgrid[0:24, 0:24]
  mask = (((yy - 12) ** 2 + (xx - 12) ** 2) < 81).astype(np.float32)  # [H, W]
  skin = jnp.array([0.75, 0.55, 0.45]) + 0.08 * normal(7, (1, 24, 24, 3))
  background = uniform(8, (1, 24, 24, 3))
  x = jnp.where(mask[None, :, :, None] > 0, skin, background)
  return jnp.clip(x, 0.0, 1.0), jnp.asarray(mask)[None]


@pytest.mark.parametrize("kw", HIST_CASES, ids=HIST_IDS)
def test_histogram_zero_for_identical(face, kw):
  x, m = face
  assert float(L.histogram_loss(x, x, m, **kw)[0]) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("kw", HIST_CASES, ids=HIST_IDS)
def test_histogram_grows_with_colour_shift(face, kw):
  x, m = face
  shifts = [0.0, 0.01, 0.03, 0.06, 0.1, 0.15]
  shifted = jnp.concatenate([jnp.clip(x + jnp.array([s, -s / 2, -s]), 0, 1) for s in shifts])
  vals = np.asarray(L.histogram_loss(jnp.repeat(x, len(shifts), 0), shifted, m, **kw))
  assert np.all(np.diff(vals) > 0), vals


@pytest.mark.parametrize("kw", HIST_CASES, ids=HIST_IDS)
def test_histogram_ignores_order_inside_and_pixels_outside_mask(face, kw):
  x, m = face
  y = jnp.clip(x + 0.05, 0, 1)
  base = float(L.histogram_loss(x, y, m, **kw)[0])
  # permute the pixels inside the mask
  inside = np.flatnonzero(np.asarray(m[0]).reshape(-1))
  perm = np.arange(24 * 24)
  perm[inside] = np.random.default_rng(0).permutation(inside)
  xp = x.reshape(1, -1, 3)[:, perm].reshape(x.shape)
  assert not np.allclose(xp, x)
  assert float(L.histogram_loss(xp, y, m, **kw)[0]) == pytest.approx(base, rel=1e-5)
  # change everything outside the mask
  junk = jnp.where(m[..., None] > 0, x, 1.0 - x)
  assert float(L.histogram_loss(junk, y, m, **kw)[0]) == pytest.approx(base, rel=1e-6)


def test_histogram_measures_wasserstein_distance():
  """Two flat colours a, b: the paper variant is Σ_c |a_c − b_c| (1-D W1 per channel)."""
  a = jnp.full((1, 4, 4, 3), jnp.array([0.2, 0.5, 0.7]))
  b = jnp.full((1, 4, 4, 3), jnp.array([0.3, 0.35, 0.72]))
  m = jnp.ones((1, 4, 4))
  got = float(L.histogram_loss(a, b, m, color_space="rgb", bins=128, width=0.5)[0])
  assert got == pytest.approx(0.1 + 0.15 + 0.02, abs=2 / 128)


def test_histogram_mask_weights_are_weights_not_zero_pixels():
  x = jnp.full((1, 2, 2, 3), 0.6)
  y = x.at[0, 0, 0].set(0.1)
  weights = jnp.array([[[0.0, 1.0], [1.0, 1.0]]])  # the changed pixel has weight 0
  assert float(L.histogram_loss(x, y, weights)[0]) == pytest.approx(0.0, abs=1e-7)
  assert float(L.histogram_loss(x, y, weights[..., None])[0]) == pytest.approx(0.0, abs=1e-7)
  half = weights.at[0, 0, 0].set(0.5)  # the changed pixel at half weight counts half as much
  full = jnp.ones((1, 2, 2))
  np.testing.assert_allclose(L.histogram_loss(x, y, half),
                             L.histogram_loss(x, y, full) * (0.5 / 3.5) / (1 / 4), rtol=1e-4)
  # a zeroed-out (not excluded) pixel would have counted as black
  assert float(L.histogram_loss(x * weights[..., None], x, jnp.ones((1, 2, 2)))[0]) > 0.05


# ------------------------------------------------ the official variant: the authors' script


def test_official_histogram_matches_golden():
  """The script's EMD (float32, batch of one) and its gradient, from histogram_ref.npz.

  Tolerances are the issue's: an implementation whose float32 pow rounds differently can flip
  the few pixels whose weight sits on the threshold t(v) = v > 1.
  """
  with np.load(fixture("histogram_ref.npz")) as data:
    x, y = (jnp.asarray(data[k]).transpose(0, 2, 3, 1) for k in ("x", "y"))  # NCHW -> NHWC
    mask, emd, grad = jnp.asarray(data["mask"]), data["emd"], data["grad"]
    bins = int(data["bins"])
  fn = lambda a: L.histogram_loss(a, y, mask, bins=bins, variant="official") * 256.0**2
  np.testing.assert_allclose(fn(x), emd, rtol=1e-3)
  got = jax.grad(lambda a: jnp.sum(fn(a)))(x).transpose(0, 3, 1, 2)
  assert float(jnp.max(jnp.abs(got - grad))) <= 2e-2 * np.max(np.abs(grad))
  assert float(jnp.max(jnp.abs(got))) > 0


def dense_official_emd(x, y, mask, bins):
  """SPEC's formula transcribed densely (pixels × bins), float32 like the script: one image."""
  edges = np.linspace(-0.05, 1.05, bins + 1)
  h = (edges[1] - edges[0]) / 2
  centres = jnp.asarray(edges[:-1] + h, jnp.float32)
  rgb_to_yuv = jnp.array([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436],
                          [0.615, -0.51499, -0.10001]])

  def hist(img):  # [H, W, 3] -> [3, bins]
    r, g, b = [img[..., i] * mask for i in range(3)]
    channels = [(m[0] * r + m[1] * g + m[2] * b + 1) / 2 for m in rgb_to_yuv]
    vals = jnp.stack([c.reshape(-1) for c in channels])  # [3, N]
    v = jnp.power(jnp.float32(1.01), jnp.float32(h) - jnp.abs(vals[..., None] - centres))
    return jnp.sum(jnp.where(v > 1, v, 0.0), axis=1)  # [3, N, bins] -> [3, bins]

  gap = jnp.cumsum(hist(x), -1) - jnp.cumsum(hist(y), -1)
  return jnp.mean(jnp.sum(gap**2, -1)) / 256.0**2


@pytest.mark.parametrize("shape,bins", [((17, 23), 256), ((40, 36), 256), ((31, 9), 32)])
def test_official_histogram_matches_dense_formula_on_other_sizes(shape, bins):
  h, w = shape
  x, y = uniform(20, (2, h, w, 3)), uniform(21, (2, h, w, 3), 0.1, 0.9)
  mask = (uniform(22, (2, h, w)) > 0.4).astype(jnp.float32)
  fn = functools.partial(L.histogram_loss, bins=bins, variant="official")
  dense = jax.vmap(lambda a, b, m: dense_official_emd(a, b, m, bins))
  np.testing.assert_allclose(fn(x, y, mask), jax.jit(dense)(x, y, mask), rtol=1e-5)
  grad = lambda f: jax.jit(jax.grad(lambda a: jnp.sum(f(a, y, mask))))(x)
  got, want = grad(fn), grad(dense)
  assert float(jnp.max(jnp.abs(got - want))) <= 1e-4 * float(jnp.max(jnp.abs(want)))
  assert bool(jnp.all(jnp.where(mask[..., None] == 0, got == 0, True)))  # masked: no gradient


def test_official_histogram_counts_masked_out_pixels_as_black():
  """Every pixel is binned: masking out a pixel is not the same as leaving it out."""
  x = uniform(23, (1, 6, 6, 3), 0.2, 0.8)
  y = uniform(24, (1, 6, 6, 3), 0.2, 0.8)
  ones = jnp.ones((1, 6, 6))
  holed = ones.at[0, :3].set(0.0)
  # in-mask pixels identical, out-of-mask pixels different: zero, since both become black
  y_same_inside = jnp.where(holed[..., None] > 0, x, y)
  assert float(L.histogram_loss(x, y_same_inside, holed, variant="official")[0]) == 0.0
  # one image's masked-out pixels are black, the other's are its own colours: not zero
  got = L.histogram_loss(x, y_same_inside, holed, ones, variant="official")[0]
  assert float(got) > 0


def _largest_intermediate(jaxpr) -> int:
  """Elements of the largest value any equation of a (closed) jaxpr produces, nested too."""
  biggest = 0
  for eqn in jaxpr.eqns:
    for v in eqn.outvars:
      biggest = max(biggest, int(np.prod(getattr(v.aval, "shape", ()))))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      biggest = max(biggest, _largest_intermediate(sub))
  return biggest


def test_official_histogram_never_builds_a_pixels_by_bins_array():
  x, y = uniform(25, (64, 64, 3)), uniform(26, (64, 64, 3))
  mask = jnp.ones((64, 64))
  value_and_grad = jax.value_and_grad(
      lambda a: L.histogram_loss(a, y, mask, variant="official"))
  biggest = _largest_intermediate(jax.make_jaxpr(value_and_grad)(x).jaxpr)
  assert 64 * 64 * 3 <= biggest < 64 * 64 * 256  # per-pixel arrays only


# --------------------------------------------------------------- every term: grad and vmap


def _terms():
  """name -> (loss of batched arguments, arguments); the gradient is taken w.r.t. the first."""
  x, y = uniform(9, (2, 16, 16, 3)), uniform(10, (2, 16, 16, 3))
  mask = (uniform(11, (2, 16, 16)) > 0.3).astype(jnp.float32)
  w, w0, d = normal(12, (2, 6, 8)), normal(13, (2, 6, 8)), normal(14, (6, 8))
  e, e0 = normal(15, (2, 16)), normal(16, (2, 16))
  return {
      "fidelity": (lambda a, b: L.fidelity_loss(b, a), (x, y)),
      "fidelity_clamped": (lambda a, b: L.fidelity_loss(b, a, 1e-4), (x, y)),
      "identity": (lambda a, b: L.identity_loss(b, a), (e, e0)),
      "prior": (L.latent_prior_loss, (w, w0)),
      "cross": (L.cross_loss, (w,)),
      "expression": (lambda a: L.expression_loss(a, d, 2.0), (w,)),
      "expression_rows": (lambda a: L.expression_loss_rows(a, d), (w,)),
      "hist_paper": (L.histogram_loss, (x, y, mask)),
      "hist_official": (lambda a, b, m: L.histogram_loss(a, b, m, variant="official"),
                        (x, y, mask)),
  }


TERMS = _terms()


@pytest.mark.parametrize("name", sorted(TERMS))
def test_term_per_image_vmap_and_finite_grad(name):
  fn, args = TERMS[name]
  out = fn(*args)
  assert out.shape == (2,)
  per_item = jax.vmap(fn)(*[a[:, None] for a in args])[:, 0]  # vmap over a batch of 1-batches
  np.testing.assert_allclose(per_item, out, rtol=1e-5, atol=1e-7)
  single = fn(*[a[1] for a in args])  # unbatched arguments -> a scalar
  assert single.shape == ()
  np.testing.assert_allclose(single, out[1], rtol=1e-5, atol=1e-7)
  g = jax.grad(lambda a: jnp.sum(fn(a, *args[1:])))(args[0])
  assert bool(jnp.all(jnp.isfinite(g)))
  assert float(jnp.max(jnp.abs(g))) > 0


# ------------------------------------------------------------------------------ schedules


def reference_ramp(i, steps, lr0):
  t = i / steps
  ramp = min(1.0, (1.0 - t) / 0.25)
  ramp = 0.5 - 0.5 * math.cos(math.pi * ramp)
  return lr0 * ramp * min(1.0, t / 0.05)


@pytest.mark.parametrize("steps", [400, 37])
def test_cosine_ramp_matches_formula(steps):
  sched = schedules.make("cosine_ramp", 0.1, steps)
  got = np.asarray(jax.vmap(sched)(jnp.arange(steps + 1)))
  want = [reference_ramp(i, steps, 0.1) for i in range(steps + 1)]
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert got[0] == 0.0 and got[-1] == pytest.approx(0.0, abs=1e-7)
  assert got.max() == pytest.approx(0.1, rel=1e-6)


def test_cosine_ramp_with_the_fast_recipes_ramps_holds_then_falls_to_zero():
  """``fast``: no warm-up (rampup 0 leaves it out, lr at step 0), lr held to step 70 of 100,
  then the authors' cosine down to 0 over the last 30 steps; rampdown 0 leaves the fall out."""
  sched = schedules.make("cosine_ramp", 0.03, 100, rampdown=0.3, rampup=0.0)
  got = np.asarray(jax.vmap(sched)(jnp.arange(101)))
  want = [0.03 * (0.5 - 0.5 * math.cos(math.pi * min(1.0, (100 - i) / 30))) for i in range(101)]
  np.testing.assert_allclose(got, want, atol=1e-7)
  assert np.all(got[:71] == pytest.approx(0.03, rel=1e-6)) and got[85] == pytest.approx(0.015)
  assert np.all(np.diff(got[70:]) < 0) and got[100] == pytest.approx(0.0, abs=1e-9)
  flat = schedules.make("cosine_ramp", 0.1, 40, rampdown=0.0, rampup=0.1)
  np.testing.assert_allclose([float(flat(i)) for i in (0, 2, 4, 39)], [0.0, 0.05, 0.1, 0.1],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="rampdown=1.5"):
    schedules.cosine_ramp(0.1, 100, rampdown=1.5)


def test_the_fast_recipe_reaches_adam_with_its_beta2_and_ramp():
  """``optimizer_from_config`` hands ``solver.betas``, ``rampup`` and ``rampdown`` to Adam: the
  ``fast`` recipe's updates are ``optax.adam`` with β2 0.8 and the held-then-falling lr."""
  from sair_jax.configs import default
  c = default.get_config("official", "fast")
  got_opt = schedules.optimizer_from_config(c, 4)
  want_opt = optax.adam(schedules.cosine_ramp(0.03, 100, rampdown=0.3, rampup=0.0), b1=0.9,
                        b2=0.8)
  grads = jax.random.normal(jax.random.PRNGKey(0), (100, 4, 3))
  w = jnp.zeros((4, 3))
  got_state, want_state = got_opt.init(w), want_opt.init(w)
  seen = {}
  for i in (0, 1, 2, 80, 99):
    got, got_state = got_opt.update(grads[i], got_state, w)
    want, want_state = want_opt.update(grads[i], want_state, w)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    seen[i] = got
  # with β2 0.999 (the standard recipe's) the second step would differ
  slow = optax.adam(schedules.cosine_ramp(0.03, 100, rampdown=0.3, rampup=0.0))
  _, slow_state = slow.update(grads[0], slow.init(w), w)
  slow_second, _ = slow.update(grads[1], slow_state, w)
  assert float(jnp.max(jnp.abs(slow_second - seen[1]))) > 1e-3


def test_solver_settings_are_checked_field_by_field():
  from sair_jax.configs import default
  schedules.check_settings(default.get_config("official", "fast"))  # every recipe is valid
  schedules.check_settings(default.get_config("paper"))
  for field, value, words in [("schedule", "linear", "expected one of constant"),
                              ("start", "w_avg", "expected one of reference"),
                              ("rampdown", -0.1, "in [0, 1]"), ("rampup", 2.0, "in [0, 1]"),
                              ("betas", (0.9, 1.0), "each in [0, 1)"),
                              ("betas", (0.9,), "each in [0, 1)"),
                              ("lr", 0.0, "positive"), ("steps", 0, "at least 1")]:
    c = default.get_config("official")
    c.solver[field] = value
    with pytest.raises(ValueError, match=re.escape(f"config.solver.{field}=") + ".*"
                       + re.escape(words)):
      schedules.check_settings(c)


def test_cosine_decay_goes_from_lr_to_zero():
  sched = schedules.make("cosine_decay", 0.08, 100)
  got = [float(sched(i)) for i in (0, 50, 100, 150)]
  want = [0.08 * (0.5 + 0.5 * math.cos(math.pi * min(i, 100) / 100)) for i in (0, 50, 100, 150)]
  np.testing.assert_allclose(got, want, atol=1e-7)
  assert got[1] == pytest.approx(0.04) and got[2] == got[3] == pytest.approx(0.0, abs=1e-9)


def test_schedules_drive_optax():
  assert float(schedules.make("constant", 0.1, 400)(123)) == pytest.approx(0.1)
  with pytest.raises(ValueError, match="unknown"):
    schedules.make("linear", 0.1, 400)
  opt = optax.adam(schedules.cosine_ramp(0.1, 20))
  w = jnp.ones(3)
  state = opt.init(w)
  first, state = opt.update(jnp.ones(3), state, w)  # lr 0 at step 0
  second, _ = opt.update(jnp.ones(3), state, w)
  assert float(jnp.max(jnp.abs(first))) == 0.0 and float(jnp.min(jnp.abs(second))) > 0
