"""A self-contained HTML gallery of restorations, sortable by any metric, with report flags.

    python -m sair_jax.gallery --run OUT [--lq LQ_DIR] [--out OUT/gallery.html] [--thumbnail 256]

One row per image name, one column per image source (e.g. LQ | reference | each method | GT);
under each image the metric values of that column; in the first cell the name and the flags of
the image's restoration report. A small inline script sorts the rows by the name, the number of
flags or any metric (worst first when a metric is picked) and can hide unflagged rows. No
server, no network: images are referenced by paths relative to the HTML file (the page works
as long as it stays next to the run/evaluation folders), or embedded as base64 thumbnails with
``thumbnail=N`` (the page is then a single movable file).

Run folders (written by ``python -m sair_jax.main``): ``OUT/reports/NAME.json`` (per-image
reports, :mod:`sair_jax.pipeline.report`), ``OUT/restored/NAME.png``, ``OUT/references/NAME.png``; the LQ
inputs live wherever the run read them (``--lq``). Every one of them is optional.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import os
import urllib.parse
from typing import Any, Mapping, Sequence

from sair_jax import cli
from sair_jax.io import files, images, listing
from sair_jax.errors import UserError

# Metrics for which larger is better (worst-first sorting is ascending for these).
HIGHER_IS_BETTER = {"psnr", "ssim", "identity", "identity_sim", "fidelity_psnr"}


class GalleryError(UserError):
  """A folder or file the gallery needs is missing or ambiguous. One line, names the path."""


@dataclasses.dataclass
class Row:
  """One image name of the gallery.

  ``images``: column label -> image file (None or absent: an empty cell).
  ``values``: group label (a column label, or e.g. "report") -> metric name -> value; every
  (group, metric) pair becomes a sort key and is shown under the group's image, or in the first
  cell for groups that are not image columns.
  ``flags``: report flags (shown as badges). ``notes``: extra text for the first cell.
  """
  name: str
  images: dict[str, str | None] = dataclasses.field(default_factory=dict)
  values: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  flags: list[str] = dataclasses.field(default_factory=list)
  notes: dict[str, str] = dataclasses.field(default_factory=dict)


def index_images(folder: str | os.PathLike) -> dict[str, str]:
  """Image files directly in ``folder`` (any case of extension) keyed by file stem
  (``a.png`` -> ``a``).

  Raises a one-line :class:`GalleryError` when the folder does not exist or two files share a
  stem (``a.png`` and ``a.jpg``), which would make pairing by name ambiguous.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise GalleryError(f"{folder}: no such directory")
  found = listing.list_folder(folder, images.IMAGE_EXTENSIONS)
  if found.clashes:
    raise GalleryError(found.clash_lines("images")[0])
  return dict(sorted(found.files.items()))


def _number(v) -> float | None:
  """A value as a float for sorting (None for missing / non-numeric)."""
  if v is None or isinstance(v, bool):
    return None
  try:
    f = float(v)
  except (TypeError, ValueError):
    return None
  return None if math.isnan(f) else f


def fmt(v) -> str:
  """Short display of a metric value."""
  f = _number(v)
  if f is None:
    return "–" if v is None or isinstance(v, (int, float)) else html.escape(str(v))
  if math.isinf(f):
    return "∞" if f > 0 else "-∞"
  return f"{f:.4g}"


def _src(path: str, html_dir: str, thumbnail: int | None) -> str:
  """The ``src`` of an image: a relative URL, or a data: URL of a thumbnail."""
  if thumbnail:
    from PIL import Image
    try:
      img = Image.fromarray(images.to_uint8(images.read_image(path)))
    except images.ImageIOError as e:
      raise GalleryError(str(e)) from None
    img.thumbnail((thumbnail, thumbnail), Image.LANCZOS if max(img.size) > thumbnail
                  else Image.NEAREST)
    if max(img.size) < thumbnail:  # tiny LQ images: enlarge without blurring
      s = thumbnail // max(img.size)
      img = img.resize((img.size[0] * s, img.size[1] * s), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
  rel = os.path.relpath(os.path.abspath(path), html_dir)
  return urllib.parse.quote(rel.replace(os.sep, "/"))


_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px;vertical-align:top;
text-align:center;background:#fff}th{position:sticky;top:0;background:#eee}
td.name{text-align:left;min-width:10em;font-size:90%}
img{width:var(--w,192px);height:auto;image-rendering:pixelated;display:block;margin:auto}
.v{font-size:80%;color:#444;white-space:nowrap}.flag{display:inline-block;background:#c62828;
color:#fff;border-radius:3px;padding:0 4px;margin:1px;font-size:80%}
.ok{color:#2e7d32;font-size:80%}#ctl{margin-bottom:1em}#ctl *{margin-right:.5em}
.miss{color:#999;font-size:80%}
"""

_JS = """
(function(){
  const tbody=document.querySelector('#g tbody');
  const rows=Array.from(tbody.rows);
  const data=new Map(rows.map(r=>[r,JSON.parse(r.dataset.v)]));
  const key=document.getElementById('key'),dir=document.getElementById('dir'),
        only=document.getElementById('only'),size=document.getElementById('size');
  let asc=true;
  function num(v){if(v===null||v===undefined)return null;if(v==='inf')return Infinity;
    if(v==='-inf')return -Infinity;if(typeof v==='string'&&key.value==='name')return v;
    const f=Number(v);return Number.isNaN(f)?null:f;}
  function apply(){
    const k=key.value;
    rows.sort((a,b)=>{const x=num(data.get(a)[k]),y=num(data.get(b)[k]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      const c=(x<y?-1:x>y?1:0);return asc?c:-c;});
    for(const r of rows){tbody.appendChild(r);
      r.style.display=(only.checked&&!data.get(r).flags)?'none':'';}
    dir.textContent=asc?'ascending':'descending';
  }
  key.addEventListener('change',()=>{const o=key.selectedOptions[0];
    asc=(o.dataset.better!=='low');apply();});
  dir.addEventListener('click',()=>{asc=!asc;apply();});
  only.addEventListener('change',apply);
  size.addEventListener('input',()=>document.body.style.setProperty('--w',size.value+'px'));
  apply();
})();
"""


def _sort_keys(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
  """(key, label, better) of every sortable quantity, in first-seen order."""
  keys = [("name", "name", "high"), ("flags", "number of flags", "low")]
  seen = set()
  for r in rows:
    for group, metrics in r.values.items():
      for m in metrics:
        k = f"{group}/{m}"
        if k not in seen:
          seen.add(k)
          keys.append((k, f"{group}: {m}", "high" if m in HIGHER_IS_BETTER else "low"))
  return keys


def _jsonable(v):
  f = _number(v)
  if f is None:
    return None
  if math.isinf(f):
    return "inf" if f > 0 else "-inf"
  return f


def render(rows: Sequence[Row], columns: Sequence[str], *, html_dir: str, title: str,
           thumbnail: int | None = None, header: str = "") -> str:
  """The gallery page as a string (see :func:`write_gallery`)."""
  keys = _sort_keys(rows)
  options = "".join(f'<option value="{html.escape(k)}" data-better="{b}">{html.escape(l)}'
                    f"</option>" for k, l, b in keys)
  head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
  body = []
  for r in rows:
    sort_values = {"name": r.name, "flags": len(r.flags)}
    for group, metrics in r.values.items():
      for m, v in metrics.items():
        sort_values[f"{group}/{m}"] = _jsonable(v)
    cells = [f"<b>{html.escape(r.name)}</b><br>"]
    cells += [f'<span class="flag">{html.escape(f)}</span>' for f in r.flags]
    if not r.flags and any(g not in columns for g in r.values):
      cells.append('<span class="ok">no flags</span>')
    for group, metrics in r.values.items():
      if group not in columns:
        cells += [f'<div class="v">{html.escape(m)}: {fmt(v)}</div>' for m, v in metrics.items()]
    cells += [f'<div class="v">{html.escape(k)}: {html.escape(str(v))}</div>'
              for k, v in r.notes.items()]
    tds = [f'<td class="name">{"".join(cells)}</td>']
    for c in columns:
      path = r.images.get(c)
      inner = []
      if path:
        src = _src(path, html_dir, thumbnail)
        link = _src(path, html_dir, None)  # the full image, by relative path
        inner.append(f'<a href="{html.escape(link)}"><img loading="lazy" '
                     f'src="{html.escape(src)}" alt="{html.escape(c)}"></a>')
      else:
        inner.append('<span class="miss">(none)</span>')
      inner += [f'<div class="v">{html.escape(m)}: {fmt(v)}</div>'
                for m, v in r.values.get(c, {}).items()]
      tds.append(f"<td>{''.join(inner)}</td>")
    data = html.escape(json.dumps(sort_values, allow_nan=False), quote=True)
    body.append(f'<tr data-v="{data}">{"".join(tds)}</tr>')
  return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
          f"</title><style>{_CSS}</style></head><body>\n<h2>{html.escape(title)}</h2>\n{header}\n"
          f'<div id="ctl">sort by <select id="key">{options}</select>'
          f'<button id="dir">ascending</button>'
          f'<label><input type="checkbox" id="only"> flagged only</label>'
          f'<label>size <input type="range" id="size" min="64" max="1024" value="192"></label>'
          f"</div>\n<table id=\"g\"><thead><tr><th>image</th>{head}</tr></thead><tbody>\n"
          + "\n".join(body) + f"\n</tbody></table>\n<script>{_JS}</script>\n</body></html>\n")


def write_gallery(path: str | os.PathLike, rows: Sequence[Row], columns: Sequence[str], *,
                  title: str = "sair_jax gallery", thumbnail: int | None = None,
                  header: str = "") -> None:
  """Writes the gallery HTML to ``path`` (atomically).

  Args:
    rows: the images, in initial display order.
    columns: image column labels, left to right.
    thumbnail: embed every image as a PNG thumbnail of at most this side (None: link the files
      by relative path).
    header: trusted HTML inserted above the table (e.g. the metric table).
  """
  path = os.fspath(path)
  html_dir = os.path.dirname(os.path.abspath(path))
  page = render(rows, columns, html_dir=html_dir, title=title, thumbnail=thumbnail,
                header=header)
  files.atomic_write(path, page.encode("utf-8"))


def report_values(report: Mapping) -> dict[str, Any]:
  """The sortable numbers of a restoration report: identity, judge, fidelity, final losses."""
  out = {k: report.get(k) for k in ("identity_sim", "judge_distance", "fidelity_psnr")}
  out.update({f"loss:{k}": v for k, v in sorted(report.get("final_losses", {}).items())})
  return out


def report_notes(report: Mapping) -> dict[str, str]:
  """The text fields of a report worth showing (expressions)."""
  notes = {}
  if report.get("expression_requested") or report.get("expression_seen"):
    notes["expression"] = (f"{report.get('expression_seen') or '?'} seen / "
                           f"{report.get('expression_requested') or '?'} requested")
  return notes


def run_rows(run_dir: str | os.PathLike | None = None, *, lq_dir: str | None = None,
             restored_dir: str | None = None, references_dir: str | None = None,
             reports_dir: str | None = None) -> tuple[list[Row], list[str]]:
  """Rows and columns of a restoration run's gallery (LQ | reference | restored).

  ``restored_dir``, ``references_dir`` and ``reports_dir`` default to ``run_dir/restored``,
  ``run_dir/references`` and ``run_dir/reports`` when those exist; any may be absent.
  """
  from sair_jax.pipeline import report as report_lib

  def default(given, sub):
    if given is not None or run_dir is None:
      return given
    path = os.path.join(os.fspath(run_dir), sub)
    return path if os.path.isdir(path) else None

  restored_dir = default(restored_dir, "restored")
  references_dir = default(references_dir, "references")
  reports_dir = default(reports_dir, "reports")
  sources = [("LQ", lq_dir), ("reference", references_dir), ("restored", restored_dir)]
  indexed = {label: index_images(d) for label, d in sources if d is not None}
  try:
    reports = report_lib.read_reports(reports_dir) if reports_dir else {}
  except (OSError, files.UnreadableFileError) as e:
    raise GalleryError(str(e)) from None
  names = sorted(set(reports) | set(indexed.get("restored", {})))
  if not names:
    raise GalleryError(f"{run_dir or restored_dir}: no restored images and no reports found")
  columns = [label for label, _ in sources if label in indexed]
  rows = []
  for name in names:
    rep = reports.get(name, {})
    rows.append(Row(name=name, images={c: indexed[c].get(name) for c in columns},
                    values={"report": report_values(rep)} if rep else {},
                    flags=list(rep.get("flags", [])), notes=report_notes(rep)))
  return rows, columns


def define_flags() -> None:
  from absl import flags
  flags.DEFINE_string("run", None, "Run folder (with restored/, references/, reports/).")
  flags.DEFINE_string("lq", None, "Folder of the LQ inputs of the run.")
  flags.DEFINE_string("restored", None, "Restored images (default RUN/restored).")
  flags.DEFINE_string("references", None, "Reference images (default RUN/references).")
  flags.DEFINE_string("reports", None, "Per-image reports (default RUN/reports).")
  flags.DEFINE_string("out", None, "Output HTML (default RUN/gallery.html).")
  flags.DEFINE_integer("thumbnail", None, "Embed images as thumbnails of this side (px).")


def main(argv):
  del argv
  from absl import flags
  f = flags.FLAGS
  out = f.out or (os.path.join(f.run, "gallery.html") if f.run else None)
  with cli.user_errors():
    if out is None:
      raise GalleryError("give --run or --out")
    rows, columns = run_rows(f.run, lq_dir=f.lq, restored_dir=f.restored,
                             references_dir=f.references, reports_dir=f.reports)
    flagged = sum(bool(r.flags) for r in rows)
    write_gallery(out, rows, columns, title=f"restoration run {f.run or ''}".strip(),
                  thumbnail=f.thumbnail,
                  header=f"<p>{len(rows)} images, {flagged} flagged.</p>")
  print(f"wrote {out} ({len(rows)} images, {flagged} flagged)")


if __name__ == "__main__":
  cli.run(define_flags, main)
