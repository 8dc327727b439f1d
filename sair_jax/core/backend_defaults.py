"""Settings whose best value depends on the accelerator, chosen in this one place.

A config field set to ``"auto"`` (``solver.compute_dtype``, ``solver.upconv``) takes the value
of the backend the run is on:

| setting | GPU | CPU (and others) | why |
| --- | --- | --- | --- |
| ``compute_dtype`` | ``bfloat16`` | ``float32`` | bf16 restores within 0.2 dB PSNR of float32 on the known-answer test (``tests/test_precision.py``); W+, Adam and the losses stay float32. CPUs have no fast bf16 convolutions. |
| ``upconv`` | ``separable`` | ``separable`` | the 2x up layers without multiplying inserted zeros: half the FLOPs of ``folded`` (XLA's count, ``benchmarks/RESULTS.md``). No GPU timing has shown ``folded`` faster yet; if one does, change the GPU column here. |

Any explicit value in the config wins over ``auto``.
"""

from __future__ import annotations

import jax

DEFAULTS = {
    "gpu": {"compute_dtype": "bfloat16", "upconv": "separable"},
    "other": {"compute_dtype": "float32", "upconv": "separable"},
}


def resolve(setting: str, value: str, platform: str | None = None) -> str:
  """``value`` unless it is ``"auto"``; then the default of ``platform`` (default: JAX's)."""
  if value != "auto":
    return value
  platform = platform or jax.default_backend()
  return DEFAULTS["gpu" if platform in ("gpu", "cuda", "rocm") else "other"][setting]
