"""Per-image restoration report: can this restored face be trusted? (No ground truth needed.)

After each batch the restoration loop calls :func:`image_report` for every image with what it
already has, and writes the result to ``OUT/reports/NAME.json`` with :func:`write_report`;
:func:`summarise` turns all the reports into the run manifest's summary. Fields of a report:

* ``identity_sim`` — ArcFace cosine between the restored face and the reference (the caller
  computes it with its loaded ArcFace). ``None`` when not computed.
* ``judge_distance`` — dlib face-descriptor distance between restored and reference, from
  :func:`dlib_judge` (an independent network SAIR never optimises; ``None`` without dlib or when
  no face is found).
* ``fidelity_psnr`` — re-degradation fidelity: PSNR in dB between ``D(restored)`` and the LQ
  input, ``D`` the (noise-free) degradation operator of the run. The noise in the LQ bounds it:
  for σ = 0.03..0.055 on [0, 1] a perfect restoration scores ≈ 25-30 dB.
* ``expression_seen`` / ``expression_requested`` — what the expression classifier sees in the
  restored face, and what was asked for (given or inferred from the LQ).
* ``final_losses`` — the loss terms at the last step.
* ``flags`` — the checks that failed, in :data:`FLAGS` order:

  ========================  ===================================================================
  ``low_identity``          ``identity_sim < thresholds["min_identity"]``
  ``low_fidelity``          ``fidelity_psnr < thresholds["min_fidelity_psnr"]``
  ``judge_mismatch``        ``judge_distance > thresholds["max_judge_distance"]``
  ``expression_mismatch``   seen and requested expressions both known and different
  ``nan_loss``              a final loss term is NaN or infinite
  ``nan_image``             the restored image holds NaN or infinite values
  ========================  ===================================================================

  The thresholds come from the run config (``config.report``, the one place they are set);
  a threshold that is None or absent disables its check; a missing value (None) never raises a
  flag.

Reports are strict JSON (:mod:`sair_jax.io.files`: non-finite floats as ``"nan"``, ``"inf"``).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from sair_jax.io import files
from sair_jax.metrics.identity import dlib_judge  # re-exported: the loop's judge helper

FLAGS = ("low_identity", "low_fidelity", "judge_mismatch", "expression_mismatch", "nan_loss",
         "nan_image")
NUMERIC_FIELDS = ("identity_sim", "judge_distance", "fidelity_psnr")

__all__ = ["FLAGS", "image_report", "summarise", "write_report",
           "read_report", "read_reports", "fidelity_psnr", "dlib_judge"]


def _float_or_none(x) -> float | None:
  return None if x is None else float(x)


def _finite(x) -> bool:
  return x is not None and math.isfinite(float(x))


def _same_expression(a: str, b: str) -> bool:
  from sair_jax.face.expression import canonical_name
  try:
    return canonical_name(a) == canonical_name(b)
  except ValueError:  # a name outside the seven: compare as written
    return a.strip().lower() == b.strip().lower()


def fidelity_psnr(restored01: np.ndarray, lq01: np.ndarray,
                  degrade_fn: Callable[[Any], Any]) -> float:
  """PSNR (dB) between ``degrade_fn(restored)`` and the LQ image.

  Args:
    restored01: [H, W, 3] in [0, 1].
    lq01: [h, w, 3] in [0, 1].
    degrade_fn: [1, H, W, 3] -> [1, h, w, 3], the run's degradation operator without noise.
  """
  restored01 = np.asarray(restored01, np.float32)
  lq01 = np.asarray(lq01, np.float32)
  if restored01.ndim != 3 or lq01.ndim != 3:
    raise ValueError(f"fidelity_psnr expects single images [H, W, 3], got {restored01.shape} "
                     f"and {lq01.shape}")
  degraded = np.asarray(degrade_fn(restored01[None]), np.float64)  # [1, h, w, 3]
  if degraded.shape != (1, *lq01.shape):
    raise ValueError(f"degradation of the {restored01.shape[:2]} restored image gives "
                     f"{degraded.shape[1:3]}, but the LQ image is {lq01.shape[:2]}")
  mse = float(np.mean((degraded[0] - lq01.astype(np.float64)) ** 2))
  if math.isnan(mse):
    return float("nan")
  return float("inf") if mse == 0.0 else float(10.0 * math.log10(1.0 / mse))


def image_report(*, restored01, lq01, degrade_fn: Callable[[Any], Any],
                 identity_sim: float | None = None, judge_distance: float | None = None,
                 expression_seen: str | None = None, expression_requested: str | None = None,
                 final_losses: Mapping[str, float] | None = None,
                 thresholds: Mapping[str, float | None],
                 name: str | None = None) -> dict:
  """The report of one restored image (see the module docstring for every field).

  Args:
    restored01: restored image [H, W, 3] in [0, 1].
    lq01: the LQ input [h, w, 3] in [0, 1].
    degrade_fn: [1, H, W, 3] -> [1, h, w, 3], the degradation operator (noise-free).
    identity_sim: ArcFace cosine restored vs reference, or None.
    judge_distance: dlib descriptor distance restored vs reference (:func:`dlib_judge`), or None.
    expression_seen / expression_requested: expression names, or None.
    final_losses: loss name -> value at the last step.
    thresholds: ``min_identity``, ``min_fidelity_psnr``, ``max_judge_distance`` (the run
      config's ``report`` section; None or absent disables a check).
    name: the image's name (file stem), stored when given.
  """
  limits = {k: thresholds.get(k) for k in ("min_identity", "min_fidelity_psnr",
                                           "max_judge_distance")}
  restored = np.asarray(restored01, np.float32)
  finite_image = bool(np.all(np.isfinite(restored)))
  fidelity = fidelity_psnr(restored, lq01, degrade_fn)
  losses = {str(k): float(v) for k, v in (final_losses or {}).items()}
  identity_sim = _float_or_none(identity_sim)
  judge_distance = _float_or_none(judge_distance)

  raised = set()
  if limits.get("min_identity") is not None and _finite(identity_sim) and (
      identity_sim < limits["min_identity"]):
    raised.add("low_identity")
  if limits.get("min_fidelity_psnr") is not None and _finite(fidelity) and (
      fidelity < limits["min_fidelity_psnr"]):
    raised.add("low_fidelity")
  if limits.get("max_judge_distance") is not None and _finite(judge_distance) and (
      judge_distance > limits["max_judge_distance"]):
    raised.add("judge_mismatch")
  if expression_seen and expression_requested and not _same_expression(expression_seen,
                                                                        expression_requested):
    raised.add("expression_mismatch")
  if any(not math.isfinite(v) for v in losses.values()):
    raised.add("nan_loss")
  if not finite_image:
    raised.add("nan_image")

  report = {} if name is None else {"name": str(name)}
  report.update({
      "identity_sim": identity_sim,
      "judge_distance": judge_distance,
      "fidelity_psnr": fidelity,
      "expression_seen": expression_seen,
      "expression_requested": expression_requested,
      "final_losses": losses,
      "thresholds": limits,
      "restored_size": list(restored.shape[:2]),
      "lq_size": list(np.shape(lq01)[:2]),
      "flags": [f for f in FLAGS if f in raised],
  })
  return report


def _mean(values: Iterable) -> float | None:
  v = [float(x) for x in values if _finite(x)]
  return float(np.mean(v)) if v else None


def summarise(reports: list[dict]) -> dict:
  """The run manifest's summary of per-image reports.

  Returns ``images`` (count), ``flagged`` (images with at least one flag), ``flag_counts``
  (every flag of :data:`FLAGS`, zeros included), ``flagged_images`` (flag -> names, for reports
  that carry a name), ``means`` / ``counts`` of the numeric fields and of every final loss over
  the finite values, and ``expressions`` (requested -> seen counts).
  """
  counts = {f: 0 for f in FLAGS}
  names: dict[str, list[str]] = {f: [] for f in FLAGS}
  for r in reports:
    for f in r.get("flags", []):
      counts[f] = counts.get(f, 0) + 1
      if "name" in r:
        names.setdefault(f, []).append(r["name"])
  means = {k: _mean(r.get(k) for r in reports) for k in NUMERIC_FIELDS}
  present = {k: sum(_finite(r.get(k)) for r in reports) for k in NUMERIC_FIELDS}
  loss_names = sorted({k for r in reports for k in r.get("final_losses", {})})
  losses = {k: _mean(r.get("final_losses", {}).get(k) for r in reports) for k in loss_names}
  expressions: dict[str, dict[str, int]] = {}
  for r in reports:
    if r.get("expression_requested") or r.get("expression_seen"):
      row = expressions.setdefault(str(r.get("expression_requested")), {})
      seen = str(r.get("expression_seen"))
      row[seen] = row.get(seen, 0) + 1
  return {
      "images": len(reports),
      "flagged": sum(bool(r.get("flags")) for r in reports),
      "flag_counts": counts,
      "flagged_images": {f: n for f, n in names.items() if n},
      "means": {**means, "final_losses": losses},
      "counts": present,
      "expressions": expressions,
  }


# ------------------------------------------------------------------------------------ JSON I/O


def write_report(path: str | os.PathLike, report: Mapping) -> None:
  """Writes one report as strict JSON, atomically."""
  files.write_json(path, report)


def read_report(path: str | os.PathLike) -> dict:
  """Reads a report written by :func:`write_report`; one-line UnreadableFileError."""
  return files.read_json(path)


def read_reports(folder: str | os.PathLike) -> dict[str, dict]:
  """Every ``NAME.json`` report in ``folder``, keyed by NAME (the file stem)."""
  folder = os.fspath(folder)
  out = {}
  for entry in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(entry)
    if ext.lower() == ".json" and not entry.startswith("."):
      out[stem] = read_report(os.path.join(folder, entry))
  return out
