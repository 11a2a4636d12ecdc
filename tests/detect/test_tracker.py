"""Tracker: stable ids over hand-made detection sequences."""

from __future__ import annotations

import numpy as np

from agent.detect.detections import Detections
from agent.detect.tracker import Tracker, TrackerParams, iou_matrix


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    """Rows of (x1, y1, x2, y2, score, class)."""
    if not rows:
        return Detections.empty()
    a = np.array(rows, dtype=np.float64)
    return Detections(
        a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int32)
    )


def walk(x0: float, dx: float, n: int, *, y: float = 100, score: float = 0.8, cls: int = 0):
    return [(x0 + dx * i, y, x0 + dx * i + 30, y + 80, score, cls) for i in range(n)]


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float64)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_two_walkers_keep_their_ids_and_are_confirmed_after_min_hits() -> None:
    tr = Tracker(TrackerParams(min_hits=3))
    a, b = walk(0, 8, 20), walk(400, -8, 20, y=300)
    seen: list[dict[int, int]] = []
    for i in range(20):
        out = tr.update(dets(a[i], b[i]), t=i * 0.2)
        seen.append({round(x[0]): int(t) for x, t in zip(out.xyxy, out.track_ids, strict=True)})
    assert seen[0] == {}
    assert seen[1] == {}
    assert len(seen[2]) == 2
    ids = {frozenset(s.values()) for s in seen[2:]}
    assert len(ids) == 1  # the same two ids throughout
    assert tr.created == 2


def test_ids_survive_crossing_paths_with_velocity() -> None:
    # Two people cross: same row, opposite directions. Prediction keeps them apart.
    tr = Tracker()
    a, b = walk(0, 12, 30), walk(348, -12, 30)
    first: dict[int, int] = {}
    for i in range(30):
        out = tr.update(dets(a[i], b[i]), t=i * 0.2)
        for box, tid in zip(out.xyxy, out.track_ids, strict=True):
            direction = 0 if (box[0] - a[i][0]) ** 2 < (box[0] - b[i][0]) ** 2 else 1
            first.setdefault(direction, int(tid))
            assert first[direction] == int(tid), f"frame {i}: ids swapped"


def test_class_must_match() -> None:
    tr = Tracker(TrackerParams(min_hits=1))
    tr.update(dets((0, 0, 30, 80, 0.9, 0)), 0.0)
    out = tr.update(dets((0, 0, 30, 80, 0.9, 2)), 0.2)  # a car where the person was
    assert tr.created == 2
    assert list(out.track_ids) == [2]


def test_weak_detection_keeps_a_track_but_never_starts_one() -> None:
    tr = Tracker(TrackerParams(min_hits=2, high_score=0.5))
    for i in range(3):
        tr.update(dets((i * 5, 0, i * 5 + 30, 80, 0.9, 0)), i * 0.2)
    out = tr.update(dets((15, 0, 45, 80, 0.4, 0), (300, 300, 330, 380, 0.4, 0)), 0.6)
    assert list(out.track_ids) == [1]  # the weak one near the track extends it
    assert tr.created == 1  # the weak stranger started nothing


def test_track_lost_only_after_frames_and_seconds() -> None:
    tr = Tracker(TrackerParams(min_hits=1, lost_s=2.0, lost_frames=3))
    box = (0, 0, 30, 80, 0.9, 0)
    tr.update(dets(box), 0.0)
    assert tr.live_ids == {1}
    # Gated still scene: one empty frame every 5 s. Missed once, 5 s: not yet (frames).
    tr.update(dets(), 5.0)
    tr.update(dets(), 10.0)
    assert tr.live_ids == {1}
    tr.update(dets(), 15.0)
    assert tr.live_ids == frozenset()
    # Fast frames: 3 misses within 0.6 s are not enough either.
    tr.update(dets(box), 20.0)
    for k in range(1, 4):
        tr.update(dets(), 20.0 + 0.2 * k)
    assert tr.live_ids == {2}
    tr.update(dets(), 22.1)
    assert tr.live_ids == frozenset()


def test_parked_object_at_keepalive_rate_keeps_its_id() -> None:
    tr = Tracker()
    car = (500, 300, 620, 380, 0.8, 2)
    for i in range(4):
        tr.update(dets(car), i * 0.2)
    for k in range(1, 20):
        out = tr.update(dets(car), 0.6 + 5.0 * k)
        assert list(out.track_ids) == [1]
    assert tr.created == 1


def test_input_is_not_mutated_and_empty_frames_work() -> None:
    tr = Tracker()
    d = dets((0, 0, 30, 80, 0.9, 0))
    before = d.track_ids.copy()
    for i in range(4):
        tr.update(d, i * 0.2)
    np.testing.assert_array_equal(d.track_ids, before)
    assert len(tr.update(Detections.empty(), 1.0)) == 0


def test_new_track_survives_a_detector_dropout() -> None:
    tr = Tracker(TrackerParams(min_hits=3))
    reported = []
    for i in range(9):
        row = (i * 5, 0, i * 5 + 30, 80, 0.9, 0)
        out = tr.update(dets(row) if i % 3 != 2 else dets(), i * 0.2)
        reported += out.track_ids.tolist()
    assert tr.created == 1
    assert set(reported) == {1}
