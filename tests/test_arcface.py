"""ArcFace IResNet: golden outputs, the full-size layout, preprocessing and converter errors.

Relative error here is max|a - b| / max|b| over the whole output (b the reference).
"""

import json

import jax
import numpy as np
import pytest

from conftest import fixture, rel_err
from layouts import official_layout, random_state_dict
from converters import arcface as converter
from converters.common import ConversionError
from sair_jax.io.torch_reader import load_torch_file
from sair_jax.io import checkpoint
from sair_jax.nets import arcface
from sair_jax.nets.layers import interpolation_matrix



@pytest.fixture(scope="module")
def golden():
  return np.load(fixture("iresnet_1111_ref.npz"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """The golden fixture converted through the CLI entry point into a checkpoint directory."""
  dst = tmp_path_factory.mktemp("arcface") / "iresnet_1111"
  converter.cli(str(fixture("iresnet_1111.pth")), str(dst))
  return dst


def test_golden_through_checkpoint(converted, golden):
  A = arcface.load(converted)
  assert A.arch.layers == tuple(int(n) for n in golden["layers"])
  assert A.embedding_size == int(golden["num_features"])
  x = golden["x"].transpose(0, 2, 3, 1)  # NCHW -> NHWC, [B, 112, 112, 3] in [-1, 1]
  feats = np.asarray(A.embed(x))  # [B, D]
  assert feats.shape == golden["feat"].shape
  assert rel_err(feats, golden["feat"]) <= 1e-4
  pure = jax.jit(lambda p, x: arcface.apply(p, A.arch, x))(A.params, x)
  assert rel_err(pure, golden["feat"]) <= 1e-4
  # The [0, 1] helper: at 112 px the standard preprocessing is exactly (x - 0.5) / 0.5.
  via_faces = A.embed_faces((x + 1.0) / 2.0, variant="standard")
  assert rel_err(via_faces, golden["feat"]) <= 1e-4


@pytest.mark.parametrize("variant", ["standard", "official"])
def test_input_shapes(converted, variant):
  A = arcface.load(converted)
  with pytest.raises(ValueError, match=r"\[B, 112, 112, 3\]"):
    A.embed(np.zeros((1, 128, 128, 3), np.float32))
  # Faces in [0, 1] at any resolution go through preprocess (traced only: shapes, no compute).
  faces = jax.ShapeDtypeStruct((2, 1024, 1024, 3), np.float32)
  out = jax.eval_shape(lambda p, f: A.apply_faces(p, f, variant), A.params, faces)
  assert out.shape == (2, A.embedding_size)


@pytest.mark.slow
def test_full_size_layout():
  layout = official_layout("iresnet50")
  params, meta = converter.convert(random_state_dict(layout, seed=0), "iresnet50.pth")
  assert (meta["depth"], meta["layers"], meta["embedding_size"], meta["input_size"]) == (
      50, [3, 4, 14, 3], 512, 112)
  arch = arcface.Arch.from_meta(meta)
  assert arch.to_meta() == {k: v for k, v in meta.items() if k != "source"}
  assert hash(arch) == hash(arcface.Arch.from_meta(arch.to_meta()))  # a static, hashable record
  checkpoint.check_shapes("iresnet50", params, arcface.param_shapes(arch))
  x = np.random.default_rng(1).uniform(-1, 1, (1, 112, 112, 3)).astype(np.float32)
  feats = np.asarray(jax.jit(lambda p, x: arcface.apply(p, arch, x))(params, x))
  assert feats.shape == (1, 512)
  assert np.isfinite(feats).all() and np.abs(feats).max() > 0


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.update({"extra.weight": np.zeros(3, np.float32)}), "not used"),
    (lambda sd: sd.pop("layer2.0.bn3.running_var"), "'layer2.0.bn3.running_var' is missing"),
    (lambda sd: sd.update({"fc.weight": np.zeros((16, 1000), np.float16)}), "fc.weight"),
])
def test_converter_is_strict(edit, message):
  src = str(fixture("iresnet_1111.pth"))
  state = dict(load_torch_file(src))
  edit(state)
  with pytest.raises(ConversionError, match=message):
    converter.convert(state, src)


def test_load_refuses_meta_that_does_not_match_params(converted, tmp_path):
  import shutil
  dst = tmp_path / "tampered"
  shutil.copytree(converted, dst)
  meta = json.loads((dst / "meta.json").read_text())
  meta["embedding_size"] += 1
  (dst / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(checkpoint.CheckpointError, match="do not match"):
    arcface.load(dst)


def test_torch_bicubic_weights():
  # Hand-computed from Keys' kernel with a = -0.75 (a = -0.5 would give other values).
  # 4 -> 3 samples, align_corners: the middle output sits at 1.5 (t = 1/2).
  np.testing.assert_allclose(interpolation_matrix(4, 3, "bicubic"), [
      [1, 0, 0, 0], [-3 / 32, 19 / 32, 19 / 32, -3 / 32], [0, 0, 0, 1]], atol=1e-7)
  # 3 -> 4: output 1 sits at 2/3 (t = 2/3); tap -1 is clamped onto the first sample.
  np.testing.assert_allclose(interpolation_matrix(3, 4, "bicubic")[1],
                             [17 / 54, 43 / 54, -6 / 54], atol=1e-7)


@pytest.mark.parametrize("n_in, n_out", [(800, 112), (7, 16), (112, 112), (5, 1)])
def test_interpolation_rows_sum_to_one(n_in, n_out):
  for method in ("bicubic", "bilinear"):
    m = interpolation_matrix(n_in, n_out, method)
    assert m.shape == (n_out, n_in)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)
  if n_in == n_out:
    np.testing.assert_allclose(interpolation_matrix(n_in, n_out, "bicubic"), np.eye(n_in),
                               atol=1e-6)


@pytest.mark.parametrize("size, window", [(1024, (100, 900)), (512, (50, 450)), (256, (25, 225))])
def test_official_preprocessing_reads_only_the_crop(size, window):
  assert arcface.official_crop(size) == window
  rng = np.random.default_rng(size)
  faces = rng.uniform(0, 1, (1, size, size, 3)).astype(np.float32)
  out = np.asarray(arcface.preprocess(faces, "official"))
  assert out.shape == (1, 112, 112, 3)
  outside = faces.copy()
  outside[:, : window[0]] = 0.0
  outside[:, :, window[1]:] = 1.0
  np.testing.assert_allclose(arcface.preprocess(outside, "official"), out, atol=1e-6)
  inside = faces.copy()
  inside[:, window[0]] = 0.0
  assert np.abs(np.asarray(arcface.preprocess(inside, "official")) - out).max() > 1e-3


@pytest.mark.parametrize("variant, mean, std", [
    ("standard", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ("official", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
])
def test_preprocessing_normalisation(variant, mean, std):
  # Constant images stay constant through any resize, so only the normalisation shows.
  for value in (np.asarray(mean), np.ones(3)):
    faces = np.broadcast_to(value, (2, 300, 300, 3)).astype(np.float32)
    out = np.asarray(arcface.preprocess(faces, variant))
    assert out.shape == (2, 112, 112, 3)
    np.testing.assert_allclose(out, np.broadcast_to((value - mean) / std, out.shape), atol=1e-5)
  with pytest.raises(ValueError, match="variant"):
    arcface.preprocess(faces, "other")


def test_load_names_a_missing_meta_field(converted, tmp_path):
  import shutil
  dst = tmp_path / "incomplete"
  shutil.copytree(converted, dst)
  meta = json.loads((dst / "meta.json").read_text())
  del meta["widths"]
  (dst / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(checkpoint.CheckpointError, match=r"incomplete: meta.json .*'widths'") as e:
    arcface.load(dst)
  assert "\n" not in str(e.value)
