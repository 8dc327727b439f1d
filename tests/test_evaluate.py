"""The evaluation command end to end on a small synthetic set, its numbers against direct metric
calls, optional metrics (missing weights, a fake FID network and judge), errors, and the
gallery's sorting script (run under node when available)."""

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import fixture
from converters import arcface as arcface_converter
from converters import lpips as lpips_converter
from sair_jax.configs import default
from sair_jax import evaluate
from sair_jax.core import degradation
from sair_jax.io import images
from sair_jax.pipeline import report
from sair_jax.metrics import fid, image, lpips

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 4


def face(i, rng):
  yy, xx = np.mgrid[0:64, 0:64] / 64
  img = np.stack([0.5 + 0.3 * np.sin(6 * xx + i), 0.3 + 0.4 * yy, 0.6 - 0.3 * xx * yy], -1)
  return np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1).astype(np.float32)  # [64, 64, 3]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """4 GT images 64x64; 'good' = GT + slight noise (f3 missing, one extra file); 'bicubic' =
  the 16x16 LQ (resized by the evaluation); two restoration reports."""
  root = tmp_path_factory.mktemp("eval")
  rng = np.random.default_rng(0)
  for d in ("gt", "good", "lq", "reports"):
    (root / d).mkdir()
  for i in range(N):
    gt = face(i, rng)
    images.write_image(root / "gt" / f"f{i}.png", gt)
    if i < N - 1:
      images.write_image(root / "good" / f"f{i}.png",
                           np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1))
    lq = np.asarray(degradation.bicubic_downsample(gt[None], 4))[0]
    images.write_image(root / "lq" / f"f{i}.png", lq)
  images.write_image(root / "good" / "extra.png", face(9, rng))
  down = lambda x: degradation.bicubic_downsample(x, 4)  # noqa: E731
  for i, sim in ((0, 0.9), (1, 0.1)):
    r = report.image_report(restored01=images.read_image(root / "gt" / f"f{i}.png"),
                            lq01=images.read_image(root / "lq" / f"f{i}.png"),
                            degrade_fn=down, identity_sim=sim, name=f"f{i}",
                            thresholds=dict(default.get_config().report))
    report.write_report(root / "reports" / f"f{i}.json", r)
  lpips_converter.convert_files(str(fixture("lpips_alexnet_features.pth")),
                                str(fixture("lpips_alex_lin.pth")), str(root / "lpips"))
  arcface_converter.convert_file(str(fixture("iresnet_1111.pth")), str(root / "arcface"))
  return root


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "sair_jax.evaluate", *map(str, args)], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.fixture(scope="module")
def cli_run(dataset):
  out = dataset / "out"
  proc = run_cli("--gt", dataset / "gt", "--method", f"good={dataset / 'good'}", "--method",
                 f"bicubic={dataset / 'lq'}", "--lq", dataset / "lq", "--refs", dataset / "gt",
                 "--reports", dataset / "reports", "--lpips", dataset / "lpips", "--arcface",
                 dataset / "arcface", "--judge", "off", "--out", out)
  assert proc.returncode == 0, proc.stderr
  return out, proc


def test_table_has_every_metric_and_marks_missing_ones(cli_run):
  out, proc = cli_run
  table = (out / "table.md").read_text()
  assert table in proc.stdout
  lines = table.splitlines()
  assert lines[0].startswith(
      "| Method | N | PSNR ↑ | SSIM ↑ | LPIPS ↓ | ID sim (ArcFace) ↑ | dlib dist ↓ | FID ↓ |")
  good = [c.strip() for c in lines[2].split("|")[1:-1]]
  bicubic = [c.strip() for c in lines[3].split("|")[1:-1]]
  assert good[:2] == ["good", "3"] and bicubic[:2] == ["bicubic", "4"]
  for row in (good, bicubic):
    assert re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\]", row[4])  # LPIPS computed
    assert row[-2:] == ["missing", "missing"]  # judge off, FID without weights
  assert "fid: missing (no --fid checkpoint given)" in table
  assert "good: 1 GT image(s) without output: f3." in table
  assert "good: 1 output(s) without GT image (ignored): extra." in table
  assert "bicubic: 4 output(s) resized to the GT size" in table
  assert "Restoration reports: 2 images, 1 flagged (low_identity: 1)." in table


def test_per_image_and_per_method_files(cli_run, dataset):
  out, _ = cli_run
  with open(out / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(r["method"], r["name"]) for r in rows] == (
      [("good", f"f{i}") for i in range(3)] + [("bicubic", f"f{i}") for i in range(4)])
  assert all(r["resized_from"] == "16x16" for r in rows if r["method"] == "bicubic")
  assert all(r["judge"] == "" and float(r["lpips"]) > 0 for r in rows)
  # The numbers are the metric functions' own on the images read back.
  gt = images.read_image(dataset / "gt" / "f1.png")
  good = images.read_image(dataset / "good" / "f1.png")
  row = next(r for r in rows if (r["method"], r["name"]) == ("good", "f1"))
  assert float(row["psnr"]) == pytest.approx(float(image.psnr(good, gt)), rel=1e-6)
  assert float(row["ssim"]) == pytest.approx(float(image.ssim(good, gt)), rel=1e-6)
  model = lpips.load(str(dataset / "lpips"))
  assert float(row["lpips"]) == pytest.approx(float(model.distance(good[None], gt[None])[0]),
                                              rel=1e-5)
  summary = json.loads((out / "per_method.json").read_text())
  good_m, bic_m = summary["methods"]["good"], summary["methods"]["bicubic"]
  assert good_m["missing_outputs"] == ["f3"] and good_m["extra_outputs"] == ["extra"]
  assert summary["missing_metrics"]["fid"] == "no --fid checkpoint given"
  for m in ("psnr", "ssim", "lpips", "identity"):
    e = good_m["metrics"][m]
    assert e["lo"] <= e["mean"] <= e["hi"] and e["n"] == 3
    assert e["mean"] == pytest.approx(np.mean([float(r[m]) for r in rows
                                               if r["method"] == "good"]), rel=1e-6)
  assert good_m["metrics"]["psnr"]["mean"] > bic_m["metrics"]["psnr"]["mean"] + 3
  assert good_m["metrics"]["lpips"]["mean"] < bic_m["metrics"]["lpips"]["mean"]
  assert summary["report_summary"]["flag_counts"]["low_identity"] == 1
  with open(out / "per_method.csv") as f:
    per_method = list(csv.DictReader(f))
  assert [r["fid"] for r in per_method] == ["missing", "missing"]
  assert float(per_method[1]["psnr_mean"]) == pytest.approx(bic_m["metrics"]["psnr"]["mean"])


def test_gallery_has_every_column_and_the_flags(cli_run):
  out, _ = cli_run
  page = (out / "gallery.html").read_text()
  head = re.search(r'<table id="g"><thead><tr>(.*?)</tr>', page).group(1)
  assert re.findall(r"<th>(.*?)</th>", head) == ["image", "LQ", "reference", "good", "bicubic",
                                                  "GT"]
  rows = re.findall(r'<tr data-v="([^"]*)">(.*?)</tr>', page, flags=re.S)
  assert len(rows) == N
  data = [json.loads(html.unescape(v)) for v, _ in rows]
  assert [d["flags"] for d in data] == [0, 1, 0, 0]
  assert "good/lpips" in data[0] and "good/lpips" not in data[3]  # f3 has no 'good' output
  assert 'class="flag">low_identity<' in rows[1][1]
  for src in re.findall(r'src="([^"]+)"', page):
    assert (out / src).is_file()


def test_reruns_are_identical(dataset, tmp_path):
  kw = dict(gt_dir=str(dataset / "gt"), methods=[("bicubic", str(dataset / "lq"))],
            judge="off", batch=3, n_bootstrap=200, seed=7)
  a = evaluate.evaluate(out_dir=str(tmp_path / "a"), **kw)
  b = evaluate.evaluate(out_dir=str(tmp_path / "b"), **kw)
  assert a["table"] == b["table"]
  assert (tmp_path / "a" / "per_method.json").read_text() == (
      tmp_path / "b" / "per_method.json").read_text()
  assert a["missing_metrics"]["lpips"] == "no --lpips checkpoint given"


class FakeFID:
  """Stands in for FID-Inception: 'features' = per-channel means and stds (6-d)."""

  def features(self, x):
    x = np.asarray(x)
    return np.concatenate([x.mean((1, 2)), x.std((1, 2))], axis=1)


class FakeJudge:
  """Stands in for dlib: 'descriptor' = the mean colour; "no face" where the top-left corner is
  bright red (f1 and f2: 0.5 + 0.3 sin(i) > 0.7, against 0.5 and 0.54 for f0 and f3)."""

  def descriptor(self, img):
    img = np.asarray(img)
    return None if img[:4, :4, 0].mean() > 0.65 else img.mean((0, 1))


def test_fid_and_judge_plumbing_with_stand_in_networks(dataset, tmp_path):
  models = evaluate.Models(fid=FakeFID(), judge=FakeJudge(),
                           missing={"lpips": "not loaded", "identity": "not loaded"})
  res = evaluate.evaluate(gt_dir=str(dataset / "gt"), out_dir=str(tmp_path),
                          methods=[("good", str(dataset / "good")),
                                   ("bicubic", str(dataset / "lq"))],
                          models=models, batch=2)
  gts = np.stack([images.read_image(dataset / "gt" / f"f{i}.png") for i in range(N)])
  goods = np.stack([images.read_image(dataset / "good" / f"f{i}.png") for i in range(3)])
  expected = fid.fid_from_features(FakeFID().features(gts), FakeFID().features(goods))
  assert res["methods"]["good"]["metrics"]["fid"]["value"] == pytest.approx(expected, rel=1e-6)
  judge = res["methods"]["good"]["metrics"]["judge"]
  good0 = images.read_image(dataset / "good" / "f0.png")
  assert judge["n"] == 1 and judge["no_face"] == 2
  assert judge["mean"] == pytest.approx(np.linalg.norm(gts[0].mean((0, 1)) - good0.mean((0, 1))),
                                        rel=1e-5)
  assert "good: dlib found no face in 2 image pairs" in res["table"]
  assert res["methods"]["good"]["metrics"]["lpips"] == {"missing": "not loaded"}
  row = res["table"].splitlines()[2]
  assert row.split("|")[-2].strip() == f"{expected:.2f}"


def test_unloadable_checkpoint_is_reported_missing(tmp_path):
  messages = []
  models = evaluate.load_models(lpips_ckpt=str(tmp_path / "absent"), fid_ckpt=None,
                                arcface_ckpt=None, judge="off", log=messages.append)
  assert models.lpips is None and "does not exist" in models.missing["lpips"]
  assert messages and messages[0].startswith("warning: lpips is reported as missing")
  assert models.missing["judge"] == "--judge=off"


@pytest.mark.parametrize("methods, message", [
    ([], "no --method"),
    ([("a", "x"), ("a", "y")], "used twice"),
])
def test_argument_errors(dataset, tmp_path, methods, message):
  with pytest.raises(evaluate.EvaluationError, match=message):
    evaluate.evaluate(gt_dir=str(dataset / "gt"), methods=methods, out_dir=str(tmp_path))


@pytest.mark.parametrize("spec, message", [("noequals", "expected NAME=DIR"),
                                           ("GT=dir", "reserved"), ("=dir", "expected")])
def test_parse_method(spec, message):
  with pytest.raises(evaluate.EvaluationError, match=message):
    evaluate.parse_method(spec)
  assert evaluate.parse_method("sair=a=b") == ("sair", "a=b")


def test_cli_errors_are_one_line(tmp_path):
  (tmp_path / "empty").mkdir()
  proc = run_cli("--gt", tmp_path / "empty", "--method", f"x={tmp_path}", "--out", tmp_path / "o")
  assert proc.returncode == 1 and proc.stderr.startswith("error: ")
  assert proc.stderr.count("\n") == 1 and "no images found" in proc.stderr


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
@pytest.mark.parametrize("key, better, expected", [
    ("bicubic/psnr", "high", None),  # worst first: ascending
    ("good/lpips", "low", None),  # worst first: descending, f3 (no value) last
    ("flags", "low", ["f1"]),
])
def test_gallery_script_sorts_rows(cli_run, key, better, expected):
  out, _ = cli_run
  page = (out / "gallery.html").read_text()
  script = re.search(r"<script>(.*?)</script>", page, flags=re.S).group(1)
  values = [html.unescape(v) for v in re.findall(r'<tr data-v="([^"]*)">', page)]
  harness = """
const rows = %s.map(v => ({dataset: {v}, style: {}}));
const tbody = {rows: rows.slice(), order: [], appendChild(r) {
  this.order = this.order.filter(x => x !== r); this.order.push(r); }};
const on = {};
const el = id => ({value: '', checked: false, textContent: '', dataset: {}, selectedOptions: [],
                   addEventListener(type, f) { on[id] = f; }});
const els = {key: el('key'), dir: el('dir'), only: el('only'), size: el('size')};
els.key.value = %s; els.key.selectedOptions = [{dataset: {better: %s}}];
globalThis.document = {querySelector: () => tbody, getElementById: id => els[id],
                       body: {style: {setProperty() {}}}};
%s
on.key();
console.log(JSON.stringify(tbody.order.map(r => JSON.parse(r.dataset.v).name)));
""" % (json.dumps(values), json.dumps(key), json.dumps(better), script)
  proc = subprocess.run(["node", "-e", harness], capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  order = json.loads(proc.stdout)
  data = {d["name"]: d for d in map(json.loads, values)}
  present = [n for n in data if data[n].get(key) is not None]
  worst_first = sorted(present, key=lambda n: data[n][key], reverse=(better == "low"))
  assert order[:len(present)] == worst_first
  assert sorted(order) == sorted(data)
  if expected:
    assert order[:len(expected)] == expected
