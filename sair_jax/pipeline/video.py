"""Video: clips and one reference photo in, the clips restored out (``configs/video.py``).

:func:`restore_videos` runs every clip of ``config.data.video`` (a file or a folder) through
one engine session; per clip, :func:`restore_clip`:

1. **Faces through time** (:func:`find_tracks`, streamed, cached in
   ``<output>/video/CLIP/tracks.json``): every frame's faces are found as photos' are
   (:func:`sair_jax.face.detect.find_faces`), described by dlib's face descriptor when it is
   installed, and linked into tracks, one per person, a person who leaves and comes back
   keeping their track (:func:`sair_jax.face.tracking.link_tracks`). Each track's landmarks
   are smoothed over time (:func:`sair_jax.face.tracking.smooth_landmarks`), so detector noise
   does not become jitter; the crop, and the paste-back mask made from it, follow the smoothed
   landmarks. Each track is restored at one LQ size, from its median face size.
2. **References** (:func:`pair_tracks`): by file name in ``data.references``, ``CLIP_pK.*``
   for person K of the clip, else ``CLIP.*`` for all of them; or a CSV (``data.pairs``:
   ``CLIP,reference`` or ``CLIP_pK,reference``); or the pool (``data.reference_pool``): a
   track's first face picks by ArcFace similarity, the others keep that choice.
3. **Warm starts along time** (:mod:`sair_jax.pipeline.temporal`): frames are decoded one at a
   time and gathered into windows of ``video.window`` consecutive frames; the faces of a window
   (every track together) are restored as one batch, each started from its track's last solved
   frame with the temporal term (``loss.temporal``), in ``video.warm_steps`` steps; a track's
   first face is restored cold, in ``solver.steps``.
4. **Paste and encode**: each frame gets its restored faces pasted back (``wild.paste_region``,
   ``wild.feather``) and is encoded into ``<output>/restored_videos/CLIP.mp4`` with its own
   timestamp (:class:`sair_jax.io.video.ClipWriter`: same frame count, rate, variable rates
   and duration; the audio streams copied packet for packet). Frames without a face are
   encoded as decoded.

Faces are named ``CLIP_pK_fNNNNNN`` (person K, frame N): ``restored/``, ``latents/`` and the
other per-image files of the output folder hold every face, which is what a rerun resumes
from: a killed run restarts, redoes detection from its cache, skips every face already
restored (warm-starting the next from the saved W+), and encodes the clip again. A clip whose
``restored_videos`` file was completed before is skipped. An unreadable clip is one line; the
other clips go on.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from sair_jax.errors import ConfigError, InputError, UserError
from sair_jax.face import align, detect, paste, tracking
from sair_jax.io import files, images, listing, tables, video
from sair_jax.metrics import video as video_metrics
from sair_jax.pipeline import inputs, known_answer, networks, outputs, progress, temporal, wild

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
VIDEOS_OUT = "restored_videos"  # <output>/restored_videos/CLIP.mp4
WORK = "video"  # <output>/video/CLIP/: tracks.json, done.json
SECTION = "video"  # the manifest's section
KNOWN_ANSWER = "known_answer_clip"  # the smoke clip's name


def face_name(clip: str, person: int, frame: int) -> str:
  return f"{clip}_p{person}_f{frame:06d}"


def check_settings(config) -> None:
  """Raises :class:`ConfigError` for a ``config.video`` value the flow cannot use."""
  v = config.video
  for field in ("window", "warm_steps"):
    if int(v[field]) < 1:
      raise ConfigError(f"config.video.{field}={v[field]}: must be a positive integer")
  if float(v.landmark_sigma) < 0:
    raise ConfigError(f"config.video.landmark_sigma={v.landmark_sigma}: must be >= 0 (frames)")
  if int(v.anchor_every) < 0:
    raise ConfigError(f"config.video.anchor_every={v.anchor_every}: must be >= 0 (0: never)")
  if float(v.anchor_pull) < 0:
    raise ConfigError(f"config.video.anchor_pull={v.anchor_pull}: must be >= 0 (0: none)")
  if int(v.max_gap) < 0 or int(v.min_track) < 1:
    raise ConfigError("config.video.max_gap must be >= 0 and config.video.min_track >= 1")
  if float(config.loss.temporal) < 0:
    raise ConfigError(f"config.loss.temporal={config.loss.temporal}: must be >= 0")


def warm_starts(config, session, pool: inputs.Pool | None = None) -> temporal.WarmStarts:
  """The clip's :class:`temporal.WarmStarts` as ``config`` sets it: ``solver.steps`` for cold
  faces, ``video.warm_steps`` at ``video.warm_lr`` (0: ``solver.lr``) for warm ones,
  ``video.anchor_every`` and ``video.anchor_pull``."""
  v = config.video
  return temporal.WarmStarts(session, cold_steps=int(config.solver.steps),
                             warm_steps=int(v.warm_steps), warm_lr=float(v.warm_lr) or None,
                             pool=pool, anchor_every=int(v.anchor_every),
                             anchor_pull=float(v.anchor_pull))


def list_clips(path: str) -> list[str]:
  """The clips ``config.data.video`` names: a file, or the videos of a folder (sorted).

  Raises:
    UserError: nothing there, or a folder without a video.
  """
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise UserError(f"{path}: no such file or folder (config.data.video)")
  found = listing.list_folder(path, VIDEO_EXTENSIONS, "config.data.video")
  clips = found.paths()
  if not clips:
    raise UserError(f"{path}: no videos ({', '.join(VIDEO_EXTENSIONS)}) found")
  return clips


# ------------------------------------------------------------------------------------------
# 1. Faces through time
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrackPlan:
  """One person of a clip as it is restored: smoothed landmarks and one LQ size."""
  person: int
  frames: np.ndarray  # [n] frame indices
  landmarks: np.ndarray  # [n, 68, 2] smoothed
  lq_size: int
  jitter: tuple[float, float]  # landmark jitter (px) as detected and after smoothing

  def at(self, frame: int) -> np.ndarray | None:
    i = int(np.searchsorted(self.frames, frame))
    return self.landmarks[i] if i < len(self.frames) and self.frames[i] == frame else None


def _describer():
  """dlib's face descriptor of an aligned face ([S, S, 3] in [0, 1] -> [128] or None), or None
  when dlib's descriptor model is not installed (tracks are then linked by position only)."""
  from sair_jax.metrics import identity
  if not identity.judge_available():
    return None
  judge = identity.default_judge()
  return judge.descriptor


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
  """A frame as players show it (``rotation``: the clip's display rotation, degrees)."""
  return np.rot90(image, rotation // 90) if rotation % 360 else image


def detect_frames(path: str, *, resolution: int, min_face: float, min_score: float,
                  detector, describe=None, rotation: int = 0,
                  log=outputs.log) -> tuple[list, int]:
  """Every frame's faces as :class:`tracking.Detection` lists (streamed: one frame in memory),
  found in the frame as it is shown (``rotation``: the clip's display rotation).

  Returns ``(detections per frame, frames)``. ``describe``: aligned face -> descriptor, or
  None.
  """
  per_frame, n, t0 = [], 0, time.perf_counter()
  for frame in video.read_frames(path):
    frame = frame._replace(image=upright(frame.image, rotation))
    search = detect.find_faces(frame.image, detector, resolution=resolution, min_face=min_face,
                               min_score=min_score, name=f"{path} frame {frame.index}")
    dets = []
    for face in search.faces:
      emb = None
      if describe is not None:
        emb = describe(align.align_face(frame.image, face.landmarks, 150))
      dets.append(tracking.Detection(frame.index, face.landmarks, face.score,
                                     None if emb is None else np.asarray(emb, np.float64)))
    per_frame.append(dets)
    n += 1
    if n % 100 == 0:
      log(f"{path}: faces found in {n} frames ({time.perf_counter() - t0:.0f}s)")
  return per_frame, n


def plan_tracks(per_frame: list, config, resolution: int) -> list[TrackPlan]:
  """Links detections into tracks, smooths each one's landmarks, picks its LQ size."""
  v = config.video
  tracks = tracking.link_tracks(per_frame, max_gap=int(v.max_gap), max_jump=float(v.max_jump),
                                min_similarity=float(v.min_similarity),
                                min_length=int(v.min_track))
  plans = []
  for t in tracks:
    smooth = tracking.smooth_landmarks(t.frames, t.landmarks, float(v.landmark_sigma))
    qsize = float(np.median(t.qsize()))
    plans.append(TrackPlan(t.id, t.frames, smooth, detect.lq_size_for(qsize, resolution),
                           (tracking.jitter(t.landmarks, t.frames),
                            tracking.jitter(smooth, t.frames))))
  return plans


def _signature(path: str, config, resolution: int) -> dict:
  st = os.stat(path)
  v, w = config.video, config.wild
  return {"clip": os.path.abspath(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
          "resolution": resolution, "min_face": float(w.min_face),
          "min_score": float(w.min_score),
          **{k: float(v[k]) for k in ("max_gap", "max_jump", "min_similarity", "min_track",
                                      "landmark_sigma")}}


def find_tracks(path: str, work: str, config, *, resolution: int, detector, describe,
                rotation: int = 0, log=outputs.log) -> tuple[list[TrackPlan], int]:
  """:func:`detect_frames` + :func:`plan_tracks`, cached in ``work``/tracks.json (reused when
  the clip and the detection settings are the same)."""
  cache = os.path.join(work, "tracks.json")
  sig = _signature(path, config, resolution)
  if os.path.isfile(cache):
    try:
      saved = files.read_json(cache)
      if saved.get("signature") == sig:
        plans = [TrackPlan(t["person"], np.asarray(t["frames"], np.int64),
                           np.asarray(t["landmarks"], np.float64), int(t["lq_size"]),
                           tuple(t["jitter"])) for t in saved["tracks"]]
        return plans, int(saved["frames"])
    except (files.UnreadableFileError, KeyError, TypeError, ValueError):
      log(f"{cache}: unreadable; finding the faces again")
  log(f"{path}: finding faces in every frame")
  per_frame, n = detect_frames(path, resolution=resolution, min_face=float(config.wild.min_face),
                               min_score=float(config.wild.min_score), detector=detector,
                               describe=describe, rotation=rotation, log=log)
  plans = plan_tracks(per_frame, config, resolution)
  os.makedirs(work, exist_ok=True)
  files.write_json(cache, {"signature": sig, "frames": n, "tracks": [
      {"person": p.person, "frames": p.frames.tolist(), "landmarks": p.landmarks.tolist(),
       "lq_size": p.lq_size, "jitter": list(p.jitter)} for p in plans]})
  return plans, n


# ------------------------------------------------------------------------------------------
# 2. References
# ------------------------------------------------------------------------------------------


def _pairs_csv(config) -> dict[str, str]:
  path = config.data.pairs
  out = {}
  for row in tables.read_rows(path, what="config.data.pairs",
                             header_words=inputs.HEADER_WORDS + ("clip",)):
    if not row.cell(1) or len(row.cells) > 2:
      raise UserError(f"{path}: line {row.line} needs 'clip,reference' or "
                      f"'clip_pK,reference' ({inputs.QUOTE_HINT})")
    out[listing.stem(row.cell(0))] = inputs.csv_reference(row.cell(1), path,
                                                          config.data.references)
  return out


def pair_tracks(config, clip: str, plans: list[TrackPlan]) -> tuple[dict, list[str]]:
  """Each person's reference path (``data.pairs`` or ``data.references``; module docstring);
  ``({}, [])`` in pool mode. Returns ``(person -> path, problem lines)``."""
  data = config.data
  if data.reference_pool and not data.pairs:
    return {}, []
  refs, problems = {}, []
  if data.pairs:
    rows = _pairs_csv(config)
    for p in plans:
      ref = rows.get(f"{clip}_p{p.person}", rows.get(clip))
      if ref:
        refs[p.person] = ref
  else:
    found = listing.list_folder(data.references, images.IMAGE_EXTENSIONS
                                + inputs.LATENT_EXTENSIONS, "config.data.references")
    for p in plans:
      ref, clash = found.find([f"{clip}_p{p.person}", clip])
      if clash:
        problems.append(clash)
      elif ref:
        refs[p.person] = ref
  for p in plans:
    if p.person not in refs:
      where = data.pairs or os.path.join(data.references, f"{clip}.* or {clip}_p{p.person}.*")
      problems.append(f"{clip}: no reference for person {p.person} ({where}); their "
                      f"{len(p.frames)} frame(s) are left as they are")
    elif not os.path.isfile(refs[p.person]):
      problems.append(f"{refs.pop(p.person)}: reference of {clip} person {p.person} does not "
                      "exist")
  return refs, problems


# ------------------------------------------------------------------------------------------
# 3-4. Restore, paste, encode
# ------------------------------------------------------------------------------------------


class _Window:
  """Consecutive decoded frames waiting for their faces (at most ``video.window``)."""

  def __init__(self):
    self.frames: list[video.Frame] = []

  def faces(self, clip: str, path: str, plans: list[TrackPlan], references: dict | None):
    """The window's faces as the engine's records, per person, in frame order."""
    out, sizes = {}, {}
    for p in plans:
      if references is not None and p.person not in references:
        continue
      for f in self.frames:
        lm = p.at(f.index)
        if lm is None:
          continue
        crop = images.to_uint8(align.align_face(f.image, lm, p.lq_size))
        ref, origin = (None, "") if references is None else references[p.person]
        out.setdefault(p.person, []).append(inputs.Item(
            face_name(clip, p.person, f.index), crop, ref,
            origin=f"{path} (frame {f.index}, person {p.person})", reference_origin=origin))
        sizes[p.person] = p.lq_size
    return out, sizes


def _paste(frame: video.Frame, plans: list[TrackPlan], folder: outputs.RunFolder, clip: str,
           region: str, feather: float) -> tuple[np.ndarray, int]:
  """The frame with its restored faces pasted back (as decoded when it has none)."""
  h, w = frame.image.shape[:2]
  faces, transforms = [], []
  for p in plans:
    lm = p.at(frame.index)
    name = face_name(clip, p.person, frame.index)
    if lm is None or not folder.done(name):
      continue
    faces.append(images.read_image(folder.path("restored", name, ".png")))
    transforms.append(align.align_transform(lm, (h, w), p.lq_size))
  if not faces:
    return frame.image, 0
  return paste.paste_faces(frame.image, faces, transforms, region=region,
                           feather=feather), len(faces)


def restore_clip(session, path: str, *, detector, describe, pool: inputs.Pool | None,
                 log=outputs.log) -> dict:
  """Restores one clip (module docstring, steps 1-4); returns its manifest record.

  Raises:
    video.VideoError: the clip cannot be read (one line naming it).
  """
  config, g = session.config, session.nets.g
  clip = listing.stem(path)
  work = os.path.join(session.root, WORK, clip)
  out_path = os.path.join(session.root, VIDEOS_OUT, clip + ".mp4")
  info = video.probe(path)
  sig = _signature(path, config, g.resolution)
  done_file = os.path.join(work, "done.json")
  if os.path.isfile(out_path) and os.path.isfile(done_file):
    try:
      record = files.read_json(done_file)
      if record.get("signature") == sig:
        log(f"{path}: already restored -> {out_path}")
        return record["record"]
    except files.UnreadableFileError:
      pass
  t0 = time.perf_counter()
  plans, n_frames = find_tracks(path, work, config, resolution=g.resolution, detector=detector,
                                describe=describe, rotation=info.rotation, log=log)
  faces_total = sum(len(p.frames) for p in plans)
  log(f"{path}: {info.width}x{info.height}, {n_frames} frames, {len(plans)} person(s), "
      f"{faces_total} face(s)")
  references, problems = (None, []) if pool is not None else pair_tracks(config, clip, plans)
  for line in problems:
    log(line)
  if references is not None:
    aligned, bad = wild.align_references(
        sorted(set(references.values())), os.path.join(work, "references"),
        resolution=g.resolution, min_face=float(config.wild.min_face),
        min_score=float(config.wild.min_score), detector=detector)
    for ref, line in bad.items():
      problems.append(line)
      log(line)
    references = {k: (aligned[r], r) for k, r in references.items() if r in aligned}
  v = config.video
  warm = warm_starts(config, session, pool)
  restored, with_faces, done_frames = 0, 0, 0
  t_work, clock = time.perf_counter(), progress.CompileClock()
  window = _Window()
  os.makedirs(os.path.dirname(out_path), exist_ok=True)

  def flush(writer):
    nonlocal restored, with_faces, done_frames
    if not window.frames:
      return
    faces, sizes = window.faces(clip, path, plans, references)
    if faces:
      warm.restore_window(faces, sizes)
    for f in window.frames:
      image, n = _paste(f, plans, session.folder, clip, config.wild.paste_region,
                        float(config.wild.feather))
      writer.write(upright(image, -info.rotation), f.pts, f.time_base)
      restored += n
      with_faces += n > 0
    done_frames += len(window.frames)
    window.frames = []
    p = progress.progress(done_frames, n_frames, time.perf_counter() - t_work, clock.seconds(),
                          unit="frame")
    log(f"{clip}: {p.line}")

  with video.ClipWriter(out_path, source=path, like=info, crf=int(v.crf)) as writer:
    for frame in video.read_frames(path):
      window.frames.append(frame._replace(image=upright(frame.image, info.rotation)))
      if len(window.frames) == int(v.window):
        flush(writer)
    flush(writer)
  record = {
      "clip": path, "output": os.path.join(VIDEOS_OUT, clip + ".mp4"), "frames": n_frames,
      "size": [info.height, info.width], "duration": info.duration,
      "average_rate": None if info.average_rate is None else str(info.average_rate),
      "variable_rate": info.variable_rate, "audio_streams": info.audio_streams,
      "people": [{"person": p.person, "frames": len(p.frames), "first": int(p.frames[0]),
                  "last": int(p.frames[-1]), "lq_size": p.lq_size,
                  "reference": None if references is None or p.person not in references
                  else references[p.person][1],
                  "landmark_jitter_px": [round(j, 3) for j in p.jitter]} for p in plans],
      "faces": faces_total, "faces_restored": restored, "frames_with_faces": with_faces,
      "cold_faces": warm.restored["cold"], "warm_faces": warm.restored["warm"],
      "problems": problems, "seconds": round(time.perf_counter() - t0, 3)}
  files.write_json(done_file, {"signature": sig, "record": record})
  log(f"{path}: {restored} of {faces_total} face(s) restored in {with_faces} of {n_frames} "
      f"frame(s) -> {out_path}")
  return record


def _pool(config, resolution: int, detector, root: str) -> inputs.Pool | None:
  data = config.data
  if not data.reference_pool or data.pairs:
    return None
  found = listing.list_folder(data.reference_pool, images.IMAGE_EXTENSIONS,
                              "config.data.reference_pool")
  aligned, bad = wild.align_references(found.paths(), os.path.join(root, "reference_pool"),
                                       resolution=resolution,
                                       min_face=float(config.wild.min_face),
                                       min_score=float(config.wild.min_score), detector=detector)
  for line in bad.values():
    outputs.log(line)
  if not aligned:
    raise UserError(f"{data.reference_pool}: no usable reference in the pool")
  return inputs.Pool(tuple(aligned), tuple(aligned.values()))


def restore_videos(config, engine=None, *, detector=None, describe=None) -> dict:
  """Restores every clip of ``config.data.video`` (module docstring); returns the manifest.

  ``detector``: a landmark detector (default dlib's); ``describe``: aligned face ->
  descriptor for re-identifying people (default dlib's face descriptor when installed; tracks
  are linked by position only without). The manifest's ``video`` section has one record per
  clip (frames, people with their frames, LQ size, reference and landmark jitter, faces
  restored, cold and warm faces, problems, seconds) or the line saying why it failed.
  """
  from sair_jax.pipeline.engine import Engine
  check_settings(config)
  clips = list_clips(config.data.video)
  if not (config.data.pairs or config.data.references or config.data.reference_pool):
    raise ConfigError("videos need references: config.data.references (a folder, paired by "
                      "clip name), config.data.pairs (a CSV) or config.data.reference_pool")
  networks.check_checkpoints(config)
  engine = engine or Engine(config)
  if detector is None:
    from sair_jax.face import landmarks
    detector = landmarks.default_detector()
  if describe is None:
    describe = _describer()
  records = {}
  with engine.session() as session:
    pool = _pool(config, engine.nets.g.resolution, detector, os.path.join(session.root, WORK))
    for path in clips:
      try:
        records[listing.stem(path)] = restore_clip(session, path, detector=detector,
                                                   describe=describe, pool=pool)
      except InputError as e:  # an unreadable clip: one line, the others go on
        outputs.log(f"skipping {path}: {e}")
        records[listing.stem(path)] = {"clip": path, "error": str(e)}
      session.record(SECTION, {"clips": records})
  return session.manifest


# ------------------------------------------------------------------------------------------
# The known-answer clip (the smoke preset)
# ------------------------------------------------------------------------------------------


def score_clip(problem: known_answer.Problem, restored: np.ndarray) -> dict:
  """Mean PSNR and flicker (:func:`sair_jax.metrics.video.flicker`) of restored frames
  [T, S, S, 3], of bicubic upsampling and of the (still) reference, against the clip's
  ground truth."""
  import jax
  scores = known_answer.known_answer_psnr(restored, problem.gt, problem.lq, problem.ref)
  up = np.clip(np.asarray(jax.image.resize(problem.lq.astype(np.float32), problem.gt.shape,
                                           "cubic")), 0.0, 1.0)
  scores.update(frames=len(problem.gt),
                restored_flicker=video_metrics.flicker(restored, problem.gt),
                bicubic_flicker=video_metrics.flicker(up, problem.gt),
                gt_frame_difference=video_metrics.frame_difference(problem.gt))
  return scores


def format_clip_scores(scores: dict) -> str:
  """The known-answer clip's table (several lines)."""
  lines = [f"known-answer clip: {scores['frames']} frames, against the ground truth "
           "(flicker 1.00 = as steady as the truth)",
           f"  {'':<10} {'PSNR':>9} {'flicker':>8}"]
  for label in ("restored", "bicubic", "reference"):
    fl = scores.get(f"{label}_flicker")
    lines.append(f"  {label:<10} {scores[label + '_psnr']:6.2f} dB "
                 + ("     n/a" if fl is None else f"{fl:8.2f}"))
  return "\n".join(lines)


def restore_known_answer_clip(config, engine=None) -> dict:
  """The video smoke preset: restores a clip whose answer is known and prints its table.

  The clip (:func:`sair_jax.pipeline.known_answer.build_clip`, ``video.known_answer_frames``
  frames of the untrained generator) is one track of aligned faces held in memory: restored
  window by window with warm starts (:mod:`sair_jax.pipeline.temporal`), written as
  ``restored_videos/known_answer_clip.mp4``, and scored (mean PSNR, flicker); the scores are
  printed (stdout) and recorded as the manifest's ``video`` section.
  """
  from sair_jax.pipeline.engine import Engine
  check_settings(config)
  engine = engine or Engine(config)
  g, v = engine.nets.g, config.video
  lq_size = int(config.data.lq_size)
  factor = inputs.lq_factor(lq_size, g.resolution)
  problem = known_answer.build_clip(g, int(v.known_answer_frames), factor,
                                    seed=int(config.solver.seed))
  with engine.session() as session:
    warm = warm_starts(config, session)
    names = [face_name(KNOWN_ANSWER, 0, t) for t in range(len(problem.gt))]
    t0 = time.perf_counter()
    for start in range(0, len(names), int(v.window)):
      frames = range(start, min(start + int(v.window), len(names)))
      warm.restore_window({0: [inputs.Item(names[t], problem.lq[t], problem.w_ref[t],
                                           problem.gt[t], origin=f"known-answer frame {t}",
                                           reference_origin="known-answer reference")
                               for t in frames]}, {0: lq_size})
      outputs.log(f"{KNOWN_ANSWER}: {frames[-1] + 1}/{len(names)} frames")
    done = [session.folder.done(n) for n in names]
    if not all(done):
      raise UserError(f"{session.root}: {done.count(False)} known-answer frame(s) were not "
                      "restored (see the manifest's failures)")
    restored = np.stack([images.read_image(session.folder.path("restored", n, ".png"))
                         for n in names])
    out = os.path.join(session.root, VIDEOS_OUT, KNOWN_ANSWER + ".mp4")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    video.write_clip(out, restored, rate=int(v.known_answer_rate))
    scores = score_clip(problem, restored)
    scores.update(cold_faces=warm.restored["cold"], warm_faces=warm.restored["warm"],
                  cold_steps=int(config.solver.steps), warm_steps=int(v.warm_steps),
                  warm_lr=float(v.warm_lr) or float(config.solver.lr),
                  window=int(v.window), anchor_every=int(v.anchor_every),
                  anchor_pull=float(v.anchor_pull),
                  temporal_weight=float(config.loss.temporal),
                  seconds=round(time.perf_counter() - t0, 3))
    print(format_clip_scores(scores), flush=True)
    session.record(SECTION, {"known_answer": scores})
  return session.manifest
