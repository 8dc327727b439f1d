"""Reference selection: the pure choice over embeddings, the LQ wrapper with a stand-in
embedding, and the pool's on-disk cache."""

import os

import numpy as np
import pytest

from sair_jax.pipeline import reference_pool
from sair_jax.io.images import ImageIOError, write_image


@pytest.mark.parametrize("k", [1, 3])
def test_select_by_embedding_finds_the_planted_match(k):
  rng = np.random.default_rng(0)
  pool = rng.normal(size=(20, 16))
  truth = rng.permutation(20)[:6]
  query = pool[truth] * rng.uniform(0.5, 3.0, size=(6, 1)) + 0.05 * rng.normal(size=(6, 16))
  sel = reference_pool.select_by_embedding(query, pool, k=k)
  assert sel.index.shape == sel.similarity.shape == (6, k)
  np.testing.assert_array_equal(sel.index[:, 0], truth)
  assert np.all(sel.similarity[:, 0] > 0.99)  # cosine: the query's scale does not matter
  assert np.all(np.diff(sel.similarity, axis=1) <= 0)  # most similar first
  sims = np.asarray(reference_pool.pairwise_similarity(query, pool))
  np.testing.assert_allclose(sel.similarity, np.take_along_axis(sims, sel.index, 1), atol=1e-6)


def test_select_by_embedding_checks_sizes():
  with pytest.raises(ValueError, match="embedding sizes differ"):
    reference_pool.select_by_embedding(np.ones((2, 8)), np.ones((5, 4)))
  assert reference_pool.select_by_embedding(np.ones((1, 4)), np.eye(4)[:2], k=5).index.shape == (1, 2)


# A stand-in for ArcFace: the face's mean colour, centred (distinct colours -> distinct "people").
def colour_embed(faces):
  faces = np.asarray(faces)
  assert faces.ndim == 4 and faces.shape[1] == faces.shape[2] and faces.shape[3] == 3
  return faces.mean(axis=(1, 2)) - 0.5  # [B, 3]


COLOURS = np.asarray([[0.9, 0.2, 0.2], [0.2, 0.9, 0.2], [0.2, 0.2, 0.9], [0.9, 0.9, 0.2]],
                     np.float32)


def test_select_references_with_an_embedding_function():
  rng = np.random.default_rng(1)
  pool_faces = np.broadcast_to(COLOURS[:, None, None], (4, 64, 64, 3))
  pool = colour_embed(pool_faces)
  lq = np.clip(COLOURS[[2, 0, 3]][:, None, None] + 0.05 * rng.normal(size=(3, 16, 16, 3)), 0, 1)
  sel = reference_pool.select_references(lq, pool, colour_embed, size=64, batch=2)
  np.testing.assert_array_equal(sel.index[:, 0], [2, 0, 3])
  assert np.all(sel.similarity[:, 0] > 0.95)


def test_embed_pool_embeds_once_and_caches(tmp_path):
  paths = []
  for i, colour in enumerate(COLOURS):
    paths.append(str(tmp_path / f"p{i}.png"))
    write_image(paths[-1], np.broadcast_to(colour, (40, 40, 3)))
  calls = []

  def counting_embed(faces):
    calls.append(len(faces))
    return colour_embed(faces)

  cache = str(tmp_path / "pool_cache.npz")
  first = reference_pool.embed_pool(paths, counting_embed, cache=cache, model_id="colour", size=32,
                               batch=3)
  assert calls == [3, 1] and first.shape == (4, 3)
  np.testing.assert_allclose(first, colour_embed(np.broadcast_to(COLOURS[:, None, None],
                                                                 (4, 8, 8, 3))), atol=2 / 255)
  calls.clear()
  again = reference_pool.embed_pool(paths, counting_embed, cache=cache, model_id="colour", size=32)
  assert calls == [] and np.array_equal(again, first)
  write_image(paths[1], np.broadcast_to(COLOURS[2], (40, 40, 3)))  # a photo changes
  os.utime(paths[1], ns=(0, 10**9))
  changed = reference_pool.embed_pool(paths, counting_embed, cache=cache, model_id="colour", size=32)
  assert calls == [1]
  np.testing.assert_allclose(changed[1], changed[2])
  calls.clear()
  reference_pool.embed_pool(paths, counting_embed, cache=cache, model_id="other-net", size=32)
  assert calls == [4]  # another embedding network: nothing reused


def test_embed_pool_refuses_unaligned_photos(tmp_path):
  write_image(tmp_path / "wide.png", np.zeros((30, 50, 3), np.float32))
  with pytest.raises(ImageIOError, match="wide.png.*square FFHQ-aligned"):
    reference_pool.embed_pool([str(tmp_path / "wide.png")], colour_embed)


def test_embed_pool_can_leave_out_unreadable_photos(tmp_path):
  """In a run (skip_unreadable) a junk file or a wide photo in the pool is one line and a NaN
  row, not the end of the run; pixels held in memory are embedded and cached by their values."""
  write_image(tmp_path / "wide.png", np.zeros((30, 50, 3), np.float32))
  (tmp_path / "junk.jpg").write_bytes(b"not an image")
  faces = [np.broadcast_to(COLOURS[0], (32, 32, 3)).copy(), str(tmp_path / "junk.jpg"),
           str(tmp_path / "wide.png"), np.broadcast_to(COLOURS[1], (32, 32, 3)).copy()]
  lines, cache = [], str(tmp_path / "cache.npz")
  emb = reference_pool.embed_pool(faces, colour_embed, cache=cache, size=32, log=lines.append,
                                  skip_unreadable=True)
  assert np.isnan(emb[1:3]).all() and np.isfinite(emb[[0, 3]]).all()
  np.testing.assert_allclose(emb[[0, 3]], COLOURS[:2] - 0.5, atol=1e-4)  # a float32 mean
  left_out = [line for line in lines if "left out of the reference pool" in line]
  assert len(left_out) == 2 and "junk.jpg" in left_out[0] and "wide.png" in left_out[1]
  calls = []
  again = reference_pool.embed_pool(faces[::3], lambda f: calls.append(1) or colour_embed(f),
                                    cache=cache, size=32)
  assert not calls and np.array_equal(again, emb[[0, 3]])  # both from the cache
