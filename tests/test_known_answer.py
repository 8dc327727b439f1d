"""The known-answer problem builder (smoke preset, test_main) and its PSNR table."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import known_answer as known
from sair_jax.core import degradation
from sair_jax.errors import UserError
from sair_jax.io.images import read_image, write_image
from sair_jax.nets import stylegan2
from sair_jax.pipeline import known_answer


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
  """The 32 px fixture generator (8 W+ rows of 256); any fixed G gives a known-answer problem."""
  return stylegan2.load(known.convert_generator(tmp_path_factory.mktemp("ckpt")))


@pytest.fixture(scope="module")
def problem(generator):
  return known_answer.build_problem(generator, 3, 4, seed=5)


def test_problem_shares_only_the_coarse_rows(problem, generator):
  p = problem
  assert p.coarse_rows == generator.n_latent // 2 == 4
  assert p.w_true.shape == p.w_ref.shape == (3, 8, 256)
  np.testing.assert_array_equal(p.w_ref[:, :4], p.w_true[:, :4])
  assert np.all(np.any(p.w_ref[:, 4:] != p.w_true[:, 4:], axis=-1))  # every fine row differs
  assert p.gt.shape == p.ref.shape == (3, 32, 32, 3) and p.lq.shape == (3, 8, 8, 3)
  assert p.gt.min() >= 0 and p.gt.max() <= 1
  np.testing.assert_allclose(p.lq, degradation.bicubic_downsample(jnp.asarray(p.gt), 4), atol=1e-6)
  rendered = np.clip((np.asarray(generator.synthesis(p.w_ref)) + 1) / 2, 0, 1)
  np.testing.assert_allclose(p.ref, rendered, atol=1e-6)
  assert np.abs(p.ref - p.gt).mean() > 1e-3  # the fine rows change the picture


def test_problem_is_seeded(generator, problem):
  again = known_answer.build_problem(generator, 3, 4, seed=5)
  other = known_answer.build_problem(generator, 3, 4, seed=6, coarse_rows=2)
  np.testing.assert_array_equal(again.gt, problem.gt)
  assert not np.array_equal(other.w_true, problem.w_true)
  np.testing.assert_array_equal(other.w_ref[:, :2], other.w_true[:, :2])
  assert np.all(other.w_ref[:, 2:4] != other.w_true[:, 2:4])
  with pytest.raises(ValueError, match="coarse_rows must be in 1..7"):
    known_answer.build_problem(generator, 1, 4, coarse_rows=8)
  with pytest.raises(ValueError, match="factor dividing 32"):
    known_answer.build_problem(generator, 1, 3)


def _psnr(a, b):  # independent: float64 numpy, per image
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(1.0 / mse)


def _pil_bicubic(lq, size):  # independent upsampling: Pillow's bicubic (a = -0.5), float mode
  return np.stack([np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(im[..., c]))
                                        .resize((size, size), Image.BICUBIC))
                             for c in range(3)], axis=-1) for im in lq])


def test_psnr_table_matches_an_independent_computation(problem):
  rng = np.random.default_rng(0)
  restored = np.clip(problem.gt + rng.normal(0, 0.05, problem.gt.shape), 0, 1)
  got = known_answer.known_answer_psnr(restored, problem.gt, problem.lq, problem.ref)
  assert set(got) == set(known_answer.METRICS)
  assert got["restored_psnr"] == pytest.approx(np.mean(_psnr(restored, problem.gt)), abs=1e-3)
  assert got["reference_psnr"] == pytest.approx(np.mean(_psnr(problem.ref, problem.gt)), abs=1e-3)
  up = np.clip(_pil_bicubic(problem.lq, 32), 0, 1)
  # Pillow and jax.image.resize use the same kernel; they may treat the borders differently
  # (a few pixels of 32): 0.05 dB, against differences of several dB between the three rows.
  assert got["bicubic_psnr"] == pytest.approx(np.mean(_psnr(up, problem.gt)), abs=0.05)
  assert got["restored_psnr"] > got["bicubic_psnr"]  # noise 0.05 (26 dB) beats x4 bicubic here


@pytest.mark.parametrize("reference", known_answer.REFERENCE_KINDS)
def test_written_problem_scores_from_its_folders(problem, tmp_path, reference):
  names = known_answer.write_problem(tmp_path, problem, reference=reference)
  assert names == ["face0", "face1", "face2"]
  ext = ".png" if reference == "image" else ".npy"
  assert sorted(p.name for p in (tmp_path / "references").iterdir()) == [n + ext for n in names]
  np.testing.assert_allclose(read_image(tmp_path / "lq" / "face1.png"),
                             np.clip(problem.lq[1], 0, 1), atol=0.5 / 255 + 1e-6)  # 8-bit rounding
  if reference == "latent":
    np.testing.assert_array_equal(np.load(tmp_path / "references" / "face2.npy"), problem.w_ref[2])
  out = tmp_path / "restored"
  out.mkdir()
  for i in (0, 2):  # face1 "failed": not scored
    write_image(out / f"face{i}.png", 1 - problem.gt[i])
  scores = known_answer.score_folder(tmp_path, out)
  read = lambda d, i: read_image(tmp_path / d / f"face{i}.png")
  want = known_answer.known_answer_psnr(
      np.stack([read("restored", i) for i in (0, 2)]), np.stack([read("gt", i) for i in (0, 2)]),
      np.stack([read("lq", i) for i in (0, 2)]), problem.ref[[0, 2]])
  assert scores["images"] == 2
  assert scores["restored_psnr"] == pytest.approx(want["restored_psnr"], abs=1e-6)
  assert scores["bicubic_psnr"] == pytest.approx(want["bicubic_psnr"], abs=1e-6)
  # the reference image (in references/ or, beside latents, reference_images/) is read back
  # through 8 bits: within 0.05 dB of the float image's score
  assert scores["reference_psnr"] == pytest.approx(want["reference_psnr"], abs=0.05)
  if reference == "latent":  # without any reference image there is no reference score
    for f in (tmp_path / known_answer.REFERENCE_IMAGES).iterdir():
      f.unlink()
    assert known_answer.score_folder(tmp_path, out)["reference_psnr"] is None
  table = known_answer.format_scores(scores)
  assert "mean over 2 images" in table and f"{scores['restored_psnr']:6.2f} dB" in table
  assert len(table.splitlines()) == 4


def test_score_folder_without_restored_images_is_one_line(problem, tmp_path):
  known_answer.write_problem(tmp_path, problem)
  (tmp_path / "restored").mkdir()
  with pytest.raises(UserError, match="no restored image matches"):
    known_answer.score_folder(tmp_path, tmp_path / "restored")
