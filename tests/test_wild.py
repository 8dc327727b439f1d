"""Ordinary photos end to end (sair_jax/pipeline/wild.py): the astronaut at a quarter of its
size, a photo without a face and the photo field cases (a 16-bit grey scan, a cut-out with
transparent strips, a name with a comma), restored with the smoke preset's untrained networks
(``configs/wild.py:smoke``, a few steps), then resumed with the photos upscaled. The end-to-end
reference is a W+ code (a reference photo would be projected: a second compiled solver, ~15 s);
aligning reference photos is tested on its own."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from sair_jax.configs import wild as wild_config
from conftest import FIXTURES, fixture
from sair_jax.errors import ConfigError, UserError
from sair_jax.face import detect, paste
from sair_jax.io.images import read_image, to_uint8
from sair_jax.pipeline import networks, outputs, restore, wild
from sair_jax.pipeline.networks import SMOKE_G


REFS = "references, v2"  # a folder with a comma in its name (a field case)


def _config(photos, references, out, **wild_settings):
  c = wild_config.get_config("smoke")
  c.data.photos, c.data.references, c.output = str(photos), str(references), str(out)
  c.solver.update({"steps": 4, "chunk": 2})
  c.projection.steps = 2
  c.loss.update({"histogram_start": 2, "mask_every": 2})
  c.wild.update(wild_settings)
  return c


@pytest.fixture(scope="module")
def photos(tmp_path_factory, detector):
  """photos/astro.png (128 px: a face of ~44 px, restored from 32 px at the 64 px smoke
  generator), photos/small.png (64 px: a ~22 px face, restored from 16 px), photos/blank.png (no
  face); W+ codes of that generator as references, in a folder with a comma in its name."""
  root = tmp_path_factory.mktemp("wild")
  (root / "photos").mkdir()
  (root / REFS).mkdir()
  rng = np.random.default_rng(0)
  with Image.open(fixture("astronaut.png")) as im:
    for name, side in (("astro", 128), ("small", 64)):
      im.convert("RGB").resize((side, side), Image.LANCZOS).save(root / "photos" / f"{name}.png")
      np.save(root / REFS / f"{name}.npy",
              rng.standard_normal((SMOKE_G.n_latent, SMOKE_G.w_dim)).astype(np.float32))
  Image.fromarray(rng.integers(90, 140, (40, 60, 3), dtype=np.uint8)).save(
      root / "photos" / "blank.png")
  for case, name in FIELD_PHOTOS.items():
    shutil.copy(FIELD / case / "photos" / f"{name}.png", root / "photos")
    shutil.copy(FIELD / case / "refs" / f"{name}.npy", root / REFS)
  return root


FIELD = FIXTURES / "field_cases"
FIELD_PHOTOS = {"sixteen_bit": "scan16", "alpha": "cutout", "comma_in_name": "Doe, Jane"}


@pytest.fixture(scope="module")
def first_run(photos):
  """The whole command once, counting how often it loads the networks."""
  out = photos / "out"
  loads = []
  real = networks.load_networks
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(networks, "load_networks", lambda c: loads.append(1) or real(c))
    manifest = restore.restore(_config(photos / "photos", photos / REFS, out))
  assert len(loads) == 1  # once per command, for both LQ sizes
  return out, manifest


def test_photos_restored_and_pasted_back(photos, first_run, detector):
  out, manifest = first_run
  record = manifest["wild"]
  (problem,) = record["problems"]  # one line for the photo without a face; the run went on
  assert problem.startswith(f"{photos / 'photos' / 'blank.png'}: no face found")
  assert record["photos"]["blank"]["faces"] == []
  assert sorted(manifest["finished"]) == sorted(
      f"{n}_face0" for n in ["astro", "small", *FIELD_PHOTOS.values()])
  (face,) = record["photos"]["astro"]["faces"]
  assert (face["lq_size"], face["factor"], face["restored"]) == (32, 2, True)
  assert face["reference"] == str(photos / REFS / "astro.npy")
  assert record["photos"]["small"]["faces"][0]["lq_size"] == 16
  assert list(record["groups"]) == ["lq16", "lq32"] and not manifest["failures"]
  # one manifest for the command: every LQ size's batch and timings, every stream tagged
  sizes = manifest["lq_sizes"]
  assert sorted(sizes) == ["16", "32"] and sizes["16"]["images"] == 1
  assert all(s["batch"] >= 1 and s["timings"]["batches"] for s in sizes.values())
  assert sorted({b["lq_size"] for b in manifest["timings"]["batches"]}) == [16, 32]
  assert json.loads((out / "manifest.json").read_text())["wild"] == record
  with Image.open(out / "wild_inputs" / "lq32" / "astro_face0.png") as lq:
    assert lq.size == (32, 32)

  original = np.asarray(Image.open(photos / "photos" / "astro.png"))
  restored = np.asarray(Image.open(out / "restored_photos" / "astro.png"))
  assert restored.shape == original.shape
  # Outside the feathered square the photo is untouched, bit for bit; inside it is replaced.
  (found,) = detect.find_faces(original, detector, resolution=64, min_face=16).faces
  weights = paste.paste_weights(found.transform, 128, 128, region="square", feather=0.1)
  assert 0.05 < np.mean(weights > 0) < 0.5
  np.testing.assert_array_equal(restored[weights == 0], original[weights == 0])
  inside = weights > 0.99
  assert np.mean(np.abs(restored[inside].astype(int) - original[inside])) > 5
  blank = np.asarray(Image.open(photos / "photos" / "blank.png"))
  np.testing.assert_array_equal(np.asarray(Image.open(out / "restored_photos" / "blank.png")),
                                blank)


def _pasted_region(photo, detector):
  """Where the restored face of ``photo`` [H, W, 3] goes (weights > 0), as the flow finds it."""
  (found,) = detect.find_faces(photo, detector, resolution=64, min_face=16).faces
  return paste.paste_weights(found.transform, *photo.shape[:2], region="square",
                             feather=0.1) > 0


def test_field_case_photos_come_back_as_they_went_in(photos, first_run, detector):
  """A 16-bit scan comes back as the scan (not white); a cut-out keeps its transparency; a name
  with a comma is restored like any other."""
  out, manifest = first_run
  assert manifest["wild"]["photos"]["Doe, Jane"]["faces"][0]["restored"]
  assert (out / "restored_photos" / "Doe, Jane.png").is_file()

  scan = read_image(photos / "photos" / "scan16.png")
  restored = read_image(out / "restored_photos" / "scan16.png")
  outside = ~_pasted_region(scan, detector)
  assert np.abs(restored[outside] - scan[outside]).max() <= 0.5 / 255 + 1e-6  # 8-bit rounding

  with Image.open(photos / "photos" / "cutout.png") as im:
    cutout = np.asarray(im)
  with Image.open(out / "restored_photos" / "cutout.png") as im:
    assert im.mode == "RGBA"
    back = np.asarray(im)
  np.testing.assert_array_equal(back[..., 3], cutout[..., 3])  # the alpha, as it was
  outside = ~_pasted_region(read_image(photos / "photos" / "cutout.png"), detector)
  np.testing.assert_array_equal(back[outside], cutout[outside])


def test_rerun_skips_finished_faces_and_rewrites_photos_upscaled(photos, first_run):
  out, _ = first_run
  face = out / "restored" / "astro_face0.png"
  before = os.stat(face).st_mtime_ns
  config = _config(photos / "photos", photos / REFS, out, upscale=2)
  manifest = restore.restore(config)
  assert os.stat(face).st_mtime_ns == before and "astro_face0" in manifest["finished"]
  assert read_image(out / "restored_photos" / "astro.png").shape == (256, 256, 3)
  assert manifest["wild"]["settings"]["upscale"] == 2


def test_the_folder_is_locked_before_anything_is_prepared(photos, tmp_path):
  """Two commands on one output folder: the second stops in one line before it writes a thing
  (not even the aligned faces it would prepare)."""
  out = tmp_path / "busy"
  with outputs.RunFolder(str(out)).lock():
    with pytest.raises(outputs.FolderInUse, match="another run is using this folder"):
      restore.restore(_config(photos / "photos", photos / REFS, out))
  assert not (out / wild.INPUTS).exists() and not (out / "manifest.json").exists()


def test_a_sideways_phone_photo_is_found_upright(tmp_path, detector):
  """phone.jpg is stored sideways with EXIF orientation 6: its face is found, upright, by the
  photo flow and by python -m sair_jax.align; the suit's false faces are reported lines."""
  phone = FIELD / "exif_orientation" / "photos" / "phone.jpg"
  (photo,) = wild.find_photos([str(phone)], resolution=64, min_face=32, detector=detector)
  assert photo.size == (640, 480) and len(photo.faces) == 1
  assert all("not taken as a face" in line for line in photo.problems)
  from sair_jax.face import align
  (tmp_path / "src").mkdir()
  shutil.copy(phone, tmp_path / "src")
  lines = []
  assert align.align_dir(str(tmp_path / "src"), str(tmp_path / "dst"), 64, out=lines.append,
                         err=lines.append) == (1, 0, 0)
  aligned = read_image(tmp_path / "dst" / "phone.png")
  face = read_image(FIELD / "exif_orientation" / "upright_as_displayed.png")
  assert aligned.shape == (64, 64, 3) and abs(aligned.mean() - face.mean()) < 0.25


def test_faces_are_grouped_by_lq_size(tmp_path, detector):
  """The astronaut at 128 px (a ~44 px face: LQ 32 at the 64 px generator) and at 64 px (~22 px:
  LQ 16); a face without a reference is one line and left out; each size is a test set."""
  (tmp_path / "photos").mkdir()
  (tmp_path / "refs").mkdir()
  with Image.open(fixture("astronaut.png")) as im:
    for name, side in (("big", 128), ("small", 64), ("alone", 64)):
      small = im.convert("RGB").resize((side, side), Image.LANCZOS)
      small.save(tmp_path / "photos" / f"{name}.png")
  for name in ("big", "small"):
    np.save(tmp_path / "refs" / f"{name}.npy", np.zeros((SMOKE_G.n_latent, SMOKE_G.w_dim)))
  c = _config(tmp_path / "photos", tmp_path / "refs", tmp_path / "out")
  photos = wild.find_photos(sorted(str(p) for p in (tmp_path / "photos").iterdir()),
                            resolution=64, min_face=16, detector=detector)
  assert [(p.name, [f.lq_size for f in p.faces]) for p in photos] == [
      ("alone", [16]), ("big", [32]), ("small", [16])]
  pairing = wild.pair_references(c, photos)
  assert pairing.problems == (f"{tmp_path / 'photos' / 'alone.png'}: no reference for 1 "
                              f"face(s) ({tmp_path / 'refs' / 'alone.*'})",)
  root = tmp_path / "inputs"
  (root / "lq16").mkdir(parents=True)
  (root / "lq16" / "gone_face0.png").write_bytes(b"")  # from an earlier run: removed
  refs = {n: (r, r) for n, r in pairing.references.items()}  # W+ files: passed as paths
  groups = wild.group_faces(photos, refs, {"big_face0": "happy"}, str(root))
  assert [(g.lq_size, g.names) for g in groups] == [(16, ("small_face0",)),
                                                    (32, ("big_face0",))]
  (small,), (big,) = groups[0].items, groups[1].items
  assert small.lq.shape == (16, 16, 3) and big.lq.shape == (32, 32, 3)  # pixels, in memory
  assert small.reference == str(tmp_path / "refs" / "small.npy") and small.reference_is_latent
  assert (small.expression, big.expression) == (None, "happy")
  assert small.where.startswith(str(tmp_path / "photos" / "small.png"))
  # for the user: the same faces as files; an earlier run's face of that size is gone
  assert sorted(p.name for p in (root / "lq16").iterdir()) == ["small_face0.png"]
  np.testing.assert_array_equal(to_uint8(read_image(root / "lq32" / "big_face0.png")), big.lq)


def test_reference_photos_are_aligned_the_same_every_time(tmp_path, detector):
  """The largest face at the generator's side, in memory (and written for the user); the same
  pixels on a rerun (the run's inversion cache is keyed by them); a W+ file passes through; a
  photo without a face is one line."""
  refs = tmp_path / "refs"
  refs.mkdir()
  with Image.open(fixture("astronaut.png")) as im:
    im.convert("RGB").resize((256, 256), Image.LANCZOS).save(refs / "astro.png")
  Image.new("RGB", (50, 50), (120, 120, 120)).save(refs / "grey.png")
  paths = [str(refs / "astro.png"), str(refs / "grey.png"), str(refs / "w.npy")]
  dst = tmp_path / "aligned"
  aligned, problems = wild.align_references(paths, str(dst), resolution=64, min_face=64,
                                            detector=detector)
  assert sorted(aligned) == [paths[0], paths[2]] and aligned[paths[2]] == paths[2]
  assert list(problems) == [paths[1]] and "no face found" in problems[paths[1]]
  face = aligned[paths[0]]
  assert face.shape == (64, 64, 3) and face.dtype == np.uint8
  np.testing.assert_array_equal(to_uint8(read_image(dst / "astro.png")), face)
  again, _ = wild.align_references(paths[:1], None, resolution=64, min_face=64,
                                   detector=detector)
  np.testing.assert_array_equal(again[paths[0]], face)


def _photo(name, n_faces):
  """A photo with ``n_faces`` faces, as far as pairing looks (it only counts them)."""
  return wild.Photo(name, f"photos/{name}.jpg", (10, 10), (None,) * n_faces, ())


def test_csv_pairs_photos_and_single_faces(tmp_path):
  refs = tmp_path / "refs"
  refs.mkdir()
  for n in ("bob", "ann"):
    (refs / f"{n}.jpg").write_bytes(b"")
  (tmp_path / "pairs.csv").write_text("photo,reference,expression\n"
                                      "party.jpg,refs/bob.jpg,happy\n"
                                      "party_face1,refs/ann.jpg\n"
                                      "nobody.jpg,refs/bob.jpg\n"
                                      "solo,refs/missing.jpg\n")
  c = wild_config.get_config()
  c.data.pairs, c.data.references = str(tmp_path / "pairs.csv"), ""
  photos = [_photo("party", 3), _photo("solo", 1), _photo("empty", 0)]
  pairing = wild.pair_references(c, photos)
  assert pairing.references == {"party_face0": str(refs / "bob.jpg"),
                                "party_face1": str(refs / "ann.jpg"),
                                "party_face2": str(refs / "bob.jpg")}
  assert pairing.expressions == {"party_face0": "happy", "party_face2": "happy"}  # row 3 wins
  assert len(pairing.problems) == 2
  assert "line 4 names 'nobody.jpg', which is not a photo" in pairing.problems[0]
  assert pairing.problems[1] == f"{refs / 'missing.jpg'}: reference of solo_face0 does not exist"


@pytest.mark.parametrize("field, value, message", [
    ("paste_region", "ears", "expected one of square, head, face"),
    ("upscale", 0, "must be a positive integer"),
    ("min_face", 0.0, "must be positive"),
    ("feather", 0.7, r"must be in \[0, 0.5\]"),
    ("min_score", float("nan"), "must be a finite number")])
def test_bad_settings_are_config_errors(tmp_path, field, value, message):
  c = _config(tmp_path, tmp_path, tmp_path / "out")
  c.wild[field] = value
  with pytest.raises(ConfigError, match=f"config.wild.{field}=.*{message}"):
    restore.restore(c)


def test_photos_need_references_and_a_folder(tmp_path):
  c = _config(tmp_path / "nope", "", tmp_path / "out")
  with pytest.raises(ConfigError, match="photos need references"):
    restore.restore(c)
  c.data.references = str(tmp_path)
  with pytest.raises(UserError, match="nope: no such folder"):
    restore.restore(c)
  assert not (tmp_path / "out").exists()  # stopped before the output folder was made


def test_faces_without_a_reference_are_failures(photos, tmp_path):
  """A face found but not restorable is in the manifest's failures (they cover every face),
  so the command ends with status 2 when nothing was restored."""
  (tmp_path / "refs").mkdir()
  np.save(tmp_path / "refs" / "unrelated.npy", np.zeros((SMOKE_G.n_latent, SMOKE_G.w_dim)))
  (tmp_path / "photos").mkdir()
  shutil.copy(photos / "photos" / "small.png", tmp_path / "photos")
  manifest = restore.restore(_config(tmp_path / "photos", tmp_path / "refs", tmp_path / "out"))
  assert manifest["finished"] == [] and list(manifest["failures"]) == ["small_face0"]
  assert manifest["failures"]["small_face0"].startswith(
      f"{tmp_path / 'photos' / 'small.png'}: no reference for face 0")
