"""Per-image restoration reports (flags, fidelity, JSON), their summary, and the run gallery."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sair_jax.configs import default
from sair_jax import gallery
from sair_jax.core import degradation
from sair_jax.io import files, images
from sair_jax.pipeline import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smooth(h, w, phase=0.0):
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  return np.stack([0.5 + 0.3 * np.sin(6 * xx + phase), 0.3 + 0.4 * yy,
                   0.6 - 0.3 * xx * yy], axis=-1).astype(np.float32)  # [h, w, 3]


def down4(x):
  return degradation.bicubic_downsample(x, 4)  # [1, H, W, 3] -> [1, H/4, W/4, 3]


THRESHOLDS = dict(default.get_config().report)  # the one place thresholds are set
RESTORED = smooth(64, 64)
LQ = np.asarray(down4(RESTORED[None]))[0]  # a perfectly consistent restoration


def make(**kw):
  args = dict(restored01=RESTORED, lq01=LQ, degrade_fn=down4, identity_sim=0.7,
              judge_distance=0.3, expression_seen="happy", expression_requested="happy",
              final_losses={"l_d": 0.001, "l_id": 0.2}, thresholds=THRESHOLDS)
  args.update(kw)
  return report.image_report(**args)


def test_a_good_restoration_has_no_flags():
  r = make(name="face0")
  assert r["flags"] == [] and r["name"] == "face0"
  assert math.isinf(r["fidelity_psnr"])  # D(restored) equals the LQ exactly
  assert r["identity_sim"] == 0.7 and r["judge_distance"] == 0.3
  assert r["thresholds"] == THRESHOLDS
  assert THRESHOLDS == {"min_identity": 0.3, "min_fidelity_psnr": 20.0, "max_judge_distance": 0.6}
  assert r["restored_size"] == [64, 64] and r["lq_size"] == [16, 16]


@pytest.mark.parametrize("kw, flags", [
    ({"identity_sim": 0.1}, ["low_identity"]),
    ({"lq01": np.clip(LQ + 0.2, 0, 1)}, ["low_fidelity"]),
    ({"judge_distance": 0.9}, ["judge_mismatch"]),
    ({"expression_seen": "sad"}, ["expression_mismatch"]),
    ({"expression_seen": "Happiness"}, []),  # the same expression, another spelling
    ({"final_losses": {"l_d": float("nan")}}, ["nan_loss"]),
    ({"final_losses": {"l_d": float("inf")}}, ["nan_loss"]),
    ({"restored01": np.where(RESTORED > 0.6, np.nan, RESTORED)}, ["nan_image"]),
    ({"identity_sim": 0.1, "judge_distance": 0.9, "expression_requested": "angry"},
     ["low_identity", "judge_mismatch", "expression_mismatch"]),
    ({"identity_sim": None, "judge_distance": None, "expression_seen": None}, []),
    ({"identity_sim": 0.1, "thresholds": {**THRESHOLDS, "min_identity": None}}, []),  # off
    ({"identity_sim": 0.5, "thresholds": {**THRESHOLDS, "min_identity": 0.6}},
     ["low_identity"]),
])
def test_flags(kw, flags):
  assert make(**kw)["flags"] == flags


def test_fidelity_psnr_value_and_shape_check():
  lq = np.clip(LQ + 0.1, 0, 1)
  expected = 10 * math.log10(1 / np.mean((np.asarray(down4(RESTORED[None]))[0] - lq) ** 2))
  assert report.fidelity_psnr(RESTORED, lq, down4) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match="LQ image is"):
    report.fidelity_psnr(RESTORED, LQ[:8], down4)


def test_json_round_trip_keeps_non_finite_values(tmp_path):
  r = make(final_losses={"l_d": float("nan"), "l_id": 0.5})
  report.write_report(tmp_path / "a.json", r)
  text = (tmp_path / "a.json").read_text()
  json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
  back = report.read_report(tmp_path / "a.json")
  assert math.isnan(back["final_losses"]["l_d"]) and math.isinf(back["fidelity_psnr"])
  assert back["flags"] == ["nan_loss"]
  # Reports written with json.dumps(allow_nan=True) (NaN / Infinity tokens) read back too.
  (tmp_path / "c.json").write_text(json.dumps({"fidelity_psnr": float("inf"), "flags": []}))
  assert math.isinf(report.read_reports(tmp_path)["c"]["fidelity_psnr"])
  (tmp_path / "b.json").write_text("{broken")
  with pytest.raises(files.UnreadableFileError, match="b.json"):
    report.read_report(tmp_path / "b.json")


def test_summarise_counts_flags_and_averages():
  reports = [make(name="a"), make(name="b", identity_sim=0.1),
             make(name="c", identity_sim=0.2, final_losses={"l_d": float("nan")}),
             make(name="d", identity_sim=None, expression_seen="sad")]
  s = report.summarise(reports)
  assert s["images"] == 4 and s["flagged"] == 3
  assert s["flag_counts"]["low_identity"] == 2 and s["flag_counts"]["nan_loss"] == 1
  assert s["flag_counts"]["expression_mismatch"] == 1 and s["flag_counts"]["nan_image"] == 0
  assert s["flagged_images"]["low_identity"] == ["b", "c"]
  assert s["means"]["identity_sim"] == pytest.approx((0.7 + 0.1 + 0.2) / 3)
  assert s["counts"]["identity_sim"] == 3
  assert s["means"]["final_losses"]["l_d"] == pytest.approx(0.001)  # NaN left out
  assert s["expressions"] == {"happy": {"happy": 3, "sad": 1}}
  json.loads(files.dumps(s))  # strict JSON


# ------------------------------------------------------------------------------ run gallery


@pytest.fixture()
def run_dir(tmp_path):
  out, lq = tmp_path / "run", tmp_path / "lq"
  for d in (out / "restored", out / "references", out / "reports", lq):
    d.mkdir(parents=True)
  for i, name in enumerate(["f0", "f1", "f 2"]):
    images.write_image(out / "restored" / f"{name}.png", smooth(32, 32, i))
    images.write_image(out / "references" / f"{name}.png", smooth(32, 32, i + 1))
    images.write_image(lq / f"{name}.png", smooth(8, 8, i))
    r = make(name=name, identity_sim=[0.8, 0.1, 0.5][i],
             final_losses={"l_d": [0.1, float("nan"), 0.2][i]})
    report.write_report(out / "reports" / f"{name}.json", r)
  return out, lq


def _rows(page):
  return re.findall(r'<tr data-v="([^"]*)">(.*?)</tr>', page, flags=re.S)


def test_run_gallery_shows_flags_and_links_images(run_dir):
  out, lq = run_dir
  rows, columns = gallery.run_rows(out, lq_dir=str(lq))
  assert columns == ["LQ", "reference", "restored"]
  assert [r.name for r in rows] == ["f 2", "f0", "f1"]  # sorted by name
  assert [r.flags for r in rows] == [[], [], ["low_identity", "nan_loss"]]
  gallery.write_gallery(out / "gallery.html", rows, columns)
  page = (out / "gallery.html").read_text()
  found = _rows(page)
  assert len(found) == 3
  assert 'class="flag">low_identity<' in found[2][1] and 'class="flag"' not in found[1][1]
  import html as html_lib
  data = json.loads(html_lib.unescape(found[2][0]))
  assert data["flags"] == 2 and data["report/identity_sim"] == 0.1
  assert data["report/loss:l_d"] is None  # NaN: sorts as missing
  for src in re.findall(r'src="([^"]+)"', page):  # relative links that resolve
    from urllib.parse import unquote
    assert (out / unquote(src)).is_file(), src
  assert "f%202.png" in page and "<script>" in page and "http" not in page


def test_gallery_can_embed_thumbnails(run_dir, tmp_path):
  out, _ = run_dir
  rows, columns = gallery.run_rows(out)
  gallery.write_gallery(tmp_path / "g.html", rows, columns, thumbnail=48)
  page = (tmp_path / "g.html").read_text()
  assert page.count('src="data:image/png;base64,') == 3 * len(columns)


def test_gallery_cli(run_dir):
  out, lq = run_dir
  proc = subprocess.run([sys.executable, "-m", "sair_jax.gallery", "--run", str(out), "--lq",
                         str(lq)], cwd=REPO, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr
  assert "3 images, 1 flagged" in proc.stdout and (out / "gallery.html").is_file()
  proc = subprocess.run([sys.executable, "-m", "sair_jax.gallery", "--run", str(out / "nope")],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and proc.stderr.startswith("error: ")
  assert proc.stderr.count("\n") == 1


def test_index_images_refuses_ambiguous_names(tmp_path):
  images.write_image(tmp_path / "a.png", smooth(8, 8))
  images.write_image(tmp_path / "a.jpg", smooth(8, 8))
  with pytest.raises(gallery.GalleryError, match="two images named 'a'"):
    gallery.index_images(tmp_path)
