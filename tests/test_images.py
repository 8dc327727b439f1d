"""The one image reader (sair_jax.io.images): orientation, bit depth, colour profiles, HEIC,
alpha, and one-line errors, on small files made here and on ../shared/field_cases copies."""

import io
import os
import stat
import struct
import sys

import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import FIXTURES
from sair_jax.io import files, images

CASES = FIXTURES / "field_cases"


def _u8(a):
  return np.round(np.asarray(a) * 255).astype(int)


# ------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation, stored_as", [
    (1, None), (3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90),
    (8, Image.Transpose.ROTATE_270), (2, Image.Transpose.FLIP_LEFT_RIGHT),
    (5, Image.Transpose.TRANSPOSE), (7, Image.Transpose.TRANSVERSE)])
def test_images_are_read_upright(tmp_path, orientation, stored_as):
  """A phone's sideways pixels with their EXIF orientation read as a viewer shows them, and
  the header size agrees."""
  upright = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3) * 3
  stored = Image.fromarray(upright)
  stored = stored if stored_as is None else stored.transpose(stored_as)
  exif = Image.Exif()
  exif[0x0112] = orientation
  stored.save(tmp_path / "p.png", exif=exif)
  np.testing.assert_array_equal(images.read_image(tmp_path / "p.png"),
                                upright.astype(np.float32) / 255)
  assert images.image_size(tmp_path / "p.png") == (6, 4)


@pytest.mark.parametrize("stored, shown", [
    ("exif_orientation/photos/phone.jpg", "exif_orientation/upright_as_displayed.png"),
    ("exif_orientation/testset_refs/face0.jpg", "exif_orientation/testset_ref_upright.png")])
def test_field_case_sideways_jpegs_read_as_displayed(stored, shown):
  got, want = images.read_image(CASES / stored), images.read_image(CASES / shown)
  assert got.shape == want.shape
  assert np.abs(got - want).mean() < 6 / 255  # JPEG noise; sideways would be far off
  with Image.open(CASES / stored) as img:  # the pixels as stored: not what a viewer shows
    raw = np.asarray(img.convert("RGB"), np.float32) / 255
  assert raw.shape != want.shape or np.abs(raw - want).mean() > 20 / 255


# --------------------------------------------------------------------------------- bit depth


@pytest.mark.parametrize("mode, dtype, fmt, name", [
    ("I;16", "<u2", "PNG", "g.png"), ("I;16", "<u2", "TIFF", "g.tif"),
    ("I;16B", ">u2", "TIFF", "g.tiff")])
def test_sixteen_bit_grey_is_scaled_by_its_depth(tmp_path, mode, dtype, fmt, name):
  values = np.asarray([0, 257 * 128, 65535, 257 * 10])  # 8-bit 0, 128, 255, 10
  Image.frombytes(mode, (2, 2), values.astype(dtype).tobytes()).save(tmp_path / name, format=fmt)
  got = images.read_image(tmp_path / name)
  np.testing.assert_allclose(got[..., 0].ravel(), values / 65535, atol=1e-6)
  assert np.all(got[..., 0] == got[..., 2])


def test_32_bit_and_float_images(tmp_path):
  values = np.asarray([0, 2 ** 30, 2 ** 31 - 1], np.int32)
  Image.frombytes("I", (3, 1), values.tobytes()).save(tmp_path / "i.tif")
  np.testing.assert_allclose(images.read_image(tmp_path / "i.tif")[0, :, 0],
                             values / (2 ** 32 - 1), rtol=1e-6)
  floats = np.asarray([0.25, 1.5, -1.0], np.float32)
  Image.frombytes("F", (3, 1), floats.tobytes()).save(tmp_path / "f.tif")
  np.testing.assert_allclose(images.read_image(tmp_path / "f.tif")[0, :, 1], [0.25, 1.0, 0.0])


def test_field_case_sixteen_bit_reads_as_its_eight_bit_twin():
  grey16 = images.read_image(CASES / "sixteen_bit/lq/face0.png")
  grey8 = images.read_image(CASES / "sixteen_bit/lq/face2.png")
  assert np.abs(grey16 - grey8).max() <= 1 / 255 + 1e-6
  rgb16 = images.read_image(CASES / "sixteen_bit/lq/face1.png")
  assert 0.05 < rgb16.mean() < 0.95 and rgb16.std() > 0.01  # not clipped to white
  photo = images.read_image(CASES / "sixteen_bit/photos/scan16.png")
  assert photo.shape == (128, 128, 3) and 0.2 < photo.mean() < 0.8


# ------------------------------------------------------------------------------ ICC profiles


def _xyz(tag_xyz):
  return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in tag_xyz)


def _display_p3_profile() -> bytes:
  """A minimal ICC v2 matrix/TRC profile with Display P3's primaries (D50-adapted, as Apple's
  profile has them) and a gamma 2.2 curve: enough for lcms."""
  desc = b"Display P3 (test)\0"
  tags = {
      b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(desc)) + desc + bytes(4 + 4 + 2 + 1 + 67),
      b"wtpt": _xyz((0.9642, 1.0, 0.8249)),
      b"rXYZ": _xyz((0.5151, 0.2412, -0.0011)),
      b"gXYZ": _xyz((0.2919, 0.6922, 0.0419)),
      b"bXYZ": _xyz((0.1572, 0.0666, 0.7841)),
  }
  curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
  tags.update({b"rTRC": curve, b"gTRC": curve, b"bTRC": curve})
  offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
  for sig, body in tags.items():
    body += bytes(-len(body) % 4)
    table += sig + struct.pack(">II", offset + len(data), len(body))
    data += body
  size = offset + len(data)
  header = (struct.pack(">I", size) + b"none" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
            + bytes(12) + b"acsp" + bytes(4 * 4 + 8 + 4) + _xyz((0.9642, 1.0, 0.8249))[8:]
            + bytes(4) + bytes(44))
  assert len(header) == 128
  return header + struct.pack(">I", len(tags)) + table + data


def test_display_p3_photos_are_converted_to_srgb(tmp_path):
  """A muted red in Display P3 is a more saturated red in sRGB; greys stay grey."""
  pixels = np.asarray([[[128, 64, 64], [128, 128, 128]]], np.uint8)
  Image.fromarray(pixels).save(tmp_path / "p3.png", icc_profile=_display_p3_profile())
  Image.fromarray(pixels).save(tmp_path / "plain.png")
  srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  Image.fromarray(pixels).save(tmp_path / "srgb.png", icc_profile=srgb)
  p3 = _u8(images.read_image(tmp_path / "p3.png"))[0]
  assert p3[0, 0] > 128 + 5 and p3[0, 1] < 64 - 3  # red up, green down
  assert np.abs(p3[1] - 128).max() <= 2
  np.testing.assert_array_equal(_u8(images.read_image(tmp_path / "plain.png")), pixels)
  assert np.abs(_u8(images.read_image(tmp_path / "srgb.png")) - pixels).max() <= 1


def test_a_damaged_profile_leaves_the_pixels_as_stored(tmp_path):
  pixels = np.full((2, 2, 3), 100, np.uint8)
  Image.fromarray(pixels).save(tmp_path / "bad.png", icc_profile=b"not a profile at all")
  np.testing.assert_array_equal(_u8(images.read_image(tmp_path / "bad.png")), pixels)


# -------------------------------------------------------------------------------------- HEIC


def test_heic_photos_read_with_the_extra(tmp_path):
  pillow_heif = pytest.importorskip("pillow_heif")
  pillow_heif.register_heif_opener()
  pixels = np.zeros((16, 16, 3), np.uint8)
  pixels[:, 8:] = (200, 120, 40)
  Image.fromarray(pixels).save(tmp_path / "phone.HEIC", quality=95)
  got = _u8(images.read_image(tmp_path / "phone.HEIC"))
  assert got.shape == (16, 16, 3) and np.abs(got - pixels).mean() < 6


@pytest.mark.parametrize("name", ["phone.heic", "phone.jpg"])  # a HEIC photo misnamed .jpg too
def test_heic_without_the_extra_is_one_line_naming_it(tmp_path, monkeypatch, name):
  (tmp_path / name).write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
  monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails as if not installed
  with pytest.raises(images.ImageIOError) as e:
    images.read_image(tmp_path / name)
  line = str(e.value)
  assert "\n" not in line and line.startswith(str(tmp_path / name))
  assert "sair_jax[heic]" in line and "pillow-heif" in line


# ------------------------------------------------------------------------------------- alpha


@pytest.mark.parametrize("name, mode", [("face0.png", "RGBA"), ("face1.png", "LA"),
                                        ("face2.png", "P")])
def test_alpha_is_composited_over_white(name, mode):
  path = CASES / "alpha/lq" / name
  with Image.open(path) as img:
    assert img.mode == mode
    rgba = np.asarray(img.convert("RGBA"), np.float32) / 255
  decoded = images.decode(path)
  np.testing.assert_allclose(decoded.alpha, rgba[..., 3])
  a = rgba[..., 3:]
  want = rgba[..., :3] * a + images.ALPHA_BACKGROUND * (1 - a)
  np.testing.assert_allclose(images.read_image(path), want, atol=1e-6)


def test_photo_alpha_is_kept_apart():
  decoded = images.decode(CASES / "alpha/photos/cutout.png")
  assert decoded.alpha is not None and decoded.alpha.min() == 0 and decoded.alpha.max() == 1
  clear = decoded.alpha == 0
  assert np.all(images.read_image(CASES / "alpha/photos/cutout.png")[clear] == 1.0)  # white
  assert images.with_alpha(decoded.rgb, decoded.alpha).shape == (128, 128, 4)


# ------------------------------------------------------------------------------------ errors

FAILED_DOWNLOADS = {
    "empty": (b"", "empty file"),
    "html": (b"<!DOCTYPE html>\n<html><head><title>Sign in</title>", "an HTML page"),
    "lfs": (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 5\n",
            "a Git LFS pointer"),
}


@pytest.mark.parametrize("kind", sorted(FAILED_DOWNLOADS))
@pytest.mark.parametrize("reader, suffix, error", [
    (images.read_image, ".png", images.ImageIOError),
    (files.read_npy, ".npy", files.UnreadableFileError)])
def test_failed_downloads_say_what_they_are(tmp_path, kind, reader, suffix, error):
  data, says = FAILED_DOWNLOADS[kind]
  path = tmp_path / f"face0{suffix}"
  path.write_bytes(data)
  with pytest.raises(error) as e:
    reader(path)
  assert str(e.value).startswith(f"{path}: {says}") and "\n" not in str(e.value)


def test_damaged_images_are_one_line(tmp_path):
  good = io.BytesIO()
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good, format="PNG")
  (tmp_path / "cut.png").write_bytes(good.getvalue()[:60])
  for path, says in ((tmp_path / "cut.png", "cannot read image"),
                     (tmp_path / "absent.png", "no such file"), (tmp_path, "is a directory")):
    with pytest.raises(images.ImageIOError, match="^" + str(path) + ": " + says):
      images.read_image(path)


def test_written_files_get_the_permissions_open_would_give(tmp_path):
  """Atomic writes go through a private temporary (mode 0600); the file in place gets what
  ``open()`` gives under the process's umask, so other users can read a run's results."""
  mask = os.umask(0o022)
  os.umask(mask)
  plain = tmp_path / "plain.bin"
  plain.write_bytes(b"x")
  files.atomic_write(tmp_path / "atomic.bin", b"x")
  images.write_image(tmp_path / "face.png", np.zeros((4, 4, 3)))
  want = stat.S_IMODE(os.stat(plain).st_mode)
  assert want == 0o666 & ~mask
  for name in ("atomic.bin", "face.png"):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == want, name
