"""Warm starts along time: the faces of a track restored window by window, each frame started
from a solved neighbour's W+.

A *track* is one person's faces in consecutive frames (a video, or the known-answer clip). Its
faces reach :class:`WarmStarts` a *window* at a time (a few consecutive frames, all tracks of
those frames together), and each window is restored by the engine's session:

1. A track with no solved frame yet restores its first face of the window *cold*: from the
   reference's w_z (``config.solver.start``), for ``cold_steps`` steps, with no temporal term.
   Its result becomes the track's solved code.
2. Every other face of the window starts *warm* from the track's last solved code w_s (the
   nearest frame already solved, before the window) and adds the temporal term
   ``loss.temporal · ||w_t − w_s||²`` (:func:`sair_jax.core.losses.temporal_loss`), for
   ``warm_steps`` steps at ``warm_lr``. These faces are independent of each other given w_s, so the whole
   window is one batch (every image keeps its own Adam state and loss, as the solver requires).
3. The track's solved code becomes the W+ of its last face restored in the window.

With ``anchor_every`` = K > 0 a track is re-anchored: once K of its faces have been restored
since its last cold face, the first face of its next window is cold again (from the
reference) and the track goes on from that; with ``anchor_pull`` > 0 that cold face is also
pulled toward the track's last solved code, by the temporal term at ``anchor_pull`` times its
weight, so the clip does not jump at the anchor. A warm track follows its first frame's answer as
the face moves, and drifts in what the LQ does not show (benchmarks/RESULTS.md, "Video": on
the known-answer clip, warm frames fit their LQ better than cold ones and are still further
from the truth); a cold face holds that again. Which faces are cold depends only on the order
of the track's faces, so a resumed run chooses the same ones.

A track whose cold face fails (its loss became non-finite) tries its next face cold. Solved
codes are read back from ``latents/NAME.npy``, so a resumed run (faces already restored are
skipped by the session) warm-starts exactly as the first run did.
"""

from __future__ import annotations

import dataclasses
from typing import Hashable, Sequence

import numpy as np

from sair_jax.io import files
from sair_jax.pipeline import inputs


@dataclasses.dataclass
class Track:
  """One track's state: its LQ size, its last solved W+ (None before its first face and when
  re-anchored; then ``w_before`` is the last solved one) and how many of its faces were
  restored since its last cold one."""
  lq_size: int
  w_solved: np.ndarray | None = None
  w_before: np.ndarray | None = None
  since_cold: int = 0
  reference: object = None  # what its cold face was paired with (pool mode: the choice)
  reference_origin: str = ""


class WarmStarts:
  """Restores windows of consecutive frames of several tracks through one engine session.

  Args:
    session: a :class:`sair_jax.pipeline.engine.Session`.
    cold_steps: steps of a track's first face (``config.solver.steps``).
    warm_steps: steps of a face started from a solved neighbour.
    warm_lr: its learning rate (None: ``config.solver.lr``). Adam's first steps move every
      coordinate by about the learning rate whatever the gradient, so a face that starts next
      to its answer needs a smaller one than a cold start.
    pool: the reference pool, for tracks whose faces have no reference (the cold face picks
      one by ArcFace similarity; the track's other faces keep it).
    anchor_every: K > 0 re-anchors each track with a cold face once K of its faces were
      restored since the last (module docstring); 0: only a track's first face is cold.
    anchor_pull: the temporal term's weight on a re-anchored cold face, toward the track's
      last solved code, as a fraction of ``loss.temporal`` (0: none; a track's first cold
      face has nothing to be pulled toward).
  """

  def __init__(self, session, *, cold_steps: int, warm_steps: int,
               warm_lr: float | None = None, pool: inputs.Pool | None = None,
               anchor_every: int = 0, anchor_pull: float = 0.0):
    self.session, self.pool = session, pool
    self.anchor_every, self.anchor_pull = int(anchor_every), float(anchor_pull)
    self.cold_steps, self.warm_steps = int(cold_steps), int(warm_steps)
    self.warm_lr = None if warm_lr is None else float(warm_lr)
    self.pool_faces = dict(zip(pool.names, pool.faces)) if pool is not None else {}
    self.tracks: dict[Hashable, Track] = {}
    self.restored = {"cold": 0, "warm": 0}  # faces solved (this run or before), by start

  def _solved(self, name: str) -> np.ndarray | None:
    """The W+ a finished face was saved with (None when it did not finish)."""
    folder = self.session.folder
    if not folder.done(name):
      return None
    return files.read_npy(folder.path("latents", name, ".npy"))

  def _pool_choice(self, name: str):
    """(pixels, origin) of the pool photo the session chose for ``name``, or (None, '')."""
    choice = self.session.manifest.get("pool_choices", {}).get(name)
    if not choice or self.pool is None:
      return None, ""
    return self.pool_faces.get(choice["reference"]), choice["reference"]

  def _keep_reference(self, key: Hashable, item: inputs.Item) -> inputs.Item:
    """``item`` with its track's reference, once the track has one (its first cold face's)."""
    track = self.tracks[key]
    if track.reference is None:
      return item
    return dataclasses.replace(item, reference=track.reference,
                               reference_origin=track.reference_origin)

  def _cold(self, key: Hashable, item: inputs.Item) -> inputs.Item:
    """A cold face of track ``key``: its reference kept, and pulled toward the code solved
    before a re-anchoring when ``anchor_pull`` > 0."""
    item, track = self._keep_reference(key, item), self.tracks[key]
    if self.anchor_pull > 0 and track.w_before is not None:
      item = dataclasses.replace(item, neighbour=track.w_before,
                                 neighbour_weight=self.anchor_pull)
    return item

  def _restore(self, items: list[inputs.Item], steps: int, lr: float | None = None) -> None:
    for size in sorted({self.tracks[k].lq_size for k, _ in items}):
      group = [it for k, it in items if self.tracks[k].lq_size == size]
      self.session.restore(group, lq_size=size, pool=self.pool, steps=steps, lr=lr,
                           quiet=True)

  def restore_window(self, faces: dict[Hashable, Sequence[inputs.Item]],
                     lq_sizes: dict[Hashable, int]) -> dict[str, bool]:
    """Restores one window: ``faces`` maps a track key to its faces in frame order (the
    items' references are used for a track's cold face only; later faces keep the track's).
    ``lq_sizes``: each track's LQ size. Returns face name -> restored.
    """
    pending = {k: list(v) for k, v in faces.items() if v}
    for k in pending:
      track = self.tracks.setdefault(k, Track(int(lq_sizes[k])))
      if self.anchor_every and track.since_cold >= self.anchor_every:
        # re-anchored: this window's first face is cold
        track.w_before, track.w_solved = track.w_solved, None
    # 1. cold faces, until every track has a solved code (or no faces left in the window)
    while True:
      cold = [(k, self._cold(k, v.pop(0))) for k, v in pending.items()
              if self.tracks[k].w_solved is None and v]
      if not cold:
        break
      self._restore(cold, self.cold_steps)
      for k, it in cold:
        track, w = self.tracks[k], self._solved(it.name)
        if w is not None:
          track.w_solved, track.since_cold = w, 1
          if track.reference is None:  # the first cold face; a re-anchored track keeps its own
            track.reference, track.reference_origin = it.reference, it.reference_origin
            if it.reference is None:
              track.reference, track.reference_origin = self._pool_choice(it.name)
          self.restored["cold"] += 1
    # 2. warm faces: every other face of the window, from the track's solved code
    warm = []
    for k, v in pending.items():
      track = self.tracks[k]
      for it in v:
        warm.append((k, dataclasses.replace(self._keep_reference(k, it), start=track.w_solved,
                                            neighbour=track.w_solved)))
    if warm:
      self._restore(warm, self.warm_steps, self.warm_lr)
    # 3. each track's solved code: its last face restored in this window
    for k, it in warm:
      self.tracks[k].since_cold += 1
      w = self._solved(it.name)
      if w is not None:
        self.tracks[k].w_solved = w
        self.restored["warm"] += 1
    names = [it.name for v in faces.values() for it in v]
    return {n: self.session.folder.done(n) for n in names}

