"""Streaming video (sair_jax.io.video) on tiny clips made here: timestamps, frame counts,
durations and audio kept through a decode/encode round trip; one-line errors; atomic writes."""

import dataclasses
import fractions
import os
import sys

import numpy as np
import pytest

av = pytest.importorskip("av")

from sair_jax.io import files, video  # noqa: E402

H, W = 48, 64
RATE = 25
VFR_PTS = [0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 15, 16, 17, 20]  # ticks of 1/25 s: uneven gaps
TONE_SECONDS = 0.9


def _images(n, h=H, w=W):
  """Smooth moving gradients with saturated colours: compress well, and a wrong YUV matrix
  or range on the way in or out would show."""
  y, x = np.mgrid[0:h, 0:w].astype(np.float64)
  return [np.stack([40 + 2.5 * x + 3 * i, 30 + 3 * y + 2 * i,
                    150 + 60 * np.sin(x / 9 + i / 3)], -1).astype(np.uint8) for i in range(n)]


def _mean_error(a, b):
  return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean()) / 255


def _one_line_naming(error, path):
  message = str(error.value)
  assert "\n" not in message and str(path) in message
  return message


def _audio_packets(path):
  """[(seconds, bytes)] of every audio packet of a clip, in file order."""
  with av.open(str(path)) as container:
    return [(float(p.pts * p.time_base), bytes(p))
            for p in container.demux(*container.streams.audio) if p.size]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  """A variable-rate clip with a tone, and a constant-rate one without audio."""
  folder = tmp_path_factory.mktemp("clips")
  vfr, cfr = folder / "vfr.mp4", folder / "cfr.mp4"
  video.write_clip(vfr, _images(len(VFR_PTS)), rate=RATE, pts=VFR_PTS,
                   audio_seconds=TONE_SECONDS)
  video.write_clip(cfr, _images(15), rate=RATE)
  return {"vfr": vfr, "cfr": cfr}


# ------------------------------------------------------------------------------------- probe


def test_probe_constant_and_variable_rate(clips):
  cfr = video.probe(clips["cfr"])
  assert (cfr.width, cfr.height, cfr.frames, cfr.audio_streams) == (W, H, 15, 0)
  assert not cfr.variable_rate
  assert cfr.average_rate == RATE and cfr.duration == pytest.approx(15 / RATE)
  assert cfr.path == str(clips["cfr"])
  vfr = video.probe(clips["vfr"])
  assert (vfr.width, vfr.height, vfr.frames, vfr.audio_streams) == (W, H, len(VFR_PTS), 1)
  assert vfr.variable_rate
  # the last frame is taken to last as long as the interval before it (three ticks)
  assert vfr.duration == pytest.approx((VFR_PTS[-1] + 3) / RATE)
  assert vfr.average_rate == pytest.approx(len(VFR_PTS) / vfr.duration)
  assert isinstance(vfr.time_base, fractions.Fraction)


def test_read_frames_gives_rgb_frames_at_their_timestamps(clips):
  frames = list(video.read_frames(clips["vfr"]))
  assert [f.index for f in frames] == list(range(len(VFR_PTS)))
  assert [f.pts * f.time_base for f in frames] == [fractions.Fraction(p, RATE) for p in VFR_PTS]
  for frame, written in zip(frames, _images(len(VFR_PTS))):
    assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
    assert _mean_error(frame.image, written) < 3 / 255


def test_read_frames_from_start(clips):
  every = [(f.index, f.pts) for f in video.read_frames(clips["vfr"])]
  later = list(video.read_frames(clips["vfr"], start=5))
  assert [(f.index, f.pts) for f in later] == every[5:]
  np.testing.assert_array_equal(later[0].image, next(iter(video.read_frames(clips["vfr"],
                                                                             start=5))).image)
  assert not list(video.read_frames(clips["vfr"], start=len(VFR_PTS)))
  with pytest.raises(ValueError):
    next(video.read_frames(clips["vfr"], start=-1))


# -------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
def test_round_trip_keeps_count_timestamps_duration_and_audio(clips, tmp_path, ext):
  """Decode, invert, encode with the source's audio: the output has the frames, timestamps,
  duration, size and audio packets of the input (Matroska: all shifted by one constant)."""
  src, out = clips["vfr"], tmp_path / ("out" + ext)
  frames = list(video.read_frames(src))
  with video.ClipWriter(out, str(src)) as writer:
    for frame in frames:
      writer.write(255 - frame.image, frame.pts, frame.time_base)
  info_in, info_out = video.probe(src), video.probe(out)
  assert (info_out.width, info_out.height, info_out.frames) == (W, H, len(frames))
  assert info_out.variable_rate and info_out.audio_streams == 1
  assert abs(info_out.duration - info_in.duration) < 1 / RATE
  back = list(video.read_frames(out))
  times_in = np.array([float(f.pts * f.time_base) for f in frames])
  times_out = np.array([float(f.pts * f.time_base) for f in back])
  audio_in, audio_out = _audio_packets(src), _audio_packets(out)
  assert [b for _, b in audio_out] == [b for _, b in audio_in]  # bytes unchanged
  if ext == ".mkv":  # milliseconds, shifted so that the AAC priming starts at 0
    shift = times_out[0] - times_in[0]
    assert shift >= 0
    np.testing.assert_allclose(times_out - shift, times_in, atol=1e-3)
    np.testing.assert_allclose([t for t, _ in audio_out], [t + shift for t, _ in audio_in],
                               atol=1e-3)
  else:  # the source's time base: the very same numbers
    assert [f.pts for f in back] == [f.pts for f in frames]
    assert back[0].time_base == frames[0].time_base
    assert [t for t, _ in audio_out] == [t for t, _ in audio_in]
  for got, frame in zip(back, frames):
    assert _mean_error(got.image, 255 - frame.image) < 3 / 255


def test_clips_without_audio(clips, tmp_path):
  for source, copy_audio in ((clips["cfr"], True), (clips["vfr"], False)):
    out = tmp_path / f"{source.stem}_{copy_audio}.mp4"
    with video.ClipWriter(out, source, copy_audio=copy_audio) as writer:
      for frame in video.read_frames(source):
        writer.write(frame.image, frame.pts, frame.time_base)
    info = video.probe(out)
    assert info.audio_streams == 0 and info.frames == video.probe(source).frames
    with av.open(str(out)) as container:
      assert len(container.streams) == 1


def test_display_rotation_is_reported_and_kept(clips, tmp_path):
  """Phone clips carry a display rotation: probe reports it, frames come as stored, and a
  re-encoding keeps it."""
  upright = video.probe(clips["cfr"])
  assert upright.rotation == 0
  turned = tmp_path / "turned.mp4"
  with video.ClipWriter(turned, like=dataclasses.replace(upright, rotation=270)) as writer:
    for frame in video.read_frames(clips["cfr"]):
      writer.write(frame.image, frame.pts, frame.time_base)
  assert video.probe(turned).rotation == 270
  assert next(video.read_frames(turned)).image.shape == (H, W, 3)
  copy = tmp_path / "copy.mkv"
  with video.ClipWriter(copy, turned) as writer:
    for frame in video.read_frames(turned):
      writer.write(frame.image, frame.pts, frame.time_base)
  assert video.probe(copy).rotation == 270


def test_odd_size_keeps_its_size(tmp_path):
  """yuv420p needs an even size: an odd one is written in yuv444p, pixels and size exact."""
  images = _images(6, h=47, w=63)
  video.write_clip(tmp_path / "odd.mp4", images)
  info = video.probe(tmp_path / "odd.mp4")
  assert (info.width, info.height, info.frames) == (63, 47, 6)
  with av.open(str(tmp_path / "odd.mp4")) as container:
    assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
  for frame, written in zip(video.read_frames(tmp_path / "odd.mp4"), images):
    assert _mean_error(frame.image, written) < 3 / 255


def test_write_takes_floats_missing_pts_and_other_time_bases(tmp_path):
  images = _images(4)
  like = video.ClipInfo(path="", width=W, height=H, frames=0,
                        time_base=fractions.Fraction(1, 12800),
                        average_rate=fractions.Fraction(RATE), duration=0.0, audio_streams=0,
                        variable_rate=False)
  out = tmp_path / "mixed.mp4"
  with video.ClipWriter(out, like=like) as writer:
    writer.write(images[0].astype(np.float32) / 255, None, None)  # the first: at 0
    writer.write(images[1], None, None)  # one nominal interval (512 ticks) later
    writer.write(images[2], 120, fractions.Fraction(1, 1000))  # 0.12 s -> 1536 ticks
    writer.write(images[3], 1536, fractions.Fraction(1, 12800))  # not after: one tick on
  back = list(video.read_frames(out))
  assert [f.pts for f in back] == [0, 512, 1536, 1537]
  assert _mean_error(back[0].image, images[0]) < 3 / 255
  with pytest.raises(files.OutputError, match="no frames"):
    with video.ClipWriter(tmp_path / "shape.mp4", like=like) as writer:
      with pytest.raises(ValueError, match="shape"):
        writer.write(np.zeros((H + 2, W, 3), np.uint8), 0, like.time_base)
  assert sorted(os.listdir(tmp_path)) == ["mixed.mp4"]
  with pytest.raises(ValueError, match="closed"):
    writer.write(images[0], 0, like.time_base)


# ------------------------------------------------------------------------------------ errors


def test_errors_name_the_file_in_one_line(clips, tmp_path):
  text = tmp_path / "notes.mp4"
  text.write_text("not a video\n")
  empty = tmp_path / "empty.mp4"
  empty.write_bytes(b"")
  cases = {tmp_path / "missing.mp4": "no such file", text: "not a readable video",
           empty: "empty file", tmp_path: "directory"}
  for path, phrase in cases.items():
    for call in (video.probe, lambda p: next(video.read_frames(p)),
                 lambda p: video.ClipWriter(tmp_path / "out.mp4", p)):
      with pytest.raises(video.VideoError) as error:
        call(path)
      assert phrase in _one_line_naming(error, path)
  assert not os.path.exists(tmp_path / "out.mp4")
  assert not [n for n in os.listdir(tmp_path) if n.endswith(files.TEMP_SUFFIX)]


def test_without_pyav_the_error_names_the_extra(clips, monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
  with pytest.raises(video.VideoError) as error:
    video.probe(clips["cfr"])
  assert "'video' extra" in _one_line_naming(error, clips["cfr"])
  with pytest.raises(files.OutputError) as error:
    video.write_clip(tmp_path / "new.mp4", _images(1))
  assert "'video' extra" in _one_line_naming(error, tmp_path / "new.mp4")
  assert os.listdir(tmp_path) == []


def test_no_video_stream(tmp_path):
  path = tmp_path / "tone.m4a"
  with av.open(str(path), "w", format="mp4") as container:
    stream = container.add_stream("aac", rate=16000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                       layout="mono")
    frame.sample_rate, frame.pts = 16000, 0
    for packet in stream.encode(frame) + stream.encode(None):
      container.mux(packet)
  with pytest.raises(video.VideoError) as error:
    video.probe(path)
  assert "no video stream" in _one_line_naming(error, path)


def test_truncated_clip(clips, tmp_path):
  """Cut in half (the index is at the front): probe refuses it; read_frames yields the frames
  it can and then names the frame where the file ends. Cut inside the header: both refuse."""
  data = clips["vfr"].read_bytes()
  half = tmp_path / "half.mp4"
  half.write_bytes(data[:len(data) // 2])
  with pytest.raises(video.VideoError) as error:
    video.probe(half)
  assert "truncated" in _one_line_naming(error, half)
  got = []
  with pytest.raises(video.VideoError) as error:
    for frame in video.read_frames(half):
      got.append(frame.index)
  assert 0 < len(got) < len(VFR_PTS) and got == list(range(len(got)))
  assert f"frame {len(got)}:" in _one_line_naming(error, half)
  head = tmp_path / "head.mp4"
  head.write_bytes(data[:100])
  for call in (video.probe, lambda p: next(video.read_frames(p))):
    with pytest.raises(video.VideoError) as error:
      call(head)
    _one_line_naming(error, head)


def test_writer_settings_errors(clips, tmp_path):
  with pytest.raises(files.OutputError) as error:
    video.ClipWriter(tmp_path / "out.avi", clips["cfr"])
  assert ".mp4" in _one_line_naming(error, tmp_path / "out.avi")
  with pytest.raises(ValueError):
    video.ClipWriter(tmp_path / "out.mp4")
  with pytest.raises(files.OutputError) as error:
    video.ClipWriter(tmp_path / "no_folder" / "out.mp4", clips["cfr"])
  _one_line_naming(error, tmp_path / "no_folder" / "out.mp4")


# ---------------------------------------------------------------------------- atomic writes


def test_interrupted_writer_leaves_nothing(clips, tmp_path):
  """While writing, only a temporary sibling that files.remove_temps knows exists; an exception
  removes it and leaves an older file under the real name untouched."""
  out = tmp_path / "out.mp4"
  with pytest.raises(RuntimeError):
    with video.ClipWriter(out, clips["vfr"]) as writer:
      for frame in video.read_frames(clips["vfr"]):
        writer.write(frame.image, frame.pts, frame.time_base)
        if frame.index == 5:
          temps = os.listdir(tmp_path)
          assert len(temps) == 1 and temps[0].startswith(".out.mp4.")
          assert temps[0].endswith(files.TEMP_SUFFIX)
          raise RuntimeError("killed")
  assert os.listdir(tmp_path) == []
  out.write_bytes(b"the older file")
  with pytest.raises(RuntimeError):
    with video.ClipWriter(out, clips["cfr"]) as writer:
      writer.write(_images(1)[0], 0, fractions.Fraction(1, RATE))
      raise RuntimeError("killed")
  assert os.listdir(tmp_path) == ["out.mp4"] and out.read_bytes() == b"the older file"
  writer = video.ClipWriter(out, clips["cfr"])  # a run killed outright: remove_temps cleans up
  assert files.remove_temps(tmp_path) == 1
  writer._abort()  # pylint: disable=protected-access
  assert out.read_bytes() == b"the older file"
