"""Motion gate on synthetic frames: still, a moving square, a global brightness jump."""

from __future__ import annotations

import numpy as np

from agent.config import MotionConfig
from agent.video.motion import MotionGate


def scene(square_x: int | None = None, brightness: int = 0) -> np.ndarray:
    rng = np.random.default_rng(7)  # the same texture every call: a still background
    img = rng.integers(60, 120, size=(240, 320, 3), dtype=np.uint8)
    img = np.clip(img.astype(np.int16) + brightness, 0, 255).astype(np.uint8)
    if square_x is not None:
        img[100:140, square_x : square_x + 40] = 250
    return img


CFG = MotionConfig(enabled=True, keepalive_s=5.0, threshold=0.002, global_change=0.5)


def test_still_scene_runs_only_at_keepalive() -> None:
    gate = MotionGate(CFG)
    runs = [t / 5 for t in range(150) if gate(scene(), t / 5)]  # 30 s at 5 fps
    # The first frame and the 2 s hold after it, then once every keep-alive period.
    assert runs[:10] == [k / 5 for k in range(10)]
    assert runs[10:] == [6.8, 11.8, 16.8, 21.8, 26.8]
    assert gate.facts.gated == 150 - len(runs)


def test_moving_square_runs_every_frame_while_it_moves_and_for_the_hold() -> None:
    gate = MotionGate(CFG)
    for t in range(20):
        gate(scene(), t / 5)  # settle; the last keep-alive run was at t=0
    moving = [gate(scene(20 + 8 * k), 4.0 + k / 5) for k in range(25)]
    assert all(moving)
    still_after = [gate(scene(20 + 8 * 24), 9.0 + k / 5) for k in range(5)]
    assert still_after[:5] == [True] * 5  # the 2 s hold
    assert gate.facts.last_fraction > 0


def test_global_brightness_jump_recalibrates_instead_of_triggering() -> None:
    gate = MotionGate(CFG)
    for t in range(10):
        gate(scene(), t / 5)
    before = gate.facts.gated
    runs = [gate(scene(brightness=80), 2.0 + k / 5) for k in range(10)]
    assert gate.facts.recalibrations == 1
    assert not any(runs[1:]), runs  # the new picture is the background: still
    assert gate.facts.gated > before


def test_disabled_gate_always_runs() -> None:
    gate = MotionGate(MotionConfig(enabled=False))
    assert all(gate(scene(), t / 5) for t in range(20))
    assert gate.facts.gated == 0
