"""Reading and writing video clips one frame at a time, with PyAV (FFmpeg inside its wheels).

PyAV is the optional extra ``video`` (``pip install 'sair_jax[video]'``); this module imports
without it and says so, in one line, when a clip is read or written.

* **Reading** (:func:`probe`, :func:`read_frames`): the first video stream of any container
  FFmpeg opens. Frames come out one at a time, in presentation order, as [H, W, 3] uint8 RGB,
  converted with the YUV matrix and range the stream is tagged with (untagged: BT.601,
  limited range, FFmpeg's default). Pixels are given as stored: the display rotation that
  phone clips carry is reported (:attr:`ClipInfo.rotation`), not applied, and the writer
  copies it, so a re-encoded clip shows the way its source did. A clip shorter than its header
  says (a download or copy cut short) is refused by :func:`probe`; :func:`read_frames` yields
  the frames before the cut, then raises naming the frame where the file ends.
* **Writing** (:class:`ClipWriter`): H.264 (libx264, ``crf`` 18) in .mp4, .mkv or .mov (the
  container follows the extension; .mp4 and .mov get their index at the front, ``faststart``).
  Every frame keeps the timestamp it is written with, so a variable frame rate and the
  duration of the source are kept; the audio streams of the source are copied packet by
  packet (the bytes and timestamps unchanged, no re-encoding). RGB is converted to YUV with
  the BT.709 matrix, limited range, and the stream is tagged so. ``yuv420p`` (the format every
  player plays) needs an even width and height; a clip of odd size is written in ``yuv444p``
  at its exact size instead (High 4:4:4: FFmpeg, VLC and mpv play it; browsers and QuickTime
  may not).
* **Timestamps**: .mp4 and .mov keep them exactly when the time base's denominator is 10000
  or more (a coarser one, such as 1/25, is replaced by a finer multiple: the same times in
  other numbers). Matroska counts in milliseconds, and shifts all the streams by one constant
  when a copied audio stream starts before zero (AAC's priming), to keep its timestamps
  non-negative.

A file is written to a temporary sibling (``.NAME.<random>.tmp``, the naming of
:mod:`sair_jax.io.files`, whose ``remove_temps`` deletes strays) and renamed into place when
the writer closes cleanly; an exception inside its ``with`` block removes it. Problems with an
input clip raise :class:`VideoError`; problems writing one raise
:class:`~sair_jax.io.files.OutputError`; both one line naming the file.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import tempfile
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from sair_jax.errors import InputError
from sair_jax.io import files
from sair_jax.io.files import OutputError, not_what_it_seems
from sair_jax.io.images import to_uint8

VIDEO_EXTENSIONS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}  # extension -> muxer
VIDEO_HINT = "pip install 'sair_jax[video]' (PyAV)"
# Encoders that take a constant-rate-factor quality (lower: better and bigger).
_CRF_CODECS = ("libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1")
_BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709: the matrix, primaries and transfer the writer tags
_LIMITED = 1  # AVCOL_RANGE_MPEG: 16..235 luma
_TONE_HZ = 440.0  # write_clip's audio: a sine of this frequency, amplitude _TONE_LEVEL
_TONE_LEVEL = 0.25


class VideoError(InputError):
  """A video clip could not be read (missing, not a video, no video stream, damaged). One line,
  names the path."""


@dataclasses.dataclass(frozen=True)
class ClipInfo:
  """What :func:`probe` finds in a clip (its first video stream).

  ``duration`` takes the last frame to last as long as the interval before it: containers do
  not reliably store a frame's own length (an .mp4 stores decode-order intervals), and this way
  a clip and its re-encoding with the same timestamps report the same duration. A clip of one
  frame lasts its packet's duration, else one nominal frame interval.
  """
  path: str
  width: int  # pixels, as stored (before any display rotation)
  height: int
  frames: int  # video frames, counted packet by packet (exact, whatever the header says)
  time_base: fractions.Fraction  # seconds per timestamp tick of the video stream
  average_rate: fractions.Fraction | None  # frames per second: frames / duration (None: unknown)
  duration: float  # seconds: first timestamp to the end of the last frame (ClipInfo notes)
  audio_streams: int
  variable_rate: bool  # frame intervals differ by more than one tick of time_base
  # Display rotation in degrees (0, 90, 180, 270), counterclockwise as FFmpeg reports it:
  # np.rot90(image, rotation // 90) is the frame as players show it.
  rotation: int = 0


class Frame(NamedTuple):
  """One decoded frame."""
  index: int  # 0-based, in presentation order
  pts: int | None  # presentation timestamp in ticks of time_base (None: the clip has none)
  time_base: fractions.Fraction
  image: np.ndarray  # [H, W, 3] uint8 RGB


# ------------------------------------------------------------------------------------ helpers


def _av(path: str, error: type[Exception]) -> Any:
  """The ``av`` module, or ``error`` (one line naming ``path`` and the extra) without it."""
  try:
    import av  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise error(f"{path}: reading and writing video needs the 'video' extra: "
                f"{VIDEO_HINT}") from None
  return av


def _reason(e: BaseException) -> str:
  """FFmpeg's short reason for an error, without the path PyAV appends."""
  text = getattr(e, "strerror", None) or str(e) or type(e).__name__
  return str(text).splitlines()[0]


def _open_input(path: str) -> Any:
  """An open PyAV input container; :class:`VideoError` (one line) when it cannot be opened."""
  av = _av(path, VideoError)
  try:
    return av.open(path, "r")
  except FileNotFoundError:
    raise VideoError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise VideoError(f"{path}: is a directory, not a video") from None
  except PermissionError:
    raise VideoError(f"{path}: permission denied") from None
  except (av.FFmpegError, OSError, ValueError) as e:
    reason = not_what_it_seems(path) or f"not a readable video ({_reason(e)})"
    raise VideoError(f"{path}: {reason}") from None


def _video_stream(container: Any, path: str) -> Any:
  """The first video stream; :class:`VideoError` (closing ``container``) when there is none."""
  if not container.streams.video:
    empty = not container.streams
    container.close()
    if empty:  # a header cut short (a truncated .mp4 with its index at the front)
      raise VideoError(f"{path}: holds no streams (truncated or damaged)")
    raise VideoError(f"{path}: no video stream")
  return container.streams.video[0]


def _truncated(path: str, listed: int, found: int) -> VideoError:
  return VideoError(f"{path}: truncated or damaged: the header lists {listed} video frames, "
                    f"the file holds {found}")


# -------------------------------------------------------------------------------------- probe


def probe(path: str | os.PathLike) -> ClipInfo:
  """Describes a clip's first video stream, reading its packets once and decoding its first
  frame (for the display rotation).

  The frame count, duration and rate are worked out from the packets' timestamps, not taken
  from the header (which may be missing, as in Matroska, or count frames an edit list hides).

  Raises:
    VideoError: one line naming the file: missing, not a video, no video stream, no frames,
      damaged (the first frame does not decode), or shorter than its header says (a truncated
      download or copy).
  """
  path = os.fspath(path)
  av = _av(path, VideoError)
  with _open_input(path) as container:
    stream = _video_stream(container, path)
    tb = stream.time_base or fractions.Fraction(1, 1)
    listed = found = 0  # packets in the file; those shown (not hidden by an edit list)
    pts: list[int] = []
    durations: list[int] = []  # of the packets (for a clip of one frame)
    try:
      for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at the end
          continue
        listed += 1
        if packet.is_discard:
          continue
        found += 1
        if packet.pts is not None:
          pts.append(packet.pts)
          durations.append(packet.duration or 0)
    except (av.FFmpegError, OSError, ValueError) as e:
      raise VideoError(f"{path}: damaged after {found} video frames ({_reason(e)})") from None
    if stream.frames and listed < stream.frames:
      raise _truncated(path, stream.frames, listed)
    if not found:
      raise VideoError(f"{path}: the video stream holds no frames")
    width, height = stream.codec_context.width, stream.codec_context.height
    header_rate = stream.average_rate or stream.guessed_rate
    audio = len(container.streams.audio)
    container_seconds = (container.duration or 0) / 1e6
  pts.sort()
  deltas = np.diff(np.asarray(pts, np.int64))
  variable = bool(deltas.size) and int(deltas.max() - deltas.min()) > 1
  if pts:
    last = int(deltas[-1]) if deltas.size else durations[0]
    if not last and header_rate:
      last = max(1, round(1 / (header_rate * tb)))
    span = fractions.Fraction(pts[-1] + last - pts[0]) * tb
  else:  # a stream without timestamps (raw elementary streams): the container's duration
    span = fractions.Fraction(container_seconds).limit_denominator(1_000_000)
  rate = fractions.Fraction(found) / span if span > 0 else (
      fractions.Fraction(header_rate) if header_rate else None)
  return ClipInfo(path=path, width=width, height=height, frames=found, time_base=tb,
                  average_rate=rate, duration=float(span), audio_streams=audio,
                  variable_rate=variable, rotation=_rotation(av, path))


def _rotation(av: Any, path: str) -> int:
  """The display rotation of the first frame (0, 90, 180 or 270); VideoError if it does not
  decode."""
  with _open_input(path) as container:
    try:
      for frame in container.decode(container.streams.video[0]):
        return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except (av.FFmpegError, OSError, ValueError) as e:
      raise VideoError(f"{path}: frame 0: cannot decode ({_reason(e)})") from None
  raise VideoError(f"{path}: frame 0: cannot decode (no frame comes out)")


# ---------------------------------------------------------------------------------------- read


def read_frames(path: str | os.PathLike, start: int = 0) -> Iterator[Frame]:
  """Decodes a clip's first video stream one frame at a time (only one held in memory).

  Frames before ``start`` are decoded (video needs it) but not converted to RGB, so skipping
  is cheap. The clip is closed when the iterator is exhausted or discarded.

  Yields:
    :class:`Frame` ``(index, pts, time_base, image)``, ``index`` from ``start`` on,
    ``image`` [H, W, 3] uint8 RGB.
  Raises:
    VideoError: one line naming the file, raised by ``next`` (a generator: nothing is opened
      before the first frame is asked for). Opening: as :func:`probe`. Mid-clip, after the
      frames that decoded: ``"PATH: frame N: ..."`` when frame N cannot be decoded, or the file
      ends before the frames its header lists (a truncated .mp4 whose index is at the front)
      or holds fewer decodable frames than packets.
    ValueError: ``start`` < 0.
  """
  if start < 0:
    raise ValueError(f"start must be >= 0, got {start}")
  path = os.fspath(path)
  av = _av(path, VideoError)
  with _open_input(path) as container:
    stream = _video_stream(container, path)
    stream.thread_type = "AUTO"
    tb = stream.time_base or fractions.Fraction(1, 1)
    index = listed = shown = 0
    try:
      for packet in container.demux(stream):
        if packet.size:
          listed += 1
          shown += not packet.is_discard
        for frame in packet.decode():
          if index >= start:
            image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            yield Frame(index, frame.pts, tb, image)
          index += 1
    except (av.FFmpegError, OSError, ValueError) as e:
      raise VideoError(f"{path}: frame {index}: cannot decode ({_reason(e)})") from None
    if stream.frames and listed < stream.frames:
      raise VideoError(f"{path}: frame {index}: the file ends here, its header lists "
                       f"{stream.frames} frames (truncated)")
    if index < shown:
      raise VideoError(f"{path}: frame {index}: only {index} of {shown} frames decode "
                       f"(damaged)")


# --------------------------------------------------------------------------------------- write


def _pixel_format(av: Any, name: str, width: int, height: int) -> str:
  """``name``, or its 4:4:4 form when its chroma subsampling needs an even size it lacks."""
  fmt = av.VideoFormat(name)
  odd = (width % 2 and fmt.chroma_width(2) == 1) or (height % 2 and fmt.chroma_height(2) == 1)
  if not odd:
    return name
  return "yuvj444p" if name.startswith("yuvj") else "yuv444p"


class ClipWriter:
  """Encodes frames into a video file, keeping each frame's timestamp; a context manager.

  Args:
    path: the output, .mp4, .mkv or .mov (the container follows the extension).
    source: the input clip whose audio streams are copied into the output (packet by packet,
      bytes and timestamps unchanged), and whose :func:`probe` gives the defaults of ``like``.
    like: width, height, time base, rate and display rotation of the output (default
      ``probe(source)``).
    codec: the FFmpeg encoder; ``crf`` is its quality where it takes one (libx264: 0 lossless,
      18 visually lossless, 23 its default).
    pixel_format: the encoded format; a 4:2:0/4:2:2 format with an odd width or height becomes
      ``yuv444p`` (module docstring).
    copy_audio: False writes video only.

  Raises:
    OutputError: an unknown extension, a source audio codec the container cannot hold, an
      encoder that refuses the settings, the file cannot be written. One line naming ``path``.
    VideoError: ``source`` cannot be read.
  """

  def __init__(self, path: str | os.PathLike, source: str | os.PathLike | None = None, *,
               like: ClipInfo | None = None, codec: str = "libx264", crf: int = 18,
               pixel_format: str = "yuv420p", copy_audio: bool = True):
    self.path = os.fspath(path)
    ext = os.path.splitext(self.path)[1].lower()
    if ext not in VIDEO_EXTENSIONS:
      raise OutputError(f"{self.path}: cannot write a {ext or 'extension-less'} video; name it "
                        f".mp4, .mkv or .mov")
    if like is None:
      if source is None:
        raise ValueError("ClipWriter needs a source clip or `like`")
      like = probe(source)
    self.info = like
    self._av = av = _av(self.path, OutputError)
    self._tb = fractions.Fraction(like.time_base)
    rate = fractions.Fraction(like.average_rate) if like.average_rate else None
    self._interval = max(1, round(1 / (rate * self._tb))) if rate else 1  # ticks, for pts None
    self._last: int | None = None  # the last frame's pts (ticks)
    self._last_interval = 0  # ticks between the last two frames: the last frame's length
    self._pending: tuple[Any, int] | None = None  # (frame, pts): encoded once its length is known
    self._durations: dict[int, int] = {}  # pts -> ticks, set on the encoded packets
    self._audio: Iterator[Any] | None = None  # source packets still to copy
    self._audio_next: Any = None
    self._audio_map: dict[int, Any] = {}  # source stream index -> output stream
    self._source = None  # the source, open for its audio
    self._source_path = os.fspath(source) if source is not None else None
    self._out = None
    self._tmp = None
    self._closed = False
    directory = os.path.dirname(os.path.abspath(self.path))
    try:
      fd, self._tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(self.path)
                                       + ".", suffix=files.TEMP_SUFFIX)
      os.close(fd)
      os.chmod(self._tmp, files._MODE)  # pylint: disable=protected-access
    except OSError as e:
      raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
    try:
      options = {} if ext == ".mkv" else {"movflags": "+faststart"}
      self._out = av.open(self._tmp, "w", format=VIDEO_EXTENSIONS[ext], options=options)
      self._video = self._add_video(codec, crf, pixel_format, rate)
      if copy_audio and source is not None:
        self._add_source_audio(self._source_path)
    except BaseException:
      self._abort()
      raise

  def _add_video(self, codec: str, crf: int, pixel_format: str,
                 rate: fractions.Fraction | None) -> Any:
    av, info = self._av, self.info
    self._codec = codec
    try:
      stream = self._out.add_stream(codec, rate=rate or fractions.Fraction(25))
      stream.width, stream.height = info.width, info.height
      self._format = _pixel_format(av, pixel_format, info.width, info.height)
      stream.pix_fmt = self._format
      stream.time_base = self._tb
      stream.codec_context.time_base = self._tb
      if info.rotation:
        stream.set_display_rotation(info.rotation)
      if codec in _CRF_CODECS:
        stream.options = {"crf": str(crf)}
      self._yuv = not av.VideoFormat(self._format).is_rgb
      if self._yuv:
        ctx = stream.codec_context
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT709
        ctx.color_range = _LIMITED
    except (av.FFmpegError, ValueError, TypeError) as e:
      reason = _reason(e)
      reason = "no such encoder in this FFmpeg" if reason == codec else reason
      raise OutputError(f"{self.path}: cannot encode {codec} {self.info.width}x"
                        f"{self.info.height} {pixel_format} ({reason})") from None
    return stream

  def _add_source_audio(self, source: str) -> None:
    self._source = _open_input(source)
    streams = list(self._source.streams.audio)
    for s in streams:
      name = s.codec_context.name
      if name not in self._out.supported_codecs:
        ext = os.path.splitext(self.path)[1].lower()
        raise OutputError(f"{self.path}: a {ext} file cannot hold the {name} audio of "
                          f"{source}; write a .mkv, or leave the audio out (copy_audio=False)")
      out = self._out.add_stream_from_template(s)
      out.time_base = s.time_base
      try:
        out.metadata.update(s.metadata)  # language, title
      except (AttributeError, TypeError, ValueError):
        pass
      self._audio_map[s.index] = out
    if streams:
      self._audio = iter(self._source.demux(*streams))
      self._audio_next = self._next_source_audio()

  def _next_source_audio(self) -> Any:
    """The next non-empty packet of the source's audio, or None at its end."""
    try:
      for packet in self._audio:
        if packet.size:
          packet.stream = self._audio_map[packet.stream_index]
          return packet
    except (self._av.FFmpegError, OSError, ValueError) as e:
      raise VideoError(f"{self._source_path}: cannot read its audio ({_reason(e)})") from None
    return None

  def _add_tone(self, seconds: float, sample_rate: int) -> None:
    """Adds a mono AAC stream of a sine tone (for :func:`write_clip`); before any write."""
    av = self._av
    stream = self._out.add_stream("aac", rate=sample_rate)
    stream.layout = "mono"
    tb = fractions.Fraction(1, sample_rate)
    n = int(round(seconds * sample_rate))
    tone = (_TONE_LEVEL * np.sin(2 * np.pi * _TONE_HZ * np.arange(n) / sample_rate))
    tone = tone.astype(np.float32)
    step = stream.codec_context.frame_size or 1024
    packets = []
    for i in range(0, n, step):
      frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, i:i + step]),
                                         format="fltp", layout="mono")
      frame.sample_rate, frame.pts, frame.time_base = sample_rate, i, tb
      packets += stream.encode(frame)
    packets += stream.encode(None)
    self._audio = iter(packets)
    self._audio_next = next(self._audio, None)

  def _mux_audio(self, until: float | None) -> None:
    """Muxes the audio packets due by ``until`` seconds (None: all that are left)."""
    while self._audio_next is not None:
      packet = self._audio_next
      t = packet.dts if packet.dts is not None else packet.pts
      if until is not None and t is not None and t * packet.time_base > until:
        return
      self._out.mux(packet)
      self._audio_next = (self._next_source_audio() if self._source is not None
                          else next(self._audio, None))

  def _encode(self, frame: Any) -> None:
    for packet in self._video.encode(frame):
      if packet.pts in self._durations:
        packet.duration = self._durations.pop(packet.pts)
      self._out.mux(packet)

  def write(self, image: np.ndarray, pts: int | None, time_base: Any = None) -> None:
    """Encodes one frame shown from ``pts`` on.

    Args:
      image: [H, W, 3] uint8, or float in [0, 1] (clipped, rounded), H x W as ``like``.
      pts: the frame's timestamp in ticks of ``time_base`` (the source's, as
        :func:`read_frames` gives it); kept as is in the output (exactly when ``time_base`` is
        the output's, ``like.time_base``; else rounded to it). None: one nominal frame interval
        after the previous frame (the first at 0). A timestamp not after the previous one (a
        damaged source) is moved one tick after it: containers refuse such frames.
      time_base: seconds per tick of ``pts`` (default: ``like.time_base``).
    Raises:
      ValueError: an image of another shape, or a closed writer. OutputError: encoding or
        writing failed.
    """
    if self._closed:
      raise ValueError(f"{self.path}: the writer is closed")
    image = to_uint8(image)
    want = (self.info.height, self.info.width, 3)
    if image.shape != want:
      raise ValueError(f"{self.path}: frame of shape {image.shape}, expected {want}")
    if pts is None:
      ticks = 0 if self._last is None else self._last + self._interval
    elif time_base is None or fractions.Fraction(time_base) == self._tb:
      ticks = int(pts)
    else:
      ticks = round(fractions.Fraction(int(pts)) * fractions.Fraction(time_base) / self._tb)
    if self._last is not None and ticks <= self._last:
      ticks = self._last + 1
    av = self._av
    try:
      frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
      if self._yuv:
        frame = frame.reformat(format=self._format, dst_colorspace="ITU709",
                               dst_color_range="MPEG")
      else:
        frame = frame.reformat(format=self._format)
      frame.pts, frame.time_base = ticks, self._tb
      if self._pending is not None:
        previous, previous_pts = self._pending
        self._durations[previous_pts] = self._last_interval = ticks - previous_pts
        self._encode(previous)
        self._mux_audio(float(previous_pts * self._tb))
      self._pending = (frame, ticks)
      self._last = ticks
    except (av.FFmpegError, OSError, ValueError) as e:
      raise OutputError(f"{self.path}: cannot encode a frame with {self._codec} {self._format} "
                        f"({_reason(e)})") from None

  def close(self) -> None:
    """Finishes the file and renames it into place (idempotent).

    Raises:
      OutputError: nothing was written (the file is not made), or finishing it failed.
    """
    if self._closed:
      return
    if self._last is None:
      self._abort()
      raise OutputError(f"{self.path}: no frames were written")
    av = self._av
    try:
      if self._pending is not None:
        frame, ticks = self._pending
        self._durations[ticks] = self._last_interval or self._interval
        self._encode(frame)
        self._pending = None
      self._encode(None)
      self._mux_audio(None)
      self._out.close()
      self._out = None
      os.replace(self._tmp, self.path)
      self._tmp = None
    except (av.FFmpegError, OSError, ValueError) as e:
      self._abort()
      reason = e.strerror if isinstance(e, OSError) and e.strerror else _reason(e)
      raise OutputError(f"{self.path}: cannot write ({reason})") from None
    except BaseException:
      self._abort()
      raise
    self._abort()  # closes the source; nothing left to remove

  def _abort(self) -> None:
    """Closes everything and removes the temporary file (not the real one)."""
    self._closed = True
    for container in (self._out, self._source):
      if container is not None:
        try:
          container.close()
        except Exception:  # pylint: disable=broad-except
          pass
    self._out = self._source = None
    if self._tmp is not None:
      try:
        os.unlink(self._tmp)
      except OSError:
        pass
      self._tmp = None

  def __enter__(self) -> ClipWriter:
    return self

  def __exit__(self, exc_type, exc, tb) -> bool:
    if exc_type is None:
      self.close()
    else:
      self._abort()
    return False


def write_clip(path: str | os.PathLike, images: Iterable[np.ndarray], *, rate: Any = 25,
               pts: Iterable[int] | None = None, audio_seconds: float = 0.0,
               audio_rate: int = 16000) -> None:
  """Makes a clip (tests, the known-answer clip): H.264 at ``crf`` 18, as :class:`ClipWriter`.

  Args:
    images: [H, W, 3] uint8 or float in [0, 1], all of one size.
    rate: frames per second (int, float or Fraction); the time base is 1 / ``rate``.
    pts: None: frame i at i / ``rate`` seconds (constant rate). Else one increasing integer per
      image, in ticks of 1 / ``rate``: gaps make a variable-rate clip (``[0, 1, 3]``: the
      second frame lasts two ticks).
    audio_seconds: > 0 adds a mono AAC stream this long: a 440 Hz sine at ``audio_rate`` Hz.
  Raises:
    ValueError: no images, or fewer ``pts`` than images. OutputError: as ClipWriter.
  """
  path = os.fspath(path)
  fps = fractions.Fraction(rate).limit_denominator(1_000_000)
  tb = 1 / fps
  frames = iter(images)
  first = next(frames, None)
  if first is None:
    raise ValueError(f"{path}: no images to write")
  height, width = np.asarray(first).shape[:2]
  like = ClipInfo(path=path, width=width, height=height, frames=0, time_base=tb,
                  average_rate=fps, duration=0.0, audio_streams=int(audio_seconds > 0),
                  variable_rate=pts is not None)
  stamps = iter(pts) if pts is not None else None
  with ClipWriter(path, like=like) as writer:
    if audio_seconds > 0:
      writer._add_tone(audio_seconds, audio_rate)  # pylint: disable=protected-access
    for i, image in enumerate(_chain(first, frames)):
      if stamps is None:
        writer.write(image, i, tb)
      else:
        stamp = next(stamps, None)
        if stamp is None:
          raise ValueError(f"{path}: fewer pts than images")
        writer.write(image, stamp, tb)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
  yield first
  yield from rest
