"""Table-1 evaluation of restored faces against ground truth: ``python -m sair_jax.evaluate``.

    python -m sair_jax.evaluate --gt GT_DIR --method sair=OUT/restored --method bicubic=LQ_DIR \
        [--lq LQ_DIR] [--refs OUT/references] [--reports OUT/reports] \
        [--lpips checkpoints/lpips-alex] [--fid checkpoints/fid-inception] \
        [--arcface checkpoints/arcface-r50] [--judge auto|on|off] --out EVAL_DIR

Pairing: every method folder is matched to ``GT_DIR`` by file name without the extension
(``GT/0001.png`` <-> ``OUT/restored/0001.jpg``). GT images without an output, and outputs
without a GT image, are listed in the table's notes and in ``per_method.json``; means are over
the matched images (``N`` in the table).

Metrics (paper Table 1 plus two pixel metrics and an independent identity judge):

=============  ======  ==========================================================================
``psnr``       higher  PSNR (dB) on RGB in [0, 1]
``ssim``       higher  SSIM, 11x11 Gaussian window σ 1.5 (:mod:`sair_jax.metrics.image`)
``lpips``      lower   LPIPS v0.1 AlexNet (``--lpips``, from ``python -m converters.lpips``)
``identity``   higher  ArcFace cosine, output vs GT (``--arcface``; ``--arcface_variant``)
``judge``      lower   dlib 128-d descriptor distance, output vs GT (optional extra ``landmarks``)
``fid``        lower   FID between the method's matched outputs and the whole GT set (``--fid``)
=============  ======  ==========================================================================

A metric whose weights were not given or do not load is reported as ``missing`` (with the
reason in the notes), never silently dropped. Per-image metrics get their mean and a 95%
percentile-bootstrap interval of the mean (``--bootstrap`` resamples, ``--seed``); FID gets its
value only (small sets make FID biased upwards: compare methods at equal N).

Resolution: metrics are computed at the GT resolution. An output of another size is resized to
the GT size with an antialiased bicubic filter (``jax.image.resize``, 'cubic', Keys a = -0.5,
antialiasing when shrinking), and ``resized_from`` records its original size — so the bicubic
baseline of Table 1 is simply ``--method bicubic=LQ_DIR``.

Outputs in ``--out``: ``table.md`` (also printed), ``per_image.csv``/``.json`` (one row per
method and image), ``per_method.csv``/``.json`` (means, intervals, FID, unmatched files, missing
metrics, the restoration-report summary) and ``gallery.html`` (LQ | reference | each method |
GT, sortable by any metric, with the flags of ``--reports``), which opens without a server.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import os
import sys
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax import cli
from sair_jax import gallery as gallery_lib
from sair_jax.core import batching
from sair_jax.io import files, images
from sair_jax.pipeline import report as report_lib
from sair_jax.metrics import image as image_metrics
from sair_jax.metrics import stats
from sair_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Metric:
  """A column of the table."""
  key: str  # name in the CSV/JSON files
  label: str  # table header
  better: str  # "high" | "low"
  digits: int  # decimals shown in the table
  per_image: bool = True  # False: one value per method (FID)


METRICS = (
    Metric("psnr", "PSNR", "high", 2),
    Metric("ssim", "SSIM", "high", 4),
    Metric("lpips", "LPIPS", "low", 4),
    Metric("identity", "ID sim (ArcFace)", "high", 3),
    Metric("judge", "dlib dist", "low", 3),
    Metric("fid", "FID", "low", 2, per_image=False),
)
PER_IMAGE = tuple(m.key for m in METRICS if m.per_image)
RESERVED_NAMES = ("GT", "LQ", "reference", "report")
JUDGE_MODES = ("auto", "on", "off")


class EvaluationError(UserError):
  """Bad arguments or input folders. One line, names the flag or path."""


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr)


def parse_method(spec: str) -> tuple[str, str]:
  """``"name=DIR"`` -> ``(name, DIR)``."""
  name, sep, folder = spec.partition("=")
  name = name.strip()
  if not sep or not name or not folder:
    raise EvaluationError(f"--method {spec!r}: expected NAME=DIR (e.g. sair=out/restored)")
  if name in RESERVED_NAMES:
    raise EvaluationError(f"--method {spec!r}: the name '{name}' is reserved "
                          f"({', '.join(RESERVED_NAMES)})")
  return name, folder


# ------------------------------------------------------------------------------- metric models


@dataclasses.dataclass
class Models:
  """The optional metric networks; ``missing`` maps a metric key to why it is unavailable."""
  lpips: Any = None
  fid: Any = None
  arcface: Any = None
  judge: Any = None
  missing: dict[str, str] = dataclasses.field(default_factory=dict)


def load_models(*, lpips_ckpt: str | None, fid_ckpt: str | None, arcface_ckpt: str | None,
                judge: str = "auto", log: Callable[[str], None] = _stderr) -> Models:
  """Loads what was given; a missing or unloadable checkpoint becomes a ``missing`` reason."""
  from sair_jax.io.checkpoint import CheckpointError
  models = Models()

  def attempt(key: str, flag: str, path: str | None, loader: Callable[[str], Any]):
    if not path:
      models.missing[key] = f"no --{flag} checkpoint given"
      return None
    try:
      return loader(path)
    except CheckpointError as e:
      models.missing[key] = str(e)
      log(f"warning: {key} is reported as missing: {e}")
      return None

  from sair_jax.metrics import fid, lpips
  from sair_jax.nets import arcface
  models.lpips = attempt("lpips", "lpips", lpips_ckpt, lpips.load)
  models.fid = attempt("fid", "fid", fid_ckpt, fid.load)
  models.arcface = attempt("identity", "arcface", arcface_ckpt, arcface.load)
  if judge == "off":
    models.missing["judge"] = "--judge=off"
  else:
    from sair_jax.face import landmarks
    from sair_jax.metrics import identity
    try:
      if not identity.judge_available():
        raise landmarks.LandmarksUnavailable(
            f"dlib face descriptor not installed: {landmarks.INSTALL_HINT}")
      models.judge = identity.default_judge()
    except landmarks.LandmarksUnavailable as e:
      if judge == "on":
        raise EvaluationError(f"--judge=on: {e}") from None
      models.missing["judge"] = str(e)
  return models


# ------------------------------------------------------------------------------------ pairing


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """[h, w, 3] -> [H, W, 3]: antialiased bicubic (jax.image.resize 'cubic'), clipped to [0, 1]."""
  if tuple(image.shape[:2]) == tuple(size):
    return image
  out = jax.image.resize(jnp.asarray(image), (*size, image.shape[2]), "cubic", antialias=True)
  return np.clip(np.asarray(out), 0.0, 1.0)


def _batches(names: Sequence[str], size_of: Callable[[str], tuple[int, int]],
             batch: int) -> Iterator[list[str]]:
  """Chunks of at most ``batch`` names whose GT images share one size (order kept per size)."""
  groups: dict[tuple[int, int], list[str]] = {}
  for n in names:
    groups.setdefault(size_of(n), []).append(n)
  for group in groups.values():
    for i in range(0, len(group), batch):
      yield group[i:i + batch]


# --------------------------------------------------------------------------------- evaluation


def evaluate(*, gt_dir: str, methods: Sequence[tuple[str, str]], out_dir: str,
             lq_dir: str | None = None, refs_dir: str | None = None,
             reports_dir: str | None = None, lpips_ckpt: str | None = None,
             fid_ckpt: str | None = None, arcface_ckpt: str | None = None,
             arcface_variant: str = "official", judge: str = "auto", batch: int = 8,
             n_bootstrap: int = 1000, seed: int = 0, thumbnail: int | None = None,
             models: Models | None = None, log: Callable[[str], None] = _stderr) -> dict:
  """Evaluates every method against ``gt_dir`` and writes the outputs to ``out_dir``.

  Returns the content of ``per_method.json`` (plus ``"table"``: the markdown table).
  """
  if not methods:
    raise EvaluationError("no --method given (expected at least one NAME=DIR)")
  names_seen = [n for n, _ in methods]
  dup = sorted({n for n in names_seen if names_seen.count(n) > 1})
  if dup:
    raise EvaluationError(f"--method: the name(s) {dup} are used twice")
  if judge not in JUDGE_MODES:
    raise EvaluationError(f"--judge={judge!r}: expected one of {JUDGE_MODES}")
  if batch < 1:
    raise EvaluationError(f"--batch={batch}: must be at least 1")
  gt = gallery_lib.index_images(gt_dir)
  if not gt:
    raise EvaluationError(f"{gt_dir}: no images found (extensions {images.IMAGE_EXTENSIONS})")
  outputs = {name: gallery_lib.index_images(folder) for name, folder in methods}
  if models is None:
    models = load_models(lpips_ckpt=lpips_ckpt, fid_ckpt=fid_ckpt, arcface_ckpt=arcface_ckpt,
                         judge=judge, log=log)
  for key, attr in (("lpips", "lpips"), ("fid", "fid"), ("identity", "arcface"),
                    ("judge", "judge")):
    if getattr(models, attr) is None:
      models.missing.setdefault(key, "not loaded")
  os.makedirs(out_dir, exist_ok=True)

  gt_sizes = {n: images.image_size(p) for n, p in gt.items()}
  gt_cache: dict[str, Any] = {}  # per-GT-image embeddings / descriptors, shared by methods

  def gt_identity(names: list[str], images: np.ndarray) -> np.ndarray:
    missing = [i for i, n in enumerate(names) if ("arc", n) not in gt_cache]
    if missing:
      emb = np.asarray(models.arcface.embed_faces(jnp.asarray(batching.pad_batch(images, batch)),
                                                  variant=arcface_variant))
      for i in missing:
        gt_cache[("arc", names[i])] = emb[i]
    return np.stack([gt_cache[("arc", n)] for n in names])

  # FID statistics of the whole GT set.
  gt_features = None
  if models.fid is not None:
    feats = []
    for chunk in _batches(sorted(gt), gt_sizes.get, batch):
      pixels = np.stack([images.read_image(gt[n]) for n in chunk])
      feats.append(np.asarray(models.fid.features(batching.pad_batch(pixels, batch)))[:len(chunk)])
    gt_features = np.concatenate(feats)

  records: list[dict] = []
  per_method: dict[str, dict] = {}
  for method, folder in methods:
    out_index = outputs[method]
    matched = sorted(set(gt) & set(out_index))
    log(f"{method}: {len(matched)} of {len(gt)} GT images matched in {folder}")
    method_features = []
    rows: list[dict] = []
    for chunk in _batches(matched, gt_sizes.get, batch):
      gts = np.stack([images.read_image(gt[n]) for n in chunk])  # [b, H, W, 3]
      size = gts.shape[1:3]
      outs, resized = [], []
      for n in chunk:
        img = images.read_image(out_index[n])
        resized.append(None if img.shape[:2] == size else list(img.shape[:2]))
        outs.append(resize_to(img, size))
      outs = np.stack(outs)
      b = len(chunk)
      p_gts, p_outs = batching.pad_batch(gts, batch), batching.pad_batch(outs, batch)
      values = {"psnr": np.asarray(image_metrics.psnr(p_outs, p_gts))[:b],
                "ssim": np.asarray(image_metrics.ssim(p_outs, p_gts))[:b]}
      if models.lpips is not None:
        values["lpips"] = np.asarray(models.lpips.distance(p_outs, p_gts))[:b]
      if models.arcface is not None:
        from sair_jax.core.losses import cosine_similarity
        e_out = np.asarray(models.arcface.embed_faces(jnp.asarray(p_outs),
                                                      variant=arcface_variant))[:b]
        values["identity"] = np.asarray(cosine_similarity(e_out, gt_identity(chunk, gts)))
      if models.judge is not None:
        dist = []
        for i, n in enumerate(chunk):
          if ("dlib", n) not in gt_cache:
            gt_cache[("dlib", n)] = models.judge.descriptor(gts[i])
          d_gt, d_out = gt_cache[("dlib", n)], models.judge.descriptor(outs[i])
          dist.append(None if d_gt is None or d_out is None
                      else float(np.linalg.norm(d_gt - d_out)))
        values["judge"] = dist
      if models.fid is not None:
        method_features.append(np.asarray(models.fid.features(p_outs))[:b])
      for i, n in enumerate(chunk):
        row = {"method": method, "name": n, "gt": os.path.basename(gt[n]),
               "output": os.path.basename(out_index[n]), "resized_from": resized[i]}
        for m in PER_IMAGE:
          v = values.get(m)
          row[m] = None if v is None or v[i] is None else float(v[i])
        rows.append(row)
    records += rows
    per_method[method] = _summarise_method(
        method, folder, rows, matched, gt, out_index, models, gt_features,
        np.concatenate(method_features) if method_features else None, n_bootstrap, seed)

  report_summary, reports = None, {}
  if reports_dir:
    try:
      reports = report_lib.read_reports(reports_dir)
    except (OSError, files.UnreadableFileError) as e:
      raise EvaluationError(str(e).splitlines()[0]) from None
    report_summary = report_lib.summarise(list(reports.values()))

  table = markdown_table(per_method, models.missing, n_bootstrap, seed, len(gt), report_summary)
  result = {
      "gt_dir": os.path.abspath(gt_dir), "n_gt": len(gt),
      "settings": {"arcface_variant": arcface_variant, "bootstrap_resamples": n_bootstrap,
                   "seed": seed, "confidence": 0.95, "resize": "jax.image.resize cubic, "
                   "antialiased, to the GT size", "judge": judge},
      "missing_metrics": models.missing, "methods": per_method,
      "report_summary": report_summary,
  }
  _write_outputs(out_dir, records, result, table)
  rows, columns = gallery_rows(gt, outputs, records, lq_dir=lq_dir, refs_dir=refs_dir,
                               reports=reports)
  gallery_lib.write_gallery(os.path.join(out_dir, "gallery.html"), rows, columns,
                            title="sair_jax evaluation", thumbnail=thumbnail,
                            header=html_table(per_method, models.missing))
  return {**result, "table": table}


def _summarise_method(method, folder, rows, matched, gt, out_index, models, gt_features,
                      features, n_bootstrap, seed) -> dict:
  metrics: dict[str, dict] = {}
  for m in METRICS:
    if m.key in models.missing:
      metrics[m.key] = {"missing": models.missing[m.key]}
    elif m.per_image:
      s = stats.bootstrap_ci([r[m.key] for r in rows], n_resamples=n_bootstrap, seed=seed)
      metrics[m.key] = s.to_dict() if s else {"unavailable": "dlib found no face in any pair"
                                             if m.key == "judge" and rows else
                                             "no matched images"}
      if m.key == "judge" and s:
        metrics[m.key]["no_face"] = sum(r["judge"] is None for r in rows)
    else:  # FID
      from sair_jax.metrics import fid
      if features is None or len(features) < 2 or gt_features is None or len(gt_features) < 2:
        metrics[m.key] = {"unavailable": "FID needs at least 2 images on each side"}
      else:
        metrics[m.key] = {"value": fid.fid_from_features(gt_features, features),
                          "n": len(features), "n_gt": len(gt_features)}
  return {"folder": os.path.abspath(folder), "n": len(matched),
          "missing_outputs": sorted(set(gt) - set(out_index)),
          "extra_outputs": sorted(set(out_index) - set(gt)),
          "resized": sum(r["resized_from"] is not None for r in rows),
          "metrics": metrics}


# ------------------------------------------------------------------------------------- tables


def cell(entry: dict, digits: int) -> str:
  """Table text of one metric of one method."""
  if "missing" in entry:
    return "missing"
  if "unavailable" in entry:
    return "n/a"
  if "value" in entry:
    return f"{entry['value']:.{digits}f}"
  f = lambda v: f"{v:.{digits}f}"  # noqa: E731
  return f"{f(entry['mean'])} [{f(entry['lo'])}, {f(entry['hi'])}]"


def _header() -> list[str]:
  return ["Method", "N"] + [f"{m.label} {'↑' if m.better == 'high' else '↓'}" for m in METRICS]


def _cells(per_method: dict) -> list[list[str]]:
  return [[name, str(info["n"])] + [cell(info["metrics"][m.key], m.digits) for m in METRICS]
          for name, info in per_method.items()]


def markdown_table(per_method: dict, missing: dict, n_bootstrap: int, seed: int, n_gt: int,
                   report_summary: dict | None = None) -> str:
  """The Table-1 style markdown table with its notes."""
  head = _header()
  lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
  lines += ["| " + " | ".join(r) + " |" for r in _cells(per_method)]
  notes = [f"Mean over the matched images [95% bootstrap interval of the mean, {n_bootstrap} "
           f"resamples, seed {seed}]; {n_gt} GT images; metrics at the GT resolution."]
  for key, reason in missing.items():
    notes.append(f"{key}: missing ({reason}).")
  for name, info in per_method.items():
    if info["missing_outputs"]:
      absent = info["missing_outputs"]
      more = f" (+{len(absent) - 5} more)" if len(absent) > 5 else ""
      notes.append(f"{name}: {len(absent)} GT image(s) without output: "
                   f"{', '.join(absent[:5])}{more}.")
    if info["extra_outputs"]:
      notes.append(f"{name}: {len(info['extra_outputs'])} output(s) without GT image "
                   f"(ignored): {', '.join(info['extra_outputs'][:5])}.")
    if info["resized"]:
      notes.append(f"{name}: {info['resized']} output(s) resized to the GT size (bicubic).")
    for key, entry in info["metrics"].items():
      if "unavailable" in entry:
        notes.append(f"{name}: {key} n/a ({entry['unavailable']}).")
    judge = info["metrics"].get("judge", {})
    if judge.get("no_face"):
      notes.append(f"{name}: dlib found no face in {judge['no_face']} image pairs "
                   "(left out of its mean).")
    f = info["metrics"].get("fid", {})
    if "value" in f and min(f["n"], f["n_gt"]) < 2048:
      notes.append(f"{name}: FID on {f['n']} vs {f['n_gt']} images (< 2048: biased upwards; "
                   "compare methods at equal N only).")
  if report_summary:
    counts = ", ".join(f"{k}: {v}" for k, v in report_summary["flag_counts"].items() if v)
    notes.append(f"Restoration reports: {report_summary['images']} images, "
                 f"{report_summary['flagged']} flagged" + (f" ({counts})." if counts else "."))
  return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def html_table(per_method: dict, missing: dict) -> str:
  """The same table as HTML, for the gallery's header."""
  head = "".join(f"<th>{html.escape(h)}</th>" for h in _header())
  body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                 for r in _cells(per_method))
  notes = "".join(f"<li>{html.escape(k)}: missing ({html.escape(v)})</li>"
                  for k, v in missing.items())
  return (f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
          + (f"<ul>{notes}</ul>" if notes else ""))


def gallery_rows(gt: dict, outputs: dict, records: list[dict], *, lq_dir: str | None,
                 refs_dir: str | None, reports: dict) -> tuple[list, list[str]]:
  """Gallery rows (one per GT image) and columns LQ | reference | methods... | GT."""
  extra = [("LQ", lq_dir), ("reference", refs_dir)]
  side = {label: gallery_lib.index_images(d) for label, d in extra if d}
  columns = [label for label, d in extra if d] + list(outputs) + ["GT"]
  by_key = {(r["method"], r["name"]): r for r in records}
  rows = []
  for name in sorted(gt):
    cells = {label: idx.get(name) for label, idx in side.items()}
    cells.update({m: idx.get(name) for m, idx in outputs.items()})
    cells["GT"] = gt[name]
    values = {m: {k: by_key[(m, name)][k] for k in PER_IMAGE if by_key[(m, name)][k] is not None}
              for m in outputs if (m, name) in by_key}
    rep = reports.get(name, {})
    if rep:
      values["report"] = gallery_lib.report_values(rep)
    rows.append(gallery_lib.Row(name=name, images=cells, values=values,
                                flags=list(rep.get("flags", [])),
                                notes=gallery_lib.report_notes(rep)))
  return rows, columns


def _csv_text(header: list[str], rows: list[list]) -> bytes:
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(header)
  w.writerows([["" if v is None else v for v in r] for r in rows])
  return buf.getvalue().encode()


def _write_outputs(out_dir: str, records: list[dict], result: dict, table: str) -> None:
  files.atomic_write(os.path.join(out_dir, "table.md"), table.encode())
  files.write_json(os.path.join(out_dir, "per_image.json"), records)
  files.write_json(os.path.join(out_dir, "per_method.json"), result)
  cols = ["method", "name", "gt", "output", "resized_from", *PER_IMAGE]
  files.atomic_write(os.path.join(out_dir, "per_image.csv"), _csv_text(cols, [
      [("x".join(map(str, r[c])) if c == "resized_from" and r[c] else r[c]) for c in cols]
      for r in records]))
  head = ["method", "n", "missing_outputs", "extra_outputs", "resized"]
  for m in METRICS:
    head += [f"{m.key}"] if not m.per_image else [f"{m.key}_mean", f"{m.key}_lo", f"{m.key}_hi"]
  rows = []
  for name, info in result["methods"].items():
    row = [name, info["n"], len(info["missing_outputs"]), len(info["extra_outputs"]),
           info["resized"]]
    for m in METRICS:
      e = info["metrics"][m.key]
      status = "missing" if "missing" in e else ("n/a" if "unavailable" in e else None)
      if not m.per_image:
        row.append(status or e["value"])
      else:
        row += [status, status, status] if status else [e["mean"], e["lo"], e["hi"]]
    rows.append(row)
  files.atomic_write(os.path.join(out_dir, "per_method.csv"), _csv_text(head, rows))


# ---------------------------------------------------------------------------------------- CLI


def define_flags() -> None:
  """Defines the command's flags (only when run as a command)."""
  from absl import flags
  flags.DEFINE_string("gt", None, "Folder of ground-truth images.")
  flags.DEFINE_multi_string("method", [], "NAME=DIR of a method's outputs (repeat the flag).")
  flags.DEFINE_string("out", None, "Output folder for the table, CSV/JSON and the gallery.")
  flags.DEFINE_string("lq", None, "Folder of the LQ inputs (gallery column).")
  flags.DEFINE_string("refs", None, "Folder of the reference images (gallery column).")
  flags.DEFINE_string("reports", None, "Folder of per-image restoration reports (NAME.json).")
  flags.DEFINE_string("lpips", None, "Converted LPIPS checkpoint (python -m converters.lpips).")
  flags.DEFINE_string("fid", None, "Converted FID-Inception (python -m converters.fid_inception).")
  flags.DEFINE_string("arcface", None, "Converted ArcFace (python -m converters.arcface).")
  flags.DEFINE_enum("arcface_variant", "official", ("official", "standard"),
                    "ArcFace preprocessing: the authors' crop of FFHQ-aligned faces, or the "
                    "whole image.")
  flags.DEFINE_enum("judge", "auto", JUDGE_MODES, "dlib descriptor judge: auto (when "
                    "installed), on (required), off.")
  flags.DEFINE_integer("batch", 8, "Images per device batch.")
  flags.DEFINE_integer("bootstrap", 1000, "Bootstrap resamples for the intervals.")
  flags.DEFINE_integer("seed", 0, "Seed of the bootstrap.")
  flags.DEFINE_integer("thumbnail", None, "Embed gallery images as thumbnails of this side.")
  flags.mark_flags_as_required(["gt", "out"])


def main(argv):
  del argv
  from absl import flags, logging
  logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  f = flags.FLAGS
  with cli.user_errors():
    methods = [parse_method(s) for s in f.method]
    result = evaluate(gt_dir=f.gt, methods=methods, out_dir=f.out, lq_dir=f.lq,
                      refs_dir=f.refs, reports_dir=f.reports, lpips_ckpt=f.lpips,
                      fid_ckpt=f.fid, arcface_ckpt=f.arcface,
                      arcface_variant=f.arcface_variant, judge=f.judge, batch=f.batch,
                      n_bootstrap=f.bootstrap, seed=f.seed, thumbnail=f.thumbnail)
  print(result["table"])
  print(f"wrote {f.out}/table.md, per_image.csv/json, per_method.csv/json, gallery.html")


if __name__ == "__main__":
  cli.run(define_flags, main)
