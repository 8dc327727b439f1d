"""e4e encoder: golden W+ codes, the full-size layout, latent_avg handling and converter errors.

Relative error here is max|a - b| / max|b| over the whole output (b the reference).
"""

import jax
import numpy as np
import pytest

from conftest import fixture, rel_err
from layouts import official_layout, random_state_dict
from converters import arcface as arcface_converter
from converters import e4e as converter
from converters.common import ConversionError
from sair_jax.io.torch_reader import load_torch_file
from sair_jax.io import checkpoint
from sair_jax.nets import e4e
from sair_jax.nets.layers import interpolation_matrix

SRC = "e4e_narrow_a.pt"


@pytest.fixture(scope="module")
def golden():
  return np.load(fixture("e4e_narrow_a_ref.npz"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """The golden fixture converted through the CLI entry point into a checkpoint directory."""
  dst = tmp_path_factory.mktemp("e4e") / "e4e_narrow_a"
  converter.cli(str(fixture(SRC)), str(dst))
  return dst


@pytest.fixture
def source():
  """The golden fixture's loaded contents (a fresh copy per test, free to edit)."""
  obj = load_torch_file(fixture(SRC))
  return {**obj, "state_dict": dict(obj["state_dict"])}


def test_golden_through_checkpoint(converted, golden):
  E = e4e.load(converted)
  assert (E.n_styles, E.w_dim) == golden["codes"].shape[1:]
  x = golden["x"].transpose(0, 2, 3, 1)  # NCHW -> NHWC, [B, 256, 256, 3] in [-1, 1]
  codes = np.asarray(E.encode(x))  # [B, n_styles, w_dim]
  assert codes.shape == golden["codes"].shape
  assert rel_err(codes, golden["codes"]) <= 1e-4


def test_preprocess_maps_unit_range_faces_to_encoder_input(golden):
  x = golden["x"].transpose(0, 2, 3, 1)  # [B, 256, 256, 3] in [-1, 1]
  # At 256 px the resize is the identity: only [0, 1] -> [-1, 1] remains.
  np.testing.assert_allclose(e4e.preprocess((x + 1.0) / 2.0), x, atol=1e-6)
  colour = np.asarray([0.2, 0.5, 0.9], np.float32)
  out = np.asarray(e4e.preprocess(np.broadcast_to(colour, (1, 1024, 1024, 3))))
  assert out.shape == (1, 256, 256, 3)
  np.testing.assert_allclose(out, np.broadcast_to(2 * colour - 1, out.shape), atol=1e-5)


def test_input_shapes(converted):
  E = e4e.load(converted)
  with pytest.raises(ValueError, match=r"\[B, 256, 256, 3\]"):
    E.encode(np.zeros((1, 128, 128, 3), np.float32))
  # Faces in [0, 1] at any resolution go through preprocess (traced only: shapes, no compute).
  faces = jax.ShapeDtypeStruct((2, 1024, 1024, 3), np.float32)
  assert jax.eval_shape(E.apply_faces, E.params, faces).shape == (2, E.n_styles, E.w_dim)


@pytest.mark.slow
def test_full_size_layout():
  layout = official_layout("e4e")
  rng = np.random.default_rng(1)
  obj = {"state_dict": {f"encoder.{k}": v for k, v in random_state_dict(layout, 0).items()},
         "latent_avg": rng.standard_normal((18, 512), dtype=np.float32),
         "opts": {"encoder_type": "Encoder4Editing", "start_from_latent_avg": True}}
  params, meta = converter.convert(obj, "e4e_ffhq_encode.pt")
  assert (len(meta["blocks"]), meta["n_styles"], meta["w_dim"], meta["coarse"], meta["middle"],
          meta["input_size"]) == (24, 18, 512, 3, 7, 256)
  arch = e4e.Arch.from_meta(meta)
  assert arch.to_meta() == {k: v for k, v in meta.items() if k != "source"}
  checkpoint.check_shapes("e4e_ffhq_encode", params, e4e.param_shapes(arch))
  x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
  codes = np.asarray(jax.jit(lambda p, x: e4e.apply(p, arch, x))(params, x))
  assert codes.shape == (1, 18, 512)
  assert np.isfinite(codes).all()
  # Every style got its own delta (the codes are not w0 repeated).
  assert np.abs(codes - obj["latent_avg"] - (codes[:, :1] - obj["latent_avg"][:1])).max() > 1e-3


@pytest.mark.parametrize("shape", [(18, 32), (32,), (1, 32)])
def test_latent_avg_is_broadcast_to_every_style(source, shape):
  avg = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) % 32
  source["latent_avg"] = avg.astype(np.float16)
  params, _ = converter.convert(source, SRC)
  np.testing.assert_array_equal(params["latent_avg"], np.broadcast_to(avg.reshape(-1, 32),
                                                                      (18, 32)))
  assert params["latent_avg"].dtype == np.float32


def test_latent_avg_unused_when_opts_say_so(source):
  source["opts"] = {**source["opts"], "start_from_latent_avg": False}
  params, _ = converter.convert(source, SRC)
  assert not params["latent_avg"].any()


@pytest.mark.parametrize("edit, message", [
    (lambda o: o.pop("latent_avg"), "'latent_avg' is missing"),
    (lambda o: o.update(latent_avg=np.zeros((17, 32), np.float32)), "'latent_avg' has shape"),
    (lambda o: o["state_dict"].update({"encoder.extra.weight": np.zeros(2)}), "not used"),
    (lambda o: o["state_dict"].pop("encoder.body.9.res_layer.5.fc2.weight"),
     "'encoder.body.9.res_layer.5.fc2.weight' is missing"),
    (lambda o: o["state_dict"].pop("encoder.styles.4.convs.2.weight"), "style block 4"),
])
def test_converter_is_strict(source, edit, message):
  edit(source)
  with pytest.raises(ConversionError, match=message):
    converter.convert(source, SRC)


def test_decoder_tensors_are_ignored(source):
  source["state_dict"]["decoder.style.1.weight"] = np.zeros((4, 4), np.float32)
  params, meta = converter.convert(source, SRC)
  assert meta["n_styles"] == 18 and "decoder" not in params


def test_load_refuses_another_networks_checkpoint(tmp_path):
  dst = tmp_path / "arcface"
  arcface_converter.convert_file(str(fixture("iresnet_1111.pth")), str(dst))
  with pytest.raises(checkpoint.CheckpointError, match="expected 'e4e_encoder'"):
    e4e.load(dst)


def test_bilinear_align_corners_weights():
  # align_corners=True keeps both end samples and spaces the others evenly between them.
  np.testing.assert_allclose(interpolation_matrix(2, 3, "bilinear"),
                             [[1, 0], [0.5, 0.5], [0, 1]], atol=1e-7)
  np.testing.assert_allclose(interpolation_matrix(3, 5, "bilinear")[1], [0.5, 0.5, 0], atol=1e-7)
  np.testing.assert_allclose(interpolation_matrix(4, 3, "bilinear")[1], [0, 0.5, 0.5, 0],
                             atol=1e-7)
