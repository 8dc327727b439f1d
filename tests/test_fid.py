"""FID: the Fréchet distance against closed forms and scipy, pytorch-fid's resize, and the
FID-Inception golden features (from ../shared: 44 MB, skipped when absent)."""

import numpy as np
import pytest

from conftest import shared
from converters import fid_inception as converter
from converters.common import ConversionError
from sair_jax.io.torch_reader import load_torch_file
from sair_jax.metrics import fid
from sair_jax.nets import inception

TOL = 1e-4


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / np.abs(b).max())


def random_rotation(d, rng):
  q, r = np.linalg.qr(rng.standard_normal((d, d)))
  return q * np.sign(np.diag(r))


# ------------------------------------------------------------------------- Fréchet distance


@pytest.mark.parametrize("d", [1, 5, 64])
def test_diagonal_gaussians_closed_form(d):
  rng = np.random.default_rng(d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  got = fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
  assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("d", [3, 40])
def test_commuting_full_covariances_closed_form(d):
  rng = np.random.default_rng(10 + d)
  q = random_rotation(d, rng)
  a, b = rng.uniform(0.01, 2, d), rng.uniform(0.01, 2, d)
  s1, s2 = (q * a) @ q.T, (q * b) @ q.T
  expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fid.frechet_distance(np.zeros(d), s1, np.zeros(d), s2) == pytest.approx(
      expected, rel=1e-8)


@pytest.mark.parametrize("d", [8, 100])
def test_general_covariances_match_scipy_sqrtm(d):
  scipy_linalg = pytest.importorskip("scipy.linalg")
  rng = np.random.default_rng(20 + d)
  a, b = rng.standard_normal((d, 2 * d)), rng.standard_normal((d, 3 * d))
  s1, s2 = a @ a.T / d, b @ b.T / d
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  covmean = scipy_linalg.sqrtm(s1 @ s2).real
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
  assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_rank_deficient_sets_smaller_than_the_dimension():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((10, 64))  # covariance of rank 9
  shift = rng.normal(size=64)
  assert fid.fid_from_features(f, f) == pytest.approx(0.0, abs=1e-8)
  assert fid.fid_from_features(f, f + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-8)
  g = rng.standard_normal((12, 64)) * 2
  assert fid.fid_from_features(f, g) > 1.0


def test_statistics_match_numpy_cov_and_reject_single_vectors():
  f = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
  mu, sigma = fid.statistics(f)
  assert mu.dtype == sigma.dtype == np.float64
  np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False), rtol=1e-12)
  with pytest.raises(ValueError, match="at least two"):
    fid.statistics(f[:1])


def test_statistics_file_round_trip(tmp_path):
  mu, sigma = np.arange(3.0), np.eye(3) * 2
  fid.save_statistics(tmp_path / "s.npz", mu, sigma)
  m2, s2 = fid.load_statistics(tmp_path / "s.npz")
  np.testing.assert_array_equal(m2, mu)
  np.testing.assert_array_equal(s2, sigma)
  np.savez(tmp_path / "bad.npz", x=mu)
  with pytest.raises(ValueError, match="bad.npz"):
    fid.load_statistics(tmp_path / "bad.npz")


# ---------------------------------------------------------------------- pytorch-fid's resize


@pytest.mark.parametrize("n_in, n_out, expected", [
    (2, 4, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]]),  # torch's align_corners=False
    (4, 2, [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]]),  # shrinking: no antialiasing
    (3, 3, np.eye(3)),
])
def test_bilinear_matrix_is_torchs(n_in, n_out, expected):
  np.testing.assert_allclose(inception.bilinear_matrix(n_in, n_out), expected, atol=1e-7)


def test_every_conv_has_a_spec():
  specs = inception.conv_specs()
  assert len(specs) == 94 and specs["Mixed_7b.branch3x3_2a"] == ((1, 3), 1, (0, 1))


# ------------------------------------------------------------------------------ golden (shared)


@pytest.fixture(scope="module")
def fid_state():
  path = shared("fixtures/fid_inception_random.pth")
  return str(path), dict(load_torch_file(str(path)))


def test_golden_pool3_through_a_saved_checkpoint(fid_state, tmp_path):
  src, _ = fid_state
  ref = np.load(shared("fixtures/fid_inception_ref.npz"))
  x = ref["x"][:2].transpose(0, 2, 3, 1)  # NCHW -> NHWC, [0, 1], 128 x 128
  meta = converter.convert_file(src, str(tmp_path / "fid"))
  assert meta["pool3_dim"] == 2048
  model = fid.load(str(tmp_path / "fid"))
  feats = np.asarray(model.features(x))
  assert feats.shape == (2, 2048)
  assert rel_err(feats, ref["pool3"][:2]) <= TOL


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({"fc.weight": np.zeros((1008, 2048), np.float16),
                         "fc.bias": np.zeros(1008, np.float16)}), None),  # the real file's fc
    (lambda s: s.pop("Mixed_6c.branch7x7_3.bn.running_var"), "Mixed_6c.branch7x7_3.bn.running_var"),
    (lambda s: s.update({"Mixed_6c.branch7x7_2.conv.weight": np.zeros((160, 160, 7, 1))}),
     "expected \\[out, in, 1, 7\\]"),
    (lambda s: s.update({"Mixed_5c.branch1x1.conv.weight": np.zeros((64, 250, 1, 1))}),
     "do not chain"),
    (lambda s: s.update({"Mixed_8a.conv.weight": np.zeros(1)}), "not used"),
])
def test_converter_is_strict(fid_state, edit, message):
  src, state = fid_state
  state = dict(state)
  edit(state)
  if message is None:
    params, meta = converter.convert(state, src)
    assert meta["pool3_dim"] == 2048 and "fc" not in params
  else:
    with pytest.raises(ConversionError, match=message):
      converter.convert(state, src)

