"""Letterbox a BGR frame into a reused float32 NCHW tensor, and map boxes back exactly.

The frame is scaled to fit the model input keeping its aspect ratio, centred, and the
border filled with grey 114 (what YOLO models were trained with).  For a model with a
dynamic input, the input is the smallest multiple of the stride that holds the scaled
frame: a 4:3 camera at 320 becomes 256x320 instead of 320x320, which ASSETS.md measured
12-25 % faster.  The tensor buffer is allocated once per frame size, never per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["PAD_VALUE", "Geometry", "Letterbox", "dynamic_input_hw", "plan"]

PAD_VALUE = 114
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Geometry:
    """Where a frame of ``frame_hw`` sits inside an input of ``input_hw``."""

    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int

    @property
    def sx(self) -> float:
        return self.resized_hw[1] / self.frame_hw[1]

    @property
    def sy(self) -> float:
        return self.resized_hw[0] / self.frame_hw[0]

    def to_input(self, xyxy: F32) -> F32:
        """Frame pixels -> input (letterboxed) pixels."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = xyxy[:, 0::2] * self.sx + self.left
        out[:, 1::2] = xyxy[:, 1::2] * self.sy + self.top
        return out

    def to_frame(self, xyxy: F32) -> F32:
        """Input pixels -> frame pixels, clipped to the frame (the exact inverse inside it)."""
        h, w = self.frame_hw
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = np.clip((xyxy[:, 0::2] - self.left) / self.sx, 0, w)
        out[:, 1::2] = np.clip((xyxy[:, 1::2] - self.top) / self.sy, 0, h)
        return out


def dynamic_input_hw(
    frame_hw: tuple[int, int], input_size: int, stride: int = 32
) -> tuple[int, int]:
    """Smallest (H, W), multiples of ``stride``, holding the frame scaled to ``input_size``."""
    h, w = frame_hw
    r = input_size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    return math.ceil(nh / stride) * stride, math.ceil(nw / stride) * stride


def plan(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Geometry:
    """Scale to fit (up or down), keep the aspect ratio, centre."""
    h, w = frame_hw
    ih, iw = input_hw
    r = min(ih / h, iw / w)
    nh, nw = min(ih, max(1, round(h * r))), min(iw, max(1, round(w * r)))
    return Geometry(frame_hw, input_hw, (nh, nw), (ih - nh) // 2, (iw - nw) // 2)


class Letterbox:
    """Callable ``letterbox(frame_bgr) -> (tensor, geometry)``; the tensor is reused.

    ``input_hw`` fixes the model input; None means dynamic (``input_size`` and ``stride``
    decide per frame size).  The returned tensor is overwritten by the next call.
    """

    def __init__(
        self, input_hw: tuple[int, int] | None, input_size: int = 640, stride: int = 32
    ) -> None:
        self.fixed_hw = input_hw
        self.input_size = input_size
        self.stride = stride
        self.geometry: Geometry | None = None
        self._tensor: F32 = np.zeros((1, 3, 1, 1), dtype=np.float32)
        self._resized: U8 = np.zeros((1, 1, 3), dtype=np.uint8)
        self._planes: list[U8] = []

    def input_hw_for(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        if self.fixed_hw is not None:
            return self.fixed_hw
        return dynamic_input_hw(frame_hw, self.input_size, self.stride)

    def _prepare(self, frame_hw: tuple[int, int]) -> Geometry:
        geo = plan(frame_hw, self.input_hw_for(frame_hw))
        ih, iw = geo.input_hw
        nh, nw = geo.resized_hw
        # The border never changes for one frame size: fill it once here.
        self._tensor = np.full((1, 3, ih, iw), PAD_VALUE / 255.0, dtype=np.float32)
        self._resized = np.empty((nh, nw, 3), dtype=np.uint8)
        self._planes = [np.empty((nh, nw), dtype=np.uint8) for _ in range(3)]
        self.geometry = geo
        return geo

    def __call__(self, frame_bgr: U8) -> tuple[F32, Geometry]:
        fh, fw = frame_bgr.shape[:2]
        geo = self.geometry
        if geo is None or geo.frame_hw != (fh, fw):
            geo = self._prepare((fh, fw))
        nh, nw = geo.resized_hw
        if (nh, nw) == (fh, fw):
            resized = frame_bgr
        else:
            # Bilinear, as the models were trained and as Ultralytics does at inference.
            cv2.resize(frame_bgr, (nw, nh), dst=self._resized, interpolation=cv2.INTER_LINEAR)
            resized = self._resized
        # Contiguous planes convert faster than strided channel views (measured ~20 %).
        cv2.split(resized, self._planes)
        scale = np.float32(1.0 / 255.0)
        t, left = geo.top, geo.left
        for c in range(3):  # BGR -> RGB
            np.multiply(
                self._planes[2 - c],
                scale,
                out=self._tensor[0, c, t : t + nh, left : left + nw],
                casting="unsafe",
            )
        return self._tensor, geo
