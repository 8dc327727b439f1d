"""Every input file found, none dropped without a word (sair_jax.io.listing), wherever a folder
is read: a test set's LQ, references and GT, a reference pool, photos and their references."""

import pytest

from sair_jax.configs import smoke
from sair_jax.errors import ConfigError, UserError
from sair_jax.io import listing
from sair_jax.pipeline import inputs, wild


def _touch(folder, *names):
  folder.mkdir(parents=True, exist_ok=True)
  for name in names:
    (folder / name).write_bytes(b"x")


def test_extensions_match_in_any_case_and_stems_may_clash(tmp_path):
  _touch(tmp_path, "a.JPG", "b.jpeg", "c.Png", "d.TIF", "e.npy", "f.NPY", "g.Npy", ".h.png",
         "i.png", "i.jpg", "notes.txt")
  found = listing.list_folder(str(tmp_path), (".png", ".jpg", ".jpeg", ".tif", ".npy"))
  assert sorted(found.files) == ["a", "b", "c", "d", "e", "f", "g"]
  assert found.clashes == {"i": (str(tmp_path / "i.jpg"), str(tmp_path / "i.png"))}
  assert found.find(["x", "g"]) == (str(tmp_path / "g.Npy"), None)
  path, line = found.find(["i"])
  assert path is None and line.startswith(f"{tmp_path / 'i.jpg'}, {tmp_path / 'i.png'}: two ")
  with pytest.raises(UserError, match="no such folder .config.data.lq"):
    listing.list_folder(str(tmp_path / "absent"), (".png",), "config.data.lq")


def _config(tmp_path, **data):
  c = smoke.get_config()
  c.data.lq, c.data.references = str(tmp_path / "lq"), str(tmp_path / "refs")
  c.data.update(data)
  return c


@pytest.mark.parametrize("where, clash", [
    ("lq", ("face0.png", "face0.jpg")),
    ("refs", ("face0.npy", "face0.PNG")),
    ("gt", ("face0.png", "face0.webp"))])
def test_a_shared_stem_in_a_test_set_is_one_failure_naming_both(tmp_path, where, clash):
  _touch(tmp_path / "lq", "face0.png", "face1.PNG")
  _touch(tmp_path / "refs", "face0.npy", "face1.Npy")
  _touch(tmp_path / "gt", "face0.png", "face1.png")
  _touch(tmp_path / where, *clash)
  items, failures = inputs.discover(_config(tmp_path, gt=str(tmp_path / "gt")))
  assert [it.name for it in items] == ["face1"]
  assert items[0].reference == str(tmp_path / "refs" / "face1.Npy")
  (failure,) = failures
  assert failure.name == "face0" and "\n" not in failure.reason
  for name in clash:
    assert str(tmp_path / where / name) in failure.reason


def test_pool_and_photo_folders_name_their_shared_stems(tmp_path):
  _touch(tmp_path / "pool", "ann.jpg", "ann.png", "bob.png")
  assert inputs.list_images(str(tmp_path / "pool")) == [str(tmp_path / "pool" / "bob.png")]
  (line,) = inputs.listing_of(str(tmp_path / "pool")).clash_lines("pool photos")
  assert "two pool photos named 'ann'" in line
  with pytest.raises(ConfigError, match="config.data.reference_pool"):
    inputs.listing_of(str(tmp_path / "nope"), what="config.data.reference_pool")


def test_photo_references_with_a_shared_stem_are_one_problem(tmp_path):
  _touch(tmp_path / "refs", "party.npy", "party.JPG", "solo.Npy")
  c = _config(tmp_path, photos=str(tmp_path / "photos"))
  photos = [wild.Photo(n, f"photos/{n}.jpg", (10, 10), (None,), ()) for n in ("party", "solo")]
  pairing = wild.pair_references(c, photos)
  assert pairing.references == {"solo_face0": str(tmp_path / "refs" / "solo.Npy")}
  (line,) = pairing.problems
  assert "two files named 'party'" in line and "photos/party.jpg" in line


def test_a_shared_stem_in_align_is_an_error_for_both(tmp_path):
  from sair_jax.face import align
  _touch(tmp_path / "src", "a.png", "a.jpg")
  errors = []
  counts = align.align_dir(str(tmp_path / "src"), str(tmp_path / "dst"), 64, detector=object(),
                           out=errors.append, err=errors.append)
  assert counts == (0, 0, 1) and len(errors) == 1 and "two photos named 'a'" in errors[0]
  assert not list((tmp_path / "dst").iterdir())
