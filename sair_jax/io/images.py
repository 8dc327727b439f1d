"""Reading and writing images on disk: float32 HWC arrays in [0, 1] <-> image files.

Every command and every flow reads images through :func:`decode` (or :func:`read_image`, its
RGB form), so a file reads the same way everywhere, as an image viewer shows it:

* **Orientation**: the EXIF orientation tag is applied (phones store photos sideways and say so
  in EXIF), with Pillow's ``ImageOps.exif_transpose``.
* **Bit depth**: 16- and 32-bit images (Pillow modes ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``,
  ``I``) are scaled by their bit depth (65535 or 2^32 - 1; a PNG or PNM in mode ``I`` is 16 bit,
  a TIFF says so in its BitsPerSample tag), float images (``F``) are taken as [0, 1] and
  clipped; everything else is 8 bit (Pillow reads 16-bit RGB(A) files as 8 bit).
* **Colour**: an embedded ICC profile (Display P3 on many phones, Adobe RGB, a CMYK press
  profile) is converted to sRGB with Pillow's ``ImageCms`` (relative colorimetric intent);
  images without one are taken as sRGB. A profile lcms cannot read is ignored (pixels as
  stored, as most viewers do). 16/32-bit and float images are read without their profile.
* **HEIC/HEIF** (the default on many phones): through the ``pillow-heif`` plugin, the optional
  extra ``heic`` (``pip install 'sair_jax[heic]'``); without it such a file is a one-line
  error naming the extra.
* **Alpha**: :func:`decode` keeps the alpha channel apart (``Decoded.alpha``; palette images
  with a transparent colour, LA and RGBA all have one). :func:`read_image` composites it over
  white (:data:`ALPHA_BACKGROUND`), which is how LQ faces, references, pool photos, GT images
  and detection copies of photos are read; the photo flow writes the input's alpha back.

Every failure becomes a one-line :class:`ImageIOError` that names the file (an empty file, an
HTML page or a Git LFS pointer in place of the image says so), so command-line tools can print
it and exit without a traceback. Writes are atomic: the bytes go to a temporary sibling first
and are renamed into place with ``os.replace``, so an interrupted run never leaves a truncated
file under the final name.
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np
from PIL import Image
from PIL import ImageCms
from PIL import ImageOps
from PIL import UnidentifiedImageError

from sair_jax.errors import InputError
from sair_jax.io.files import atomic_write, not_what_it_seems

HEIC_EXTENSIONS = (".heic", ".heif", ".hif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff") + HEIC_EXTENSIONS
HEIC_HINT = "pip install 'sair_jax[heic]' (the pillow-heif plugin)"
ALPHA_BACKGROUND = 1.0  # transparent pixels are composited over white by read_image

# ISO base-media brands of HEIF files (bytes 8..12 after 'ftyp'), to name the extra for a HEIC
# photo whatever its extension.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_SRGB = ImageCms.createProfile("sRGB")


class ImageIOError(InputError):
  """An image could not be read. One line, names the path."""


@dataclasses.dataclass(frozen=True)
class Decoded:
  """An image as a viewer shows it (upright, sRGB), its alpha apart."""
  rgb: np.ndarray  # [H, W, 3] float32 in [0, 1], straight (not premultiplied by alpha)
  alpha: np.ndarray | None  # [H, W] float32 in [0, 1]; None: opaque (no alpha channel)

  def composited(self, background: float = ALPHA_BACKGROUND) -> np.ndarray:
    """[H, W, 3] float32: ``rgb`` over a uniform ``background`` by ``alpha``."""
    if self.alpha is None:
      return self.rgb
    a = self.alpha[..., None]
    return (self.rgb * a + np.float32(background) * (1.0 - a)).astype(np.float32)


def _heif_available() -> bool:
  """Whether pillow-heif is installed; registers its opener with Pillow when it is."""
  try:
    import pillow_heif  # pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  pillow_heif.register_heif_opener()
  return True


def _looks_like_heif(path: str) -> bool:
  try:
    with open(path, "rb") as f:
      head = f.read(12)
  except OSError:
    return False
  return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _bit_depth(img: Image.Image) -> int:
  """Bits per sample of a Pillow ``I``-family image (16 or 32)."""
  if img.mode.startswith("I;16"):
    return 16
  tags = getattr(img, "tag_v2", None)  # TIFF: BitsPerSample
  bits = tags.get(258) if tags is not None else None
  if bits:
    return int(bits[0] if isinstance(bits, tuple) else bits)
  return 16 if img.format in ("PNG", "PPM") else 32


def _upright(img: Image.Image) -> Image.Image:
  """``img`` turned as its EXIF orientation says (a damaged EXIF block: as stored)."""
  try:
    return ImageOps.exif_transpose(img)
  except (OSError, ValueError, KeyError, TypeError, SyntaxError):
    return img


def _to_float(img: Image.Image, bits: int) -> Decoded:
  """A loaded, upright Pillow image -> :class:`Decoded` (bit depth, ICC profile, alpha).

  ``bits``: the bits per sample of an ``I``-family image (:func:`_bit_depth`).
  """
  if img.mode == "F" or img.mode == "I" or img.mode.startswith("I;16"):
    raw = np.asarray(img)
    if img.mode == "F":
      grey = np.clip(np.nan_to_num(raw.astype(np.float32)), 0.0, 1.0)
    else:
      scale = float(2 ** bits - 1)
      grey = np.clip(raw.astype(np.float64) / scale, 0.0, 1.0).astype(np.float32)
    return Decoded(np.repeat(grey[..., None], 3, axis=-1), None)
  has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
  alpha = None
  if has_alpha:
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), np.float32) / 255.0
    if img.mode in ("P", "PA", "RGBa", "La"):
      img = rgba  # a palette or premultiplied image: its colours through Pillow's conversion
  icc = img.info.get("icc_profile")
  colour = img
  if has_alpha:
    colour = img.convert({"LA": "L", "La": "L"}.get(img.mode, "RGB"))
  if icc and colour.mode in ("RGB", "L", "CMYK"):
    try:
      src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
      colour = ImageCms.profileToProfile(
          colour, src, _SRGB, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
          outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
      pass  # a damaged or unusable profile: the pixels as stored (documented above)
  rgb = np.asarray(colour.convert("RGB"), np.float32) / 255.0
  return Decoded(rgb, alpha)


def decode(path: str | os.PathLike) -> Decoded:
  """Reads an image file as a viewer shows it (module docstring): upright, sRGB, [0, 1].

  Returns:
    :class:`Decoded`: ``rgb`` [H, W, 3] float32 and ``alpha`` [H, W] float32 or None.
  Raises:
    ImageIOError: one line naming the file (missing, empty, not an image, a HEIC photo without
      the ``heic`` extra, damaged).
  """
  path = os.fspath(path)
  if _looks_like_heif(path) and not _heif_available():  # by content, whatever its extension
    raise ImageIOError(f"{path}: a HEIC/HEIF image; reading it needs the 'heic' extra: "
                       f"{HEIC_HINT}")
  try:
    with Image.open(path) as img:
      img.load()
      bits = _bit_depth(img) if img.mode == "I" or img.mode.startswith("I;16") else 8
      return _to_float(_upright(img), bits)
  except FileNotFoundError:
    raise ImageIOError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise ImageIOError(f"{path}: is a directory, not an image") from None
  except UnidentifiedImageError:
    reason = not_what_it_seems(path) or "not a recognised image format"
    raise ImageIOError(f"{path}: {reason}") from None
  except Exception as e:  # PIL raises assorted types for damaged or foreign files
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ImageIOError(f"{path}: cannot read image ({reason})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
  """Reads an image file as RGB float32, shape [H, W, 3], values in [0, 1].

  As :func:`decode`, with any alpha composited over white (:data:`ALPHA_BACKGROUND`).
  Raises :class:`ImageIOError` (one line naming the file).
  """
  return decode(path).composited()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
  """(H, W) of an image as :func:`read_image` returns it (EXIF orientation applied), from its
  header. Raises :class:`ImageIOError`."""
  path = os.fspath(path)
  try:
    with Image.open(path) as img:
      w, h = img.size
      orientation = img.getexif().get(0x0112, 1)
  except Exception:  # pylint: disable=broad-except
    h, w = decode(path).rgb.shape[:2]  # the one-line error, or a format only decode() knows
    return h, w
  return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def to_uint8(array: np.ndarray) -> np.ndarray:
  """Float images in [0, 1] -> uint8 (clipped, rounded); uint8 input is returned unchanged."""
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array
  return np.round(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def with_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
  """[H, W, 3] and an alpha [H, W] (or None) -> [H, W, 4] (or ``rgb`` unchanged), float."""
  if alpha is None:
    return rgb
  return np.concatenate([np.asarray(rgb, np.float32), np.asarray(alpha, np.float32)[..., None]],
                        axis=-1)


def encode_image(array: np.ndarray, fmt: str = "PNG", **save_kwargs) -> bytes:
  """Encodes an [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (RGBA) image (float in [0, 1] or
  uint8) to bytes."""
  array = to_uint8(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
    raise ImageIOError(f"cannot encode an array of shape {array.shape} as an image")
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format=fmt, **save_kwargs)
  return buf.getvalue()


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
  """Writes an image (float in [0, 1] or uint8; HW, HW1, HW3 or HW4) atomically.

  The format follows the file extension (PNG unless the name says otherwise).
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP",
         ".tif": "TIFF", ".tiff": "TIFF"}.get(ext, "PNG")
  try:
    data = encode_image(array, fmt)
  except ImageIOError as e:
    raise ImageIOError(f"{path}: {e}") from None
  atomic_write(path, data)


def resize_square(img: np.ndarray, size: int, resample=Image.BICUBIC) -> np.ndarray:
  """[H, W, 3] in [0, 1] -> [size, size, 3] through 8-bit PIL resampling (display, masks)."""
  if img.shape[0] == size and img.shape[1] == size:
    return img
  pil = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
  return np.asarray(pil.resize((size, size), resample), np.float32) / 255.0
