"""The Worker base: a named thread, progress, stop with wake, did-not-stop, crash hooks."""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest

from agent.worker import Worker

pytestmark = pytest.mark.timeout(30)


class Ticker(Worker):
    """Counts turns; waits on the stop event between them."""

    def __init__(self) -> None:
        super().__init__("ticker")
        self.turns = 0
        self.finished = False

    def _turn(self) -> None:
        self.turns += 1
        self._stop.wait(0.01)

    def _finish(self) -> None:
        self.finished = True


class QueueWaiter(Worker):
    """Blocks on a queue for a long time: only the wake hook makes stop quick."""

    def __init__(self) -> None:
        super().__init__("waiter")
        self.q: queue.Queue[str | None] = queue.Queue()

    def _turn(self) -> None:
        self.q.get(timeout=30)

    def _wake(self) -> None:
        self.q.put(None)


class Stuck(Worker):
    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = threading.Event()

    def _run(self) -> None:
        self.release.wait(10)  # ignores the stop event, like a read that hangs


class Crasher(Worker):
    def __init__(self) -> None:
        super().__init__("crasher")
        self.crash: Exception | None = None
        self.finished = False

    def _turn(self) -> None:
        raise RuntimeError("boom")

    def _crashed(self, exc: Exception) -> None:
        self.crash = exc

    def _finish(self) -> None:
        self.finished = True


def test_named_thread_progress_and_clean_stop() -> None:
    w = Ticker()
    assert w.threads() == []
    before = w.last_progress()
    w.start()
    (thread,) = w.threads()
    assert thread.name == "ticker"
    assert thread.daemon
    end = time.monotonic() + 5
    while w.turns < 3 and time.monotonic() < end:
        time.sleep(0.01)
    assert w.last_progress() > before
    assert not w.stopping
    assert w.stop(2.0) is True
    assert w.stopping
    assert not thread.is_alive()
    assert w.finished


def test_stop_before_start_and_twice_is_harmless() -> None:
    w = Ticker()
    assert w.stop(0.1) is True
    w2 = Ticker()
    w2.start()
    assert w2.stop(2.0) is True
    assert w2.stop(2.0) is True


def test_wake_hook_unblocks_a_waiting_thread() -> None:
    w = QueueWaiter()
    w.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    assert w.stop(5.0) is True
    assert time.monotonic() - t0 < 2.0  # not the queue's 30 s timeout


def test_a_thread_that_does_not_stop_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    w = Stuck()
    w.start()
    with caplog.at_level(logging.ERROR, logger="agent.worker"):
        assert w.stop(0.1) is False
    assert "stuck did not stop within 0.1 s" in caplog.text
    assert w.threads()[0].is_alive()
    w.release.set()
    assert w.join(5.0) is True


def test_a_crash_calls_the_hooks_and_ends_the_thread() -> None:
    w = Crasher()
    w.start()
    w.threads()[0].join(5)
    assert isinstance(w.crash, RuntimeError)
    assert w.finished
    assert not w.threads()[0].is_alive()
    assert w.stop(0.1) is True


def test_the_default_crash_hook_logs_the_name(caplog: pytest.LogCaptureFixture) -> None:
    class Plain(Worker):
        def _turn(self) -> None:
            raise ValueError("bad turn")

    w = Plain("plain")
    with caplog.at_level(logging.ERROR, logger="agent.worker"):
        w.start()
        w.threads()[0].join(5)
    assert "plain thread crashed: bad turn" in caplog.text


def test_progress_at_an_explicit_time_and_injected_clock() -> None:
    now = [100.0]
    w = Worker("clocked", clock=lambda: now[0])
    assert w.last_progress() == 100.0
    now[0] = 105.0
    w.progress()
    assert w.last_progress() == 105.0
    w.progress(90.0)
    assert w.last_progress() == 90.0
