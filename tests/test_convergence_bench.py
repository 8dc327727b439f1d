"""benchmarks/convergence.py's bookkeeping: its candidates are settings the solver accepts, its
`fast` row is the shipped recipe, and its table's deltas are the right differences.

(The PSNR runs themselves are the benchmark, not a test.)
"""

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
