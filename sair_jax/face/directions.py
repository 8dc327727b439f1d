"""Expression directions in W+ (paper §2, "Emotion semantics"): fit them, import them, load them.

A directions file (``.npz``) holds, for the seven expressions of
:data:`sair_jax.face.expression.EXPRESSIONS` (in that order):

    directions         [7, n_latent, w_dim] float32  unit normal per W+ row (zeros if unavailable)
    labels             [7] str                       the expression names
    available          [7] bool
    counts             [7] int64     positive samples behind each fit (-1: imported, unknown)
    accuracy           [7, n_latent] held-out accuracy of the one-vs-rest classifier (NaN: unknown)
    balanced_accuracy  [7, n_latent] held-out mean of true-positive and true-negative rates
    source_norms       [7, n_latent] each row's norm before normalisation (imported files)
    source             str           how the file was made

Fitting (``python -m sair_jax.directions --generator G --classifier C --samples N --out F``):
latents are drawn from the mapping network, synthesised, cropped and classified
(:func:`collect`, resumable, progress saved atomically in a work directory), then one
L2-regularised logistic regression per expression and per W+ row separates that expression's
latents from the rest (:func:`fit_linear`: Newton's method with step halving, in JAX, chunked
over samples, also resumable). The unit weight vector of each classifier is the direction.

Importing (``python -m sair_jax.directions --from_npy DIR --out F``): the SAIR authors ship one
array per expression (``emotion_<name>.npy``, [18, 512], [1, 18, 512] or [1, 512]); each is
matched to its expression *by name*, broadcast to ``n_latent`` rows and normalised per row.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import re
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.face.expression import EXPRESSIONS, canonical_name
from sair_jax.errors import InputError, UserError
from sair_jax.io import files

FORMAT_VERSION = 1


class DirectionsError(UserError):
  """A directions file or work directory is missing, damaged or inconsistent. One line."""


class UnavailableDirection(DirectionsError, InputError):
  """The file has no direction for an expression one image asks for (that image fails alone)."""


# --------------------------------------------------------------------------------------------
# The directions file
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Directions:
  """Unit expression directions per W+ row, with how they were obtained (see module doc)."""
  directions: np.ndarray  # [7, L, D] float32
  available: np.ndarray  # [7] bool
  counts: np.ndarray  # [7] int64
  accuracy: np.ndarray  # [7, L] float32
  balanced_accuracy: np.ndarray  # [7, L] float32
  source_norms: np.ndarray  # [7, L] float32
  source: str
  labels: tuple[str, ...] = EXPRESSIONS

  @property
  def n_latent(self) -> int:
    return self.directions.shape[1]

  @property
  def w_dim(self) -> int:
    return self.directions.shape[2]

  def get(self, name: str) -> np.ndarray:
    """[n_latent, w_dim] unit direction of expression ``name`` (any alias, e.g. 'happiness')."""
    e = canonical_name(name)
    i = self.labels.index(e)
    if not self.available[i]:
      raise UnavailableDirection(f"no direction for '{e}' in the directions file "
                                 f"(source: {self.source})")
    return self.directions[i]


def _unit_rows(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Rows of ``v`` [..., D] scaled to unit length (zero rows stay zero), and their norms."""
  norms = np.linalg.norm(v.astype(np.float64), axis=-1)
  safe = np.where(norms > 0, norms, 1.0)
  return (v / safe[..., None]).astype(np.float32), norms.astype(np.float32)


def _atomic_save_npz(path: str, arrays: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  files.atomic_write(path, buf.getvalue())


def save_directions(path: str | os.PathLike, d: Directions) -> None:
  """Writes ``d`` to ``path`` (.npz) atomically."""
  _atomic_save_npz(os.fspath(path), {
      "directions": d.directions.astype(np.float32), "labels": np.asarray(d.labels),
      "available": d.available.astype(bool), "counts": d.counts.astype(np.int64),
      "accuracy": d.accuracy.astype(np.float32),
      "balanced_accuracy": d.balanced_accuracy.astype(np.float32),
      "source_norms": d.source_norms.astype(np.float32), "source": np.asarray(d.source),
      "format": np.asarray(FORMAT_VERSION)})


def load_directions(path: str | os.PathLike) -> Directions:
  """Reads a directions file; every problem is a one-line :class:`DirectionsError`."""
  path = os.fspath(path)
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except FileNotFoundError:
    raise DirectionsError(f"{path}: no such file") from None
  except (OSError, ValueError) as e:
    raise DirectionsError(f"{path}: not a directions .npz file ({str(e).splitlines()[0]})") from None
  need = ("directions", "labels", "available", "counts", "accuracy", "balanced_accuracy",
          "source_norms", "source", "format")
  missing = [k for k in need if k not in data]
  if missing:
    raise DirectionsError(f"{path}: not a directions file (missing {missing})")
  if int(data["format"]) != FORMAT_VERSION:
    raise DirectionsError(f"{path}: directions format {int(data['format'])}, expected "
                          f"{FORMAT_VERSION}")
  labels = tuple(str(s) for s in data["labels"])
  if labels != EXPRESSIONS:
    raise DirectionsError(f"{path}: labels {labels} are not {EXPRESSIONS}")
  dirs = data["directions"]
  if dirs.ndim != 3 or dirs.shape[0] != len(EXPRESSIONS):
    raise DirectionsError(f"{path}: directions have shape {dirs.shape}, expected [7, L, D]")
  return Directions(dirs.astype(np.float32), data["available"].astype(bool),
                    data["counts"].astype(np.int64), data["accuracy"].astype(np.float32),
                    data["balanced_accuracy"].astype(np.float32),
                    data["source_norms"].astype(np.float32), str(data["source"]))


# --------------------------------------------------------------------------------------------
# Importing the authors' per-expression .npy files
# --------------------------------------------------------------------------------------------


def expression_of_filename(path: str) -> str:
  """The one expression named in a file name (``emotion_sad.npy`` -> 'sad')."""
  tokens = re.split(r"[^a-z]+", os.path.splitext(os.path.basename(path))[0].lower())
  found = set()
  for t in tokens:
    try:
      found.add(canonical_name(t))
    except ValueError:
      pass
  if len(found) != 1:
    what = "no" if not found else f"several ({', '.join(sorted(found))})"
    raise DirectionsError(f"{path}: file name names {what} expressions; expected exactly one of "
                          f"{', '.join(EXPRESSIONS)}")
  return found.pop()


def import_npy(paths: Sequence[str], n_latent: int | None = None) -> Directions:
  """Directions from one ``.npy`` per expression, matched by file name.

  Each array's last axis is ``w_dim``; the rest is flattened to rows: 1 row (one w direction,
  broadcast to every W+ row) or ``n_latent`` rows. ``n_latent`` defaults to the row count of
  the multi-row files, else 18 (StyleGAN2 at 1024 px). Every row is normalised to unit length;
  the original norms are kept in ``source_norms``. Expressions without a file are unavailable.
  """
  if not paths:
    raise DirectionsError("no .npy direction files given")
  rows = {}
  for path in paths:
    name = expression_of_filename(path)
    if name in rows:
      raise DirectionsError(f"{path}: a second file for '{name}' (first: {rows[name][0]})")
    try:
      a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
      raise DirectionsError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
      raise DirectionsError(f"{path}: not a .npy array ({str(e).splitlines()[0]})") from None
    if a.ndim == 0 or a.dtype.kind != "f" or a.size == 0:
      raise DirectionsError(f"{path}: expected a float array [..., w_dim], got {a.dtype} {a.shape}")
    rows[name] = (path, a.reshape(-1, a.shape[-1]))  # [R, D]
  dims = {a.shape[1] for _, a in rows.values()}
  if len(dims) != 1:
    raise DirectionsError(f"files disagree on w_dim: {sorted(dims)}")
  w_dim = dims.pop()
  multi = {a.shape[0] for _, a in rows.values() if a.shape[0] > 1}
  if n_latent is None:
    if len(multi) > 1:
      raise DirectionsError(f"files disagree on the number of W+ rows: {sorted(multi)}")
    n_latent = multi.pop() if multi else 18
  k = len(EXPRESSIONS)
  dirs = np.zeros((k, n_latent, w_dim), np.float32)
  norms = np.zeros((k, n_latent), np.float32)
  available = np.zeros(k, bool)
  for name, (path, a) in rows.items():
    if a.shape[0] not in (1, n_latent):
      raise DirectionsError(f"{path}: {a.shape[0]} rows of {w_dim}; expected 1 or {n_latent}")
    i = EXPRESSIONS.index(name)
    dirs[i], norms[i] = _unit_rows(np.broadcast_to(a, (n_latent, w_dim)))
    if not np.all(norms[i] > 0):
      raise DirectionsError(f"{path}: has all-zero rows; cannot normalise")
    available[i] = True
  nan = np.full((k, n_latent), np.nan, np.float32)
  files = ", ".join(os.path.basename(p) for p, _ in rows.values())
  return Directions(dirs, available, np.where(available, -1, 0).astype(np.int64), nan, nan.copy(),
                    norms, f"imported: {files}")


# --------------------------------------------------------------------------------------------
# Fitting: logistic regression per expression and per W+ row
# --------------------------------------------------------------------------------------------


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
      _atomic_save_npz(state_path, {"theta": theta, "prev": prev, "prev_obj": prev_obj,
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
  normals, _ = _unit_rows(np.where(fit_ok[:, None, None], theta[..., :d], 0.0))
  return FitResult(normals, theta[..., d].astype(np.float32), mean,
                   (y & mask[:, None]).sum(0).astype(np.int64), accuracy.astype(np.float32),
                   balanced_acc.astype(np.float32), it)


# --------------------------------------------------------------------------------------------
# Collecting labelled latents (resumable)
# --------------------------------------------------------------------------------------------


def collect(workdir: str, sample_fn: Callable[[jax.Array, int], Any],
            label_fn: Callable[[Any], Any], n_samples: int, *, batch: int, seed: int,
            run_info: dict | None = None, checkpoint_every: int = 20,
            log: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``n_samples`` latents and their expression probabilities into ``workdir``.

  Batch ``i`` uses the key ``fold_in(PRNGKey(seed), i)``, so the result does not depend on
  where a run was interrupted. Every ``checkpoint_every`` batches the arrays are flushed and
  ``progress.json`` is replaced atomically; a later call with the same arguments resumes there.

  Args:
    sample_fn: ``(key, n) -> latents [n, R, D]`` (R = 1: one w for all W+ rows).
    label_fn: ``latents [n, R, D] -> probs [n, 7]`` in ``EXPRESSIONS`` order.
    run_info: JSON-able description of the run (checkpoints, truncation); a resumed run must
      match it.
  Returns:
    (latents [N, R, D] float32, probs [N, 7] float32), read-only memmaps of the work files.
  """
  log = log or (lambda s: None)
  os.makedirs(workdir, exist_ok=True)
  progress_path = os.path.join(workdir, "progress.json")
  lat_path, prob_path = os.path.join(workdir, "latents.npy"), os.path.join(workdir, "probs.npy")
  root = jax.random.PRNGKey(seed)
  n_batches = -(-n_samples // batch)
  first = np.asarray(sample_fn(jax.random.fold_in(root, 0), batch), np.float32)  # [B, R, D]
  if first.ndim != 3 or first.shape[0] != batch:
    raise ValueError(f"sample_fn returned {first.shape}, expected [{batch}, R, D]")
  run = {"n_samples": n_samples, "batch": batch, "seed": seed, "shape": list(first.shape[1:]),
         "classes": list(EXPRESSIONS), "run": run_info or {}}
  done = 0
  if os.path.exists(progress_path):
    try:
      saved = files.read_json(progress_path)
    except files.UnreadableFileError as e:
      raise DirectionsError(str(e)) from None
    if {k: v for k, v in saved.items() if k != "done"} != run:
      raise DirectionsError(f"{workdir}: holds a different run ({saved.get('run')}, "
                            f"{saved.get('n_samples')} samples); use another work directory")
    done = int(saved["done"])
    lat = np.lib.format.open_memmap(lat_path, mode="r+")
    prob = np.lib.format.open_memmap(prob_path, mode="r+")
    log(f"collect: resuming at batch {done}/{n_batches}")
  else:
    lat = np.lib.format.open_memmap(lat_path, mode="w+", dtype=np.float32,
                                    shape=(n_samples,) + first.shape[1:])
    prob = np.lib.format.open_memmap(prob_path, mode="w+", dtype=np.float32,
                                     shape=(n_samples, len(EXPRESSIONS)))

  def save(i):
    lat.flush()
    prob.flush()
    files.write_json(progress_path, {**run, "done": i})

  for i in range(done, n_batches):
    latents = first if i == 0 else np.asarray(sample_fn(jax.random.fold_in(root, i), batch),
                                              np.float32)
    probs = np.asarray(label_fn(latents), np.float32)  # [B, 7]
    a, b = i * batch, min(n_samples, (i + 1) * batch)
    lat[a:b] = latents[:b - a]
    prob[a:b] = probs[:b - a]
    if (i + 1) % checkpoint_every == 0 or i + 1 == n_batches:
      save(i + 1)
      log(f"collect: {b}/{n_samples} samples")
  return (np.load(lat_path, mmap_mode="r"), np.load(prob_path, mmap_mode="r"))


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


# --------------------------------------------------------------------------------------------
# The command line: generator + classifier -> directions; or import .npy files
# --------------------------------------------------------------------------------------------


def generator_sampler(G, classifier, truncation: float = 1.0):
  """``(sample_fn, label_fn)`` for :func:`collect` from a loaded generator and classifier.

  Latents are w = mapping(z) (R = 1: the same w feeds every W+ row); images are synthesised
  with the checkpoint's constant noise, mapped from [-1, 1] to [0, 1], cropped to the face box
  and classified (see :func:`sair_jax.face.expression.classifier_input`).
  """
  from sair_jax.face.expression import classifier_input, to_spec_order
  from sair_jax.nets import expression as expression_net

  perm = jnp.asarray(to_spec_order(classifier.labels))
  arch = classifier.arch

  def sample_fn(key, n):
    z = jax.random.normal(key, (n, G.z_dim), jnp.float32)
    return G.mapping(z, truncation)[:, None, :]  # [n, 1, w_dim]

  @jax.jit
  def classify(params, images):  # [n, H, W, 3] in [-1, 1] -> [n, 7]
    faces = jnp.clip((images + 1.0) * 0.5, 0.0, 1.0)
    x = classifier_input(faces, size=arch.input_size)
    return jax.nn.softmax(expression_net.apply(params, arch, x), axis=-1)[:, perm]

  def label_fn(latents):
    wplus = jnp.broadcast_to(jnp.asarray(latents)[:, :1],
                             (latents.shape[0], G.n_latent, G.w_dim))
    return classify(classifier.params, G.synthesis(wplus, noise="const"))

  return sample_fn, label_fn


def run(*, out: str, generator: str | None = None, classifier: str | None = None,
        samples: int = 0, workdir: str | None = None, batch: int = 16, seed: int = 0,
        truncation: float = 1.0, l2: float = 1e-3, iters: int = 20, min_confidence: float = 0.0,
        from_npy: str | None = None, n_latent: int | None = None,
        log: Callable[[str], None] = print) -> Directions:
  """What ``python -m sair_jax.directions`` does (see the module docstring)."""
  if from_npy:
    paths = (sorted(glob.glob(os.path.join(from_npy, "*.npy"))) if os.path.isdir(from_npy)
             else [p for p in from_npy.split(",") if p])
    d = import_npy(paths, n_latent)
  else:
    if not (generator and classifier and samples > 0):
      raise DirectionsError("fitting needs --generator, --classifier and --samples > 0 "
                            "(or --from_npy to import files)")
    from sair_jax.nets import expression as expression_net
    from sair_jax.nets import stylegan2
    G = stylegan2.load(generator)
    C = expression_net.load(classifier)
    sample_fn, label_fn = generator_sampler(G, C, truncation)
    workdir = workdir or os.fspath(out) + ".work"
    info = {"generator": os.path.abspath(generator), "classifier": os.path.abspath(classifier),
            "truncation": truncation}
    latents, probs = collect(workdir, sample_fn, label_fn, samples, batch=batch, seed=seed,
                             run_info=info, log=log)
    d = fit_directions(latents, probs, G.n_latent, min_confidence=min_confidence, l2=l2,
                       iters=iters, state_path=os.path.join(workdir, "fit_state.npz"), log=log,
                       source=f"fitted on {os.path.basename(os.path.normpath(generator))}")
  save_directions(out, d)
  for i, e in enumerate(EXPRESSIONS):
    acc = d.balanced_accuracy[i, 0]
    count = "imported" if d.counts[i] < 0 else f"{d.counts[i]} labelled"
    state = f"{count}, balanced accuracy {acc:.3f}" if d.available[i] and not np.isnan(acc) \
        else (count if d.available[i] else "unavailable")
    log(f"{e:>9}: {state}")
  log(f"wrote {out} ({d.n_latent} x {d.w_dim} per expression)")
  return d


def main(argv):
  del argv
  from absl import flags
  from sair_jax.io.checkpoint import CheckpointError
  import sys
  f = flags.FLAGS
  try:
    run(out=f.out, generator=f.generator, classifier=f.classifier, samples=f.samples,
        workdir=f.workdir, batch=f.batch, seed=f.seed, truncation=f.truncation, l2=f.l2,
        iters=f.iters, min_confidence=f.min_confidence, from_npy=f.from_npy, n_latent=f.n_latent)
  except (DirectionsError, CheckpointError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def define_flags() -> None:
  """The command's flags (absl)."""
  from absl import flags
  flags.DEFINE_string("out", None, "output directions file (.npz)")
  flags.DEFINE_string("generator", None, "converted StyleGAN2 checkpoint directory")
  flags.DEFINE_string("classifier", None, "converted expression classifier directory")
  flags.DEFINE_integer("samples", 0, "number of latents to draw and classify")
  flags.DEFINE_string("workdir", None, "resumable work directory (default: OUT.work)")
  flags.DEFINE_integer("batch", 16, "synthesis batch size")
  flags.DEFINE_integer("seed", 0, "PRNG seed of the latent samples")
  flags.DEFINE_float("truncation", 1.0, "truncation psi of the sampled w (1: none)")
  flags.DEFINE_float("l2", 1e-3, "L2 penalty of the logistic regressions")
  flags.DEFINE_integer("iters", 20, "maximum Newton iterations")
  flags.DEFINE_float("min_confidence", 0.0, "leave out samples whose top probability is lower")
  flags.DEFINE_string("from_npy", None, "import: a directory of (or comma-separated) per-"
                                        "expression .npy files, instead of fitting")
  flags.DEFINE_integer("n_latent", None, "import: W+ rows (default: from the files, else 18)")
  flags.mark_flags_as_required(["out"])


def entry() -> None:
  """``python -m sair_jax.directions``."""
  from absl import app
  define_flags()
  app.run(main)


if __name__ == "__main__":
  entry()
