"""Paste-back: restored faces warped into their photo, blended with a feathered mask.

The real face is scikit-image's ``astronaut`` (public domain), committed as
tests/fixtures/astronaut.png.
"""

import numpy as np
import pytest

from conftest import fixture
from sair_jax.face import align
from sair_jax.face import paste
from sair_jax.io.images import read_image
from test_align_transform import face_landmarks

# The astronaut's FFHQ layout: eye centres and outer mouth corners as dlib places them (inputs,
# rounded; the quad they give has a side of 175 px).
ASTRONAUT_EYES = ([203.2, 101.5], [246.8, 104.0])
ASTRONAUT_MOUTH = ([201.0, 140.0], [245.0, 141.0])


def astronaut_landmarks():
  lm = np.tile(np.mean(ASTRONAUT_EYES, axis=0), (68, 1))
  lm[36:42], lm[42:48] = ASTRONAUT_EYES
  lm[48], lm[54] = ASTRONAUT_MOUTH
  return lm


@pytest.fixture(scope="module")
def astronaut():
  return (read_image(fixture("astronaut.png")) * 255).round().astype(np.uint8)  # [512, 512, 3]


def psnr(a, b):
  return -10 * np.log10(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


@pytest.fixture(scope="module")
def aligned_1024(astronaut):
  return align.align_face_with_transform(astronaut, astronaut_landmarks(), 1024)


def test_pasting_the_aligned_crop_back_reproduces_the_photo(astronaut, aligned_1024):
  face, t = aligned_1024
  photo = astronaut.astype(np.float32) / 255
  out = paste.paste_back(astronaut, face, t)
  weights = paste.paste_weights(t, 512, 512)
  full, none = weights == 1, weights == 0
  assert full.sum() > 0.5 * t.side ** 2 and none.sum() > 0.5 * 512 ** 2  # both regions are real
  # Observed 36.8 dB. The crop is the photo resampled twice (FFHQ's 4x bilinear warp + Lanczos,
  # then the paste's cubic), each a mild low-pass; moving the paste by a quarter pixel already
  # costs 2.6 dB (34.2 dB), by half a pixel 6 dB, so 34.5 dB pins the geometry below 1/4 px.
  assert psnr(out[full], photo[full]) > 34.5
  np.testing.assert_array_equal(out[none], photo[none])  # untouched outside the warped mask
  assert np.all(weights[0] == 0) and np.all(weights[:, -1] == 0)  # the face is far from these


def test_upscaled_paste_matches_the_upscaled_photo(astronaut, aligned_1024):
  face, t = aligned_1024
  up = paste.upscale_photo(astronaut, 2)
  out = paste.paste_back(astronaut, face, t, scale=2)
  weights = paste.paste_weights(t.upscaled(2), 1024, 1024)
  assert out.shape == (1024, 1024, 3) and out.dtype == np.float32
  # Observed 43.3 dB: at twice the photo's size the 1024 crop is sampled more finely, and the
  # bicubic upscale is itself smooth. A quarter-pixel (of the photo) error would cost > 5 dB.
  assert psnr(out[weights == 1], up[weights == 1]) > 38
  np.testing.assert_array_equal(out[weights == 0], up[weights == 0])


@pytest.mark.parametrize("region", paste.REGIONS)
@pytest.mark.parametrize("scale", [1, 3])
def test_only_the_mask_changes_and_full_weight_is_the_face(region, scale):
  """A magenta 256 face into a grey photo: where the weight is 0 the photo is untouched (bit for
  bit), where it is 1 the face replaces it, in between the blend is linear in the weight."""
  rng = np.random.default_rng(1)
  photo = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
  t = align.align_transform(face_landmarks((80, 60), 70, 0.5), photo.shape[:2], 64)
  face = np.zeros((256, 256, 3), np.float32)
  face[..., 0] = face[..., 2] = 1.0
  out = paste.paste_back(photo, face, t, region=region, feather=0.15, scale=scale)
  base = paste.upscale_photo(photo, scale)
  w = paste.paste_weights(t.upscaled(scale), 120 * scale, 150 * scale, region=region,
                          feather=0.15)
  assert out.shape == base.shape
  assert (w == 0).sum() > 0 and (w == 1).sum() > 0 and ((w > 0) & (w < 1)).sum() > 0
  np.testing.assert_array_equal(out[w == 0], base[w == 0])
  np.testing.assert_allclose(out[w == 1], np.broadcast_to(face[0, 0], out[w == 1].shape),
                             atol=1e-6)  # the cubic's normalised weights sum to 1 +- rounding
  mid = (w > 0) & (w < 1)
  np.testing.assert_allclose(out[mid], base[mid] * (1 - w[mid, None]) + face[0, 0] * w[mid, None],
                             atol=1e-5)


@pytest.mark.parametrize("region", paste.REGIONS)
def test_region_weights_are_zero_outside_one_inside_and_feathered(region):
  inner = {"square": (0.5, 0.5), "head": (0.5, 0.5), "face": (0.5, 0.62)}[region]
  corners = np.asarray([[0.0, 0.0], [1.0, 1.0], [-0.2, 0.5], [0.5, 1.3]])
  assert np.all(paste.region_weights(corners, region, 0.1) == 0)
  assert paste.region_weights(np.asarray([inner]), region, 0.1)[0] == 1
  # Along a line from the centre outwards the weight never rises, and reaches 0 at the edge.
  line = np.stack([np.linspace(inner[0], 1.0, 200), np.full(200, inner[1])], axis=1)
  w = paste.region_weights(line, region, 0.1)
  assert np.all(np.diff(w) <= 1e-7) and w[-1] == 0 and np.any((w > 0) & (w < 1))
  hard = paste.region_weights(line, region, 0.0)
  assert set(np.unique(hard)) <= {0.0, 1.0}


def test_feathering_a_custom_mask_erodes_then_ramps():
  """A disc of radius 40 in a 100 px mask, feather 0.2 (20 px): 0 outside, 1 deeper than 20 px,
  0.5 at depth 10 px (the smoothstep's midpoint)."""
  yy, xx = np.mgrid[:100, :100] + 0.5
  r = np.hypot(xx - 50, yy - 50)
  soft = paste.feather_mask(r < 40, 0.2)
  assert np.all(soft[r >= 40] == 0) and np.all(soft[r < 19] == 1)
  ring = np.abs(r - 30) < 0.5  # depth ~10 px
  # the distance transform works between pixel centres: depth error below 1 px -> weight +-0.08
  assert np.abs(soft[ring] - 0.5).max() < 0.08


def test_a_custom_mask_limits_the_paste():
  photo = np.full((100, 100, 3), 0.25, np.float32)
  t = align.align_transform(face_landmarks((50, 50), 60), photo.shape[:2], 32)
  mask = np.zeros((32, 32), np.float32)
  mask[:, :16] = 1  # the aligned left half only
  out = paste.paste_back(photo, np.ones((32, 32, 3), np.float32), t, mask=mask, feather=0.05)
  changed = np.any(out != 0.25, axis=-1)
  cols = np.nonzero(changed.any(axis=0))[0]
  assert changed.sum() > 100 and cols.max() <= 50  # upright face: aligned left = photo left


def test_several_faces_and_bad_arguments():
  photo = np.zeros((100, 200, 3), np.float32)
  ts = [align.align_transform(face_landmarks((50 + 100 * i, 50), 60), (100, 200), 32)
        for i in range(2)]
  faces = [np.full((32, 32, 3), v, np.float32) for v in (0.5, 1.0)]
  out = paste.paste_faces(photo, faces, ts)
  assert out[50, 50, 0] == pytest.approx(0.5) and out[50, 150, 0] == pytest.approx(1.0)
  with pytest.raises(ValueError, match="positive integer"):
    paste.paste_faces(photo, faces, ts, scale=1.5)
  with pytest.raises(ValueError, match="2 faces but 1 transforms"):
    paste.paste_faces(photo, faces, ts[:1])
  with pytest.raises(ValueError, match="2 faces but 1 masks"):
    paste.paste_faces(photo, faces, ts, masks=[None])
  with pytest.raises(ValueError, match="unknown paste region 'ears'"):
    paste.paste_back(photo, faces[0], ts[0], region="ears")
  with pytest.raises(ValueError, match=r"photo: expected an RGB image"):
    paste.paste_back(photo[..., 0], faces[0], ts[0])
