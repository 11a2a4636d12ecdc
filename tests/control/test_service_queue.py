"""The CommandService in-process over a real spool: the bounded queue, one answer each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_mapping
from agent.control.auth import make_request
from agent.control.service import QUEUE_SIZE, CommandService
from agent.events import EventStamper, Topics, decode_event
from agent.outbox import Outbox
from agent.spool import Spool

KEY = bytes(range(32))
TOPICS = Topics("pole", "lab", "dev-1")


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    yield s
    s.close()


def service(tmp_path: Path, spool: Spool) -> CommandService:
    (tmp_path / "key").write_text(KEY.hex())
    cfg = load_mapping(
        {
            "device": {"id": "dev-1", "site": "lab", "pole": "1", "latitude": 0, "longitude": 0},
            "bell": {"backend": "simulator"},
            "commands": {"key_file": str(tmp_path / "key")},
        }
    )
    return CommandService(cfg, Outbox(spool, TOPICS, EventStamper("dev-1")))


def results(spool: Spool) -> list[dict[str, str]]:
    out = []
    for row in spool.next_batch(1000):
        event = decode_event(row.payload)
        assert row.topic == TOPICS.cmd_result
        out.append(json.loads(row.payload) | {"k": event.k})
    return out


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path, spool: Spool) -> None:
    svc = service(tmp_path, spool)
    for _ in range(QUEUE_SIZE + 10):
        svc.submit(TOPICS.cmd("ping"), b"{}")  # no thread yet: nothing takes them
    assert svc.facts()["queued"] == QUEUE_SIZE
    assert svc.facts()["queue_full"] == 10


def test_what_is_queued_at_stop_is_answered_not_run(tmp_path: Path, spool: Spool) -> None:
    svc = service(tmp_path, spool)
    reqs = []
    for _ in range(3):
        req, payload = make_request(KEY, TOPICS.cmd("ping"))
        svc.submit(TOPICS.cmd("ping"), payload)
        reqs.append(req)
    svc.submit(TOPICS.cmd("ping"), b"\x00garbage")
    svc._stop.set()  # stop before the first turn: everything goes through the drain
    svc.start()
    svc.stop(5.0)
    assert not svc.threads()[0].is_alive()
    got = results(spool)
    assert [r["req"] for r in got] == reqs
    assert {r["res"] for r in got} == {"failed"}
    assert got[0]["why"].startswith("the agent is stopping or reloading")
    assert svc.facts()["dropped"] == {"invalid_json": 1}


def test_a_handler_bug_is_a_failed_result(tmp_path: Path, spool: Spool) -> None:
    svc = service(tmp_path, spool)

    class BrokenBell:
        def acknowledge(self) -> bool:
            raise RuntimeError("relay driver exploded")

    svc.attach(runner=None, bell=BrokenBell(), vision=None)
    svc.start()
    try:
        req, payload = make_request(KEY, TOPICS.cmd("bell-ack"))
        svc.submit(TOPICS.cmd("bell-ack"), payload)
        deadline = 50
        while not results(spool) and deadline:
            svc._stop.wait(0.1)
            deadline -= 1
    finally:
        svc.stop(5.0)
    (got,) = results(spool)
    assert got["req"] == req
    assert got["res"] == "failed"
    assert got["why"] == "RuntimeError: relay driver exploded"
    assert svc.threads()[0].name == "commands"
