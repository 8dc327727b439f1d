"""The paper's test-set degradations: one low-quality (LQ) image synthesised from a ground-truth
(GT) image by a preset, with every parameter drawn recorded.

* ``x32`` (paper, face super-resolution): the authors' anti-aliased bicubic downsampling by 32
  (1024 -> 32), then zero-mean Gaussian noise whose variance is drawn uniformly from
  [0.001, 0.003] per image.
* ``x8`` (paper, robustness): bicubic down to 128×128 (factor = side / 128), with blur before the
  downsampling (Gaussian, σ ~ U[0.5, 1.5] *output* pixels, i.e. σ·factor at full resolution),
  noise as above, and a real JPEG encode (Pillow / libjpeg, quality ~ U{20..60}) at the end.
  ``x8_stages=("random",)`` (default) turns each stage on with probability 1/2; a list such as
  ``("blur", "jpeg")`` applies exactly those.

Noise scale: the variance applies to images in [0, 1] (``noise_domain="unit"``, default; σ ≈
0.032-0.055, i.e. 8-14 grey levels), the scale the authors' degradation operator works on;
``"signed"`` reads it as a variance on [-1, 1] images (σ halved on [0, 1]).

Randomness is per image (:func:`image_key`: the seed folded with the file name), so a re-run, or
a run over a subset, reproduces every image bit for bit. The operator itself (blur, bicubic
downsampling, noise) is :mod:`sair_jax.core.degradation`; the command that degrades a folder is
``python -m sair_jax.degrade``.
"""

from __future__ import annotations

import io
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sair_jax import __version__
from sair_jax.core import degradation
from sair_jax.errors import UserError
from sair_jax.io import images

PRESETS = ("x32", "x8")
X8_STAGES = ("blur", "noise", "jpeg")
X8_BLUR_SIGMA = (0.5, 1.5)  # in output (low-resolution) pixels
X8_JPEG_QUALITY = (20, 60)  # inclusive


class DegradeError(UserError):
  """Bad input or options. One line; names the file when there is one."""


def image_key(seed: int, name: str) -> jax.Array:
  """PRNG key of one image: the run seed folded with a CRC of the file name."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(name.encode("utf-8")))


def _uniform(key: jax.Array, lo: float, hi: float) -> float:
  return float(jax.random.uniform(key, (), minval=lo, maxval=hi))


def _pillow_jpeg(img_u8: np.ndarray, quality: int) -> np.ndarray:
  """Round trip through a real JPEG encoder (Pillow/libjpeg, 4:2:0)."""
  buf = io.BytesIO()
  Image.fromarray(img_u8).save(buf, format="JPEG", quality=int(quality), subsampling=2)
  buf.seek(0)
  with Image.open(buf) as im:
    return np.asarray(im.convert("RGB"))


def degrade_image(x: np.ndarray, name: str, *, preset: str, seed: int = 0,
                  factor: int | None = None, lq_size: int = 128,
                  x8_stages: tuple[str, ...] = ("random",),
                  noise_var: tuple[float, float] = (0.001, 0.003),
                  noise_domain: str = "unit") -> tuple[np.ndarray, dict]:
  """Degrades one image x [H, W, 3] in [0, 1]; returns (uint8 [h, w, 3], parameters dict).

  Raises DegradeError (without the file name; the caller adds it) when the size does not fit.
  """
  h, w = x.shape[:2]
  if preset == "x32":
    factor = 32 if factor is None else factor
  elif preset == "x8":
    if factor is None:
      if h != w or h % lq_size:
        raise DegradeError(f"x8 needs a square image whose side is a multiple of --lq_size="
                           f"{lq_size}, got {w}x{h}")
      factor = h // lq_size
  else:
    raise DegradeError(f"unknown preset {preset!r}")
  if factor < 1 or h % factor or w % factor:
    raise DegradeError(f"size {w}x{h} is not a multiple of the factor {factor}")
  if 3 * factor - (3 * factor) // 2 >= min(h, w):  # the bicubic's reflect padding must fit
    raise DegradeError(f"size {w}x{h} is too small for downsampling by {factor}")

  k_choice, k_blur, k_var, k_noise, k_jpeg = jax.random.split(image_key(seed, name), 5)
  if preset == "x32":
    stages = ("noise",)
  elif tuple(x8_stages) == ("random",):
    on = np.asarray(jax.random.bernoulli(k_choice, 0.5, (len(X8_STAGES),)))
    stages = tuple(s for s, o in zip(X8_STAGES, on) if o)
  else:
    stages = tuple(x8_stages)

  record = {
      "source": name, "preset": preset, "seed": seed, "input_size": [h, w],
      "output_size": [h // factor, w // factor], "factor": factor, "downsample": "bicubic",
      "stages": list(stages), "blur": None, "noise": None, "jpeg": None,
      "sair_jax_version": __version__,
  }
  kernel = None
  if "blur" in stages:
    sigma_lq = _uniform(k_blur, *X8_BLUR_SIGMA)
    sigma_hr = sigma_lq * factor
    radius = math.ceil(3.0 * X8_BLUR_SIGMA[1] * factor)  # one kernel shape: one compilation
    kernel = degradation.gaussian_kernel1d(sigma_hr, radius)
    record["blur"] = {"kind": "gaussian", "sigma_lq": sigma_lq, "sigma_hr": sigma_hr,
                      "radius_hr": radius}
  sigma = None
  if "noise" in stages:
    var = _uniform(k_var, *noise_var)
    sigma = math.sqrt(var) * (0.5 if noise_domain == "signed" else 1.0)
    record["noise"] = {"variance": var, "domain": noise_domain, "sigma_unit": sigma}

  params = degradation.DegradationParams(kernel=kernel, factor=factor,
                                         noise_sigma=sigma, clip=True)
  lq = degradation.degrade(jnp.asarray(x, jnp.float32)[None], params, k_noise)[0]
  lq = images.to_uint8(np.asarray(lq))
  if "jpeg" in stages:
    quality = int(jax.random.randint(k_jpeg, (), X8_JPEG_QUALITY[0], X8_JPEG_QUALITY[1] + 1))
    lq = _pillow_jpeg(lq, quality)
    record["jpeg"] = {"quality": quality, "encoder": "pillow", "subsampling": "4:2:0"}
  return lq, record
