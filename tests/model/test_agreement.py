"""The agreement metric on hand-made boxes: exact counts and ratios."""

from __future__ import annotations

import numpy as np
import pytest

from agent.detect.detections import Detections
from agent.model.agreement import Agreement, iou_matrix, match


def dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    arr = np.array(rows, dtype=np.float64)
    return Detections(
        arr[:, :4].astype(np.float32), arr[:, 4].astype(np.float32), arr[:, 5].astype(np.int32)
    )


def test_iou_exact() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    # 50 px overlap over 150 px union; itself; disjoint.
    assert iou_matrix(a, b)[0].tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_identical_frames_agree_fully() -> None:
    d = dets([(0, 0, 10, 10, 0.9, 0), (20, 20, 40, 40, 0.8, 2)])
    a = match(d, d)
    assert (a.tp, a.fp, a.fn, a.frames) == (2, 0, 0, 1)
    assert (a.precision, a.recall, a.f1) == (1.0, 1.0, 1.0)


def test_class_iou_extra_and_missed() -> None:
    ref = dets(
        [
            (0, 0, 10, 10, 0.9, 0),  # matched by a shifted box (IoU 0.667)
            (100, 100, 120, 140, 0.7, 0),  # missed: the candidate there is another class
            (50, 50, 60, 60, 0.6, 2),  # missed: candidate overlaps only IoU 1/3
        ]
    )
    cand = dets(
        [
            (2, 0, 12, 10, 0.8, 0),
            (100, 100, 120, 140, 0.7, 7),
            (55, 50, 65, 60, 0.6, 2),
        ]
    )
    a = match(ref, cand)
    assert (a.tp, a.fp, a.fn) == (1, 2, 2)
    assert a.precision == pytest.approx(1 / 3)
    assert a.recall == pytest.approx(1 / 3)
    assert a.f1 == pytest.approx(1 / 3)


def test_greedy_by_score_one_reference_box_matches_once() -> None:
    ref = dets([(0, 0, 10, 10, 0.9, 0)])
    # Two candidates on the same box: the higher score takes it, the other is extra.
    cand = dets([(0, 0, 10, 9, 0.5, 0), (0, 0, 10, 10, 0.9, 0)])
    a = match(ref, cand)
    assert (a.tp, a.fp, a.fn) == (1, 1, 0)
    assert a.precision == 0.5
    assert a.recall == 1.0
    assert a.f1 == pytest.approx(2 / 3)


def test_empty_sides_and_sums() -> None:
    none = dets([])
    one = dets([(0, 0, 10, 10, 0.9, 0)])
    assert match(none, none) == Agreement(0, 0, 0, 1)
    assert match(none, none).f1 == 1.0
    assert match(none, one) == Agreement(0, 1, 0, 1)
    assert match(one, none) == Agreement(0, 0, 1, 1)
    total = match(one, one) + match(none, one) + match(one, none)
    assert total == Agreement(1, 1, 1, 3)
    assert (total.precision, total.recall, total.f1) == (0.5, 0.5, 0.5)
