"""benchmarks/convergence.py's bookkeeping: its candidates are settings the solver accepts, its
`fast` row is the shipped recipe, and its table's deltas are the right differences.

(The PSNR runs themselves are the benchmark, not a test.)
"""

import json
import os

import optax
import pytest

from benchmarks import convergence as cv
from sair_jax.configs import default
from sair_jax.core import schedules


def _plain(value):
  """A config value as a comparable plain value (ConfigDict keeps tuples, JSON gives lists)."""
  return tuple(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("name", sorted(cv.CANDIDATES))
def test_every_candidate_is_a_valid_solver_setting(name):
  config = cv.candidate_config(name)
  schedules.check_settings(config)  # raises ValueError naming the field otherwise
  opt = schedules.optimizer_from_config(config, 10)
  assert isinstance(opt, optax.GradientTransformation)
  for field, value in cv.CANDIDATES[name].items():
    assert _plain(config.solver[field]) == _plain(value), field


def test_fast_row_is_the_shipped_fast_recipe():
  shipped = default.get_config("official")
  shipped.recipe = "fast"
  default.apply_recipe(shipped)
  row = cv.candidate_config("fast")
  for path in default.RECIPES["fast"]:
    field = path.split(".")[1]
    if field in ("chunk", "stop_tol"):  # how a run is split, not how it moves
      continue
    assert _plain(shipped.solver[field]) == _plain(row.solver[field]), field


def test_default_results_file_is_the_one_kept_beside_the_script():
  assert cv.FLAGS["out"].default == cv.KEPT_RESULTS
  assert cv.KEPT_RESULTS == os.path.join(os.path.dirname(os.path.abspath(cv.__file__)),
                                         "convergence.json")
  assert os.path.isfile(cv.KEPT_RESULTS)


def test_table_deltas_and_worst_are_against_official():
  runs = [
      {"kind": "s32_x4_near", "candidate": "official", "psnr": 25.0, "mean_steps": 400.0},
      {"kind": "s64_x4_far", "candidate": "official", "psnr": 30.0, "mean_steps": 400.0},
      {"kind": "s32_x4_near", "candidate": "fast", "psnr": 26.5, "mean_steps": 100.0},
      {"kind": "s64_x4_far", "candidate": "fast", "psnr": 29.25, "mean_steps": 100.0},
      {"kind": "s32_x4_near", "candidate": "fast_held", "psnr": 24.0, "mean_steps": 80.0},
  ]
  lines = cv.table(runs).splitlines()
  assert lines[0].split("|")[3:5] == [" s32_x4_near ", " s64_x4_far "]
  rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
          for line in lines[2:]}
  assert rows["official"] == ["400", "25.00", "30.00", ""]
  assert rows["fast"] == ["100", "26.50 (+1.50)", "29.25 (-0.75)", "-0.75"]
  # a kind not run is a blank cell, and the worst is over the kinds that were
  assert rows["fast_held"] == ["80", "24.00 (-1.00)", "", "-1.00"]


def test_paired_gap_is_over_the_same_faces():
  base = {"kind": "s64_x4_far", "candidate": "official", "per_face": [30.0, 31.0, 28.0, 29.0]}
  run = {"kind": "s64_x4_far", "candidate": "fast", "per_face": [30.5, 30.0, 28.0, 29.5]}
  g = cv.paired_gap(run, base)
  # differences +0.5, -1.0, 0.0, +0.5: mean 0, sample sd sqrt(1.5/3), se sd/2
  assert g["faces"] == 4 and g["mean"] == pytest.approx(0.0) and g["worst"] == pytest.approx(-1.0)
  assert g["se"] == pytest.approx((1.5 / 3) ** 0.5 / 2)
  # no per-face results, or other faces: no gap
  assert cv.paired_gap({"psnr": 30.0}, base) is None
  assert cv.paired_gap(dict(run, per_face=[30.0, 31.0]), base) is None
  lines = cv.gaps([base, run, {"kind": "s32_x4_near", "candidate": "fast", "per_face": [1.0]}])
  assert lines == ["fast on s64_x4_far: +0.00 ± 0.35 dB (standard error, 4 faces; "
                   "worst face -1.00)"]


def test_results_of_other_face_counts_are_not_mixed():
  runs = [{"kind": "s64_x4_far", "candidate": "official", "faces": 16}]
  cv.check_faces(runs, 16, "c.json")  # same faces: fine
  cv.check_faces([], 4, "c.json")
  with pytest.raises(cv.app.UsageError, match=r"c.json: holds runs over 16 faces, not --faces=4"):
    cv.check_faces(runs, 4, "c.json")


def test_kept_results_say_their_faces():
  runs = json.load(open(cv.KEPT_RESULTS))["runs"]
  assert runs and all(r["faces"] == cv.FLAGS["faces"].default for r in runs)
