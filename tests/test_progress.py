"""The progress line and manifest record of long runs."""

import jax
import pytest

from sair_jax.pipeline import progress


@pytest.mark.parametrize("seconds, want", [
    (0, "0s"), (0.4, "0s"), (44.6, "45s"), (59.4, "59s"), (60, "1m00s"), (90, "1m30s"),
    (3599, "59m59s"), (3600, "1h00m"), (7500, "2h05m"), (90061, "25h01m")])
def test_durations(seconds, want):
  assert progress.format_duration(seconds) == want


def test_line_and_record_after_a_chunk():
  p = progress.progress(12, 40, 38.4)  # 3.2 s/image, 28 images left: 89.6 s
  assert p.line == "12/40 images, 3.2 s/image, ETA 1m30s"
  assert p.record == {"done": 12, "total": 40, "elapsed_seconds": 38.4, "compile_seconds": 0.0,
                      "seconds_per_image": 3.2, "eta_seconds": pytest.approx(89.6)}


def test_compile_time_is_shown_apart_and_kept_out_of_the_rate():
  """A smoke run's first chunk: 71 s elapsed, 54 of them compiling, 1 of 3 images done. With
  compilation in the rate the estimate was 71 s/image (ETA 2m22s); the run needed 18 s more."""
  p = progress.progress(1, 3, 71.0, compile_seconds=54.0)
  assert p.line == "1/3 images, 17 s/image, ETA 34s (+54s compiling)"
  assert p.record["compile_seconds"] == 54.0 and p.record["seconds_per_image"] == 17.0
  assert progress.progress(3, 3, 10.0, compile_seconds=0.2).line == "3/3 images, 3.27 s/image, done"


def test_compile_clock_counts_a_compilation_not_a_cached_call():
  import jax.numpy as jnp
  clock = progress.CompileClock()
  f = jax.jit(lambda x: jnp.sin(x) * 3 + x.sum())
  f(jnp.ones(7)).block_until_ready()
  compiled = clock.seconds()
  assert compiled > 0
  f(jnp.ones(7)).block_until_ready()  # the same program again: nothing compiled
  assert clock.seconds() == compiled


def test_start_end_and_slow_images():
  start = progress.progress(0, 5, 0.0)
  assert start.line == "0/5 images, ETA unknown"
  assert start.record["seconds_per_image"] is None and start.record["eta_seconds"] is None
  assert progress.progress(5, 5, 20.0).line == "5/5 images, 4 s/image, done"
  assert progress.progress(1, 3, 125.4).line == "1/3 images, 125 s/image, ETA 4m11s"


def test_a_batch_in_flight_counts_by_its_steps():
  p = progress.progress(4 + 8 * 20 / 60, 40, 50.0)  # 4 finished, a batch of 8 a third done
  assert p.line == "6.7/40 images, 7.5 s/image, ETA 4m10s"
  assert p.record["done"] == pytest.approx(6.667, abs=1e-3)


@pytest.mark.parametrize("done, total, elapsed", [(6, 5, 1.0), (-1, 5, 1.0), (1, 5, -2.0),
                                                  (1, 5, float("nan"))])
def test_bad_counts_are_one_line(done, total, elapsed):
  with pytest.raises(ValueError, match="need 0 <= done <= total"):
    progress.progress(done, total, elapsed)


def test_compile_spans_count_overlaps_once():
  spans = progress._CompileSpans()  # pylint: disable=protected-access
  event = progress.COMPILE_EVENTS[0]
  for start, end in [(10, 11), (0, 1), (10.5, 12), (2, 3), (0.5, 2.5), (20, 20), (30, 31)]:
    spans._on_span(event, start, end)  # pylint: disable=protected-access
  spans._on_span("/jax/other", 40, 50)  # pylint: disable=protected-access
  assert spans.seconds() == pytest.approx(3 + 2 + 1)  # [0, 3], [10, 12], [30, 31]
  jax.monitoring.unregister_event_time_span_listener(spans._on_span)  # pylint: disable=protected-access
