"""Landmarks (dlib, optional) and face masks: hull geometry, the FFHQ fallback at any
resolution, and landmarks / masks on the authors' aligned sample faces."""

import numpy as np
import pytest

from conftest import shared
from sair_jax.face import landmarks, masks
from sair_jax.io.images import read_image

needs_dlib = pytest.mark.skipif(not landmarks.available(),
                                reason="dlib / face_recognition_models not installed")


def test_convex_hull_drops_interior_and_collinear_points():
  square = np.asarray([[0, 0], [4, 0], [4, 4], [0, 4]], np.float64)
  inner = np.asarray([[1, 1], [2, 3], [3, 2], [2, 0], [4, 2]], np.float64)  # last two on edges
  hull = masks.convex_hull(np.concatenate([inner, square]))
  assert sorted(map(tuple, hull)) == sorted(map(tuple, square))
  x, y = hull[:, 0], hull[:, 1]
  assert 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) > 0  # counter-clockwise


def test_hull_mask_fills_the_polygon():
  points = np.asarray([[10, 10], [50, 10], [50, 30], [10, 30], [30, 20]], np.float32)
  m = masks.hull_mask(points, 40, 64)
  assert m.shape == (40, 64) and m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0}
  assert m[20, 30] == 1 and m[5, 5] == 0 and m[35, 60] == 0
  assert abs(m.sum() - 41 * 21) <= 41 + 21  # the 40 x 20 rectangle, edges included


@pytest.mark.parametrize("h, w", [(32, 32), (256, 256), (1024, 1024), (90, 120)])
def test_ffhq_mask_at_any_resolution(h, w):
  m = masks.ffhq_mask(h, w)
  assert m.shape == (h, w) and m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0}
  assert m[int(0.62 * h), w // 2] == 1 and m[int(0.5 * h), w // 2] == 1  # between eyes and mouth
  assert m[0, 0] == m[0, -1] == m[-1, 0] == m[-1, -1] == 0
  assert abs(m.mean() - np.pi * 0.27 * 0.27) < 0.02


def test_face_masks_fall_back_without_dlib(monkeypatch):
  def unavailable():
    raise landmarks.LandmarksUnavailable("dlib is not installed")
  monkeypatch.setattr(landmarks, "default_detector", unavailable)
  images = np.zeros((2, 48, 48, 3), np.float32)
  out = masks.face_masks(images)
  assert out.masks.shape == (2, 48, 48) and not out.found.any()
  np.testing.assert_array_equal(out.masks, np.stack([masks.ffhq_mask(48, 48)] * 2))


@pytest.fixture(scope="module")
def faces():
  return {n: read_image(shared(f"sair_samples/ref_{n}.png")) for n in ("obama", "beyonce")}


@needs_dlib
@pytest.mark.parametrize("name", ["obama", "beyonce"])
def test_landmarks_on_aligned_faces(faces, detector, name):
  lm = detector.detect(faces[name])
  assert lm.shape == (68, 2) and lm.dtype == np.float32
  frac = lm / 1024.0
  assert np.all((frac > 0.15) & (frac < 0.97))  # inside the face region, not at the borders
  # FFHQ layout: eyes at about (0.375, 0.47) and (0.625, 0.47), mouth centre about (0.5, 0.74).
  np.testing.assert_allclose(frac[36:42].mean(0), [0.375, 0.47], atol=0.03)
  np.testing.assert_allclose(frac[42:48].mean(0), [0.625, 0.47], atol=0.03)
  np.testing.assert_allclose((frac[48] + frac[54]) / 2, [0.5, 0.74], atol=0.03)
  hull = masks.hull_mask(lm, 1024, 1024)
  assert hull[560:680, 460:560].min() == 1  # the face centre (nose, cheeks)
  assert hull[:100, :100].max() == hull[:100, -100:].max() == 0  # corners
  assert hull[-100:, :100].max() == hull[-100:, -100:].max() == 0
  fallback = masks.ffhq_mask(1024, 1024) > 0
  iou = np.sum(fallback & (hull > 0)) / np.sum(fallback | (hull > 0))
  assert iou > 0.75


@needs_dlib
def test_face_masks_on_a_generated_style_batch(faces, detector):
  """[-1, 1] batch like the generator's: a face gets its hull, noise gets the fallback."""
  from PIL import Image
  face = np.asarray(Image.fromarray((faces["obama"] * 255).astype(np.uint8)).resize((512, 512)),
                    np.float32) / 255.0
  noise = np.random.default_rng(0).uniform(size=(512, 512, 3)).astype(np.float32)
  batch = np.stack([face, noise]) * 2.0 - 1.0  # [2, 512, 512, 3] in [-1, 1]
  out = masks.face_masks(batch, detector)
  assert list(out.found) == [True, False]
  assert out.masks.shape == (2, 512, 512) and out.masks.dtype == np.float32
  np.testing.assert_array_equal(out.masks[1], masks.ffhq_mask(512, 512))
  direct = masks.hull_mask(detector.detect(face), 512, 512)  # landmarks found at 512 px
  assert np.mean(out.masks[0] != direct) < 0.02  # found at 256 px and scaled back: same region
  same = masks.face_masks((batch[:1] + 1.0) / 2.0, detector, value_range=(0.0, 1.0))
  np.testing.assert_array_equal(same.masks[0], out.masks[0])
