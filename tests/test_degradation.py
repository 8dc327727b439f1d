"""Tests of the degradation operator (sair_jax.core.degradation): golden data, a real JPEG encoder,
and the properties every stage must have (shapes, normalisation, jit/vmap/grad safety)."""

import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from conftest import fixture
from sair_jax.core import degradation as D


@pytest.fixture(scope="module")
def ref():
  with np.load(fixture("degradation_ref.npz")) as data:
    return {k: data[k] for k in data.files}


def nhwc(a):
  return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def smooth_image(h, w, batch=1):
  """Smooth colour test image [batch, h, w, 3] in [0.1, 0.9], exactly representable in 8 bits."""
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  imgs = []
  for b in range(batch):
    imgs.append(np.stack([
        0.5 + 0.3 * np.sin(2 * np.pi * xx + 0.3 + b) * np.cos(4.4 * yy),
        0.3 + 0.5 * xx * yy + 0.1 * np.sin(3 * xx),
        0.7 - 0.4 * yy + 0.1 * np.cos(4 * xx * yy)], axis=-1))
  return np.round(np.stack(imgs) * 255) / 255  # [batch, h, w, 3]


def random_image(key, shape=(2, 32, 32, 3)):
  return jax.random.uniform(jax.random.PRNGKey(key), shape)


# ---------------------------------------------------------------------------------- golden


@pytest.mark.parametrize("factor", [4, 8])
def test_bicubic_matches_golden(ref, factor):
  out = D.bicubic_downsample(nhwc(ref[f"bicubic_in_{factor}"]), factor)
  want = nhwc(ref[f"bicubic_out_{factor}"])
  assert out.shape == want.shape
  assert float(jnp.max(jnp.abs(out - want))) <= 1e-5


def test_jpeg_matches_golden(ref):
  out = D.jpeg(nhwc(ref["jpeg_in"]), int(ref["jpeg_quality"]))
  want = nhwc(ref["jpeg_out"])
  assert out.shape == want.shape
  assert float(jnp.max(jnp.abs(out - want))) <= 2e-3


def test_jpeg_golden_needs_the_authors_table_orientation(ref):
  """The libjpeg tables give a clearly different result: the test above is not vacuous."""
  out = D.jpeg(nhwc(ref["jpeg_in"]), int(ref["jpeg_quality"]), tables="ijg")
  assert float(jnp.max(jnp.abs(out - nhwc(ref["jpeg_out"])))) > 2e-3


# ------------------------------------------------------------------------- real JPEG encoder


def pillow_jpeg(img, quality):
  u8 = np.round(img * 255).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling=2)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255


@pytest.mark.parametrize("quality", [10, 30, 90])
def test_hard_jpeg_close_to_pillow(quality):
  """The non-differentiable path with libjpeg's conventions vs a real encoder."""
  img = smooth_image(56, 44)  # not a multiple of 16: exercises pad-and-crop
  ours = D.jpeg(jnp.asarray(img, jnp.float32), quality, differentiable=False, tables="ijg",
                upsampling="fancy")[0]
  theirs = pillow_jpeg(img[0], quality)
  assert ours.shape == theirs.shape
  assert float(np.mean(np.abs(np.asarray(ours) - theirs))) <= 2 / 255
  # ...and the encoder does change the image (the comparison is not identity vs identity).
  assert float(np.mean(np.abs(theirs - img[0]))) > 0.2 / 255


def test_ijg_tables_match_libjpeg_scaling():
  luma, chroma = D.quantisation_tables(10, "ijg")
  assert float(luma[0, 0]) == 80.0 and float(chroma[0, 0]) == 85.0  # floor((16·500+50)/100)
  assert float(jnp.max(chroma)) == 255.0  # baseline clamp
  luma90, _ = D.quantisation_tables(90, "ijg")
  assert float(luma90[0, 1]) == 2.0  # 11·20 -> floor(270/100)


# ------------------------------------------------------------------------- JPEG properties


@pytest.mark.parametrize("h,w", [(32, 32), (20, 27), (9, 40)])
def test_jpeg_any_size(h, w):
  x = random_image(0, (1, h, w, 3))
  out = D.jpeg(x, 50)
  assert out.shape == x.shape
  assert float(jnp.min(out)) >= 0.0 and float(jnp.max(out)) <= 1.0
  assert float(jnp.mean(jnp.abs(out - x))) < 0.25


def test_jpeg_per_image_quality_matches_separate_calls():
  x = jnp.asarray(smooth_image(16, 16, batch=2), jnp.float32)
  both = D.jpeg(x, jnp.array([10.0, 60.0]))
  for i, q in enumerate([10, 60]):
    np.testing.assert_allclose(both[i], D.jpeg(x[i:i + 1], q)[0], atol=1e-6)
  assert float(jnp.max(jnp.abs(both[0] - both[1]))) > 1e-3


def test_jpeg_quality_orders_error():
  x = jnp.asarray(smooth_image(32, 32), jnp.float32)
  errs = [float(jnp.mean(jnp.abs(D.jpeg(x, q) - x))) for q in (10, 50, 90)]
  assert errs[0] > errs[1] > errs[2]


def test_diff_round_close_to_round_with_gradient():
  x = jnp.linspace(-3.0, 3.0, 61)
  assert float(jnp.max(jnp.abs(D.diff_round(x) - jnp.round(x)))) <= 0.125
  g = jax.vmap(jax.grad(D.diff_round))(jnp.arange(-3.0, 3.0) + 0.3)
  np.testing.assert_allclose(g, 3 * 0.3**2, rtol=1e-4)  # d/dx (x - round x)³ off the integers


# ------------------------------------------------------------------------------------ blur


def test_gaussian_kernels_normalised_and_consistent():
  k1 = D.gaussian_kernel1d(1.5, 5)
  k2 = D.gaussian_kernel(1.5, 5)
  assert k1.shape == (11,) and k2.shape == (11, 11)
  np.testing.assert_allclose(float(jnp.sum(k2)), 1.0, rtol=1e-6)
  np.testing.assert_allclose(k2, jnp.outer(k1, k1), atol=1e-7)
  np.testing.assert_allclose(D.gaussian_kernel(1.5, 5, sigma_y=1.5, theta=0.7), k2, atol=1e-7)


def test_anisotropic_gaussian_orientation():
  k = D.gaussian_kernel(3.0, 7, sigma_y=1.0, theta=0.0)  # long along x (columns)
  t = jnp.arange(-7, 8, dtype=jnp.float32)
  var_cols = float(jnp.sum(k.sum(0) * t**2))
  var_rows = float(jnp.sum(k.sum(1) * t**2))
  assert var_cols > 4 * var_rows
  np.testing.assert_allclose(D.gaussian_kernel(3.0, 7, 1.0, np.pi / 2), k.T, atol=1e-6)


def test_blur_is_convolution_of_delta():
  x = jnp.zeros((1, 15, 15, 3)).at[0, 7, 7, :].set(1.0)
  kernel = jnp.arange(1.0, 16.0).reshape(3, 5)  # asymmetric: checks the flip
  out = D.blur(x, kernel, padding="zeros")
  np.testing.assert_allclose(out[0, 6:9, 5:10, 1], kernel, atol=1e-6)
  np.testing.assert_allclose(float(out.sum()), 3 * float(kernel.sum()), rtol=1e-6)


@pytest.mark.parametrize("padding", ["reflect", "edge", "zeros"])
def test_separable_blur_matches_2d(padding):
  """The 1-D (matrix) path equals the 2-D (convolution) path, also for asymmetric taps."""
  x = random_image(1, (2, 12, 10, 3))
  for k1 in (D.gaussian_kernel1d(1.2, 3), jnp.array([0.1, 0.2, 0.3, 0.4]), jnp.ones(15) / 15):
    np.testing.assert_allclose(D.blur(x, k1, padding), D.blur(x, jnp.outer(k1, k1), padding),
                               atol=1e-5)
  if padding != "zeros":
    const = jnp.full((1, 12, 10, 3), 0.4)
    np.testing.assert_allclose(D.blur(const, D.gaussian_kernel1d(3.0, 9), padding), const,
                               atol=1e-6)


# ------------------------------------------------------------------------------ downsampling


@pytest.mark.parametrize("method", ["bicubic", "area", "bilinear"])
def test_downsample_shapes_and_constants(method):
  const = jnp.full((2, 32, 24, 3), 0.3)
  out = D.downsample(const, 4, method)
  assert out.shape == (2, 8, 6, 3)
  np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_area_and_bilinear_values():
  x = random_image(2, (1, 8, 8, 3))
  cells = x.reshape(1, 4, 2, 4, 2, 3)
  np.testing.assert_allclose(D.downsample(x, 2, "area"), cells.mean(axis=(2, 4)), atol=1e-6)
  # factor 2, align_corners=False: every output sits between 2x2 pixels -> their mean
  np.testing.assert_allclose(D.downsample(x, 2, "bilinear"), cells.mean(axis=(2, 4)), atol=1e-6)


def test_bicubic_taps():
  taps = D.bicubic_taps(4)
  assert taps.shape == (16,)
  np.testing.assert_allclose(taps.sum(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(taps, taps[::-1], atol=1e-7)  # symmetric about the centre


# ------------------------------------------------------------------------------------ noise


def test_noise_sigma_range_and_statistics():
  sig = D.sample_noise_sigma(jax.random.PRNGKey(0), 64, (0.001, 0.003))
  assert sig.shape == (64,)
  assert float(sig.min()) >= np.sqrt(0.001) and float(sig.max()) <= np.sqrt(0.003)
  x = jnp.full((2, 64, 64, 3), 0.5)
  noisy = D.add_gaussian_noise(x, jax.random.PRNGKey(1), jnp.array([0.02, 0.08]))
  std = jnp.std(noisy - x, axis=(1, 2, 3))
  np.testing.assert_allclose(std, [0.02, 0.08], rtol=0.05)
  again = D.add_gaussian_noise(x, jax.random.PRNGKey(1), jnp.array([0.02, 0.08]))
  other = D.add_gaussian_noise(x, jax.random.PRNGKey(2), jnp.array([0.02, 0.08]))
  np.testing.assert_array_equal(noisy, again)
  assert float(jnp.max(jnp.abs(noisy - other))) > 0


# ------------------------------------------------------------------------------ composition


FULL = dict(kernel=D.gaussian_kernel1d(2.0, 6), factor=4, jpeg_quality=40.0)


def test_degrade_stages_compose():
  x = random_image(3, (2, 32, 32, 3))
  np.testing.assert_array_equal(D.degrade(x, D.DegradationParams()), x)
  np.testing.assert_allclose(D.degrade(x, D.DegradationParams(factor=4)),
                             D.bicubic_downsample(x, 4), atol=1e-7)
  p = D.DegradationParams(**FULL)
  want = D.jpeg(D.bicubic_downsample(D.blur(x, FULL["kernel"]), 4), 40.0)
  np.testing.assert_allclose(D.degrade(x, p), want, atol=1e-6)


def test_degrade_noise_needs_key_and_is_seeded():
  x = random_image(4, (2, 16, 16, 3))
  p = D.DegradationParams(factor=2, noise_var_range=(0.001, 0.003))
  with pytest.raises(ValueError, match="PRNG key"):
    D.degrade(x, p)
  a = D.degrade(x, p, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(a, D.degrade(x, p, jax.random.PRNGKey(0)))
  clean = D.bicubic_downsample(x, 2)
  diff = jnp.std(a - clean, axis=(1, 2, 3))
  assert bool(jnp.all((diff > 0.02) & (diff < 0.07)))


def test_degrade_jit_vmap_grad():
  x = random_image(5, (2, 32, 32, 3))
  p = D.DegradationParams(**FULL)
  eager = D.degrade(x, p)
  np.testing.assert_allclose(jax.jit(D.degrade)(x, p), eager, atol=1e-6)  # params as a pytree
  per_image = jax.vmap(lambda im: D.degrade(im[None], p)[0])(x)
  np.testing.assert_allclose(per_image, eager, atol=1e-6)
  g = jax.grad(lambda im: jnp.sum(jnp.square(D.degrade(im, p) - 0.5)))(x)
  assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 0
  gq = jax.grad(lambda q: jnp.sum(D.degrade(x, p.replace(jpeg_quality=q))))(40.0)
  assert np.isfinite(float(gq))
