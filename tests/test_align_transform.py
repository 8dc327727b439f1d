"""The alignment transform: where align_face's output pixels come from in the photo."""

import numpy as np
import pytest

from sair_jax.face import align


def face_landmarks(centre, side, angle=0.0):
  """68 landmarks of a face whose FFHQ quad has ``side`` and ``centre``, turned by ``angle``.

  Built from FFHQ's canonical 1024 layout (eyes 256 px apart on y = 486.4, mouth corners 256 px
  below them, quad = the image square); only the eyes (36-47) and mouth corners (48, 54) matter.
  """
  lm = np.full((68, 2), [512.0, 486.4])
  lm[36:42], lm[42:48] = [384.0, 486.4], [640.0, 486.4]
  lm[48], lm[54] = [462.0, 742.4], [562.0, 742.4]
  c, s = np.cos(angle), np.sin(angle)
  quad_centre = np.asarray([512.0, 512.0])
  return ((lm - quad_centre) * side / 1024) @ np.asarray([[c, -s], [s, c]]).T + centre


def blob_photo(height, width, centres, sigma):
  """Grey Gaussian blobs (peak 1) on black: [H, W, 3] float32."""
  yy, xx = np.mgrid[:height, :width].astype(np.float64)
  img = np.zeros((height, width))
  for cx, cy in centres:
    img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
  return np.repeat(np.clip(img, 0, 1)[..., None], 3, axis=-1).astype(np.float32)


def centroid(img, x, y, radius):
  """Intensity centroid (x, y) of ``img`` [H, W] in the window of ``radius`` around (x, y)."""
  ix, iy = int(round(x)), int(round(y))
  win = img[iy - radius:iy + radius + 1, ix - radius:ix + radius + 1]
  yy, xx = np.mgrid[iy - radius:iy + radius + 1, ix - radius:ix + radius + 1]
  return np.asarray([(win * xx).sum(), (win * yy).sum()]) / win.sum()


@pytest.mark.parametrize("photo_hw, centre, side, angle, size, sigma, spacing, shrink", [
    ((360, 401), (200, 180), 220, 0.3, 128, 4, 30, 0),  # no pre-shrink, rotated
    ((801, 899), (450, 400), 600, -0.4, 128, 10, 100, 2),  # FFHQ's pre-shrink by 2
    ((800, 901), (450, 400), 700, 0.2, 64, 20, 200, 5),  # by 5, 901 px not a multiple of 5
])
def test_blobs_land_where_the_transform_says(photo_hw, centre, side, angle, size, sigma, spacing,
                                             shrink):
  """Blob centres in the photo, mapped by the transform, are the blobs' centroids in
  align_face's output: geometry checked against Pillow's actual warp, not re-derived."""
  h, w = photo_hw
  lm = face_landmarks(centre, side, angle)
  assert align._shrink(align.ffhq_quad(lm)[1], size) == shrink  # the case the row means to test
  gx, gy = np.meshgrid(np.arange(spacing / 2, w, spacing), np.arange(spacing / 2, h, spacing))
  centres = np.stack([gx.ravel(), gy.ravel()], axis=1) + 0.37  # off the pixel grid
  aligned, t = align.align_face_with_transform(blob_photo(h, w, centres, sigma), lm, size)
  out = aligned[..., 0].astype(np.float64)
  radius = int(np.ceil(3 * sigma * size / t.side)) + 1  # 3 sigma of a blob, in aligned pixels
  predicted = t.photo_to_pixels(centres, size)
  inside = np.all((predicted >= radius + 1) & (predicted < size - radius - 1), axis=1)
  assert inside.sum() >= 4
  errors = [np.hypot(*(centroid(out, x, y, radius) - (x, y))) for x, y in predicted[inside]]
  # Observed max 0.009 / 0.010 / 0.042 aligned px. Ignoring the shrink step's half-pixel
  # convention (mapping through quad / shrink alone) gives 0.28 / 0.31 px in the shrunk cases.
  assert max(errors) < 0.08


def test_transform_is_align_face_s_and_consistent():
  rng = np.random.default_rng(0)
  photo = rng.random((300, 280, 3)).astype(np.float32)
  lm = face_landmarks((150, 140), 200, 0.4)
  aligned, t = align.align_face_with_transform(photo, lm, 64)
  np.testing.assert_array_equal(aligned, align.align_face(photo, lm, 64))
  assert t.photo_size == (300, 280)
  # No pre-shrink at this size: the square's corners are exactly ffhq_quad's corners.
  np.testing.assert_allclose(t.quad, align.ffhq_quad(lm)[0], atol=1e-9)
  assert t.side == pytest.approx(align.ffhq_quad(lm)[1])
  pts = rng.uniform(-10, 300, (20, 2))
  np.testing.assert_allclose(t.to_photo(t.to_aligned(pts)), pts, atol=1e-9)
  np.testing.assert_allclose(t.pixels_to_photo(t.photo_to_pixels(pts, 64), 64), pts, atol=1e-9)
  # Upscaling the photo by 3 moves pixel centres as x' + 0.5 = 3 (x + 0.5).
  up = t.upscaled(3)
  assert up.photo_size == (900, 840)
  uv = rng.random((5, 2))
  np.testing.assert_allclose(up.to_photo(uv), (t.to_photo(uv) + 0.5) * 3 - 0.5, atol=1e-9)
