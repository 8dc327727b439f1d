"""Evaluation metrics (paper Table 1 and more), all on NHWC images in [0, 1].

* :mod:`.image` — PSNR, SSIM (pure, jitted, batched).
* :mod:`.lpips` — LPIPS v0.1 AlexNet (``python -m converters.lpips``).
* :mod:`.fid` — FID-Inception features and the Fréchet distance (``python -m
  converters.fid_inception``).
* :mod:`.identity` — ArcFace cosine similarity; dlib's face-descriptor distance as an independent
  judge (optional extra ``landmarks``).
* :mod:`.stats` — means with seeded bootstrap confidence intervals.
"""

from sair_jax.metrics.image import psnr, ssim

__all__ = ["psnr", "ssim"]
