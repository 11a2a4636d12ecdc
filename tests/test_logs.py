"""Logging through a queue: a blocked stdout (a stalled journald) never blocks the logger."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from agent import logs
from agent.bell import BellService
from agent.bell.hw.simulator import SimulatorOutputs
from agent.config import BellConfig
from agent.events import EventStamper
from agent.outbox import Outbox
from agent.spool import Spool
from tests.bell.conftest import DEVICE, TOPICS


class BlockedStdout:
    """stdout as a pipe whose buffer is full and which nobody reads, until ``drain``."""

    def __init__(self) -> None:
        self.r, w = os.pipe()
        os.set_blocking(w, False)
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(w, b"x" * 65536)
        os.set_blocking(w, True)
        self.file: TextIO = os.fdopen(w, "w", encoding="utf-8")
        self.text = ""
        self._reader: threading.Thread | None = None

    def drain(self) -> None:
        """Start reading (journald is back)."""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        chunks = []
        while data := os.read(self.r, 65536):
            chunks.append(data)
        self.text = b"".join(chunks).decode(errors="replace").replace("x", "")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        if self._reader is not None:
            self._reader.join(5)
        os.close(self.r)


@pytest.fixture
def blocked() -> Iterator[BlockedStdout]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = BlockedStdout()
    try:
        yield out
    finally:
        if out._reader is None:
            out.drain()
        logs.shutdown(5)
        out.close()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_logging_returns_at_once_when_stdout_is_blocked(blocked: BlockedStdout) -> None:
    logs.setup("info", queue_size=1000, stream=blocked.file)
    log = logging.getLogger("agent.test")
    took: list[float] = []

    def spam() -> None:
        start = time.monotonic()
        for i in range(10_000):
            log.info(f"line {i}")  # distinct texts: the rate limit does not hold them back
        took.append(time.monotonic() - start)

    t = threading.Thread(target=spam)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert took[0] < 5.0  # a synchronous write would block at the first line for ever
    stats = logs.stats()
    assert stats["dropped"] >= 10_000 - 1000 - 1  # the queue held 1000, the writer 1
    assert [th.name for th in threading.enumerate()].count("log-writer") == 1
    blocked.drain()
    logs.shutdown(5)
    blocked.file.close()
    blocked._reader.join(5)  # type: ignore[union-attr]
    assert f"{stats['dropped']} log lines dropped: the log output was blocked" in blocked.text
    assert "line 9999" not in blocked.text  # dropped, not reordered
    assert "line 0" in blocked.text


def test_the_rate_limit_still_holds_back_repeats(blocked: BlockedStdout) -> None:
    blocked.drain()
    logs.setup("info", stream=blocked.file)
    for i in range(20):
        logging.getLogger("agent.test").warning("reconnect failed: %d", i)
    logs.shutdown(5)
    blocked.file.close()
    blocked._reader.join(5)  # type: ignore[union-attr]
    assert blocked.text.count("reconnect failed") == 5


def test_the_bell_keeps_switching_while_stdout_is_blocked(
    blocked: BlockedStdout, tmp_path: Path
) -> None:
    logs.setup("debug", queue_size=10, stream=blocked.file)
    spool = Spool(tmp_path / "spool.db")
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(tmp_path / "bell.sock")},
        debounce_ms=0,
        policy={"lockout_s": 0},
        outputs={"duration_s": 0.1},
    )
    svc = BellService(cfg, DEVICE, Outbox(spool, TOPICS, EventStamper(DEVICE.id)))
    svc.start()
    try:
        assert isinstance(svc.outputs, SimulatorOutputs)
        history = svc.outputs.history
        for n in range(1, 11):  # every press and switch logs a line or two
            svc.simulate_press(0.02)
            deadline = time.monotonic() + 5
            while list(history).count(("siren", False)) < n:
                assert time.monotonic() < deadline, f"press {n}: outputs not switched"
                time.sleep(0.005)
        assert logs.stats()["dropped"] > 0
    finally:
        svc.stop(5)
        spool.close()
