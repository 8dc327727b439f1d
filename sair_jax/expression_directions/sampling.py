"""Labelled latents for fitting expression directions: latents drawn from a generator's mapping
network, synthesised and classified by expression (:func:`collect`, resumable, progress saved
atomically in a work directory; :func:`generator_sampler` gives its two functions).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.expression_directions.file import DirectionsError
from sair_jax.face.expression import EXPRESSIONS
from sair_jax.io import files


def collect(workdir: str, sample_fn: Callable[[jax.Array, int], Any],
            label_fn: Callable[[Any], Any], n_samples: int, *, batch: int, seed: int,
            run_info: dict | None = None, checkpoint_every: int = 20,
            log: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``n_samples`` latents and their expression probabilities into ``workdir``.

  Batch ``i`` uses the key ``fold_in(PRNGKey(seed), i)``, so the result does not depend on
  where a run was interrupted. Every ``checkpoint_every`` batches the arrays are flushed and
  ``progress.json`` is replaced atomically; a later call with the same arguments resumes there.

  Args:
    sample_fn: ``(key, n) -> latents [n, R, D]`` (R = 1: one w for all W+ rows).
    label_fn: ``latents [n, R, D] -> probs [n, 7]`` in ``EXPRESSIONS`` order.
    run_info: JSON-able description of the run (checkpoints, truncation); a resumed run must
      match it.
  Returns:
    (latents [N, R, D] float32, probs [N, 7] float32), read-only memmaps of the work files.
  """
  log = log or (lambda s: None)
  os.makedirs(workdir, exist_ok=True)
  progress_path = os.path.join(workdir, "progress.json")
  lat_path, prob_path = os.path.join(workdir, "latents.npy"), os.path.join(workdir, "probs.npy")
  root = jax.random.PRNGKey(seed)
  n_batches = -(-n_samples // batch)
  first = np.asarray(sample_fn(jax.random.fold_in(root, 0), batch), np.float32)  # [B, R, D]
  if first.ndim != 3 or first.shape[0] != batch:
    raise ValueError(f"sample_fn returned {first.shape}, expected [{batch}, R, D]")
  run = {"n_samples": n_samples, "batch": batch, "seed": seed, "shape": list(first.shape[1:]),
         "classes": list(EXPRESSIONS), "run": run_info or {}}
  done = 0
  if os.path.exists(progress_path):
    try:
      saved = files.read_json(progress_path)
    except files.UnreadableFileError as e:
      raise DirectionsError(str(e)) from None
    if {k: v for k, v in saved.items() if k != "done"} != run:
      raise DirectionsError(f"{workdir}: holds a different run ({saved.get('run')}, "
                            f"{saved.get('n_samples')} samples); use another work directory")
    done = int(saved["done"])
    lat = np.lib.format.open_memmap(lat_path, mode="r+")
    prob = np.lib.format.open_memmap(prob_path, mode="r+")
    log(f"collect: resuming at batch {done}/{n_batches}")
  else:
    lat = np.lib.format.open_memmap(lat_path, mode="w+", dtype=np.float32,
                                    shape=(n_samples,) + first.shape[1:])
    prob = np.lib.format.open_memmap(prob_path, mode="w+", dtype=np.float32,
                                     shape=(n_samples, len(EXPRESSIONS)))

  def save(i):
    lat.flush()
    prob.flush()
    files.write_json(progress_path, {**run, "done": i})

  for i in range(done, n_batches):
    latents = first if i == 0 else np.asarray(sample_fn(jax.random.fold_in(root, i), batch),
                                              np.float32)
    probs = np.asarray(label_fn(latents), np.float32)  # [B, 7]
    a, b = i * batch, min(n_samples, (i + 1) * batch)
    lat[a:b] = latents[:b - a]
    prob[a:b] = probs[:b - a]
    if (i + 1) % checkpoint_every == 0 or i + 1 == n_batches:
      save(i + 1)
      log(f"collect: {b}/{n_samples} samples")
  return (np.load(lat_path, mmap_mode="r"), np.load(prob_path, mmap_mode="r"))


def generator_sampler(G, classifier, truncation: float = 1.0):
  """``(sample_fn, label_fn)`` for :func:`collect` from a loaded generator and classifier.

  Latents are w = mapping(z) (R = 1: the same w feeds every W+ row); images are synthesised
  with the checkpoint's constant noise, mapped from [-1, 1] to [0, 1], cropped to the face box
  and classified (see :func:`sair_jax.face.expression.classifier_input`).
  """
  from sair_jax.face.expression import classifier_input, to_spec_order
  from sair_jax.nets import expression as expression_net

  perm = jnp.asarray(to_spec_order(classifier.labels))
  arch = classifier.arch

  def sample_fn(key, n):
    z = jax.random.normal(key, (n, G.z_dim), jnp.float32)
    return G.mapping(z, truncation)[:, None, :]  # [n, 1, w_dim]

  @jax.jit
  def classify(params, images):  # [n, H, W, 3] in [-1, 1] -> [n, 7]
    faces = jnp.clip((images + 1.0) * 0.5, 0.0, 1.0)
    x = classifier_input(faces, size=arch.input_size)
    return jax.nn.softmax(expression_net.apply(params, arch, x), axis=-1)[:, perm]

  def label_fn(latents):
    wplus = jnp.broadcast_to(jnp.asarray(latents)[:, :1],
                             (latents.shape[0], G.n_latent, G.w_dim))
    return classify(classifier.params, G.synthesis(wplus, noise="const"))

  return sample_fn, label_fn
