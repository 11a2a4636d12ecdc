"""Snapshots: masks are black in the decoded JPEG, the size cap holds, blur and crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.video.snapshot import SnapshotError, encode_snapshot, mask_frame


def noisy(h: int = 480, w: int = 640) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_masked_region_is_black_in_the_decoded_jpeg() -> None:
    frame = np.full((480, 640, 3), 200, np.uint8)
    mask = [(0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5)]  # the top-right quarter
    img = decode(encode_snapshot(frame, masks=[mask], max_bytes=150_000))
    assert img[10:230, 330:630].max() <= 8  # JPEG ringing only at the edge
    assert img[260:470, 10:310].min() >= 190
    assert frame.min() == 200  # the input is untouched


def test_mask_applies_before_crop() -> None:
    frame = np.full((100, 100, 3), 200, np.uint8)
    out = mask_frame(frame, [[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]])
    assert out[:, :49].max() == 0
    assert out[:, 52:].min() == 200
    crop = decode(
        encode_snapshot(
            frame, masks=[[(0, 0), (0.5, 0), (0.5, 1), (0, 1)]], crop=(0.25, 0.0, 0.75, 1.0)
        )
    )
    assert crop.shape[:2] == (100, 50)
    assert crop[:, :20].max() <= 8


@pytest.mark.parametrize("cap", [5_000, 20_000, 60_000])
def test_size_cap_is_honoured(cap: int) -> None:
    jpeg = encode_snapshot(noisy(), max_bytes=cap)  # noise compresses badly
    assert len(jpeg) <= cap
    assert decode(jpeg).shape[1] <= 640


def test_small_picture_keeps_full_size_and_quality() -> None:
    frame = np.full((480, 640, 3), 90, np.uint8)
    assert decode(encode_snapshot(frame, max_bytes=150_000)).shape == (480, 640, 3)


def test_impossible_cap_is_an_error() -> None:
    with pytest.raises(SnapshotError, match="cannot fit"):
        encode_snapshot(noisy(), max_bytes=300)


def test_person_blur_removes_detail_only_in_the_box() -> None:
    frame = noisy()
    boxes = np.array([[100, 100, 200, 300]], np.float32)
    img = decode(encode_snapshot(frame, blur_boxes=boxes, max_bytes=2_000_000))
    inside = cv2.Laplacian(cv2.cvtColor(img[120:280, 120:180], cv2.COLOR_BGR2GRAY), cv2.CV_32F)
    outside = cv2.Laplacian(cv2.cvtColor(img[120:280, 320:380], cv2.COLOR_BGR2GRAY), cv2.CV_32F)
    assert inside.var() < outside.var() / 10
