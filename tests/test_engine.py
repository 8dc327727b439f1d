"""The engine (sair_jax/pipeline/engine.py) takes records held in memory, as the photo, TFDS and
smoke flows (and video next) hand them over: LQ, reference image and GT as pixels. Smoke preset's
untrained networks, a few steps; the references are images, so they are projected (no e4e)."""

import numpy as np
import pytest
from PIL import Image

from sair_jax.configs import smoke
from sair_jax.pipeline import known_answer
from sair_jax.pipeline.engine import Engine
from sair_jax.pipeline.inputs import Item


@pytest.fixture(scope="module")
def engine():
  c = smoke.get_config()
  c.solver.update({"steps": 4, "chunk": 2})
  c.projection.steps = 2
  c.loss.update({"histogram_start": 2, "mask_every": 2})
  return Engine(c)


def test_records_in_memory_are_restored_and_their_inversions_found_again(engine, tmp_path,
                                                                          capsys):
  g = engine.nets.g
  p = known_answer.build_problem(g, 2, g.resolution // engine.config.data.lq_size, seed=5)
  items = [Item(f"frame{i}", p.lq[i], p.ref[i], p.gt[i], origin=f"clip.mp4, frame {i}",
                reference_origin=f"ref photo {i}.jpg") for i in range(2)]
  items.append(Item("bad", np.zeros((5, 5, 3), np.float32), p.ref[0],
                    origin="clip.mp4, frame 7"))
  items.append(Item("again0", p.lq[0], p.ref[0].copy(), origin="clip.mp4, frame 0 again",
                    reference_origin="ref photo 0.jpg"))  # frame0's reference, another copy
  out = tmp_path / "out"
  with engine.session(str(out)) as session:
    manifest = session.restore(items)
  assert sorted(manifest["finished"]) == ["again0", "frame0", "frame1"]
  # an unusable record's line names what it was made from
  assert manifest["failures"] == {
      "bad": "clip.mp4, frame 7: LQ is 5x5, expected 8x8 (config.data.lq_size)"}
  first = capsys.readouterr().err
  assert "projecting 2 reference(s)" in first  # two distinct references for three images
  caches = sorted(f.name for f in (out / "cache").glob("ref-*.npy"))
  assert len(caches) == 2 and caches[0].startswith("ref-ref photo 0-")
  with Image.open(out / "strips" / "frame0.png") as strip:
    assert strip.width == 4 * strip.height  # LQ | reference | restored | the GT held in memory

  # The same records again, after losing one result: only it is redone, and its reference's
  # inversion is found in the cache by its pixels (nothing is projected).
  (out / "restored" / "frame1.png").unlink()
  with engine.session(str(out)) as session:
    again = session.restore(items[:2])
  log = capsys.readouterr().err
  assert "1 already restored, 1 to do" in log and "projecting" not in log
  assert sorted(again["finished"]) == ["again0", "frame0", "frame1"] and not again["failures"]
  assert again["lq_sizes"]["8"]["images"] == 2
