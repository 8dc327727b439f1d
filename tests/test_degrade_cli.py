"""Tests of the test-set builder ``python -m sair_jax.degrade`` and of sair_jax.io.images."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sair_jax.core import degradation
from sair_jax import degrade
from sair_jax.io import images


def smooth(h, w, phase=0.0):
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  return np.stack([0.5 + 0.3 * np.sin(6 * xx + phase), 0.3 + 0.4 * yy,
                   0.6 - 0.3 * xx * yy], axis=-1).astype(np.float32)  # [h, w, 3]


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("gt")
  for i in range(3):
    images.write_image(d / f"face{i}.png", smooth(64, 64, phase=i))
  return d


def run_cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "sair_jax.degrade", *map(str, args)],
                        capture_output=True, text=True, env=env, timeout=120)


def outputs(d):
  return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# ------------------------------------------------------------------------------ end to end


def test_x32_writes_pngs_and_json_reproducibly(gt_dir, tmp_path):
  first, second = tmp_path / "a", tmp_path / "b"
  for dst in (first, second):
    res = run_cli("--src", gt_dir, "--dst", dst, "--preset", "x32", "--factor", 8, "--seed", 5)
    assert res.returncode == 0, res.stderr
  files = outputs(first)
  assert sorted(files) == [f"face{i}.{e}" for i in range(3) for e in ("json", "png")]
  assert files == outputs(second)  # a re-run reproduces every byte
  for i in range(3):
    lq = images.read_image(first / f"face{i}.png")
    assert lq.shape == (8, 8, 3)
    rec = json.loads((first / f"face{i}.json").read_text())
    assert rec["source"] == f"face{i}.png" and rec["factor"] == 8 and rec["seed"] == 5
    assert rec["stages"] == ["noise"] and rec["blur"] is None and rec["jpeg"] is None
    assert 0.001 <= rec["noise"]["variance"] <= 0.003
    assert rec["noise"]["sigma_unit"] == pytest.approx(np.sqrt(rec["noise"]["variance"]))
  assert not [p for p in first.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_x8_all_stages(gt_dir, tmp_path):
  res = run_cli("--src", gt_dir, "--dst", tmp_path, "--preset", "x8", "--lq_size", 16,
                "--x8_stages", "blur,noise,jpeg")
  assert res.returncode == 0, res.stderr
  for i in range(3):
    assert images.read_image(tmp_path / f"face{i}.png").shape == (16, 16, 3)
    rec = json.loads((tmp_path / f"face{i}.json").read_text())
    assert rec["factor"] == 4 and rec["stages"] == ["blur", "noise", "jpeg"]
    assert 0.5 <= rec["blur"]["sigma_lq"] <= 1.5
    assert rec["blur"]["sigma_hr"] == pytest.approx(4 * rec["blur"]["sigma_lq"])
    assert 20 <= rec["jpeg"]["quality"] <= 60


@pytest.mark.parametrize("bad,flags,message", [
    ("broken.png", ("--preset", "x32", "--factor", "8"), "not a recognised image format"),
    ("small.png", ("--preset", "x8"), "multiple of --lq_size=128"),
])
def test_bad_input_is_one_line_error(tmp_path, bad, flags, message):
  src = tmp_path / "src"
  src.mkdir()
  if bad == "broken.png":
    (src / bad).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
  else:
    images.write_image(src / bad, smooth(64, 64))
  res = run_cli("--src", src, "--dst", tmp_path / "out", *flags)
  assert res.returncode != 0
  lines = [l for l in res.stderr.splitlines() if l.strip()]
  assert len(lines) == 1, res.stderr
  assert str(src / bad) in lines[0] and message in lines[0]
  assert "Traceback" not in res.stderr


# ------------------------------------------------------------------------------ in process


def test_noise_free_x32_is_quantised_bicubic():
  x = smooth(64, 64)
  lq, rec = degrade.degrade_image(x, "a.png", preset="x32", factor=8, noise_var=(0.0, 0.0))
  want = degradation.bicubic_downsample(x[None], 8)[0]
  np.testing.assert_array_equal(lq, images.to_uint8(np.asarray(want)))
  assert rec["noise"]["variance"] == 0.0


def test_seed_and_name_drive_the_draws():
  x = smooth(64, 64)
  run = lambda name, seed: degrade.degrade_image(x, name, preset="x32", factor=8, seed=seed)
  a, ra = run("a.png", 0)
  np.testing.assert_array_equal(a, run("a.png", 0)[0])
  assert not np.array_equal(a, run("a.png", 1)[0])
  assert ra["noise"]["variance"] != run("b.png", 0)[1]["noise"]["variance"]


def test_x8_random_stages_vary_between_images():
  x = smooth(32, 32)
  sets = {tuple(degrade.degrade_image(x, f"{i}.png", preset="x8", lq_size=16)[1]["stages"])
          for i in range(8)}
  assert len(sets) >= 3
  assert all(set(s) <= set(degrade.X8_STAGES) for s in sets)


def test_size_errors():
  with pytest.raises(degrade.DegradeError, match="not a multiple of the factor 32"):
    degrade.degrade_image(smooth(80, 80), "a.png", preset="x32")
  with pytest.raises(degrade.DegradeError, match="square"):
    degrade.degrade_image(smooth(32, 64), "a.png", preset="x8", lq_size=16)


# ------------------------------------------------------------------------------- image_io


def test_image_io_round_trip_and_atomic_write(tmp_path):
  img = smooth(9, 7)
  path = tmp_path / "x.png"
  images.write_image(path, img)
  back = images.read_image(path)
  assert back.dtype == np.float32 and back.shape == (9, 7, 3)
  np.testing.assert_allclose(back, img, atol=0.5 / 255 + 1e-6)
  images.write_image(path, np.zeros((9, 7), np.uint8))  # replaces, grey -> RGB on read
  assert images.read_image(path).shape == (9, 7, 3)
  assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("plain text"), "not a recognised image format"),
    (lambda p: p.mkdir(), "is a directory, not an image"),
])
def test_image_io_errors_name_the_file(tmp_path, make, message):
  path = tmp_path / "img.png"
  make(path)
  with pytest.raises(images.ImageIOError) as err:
    images.read_image(path)
  assert str(err.value) == f"{path}: {message}"
