"""Fixtures of the bell tests: a real spool file, its outbox, services stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.bell import BellService
from agent.config import BellConfig, DeviceConfig
from agent.events import EventStamper, Topics
from agent.outbox import Outbox
from agent.spool import Spool

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
