"""Capture with real files made here: end, loop, frozen, corrupted, unopenable, reconnect."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config import CameraConfig
from agent.video.capture import Capture, FrameSlot

pytestmark = pytest.mark.timeout(60)


def write_video(path: Path, n: int, *, fps: float = 20.0, moving: bool = True) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert w.isOpened()
    rng = np.random.default_rng(5)
    base = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    for i in range(n):
        img = base.copy()
        if moving:
            x = (i * 7) % 120
            img[40:80, x : x + 40] = 255
        w.write(img)
    w.release()
    return path


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[float, str, str | None]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, why: str | None) -> None:
        with self._cond:
            self.items.append((time.monotonic(), kind, why))
            self._cond.notify_all()

    def wait(self, kind: str, timeout: float = 10.0) -> tuple[str, str | None]:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, k, why in self.items:
                    if k == kind:
                        return k, why
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind!r} report in {timeout} s: {self.items}")
                self._cond.wait(left)

    @property
    def kinds(self) -> list[tuple[str, str | None]]:
        return [(k, w) for _, k, w in self.items]


def cam(source: Path | str, **kw: Any) -> CameraConfig:
    base = {"id": "cam-t", "source": str(source), "reconnect_min_s": 0.1, "reconnect_max_s": 0.4}
    return CameraConfig.model_validate({**base, **kw})


def run_capture(cfg: CameraConfig, reports: Reports) -> Capture:
    c = Capture(cfg, reports)
    c.start()
    assert [t.name for t in c.threads()] == ["capture-cam-t"]
    return c


def test_slot_keeps_only_the_newest_and_counts_drops() -> None:
    slot = FrameSlot()
    img = np.zeros((2, 2, 3), np.uint8)
    for k in range(5):
        slot.put(img, float(k), 0)
    f = slot.take()
    assert f is not None
    assert (f.seq, f.t, slot.dropped) == (5, 4.0, 4)
    assert slot.take(after_seq=f.seq) is None


def test_file_that_ends_is_lost_with_why_ended_and_paced(tmp_path: Path) -> None:
    reports = Reports()
    c = run_capture(cam(write_video(tmp_path / "a.avi", 20, fps=20)), reports)
    t0 = time.monotonic()
    try:
        assert reports.wait("lost") == ("lost", "ended")
        assert time.monotonic() - t0 >= 0.8  # 20 frames at 20 fps: about a second
        assert c.facts()["state"] == "ended"
        assert c.slot.frames == 20
        time.sleep(0.3)
        assert reports.kinds == [("lost", "ended")]  # no reconnect after a final end
    finally:
        c.stop(2.0)
    assert not c.threads()[0].is_alive()


def test_loop_restarts_the_file(tmp_path: Path) -> None:
    reports = Reports()
    c = run_capture(cam(write_video(tmp_path / "a.avi", 10, fps=40), loop=True), reports)
    try:
        deadline = time.monotonic() + 10
        while c.slot.frames < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.slot.frames >= 25
        assert reports.kinds == []
        assert c.facts()["state"] == "ok"
    finally:
        c.stop(2.0)


def test_frozen_stream_is_lost_then_not_restored_by_the_same_picture(tmp_path: Path) -> None:
    reports = Reports()
    still = write_video(tmp_path / "still.avi", 200, fps=50, moving=False)
    c = run_capture(cam(still, frozen_s=0.5, loop=True), reports)
    try:
        assert reports.wait("lost") == ("lost", "frozen")
        time.sleep(1.0)  # reconnects see the same picture again: still lost
        assert reports.kinds == [("lost", "frozen")]
        assert c.reconnects >= 1
    finally:
        c.stop(2.0)


def test_frozen_then_moving_again_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "thaw.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (160, 120))
    base = np.random.default_rng(5).integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    for i in range(150):
        img = base.copy()
        if i >= 60:  # 1.2 s still, then a moving square
            img[40:80, (i * 7) % 120 : (i * 7) % 120 + 40] = 255
        w.write(img)
    w.release()
    reports = Reports()
    c = run_capture(cam(path, frozen_s=0.5), reports)
    try:
        assert reports.wait("restored") == ("restored", None)
        assert reports.kinds[:2] == [("lost", "frozen"), ("restored", None)]
    finally:
        c.stop(2.0)


def test_corrupted_file_is_a_clear_loss_not_a_crash(tmp_path: Path, caplog: Any) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    reports = Reports()
    c = run_capture(cam(bad), reports)
    try:
        assert reports.wait("lost") == ("lost", "open_failed")
        time.sleep(0.5)
        assert c.threads()[0].is_alive()
        assert c.facts()["state"] == "lost"
    finally:
        c.stop(2.0)
    assert "bad.mp4" in caplog.text


def test_unopenable_source_then_reconnect_and_restored(tmp_path: Path) -> None:
    path = tmp_path / "later.avi"
    reports = Reports()
    c = run_capture(cam(path, loop=True), reports)
    try:
        assert reports.wait("lost") == ("lost", "open_failed")
        write_video(tmp_path / "tmp.avi", 20).rename(path)
        assert reports.wait("restored") == ("restored", None)
        assert c.facts()["state"] == "ok"
        assert c.reconnects >= 1
    finally:
        c.stop(2.0)


def test_unopenable_device_and_stream_urls(tmp_path: Path) -> None:
    for source in ("/dev/video97", "rtsp://127.0.0.1:9/none"):
        reports = Reports()
        c = Capture(cam(source), reports)
        c.start()
        try:
            assert reports.wait("lost", timeout=20) == ("lost", "open_failed")
        finally:
            c.stop(2.0)


def test_stall_is_detected_by_check_and_restored(tmp_path: Path) -> None:
    reports = Reports()
    c = run_capture(cam(write_video(tmp_path / "a.avi", 400, fps=20), stall_s=0.5), reports)
    try:
        deadline = time.monotonic() + 5
        while c.slot.frames < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        c.check(time.monotonic())
        assert reports.kinds == []
        # A read that hangs looks, from outside, like an old last frame.
        c.check(time.monotonic() + 1.0)
        assert reports.wait("lost") == ("lost", "stall")
        assert reports.wait("restored") == ("restored", None)  # the reopened file reads
    finally:
        c.stop(2.0)
