"""The recorder on painted frames: vehicle records, the border rule, the same vehicle in two
classes, the height model left to people, and the resampling of long tracks."""

from __future__ import annotations

import numpy as np
import pytest

from agent.detect.detections import Detections
from agent.lookout.height import HeightModel
from agent.lookout.record import RESAMPLE, AppearanceRecord, Recorder

NAMES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
PERSON, CAR, TRUCK = 0, 2, 5
W, H = 320, 240


def frame(boxes: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]]) -> np.ndarray:
    img = np.full((H, W, 3), 128, np.uint8)
    noise = np.random.default_rng(1).integers(0, 40, (H, W, 1), dtype=np.uint8)
    img = (img + noise).astype(np.uint8)  # texture: the sharpness measure needs some
    for (x1, y1, x2, y2), bgr in boxes:
        img[y1:y2, x1:x2] = bgr
        img[y1:y2:4, x1:x2] = (np.array(bgr) * 0.9).astype(np.uint8)
    return img


def dets(rows: list[tuple[tuple[int, int, int, int], int, int]]) -> Detections:
    return Detections(
        xyxy=np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
        scores=np.full(len(rows), 0.9, np.float32),
        class_ids=np.array([r[1] for r in rows], np.int32),
        track_ids=np.array([r[2] for r in rows], np.int32),
    )


def run(rec: Recorder, img: np.ndarray, seen: Detections, n: int) -> list[AppearanceRecord]:
    out: list[AppearanceRecord] = []
    for k in range(n):
        live = frozenset(int(t) for t in seen.track_ids)
        out += rec.update(img, seen, seen, live=live, t=k * 0.2, wall_ms=1000 + 200 * k)
    none = seen.select(np.zeros(len(seen), bool))
    out += rec.update(img, none, none, live=frozenset(), t=n * 0.2, wall_ms=1000 + 200 * n)
    return out


def test_a_white_car_cut_by_the_right_border_is_recorded_as_a_vehicle() -> None:
    car = (250, 100, W, 150)  # cut by the right border: still judged
    rec = Recorder("cam", NAMES)
    got = run(rec, frame([(car, (235, 235, 235))]), dets([(car, CAR, 7)]), 6)
    assert len(got) == 1
    r = got[0]
    assert (r.cls, r.vtype, r.track, r.lower, r.size) == ("vehicle", "car", 7, (), "unknown")
    assert r.upper[0][0] == "white"
    assert r.frames >= 1
    assert r.thumbnail is not None


def test_the_same_van_as_car_and_truck_does_not_occlude_itself() -> None:
    van = (60, 60, 200, 160)
    twin = (62, 61, 199, 160)  # the detector's truck box of the same van (IoU about 0.97)
    img = frame([(van, (40, 40, 200))])
    got = run(Recorder("cam", NAMES), img, dets([(van, CAR, 3), (twin, TRUCK, 4)]), 4)
    assert sorted((r.track, r.vtype) for r in got) == [(3, "car"), (4, "truck")]
    assert all(r.upper[0][0] == "red" for r in got)
    # two different cars overlapping a little: each occludes the other, neither is judged
    other = (150, 60, 290, 160)
    apart = run(Recorder("cam", NAMES), img, dets([(van, CAR, 5), (other, CAR, 6)]), 4)
    assert apart == []


def test_vehicles_never_teach_the_height_model() -> None:
    heights = HeightModel()
    car = (40, 100, 200, 180)
    run(Recorder("cam", NAMES, heights=heights), frame([(car, (0, 0, 200))]),
        dets([(car, CAR, 1)]), 5)  # fmt: skip
    assert all(heights.tracks(y / 12 + 0.01) == 0 for y in range(12))
    person = (100, 40, 140, 200)
    run(Recorder("cam", NAMES, heights=heights), frame([(person, (0, 0, 200))]),
        dets([(person, PERSON, 2)]), 5)  # fmt: skip
    assert heights.tracks(200 / H) == 1


def test_a_long_track_is_rejudged_only_every_few_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parked car: once its best frames are kept, a frame no larger than them is looked at
    (sharpness, then maybe the colour judge) only every RESAMPLE-th time."""
    from agent.lookout import record

    looked: list[float] = []
    sharpness = record._sharpness

    def counting(grey: np.ndarray) -> float:
        looked.append(1.0)
        return min(0.5, sharpness(grey))  # below 1: the size alone never rules a frame out

    monkeypatch.setattr(record, "_sharpness", counting)
    car = (40, 100, 200, 180)
    rec = Recorder("cam", NAMES, best=2)
    img = frame([(car, (0, 0, 200))])
    seen = dets([(car, CAR, 1)])
    n = 42
    for k in range(n):
        rec.update(img, seen, seen, live=frozenset({1}), t=k * 0.2, wall_ms=1000 + 200 * k)
    assert len(looked) == 2 + (n - 2) // RESAMPLE  # the first two fill the list
