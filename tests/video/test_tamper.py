"""Tamper detection on synthetic pictures: covered, turned away, brightness is not tamper."""

from __future__ import annotations

import cv2
import numpy as np

from agent.video.tamper import TamperDetector, TamperParams

P = TamperParams(learn_s=5.0, hold_s=3.0)


def textured(seed: int = 3) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 256, size=(120, 160), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(img, (160, 120), interpolation=cv2.INTER_NEAREST), (3, 3), 0)


def feed(det: TamperDetector, img: np.ndarray, t0: float, n: int) -> list[tuple[float, str]]:
    out = []
    for k in range(n):
        r = det.feed(img, t0 + k)
        if r is not None:
            out.append((t0 + k, r))
    return out


def test_covered_camera_is_tampered_after_hold_and_cleared_after() -> None:
    det = TamperDetector(P)
    assert feed(det, textured(), 0, 10) == []
    covered = np.full((120, 160), 40, np.uint8)
    assert feed(det, covered, 10, 5) == [(13, "tampered")]
    assert det.why == "covered"
    assert feed(det, textured(), 15, 5) == [(18, "tamper_cleared")]


def test_turned_away_is_tampered_short_glitch_is_not() -> None:
    det = TamperDetector(P)
    feed(det, textured(), 0, 10)
    assert feed(det, textured(seed=99), 10, 2) == []  # 2 s glitch: under the hold
    assert feed(det, textured(), 12, 3) == []
    assert feed(det, textured(seed=99), 15, 5) == [(18, "tampered")]
    assert det.why == "moved"


def test_brightness_and_contrast_change_is_not_tamper() -> None:
    det = TamperDetector(P)
    feed(det, textured(), 0, 10)
    darker = (textured().astype(np.float32) * 0.6 + 20).astype(np.uint8)
    assert feed(det, darker, 10, 30) == []
