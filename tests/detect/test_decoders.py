"""Decoders over small hand-made outputs, one per layout, and the layout chooser."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from agent.detect.decoders import (
    decode,
    decode_anchor_free,
    decode_anchor_free_t,
    decode_end2end,
    decode_objectness,
    num_classes,
    select_layout,
)
from agent.detect.errors import ModelError

INF = np.inf


def thr(*values: float) -> npt.NDArray[np.float32]:
    return np.array(values, dtype=np.float32)


# ----------------------------------------------------------------------------- end2end
def test_end2end_thresholds_per_class_and_sorts() -> None:
    out = np.array(
        [
            [10, 10, 50, 80, 0.40, 0],  # person 0.40 >= 0.3: kept
            [60, 10, 90, 40, 0.45, 1],  # class 1 needs 0.5: dropped
            [0, 0, 5, 5, 0.90, 2],  # class 2 unwanted (inf): dropped
            [20, 20, 30, 30, 0.95, 1],  # class 1 0.95: kept, first
            [1, 1, 2, 2, 0.99, 7],  # class id beyond the model's names: dropped
            [0, 0, 0, 0, 0.00, 0],  # padding row of an end-to-end model
        ],
        dtype=np.float32,
    )
    got = decode_end2end(out, thr(0.3, 0.5, INF))
    assert got.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(got.scores, [0.95, 0.40])
    np.testing.assert_allclose(got.xyxy, [[20, 20, 30, 30], [10, 10, 50, 80]])
    assert got.xyxy.dtype == np.float32
    assert got.class_ids.dtype == np.int32


def test_end2end_max_det_and_empty() -> None:
    out = np.array([[0, 0, 1, 1, s, 0] for s in (0.5, 0.9, 0.7)], dtype=np.float32)
    got = decode_end2end(out, thr(0.1), max_det=2)
    np.testing.assert_allclose(got.scores, [0.9, 0.7])
    assert len(decode_end2end(np.zeros((0, 6), np.float32), thr(0.1))) == 0
    assert len(decode_end2end(out, thr(0.95))) == 0  # all below threshold


# ----------------------------------------------------------------------------- raw heads
def raw_rows() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Six anchors, three classes, as rows (N, 4) cxcywh and (N, 3) class scores."""
    boxes = np.array(
        [
            [50, 50, 20, 40],  # A: class 0, 0.9
            [52, 51, 20, 40],  # B: overlaps A, class 0, 0.8 -> suppressed
            [51, 50, 20, 40],  # C: overlaps A, class 1, 0.7 -> kept (other class)
            [200, 100, 10, 10],  # D: class 2 0.95, unwanted
            [300, 300, 30, 30],  # E: class 0 0.2, below threshold
            [120, 80, 10, 20],  # F: class 1 0.6, alone
        ],
        dtype=np.float32,
    )
    scores = np.array(
        [
            [0.9, 0.1, 0.0],
            [0.8, 0.2, 0.1],
            [0.1, 0.7, 0.0],
            [0.1, 0.3, 0.95],
            [0.2, 0.1, 0.1],
            [0.0, 0.6, 0.5],
        ],
        dtype=np.float32,
    )
    return boxes, scores


EXPECT_SCORES = [0.9, 0.7, 0.6]
EXPECT_IDS = [0, 1, 1]
EXPECT_XYXY = [[40, 30, 60, 70], [41, 30, 61, 70], [115, 70, 125, 90]]


def test_anchor_free_channels_first() -> None:
    boxes, scores = raw_rows()
    out = np.concatenate([boxes, scores], axis=1).T.copy()  # (4+C, N)
    assert out.shape == (7, 6)
    got = decode_anchor_free(out, thr(0.5, 0.5, INF), iou=0.45)
    np.testing.assert_allclose(got.scores, EXPECT_SCORES)
    assert got.class_ids.tolist() == EXPECT_IDS
    np.testing.assert_allclose(got.xyxy, EXPECT_XYXY)


def test_anchor_free_transposed_gives_the_same() -> None:
    boxes, scores = raw_rows()
    out = np.concatenate([boxes, scores], axis=1)  # (N, 4+C)
    got = decode_anchor_free_t(out, thr(0.5, 0.5, INF), iou=0.45)
    np.testing.assert_allclose(got.scores, EXPECT_SCORES)
    assert got.class_ids.tolist() == EXPECT_IDS
    np.testing.assert_allclose(got.xyxy, EXPECT_XYXY)


def test_objectness_multiplies_obj_and_class_probability() -> None:
    boxes, probs = raw_rows()
    obj = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5], dtype=np.float32)
    out = np.concatenate([boxes, obj[:, None], probs], axis=1)  # (N, 5+C)
    got = decode_objectness(out, thr(0.5, 0.5, INF), iou=0.45)
    # F: 0.5 x 0.6 = 0.3 < 0.5 now: dropped; the rest as before.
    np.testing.assert_allclose(got.scores, [0.9, 0.7])
    assert got.class_ids.tolist() == [0, 1]
    low = decode_objectness(out, thr(0.25, 0.25, INF), iou=0.45)
    assert float(low.scores[-1]) == pytest.approx(0.3)


def test_raw_iou_threshold_matters() -> None:
    boxes, scores = raw_rows()
    out = np.concatenate([boxes, scores], axis=1)
    loose = decode_anchor_free_t(out, thr(0.5, 0.5, INF), iou=0.95)
    assert len(loose) == 4  # A and B both survive when almost any overlap is allowed


@pytest.mark.parametrize(
    ("layout", "shape"),
    [("anchor_free", (84, 0)), ("anchor_free_t", (0, 84)), ("objectness", (0, 85))],
)
def test_raw_empty_outputs(layout: str, shape: tuple[int, int]) -> None:
    got = decode(layout, np.zeros(shape, np.float32), np.full(80, 0.3, np.float32), 0.45)  # type: ignore[arg-type]
    assert len(got) == 0
    assert got.xyxy.shape == (0, 4)


@pytest.mark.parametrize("layout", ["anchor_free", "anchor_free_t", "objectness"])
def test_raw_all_below_threshold(layout: str) -> None:
    rng = np.random.default_rng(3)
    n, c = 50, 4
    rows = np.concatenate(
        [rng.uniform(10, 100, (n, 4)), rng.uniform(0, 0.29, (n, c + 1))], axis=1
    ).astype(np.float32)
    if layout == "anchor_free":
        out = rows[:, : 4 + c].T.copy()
    elif layout == "anchor_free_t":
        out = rows[:, : 4 + c]
    else:
        out = rows
    got = decode(layout, out, np.full(c, 0.3, np.float32), 0.45)  # type: ignore[arg-type]
    assert len(got) == 0


def test_raw_no_wanted_class() -> None:
    boxes, scores = raw_rows()
    out = np.concatenate([boxes, scores], axis=1)
    assert len(decode_anchor_free_t(out, thr(INF, INF, INF), iou=0.45)) == 0


def test_decoder_refuses_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"\[K, 6\]"):
        decode_end2end(np.zeros((3, 7), np.float32), thr(0.5))


# ----------------------------------------------------------------------------- layouts
ULTRA_E2E = {"args": "{'batch': 1, 'nms': True}", "names": "{0: 'a'}"}
ULTRA_RAW = {"end2end": "False"}


@pytest.mark.parametrize(
    ("shape", "meta", "names", "expected"),
    [
        ((1, 300, 6), ULTRA_E2E, 80, "end2end"),  # the default model
        ((1, 300, 6), {}, None, "end2end"),  # a YOLOv10 without metadata
        ((1, 100, 6), {"end2end": "True"}, 80, "end2end"),
        ((1, 84, 8400), ULTRA_RAW, 80, "anchor_free"),  # the raw-dyn model at 640
        ((1, 84, 1680), {}, None, "anchor_free"),  # channels-first without names
        ((1, 8400, 84), {}, 80, "anchor_free_t"),
        ((1, 25200, 85), {}, 80, "objectness"),  # YOLOv5s COCO
        ((1, 6300, 6), {}, 1, "objectness"),  # one-class YOLOv5
        ((1, 8400, 6), {}, 2, "anchor_free_t"),  # two-class YOLOv8, transposed
        ((1, 6, 8400), {}, 2, "anchor_free"),
    ],
)
def test_select_layout(
    shape: tuple[int, int, int], meta: dict[str, str], names: int | None, expected: str
) -> None:
    assert select_layout(shape, metadata=meta, num_names=names) == expected


@pytest.mark.parametrize(
    ("shape", "meta", "names", "match"),
    [
        ((1, 84), {}, None, r"\[1, 84\] is not \[1, A, B\]"),
        ((2, 300, 6), {}, None, r"\[2, 300, 6\] is not"),
        ((1, "anchors", 6), {}, None, "is not"),
        ((1, 8400, 84), {}, None, "set detection.layout"),  # transposed or objectness?
        (
            (1, 84, 8400),
            {},
            79,
            r"\[1, 84, 8400\] reads as anchor_free with 80 classes, but 79 class names",
        ),
        ((1, 300, 7), {"end2end": "True"}, 80, r"\[1, 300, 7\] matches no known layout"),
        ((1, 4, 10), {}, None, "matches no known layout"),
    ],
)
def test_select_layout_errors(
    shape: tuple[int | str, ...], meta: dict[str, str], names: int | None, match: str
) -> None:
    with pytest.raises(ModelError, match=match):
        select_layout(shape, metadata=meta, num_names=names)


def test_forced_layout_checked_against_shape() -> None:
    assert select_layout((1, 8400, 84), forced="anchor_free_t") == "anchor_free_t"
    assert select_layout((1, 8400, 84), forced="objectness") == "objectness"  # C = 79
    with pytest.raises(ModelError, match=r"'objectness' but the output shape is \[1, 8400, 84\]"):
        select_layout((1, 8400, 84), forced="objectness", num_names=80)
    with pytest.raises(ModelError, match="'end2end'"):
        select_layout((1, 84, 8400), forced="end2end")


def test_num_classes() -> None:
    assert num_classes("anchor_free", (1, 84, 8400)) == 80
    assert num_classes("anchor_free_t", (1, 8400, 84)) == 80
    assert num_classes("objectness", (1, 25200, 85)) == 80
    assert num_classes("end2end", (1, 300, 6)) is None
