"""Camera tamper: covered, sprayed or defocused (detail lost), or turned away (scene changed).

Pure logic over small grey pictures, fed about once a second by the capture thread.  The
first ``LEARN_S`` of pictures teach a baseline: the detail (variance of the Laplacian) and
a reference thumbnail.  A picture is suspicious when its detail falls under
``DETAIL_RATIO`` of the baseline, or when it no longer correlates with the reference
(normalised cross-correlation under ``NCC_MIN``: brightness and contrast changes do not
count, a different scene does).  Suspicion that lasts ``HOLD_S`` is tampering; health that
lasts ``HOLD_S`` clears it.  While healthy the baseline follows slow drifts of the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["TamperDetector", "TamperParams", "detail", "thumbnail"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TamperParams:
    learn_s: float = 10.0
    hold_s: float = 10.0
    detail_ratio: float = 0.3
    ncc_min: float = 0.4
    drift: float = 0.01  # baseline learning rate per healthy picture


def thumbnail(grey: U8) -> F32:
    """32x24 area-averaged thumbnail as float32."""
    return np.asarray(cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA), np.float32)


def detail(grey: U8) -> float:
    """Variance of the Laplacian: high for a sharp, textured picture, ~0 for a flat one."""
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _ncc(a: F32, b: F32) -> float:
    a0, b0 = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a0 * a0).sum() * (b0 * b0).sum()))
    return float((a0 * b0).sum()) / den if den > 1e-6 else 0.0


class TamperDetector:
    """``feed(grey, t)`` -> "tampered", "tamper_cleared" or None."""

    def __init__(self, params: TamperParams | None = None) -> None:
        self.p = params or TamperParams()
        self._learn: list[tuple[float, F32]] = []
        self._learn_t: float | None = None
        self.baseline: float | None = None
        self._ref: F32 | None = None
        self.tampered = False
        self.why: str | None = None
        self._since: float | None = None  # when the current disagreement began

    def feed(self, grey: U8, t: float) -> Literal["tampered", "tamper_cleared"] | None:
        d, thumb = detail(grey), thumbnail(grey)
        if self.baseline is None or self._ref is None:
            self._learning(d, thumb, t)
            return None
        why = None
        if d < self.p.detail_ratio * self.baseline:
            why = "covered"
        elif _ncc(thumb, self._ref) < self.p.ncc_min:
            why = "moved"
        if (why is not None) == self.tampered:  # agrees with the state: nothing pending
            self._since = None
            if not self.tampered:
                self.baseline += self.p.drift * (d - self.baseline)
                self._ref += self.p.drift * (thumb - self._ref)
            return None
        if self._since is None:
            self._since = t
        if t - self._since < self.p.hold_s:
            return None
        self._since = None
        self.tampered, self.why = why is not None, why
        return "tampered" if self.tampered else "tamper_cleared"

    def _learning(self, d: float, thumb: F32, t: float) -> None:
        if self._learn_t is None:
            self._learn_t = t
        self._learn.append((d, thumb))
        if t - self._learn_t >= self.p.learn_s and len(self._learn) >= 3:
            self.baseline = float(np.median([x for x, _ in self._learn]))
            self._ref = np.mean([th for _, th in self._learn], axis=0).astype(np.float32)
            self._learn = []
