"""A camera that comes and goes, over real HTTP (MJPEG): one flapping episode, slower retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agent.video.capture import Capture
from tests.video.mjpeg import MjpegCamera
from tests.video.test_capture import Reports, cam

pytestmark = pytest.mark.timeout(90)


@contextmanager
def running(c: Capture) -> Iterator[Capture]:
    """The capture thread, and the vision thread's once-a-few-frames ``check``."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            c.check(time.monotonic())

    watcher = threading.Thread(target=watch, name="test-check", daemon=True)
    c.start()
    watcher.start()
    try:
        yield c
    finally:
        stop.set()
        watcher.join(2.0)
        c.stop(3.0)


def wait_until(cond: object, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not callable(cond) or not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_camera_that_comes_and_goes_is_one_flapping_episode() -> None:
    """Up for a fifth of a second, down, up again...: 5 changes told, then one episode."""
    reports = Reports()
    with MjpegCamera(frames=4, fps=20) as server:
        cfg = cam(
            server.url,
            reconnect_min_s=0.1,
            reconnect_max_s=0.2,
            flap_changes=6,
            flap_window_s=4,
        )
        with running(Capture(cfg, reports)) as c:
            reports.wait("flapping", timeout=30)
            assert c.facts()["flapping"] is True
            told = len(reports.items)
            seen = server.connections
            wait_until(lambda: server.connections >= seen + 4, 20)  # it keeps flapping...
            assert len(reports.items) == told  # ...and says nothing more
            server.up = False  # then the camera stays down: the episode ends 4 s later
            why = reports.wait("flapping_cleared", timeout=30)[1]
            assert why is not None
            assert why.endswith("not reported; now lost (read_failed)")
            assert c.facts()["flapping"] is False
    kinds = [k for k, _ in reports.kinds]
    assert kinds[:6] == ["lost", "restored", "lost", "restored", "lost", "flapping"]
    assert reports.kinds[0] == ("lost", "read_failed")
    # the camera ended lost, as last told: no catch-up; nothing else at all
    assert kinds[6:] == ["flapping_cleared"], reports.kinds


def test_a_restore_that_does_not_last_does_not_reset_the_reconnect_delay() -> None:
    """A stream that drops right after each reconnect is retried ever more slowly."""
    connections = {}
    for stable_s in (0.0, 10.0):  # 0: every restore resets the delay, as it used to
        with MjpegCamera(frames=2, fps=20) as server:
            cfg = cam(server.url, reconnect_min_s=0.05, reconnect_max_s=5, stable_s=stable_s)
            with running(Capture(cfg, Reports())):
                time.sleep(4.0)
            connections[stable_s] = server.connections
    # 0.05 s doubling (with jitter) plus a tenth of a second up each time: about 6 in 4 s
    assert connections[10.0] <= 8, connections
    assert connections[0.0] >= 2 * connections[10.0], connections
