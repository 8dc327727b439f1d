"""Expression directions: planted-direction recovery, resumable collection and fitting, import
of the authors' .npy files, the directions file format, and one run through the command."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fixture
from converters import expression as expression_converter
from sair_jax import directions as command
from sair_jax.expression_directions import authors_npy, logistic, sampling
from sair_jax.expression_directions import file as directions_file
from sair_jax.face.expression import EXPRESSIONS
from sair_jax.nets import expression

D = 12  # latent width of the synthetic problems


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("rows", [1, 3])
def test_fit_recovers_planted_directions(rows):
  """Row r holds x0 rotated by Q_r; class k is 'x0 . d_k > 0.3'. The normal for (k, r) must be
  Q_r^T d_k: every row is fitted on its own coordinates."""
  rng = np.random.default_rng(0)
  n, k = 3000, 4
  x0 = rng.normal(size=(n, D)) + 0.5
  rots = [np.linalg.qr(rng.normal(size=(D, D)))[0] for _ in range(rows)]
  x = np.stack([x0 @ q for q in rots], axis=1).astype(np.float32)  # [N, R, D]
  planted = _unit(rng.normal(size=(k, D)))
  y = (x0 - 0.5) @ planted.T > 0.3  # [N, K]
  fit = logistic.fit_linear(x, y)
  assert fit.normals.shape == (k, rows, D)
  for r, q in enumerate(rots):
    cos = np.sum(fit.normals[:, r] * (planted @ q), axis=1)  # (Q^T d)^T = d^T Q
    assert np.all(cos > 0.95), cos
  assert np.all(fit.balanced_accuracy > 0.9)
  np.testing.assert_array_equal(fit.counts, y.sum(axis=0))


def test_fit_resumes_from_its_state(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(800, 1, D)).astype(np.float32)
  y = np.stack([x[:, 0, 0] + 0.3 * rng.normal(size=800) > 0] * 2, axis=1)
  full = logistic.fit_linear(x, y, iters=12)
  state = str(tmp_path / "state.npz")
  part = logistic.fit_linear(x, y, iters=2, state_path=state)
  assert part.iterations == 2
  resumed = logistic.fit_linear(x, y, iters=12, state_path=state)
  assert resumed.iterations == full.iterations
  np.testing.assert_allclose(resumed.normals, full.normals, atol=1e-6)
  with pytest.raises(directions_file.DirectionsError, match="different problem"):
    logistic.fit_linear(x, y, iters=12, l2=0.5, state_path=state)


class _Interrupted(Exception):
  pass


def _planted_run(direction):
  """sample_fn / label_fn pair: w ~ N(0, I) in one row; 'happy' when w . d > 0, else 'neutral'."""
  happy, neutral = EXPRESSIONS.index("happy"), EXPRESSIONS.index("neutral")

  def sample_fn(key, n):
    return jax.random.normal(key, (n, 1, D))

  def label_fn(latents):
    score = np.asarray(latents)[:, 0] @ direction  # [n]
    probs = np.full((len(score), 7), 0.01, np.float32)
    probs[:, happy] = np.where(score > 0, 0.94, 0.01)
    probs[:, neutral] = np.where(score > 0, 0.01, 0.94)
    return probs

  return sample_fn, label_fn


def test_collect_resumes_and_fits_the_planted_direction(tmp_path):
  direction = _unit(np.random.default_rng(2).normal(size=D))
  sample_fn, label_fn = _planted_run(direction)
  kwargs = dict(batch=64, seed=5, run_info={"what": "planted"}, checkpoint_every=1)
  calls = []

  def failing_label_fn(latents):
    calls.append(1)
    if len(calls) == 4:
      raise _Interrupted()
    return label_fn(latents)

  work = str(tmp_path / "work")
  with pytest.raises(_Interrupted):
    sampling.collect(work, sample_fn, failing_label_fn, 1000, **kwargs)
  latents, probs = sampling.collect(work, sample_fn, label_fn, 1000, **kwargs)  # resumes at batch 3
  clean = sampling.collect(str(tmp_path / "clean"), sample_fn, label_fn, 1000, **kwargs)
  np.testing.assert_array_equal(latents, clean[0])
  np.testing.assert_array_equal(probs, clean[1])
  assert latents.shape == (1000, 1, D) and np.all(np.abs(latents).sum(axis=(1, 2)) > 0)

  d = logistic.fit_directions(latents, probs, n_latent=4)
  assert d.directions.shape == (7, 4, D)
  happy, neutral = d.get("happiness"), d.get("neutral")
  assert np.all(happy @ direction > 0.95) and np.all(neutral @ direction < -0.95)
  assert d.available.sum() == 2 and d.counts.sum() == 1000
  with pytest.raises(directions_file.DirectionsError, match="no direction for 'sad'"):
    d.get("sad")

  with pytest.raises(directions_file.DirectionsError, match="holds a different run"):
    sampling.collect(work, sample_fn, label_fn, 1000, **{**kwargs, "seed": 6})


@pytest.mark.parametrize("shape", [(4, D), (1, 4, D), (1, D), (D,)])
def test_import_npy_normalises_and_matches_by_name(tmp_path, shape):
  rng = np.random.default_rng(3)
  arrays = {}
  for e in ("happy", "surprise", "sad"):
    arrays[e] = (rng.normal(size=shape) * 7).astype(np.float32)
    np.save(tmp_path / f"emotion_{e}.npy", arrays[e])
  d = authors_npy.import_npy(sorted(str(p) for p in tmp_path.glob("*.npy")), n_latent=4)
  assert d.directions.shape == (7, 4, D)
  np.testing.assert_allclose(np.linalg.norm(d.get("happy"), axis=-1), 1.0, atol=1e-6)
  for e, a in arrays.items():  # each expression gets its own file (happy is not surprise)
    want = _unit(np.broadcast_to(a.reshape(-1, D), (4, D)))
    np.testing.assert_allclose(d.get(e), want, atol=1e-6)
    np.testing.assert_allclose(d.source_norms[EXPRESSIONS.index(e)],
                               np.linalg.norm(np.broadcast_to(a.reshape(-1, D), (4, D)), axis=-1),
                               rtol=1e-5)
  assert list(d.available) == [e in arrays for e in EXPRESSIONS]
  directions_file.save_directions(tmp_path / "d.npz", d)
  back = directions_file.load_directions(tmp_path / "d.npz")
  np.testing.assert_array_equal(back.directions, d.directions)
  np.testing.assert_array_equal(back.available, d.available)
  assert back.source == d.source and back.labels == EXPRESSIONS


@pytest.mark.parametrize("files, message", [
    ({"emotion_sad.npy": (18, D), "sadness.npy": (18, D)}, "a second file for 'sad'"),
    ({"emotion_bored.npy": (18, D)}, "names no expressions"),
    ({"happy_vs_sad.npy": (18, D)}, "names several"),
    ({"emotion_sad.npy": (5, D), "emotion_fear.npy": (4, D)}, "disagree on the number of W+ rows"),
    ({"emotion_sad.npy": (18, D), "emotion_fear.npy": (18, D + 1)}, "disagree on w_dim"),
])
def test_import_npy_errors(tmp_path, files, message):
  for name, shape in files.items():
    np.save(tmp_path / name, np.ones(shape, np.float32))
  with pytest.raises(directions_file.DirectionsError, match=re.escape(message)) as e:
    authors_npy.import_npy(sorted(str(tmp_path / n) for n in files))
  assert "\n" not in str(e.value)


def test_load_directions_errors(tmp_path):
  with pytest.raises(directions_file.DirectionsError, match="no such file"):
    directions_file.load_directions(tmp_path / "missing.npz")
  (tmp_path / "junk.npz").write_bytes(b"junk")
  with pytest.raises(directions_file.DirectionsError, match="not a directions .npz file"):
    directions_file.load_directions(tmp_path / "junk.npz")
  np.savez(tmp_path / "other.npz", a=np.zeros(3))
  with pytest.raises(directions_file.DirectionsError, match="missing"):
    directions_file.load_directions(tmp_path / "other.npz")


def test_command_fits_with_a_tiny_generator_and_resumes(tmp_path):
  """generator (sg2_s32 fixture, converted) + random tiny classifier -> directions file."""
  from converters import stylegan2 as sg2_converter
  from sair_jax.face.expression import classifier_input
  from sair_jax.nets import stylegan2
  sg2_converter.convert_file(str(fixture("sg2_s32.pt")), str(tmp_path / "g"))
  arch = expression.Arch(input_size=64, in_channels=1, stem=(4,), stem_kernel=3, blocks=(8,),
                         separable_per_block=2, block_kernel=3, depth_multiplier=1, pool_size=3,
                         head_kernel=3, num_classes=7, eps=1e-3)
  params = expression.init_params(arch, jax.random.PRNGKey(0))
  # A random head answers the same class for every face; centring its logits on generated
  # faces makes the answer depend on the face, so that several classes get samples.
  G = stylegan2.load(tmp_path / "g")
  faces = G.synthesis(G.to_wplus(G.mapping(jax.random.normal(jax.random.PRNGKey(9), (64, 256)))))
  logits = expression.apply(params, arch, classifier_input(jnp.clip((faces + 1) / 2, 0, 1)))
  params["head"]["bias"] = params["head"]["bias"] - np.asarray(logits).mean(axis=0)
  expression.save(tmp_path / "c", params, arch, expression_converter.FER_LABELS)
  args = dict(out=str(tmp_path / "dirs.npz"), generator=str(tmp_path / "g"),
              classifier=str(tmp_path / "c"), samples=40, batch=16, iters=4, log=lambda s: None)
  d = command.run(**args)
  back = directions_file.load_directions(tmp_path / "dirs.npz")
  n_latent = back.n_latent
  assert back.directions.shape[::2] == (7, 256) and n_latent == 8  # size 32: 2 * 5 - 2 rows
  assert back.counts.sum() == 40 and back.available.sum() >= 2
  norms = np.linalg.norm(back.directions, axis=-1)  # [7, L]
  np.testing.assert_allclose(norms[back.available], 1.0, atol=1e-5)
  assert np.all(norms[~back.available] == 0)
  assert os.path.exists(tmp_path / "dirs.npz.work" / "progress.json")
  again = command.run(**args)  # everything is already collected and fitted: same answer
  np.testing.assert_array_equal(again.directions, d.directions)


def test_command_line_import_and_errors(tmp_path):
  np.save(tmp_path / "emotion_angry.npy", np.ones((1, 18, D), np.float32))
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  ok = subprocess.run([sys.executable, "-m", "sair_jax.directions", f"--from_npy={tmp_path}",
                       f"--out={tmp_path / 'd.npz'}"], capture_output=True, text=True, env=env)
  assert ok.returncode == 0, ok.stderr
  assert "angry: imported" in ok.stdout and "happy: unavailable" in ok.stdout
  assert directions_file.load_directions(tmp_path / "d.npz").get("angry").shape == (18, D)
  bad = subprocess.run([sys.executable, "-m", "sair_jax.directions", f"--out={tmp_path / 'e.npz'}",
                        "--samples=10"], capture_output=True, text=True, env=env)
  assert bad.returncode == 1
  lines = [l for l in bad.stderr.splitlines() if l.startswith("error:")]
  assert lines == ["error: fitting needs --generator, --classifier and --samples > 0 "
                   "(or --from_npy to import files)"]
