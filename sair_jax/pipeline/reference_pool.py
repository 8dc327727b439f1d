"""Reference selection from a pool of candidate photos (the main command's ``pool`` mode).

Paper §2, "Identity semantics": the reference Z is the pool photo whose face-recognition
embedding is most similar (cosine) to that of the LQ face. The pool is embedded once, in
batches, and cached on disk (:func:`embed_pool`); each LQ face is upsampled and embedded
(:func:`select_references`); the choice itself is a pure function of the embeddings
(:func:`select_by_embedding`).

Embedding functions take faces [B, S, S, 3] RGB in [0, 1] (FFHQ-aligned, any S) and return
[B, D], e.g. ``functools.partial(arcface.load(dst).embed_faces, variant="official")``.
"""

from __future__ import annotations

import io
import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.core import losses
from sair_jax.io import files, images
from sair_jax.pipeline import inputs

EmbedFn = Callable[[np.ndarray], np.ndarray]  # [B, S, S, 3] in [0, 1] -> [B, D]


class Selection(NamedTuple):
  index: np.ndarray  # [B, k] int: pool indices, most similar first
  similarity: np.ndarray  # [B, k] float32: their cosine similarities


def pairwise_similarity(a, b) -> jax.Array:
  """[B, P] cosine similarities between the rows of ``a`` [B, D] and ``b`` [P, D]."""
  return losses.cosine_similarity(jnp.asarray(a)[:, None, :], jnp.asarray(b)[None, :, :])


def select_by_embedding(query, pool, k: int = 1) -> Selection:
  """The ``k`` pool entries most similar to each query (pure: embeddings in, indices out).

  Args:
    query: [B, D] embeddings of the LQ faces.
    pool: [P, D] embeddings of the candidates.
  """
  if np.shape(query)[-1] != np.shape(pool)[-1]:
    raise ValueError(f"embedding sizes differ: query {np.shape(query)}, pool {np.shape(pool)}")
  k = min(k, np.shape(pool)[0])
  sim, idx = jax.lax.top_k(pairwise_similarity(query, pool), k)  # [B, k]
  return Selection(np.asarray(idx), np.asarray(sim, np.float32))


def upsample(images, size: int) -> np.ndarray:
  """[B, h, w, 3] in [0, 1] -> [B, size, size, 3], bicubic, clipped to [0, 1]."""
  x = jnp.asarray(images, jnp.float32)
  return np.asarray(jnp.clip(jax.image.resize(x, (x.shape[0], size, size, 3), "cubic"), 0, 1))


def _batched(embed_fn: EmbedFn, faces: np.ndarray, batch: int) -> np.ndarray:
  return np.concatenate([np.asarray(embed_fn(faces[i:i + batch]), np.float32)
                         for i in range(0, len(faces), batch)])


def select_references(lq_images, pool_embeddings, embed_fn: EmbedFn, *, size: int = 256,
                      k: int = 1, batch: int = 8) -> Selection:
  """Picks pool references for LQ faces by embedding similarity.

  Args:
    lq_images: [B, h, w, 3] FFHQ-aligned LQ faces in [0, 1].
    pool_embeddings: [P, D] from :func:`embed_pool`, computed with the same ``embed_fn``.
    embed_fn: faces [n, size, size, 3] in [0, 1] -> [n, D].
    size: side the LQ faces are upsampled to (bicubic) before embedding.
  """
  query = _batched(embed_fn, upsample(lq_images, size), batch)
  return select_by_embedding(query, pool_embeddings, k)


def _cache_key(face: str | np.ndarray) -> str:
  """A file: its path, size and modification time; pixels: a digest of their values."""
  if isinstance(face, np.ndarray):
    return inputs.pixel_key(face)
  if not os.path.exists(face):
    return os.path.abspath(face)
  st = os.stat(face)
  return f"{os.path.abspath(face)}|{st.st_size}|{st.st_mtime_ns}"


def embed_pool(paths: Sequence[str | np.ndarray], embed_fn: EmbedFn, *,
               cache: str | None = None, model_id: str = "", size: int = 256, batch: int = 8,
               log: Callable[[str], None] | None = None,
               skip_unreadable: bool = False) -> np.ndarray:
  """Embeddings [P, D] of the pool photos ``paths`` (FFHQ-aligned faces, any resolution): files,
  or pixels [S, S, 3] in [0, 1] (cached by a digest of their values).

  Photos are resized to ``size`` (bilinear, antialiased) and embedded in batches. With
  ``cache`` (an .npz path) embeddings are reused for files whose path, size and modification
  time are unchanged, provided ``model_id`` (name the embedding network and its preprocessing)
  and ``size`` match; the cache is rewritten atomically when anything new was embedded.
  ``skip_unreadable``: a photo that cannot be read (or is not a square face) is one ``log``
  line and gets a row of NaN (not cached) instead of stopping everything.
  """
  if not paths:
    raise ValueError("the reference pool is empty")
  log = log or (lambda s: None)
  keys = [_cache_key(p) for p in paths]
  cached = {}
  if cache and os.path.exists(cache):
    try:
      with np.load(cache, allow_pickle=False) as z:
        if str(z["model_id"]) == model_id and int(z["size"]) == size:
          cached = dict(zip((str(s) for s in z["keys"]), z["embeddings"]))
    except (OSError, ValueError, KeyError) as e:
      log(f"{cache}: unreadable embedding cache, rebuilding ({e})")
  todo, faces = [], []
  for i, key in enumerate(keys):
    if key in cached:
      continue
    try:
      faces.append(_load_face(paths[i], size))  # [size, size, 3]
      todo.append(i)
    except images.ImageIOError as e:
      if not skip_unreadable:
        raise
      log(f"{e} (left out of the reference pool)")
  if todo:
    for i, e in zip(todo, _batched(embed_fn, np.stack(faces), batch)):
      cached[keys[i]] = e
    log(f"embedded {len(todo)} pool photos ({len(paths) - len(todo)} from the cache)")
    if cache:
      good = [key for key in keys if key in cached]
      buf = io.BytesIO()
      np.savez(buf, keys=np.asarray(good), embeddings=np.stack([cached[key] for key in good]),
               model_id=np.asarray(model_id), size=np.asarray(size))
      files.atomic_write(cache, buf.getvalue())
  width = len(next(iter(cached.values()))) if cached else 1
  missing = np.full((width,), np.nan, np.float32)
  return np.stack([cached.get(key, missing) for key in keys]).astype(np.float32)


def _load_face(path: str | np.ndarray, size: int) -> np.ndarray:
  if isinstance(path, np.ndarray):
    img = np.asarray(path, np.float32)
  else:
    img = images.read_image(path)  # [H, W, 3] in [0, 1]; one-line ImageIOError
  if img.shape[0] != img.shape[1]:
    raise images.ImageIOError(f"{path}: pool photos must be square FFHQ-aligned faces "
                                f"(got {img.shape[1]}x{img.shape[0]}); run python -m sair_jax.align")
  if img.shape[0] != size:
    img = np.asarray(jax.image.resize(img, (size, size, 3), "linear", antialias=True))
  return img.astype(np.float32)
