"""Motion gate: run the detector only when something moves (and at a keep-alive rate).

A small grey copy (160 px wide, blurred) is compared with a running-average background;
the fraction of pixels that changed by more than ``PIXEL_DELTA`` grey levels is the motion
measure.  A change over ``global_change`` of the picture is a lighting event (headlights,
the IR filter switching at dusk), not an object: the background is reset to the new
picture instead of waking the detector.  After motion the gate stays open ``HOLD_S`` so the
tracker sees an object settle or leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from agent.config import MotionConfig

__all__ = ["MotionGate", "small_grey"]

WIDTH = 160
PIXEL_DELTA = 20  # grey levels: above sensor noise and compression ringing
ALPHA = 0.05  # background learning rate per analysed frame
HOLD_S = 2.0

U8 = npt.NDArray[np.uint8]


def small_grey(frame: U8, width: int = WIDTH) -> U8:
    """A blurred grey copy ``width`` pixels wide (cheap to compare)."""
    h, w = frame.shape[:2]
    size = (width, max(1, round(h * width / w)))
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(small, (5, 5), 0), dtype=np.uint8)


@dataclass
class MotionFacts:
    frames: int = 0
    gated: int = 0  # frames the detector did not run on
    recalibrations: int = 0
    last_fraction: float = 0.0


class MotionGate:
    """``gate(frame, t) -> bool``: whether the detector should run on this frame."""

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._bg: npt.NDArray[np.float32] | None = None
        self._last_motion = -1e18
        self._last_run = -1e18
        self.facts = MotionFacts()

    def __call__(self, frame: U8, t: float) -> bool:
        self.facts.frames += 1
        run = self._decide(frame, t) if self.cfg.enabled else True
        if run:
            self._last_run = t
        else:
            self.facts.gated += 1
        return run

    def _decide(self, frame: U8, t: float) -> bool:
        small = small_grey(frame)
        if self._bg is None or self._bg.shape != small.shape:
            self._bg = small.astype(np.float32)
            self._last_motion = t  # a new picture: look at it
            return True
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self._bg))
        fraction = float(np.count_nonzero(diff > PIXEL_DELTA)) / diff.size
        self.facts.last_fraction = round(fraction, 4)
        if fraction > self.cfg.global_change:
            self._bg = small.astype(np.float32)
            self.facts.recalibrations += 1
        else:
            cv2.accumulateWeighted(small, self._bg, ALPHA)
            if fraction >= self.cfg.threshold:
                self._last_motion = t
        return t - self._last_motion < HOLD_S or t - self._last_run >= self.cfg.keepalive_s
