"""Fixtures of the bell tests: a real spool file, its outbox, services stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from agent.bell import BellService
from agent.config import BellConfig, DeviceConfig
from agent.events import EventStamper, Topics
from agent.outbox import Outbox
from agent.spool import Spool
from tests.bell.modbus_module import SimModule

DEVICE = DeviceConfig(
    id="pole-0042", site="gangnam", pole="GN-042", latitude=37.4979, longitude=127.0276
)
TOPICS = Topics("pole", "gangnam", "pole-0042")


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    yield s
    s.close()


@pytest.fixture
def outbox(spool: Spool) -> Outbox:
    return Outbox(spool, TOPICS, EventStamper(DEVICE.id))


@pytest.fixture
def make_service(outbox: Outbox) -> Iterator[Callable[..., BellService]]:
    made: list[BellService] = []

    def make(cfg: BellConfig, **kw: Any) -> BellService:
        svc = BellService(cfg, DEVICE, outbox, **kw)
        svc.start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop(5)


@pytest.fixture
def module() -> Iterator[SimModule]:
    """A simulated Modbus module on a real pty."""
    m = SimModule(unit=1)
    yield m
    m.close()


S = TypeVar("S")


class Fed(Protocol[S]):
    def feed(self, level: bool, t: float) -> list[S]: ...
    def tick(self, t: float) -> list[S]: ...


def timed(steps: list[tuple[bool, float]]) -> list[tuple[bool, float]]:
    """(level, gap) steps -> (level, time) samples."""
    trace, t = [], 0.0
    for level, gap in steps:
        t += gap
        trace.append((level, t))
    return trace


def lazy_and_eager(
    make: Callable[[], Fed[S]], trace: list[tuple[bool, float]], end: float, every: float
) -> tuple[list[S], list[S]]:
    """The signals of ``trace`` ticked only at the end, and ticked every ``every`` seconds."""
    lazy_m, eager_m = make(), make()
    lazy = [s for level, t in trace for s in lazy_m.feed(level, t)] + lazy_m.tick(end)
    eager: list[S] = []
    prev = 0.0
    for level, when in trace:
        k = prev
        while k + every < when:
            k += every
            eager += eager_m.tick(k)
        eager += eager_m.feed(level, when)
        prev = when
    return lazy, eager + eager_m.tick(end)
