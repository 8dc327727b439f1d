"""Expression directions by logistic regression (paper §2): one linear classifier per
expression and per W+ row separates that expression's latents from the rest; the unit weight
vector of each classifier is the direction.

:func:`fit_linear` is L2-regularised logistic regression by Newton's method with step halving,
in JAX, chunked over samples and resumable; :func:`membership` turns classifier probabilities
into hard labels; :func:`fit_directions` makes a :class:`Directions` record of the fit.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.expression_directions.file import Directions, DirectionsError, unit_rows
from sair_jax.face.expression import EXPRESSIONS
from sair_jax.io import files


class FitResult(NamedTuple):
  normals: np.ndarray  # [K, R, D] float32, unit (zero where a class had no positives/negatives)
  bias: np.ndarray  # [K, R] float32, intercept for centred latents (x - mean)
  mean: np.ndarray  # [R, D] float32, mean of the training latents
  counts: np.ndarray  # [K] int64, positives among the (masked) training and held-out samples
  accuracy: np.ndarray  # [K, R] float32, held-out (NaN when nothing is held out)
  balanced_accuracy: np.ndarray  # [K, R] float32
  iterations: int


@jax.jit
def _newton_terms(theta, x, y, s, mean):
  """Gradient, Hessian and loss sums of the weighted logistic loss over one chunk.

  theta [K, R, D+1] (weights, bias); x [n, R, D]; y [n, K] in {0, 1}; s [n, K] sample weights;
  mean [R, D]. Returns g [K, R, D+1], h [K, R, D+1, D+1], loss [K, R] (sums over the chunk).
  """
  xc = x - mean  # [n, R, D]
  xa = jnp.concatenate([xc, jnp.ones(xc.shape[:2] + (1,), xc.dtype)], axis=-1)  # [n, R, D+1]
  z = jnp.einsum("nrd,krd->nkr", xa, theta)  # [n, K, R]
  p = jax.nn.sigmoid(z)
  yk = y[:, :, None]  # [n, K, 1]
  sk = s[:, :, None]
  loss = jnp.sum(sk * (jax.nn.softplus(z) - yk * z), axis=0)  # [K, R], -log-likelihood
  g = jnp.einsum("nkr,nrd->krd", sk * (p - yk), xa)  # [K, R, D+1]
  a = sk * p * (1.0 - p)  # [n, K, R]
  h = jnp.einsum("nkrd,nre->krde", a[..., None] * xa[:, None], xa)  # [K, R, D+1, D+1]
  return g, h, loss


@jax.jit
def _predict_counts(theta, x, y, m, mean):
  """Confusion counts [4, K, R] (tp, fn, tn, fp) of ``theta`` on a chunk, masked by m [n]."""
  xc = x - mean
  z = jnp.einsum("nrd,krd->nkr", xc, theta[..., :-1]) + theta[None, :, :, -1]  # [n, K, R]
  pred = z > 0
  pos = (y > 0)[:, :, None] & (m > 0)[:, None, None]
  neg = (y <= 0)[:, :, None] & (m > 0)[:, None, None]
  return jnp.stack([jnp.sum(pos & pred, 0), jnp.sum(pos & ~pred, 0),
                    jnp.sum(neg & ~pred, 0), jnp.sum(neg & pred, 0)])


def _chunks(n: int, size: int):
  for start in range(0, n, size):
    yield start, min(n, start + size)


def fit_linear(x, y, *, mask=None, l2: float = 1e-3, iters: int = 20, tol: float = 1e-6,
               val_fraction: float = 0.1, balanced: bool = True, chunk: int | None = None,
               state_path: str | None = None, log: Callable[[str], None] | None = None
               ) -> FitResult:
  """One-vs-rest linear classifiers per class and per row, by regularised logistic regression.

  Minimises, for every class k and row r independently,
  ``mean_n s_nk * BCE(y_nk, w.(x_nr - mean_r) + b) + l2/2 |w|^2``
  with Newton's method (a failed step is halved). ``s`` weighs positives and negatives equally
  in total when ``balanced`` (expressions are rare), else 1.

  Args:
    x: [N, R, D] latents (any array-like, e.g. a memmap; read in chunks).
    y: [N, K] bool class membership.
    mask: [N] bool, samples to use (default all).
    val_fraction: the last ``round(N * val_fraction)`` samples are held out for the accuracies.
    chunk: samples per device call (default: about 256 MiB of intermediates).
    state_path: if given, the iterate is saved there (.npz, atomically) after every iteration
      and a run with the same inputs resumes from it.
  """
  n, r, d = x.shape
  y = np.asarray(y, bool)
  k = y.shape[1]
  if y.shape[0] != n:
    raise ValueError(f"x has {n} samples, y {y.shape[0]}")
  mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
  n_val = int(round(n * val_fraction))
  n_tr = n - n_val
  if chunk is None:
    chunk = max(64, int(6.4e7 // (k * r * (d + 1))))
  log = log or (lambda s: None)
  ytr, mtr = y[:n_tr] & mask[:n_tr, None], mask[:n_tr]
  n_used = max(1, int(mtr.sum()))
  n_pos = ytr.sum(0)  # [K]
  n_neg = mtr.sum() - n_pos
  fit_ok = (n_pos > 0) & (n_neg > 0)  # [K]
  if balanced:
    w_pos = np.where(fit_ok, n_used / (2.0 * np.maximum(n_pos, 1)), 0.0)
    w_neg = np.where(fit_ok, n_used / (2.0 * np.maximum(n_neg, 1)), 0.0)
  else:
    w_pos = w_neg = fit_ok.astype(np.float64)
  weights = lambda a, b: (np.where(ytr[a:b], w_pos, w_neg) * mtr[a:b, None]).astype(np.float32)

  mean = np.zeros((r, d), np.float64)
  for a, b in _chunks(n_tr, chunk):
    mean += np.sum(np.asarray(x[a:b], np.float64) * mtr[a:b, None, None], axis=0)
  mean = (mean / n_used).astype(np.float32)

  reg = np.full(d + 1, l2, np.float64)
  reg[-1] = 1e-8  # the intercept is (almost) not regularised
  fingerprint = np.asarray([n, r, d, k, n_val, l2, float(balanced), float(mask.sum())], np.float64)
  theta = np.zeros((k, r, d + 1), np.float64)
  prev, prev_obj, it, done = theta.copy(), np.full((k, r), np.inf), 0, False
  if state_path and os.path.exists(state_path):
    with np.load(state_path) as z:
      if z["fingerprint"].shape == fingerprint.shape and np.array_equal(z["fingerprint"],
                                                                        fingerprint):
        theta, prev, prev_obj = z["theta"], z["prev"], z["prev_obj"]
        it, done = int(z["iteration"]), bool(z["done"])
        log(f"fit: resuming at iteration {it}")
      else:
        raise DirectionsError(f"{state_path}: fit state of a different problem; delete it")

  while it < iters and not done:
    g = np.zeros_like(theta)
    h = jnp.zeros((k, r, d + 1, d + 1), jnp.float32)  # summed on the device: it is the big one
    loss = np.zeros((k, r), np.float64)
    th = jnp.asarray(theta, jnp.float32)
    for a, b in _chunks(n_tr, chunk):
      gi, hi, li = _newton_terms(th, jnp.asarray(x[a:b], jnp.float32),
                                 jnp.asarray(ytr[a:b], jnp.float32),
                                 jnp.asarray(weights(a, b)), jnp.asarray(mean))
      g += np.asarray(gi, np.float64)
      h = h + hi
      loss += np.asarray(li, np.float64)
    h = np.asarray(h, np.float64)
    obj = loss / n_used + 0.5 * np.sum(reg * theta * theta, axis=-1)  # [K, R]
    worse = obj > prev_obj * (1 + 1e-6) + 1e-12
    g = g / n_used + reg * theta
    h = h / n_used + reg[:, None] * np.eye(d + 1)
    step = np.linalg.solve(h, g[..., None])[..., 0]  # [K, R, D+1]
    # Where the objective went up, go back half-way instead of stepping from here.
    new = np.where(worse[..., None], 0.5 * (prev + theta), theta - step)
    prev = np.where(worse[..., None], prev, theta)
    prev_obj = np.where(worse, prev_obj, obj)
    change = np.abs(new - theta).max(axis=-1) / (1.0 + np.abs(theta).max(axis=-1))
    theta, it = new, it + 1
    done = bool(np.all(change < tol))
    log(f"fit: iteration {it}/{iters}, objective {np.nanmean(np.where(worse, prev_obj, obj)):.5f}, "
        f"largest relative change {change.max():.2e}")
    if state_path:
      files.write_npz(state_path, {"theta": theta, "prev": prev, "prev_obj": prev_obj,
                                    "iteration": it, "done": done, "fingerprint": fingerprint})

  counts = np.zeros((4, k, r), np.int64)
  th = jnp.asarray(theta, jnp.float32)
  for a, b in _chunks(n_val, chunk):
    a, b = a + n_tr, b + n_tr
    counts += np.asarray(_predict_counts(th, jnp.asarray(x[a:b], jnp.float32),
                                         jnp.asarray(y[a:b], jnp.float32),
                                         jnp.asarray(mask[a:b], jnp.float32), jnp.asarray(mean)))
  tp, fn, tn, fp = counts.astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    accuracy = (tp + tn) / (tp + fn + tn + fp)
    balanced_acc = 0.5 * (tp / (tp + fn) + tn / (tn + fp))
  normals, _ = unit_rows(np.where(fit_ok[:, None, None], theta[..., :d], 0.0))
  return FitResult(normals, theta[..., d].astype(np.float32), mean,
                   (y & mask[:, None]).sum(0).astype(np.int64), accuracy.astype(np.float32),
                   balanced_acc.astype(np.float32), it)


def membership(probs: np.ndarray, min_confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """Hard labels from probabilities [N, 7]: one-hot of the argmax [N, 7] bool, and the mask [N]
  of samples whose top probability reaches ``min_confidence`` (the others are left out)."""
  probs = np.asarray(probs)
  top = probs.argmax(axis=1)
  y = np.zeros(probs.shape, bool)
  y[np.arange(len(top)), top] = True
  return y, probs.max(axis=1) >= min_confidence


def fit_directions(latents, probs, n_latent: int, *, min_confidence: float = 0.0,
                   source: str = "fitted", **fit_kwargs) -> Directions:
  """Directions file contents from labelled latents [N, R, D] (R = 1 or ``n_latent``)."""
  y, mask = membership(probs, min_confidence)
  fit = fit_linear(latents, y, mask=mask, **fit_kwargs)
  r = fit.normals.shape[1]
  if r not in (1, n_latent):
    raise ValueError(f"latents have {r} rows, expected 1 or {n_latent}")
  k = len(EXPRESSIONS)
  rows = lambda a: np.broadcast_to(a, (k, n_latent) + a.shape[2:]).copy()
  available = np.linalg.norm(fit.normals.reshape(k, -1), axis=1) > 0
  return Directions(rows(fit.normals), available, fit.counts, rows(fit.accuracy),
                    rows(fit.balanced_accuracy), np.ones((k, n_latent), np.float32),
                    f"{source}; {len(y)} samples, {fit.iterations} Newton iterations")
