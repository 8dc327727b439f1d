"""The test-set field cases of ../shared/field_cases (copied to tests/fixtures/field_cases), all
in one smoke run: LQ faces and references with extensions in any case, two LQ files with one
stem, LQ faces with alpha, 16-bit LQ faces, and a sideways (EXIF-rotated) reference photo.
The photo cases run in tests/test_wild.py's end-to-end run; readers are tested on their own in
tests/test_images.py, tests/test_listing.py and tests/test_tables.py."""

import shutil

import numpy as np
import pytest

from sair_jax.configs import smoke
from conftest import FIXTURES
from sair_jax.io import images
from sair_jax.pipeline import restore

CASES = FIXTURES / "field_cases"
# case folder -> (prefix for its files here, its LQ folder, its references folder)
TEST_SETS = {
    "extension_case": ("ext", "lq", "refs"),
    "same_stem": ("stem", "lq", "refs"),
    "alpha": ("alpha", "lq", "refs"),
    "sixteen_bit": ("bits", "lq", "refs"),
    "exif_orientation": ("exif", "testset_lq", "testset_refs"),
}


@pytest.fixture(scope="module")
def field_run(tmp_path_factory):
  """Every test-set case in one folder (file names prefixed by case), restored once."""
  root = tmp_path_factory.mktemp("field_cases")
  for case, (prefix, lq, refs) in TEST_SETS.items():
    for kind, folder in (("lq", lq), ("refs", refs)):
      (root / kind).mkdir(exist_ok=True)
      for path in sorted((CASES / case / folder).iterdir()):
        if kind == "refs" and case != "exif_orientation" and path.stem not in {
            p.stem for p in (CASES / case / lq).iterdir()}:
          continue  # the photo cases' references
        shutil.copy(path, root / kind / f"{prefix}_{path.name}")
  c = smoke.get_config()
  c.data.lq, c.data.references, c.output = str(root / "lq"), str(root / "refs"), str(root / "out")
  c.solver.update({"steps": 4, "chunk": 2})  # the other smoke tests' programs (cached)
  c.projection.steps = 2
  c.loss.update({"histogram_start": 2, "mask_every": 2})
  return root, restore.restore(c)


def test_every_file_found_and_a_shared_stem_named_once(field_run):
  root, manifest = field_run
  want = ({f"ext_face{i}" for i in range(5)} | {"stem_face2"} | {f"alpha_face{i}" for i in range(3)}
          | {f"bits_face{i}" for i in range(3)} | {"exif_face0"})
  assert set(manifest["finished"]) == want  # .JPG .jpeg .webp .Png .TIF, .NPY .Npy found
  (name, line), = manifest["failures"].items()
  assert name == "stem_face0" and "\n" not in line
  assert f"{root / 'lq' / 'stem_face0.jpg'}, {root / 'lq' / 'stem_face0.png'}: two" in line
  p = manifest["progress"]  # compile time apart, kept out of the rate
  assert (p["done"], p["total"], p["eta_seconds"]) == (13, 13, 0)
  assert p["compile_seconds"] > 0 and p["seconds_per_image"] > 0
  working = p["elapsed_seconds"] - p["compile_seconds"]  # the rate: time without compiling
  assert abs(p["seconds_per_image"] * 13 - working) < 13 * 5e-4 + 2e-3  # 3 decimals each
  assert p["seconds_per_image"] < 0.5 * p["elapsed_seconds"] / 13


def _lq_panel(root, name):
  """The LQ as the run read it: the first panel of its strip (upsampled to the generator)."""
  return images.read_image(root / "out" / "strips" / f"{name}.png")[:, :64]


def test_sixteen_bit_lq_reads_as_its_eight_bit_twin(field_run):
  root, _ = field_run
  grey16, grey8 = _lq_panel(root, "bits_face0"), _lq_panel(root, "bits_face2")
  assert np.abs(grey16 - grey8).max() <= 2 / 255
  assert _lq_panel(root, "bits_face1").mean() < 0.9  # 16-bit RGB: not clipped to white


@pytest.mark.parametrize("name", ["alpha_face0", "alpha_face1", "alpha_face2"])
def test_lq_with_alpha_is_composited_over_white(field_run, name):
  root, _ = field_run
  lq = images.read_image(root / "lq" / f"{name}.png")
  decoded = images.decode(root / "lq" / f"{name}.png")
  np.testing.assert_allclose(lq, decoded.composited(1.0), atol=1e-6)
  panel = _lq_panel(root, name)
  assert np.abs(panel[::8, ::8].mean() - lq.mean()) < 0.05  # the composite was restored


def test_sideways_reference_is_used_upright(field_run):
  root, _ = field_run
  used = images.read_image(root / "out" / "references" / "exif_face0.png")
  upright = images.read_image(CASES / "exif_orientation" / "testset_ref_upright.png")
  assert np.abs(used - upright).mean() < 6 / 255
