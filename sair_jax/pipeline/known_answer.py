"""Restoration problems with a known answer, built from a generator (no data, no weights needed).

With any generator G, even an untrained one, a problem whose answer is known can be made:

* ground truth ``GT = G(w*)`` for random latents w* (constant noise, output clipped to [0, 1]);
* the degraded input ``LQ = bicubic_downsample(GT, factor)`` (the authors' operator, no noise);
* a reference that shares only w*'s coarse rows: ``w_ref`` = w* with its rows from
  ``coarse_rows`` on (the finer resolutions: texture, colour, detail) taken from other random
  latents, and the reference image ``G(w_ref)``: the same "person" (pose and shape), other
  details, as SAIR's reference photo is the same person in another picture.

A restoration that works recovers w*'s fine rows from the LQ and the coarse ones from the
reference, so its PSNR against GT beats both bicubic upsampling of the LQ (which has the
right colours but no detail) and the reference (right structure, wrong details).
:func:`known_answer_psnr` reports those three numbers (mean dB over the images).

This module is the one builder used by the smoke preset and by the tests' known-answer problem
(tests/known_answer.py, benchmarks/objective_comparison.py).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.core import degradation
from sair_jax.core import objective
from sair_jax.errors import UserError
from sair_jax.io import images
from sair_jax.metrics import image as image_metrics

REFERENCE_KINDS = ("image", "latent")
REFERENCE_IMAGES = "reference_images"  # G(w_ref) beside latent references, for scoring
METRICS = ("restored_psnr", "bicubic_psnr", "reference_psnr")


class Problem(NamedTuple):
  w_true: np.ndarray  # [n, L, D] w*: the answer
  w_ref: np.ndarray  # [n, L, D] w* with rows coarse_rows: from other latents
  gt: np.ndarray  # [n, S, S, 3] G(w*) in [0, 1]
  ref: np.ndarray  # [n, S, S, 3] G(w_ref) in [0, 1]
  lq: np.ndarray  # [n, S / factor, S / factor, 3] bicubic_downsample(gt, factor)
  coarse_rows: int  # rows [0, coarse_rows) of w_ref are w*'s


def build_problem(g, n: int, factor: int, *, seed: int = 0,
                  coarse_rows: int | None = None) -> Problem:
  """A known-answer problem of ``n`` faces from generator ``g``.

  Args:
    g: a :class:`sair_jax.nets.stylegan2.Generator` (trained or not).
    n: number of faces.
    factor: downsampling factor of the LQ (``g.resolution`` must be a multiple).
    seed: the latents are ``mapping(normal(PRNGKey(seed), [2 n, z_dim]))``: the first n are w*,
      the other n lend their fine rows to the references.
    coarse_rows: how many leading W+ rows the reference shares with w*; default half of them.
  Returns:
    :class:`Problem`.
  """
  if n < 1 or factor < 1 or g.resolution % factor:
    raise ValueError(f"need n >= 1 and a factor dividing {g.resolution}, got n={n}, "
                     f"factor={factor}")
  coarse_rows = g.n_latent // 2 if coarse_rows is None else coarse_rows
  if not 0 < coarse_rows < g.n_latent:
    raise ValueError(f"coarse_rows must be in 1..{g.n_latent - 1}, got {coarse_rows}")
  z = jax.random.normal(jax.random.PRNGKey(seed), (2 * n, g.z_dim))
  ws = g.to_wplus(g.mapping(z))  # [2n, L, D]
  w_true = ws[:n]
  w_ref = w_true.at[:, coarse_rows:].set(ws[n:, coarse_rows:])
  to01 = lambda x: np.asarray(objective.to_unit_range(x, "clip"))
  gt, ref = to01(g.synthesis(w_true)), to01(g.synthesis(w_ref))  # [n, S, S, 3]
  lq = np.asarray(degradation.bicubic_downsample(jnp.asarray(gt), factor))
  return Problem(np.asarray(w_true), np.asarray(w_ref), gt, ref, lq, coarse_rows)


def build_clip(g, frames: int, factor: int, *, seed: int = 0, coarse_rows: int | None = None,
               motion: float = 0.15) -> Problem:
  """A known-answer CLIP of ``frames`` frames from generator ``g``: one person moving.

  The answer w*_t follows a smooth path in W+ around one random latent w*: the coarse rows
  (pose, shape: "a head that turns") swing along one random direction, the middle rows ("an
  expression that changes") along another, by ``motion`` times the latent's spread at their
  extremes, ``w*_t = w* + motion · (sin(πτ) d_pose + sin²(πτ) d_expr)`` with τ = t / (frames - 1)
  over the rows each direction moves. GT_t = G(w*_t) (constant noise), LQ_t its bicubic
  downsampling by ``factor``, and the reference, as in :func:`build_problem`, one picture of
  the same latent identity: w*'s coarse rows, other fine rows (the same reference for every
  frame). Returns a :class:`Problem` whose n axis is time.

  At the default ``motion`` and 12 frames of the smoke preset's 64 px generator, the ground
  truth changes by a mean |GT_t+1 − GT_t| of 0.009 per pixel between frames (0.036 at 0.5).
  """
  if frames < 2:
    raise ValueError(f"a clip needs at least 2 frames, got {frames}")
  coarse_rows = g.n_latent // 2 if coarse_rows is None else coarse_rows
  if not 0 < coarse_rows < g.n_latent:
    raise ValueError(f"coarse_rows must be in 1..{g.n_latent - 1}, got {coarse_rows}")
  z = jax.random.normal(jax.random.PRNGKey(seed), (4, g.z_dim))
  ws = np.asarray(g.to_wplus(g.mapping(z)))  # [4, L, D]: w*, another, two directions' ends
  spread = float(np.std(ws[2:] - ws[:1]))
  pose = np.zeros_like(ws[0])
  pose[:max(1, coarse_rows // 2)] = (ws[2] - ws[0])[:max(1, coarse_rows // 2)]
  expr = np.zeros_like(ws[0])
  expr[coarse_rows // 2:coarse_rows + 2] = (ws[3] - ws[0])[coarse_rows // 2:coarse_rows + 2]
  pose *= spread / max(float(np.std(pose[pose != 0])), 1e-12)
  expr *= spread / max(float(np.std(expr[expr != 0])), 1e-12)
  tau = np.linspace(0.0, 1.0, frames)[:, None, None]
  w_true = ws[0] + motion * (np.sin(np.pi * tau) * pose + np.sin(np.pi * tau) ** 2 * expr)
  w_true = w_true.astype(np.float32)
  w_ref = np.broadcast_to(ws[0], w_true.shape).copy()
  w_ref[:, coarse_rows:] = ws[1, coarse_rows:]
  to01 = lambda x: np.asarray(objective.to_unit_range(x, "clip"))
  gt = np.concatenate([to01(g.synthesis(jnp.asarray(w_true[i:i + 8])))
                       for i in range(0, frames, 8)])
  ref = to01(g.synthesis(jnp.asarray(w_ref[:1])))
  ref = np.broadcast_to(ref, gt.shape).copy()
  lq = np.asarray(degradation.bicubic_downsample(jnp.asarray(gt), factor))
  return Problem(w_true, w_ref, gt, ref, lq, coarse_rows)


def write_problem(root: str | os.PathLike, problem: Problem, *, reference: str = "image",
                  ref_dir: str = "references", prefix: str = "face") -> list[str]:
  """Writes ``root``/lq/NAME.png, ``root``/gt/NAME.png and the references, NAME = prefix + i.

  Args:
    reference: ``image`` writes ``G(w_ref)`` as ``ref_dir``/NAME.png (the run projects it
      into W+ as it does a photo); ``latent`` writes ``w_ref`` [L, D] as ``ref_dir``/NAME.npy
      (the run starts from it directly), and ``G(w_ref)`` as ``reference_images``/NAME.png for
      :func:`score_folder`.
  Returns:
    The names, in order.
  """
  if reference not in REFERENCE_KINDS:
    raise ValueError(f"reference must be one of {REFERENCE_KINDS}, got {reference!r}")
  root = os.fspath(root)
  dirs = ("lq", "gt", ref_dir) + (() if reference == "image" else (REFERENCE_IMAGES,))
  for d in dirs:
    os.makedirs(os.path.join(root, d), exist_ok=True)
  names = [f"{prefix}{i}" for i in range(len(problem.gt))]
  for i, name in enumerate(names):
    images.write_image(os.path.join(root, "lq", name + ".png"), problem.lq[i])
    images.write_image(os.path.join(root, "gt", name + ".png"), problem.gt[i])
    if reference == "image":
      images.write_image(os.path.join(root, ref_dir, name + ".png"), problem.ref[i])
    else:
      np.save(os.path.join(root, ref_dir, name + ".npy"), problem.w_ref[i])
      images.write_image(os.path.join(root, REFERENCE_IMAGES, name + ".png"), problem.ref[i])
  return names


def items(problem: Problem, prefix: str = "face") -> list:
  """The problem as the engine's records (:class:`sair_jax.pipeline.inputs.Item`), held in
  memory: NAME = prefix + i, the LQ and GT pixels, and the reference as its W+ code."""
  from sair_jax.pipeline.inputs import Item
  return [Item(f"{prefix}{i}", problem.lq[i], problem.w_ref[i], problem.gt[i],
               origin=f"known-answer face {i}", reference_origin=f"known-answer reference {i}")
          for i in range(len(problem.gt))]


def score_run(problem: Problem, restored_dir: str | os.PathLike, prefix: str = "face") -> dict:
  """:func:`known_answer_psnr` of a run's ``restored_dir``/NAME.png against ``problem`` (NAME
  as :func:`items` names them); images not restored are left out (``images`` counts those
  scored).

  Raises:
    images.ImageIOError: a restored file that cannot be read.
    UserError: when nothing was restored.
  """
  restored_dir = os.fspath(restored_dir)
  paths = [os.path.join(restored_dir, f"{prefix}{i}.png") for i in range(len(problem.gt))]
  done = [i for i, p in enumerate(paths) if os.path.isfile(p)]
  if not done:
    raise UserError(f"{restored_dir}: no known-answer face was restored")
  restored = np.stack([images.read_image(paths[i]) for i in done])
  scores = known_answer_psnr(restored, problem.gt[done], problem.lq[done], problem.ref[done])
  scores["images"] = len(done)
  return scores


def known_answer_psnr(restored, gt, lq, ref) -> dict[str, float]:
  """Mean PSNR (dB, over the images) against the ground truth of three candidates.

  Args:
    restored: [n, S, S, 3] in [0, 1], the restoration.
    gt: [n, S, S, 3] in [0, 1].
    lq: [n, s, s, 3] in [0, 1]; upsampled to S by bicubic interpolation (Keys, a = -0.5, as
      ``jax.image.resize``), clipped to [0, 1].
    ref: [n, S, S, 3] in [0, 1], the reference image.
  Returns:
    ``{"restored_psnr", "bicubic_psnr", "reference_psnr"}`` floats.
  """
  gt = jnp.asarray(gt, jnp.float32)
  up = jnp.clip(jax.image.resize(jnp.asarray(lq, jnp.float32), gt.shape, "cubic"), 0.0, 1.0)
  mean = lambda x: float(jnp.mean(image_metrics.psnr(jnp.asarray(x, jnp.float32), gt)))
  return {"restored_psnr": mean(restored), "bicubic_psnr": mean(up), "reference_psnr": mean(ref)}


def score_folder(root: str | os.PathLike, restored_dir: str | os.PathLike, *,
                 ref_dir: str = "references") -> dict:
  """:func:`known_answer_psnr` of a run's ``restored_dir``/NAME.png against a written problem.

  Images not restored (failures) are left out; ``images`` says how many were scored. Reference
  images are read from ``ref_dir``/NAME.png, else ``reference_images``/NAME.png; without
  either, ``reference_psnr`` is None.
  Raises:
    images.ImageIOError: one line naming the file that cannot be read.
    UserError: when nothing was restored.
  """
  root, restored_dir = os.fspath(root), os.fspath(restored_dir)
  gt_dir = os.path.join(root, "gt")
  names = sorted(os.path.splitext(f)[0] for f in os.listdir(gt_dir) if f.endswith(".png"))
  names = [n for n in names if os.path.isfile(os.path.join(restored_dir, n + ".png"))]
  if not names:
    raise UserError(f"{restored_dir}: no restored image matches {gt_dir}")
  read = lambda d, n: images.read_image(os.path.join(d, n + ".png"))
  gt = np.stack([read(gt_dir, n) for n in names])
  lq = np.stack([read(os.path.join(root, "lq"), n) for n in names])
  restored = np.stack([read(restored_dir, n) for n in names])
  refs = [os.path.join(root, ref_dir, n + ".png") for n in names]
  if not all(os.path.isfile(p) for p in refs):
    refs = [os.path.join(root, REFERENCE_IMAGES, n + ".png") for n in names]
  have_refs = all(os.path.isfile(p) for p in refs)
  ref = np.stack([images.read_image(p) for p in refs]) if have_refs else gt
  scores = known_answer_psnr(restored, gt, lq, ref)
  if not have_refs:
    scores["reference_psnr"] = None
  scores["images"] = len(names)
  return scores


def format_scores(scores: dict) -> str:
  """The scores as a small table (several lines) for the log."""
  n = scores.get("images")
  lines = ["known answer: PSNR against the ground truth" +
           (f" (mean over {n} images)" if n else "")]
  for key, label in zip(METRICS, ("restored", "bicubic", "reference")):
    value = scores.get(key)
    lines.append(f"  {label:<10} " + ("   n/a" if value is None else f"{value:6.2f} dB"))
  return "\n".join(lines)
