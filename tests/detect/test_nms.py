"""Class-aware NMS: hand cases, properties, and agreement with OpenCV's batched NMS."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.nms import iou_one_to_many, nms, nms_per_class


def f32(rows: list[list[float]]) -> npt.NDArray[np.float32]:
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def test_iou_values() -> None:
    box = np.array([0, 0, 10, 10], np.float32)
    others = f32([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(iou_one_to_many(box, others), [1.0, 50 / 150, 0.0, 0.0])


def test_nms_threshold_boundary() -> None:
    boxes = f32([[0, 0, 10, 10], [5, 0, 15, 10]])  # IoU 1/3
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, iou=0.34).tolist() == [0, 1]
    assert nms(boxes, scores, iou=0.33).tolist() == [0]


def test_class_aware_and_order() -> None:
    boxes = f32([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [50, 50, 60, 60]])
    scores = np.array([0.6, 0.9, 0.8, 0.7], np.float32)
    ids = np.array([0, 0, 1, 0], np.int32)
    assert nms_per_class(boxes, scores, ids, iou=0.5).tolist() == [1, 2, 3]
    assert nms(boxes, scores, iou=0.5).tolist() == [1, 3]  # class-blind for contrast
    assert nms_per_class(boxes, scores, ids, iou=0.5, max_det=2).tolist() == [1, 2]


def test_empty() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert nms_per_class(empty, np.zeros(0, np.float32), np.zeros(0, np.int32), 0.5).size == 0


def random_boxes(
    rng: np.random.Generator, n: int, classes: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    xy = rng.uniform(0, 600, (n, 2))
    wh = rng.uniform(5, 120, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.permutation(np.linspace(0.05, 0.99, n)).astype(np.float32)  # no ties
    return boxes, scores, rng.integers(0, classes, n).astype(np.int32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_opencv_batched_nms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores, ids = random_boxes(rng, 400, 5)
    ours = nms_per_class(boxes, scores, ids, iou=0.45, max_det=1000)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    theirs = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), scores.tolist(), ids.tolist(), score_threshold=0.0, nms_threshold=0.45
    )
    assert len(ours) > 50
    assert sorted(ours.tolist()) == sorted(np.asarray(theirs).ravel().tolist())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 60),
    iou=st.floats(0.1, 0.9),
)
def test_nms_properties(seed: int, n: int, iou: float) -> None:
    boxes, scores, ids = random_boxes(np.random.default_rng(seed), n, 3)
    keep = nms_per_class(boxes, scores, ids, iou=iou)
    kept = set(keep.tolist())
    assert np.all(np.diff(scores[keep]) <= 0)  # best first
    for i in keep:  # kept boxes of one class never overlap more than iou
        same = [j for j in keep if j != i and ids[j] == ids[i]]
        if same:
            assert (iou_one_to_many(boxes[i], boxes[same]) <= iou + 1e-6).all()
    for d in set(range(n)) - kept:  # every dropped box lost to a better one of its class
        rivals = [k for k in keep if ids[k] == ids[d] and scores[k] > scores[d]]
        assert rivals
        assert (iou_one_to_many(boxes[d], boxes[rivals]) > iou - 1e-6).any()
