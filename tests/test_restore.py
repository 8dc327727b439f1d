"""The run's sources (sair_jax/pipeline/restore.py): the smoke preset's known answer, a TFDS
dataset (TFDS's own mock data), and the choice between them. Runs are in-process on the smoke
preset's untrained networks."""

import json

import numpy as np
import pytest
from PIL import Image

from sair_jax.configs import smoke
from sair_jax.errors import ConfigError
from sair_jax.pipeline import restore, tfds_source
from sair_jax.pipeline.networks import SMOKE_G


def _strip_panels(path) -> float:
  """How many square panels a strip holds (LQ | reference | restored [| GT])."""
  with Image.open(path) as im:
    return im.width / im.height


@pytest.mark.parametrize("data, untrained, want", [
    ({"photos": "p"}, False, "photos"), ({"tfds": "celeb_a_hq"}, True, "tfds"),
    ({"lq": ""}, True, "known_answer"), ({"lq": "lq"}, True, "test_set"),
    ({"lq": "lq"}, False, "test_set")])
def test_source(data, untrained, want):
  c = smoke.get_config()
  c.untrained = untrained
  c.data.update(data)
  assert restore.source(c) == want


def test_photos_and_tfds_together_is_a_config_error():
  c = smoke.get_config()
  c.data.photos, c.data.tfds = "p", "celeb_a_hq"
  with pytest.raises(ConfigError, match="choose one"):
    restore.restore(c)


def test_smoke_preset_proves_itself(tmp_path, capsys):
  """configs/smoke.py as shipped: the restored images beat bicubic upsampling and the
  reference against the known ground truth, and the strips show that ground truth."""
  c = smoke.get_config()
  c.output = str(tmp_path)
  manifest = restore.restore(c)
  scores = manifest["known_answer"]
  print(scores)
  assert scores["images"] == 3 and sorted(manifest["finished"]) == ["face0", "face1", "face2"]
  assert scores["restored_psnr"] > scores["bicubic_psnr"] + 1.0
  assert scores["restored_psnr"] > scores["reference_psnr"] + 5.0
  assert json.loads((tmp_path / "manifest.json").read_text())["known_answer"] == scores
  out = capsys.readouterr().out
  assert "known answer: PSNR against the ground truth (mean over 3 images)" in out
  assert f"{scores['restored_psnr']:.2f} dB" in out.splitlines()[1]
  assert _strip_panels(tmp_path / "strips" / "face0.png") == 4


def test_tfds_dataset_is_degraded_and_restored(tmp_path, tfds):
  """Two mock celeb_a_hq faces: gt/ and the x32 LQ (x4 here, the smoke generator being 64 px)
  under tfds_inputs/, restored with references named after the dataset's file names (W+ codes,
  so nothing is projected), GT in the strips."""
  c = smoke.get_config()
  c.output = str(tmp_path / "out")
  c.data.update({"tfds": "celeb_a_hq/64:train", "tfds_dir": str(tmp_path / "nowhere"),
                 "lq_size": 16, "references": str(tmp_path / "refs")})
  c.solver.update({"steps": 4, "chunk": 2})
  c.loss.update({"histogram_start": 2, "mask_every": 2})
  rng = np.random.default_rng(0)
  with tfds.testing.mock_data(num_examples=2):
    src = tfds_source.open_source(c.data.tfds, c.data.tfds_dir)
    names = sorted(name for name, _ in tfds_source.iter_faces(src, 64))
    (tmp_path / "refs").mkdir()
    for name in names:
      np.save(tmp_path / "refs" / f"{name}.npy",
              rng.standard_normal((SMOKE_G.n_latent, SMOKE_G.w_dim)).astype(np.float32))
    manifest = restore.restore(c)
  record = manifest["tfds"]
  assert (record["dataset"], record["split"], record["examples"]) == ("celeb_a_hq/64", "train", 2)
  inputs = tmp_path / "out" / "tfds_inputs"
  assert sorted(p.stem for p in (inputs / "gt").glob("*.png")) == names
  assert sorted(manifest["finished"]) == names and not manifest["failures"]
  with Image.open(inputs / "lq" / f"{names[0]}.png") as lq:
    assert lq.size == (16, 16)
  assert _strip_panels(tmp_path / "out" / "strips" / f"{names[0]}.png") == 4
