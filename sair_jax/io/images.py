"""Reading and writing images on disk: float32 HWC arrays in [0, 1] <-> 8-bit files.

Every failure becomes a one-line :class:`ImageIOError` that names the file, so command-line
tools can print it and exit without a traceback. Writes are atomic: the bytes go to a temporary
sibling first and are renamed into place with ``os.replace``, so an interrupted run never leaves
a truncated file under the final name.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image
from PIL import UnidentifiedImageError

from sair_jax.errors import InputError
from sair_jax.io.files import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImageIOError(InputError):
  """An image could not be read. One line, names the path."""


def read_image(path: str | os.PathLike) -> np.ndarray:
  """Reads an image file as RGB float32, shape [H, W, 3], values in [0, 1].

  Grey-scale and palette images are expanded to RGB; an alpha channel is dropped.
  """
  path = os.fspath(path)
  try:
    with Image.open(path) as img:
      img.load()
      rgb = img.convert("RGB")
  except FileNotFoundError:
    raise ImageIOError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise ImageIOError(f"{path}: is a directory, not an image") from None
  except UnidentifiedImageError:
    raise ImageIOError(f"{path}: not a recognised image format") from None
  except Exception as e:  # PIL raises assorted types for damaged or foreign files
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ImageIOError(f"{path}: cannot read image ({reason})") from None
  return np.asarray(rgb, dtype=np.float32) / 255.0  # [H, W, 3]


def to_uint8(array: np.ndarray) -> np.ndarray:
  """Float images in [0, 1] -> uint8 (clipped, rounded); uint8 input is returned unchanged."""
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array
  return np.round(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_image(array: np.ndarray, fmt: str = "PNG", **save_kwargs) -> bytes:
  """Encodes an [H, W], [H, W, 1] or [H, W, 3] image (float in [0, 1] or uint8) to bytes."""
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
