"""Faces through time in a video: per-frame detections linked into tracks, their landmarks steadied.

Faces are found frame by frame (:mod:`sair_jax.face.detect`). Restoring a video needs two more
things: which detection in one frame is the same person as which in the next (a track), and a
steady alignment, since a crop placed from each frame's own landmarks follows every wobble of the
landmark detector and the restored face shakes.

Linking (:func:`link_tracks`) goes through the frames in order; in each one:

1. Prediction. Every live track predicts the centre (mean of the 68 landmarks) of its face in this
   frame from constant velocity: a least-squares line, centre against frame index, through its
   last :data:`HISTORY` detections since it started or came back, evaluated at this frame (with
   one detection it stays where it was). Over a gap the line carries on.
2. Cost. A detection against a live track costs ``|centre - prediction| / qsize``, ``qsize`` the
   side of the FFHQ quad (:func:`sair_jax.face.align.ffhq_quad`) of the track's last detection,
   plus, when both have identity embeddings, ``1 - cos`` between the detection's embedding and the
   mean of the track's L2-normalised ones. A pair is not allowed when that normalised distance
   exceeds ``max_jump`` times the frames elapsed since the track's last detection, or when the
   cosine similarity is below ``min_similarity``.
3. Assignment. The allowed pairs are matched one to one at least cost: the Hungarian method
   (``scipy.optimize.linear_sum_assignment``, scipy being an optional extra) with pairs that are
   not allowed priced above the sum of all allowed costs, so the largest number of pairs is
   matched and, among such matchings, the cheapest. Without scipy the match is greedy (cheapest
   allowed pair first), which can match fewer or dearer pairs when choices compete.
4. Return. A track not detected for more than ``max_gap`` frames is no longer live, but is kept:
   detections that matched no live track are compared by embedding with the tracks that left and
   matched to them as in 3 (cost ``1 - cos``, allowed from ``min_similarity``, position ignored).
   Such a detection rejoins its track, under the same id: a person may leave and come back. Its
   velocity history starts afresh. Without embeddings a track that left cannot be rejoined, so
   the person comes back under a new id.
5. Birth. Each detection still unmatched starts a new track.

Finally tracks with fewer than ``min_length`` detections are dropped (spurious detections) and the
others are numbered 0, 1, ... in order of first appearance (by frame, then by position in that
frame's sequence).

Two people who cross keep their ids. With embeddings, the similarity gate keeps each detection on
its own person even where their positions coincide. Without them, constant-velocity prediction
carries each person through while both move steadily. People who meet and turn back swap ids
unless embeddings are available.

Smoothing (:func:`smooth_landmarks`) replaces every landmark coordinate, at every frame, by the
value there of a straight line fitted to it over time by least squares with Gaussian weights
``exp(-dt^2 / (2 sigma^2))`` (local linear regression; the kernel is cut at
:data:`KERNEL_RADIUS` sigma), within each run of consecutive frames only: a gap in the frames is a
cut that nothing crosses. A plain Gaussian average renormalised at the ends of a run would lag: at
a run's last frame it averages the past only, at sigma = 2 about 1.3 frames behind, so the crop
trails a face that moves and then jumps at the cut. The weighted line reproduces any
constant-velocity motion exactly, the ends included. In the interior of a run the window is
symmetric and the line's value is the Gaussian average itself (same noise reduction: RMS noise
x0.38 at sigma = 2; same bias, ``sigma^2 / 2`` times the acceleration). The price is more noise in
the last frames of a run, where the line is extrapolated: x0.78 of the raw noise at the very end
at sigma = 2, against x0.50 for the Gaussian average. A local quadratic would also follow
acceleration, but with more noise everywhere, so it was not chosen.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from sair_jax.face import align

try:  # scipy is an optional extra; without it the assignment is greedy
  from scipy.optimize import linear_sum_assignment as _hungarian
except ImportError:  # the tests cover this path by loading a copy with scipy hidden
  _hungarian = None

HISTORY = 5  # detections a track's velocity is fitted over
KERNEL_RADIUS = 4.0  # the smoothing kernel is cut at this many sigma


def _readonly(a: np.ndarray) -> np.ndarray:
  a = np.array(a)  # a copy: the caller's array stays theirs
  a.setflags(write=False)
  return a


def _is_int(x) -> bool:
  return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


@dataclasses.dataclass(frozen=True, eq=False)
class Detection:
  """One face found in one frame of a clip.

  Raises ValueError for a frame that is not an integer, landmarks that are not [68, 2] finite
  numbers or whose FFHQ quad has no size, a non-finite score, or an embedding that is not a
  finite, non-zero vector.
  """
  frame: int  # frame index in the clip
  landmarks: np.ndarray  # [68, 2] float64 (x, y) pixels
  score: float = 1.0
  embedding: np.ndarray | None = None  # [E] identity features, any norm (normalised when used)

  def __post_init__(self):
    if not _is_int(self.frame):
      raise ValueError(f"the frame index must be an integer, got {self.frame!r}")
    lm = np.asarray(self.landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
      raise ValueError(f"frame {self.frame}: expected finite landmarks [68, 2], got {lm.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):  # points all in one place: nan
      qsize = align.ffhq_quad(lm)[1]
    if not qsize > 0:
      raise ValueError(f"frame {self.frame}: the landmarks' FFHQ quad has no size")
    if not np.isfinite(self.score):
      raise ValueError(f"frame {self.frame}: the score must be finite, got {self.score}")
    object.__setattr__(self, "frame", int(self.frame))
    object.__setattr__(self, "landmarks", _readonly(lm))
    object.__setattr__(self, "score", float(self.score))
    if self.embedding is not None:
      e = np.asarray(self.embedding, np.float64)
      if e.ndim != 1 or not e.size or not np.isfinite(e).all() or not np.any(e):
        raise ValueError(f"frame {self.frame}: the embedding must be a finite non-zero vector [E]")
      object.__setattr__(self, "embedding", _readonly(e))


def _runs(frames: np.ndarray) -> list[tuple[int, int]]:
  """[start, end) index ranges of the runs of consecutive values in increasing ``frames`` [n]."""
  if not len(frames):
    return []
  breaks = (np.flatnonzero(np.diff(frames) != 1) + 1).tolist()
  return list(zip([0] + breaks, breaks + [len(frames)]))


def _check_frames(frames, n: int | None = None) -> np.ndarray:
  """``frames`` as [n] int64, strictly increasing; ValueError otherwise."""
  f = np.asarray(frames)
  if f.ndim != 1 or (n is not None and len(f) != n):
    raise ValueError(f"expected frame indices [{n if n is not None else 'n'}], got {f.shape}")
  if f.size and not np.issubdtype(f.dtype, np.integer):
    raise ValueError(f"frame indices must be integers, got {f.dtype}")
  if np.any(np.diff(f) <= 0):
    raise ValueError("frame indices must be strictly increasing")
  return f.astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class Track:
  """One person's face through a clip.

  Raises ValueError for an id that is not an integer, arrays that disagree in length, frames
  that are empty, not integers or not strictly increasing, or landmarks that are not [n, 68, 2].
  """
  id: int  # 0, 1, ... in order of first appearance
  frames: np.ndarray  # [n] int64, increasing (gaps where the person was away)
  landmarks: np.ndarray  # [n, 68, 2] float64 (x, y) pixels, as detected
  scores: np.ndarray  # [n] float64

  def __post_init__(self):
    if not _is_int(self.id):
      raise ValueError(f"a track id must be an integer, got {self.id!r}")
    frames = _check_frames(self.frames)
    n = len(frames)
    lm = np.asarray(self.landmarks, np.float64)
    scores = np.asarray(self.scores, np.float64)
    if not n or lm.shape != (n, 68, 2) or scores.shape != (n,):
      raise ValueError(f"track {self.id}: expected frames [n > 0], landmarks [n, 68, 2] and "
                       f"scores [n], got {frames.shape}, {lm.shape} and {scores.shape}")
    object.__setattr__(self, "frames", _readonly(frames))
    object.__setattr__(self, "landmarks", _readonly(lm))
    object.__setattr__(self, "scores", _readonly(scores))

  def qsize(self) -> np.ndarray:
    """[n] side of the FFHQ quad (:func:`sair_jax.face.align.ffhq_quad`) at each frame, pixels."""
    return np.asarray([align.ffhq_quad(lm)[1] for lm in self.landmarks])

  def segments(self) -> list[tuple[int, int]]:
    """[start, end) index ranges (into ``frames``) of the runs of consecutive frames."""
    return _runs(self.frames)


# ---------------------------------------------------------------------------------------------
# Assignment


def _assign(cost: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int]]:
  """One-to-one matching of rows to columns at least cost, among the allowed pairs.

  Args:
    cost: [R, C] float, non-negative.
    allowed: [R, C] bool.
  Returns:
    (row, column) pairs, all allowed, by row. With scipy: the most pairs possible, and among
    those the least total cost (Hungarian method, pairs not allowed priced above the sum of all
    allowed costs). Without: greedy, the cheapest allowed pair first (ties: by row, then column).
  """
  if not allowed.any():
    return []
  if _hungarian is not None:
    priced = np.where(allowed, cost, cost[allowed].sum() + 1.0)
    rows, cols = _hungarian(priced)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]
  else:
    rows, cols = np.nonzero(allowed)
    used_rows, used_cols, pairs = set(), set(), []
    for k in np.argsort(cost[rows, cols], kind="stable"):
      r, c = int(rows[k]), int(cols[k])
      if r not in used_rows and c not in used_cols:
        used_rows.add(r)
        used_cols.add(c)
        pairs.append((r, c))
  return sorted(pairs)


# ---------------------------------------------------------------------------------------------
# Linking


@dataclasses.dataclass(frozen=True)
class _Seen:
  """What linking uses of a detection."""
  detection: Detection
  centre: np.ndarray  # [2] mean of the landmarks, pixels
  qsize: float  # FFHQ quad side, pixels
  unit: np.ndarray | None  # [E] L2-normalised embedding


def _seen(det: Detection) -> _Seen:
  unit = None if det.embedding is None else det.embedding / np.linalg.norm(det.embedding)
  return _Seen(det, det.landmarks.mean(axis=0), align.ffhq_quad(det.landmarks)[1], unit)


class _Trail:
  """A track being built: its detections so far (mutable; internal to :func:`link_tracks`)."""

  def __init__(self):
    self.seen: list[_Seen] = []
    self.since = 0  # index of the first detection the velocity is fitted from
    self.embedding_sum = None  # [E] sum of the unit embeddings seen

  @property
  def last_frame(self) -> int:
    return self.seen[-1].detection.frame

  def add(self, s: _Seen, rejoin: bool = False):
    if rejoin:
      self.since = len(self.seen)
    self.seen.append(s)
    if s.unit is not None:
      self.embedding_sum = s.unit if self.embedding_sum is None else self.embedding_sum + s.unit

  def predict(self, frame: int) -> np.ndarray:
    """[2] the centre expected at ``frame``: a least-squares line through the recent centres."""
    recent = self.seen[max(self.since, len(self.seen) - HISTORY):]
    t = np.asarray([s.detection.frame for s in recent], np.float64)
    c = np.stack([s.centre for s in recent])  # [k, 2]
    t_mean, c_mean = t.mean(), c.mean(axis=0)
    if len(recent) < 2:
      return c_mean
    velocity = ((t - t_mean)[:, None] * (c - c_mean)).sum(axis=0) / ((t - t_mean) ** 2).sum()
    return c_mean + velocity * (frame - t_mean)

  def mean_embedding(self) -> np.ndarray | None:
    """[E] unit direction of the mean of the unit embeddings seen, or None."""
    if self.embedding_sum is None:
      return None
    norm = np.linalg.norm(self.embedding_sum)
    return self.embedding_sum / norm if norm > 0 else None

  def track(self, track_id: int) -> Track:
    dets = [s.detection for s in self.seen]
    return Track(track_id, np.asarray([d.frame for d in dets], np.int64),
                 np.stack([d.landmarks for d in dets]), np.asarray([d.score for d in dets]))


def _live_costs(trails: list[_Trail], seen: list[_Seen], frame: int, max_jump: float,
                min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
  """Cost [T, D] and allowed [T, D] of matching each live trail to each detection (step 2)."""
  centres = np.stack([s.centre for s in seen])  # [D, 2]
  cost = np.zeros((len(trails), len(seen)))
  allowed = np.ones((len(trails), len(seen)), bool)
  for i, trail in enumerate(trails):
    jump = np.linalg.norm(centres - trail.predict(frame), axis=1) / trail.seen[-1].qsize
    cost[i] = jump
    allowed[i] = jump <= max_jump * (frame - trail.last_frame)
    mean = trail.mean_embedding()
    if mean is None:
      continue
    for j, s in enumerate(seen):
      if s.unit is not None:
        similarity = float(mean @ s.unit)
        cost[i, j] += max(0.0, 1.0 - similarity)
        allowed[i, j] &= similarity >= min_similarity
  return cost, allowed


def _frame_of(dets: list, previous: int | None, embedding_size: list) -> int:
  """The one frame index of a frame's detections; ValueError when they disagree, when it does not
  follow ``previous``, or when an embedding's size differs from the first one seen (kept in
  ``embedding_size``, a one-item list, empty until then)."""
  for d in dets:
    if not isinstance(d, Detection):
      raise ValueError(f"expected Detection objects, got {type(d).__name__}")
  frames = {d.frame for d in dets}
  if len(frames) != 1:
    raise ValueError(f"one frame's detections carry several frame indices: {sorted(frames)}")
  frame = frames.pop()
  if previous is not None and frame <= previous:
    raise ValueError(f"frames out of order: frame {frame} after frame {previous}")
  for d in dets:
    if d.embedding is not None:
      if not embedding_size:
        embedding_size.append(d.embedding.size)
      elif d.embedding.size != embedding_size[0]:
        raise ValueError(f"frame {frame}: embedding of size {d.embedding.size}, "
                         f"earlier ones have {embedding_size[0]}")
  return frame


def link_tracks(detections: Iterable[Sequence[Detection]], *, max_gap: int = 5,
                max_jump: float = 0.5, min_similarity: float = 0.5,
                min_length: int = 1) -> list[Track]:
  """Links a clip's per-frame face detections into tracks, one per person (module docstring).

  Args:
    detections: one sequence of :class:`Detection` per frame, in frame order (a frame without
      faces: an empty sequence, or no entry at all); all detections of a sequence share their
      ``frame``.
    max_gap: frames a track may go undetected and still be continued by position.
    max_jump: largest distance, in FFHQ quad sides per frame elapsed, between a track's predicted
      centre and a detection it takes.
    min_similarity: least cosine similarity of embeddings for a detection to join a track (when
      both have embeddings) or to bring back a track that left.
    min_length: tracks with fewer detections are dropped.
  Returns:
    Tracks with ids 0, 1, ... in order of first appearance.
  Raises:
    ValueError: for parameters out of range, a sequence holding anything but detections or
      several frame indices, frames out of order, or embeddings of different sizes.
  """
  if not _is_int(max_gap) or max_gap < 0:
    raise ValueError(f"max_gap must be an integer >= 0, got {max_gap!r}")
  if not max_jump > 0 or not np.isfinite(max_jump):
    raise ValueError(f"max_jump must be positive, got {max_jump!r}")
  if not -1.0 <= min_similarity <= 1.0:
    raise ValueError(f"min_similarity must be within [-1, 1], got {min_similarity!r}")
  if not _is_int(min_length) or min_length < 1:
    raise ValueError(f"min_length must be an integer >= 1, got {min_length!r}")

  trails: list[_Trail] = []  # in order of first appearance
  previous, embedding_size = None, []
  for frame_detections in detections:
    dets = list(frame_detections)
    if not dets:
      continue
    frame = previous = _frame_of(dets, previous, embedding_size)
    seen = [_seen(d) for d in dets]
    live = [t for t in trails if frame - t.last_frame - 1 <= max_gap]
    unmatched = set(range(len(seen)))

    for i, j in _assign(*_live_costs(live, seen, frame, max_jump, min_similarity)):
      live[i].add(seen[j])
      unmatched.discard(j)

    left = [t for t in trails
            if frame - t.last_frame - 1 > max_gap and t.mean_embedding() is not None]
    rest = [j for j in sorted(unmatched) if seen[j].unit is not None]
    if left and rest:
      similarity = (np.stack([t.mean_embedding() for t in left])
                    @ np.stack([seen[j].unit for j in rest]).T)  # [L, R]
      for i, k in _assign(np.maximum(0.0, 1.0 - similarity), similarity >= min_similarity):
        left[i].add(seen[rest[k]], rejoin=True)
        unmatched.discard(rest[k])

    for j in sorted(unmatched):
      trails.append(_Trail())
      trails[-1].add(seen[j])

  kept = [t for t in trails if len(t.seen) >= min_length]
  return [t.track(i) for i, t in enumerate(kept)]


# ---------------------------------------------------------------------------------------------
# Smoothing


def _local_linear_weights(m: int, sigma: float) -> tuple[np.ndarray, int]:
  """Weights of Gaussian-weighted local linear regression on ``m`` consecutive frames.

  Returns:
    ``(weights, r)``: weights [m, 2r + 1], the value at frame i being
    ``sum_k weights[i, k] * y[i + k - r]`` (zero where ``i + k - r`` is outside the run); each row
    sums to 1 and has zero first moment, so lines are kept exactly. Where the neighbours' weights
    vanish (tiny sigma) the row falls back to the weighted mean, that is the frame itself.
  """
  r = min(int(np.ceil(KERNEL_RADIUS * sigma)), m - 1)
  d = np.arange(-r, r + 1, dtype=np.float64)  # [2r + 1] offsets
  i = np.arange(m)[:, None]
  inside = (i + d >= 0) & (i + d < m)  # [m, 2r + 1]
  w = np.where(inside, np.exp(-0.5 * (d / sigma) ** 2), 0.0)
  s0, s1 = w.sum(1, keepdims=True), (w * d).sum(1, keepdims=True)
  s2 = (w * d * d).sum(1, keepdims=True)
  det = s0 * s2 - s1 ** 2
  linear = det > 1e-12 * s0 ** 2
  weights = np.where(linear, w * (s2 - s1 * d) / np.where(linear, det, 1.0), w / s0)
  return weights, r


def _smooth_run(y: np.ndarray, sigma: float) -> np.ndarray:
  """[m, F] values on consecutive frames -> [m, F] local linear regression estimates."""
  m = len(y)
  if m < 3:  # a line through one or two points passes through them
    return y.copy()
  weights, r = _local_linear_weights(m, sigma)
  out = np.zeros_like(y)
  for k in range(2 * r + 1):
    d = k - r
    lo, hi = max(0, -d), min(m, m - d)  # rows whose neighbour at offset d is inside the run
    out[lo:hi] += weights[lo:hi, k, None] * y[lo + d:hi + d]
  return out


def smooth_landmarks(frames: np.ndarray, landmarks: np.ndarray, sigma: float = 2.0) -> np.ndarray:
  """Smooths a track's landmarks over time, within each run of consecutive frames.

  Method (module docstring): Gaussian-weighted local linear regression, sigma in frames, kernel
  cut at :data:`KERNEL_RADIUS` sigma; frames on either side of a gap never influence each other;
  constant-velocity motion is kept exactly, at the ends of runs too.

  Args:
    frames: [n] int frame indices, strictly increasing.
    landmarks: [n, 68, 2] (x, y) pixels (any [n, ...] works).
    sigma: standard deviation of the Gaussian in frames; 0 returns the landmarks unchanged.
  Returns:
    [n, 68, 2] float64, a new array.
  Raises:
    ValueError: for a negative or non-finite sigma, frame indices that are not [n] increasing
      integers, or non-finite landmarks.
  """
  if not (np.isfinite(sigma) and sigma >= 0):
    raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
  lm = np.array(landmarks, np.float64)  # a copy
  if lm.ndim < 1:
    raise ValueError(f"expected landmarks [n, ...], got {lm.shape}")
  frames = _check_frames(frames, len(lm))
  if not np.isfinite(lm).all():
    raise ValueError("landmarks must be finite")
  if sigma == 0 or not len(lm):
    return lm
  flat = lm.reshape(len(lm), -1)
  for start, end in _runs(frames):
    flat[start:end] = _smooth_run(flat[start:end], float(sigma))
  return flat.reshape(lm.shape)


def jitter(landmarks: np.ndarray, frames: np.ndarray | None = None) -> float:
  """How shaky a track is: the mean length of the landmarks' second difference over time, pixels.

  ``|x[t+1] - 2 x[t] + x[t-1]|`` is averaged over landmarks and frames (0 for steady motion at
  constant velocity). Rows are taken as consecutive frames; with ``frames`` [n], only triples of
  consecutive frame indices count (none across a gap). 0.0 when there is no such triple.

  Args:
    landmarks: [n, 68, 2] (x, y) pixels (any [n, ..., 2] works).
    frames: optional [n] int frame indices, strictly increasing.
  """
  lm = np.asarray(landmarks, np.float64)
  if lm.ndim < 2:
    raise ValueError(f"expected landmarks [n, ..., 2], got {lm.shape}")
  if len(lm) < 3:
    return 0.0
  second = lm[2:] - 2.0 * lm[1:-1] + lm[:-2]  # [n - 2, ..., 2]
  if frames is not None:
    f = _check_frames(frames, len(lm))
    second = second[f[2:] - f[:-2] == 2]
  if not len(second):
    return 0.0
  return float(np.linalg.norm(second, axis=-1).mean())


def smoothed(track: Track, sigma: float) -> Track:
  """``track`` with its landmarks smoothed by :func:`smooth_landmarks` (id, frames, scores kept)."""
  return dataclasses.replace(track, landmarks=smooth_landmarks(track.frames, track.landmarks,
                                                               sigma))
