"""Letterbox geometry, exact round trip of coordinates, tensor content and buffer reuse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.letterbox import Letterbox, dynamic_input_hw, plan


@pytest.mark.parametrize(
    ("frame_hw", "size", "expected"),
    [
        ((576, 768), 320, (256, 320)),  # 4:3 at 320: not a square 320x320
        ((576, 768), 640, (480, 640)),
        ((1080, 1920), 640, (384, 640)),
        ((1920, 1080), 640, (640, 384)),
        ((640, 640), 640, (640, 640)),
        ((100, 3000), 320, (32, 320)),
    ],
)
def test_dynamic_input_hw(frame_hw: tuple[int, int], size: int, expected: tuple[int, int]) -> None:
    assert dynamic_input_hw(frame_hw, size) == expected


def test_plan_fixed_square() -> None:
    geo = plan((576, 768), (640, 640))
    assert geo.resized_hw == (480, 640)
    assert (geo.top, geo.left) == (80, 0)
    small = plan((120, 160), (640, 640))  # small frames are scaled up
    assert small.resized_hw == (480, 640)


@settings(max_examples=80, deadline=None)
@given(
    fh=st.integers(16, 2000),
    fw=st.integers(16, 2000),
    size=st.sampled_from([320, 480, 640]),
    fixed=st.booleans(),
    pts=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=8),
)
def test_round_trip(
    fh: int, fw: int, size: int, fixed: bool, pts: list[tuple[float, float]]
) -> None:
    input_hw = (size, size) if fixed else dynamic_input_hw((fh, fw), size)
    geo = plan((fh, fw), input_hw)
    xy = np.array(pts, dtype=np.float64) * [fw, fh]
    boxes = np.concatenate([xy[: len(xy) // 2], xy[len(xy) // 2 : 2 * (len(xy) // 2)]], axis=1)
    boxes = boxes.astype(np.float32)
    inside = geo.to_input(boxes)
    ih, iw = input_hw
    assert (inside[:, 0::2] >= geo.left - 1e-3).all()
    assert (inside[:, 0::2] <= iw + 1e-3).all()
    assert (inside[:, 1::2] <= ih + 1e-3).all()
    np.testing.assert_allclose(geo.to_frame(inside), boxes, atol=2e-3 * max(fh, fw) / 100)


def test_to_frame_clips_to_the_frame() -> None:
    geo = plan((576, 768), (640, 640))
    got = geo.to_frame(np.array([[-10, 0, 700, 640]], np.float32))
    np.testing.assert_allclose(got, [[0, 0, 768, 576]])


def test_tensor_content_rgb_scaled_and_padded() -> None:
    frame = np.zeros((576, 768, 3), np.uint8)
    frame[:] = (10, 20, 30)  # B, G, R
    tensor, geo = Letterbox((640, 640))(frame)
    assert tensor.shape == (1, 3, 640, 640)
    assert tensor.dtype == np.float32
    inner = tensor[0, :, geo.top : geo.top + 480, :]
    np.testing.assert_allclose(inner[:, 100, 100], [30 / 255, 20 / 255, 10 / 255], rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 0, 0], [114 / 255] * 3, rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 639, 639], [114 / 255] * 3, rtol=1e-6)


def test_object_lands_where_the_geometry_says() -> None:
    frame = np.zeros((576, 768, 3), np.uint8)
    x1, y1, x2, y2 = 300, 200, 420, 380
    frame[y1:y2, x1:x2] = 255
    letterbox = Letterbox(None, input_size=320)
    tensor, geo = letterbox(frame)
    assert geo.input_hw == (256, 320)
    ys, xs = np.nonzero(tensor[0, 0] > 0.9)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = geo.to_frame(found)
    np.testing.assert_allclose(back, [[x1, y1, x2, y2]], atol=768 / 320 * 1.5)


def test_buffer_reused_until_the_frame_size_changes() -> None:
    letterbox = Letterbox(None, input_size=320)
    a = np.full((576, 768, 3), 50, np.uint8)
    t1, _ = letterbox(a)
    t2, _ = letterbox(np.full((576, 768, 3), 200, np.uint8))
    assert t1 is t2  # the same preallocated buffer, overwritten in place
    assert float(t2[0, 0, 128, 160]) == pytest.approx(200 / 255)
    t3, geo = letterbox(np.full((480, 640, 3), 9, np.uint8))
    assert geo.frame_hw == (480, 640)
    assert t3.shape == (1, 3, 256, 320)


def test_same_size_frame_is_not_resized() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    tensor, geo = Letterbox((256, 320))(frame)
    assert (geo.top, geo.left, geo.resized_hw) == (0, 0, (256, 320))
    np.testing.assert_allclose(tensor[0, 0], frame[:, :, 2] / 255.0, rtol=1e-6)
