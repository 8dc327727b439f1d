"""Fréchet Inception Distance (Heusel et al. 2017) with pytorch-fid's FID-Inception.

    FID = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

over the pool3 features (2048-d) of two image sets. Features come from
:mod:`sair_jax.nets.inception` (jitted, batched); the statistics and the distance are computed
on the host in float64. The trace of the matrix square root uses the symmetric form

    tr((S_1 S_2)^(1/2)) = tr((S_1^(1/2) S_2 S_1^(1/2))^(1/2)) = sum_i sqrt(max(l_i, 0))

with ``S_1^(1/2)`` from an eigen-decomposition and ``l_i`` the eigenvalues of the symmetric
positive semi-definite matrix ``S_1^(1/2) S_2 S_1^(1/2)`` (both products are similar when S_1 is
invertible, and the identity extends to singular S_1 by continuity). Unlike a general ``sqrtm``
of the non-symmetric ``S_1 S_2`` it never produces complex parts; eigenvalues at the rounding
level are zeroed, which keeps it accurate for the rank-deficient covariances of sets smaller
than the feature dimension.

Usage::

    F = fid.load("checkpoints/fid-inception")      # python -m converters.fid_inception
    feats = F.features(images)                     # [B, H, W, 3] in [0, 1] -> [B, 2048]
    mu, sigma = fid.statistics(all_feats)          # float64 [D], [D, D]
    fid.frechet_distance(mu1, sigma1, mu2, sigma2) # float
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from sair_jax.io import checkpoint, files
from sair_jax.nets import inception, layers
from sair_jax.nets.loaded import LoadedNetwork

KIND = "fid_inception"


@dataclasses.dataclass(frozen=True)
class Arch:
  """The network's widths (hashable), read from the checkpoint by the converter, in meta.json."""
  widths: tuple[tuple[str, int], ...]  # (torch module path, output channels) of every conv
  pool3_dim: int  # width of the pool3 features

  def to_meta(self) -> dict:
    return {"widths": [list(w) for w in self.widths], "pool3_dim": self.pool3_dim}

  @classmethod
  def from_meta(cls, meta: dict) -> "Arch":
    """From a ``meta.json`` dict (a missing field raises KeyError naming it)."""
    return cls(widths=tuple((str(k), int(v)) for k, v in meta["widths"]),
               pool3_dim=int(meta["pool3_dim"]))


def build(arch: Arch) -> inception.InceptionV3:
  """The FID-Inception module of an :class:`Arch`."""
  return inception.InceptionV3(arch.widths)


def param_shapes(arch: Arch) -> Any:
  """Shape tree (tuples) of the parameters of ``arch``."""
  return layers.param_shapes(build(arch), inception.INPUT_SIZE)


def apply(params: Any, arch: Arch, images01):
  """pool3 features [B, D] of images [B, H, W, 3] in [0, 1], any size (pure; use inside jit)."""
  if images01.ndim != 4 or images01.shape[-1] != 3:
    raise ValueError(f"FID-Inception expects images [B, H, W, 3], got {tuple(images01.shape)}")
  return build(arch).apply({"params": params}, inception.preprocess(images01))


class FIDInception(LoadedNetwork):
  """A loaded FID-Inception checkpoint: ``params`` (device arrays), its :class:`Arch`, jitted
  features (the Flax module it runs is :class:`sair_jax.nets.inception.InceptionV3`)."""

  def __init__(self, params: Any, arch: Arch):
    super().__init__(params, arch)
    self._features = self.jit_with_arch(apply)

  @property
  def dim(self) -> int:
    return self.arch.pool3_dim

  def features_fn(self, params: Any, images01):
    """Pure ``(params, images [B, H, W, 3] in [0, 1]) -> [B, D]``."""
    return apply(params, self.arch, images01)

  def features(self, images01):
    """pool3 features [B, D] of images [B, H, W, 3] in [0, 1] (jitted)."""
    return self._features(self.params, jnp.asarray(images01, jnp.float32))


def load(dst: str) -> FIDInception:
  """Loads a checkpoint written by ``python -m converters.fid_inception`` (one-line errors)."""
  return FIDInception(*checkpoint.load_network(dst, KIND, Arch, param_shapes))


# ---------------------------------------------------------------------------------- statistics


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] (unbiased, N - 1) of features [N, D], in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"FID statistics need at least two feature vectors [N, D], got {f.shape}")
  mu = f.mean(axis=0)
  centred = f - mu
  sigma = centred.T @ centred / (f.shape[0] - 1)  # [D, D]
  return mu, sigma


def _clean_eigenvalues(vals: np.ndarray) -> np.ndarray:
  """Eigenvalues of a PSD matrix with rounding noise removed: those below
  ``n · eps · max|λ|`` (indistinguishable from 0 in float64; negative ones included) are set
  to 0, so that their square roots (≈ 1e-8 each) do not pile up for rank-deficient matrices."""
  tol = vals.size * np.finfo(np.float64).eps * max(float(np.abs(vals).max(initial=0.0)), 1e-300)
  return np.where(vals > tol, vals, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric positive semi-definite matrix."""
  s = 0.5 * (s + s.T)
  vals, vecs = np.linalg.eigh(s)
  return (vecs * np.sqrt(_clean_eigenvalues(vals))) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr((S_1 S_2)^(1/2)) for symmetric PSD S_1, S_2 (float64, see the module docstring)."""
  root1 = _psd_sqrt(np.asarray(sigma1, np.float64))
  m = root1 @ np.asarray(sigma2, np.float64) @ root1
  vals = np.linalg.eigvalsh(0.5 * (m + m.T))
  return float(np.sum(np.sqrt(_clean_eigenvalues(vals))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma "
                     f"{sigma1.shape} / {sigma2.shape}")
  diff = mu1 - mu2
  value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
           - 2.0 * trace_sqrt_product(sigma1, sigma2))
  return float(max(value, 0.0))  # >= 0 mathematically; rounding may dip a hair below


def fid_from_features(features1, features2) -> float:
  """FID between two sets of pool3 features [N1, D] and [N2, D]."""
  return frechet_distance(*statistics(features1), *statistics(features2))


def save_statistics(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> None:
  """Writes ``mu``/``sigma`` as an .npz at ``path`` exactly (the layout pytorch-fid's
  precomputed files use), atomically (:func:`sair_jax.io.files.write_npz`)."""
  files.write_npz(path, {"mu": np.asarray(mu, np.float64),
                         "sigma": np.asarray(sigma, np.float64)})


def load_statistics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads an .npz with ``mu`` and ``sigma`` (ours or pytorch-fid's); one-line ValueError."""
  try:
    with np.load(path) as f:
      return np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
  except (OSError, KeyError, ValueError) as e:
    raise ValueError(f"{path}: not an FID statistics file with 'mu' and 'sigma' ({e})") from None
