"""Snapshots that may leave the device: privacy masks first, then encode, size-capped.

Masks are painted black on a copy of the full frame before anything else (crop, blur,
JPEG), so no masked pixel can reach the encoder.  Optional person blur is applied to the
given boxes.  The JPEG quality is lowered, then the picture scaled down, until the bytes
fit ``max_bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["SnapshotError", "encode_snapshot", "mask_crop", "mask_frame"]

U8 = npt.NDArray[np.uint8]
Polygon = Sequence[tuple[float, float]]
QUALITIES = (85, 70, 55, 40, 30)
MIN_WIDTH = 64


class SnapshotError(Exception):
    """The picture cannot be encoded within the size cap."""


def _pixels(poly: Polygon, w: int, h: int) -> npt.NDArray[np.int32]:
    return np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in poly], np.int32)


def mask_frame(frame: U8, masks: Sequence[Polygon]) -> U8:
    """A copy of ``frame`` with each normalised polygon filled black."""
    out = frame.copy()
    h, w = frame.shape[:2]
    for poly in masks:
        cv2.fillPoly(out, [_pixels(poly, w, h)], (0, 0, 0))
    return out


def mask_crop(frame: U8, masks: Sequence[Polygon], box: tuple[int, int, int, int]) -> U8:
    """A copy of the ``box`` (x1, y1, x2, y2 pixels) of ``frame``, masked exactly as
    :func:`mask_frame` would mask the whole frame, without copying the whole frame."""
    x1, y1, x2, y2 = box
    out = frame[y1:y2, x1:x2].copy()
    h, w = frame.shape[:2]
    for poly in masks:
        cv2.fillPoly(out, [_pixels(poly, w, h)], (0, 0, 0), offset=(-x1, -y1))
    return out


def _blur(img: U8, boxes: npt.NDArray[np.float32]) -> None:
    h, w = img.shape[:2]
    clipped = np.clip(boxes, 0, [w, h, w, h]).astype(np.int64)
    for x1, y1, x2, y2 in clipped.tolist():
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        k = max(3, (min(x2 - x1, y2 - y1) // 3) | 1)  # odd kernel, a third of the box
        img[y1:y2, x1:x2] = cv2.GaussianBlur(img[y1:y2, x1:x2], (k, k), 0)


def encode_snapshot(
    frame: U8,
    *,
    masks: Sequence[Polygon] = (),
    blur_boxes: npt.NDArray[np.float32] | None = None,
    crop: tuple[float, float, float, float] | None = None,
    max_bytes: int = 150_000,
) -> bytes:
    """JPEG of ``frame`` (BGR), masked, optionally blurred and cropped, within ``max_bytes``.

    ``blur_boxes`` are (N, 4) frame pixels; ``crop`` is a normalised x1, y1, x2, y2.
    """
    img = mask_frame(frame, masks)
    if blur_boxes is not None and len(blur_boxes):
        _blur(img, blur_boxes)
    if crop is not None:
        h, w = img.shape[:2]
        x1, y1 = int(crop[0] * w), int(crop[1] * h)
        x2, y2 = max(int(crop[2] * w), x1 + 1), max(int(crop[3] * h), y1 + 1)
        img = img[y1:y2, x1:x2]
    while True:
        for q in QUALITIES:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok and buf.size <= max_bytes:
                return bytes(buf.tobytes())
        if img.shape[1] <= MIN_WIDTH:
            raise SnapshotError(f"cannot fit a snapshot in {max_bytes} bytes")
        new_w = max(MIN_WIDTH, int(img.shape[1] * 0.7))
        new_h = max(1, round(img.shape[0] * new_w / img.shape[1]))
        img = np.asarray(cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA), np.uint8)


def shrink_jpeg(jpeg: bytes, max_bytes: int) -> bytes:
    """The same picture re-encoded (lower quality, then smaller) to fit ``max_bytes``.

    For a snapshot already made that a broker will not take (its maximum packet size is
    learnt only when the link connects); SnapshotError when it cannot fit or decode.
    """
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise SnapshotError("the snapshot is not a JPEG OpenCV can decode")
    return encode_snapshot(np.asarray(img, np.uint8), max_bytes=max_bytes)
