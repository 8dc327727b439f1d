"""LPIPS v0.1 AlexNet: golden distances, the converter (strict, one-line errors), load/save and
the [0, 1] / [-1, 1] entry points.

Relative error here is max|a - b| / max|b| over the batch (b the reference).
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import fixture
from converters import lpips as converter
from converters.common import ConversionError
from sair_jax.io.torch_reader import load_torch_file
from sair_jax.io import checkpoint
from sair_jax.metrics import lpips
from sair_jax.nets import alexnet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def golden():
  ref = np.load(fixture("lpips_ref.npz"))
  return {"x0": ref["x0"].transpose(0, 2, 3, 1), "x1": ref["x1"].transpose(0, 2, 3, 1),
          "dist": ref["dist"]}  # NCHW -> NHWC, [-1, 1]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  dst = tmp_path_factory.mktemp("ckpt") / "lpips-alex"
  meta = converter.convert_files(str(fixture("lpips_alexnet_features.pth")),
                                 str(fixture("lpips_alex_lin.pth")), str(dst))
  assert meta["widths"] == [64, 192, 384, 256, 256]
  return dst


@pytest.fixture(scope="module")
def model(converted):
  return lpips.load(converted)


def test_golden_distances(model, golden):
  d = np.asarray(model.distance_pm1(golden["x0"], golden["x1"]))
  assert d.shape == golden["dist"].shape
  assert rel_err(d, golden["dist"]) <= TOL


def test_unit_range_entry_point_and_pure_function_agree(model, golden):
  a, b = (golden["x0"] + 1) / 2, (golden["x1"] + 1) / 2
  d01 = np.asarray(model.distance(a, b))
  pure = np.asarray(jax.jit(model.distance_fn)(model.params, a, b))
  assert rel_err(d01, golden["dist"]) <= TOL
  np.testing.assert_allclose(pure, d01, rtol=1e-6)


def test_per_layer_terms_sum_to_the_distance(model, golden):
  terms = np.asarray(lpips.apply(model.params, model.arch, golden["x0"], golden["x1"],
                                 per_layer=True))
  assert terms.shape == (5, 3) and (terms >= 0).all()
  np.testing.assert_allclose(terms.sum(0), golden["dist"], rtol=TOL)


@pytest.mark.parametrize("size", [32, 64, 97])
def test_identical_images_and_symmetry(model, size):
  rng = np.random.default_rng(size)
  a = rng.uniform(0, 1, (2, size, size, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
  np.testing.assert_allclose(np.asarray(model.distance(a, a)), 0.0, atol=1e-7)
  dab, dba = np.asarray(model.distance(a, b)), np.asarray(model.distance(b, a))
  assert (dab > 1e-4).all()
  np.testing.assert_allclose(dab, dba, rtol=1e-5)


def test_rejects_too_small_or_mismatched_images(model):
  side = alexnet.min_input_side()
  with pytest.raises(ValueError, match=f"at least {side}x{side}"):
    model.distance(np.zeros((1, side - 1, side - 1, 3)), np.zeros((1, side - 1, side - 1, 3)))
  with pytest.raises(ValueError, match="one shape"):
    model.distance(np.zeros((1, 64, 64, 3)), np.zeros((1, 64, 48, 3)))


def test_alexnet_output_sizes_match_the_network():
  net = alexnet.AlexNetFeatures()
  x = jax.ShapeDtypeStruct((1, 97, 80, 3), np.float32)
  taps = jax.eval_shape(lambda x: net.init_with_output(jax.random.PRNGKey(0), x)[0], x)
  assert [t.shape[1:3] for t in taps] == alexnet.output_sizes(97, 80)
  assert [t.shape[-1] for t in taps] == list(alexnet.WIDTHS)


def test_converter_ignores_the_classifier():
  src = str(fixture("lpips_alexnet_features.pth"))
  state = dict(load_torch_file(src))
  state["classifier.1.weight"] = np.zeros((4096, 9216), np.float16)  # torchvision's full file
  params, _ = converter.convert(state, load_torch_file(str(fixture("lpips_alex_lin.pth"))),
                                src, "alex.pth")
  assert params["net"]["conv1"]["kernel"].shape == (11, 11, 3, 64)
  assert params["lin"]["lin4"]["w"].shape == (256,)


@pytest.mark.parametrize("edit_net, edit_lin, message", [
    (lambda s: s.pop("features.8.bias"), None, "'features.8.bias' is missing"),
    (lambda s: s.update({"features.12.weight": np.zeros(3)}), None, "not used"),
    (None, lambda s: s.update({"lin5.model.1.weight": np.zeros((1, 8, 1, 1))}), "not used"),
    (None, lambda s: s.update({"lin2.model.1.weight": np.zeros((1, 256, 1, 1))}),
     "lin2.model.1.weight"),
])
def test_converter_is_strict(edit_net, edit_lin, message):
  net = dict(load_torch_file(str(fixture("lpips_alexnet_features.pth"))))
  lin = dict(load_torch_file(str(fixture("lpips_alex_lin.pth"))))
  for edit, state in ((edit_net, net), (edit_lin, lin)):
    if edit:
      edit(state)
  with pytest.raises(ConversionError, match=message):
    converter.convert(net, lin, "alexnet.pth", "alex.pth")


@pytest.mark.parametrize("swap, message", [
    (True, "not a torchvision AlexNet"),
    (False, "no such file"),
])
def test_converter_cli_errors_are_one_line(tmp_path, capsys, swap, message):
  net, lin = str(fixture("lpips_alexnet_features.pth")), str(fixture("lpips_alex_lin.pth"))
  args = (lin, net) if swap else (net, str(tmp_path / "absent.pth"))
  dst = tmp_path / "out"
  with pytest.raises(SystemExit) as exit_info:
    converter.cli(*args, str(dst))
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err
  assert not dst.exists()


def test_cli_entry_point(tmp_path):
  dst = tmp_path / "lpips"
  proc = subprocess.run(
      [sys.executable, "-m", "converters.lpips", "--alexnet",
       str(fixture("lpips_alexnet_features.pth")), "--lin", str(fixture("lpips_alex_lin.pth")),
       "--dst", str(dst)], cwd=REPO, capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr
  assert json.loads((dst / "meta.json").read_text())["kind"] == lpips.KIND


def test_load_refuses_wrong_meta(converted, tmp_path):
  dst = tmp_path / "tampered"
  shutil.copytree(converted, dst)
  meta = json.loads((dst / "meta.json").read_text())
  meta["widths"][2] += 1
  (dst / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(checkpoint.CheckpointError, match="do not match"):
    lpips.load(dst)


def test_second_call_does_not_recompile(model):
  a = np.zeros((2, 48, 48, 3), np.float32)
  model.distance(a, a)
  before = model._apply._cache_size()  # pylint: disable=protected-access
  model.distance(a + 0.5, a)
  assert model._apply._cache_size() == before  # pylint: disable=protected-access
