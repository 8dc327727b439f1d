"""Expression semantics: the seven expression names, classifier input, ``infer_expression``.

SAIR (paper §2, "Emotion semantics") uses seven expressions. This module fixes their names and
their order everywhere in sair_jax (``EXPRESSIONS``, the SPEC's order) and maps a classifier's
own class order onto it *by name*, never by position: fer's file orders its classes
angry, disgust, fear, happy, sad, surprise, neutral.

The classifier sees a grey 64 x 64 crop of the face. For FFHQ-aligned faces (the layout of the
generator's output and of the references) that crop is the fixed box ``FACE_BOX``: left 0.1875,
top 0.25, side 0.625 of the image (x 192..832, y 256..896 at 1024 px), which spans brows to chin.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# The SPEC's seven expressions, in the order used by directions files and by the CLI.
EXPRESSIONS = ("neutral", "angry", "sad", "happy", "surprise", "fear", "disgust")

# Spellings met in classifiers and direction file names -> the SPEC's name.
_ALIASES = {
    "neutral": "neutral", "calm": "neutral",
    "angry": "angry", "anger": "angry",
    "sad": "sad", "sadness": "sad",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgust": "disgust", "disgusted": "disgust",
}

# (left, top, side) of the face crop, as fractions of an FFHQ-aligned image's side.
FACE_BOX = (0.1875, 0.25, 0.625)
# ITU-R BT.601 luma weights (what OpenCV's RGB->grey conversion uses, as fer does).
LUMA = (0.299, 0.587, 0.114)


def canonical_name(name: str) -> str:
  """The SPEC's name for an expression spelled ``name`` (case-insensitive); ValueError if none."""
  key = name.strip().lower()
  if key not in _ALIASES:
    raise ValueError(f"unknown expression {name!r} (expected one of {', '.join(EXPRESSIONS)})")
  return _ALIASES[key]


def to_spec_order(labels: Sequence[str]) -> np.ndarray:
  """Index array ``perm`` with ``probs[..., perm]`` in ``EXPRESSIONS`` order.

  ``labels`` are a classifier's class names in its output order; every one of the seven
  expressions must appear exactly once.
  """
  names = [canonical_name(l) for l in labels]
  missing = [e for e in EXPRESSIONS if names.count(e) != 1]
  if missing or len(names) != len(EXPRESSIONS):
    raise ValueError(f"classifier labels {list(labels)} do not name the seven expressions once "
                     f"each (problem with: {missing or 'extra labels'})")
  return np.asarray([names.index(e) for e in EXPRESSIONS])


def crop_box(side: int, box: Sequence[float] = FACE_BOX) -> tuple[int, int, int]:
  """``(x0, y0, size)`` in pixels of ``box`` on a square image of ``side`` pixels."""
  left, top, size = box
  return round(left * side), round(top * side), max(1, round(size * side))


def classifier_input(images: jax.Array, *, size: int = 64, upsample_to: int | None = None,
                     box: Sequence[float] = FACE_BOX) -> jax.Array:
  """Face crops for the expression classifier.

  Args:
    images: [B, H, W, 3] RGB in [0, 1], FFHQ-aligned, square.
    size: classifier input side.
    upsample_to: first resize the images to this side (bicubic), e.g. for 32 x 32 LQ inputs,
      so that the crop box falls on whole pixels; ``None`` crops the images as they are.
    box: crop box as fractions of the side (``FACE_BOX``).
  Returns:
    [B, size, size, 1] grey in [-1, 1] (linear resize, antialiased when shrinking).
  """
  b, h, w, c = images.shape
  if h != w or c != 3:
    raise ValueError(f"expected square RGB images [B, S, S, 3], got {tuple(images.shape)}")
  x = jnp.asarray(images, jnp.float32)
  if upsample_to is not None and upsample_to != h:
    x = jnp.clip(jax.image.resize(x, (b, upsample_to, upsample_to, 3), "cubic"), 0.0, 1.0)
  x0, y0, s = crop_box(x.shape[1], box)
  x = x[:, y0:y0 + s, x0:x0 + s, :]  # [B, s, s, 3]
  grey = jnp.tensordot(x, jnp.asarray(LUMA, jnp.float32), axes=[[3], [0]])[..., None]
  grey = jax.image.resize(grey, (b, size, size, 1), "linear", antialias=True)
  return grey * 2.0 - 1.0  # [B, size, size, 1]


class InferredExpression(NamedTuple):
  """Per image: the SPEC name of the most likely expression and its probability."""
  labels: tuple[str, ...]  # [B] names from EXPRESSIONS
  confidence: np.ndarray  # [B] float32, probability of the chosen label
  probs: np.ndarray  # [B, 7] float32, EXPRESSIONS order


@functools.partial(jax.jit, static_argnames=("upsample_to", "size"))
def _classifier_batch(images, upsample_to: int, size: int):
  return classifier_input(images, size=size, upsample_to=upsample_to)


def infer_expression(lq_images, classifier, *, upsample_to: int = 256) -> InferredExpression:
  """Guesses the expression of each degraded face (the main command's ``infer`` mode).

  Each LQ image is upsampled (bicubic, to ``upsample_to``), cropped to ``FACE_BOX``, turned grey,
  resized to the classifier's input size and classified.

  Args:
    lq_images: [B, h, w, 3] FFHQ-aligned LQ faces, RGB in [0, 1] (float) or uint8.
    classifier: a loaded :class:`sair_jax.nets.expression.ExpressionClassifier`.
    upsample_to: side the LQ faces are upsampled to before cropping.
  """
  x = np.asarray(lq_images)
  if x.dtype == np.uint8:
    x = x.astype(np.float32) / 255.0
  if classifier.arch.in_channels != 1:
    raise ValueError(f"expression classifier takes {classifier.arch.in_channels} channels, "
                     "infer_expression feeds grey faces")
  crops = _classifier_batch(jnp.asarray(x, jnp.float32), upsample_to, classifier.arch.input_size)
  probs = np.asarray(classifier.probs(crops))[:, to_spec_order(classifier.labels)]  # [B, 7]
  best = probs.argmax(axis=1)
  return InferredExpression(tuple(EXPRESSIONS[i] for i in best),
                            probs[np.arange(len(best)), best].astype(np.float32),
                            probs.astype(np.float32))
