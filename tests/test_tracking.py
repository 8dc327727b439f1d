"""Faces through time: linking synthetic detections into tracks, and smoothing their landmarks."""

import importlib.util
import itertools
import sys

import numpy as np
import pytest

from sair_jax.face import align, detect, tracking
from sair_jax.face.tracking import Detection


def _template():
  """68 landmarks of a frontal face in dlib's numbering, centred on their mean, FFHQ quad side 1.

  Drawn in units of the eye distance (eyes at y = 0, mouth corners one unit below them).
  """
  a = np.linspace(0.0, np.pi, 17)
  jaw = np.stack([-np.cos(a), -0.1 + 1.7 * np.sin(a)], axis=1)  # 0-16, ear to ear under the chin
  brow = np.stack([np.linspace(-0.2, 0.2, 5), -0.35 - 0.05 * np.cos(np.linspace(-1, 1, 5))], 1)
  nose = np.concatenate([np.stack([np.zeros(4), np.linspace(-0.1, 0.55, 4)], 1),  # 27-30 bridge
                         np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.7)], 1)])  # 31-35
  b = np.linspace(np.pi, -np.pi, 7)[:6]  # eye contour from the outer corner, over the top
  eye = np.stack([0.2 * np.cos(b), 0.07 * np.sin(b)], 1)
  c = np.linspace(np.pi, -np.pi, 13)[:12]  # mouth from the left corner (48) to the right (54)
  outer = np.stack([0.4 * np.cos(c), 1.0 + 0.15 * np.sin(c)], 1)
  d = np.linspace(np.pi, -np.pi, 9)[:8]
  inner = np.stack([0.3 * np.cos(d), 1.0 + 0.05 * np.sin(d)], 1)
  lm = np.concatenate([jaw, brow + [-0.5, 0], brow + [0.5, 0], nose, eye + [-0.5, 0],
                       eye * [-1, 1] + [0.5, 0], outer, inner])
  lm -= lm.mean(axis=0)
  return lm / align.ffhq_quad(lm)[1]


TEMPLATE = _template()  # [68, 2]
E = 64  # embedding size


def face(x, y, size=100.0):
  """[68, 2] landmarks centred on (x, y) whose FFHQ quad side is ``size`` pixels."""
  return TEMPLATE * size + [x, y]


def test_template_is_a_plausible_face():
  assert TEMPLATE.shape == (68, 2)
  assert detect.implausible(face(300, 200)) is None
  assert align.ffhq_quad(face(300, 200, 80))[1] == pytest.approx(80)
  np.testing.assert_allclose(face(300, 200).mean(axis=0), [300, 200], atol=1e-9)


def make_clip(people, n_frames, *, embeddings=True, noise=0.5, seed=0):
  """A synthetic clip: per-frame detections of ``people`` in shuffled order, and the truth.

  Args:
    people: one function per person, frame -> (x, y) of the face's centre, or None when the
      person is not detected in that frame.
  Returns:
    ``(detections, truth)``: one list of Detection per frame, and {(frame, person): landmarks}.
  """
  rng = np.random.default_rng(seed)
  identities = rng.normal(size=(len(people), E))
  identities /= np.linalg.norm(identities, axis=1, keepdims=True)
  detections, truth = [], {}
  for f in range(n_frames):
    dets = []
    for p, path in enumerate(people):
      where = path(f)
      if where is None:
        continue
      lm = face(*where) + rng.normal(0.0, noise, (68, 2))
      e = None
      if embeddings:  # not normalised, cosine ~0.9 with the identity
        e = 3.0 * (identities[p] + rng.normal(0.0, 0.4 / np.sqrt(E), E))
      dets.append(Detection(f, lm, 0.9, e))
      truth[f, p] = dets[-1].landmarks
    detections.append([dets[k] for k in rng.permutation(len(dets))])  # order tells nothing
  return detections, truth


def who(track, truth):
  """The person behind each detection of ``track``: [n] list of person indices."""
  people = []
  for f, lm in zip(track.frames, track.landmarks):
    people.append([p for (g, p), t in truth.items() if g == f and np.array_equal(t, lm)][0])
  return people


@pytest.fixture(params=["hungarian", "greedy"])
def assignment(request, monkeypatch):
  """Runs a test with the Hungarian assignment (scipy) and with the greedy fallback."""
  if request.param == "greedy":
    monkeypatch.setattr(tracking, "_hungarian", None)
  elif tracking._hungarian is None:
    pytest.skip("scipy is not installed")
  return request.param


# ---------------------------------------------------------------------------------------------
# Linking


def crossing(person):
  """Two people crossing: A rightwards, B leftwards, 10 px per frame, passing 3 px apart (0.03 of
  a face) between frames 17 and 18. From frame 17 to 18 each moves farther than the distance to
  the other's new position, so nearest-neighbour linking would swap them; prediction does not."""
  return [lambda f: (100 + 10 * f, 200), lambda f: (455 - 10 * f, 203)][person]


@pytest.mark.parametrize("embeddings", [True, False])
def test_people_crossing_keep_their_ids(assignment, embeddings):
  detections, truth = make_clip([crossing(0), crossing(1)], 40, embeddings=embeddings)
  tracks = tracking.link_tracks(detections)
  assert [t.id for t in tracks] == [0, 1]
  for t in tracks:
    assert len(t.frames) == 40 and len(set(who(t, truth))) == 1
  assert {who(t, truth)[0] for t in tracks} == {0, 1}


@pytest.mark.parametrize("embeddings", [True, False])
def test_crossing_with_one_hidden_behind_the_other(assignment, embeddings):
  """B is not detected for 5 frames (= max_gap) while A passes in front."""
  hidden = lambda f: None if 15 <= f <= 19 else crossing(1)(f)  # noqa: E731
  detections, truth = make_clip([crossing(0), hidden], 40, embeddings=embeddings)
  tracks = tracking.link_tracks(detections, max_gap=5)
  assert len(tracks) == 2
  people = [who(t, truth) for t in tracks]
  assert all(len(set(p)) == 1 for p in people)
  b = tracks[[p[0] for p in people].index(1)]
  assert b.segments() == [(0, 15), (15, 35)]
  np.testing.assert_array_equal(b.frames[14:16], [14, 20])


def test_people_who_meet_and_turn_back_need_embeddings(assignment):
  """They stop where they meet and go back: prediction alone expects them to go on, so without
  embeddings the ids swap; the embeddings keep them, by their gate and by their cost alone
  (min_similarity -1 lets every pair through)."""
  back = lambda x0, v: lambda f: (x0 + v * (30 - abs(f - 30)), 200 if v > 0 else 210)  # noqa: E731
  people = [back(100, 6), back(460, -6)]
  for embeddings, min_similarity in ((True, 0.5), (True, -1.0), (False, 0.5)):
    detections, truth = make_clip(people, 60, embeddings=embeddings)
    tracks = tracking.link_tracks(detections, min_similarity=min_similarity)
    assert len(tracks) == 2
    swapped = [len(set(who(t, truth))) > 1 for t in tracks]
    assert swapped == ([False, False] if embeddings else [True, True])


def leave_and_return(embeddings, max_gap=5):
  """A: frames 0-29 at the left, away 30-49 (20 frames), back 50-79 at the right. B, another
  person, appears at frame 40 where A left."""
  a = lambda f: (150 + f, 200) if f < 30 else (600, 220) if f >= 50 else None  # noqa: E731
  b = lambda f: (180, 200) if f >= 40 else None  # noqa: E731
  detections, truth = make_clip([a, b], 80, embeddings=embeddings)
  return tracking.link_tracks(detections, max_gap=max_gap), truth


def test_a_person_who_comes_back_keeps_the_id_with_embeddings(assignment):
  tracks, truth = leave_and_return(embeddings=True)
  assert [t.id for t in tracks] == [0, 1]
  assert set(who(tracks[0], truth)) == {0} and set(who(tracks[1], truth)) == {1}
  np.testing.assert_array_equal(tracks[0].frames, np.r_[0:30, 50:80])
  assert tracks[0].segments() == [(0, 30), (30, 60)]
  np.testing.assert_array_equal(tracks[1].frames, np.r_[40:80])


def test_a_person_who_comes_back_is_new_without_embeddings(assignment):
  tracks, truth = leave_and_return(embeddings=False)
  assert [t.id for t in tracks] == [0, 1, 2]
  assert [set(who(t, truth)) for t in tracks] == [{0}, {1}, {0}]
  assert [(t.frames[0], t.frames[-1]) for t in tracks] == [(0, 29), (40, 79), (50, 79)]


def test_a_different_person_in_the_same_place_is_not_taken_for_the_one_who_left(assignment):
  """B appears where A was, 10 frames after A left (A no longer live) and, with a longer max_gap,
  while A is still live: the embeddings keep them apart either way."""
  for max_gap in (5, 30):
    tracks, truth = leave_and_return(embeddings=True, max_gap=max_gap)
    assert [set(who(t, truth)) for t in tracks] == [{0}, {1}]


@pytest.mark.parametrize("gap, n_tracks", [(1, 1), (5, 1), (6, 2), (20, 2)])
def test_a_gap_up_to_max_gap_continues_the_track(assignment, gap, n_tracks):
  """Without embeddings, a person moving at 0.3 face sizes per frame and missing for ``gap``
  frames: continued by the predicted position up to max_gap = 5, a new track after that."""
  path = lambda f: None if 20 <= f < 20 + gap else (100 + 30 * f, 300)  # noqa: E731
  detections, _ = make_clip([path], 40 + gap, embeddings=False)
  tracks = tracking.link_tracks(detections, max_gap=5)
  assert len(tracks) == n_tracks
  if n_tracks == 1:
    assert tracks[0].segments() == [(0, 20), (20, 20 + 20)]


def test_moving_faster_than_max_jump_starts_a_new_track(assignment):
  jumpy = lambda f: (100 + (400 if f >= 5 else 0), 300)  # noqa: E731
  detections, _ = make_clip([jumpy], 10, embeddings=False)
  assert [len(t.frames) for t in tracking.link_tracks(detections, max_jump=0.5)] == [5, 5]
  assert [len(t.frames) for t in tracking.link_tracks(detections, max_jump=5.0)] == [10]


def test_spurious_detections_are_dropped_and_ids_stay_consecutive(assignment):
  a = lambda f: (200, 200)  # noqa: E731
  spurious = lambda f: (600, 500) if f == 3 else None  # noqa: E731
  c = lambda f: (900, 200) if f >= 10 else None  # noqa: E731
  detections, truth = make_clip([a, spurious, c], 20, embeddings=False)
  tracks = tracking.link_tracks(detections, min_length=3)
  assert [t.id for t in tracks] == [0, 1]
  assert [set(who(t, truth)) for t in tracks] == [{0}, {2}]
  assert len(tracking.link_tracks(detections, min_length=1)) == 3


def test_frames_without_faces_and_ids_in_order_of_first_appearance(assignment):
  assert tracking.link_tracks([]) == []
  assert tracking.link_tracks([[], [], ()]) == []
  p, q, r = face(100, 100), face(400, 100), face(700, 100)
  detections = [[], [Detection(1, q)], [], [Detection(3, p), Detection(3, q)],
                [Detection(4, r), Detection(4, q), Detection(4, p)], []]
  tracks = tracking.link_tracks(detections)
  assert [t.id for t in tracks] == [0, 1, 2]
  assert [t.frames.tolist() for t in tracks] == [[1, 3, 4], [3, 4], [4]]
  np.testing.assert_array_equal(tracks[1].landmarks[0], p)
  # Frames may also be left out entirely: the frame index is what counts.
  tracks = tracking.link_tracks([[Detection(0, p)], [Detection(9, p)]], max_gap=5)
  assert [t.frames.tolist() for t in tracks] == [[0], [9]]


def test_track_arrays_sizes_and_segments():
  detections, _ = make_clip([lambda f: None if f in (3, 4) else (200, 200)], 8, embeddings=False)
  (track,) = tracking.link_tracks(detections)
  assert track.frames.dtype == np.int64 and track.frames.tolist() == [0, 1, 2, 5, 6, 7]
  assert track.landmarks.shape == (6, 68, 2) and track.scores.tolist() == [0.9] * 6
  np.testing.assert_allclose(track.qsize(), 100.0, rtol=0.02)
  assert track.segments() == [(0, 3), (3, 6)]
  with pytest.raises(ValueError):
    track.landmarks[0, 0, 0] = 1.0  # read-only


def test_embeddings_may_be_missing_in_some_frames(assignment):
  detections, truth = make_clip([crossing(0), crossing(1)], 40)
  rng = np.random.default_rng(1)
  detections = [[Detection(d.frame, d.landmarks, d.score, None) if rng.random() < 0.3 else d
                 for d in dets] for dets in detections]
  tracks = tracking.link_tracks(detections)
  assert [len(set(who(t, truth))) for t in tracks] == [1, 1]


def test_bad_input_is_refused():
  lm = face(100, 100)
  with pytest.raises(ValueError, match="frame indices"):
    tracking.link_tracks([[Detection(0, lm), Detection(1, lm)]])
  with pytest.raises(ValueError, match="out of order"):
    tracking.link_tracks([[Detection(2, lm)], [Detection(1, lm)]])
  with pytest.raises(ValueError, match="size"):
    tracking.link_tracks([[Detection(0, lm, embedding=np.ones(4))],
                          [Detection(1, lm, embedding=np.ones(5))]])
  with pytest.raises(ValueError, match="Detection"):
    tracking.link_tracks([[lm]])
  for kwargs in ({"max_gap": -1}, {"max_jump": 0.0}, {"min_similarity": 2.0},
                 {"min_length": 0}):
    with pytest.raises(ValueError):
      tracking.link_tracks([], **kwargs)
  for bad in ({"landmarks": lm[:5]}, {"landmarks": np.full((68, 2), 3.0)},
              {"landmarks": lm, "embedding": np.zeros(4)}, {"landmarks": lm, "frame": 1.5}):
    with pytest.raises(ValueError):
      Detection(**{"frame": 0, **bad})
  with pytest.raises(ValueError):
    tracking.Track(0, np.asarray([0, 0]), np.stack([lm, lm]), np.ones(2))


# ---------------------------------------------------------------------------------------------
# Assignment


def best_by_brute_force(cost, allowed):
  """(most pairs, least total cost) over every one-to-one matching of allowed pairs."""
  r, c = cost.shape
  best = (0, 0.0)
  for cols in itertools.permutations(range(max(r, c)), r):
    pairs = [(i, j) for i, j in enumerate(cols) if j < c and allowed[i, j]]
    key = (len(pairs), sum(cost[i, j] for i, j in pairs))
    if key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
      best = key
  return best


def test_hungarian_assignment_is_optimal():
  if tracking._hungarian is None:
    pytest.skip("scipy is not installed")
  rng = np.random.default_rng(0)
  for _ in range(40):
    r, c = rng.integers(1, 5, 2)
    cost, allowed = rng.random((r, c)), rng.random((r, c)) < 0.6
    pairs = tracking._assign(cost, allowed)
    assert all(allowed[i, j] for i, j in pairs)
    assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
    n, total = best_by_brute_force(cost, allowed)
    assert len(pairs) == n and sum(cost[i, j] for i, j in pairs) == pytest.approx(total)


def test_greedy_assignment_takes_the_cheapest_pair_first(monkeypatch):
  cost = np.asarray([[1.0, 2.0], [2.0, 4.0]])
  everything = np.ones((2, 2), bool)
  if tracking._hungarian is not None:
    assert tracking._assign(cost, everything) == [(0, 1), (1, 0)]  # 4 in all
  monkeypatch.setattr(tracking, "_hungarian", None)
  assert tracking._assign(cost, everything) == [(0, 0), (1, 1)]  # 5 in all
  assert tracking._assign(cost, np.asarray([[True, True], [True, False]])) == [(0, 0)]
  assert tracking._assign(cost, np.zeros((2, 2), bool)) == []


def test_without_scipy_the_module_falls_back_to_greedy(monkeypatch):
  """A fresh copy of the module, imported with scipy.optimize hidden."""
  monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # makes the import fail
  spec = importlib.util.spec_from_file_location("tracking_without_scipy", tracking.__file__)
  copy = importlib.util.module_from_spec(spec)
  monkeypatch.setitem(sys.modules, spec.name, copy)  # dataclasses look their module up there
  spec.loader.exec_module(copy)
  assert copy._hungarian is None
  lm = face(100, 100)
  tracks = copy.link_tracks([[copy.Detection(f, lm + f)] for f in range(4)])
  assert [t.frames.tolist() for t in tracks] == [[0, 1, 2, 3]]


# ---------------------------------------------------------------------------------------------
# Smoothing


def smooth_path(n):
  """[n, 68, 2] landmarks of a face drifting down and swaying sideways (40 px, 90 frames)."""
  t = np.arange(n)
  centres = np.stack([300 + 40 * np.sin(2 * np.pi * t / 90), 200 + 0.5 * t], axis=1)
  return TEMPLATE[None] * 100 + centres[:, None]


def test_smoothing_removes_most_landmark_noise_and_jitter():
  clean = smooth_path(120)
  noisy = clean + np.random.default_rng(0).normal(0.0, 2.0, clean.shape)
  out = tracking.smooth_landmarks(np.arange(120), noisy, sigma=2.0)
  rms = lambda a: np.sqrt(np.mean((a - clean) ** 2))  # noqa: E731
  assert rms(out) < 0.5 * rms(noisy)
  assert tracking.jitter(out) < 0.2 * tracking.jitter(noisy)


def test_constant_velocity_is_kept_exactly_at_the_ends_too():
  rng = np.random.default_rng(0)
  frames = np.r_[0:25, 30:37, 50:52, 60]  # runs of 25, 7, 2 and 1 frames
  start, velocity = face(300, 200), rng.normal(0.0, 5.0, (68, 2))  # every point its own
  lm = start + frames[:, None, None] * velocity
  for sigma in (0.3, 1.0, 2.0, 5.0, 100.0):
    np.testing.assert_allclose(tracking.smooth_landmarks(frames, lm, sigma), lm, rtol=0, atol=1e-6)
  assert tracking.jitter(lm) > 1.0 and tracking.jitter(lm, frames) < 1e-9


def test_smoothing_never_crosses_a_gap():
  frames = np.r_[0:10, 11:21]  # one frame missing
  rng = np.random.default_rng(0)
  lm = smooth_path(20) + rng.normal(0.0, 2.0, (20, 68, 2))
  out = tracking.smooth_landmarks(frames, lm, sigma=3.0)
  changed = lm.copy()
  changed[10:] += 500.0
  out_changed = tracking.smooth_landmarks(frames, changed, sigma=3.0)
  np.testing.assert_array_equal(out_changed[:10], out[:10])
  np.testing.assert_allclose(out_changed[10:], out[10:] + 500.0, atol=1e-9)
  np.testing.assert_array_equal(out[:10], tracking.smooth_landmarks(frames[:10], lm[:10], 3.0))
  assert not np.allclose(out, lm)


def test_smoothing_in_the_interior_is_the_gaussian_average():
  rng = np.random.default_rng(0)
  lm = rng.normal(0.0, 1.0, (40, 68, 2))
  out = tracking.smooth_landmarks(np.arange(40), lm, sigma=2.0)
  d = np.arange(-8, 9)
  w = np.exp(-0.5 * (d / 2.0) ** 2)
  np.testing.assert_allclose(out[20], np.tensordot(w / w.sum(), lm[20 + d], axes=1), atol=1e-12)


def test_sigma_zero_and_bad_arguments():
  lm = smooth_path(10) + np.random.default_rng(0).normal(0.0, 1.0, (10, 68, 2))
  out = tracking.smooth_landmarks(np.arange(10), lm, sigma=0.0)
  np.testing.assert_array_equal(out, lm)
  assert out is not lm
  assert tracking.smooth_landmarks(np.zeros(0, int), np.zeros((0, 68, 2))).shape == (0, 68, 2)
  for frames, landmarks, sigma in ((np.arange(10), lm, -1.0), (np.arange(9), lm, 1.0),
                                   (np.arange(10)[::-1], lm, 1.0),
                                   (np.arange(10), lm + np.nan, 1.0)):
    with pytest.raises(ValueError):
      tracking.smooth_landmarks(frames, landmarks, sigma)


def test_jitter():
  lm = np.zeros((5, 68, 2))
  lm[1::2, :, 0] = 1.0  # 0, 1, 0, 1, 0: second differences of length 2
  assert tracking.jitter(lm) == pytest.approx(2.0)
  assert tracking.jitter(lm[:2]) == 0.0
  assert tracking.jitter(lm, np.asarray([0, 1, 5, 6, 10])) == 0.0  # no three consecutive frames


def test_smoothed_track(assignment):
  path = lambda f: None if f in (30, 31) else (200 + 3 * f, 300)  # noqa: E731
  detections, _ = make_clip([path], 60, embeddings=False, noise=2.0)
  (track,) = tracking.link_tracks(detections)
  steady = tracking.smoothed(track, 2.0)
  assert steady.id == track.id
  np.testing.assert_array_equal(steady.frames, track.frames)
  np.testing.assert_array_equal(steady.scores, track.scores)
  np.testing.assert_array_equal(steady.landmarks,
                                tracking.smooth_landmarks(track.frames, track.landmarks, 2.0))
  assert (tracking.jitter(steady.landmarks, steady.frames)
          < 0.2 * tracking.jitter(track.landmarks, track.frames))
