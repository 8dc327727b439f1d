"""Video end to end (sair_jax/pipeline/video.py), on the smoke preset's untrained networks:

* a real clip: the astronaut's face moving across a background, gone for three frames and back,
  with an AAC track and a variable frame rate, plus an unreadable clip beside it; dlib finds and
  describes the faces (skipped without dlib). The person who comes back keeps their track,
  frames without a face come out as they went in, frame count, timestamps and audio are kept;
* the known-answer clip of ``configs/video.py:smoke`` through ``sair_jax.main``, killed while
  writing a face, and resumed by the same command (in the test's process): nothing finished is
  redone, and the scores it prints are the restored frames' against the ground truth.
A few steps each (the mechanics, not the quality: benchmarks/video.py measures that).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import fixture
from sair_jax.configs import video as video_config
from sair_jax.pipeline import known_answer, networks, restore, video as video_flow
from sair_jax.pipeline.networks import SMOKE_G

av = pytest.importorskip("av")
from sair_jax.io import video  # noqa: E402  (after the skip: PyAV is the 'video' extra)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACE_FRAMES = [0, 1, 2, 3, 7, 8, 9, 10, 11]  # frames 4-6 have no face
PTS = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 15]  # ticks of 1/25 s: a variable rate


def _frames():
  """[12, 128, 192, 3] uint8: the astronaut (128 px, a ~44 px face) moving right by 4 px per
  frame over a still gradient (which the codec keeps within ~1/255), absent from frames 4-6."""
  y, x = np.mgrid[0:128, 0:192]
  background = np.stack([60 + x // 2, 90 + y // 2, 150 - x // 4], -1).astype(np.uint8)
  with Image.open(fixture("astronaut.png")) as im:
    face = np.asarray(im.convert("RGB").resize((128, 128), Image.LANCZOS))
  frames = []
  for t in range(12):
    frame = background.copy()
    if t in FACE_FRAMES:
      frame[:, 4 * t:4 * t + 128] = face
    frames.append(frame)
  return np.stack(frames)


def _packets(path, kind):
  with av.open(str(path)) as c:
    return [(p.pts, bytes(p)) for p in c.demux(getattr(c.streams, kind)[0]) if p.size]


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory, detector):
  root = tmp_path_factory.mktemp("video")
  (root / "clips").mkdir()
  (root / "refs").mkdir()
  video.write_clip(root / "clips" / "walk.mp4", _frames(), rate=25, pts=PTS, audio_seconds=0.7)
  (root / "clips" / "broken.mp4").write_text("not a video")
  np.save(root / "refs" / "walk.npy", np.random.default_rng(1).standard_normal(
      (SMOKE_G.n_latent, SMOKE_G.w_dim)).astype(np.float32))
  c = video_config.get_config()
  c.untrained = True
  c.data.video, c.data.references = str(root / "clips"), str(root / "refs")
  c.output = str(root / "out")
  c.solver.update({"steps": 4, "chunk": 2, "batch_size": 1})  # one compiled program
  c.loss.update({"histogram_start": 2, "mask_every": 2})
  # 3 frames away > max_gap; a cold face again once 4 were restored since the last
  c.video.update({"window": 4, "warm_steps": 2, "max_gap": 1, "anchor_every": 4})
  c.wild.min_face = 32.0  # the face is ~44 px; detection runs on a 4x copy
  engine_loads = []
  real = networks.load_networks
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(networks, "load_networks", lambda cfg: engine_loads.append(1) or real(cfg))
    manifest = restore.restore(c)
  assert len(engine_loads) == 1
  return root, c, manifest


def test_a_clip_is_restored_with_one_track_for_the_person_who_came_back(clip_run):
  root, _, manifest = clip_run
  rec = manifest["video"]["clips"]["walk"]
  (person,) = rec["people"]  # back after 3 frames (> max_gap): rejoined by the descriptor
  assert (person["person"], person["frames"], person["first"], person["last"]) == (0, 9, 0, 11)
  assert person["lq_size"] == 32 and person["reference"].endswith("walk.npy")
  raw, smoothed = person["landmark_jitter_px"]
  assert smoothed < raw  # the crops follow smoothed landmarks
  assert (rec["faces"], rec["faces_restored"], rec["frames_with_faces"]) == (9, 9, 9)
  # windows of frames 0-3 (4 faces), 4-7 (frame 7) and 8-11: frame 0 cold, 1-3 warm; 4 faces
  # since the cold one, so frame 7 is cold again (re-anchored); 8-11 warm from it
  assert (rec["cold_faces"], rec["warm_faces"]) == (2, 7)
  names = [video_flow.face_name("walk", 0, t) for t in FACE_FRAMES]
  assert sorted(manifest["finished"]) == names
  steps = manifest["steps"]
  cold = {names[0], names[4]}
  assert {steps[n] for n in cold} == {4} and {steps[n] for n in names if n not in cold} == {2}


def test_the_restored_clip_keeps_frames_timestamps_and_audio(clip_run):
  root, _, _ = clip_run
  src, out = root / "clips" / "walk.mp4", root / "out" / "restored_videos" / "walk.mp4"
  a, b = video.probe(src), video.probe(out)
  assert (b.frames, b.width, b.height, b.audio_streams) == (12, 192, 128, 1)
  assert b.variable_rate and abs(b.duration - a.duration) < 1e-6
  assert [f.pts * f.time_base for f in video.read_frames(out)] == \
      [f.pts * f.time_base for f in video.read_frames(src)]
  assert _packets(out, "audio") == _packets(src, "audio")  # copied, not re-encoded


def test_frames_without_a_face_pass_through_and_faces_are_replaced(clip_run):
  root, _, _ = clip_run
  src = [f.image.astype(np.float32) / 255 for f in video.read_frames(root / "clips" / "walk.mp4")]
  out = [f.image.astype(np.float32) / 255
         for f in video.read_frames(root / "out" / "restored_videos" / "walk.mp4")]
  for t in range(12):
    diff = np.abs(out[t] - src[t])
    if t in FACE_FRAMES:  # the untrained generator's face: nothing like the astronaut's
      assert diff[15:50, 4 * t + 47:4 * t + 82].mean() > 0.05, t  # the astronaut's face
    else:  # re-encoded only
      assert diff.mean() < 2 / 255, t


def test_an_unreadable_clip_is_one_line_and_a_rerun_skips_the_finished_clip(clip_run, capsys):
  root, c, manifest = clip_run
  broken = manifest["video"]["clips"]["broken"]["error"]
  assert broken.startswith(str(root / "clips" / "broken.mp4")) and "\n" not in broken
  out = root / "out" / "restored_videos" / "walk.mp4"
  before = out.stat().st_mtime_ns
  again = restore.restore(c)
  assert "already restored" in capsys.readouterr().err
  assert out.stat().st_mtime_ns == before
  assert again["video"]["clips"]["walk"] == manifest["video"]["clips"]["walk"]


# ----------------------------------------------------------------- the known-answer clip


SMOKE = ["--config=configs/video.py:smoke", "--config.solver.steps=8", "--config.solver.chunk=4",
         "--config.loss.histogram_start=4", "--config.loss.mask_every=4",
         "--config.video.warm_steps=4", "--config.video.known_answer_frames=4",
         "--config.video.window=2", "--config.solver.batch_size=1"]


def _main(out, fault):
  """The command with a fault injected (tests/fault_runner.py), from another folder."""
  cmd = [sys.executable, os.path.join(REPO, "tests", "fault_runner.py"), *map(str, fault), "--",
         *SMOKE, f"--config.output={out}"]
  return subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=900)


def test_the_known_answer_clip_resumes_after_a_kill_and_prints_its_table(tmp_path, capsys):
  out = tmp_path / "out"
  names = [video_flow.face_name(video_flow.KNOWN_ANSWER, 0, t) for t in range(4)]
  # killed half-way through writing frame 2 (the second window): frames 0-1 are finished
  r = _main(out, fault=("kill", f"restored/{names[2]}.png", 1))
  assert r.returncode == -9, r.stderr
  done = sorted(p.stem for p in (out / "restored").glob("[!.]*.png"))
  assert done == names[:2]
  first = {n: (out / "restored" / f"{n}.png").stat().st_mtime_ns for n in done}
  # the same command again (in this process: its programs come from the compilation cache)
  from test_main import parse_config  # the flags, parsed as sair_jax.main parses them
  restore.restore(parse_config(*SMOKE, f"--config.output={out}"))
  stdout = capsys.readouterr().out
  assert {n: (out / "restored" / f"{n}.png").stat().st_mtime_ns for n in done} == first
  m = json.loads((out / "manifest.json").read_text())
  assert sum(b["images"] for b in m["timings"]["batches"]) == 2  # frames 2 and 3 only
  assert m["steps"][names[0]] == 8 and {m["steps"][n] for n in names[1:]} == {4}
  scores = m["video"]["known_answer"]
  assert (scores["frames"], scores["cold_faces"], scores["warm_faces"]) == (4, 1, 3)
  # the printed table is the restored frames' scores against the clip's ground truth
  nets = networks.load_networks(video_config.get_config("smoke"))
  problem = known_answer.build_clip(nets.g, 4, 8, seed=0)
  from sair_jax.io.images import read_image
  restored = np.stack([read_image(out / "restored" / f"{n}.png") for n in names])
  want = video_flow.score_clip(problem, restored)
  assert scores["restored_psnr"] == pytest.approx(want["restored_psnr"], abs=1e-4)
  assert scores["restored_flicker"] == pytest.approx(want["restored_flicker"], rel=1e-4)
  lines = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[2:5]}
  assert lines["restored"] == [f"{want['restored_psnr']:.2f}", "dB",
                               f"{want['restored_flicker']:.2f}"]
  assert lines["bicubic"][0] == f"{want['bicubic_psnr']:.2f}"
  assert stdout.splitlines()[1].split() == ["PSNR", "flicker"]
  assert video.probe(out / "restored_videos" / f"{video_flow.KNOWN_ANSWER}.mp4").frames == 4


def test_settings_a_run_cannot_use_are_one_line(tmp_path):
  from sair_jax.errors import ConfigError, UserError
  c = video_config.get_config()
  c.video.window = 0
  with pytest.raises(ConfigError, match="config.video.window=0"):
    video_flow.check_settings(c)
  c = video_config.get_config()
  c.video.anchor_every = -1
  with pytest.raises(ConfigError, match="config.video.anchor_every=-1: must be >= 0"):
    video_flow.check_settings(c)
  c = video_config.get_config()
  c.video.anchor_pull = -0.5
  with pytest.raises(ConfigError, match="config.video.anchor_pull=-0.5: must be >= 0"):
    video_flow.check_settings(c)
  c = video_config.get_config()
  c.data.video = str(tmp_path / "nowhere")
  with pytest.raises(UserError, match="nowhere: no such file or folder"):
    restore.restore(c)
  assert not (pathlib.Path(c.output) / "manifest.json").exists()


def _plan(person):
  return video_flow.TrackPlan(person, np.arange(3), np.zeros((3, 68, 2)), 32, (1.0, 0.5))


def test_references_pair_by_clip_or_by_person_and_by_csv(tmp_path):
  refs = tmp_path / "refs"
  refs.mkdir()
  for name in ("talk", "talk_p1", "other"):
    np.save(refs / f"{name}.npy", np.zeros((2, 2), np.float32))
  c = video_config.get_config()
  c.data.references = str(refs)
  plans = [_plan(0), _plan(1)]
  got, problems = video_flow.pair_tracks(c, "talk", plans)
  assert got == {0: str(refs / "talk.npy"), 1: str(refs / "talk_p1.npy")} and not problems
  got, problems = video_flow.pair_tracks(c, "nobody", plans[:1])
  assert got == {}
  assert problems == [f"nobody: no reference for person 0 ({refs}/nobody.* or nobody_p0.*); "
                      "their 3 frame(s) are left as they are"]
  # a CSV: a clip's line for everyone in it, a person's line over it
  (tmp_path / "pairs.csv").write_text("clip,reference\ntalk,refs/other.npy\n"
                                      "talk_p1,refs/talk.npy\n")
  c.data.pairs = str(tmp_path / "pairs.csv")
  got, problems = video_flow.pair_tracks(c, "talk", plans)
  assert got == {0: str(refs / "other.npy"), 1: str(refs / "talk.npy")} and not problems
  (tmp_path / "pairs.csv").write_text("talk,refs/gone.npy\n")
  c.data.references = ""
  got, problems = video_flow.pair_tracks(c, "talk", plans[:1])
  assert got == {} and problems == [f"{tmp_path}/refs/gone.npy: reference of talk person 0 "
                                    "does not exist"]
