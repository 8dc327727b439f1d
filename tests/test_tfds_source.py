"""The TFDS source of ground-truth faces, tested with TFDS's own mock data (no TensorFlow, no
download: ``tfds.testing.mock_data`` generates random examples from the dataset's features)."""

import json
import sys

import numpy as np
import pytest

from sair_jax.core import degradation_presets
from sair_jax.errors import UserError
from sair_jax.io.images import read_image
from sair_jax.pipeline import tfds_source


@pytest.mark.parametrize("spec, want", [
    ("celeb_a_hq", ("celeb_a_hq", "train")),
    ("celeb_a_hq/256:validation", ("celeb_a_hq/256", "validation")),
    ("celeb_a_hq/256:train[:100]", ("celeb_a_hq/256", "train[:100]")),
    ("celeb_a_hq/256:2.0.0", ("celeb_a_hq/256:2.0.0", "train")),  # a version, not a split
    ("celeb_a_hq/256:2.0.0:test", ("celeb_a_hq/256:2.0.0", "test")),
    ("celeb_a_hq:train[10:20]+validation[:5]", ("celeb_a_hq", "train[10:20]+validation[:5]"))])
def test_parse_spec(spec, want):
  assert tfds_source.parse_spec(spec) == want


def test_bad_spec_is_one_line():
  with pytest.raises(tfds_source.TfdsError, match=r"expected NAME\[:SPLIT\]"):
    tfds_source.parse_spec("celeb_a_hq:")


def test_missing_tfds_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now fails
  with pytest.raises(tfds_source.TfdsError, match=r"not installed: pip install -e '\.\[data\]'"):
    tfds_source.open_source("celeb_a_hq")


def test_faces_from_mock_celeb_a_hq(tfds):
  with tfds.testing.mock_data(num_examples=4):
    src = tfds_source.open_source("celeb_a_hq/64:train", "/nonexistent")
    assert (src.image_key, src.name_key, src.split) == ("image", "image/filename", "train")
    faces = list(tfds_source.iter_faces(src, 32))
    raw = [src.examples[i]["image"] for i in range(4)]
  assert len(faces) == 4 and len({n for n, _ in faces}) == 4
  for (name, face), image in zip(faces, raw):
    assert face.shape == (32, 32, 3) and face.dtype == np.float32
    assert 0 <= face.min() and face.max() <= 1
    assert name and all(c.isalnum() or c in "._-" for c in name)  # file-safe
    # resized 64 -> 32 from the example's own pixels (Lanczos; random pixels -> ~mean of 2x2)
    pooled = image.astype(np.float32).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)) / 255
    assert np.corrcoef(face.ravel(), pooled.ravel())[0, 1] > 0.7


def test_grey_images_without_names(tfds):
  with tfds.testing.mock_data(num_examples=3):
    src = tfds_source.open_source("mnist:test")
    assert src.name_key is None
    faces = list(tfds_source.iter_faces(src, 28, limit=2))
  assert [n for n, _ in faces] == ["test_000000", "test_000001"]
  face = faces[0][1]
  assert face.shape == (28, 28, 3) and np.array_equal(face[..., 0], face[..., 2])


def test_writes_gt_and_the_degrade_command_s_lq(tfds, tmp_path):
  """x8 with lq_size 8 from 32 px faces: the LQ is what degrade_image makes of the GT PNG
  under its file name, i.e. what `python -m sair_jax.degrade --src dst/gt` would write."""
  done = []
  with tfds.testing.mock_data(num_examples=3):
    src = tfds_source.open_source("celeb_a_hq/64")
    names = tfds_source.write_dataset(src, str(tmp_path), resolution=32, preset="x8", seed=7,
                                      lq_size=8, x8_stages=("blur", "noise"),
                                      progress=lambda k, n: done.append((k, n)))
  assert done == [(i + 1, n) for i, n in enumerate(names)] and len(names) == 3
  for name in names:
    gt = read_image(tmp_path / "gt" / f"{name}.png")
    want, record = degradation_presets.degrade_image(gt, f"{name}.png", preset="x8", seed=7, lq_size=8,
                                         x8_stages=("blur", "noise"))
    got = read_image(tmp_path / "lq" / f"{name}.png")
    assert gt.shape == (32, 32, 3) and got.shape == (8, 8, 3)
    np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8), want)
    saved = json.loads((tmp_path / "lq" / f"{name}.json").read_text())
    assert saved["noise"] == record["noise"] and saved["output"] == f"{name}.png"
    assert saved["tfds"]["dataset"] == "celeb_a_hq/64" and saved["tfds"]["split"] == "train"


def test_a_resumed_write_keeps_what_is_there(tfds, tmp_path):
  with tfds.testing.mock_data(num_examples=2):
    src = tfds_source.open_source("celeb_a_hq/64")
    names = tfds_source.write_dataset(src, str(tmp_path), resolution=32, factor=4)
    (tmp_path / "lq" / f"{names[1]}.json").unlink()  # as if interrupted while writing it
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob(f"{names[0]}.*")}
    again = tfds_source.write_dataset(src, str(tmp_path), resolution=32, factor=4,
                                      skip_existing=True)
  assert again == names and len(stamps) == 3
  assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob(f"{names[0]}.*")}
  assert (tmp_path / "lq" / f"{names[1]}.json").is_file()


def test_a_size_the_preset_cannot_degrade_is_one_line(tfds, tmp_path):
  with tfds.testing.mock_data(num_examples=1):
    src = tfds_source.open_source("celeb_a_hq/64")
    with pytest.raises(tfds_source.TfdsError, match=r"^celeb_a_hq/64 \(.+\): x8 needs a square"):
      tfds_source.write_dataset(src, str(tmp_path), resolution=32, preset="x8", lq_size=12)


def test_image_key_errors(tfds):
  with tfds.testing.mock_data(num_examples=1):
    with pytest.raises(tfds_source.TfdsError, match=r"no image feature 'photo' \(image "
                                                    r"features: image\)"):
      tfds_source.open_source("celeb_a_hq/64", image_key="photo")


@pytest.mark.parametrize("spec, want", [
    ("no_such_dataset_xyz", r"^no_such_dataset_xyz:train: Dataset no_such_dataset_xyz not found"),
    ("celeb_a_hq/64", r"^celeb_a_hq/64: not prepared in .*tfds build celeb_a_hq/64")])
def test_unreadable_datasets_are_one_line(tfds, tmp_path, spec, want):
  with pytest.raises(tfds_source.TfdsError, match=want) as e:
    tfds_source.open_source(spec, str(tmp_path))
  assert "\n" not in str(e.value) and isinstance(e.value, UserError)  # `error: ...`, exit 1
