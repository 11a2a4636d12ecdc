"""Faults of a fleet's link against real mosquittos: poison rows, twin units, broker failover."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.dev.broker import LocalBroker
from agent.events import Priority, StatusMessage
from agent.mqtt.poison import publish_size
from agent.spool import Spool, SpoolRow
from agent.spool.dead import read_dead
from tests.agentproc import ROOT, AgentProcess, write_site
from tests.centre.observer import Centre, Received
from tests.mqtt.test_link import (
    STATUS,
    TOPICS,
    Agent,
    cfg_for,
    events_of,
    first_arrivals,
    running,
    settle,
)

MAX_PACKET = 128 * 1024
# A spool file written before the dead table existed (tests/spool/test_dead.py).
BEFORE = ROOT / "tests" / "spool" / "data" / "spool-before-dead.db"


# --------------------------------------------------------------------------- poison rows
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_row_larger_than_the_broker_takes_is_set_aside_and_the_rest_flows(
    protocol: str, tmp_path: Path
) -> None:
    broker = LocalBroker(tmp_path / "b", extra=[f"max_packet_size {MAX_PACKET}"]).start()
    centre = Centre(broker.port)
    aside: list[tuple[SpoolRow, str]] = []
    try:
        spools: list[Spool] = []

        def dead_letter(row: SpoolRow, reason: str) -> None:
            aside.append((row, reason))
            spools[0].set_aside(row, reason)  # what the runner wires: the dead table

        hook = {"dead_letter": dead_letter} if protocol == "5" else {}  # 3.1.1: the default
        agent = Agent(tmp_path / "s.db", cfg_for(broker.port, protocol=protocol), **hook)
        spools.append(agent.spool)
        with running(agent):
            before = [agent.bell()]
            big = agent.spool.put(TOPICS.snapshot("x"), b"\xff" * 150_000, Priority.MEDIA)
            beats = [
                agent.outbox.emit(agent.stamper.health(up=i, ver="t", cfg="c")) for i in range(5)
            ]
            assert all(beats)
            after = [agent.obj()]
            settle(lambda: len(agent.spool) == 0, timeout=30, what="everything but the poison out")
            settle(lambda: agent.link.connected, what="the link up")
            facts = agent.link.facts()
        ids = {e.id for e in before + after}
        settle(lambda: ids <= {e.id for e in events_of(centre)}, what="the rows around it")
        # The heartbeats behind it went out too.
        settle(lambda: len(centre.wait_for(lambda m: m.topic == TOPICS.heartbeat, 5)) == 5)
        assert facts["dead"] == 1
        if protocol == "5":
            # Learned from CONNACK: never sent, so the broker never dropped us.
            assert facts["max_packet"] == MAX_PACKET
            assert facts["reconnects"] == 0
            ((row, reason),) = aside
            assert row.id == big
            assert reason.startswith("too_large")
            dead, _ = read_dead(tmp_path / "s.db")
            assert [(d.row_id, d.size, d.reason) for d in dead] == [(big, 150_000, reason)]
        else:
            # 3.1.1 states no limit: the broker dropped us; three strikes set it aside.
            assert facts["max_packet"] is None
            assert 3 <= facts["reconnects"] <= 5
    finally:
        centre.close()
        broker.stop()


def test_the_agent_sets_a_too_large_row_aside_in_its_dead_table_and_says_so(
    tmp_path: Path,
) -> None:
    """The real agent on a spool file from before the dead table, a broker taking 128 KiB."""
    broker = LocalBroker(tmp_path / "b", extra=[f"max_packet_size {MAX_PACKET}"]).start()
    centre = Centre(broker.port)
    folder = tmp_path / "unit"
    site = write_site(folder, broker.port)
    spool = folder / "spool.db"
    shutil.copy(BEFORE, spool)  # alarms 1 3 5 7, objects 2 4 6, a snapshot 8
    topic = "pole/test-site/test-0001/event/object"
    big = b'{"v":1,"id":"old-9-aaaaaa","boot":"old","seq":9,"k":"object","pad":"%s"}' % (
        b"x" * 200_000
    )
    with sqlite3.connect(spool) as db:  # queued behind the objects, before the later ones
        for body in [big, *(b'{"later":%d}' % i for i in range(5))]:
            db.execute(
                "INSERT INTO outbox (pri, topic, payload, created) VALUES (?, ?, ?, ?)",
                (int(Priority.OBJECT), topic, body, 1_760_000_000_000),
            )
    agent = AgentProcess(site)
    try:
        objects = centre.wait_for(lambda m: m.topic == topic, count=8, timeout=30)
        assert [m.payload for m in objects][3:] == [b'{"later":%d}' % i for i in range(5)]
        assert all(len(m.payload) < 1000 for m in objects)

        def body(m: Received) -> dict[str, Any]:
            data: dict[str, Any] = json.loads(m.payload)
            return data

        notice = centre.wait_for(
            lambda m: m.topic.endswith("/event/system") and "dead" in body(m).get("data", {})
        )[0]
        assert (body(notice)["ev"], body(notice)["what"]) == ("notice", "spool")
        assert topic in body(notice)["why"]
        assert f"at most {MAX_PACKET}" in body(notice)["why"]
        assert body(notice)["data"]["dead"]["event"] == "old-9-aaaaaa"
        beat = centre.wait_for(
            lambda m: m.topic.endswith("/heartbeat") and body(m)["spool"].get("dead") == 1
        )[0]
        assert body(beat)["link"]["dead"] == 1
        assert body(beat)["link"]["reconnects"] == 0
        # The technician's view, next to the running agent (read-only).
        listing = subprocess.run(
            [sys.executable, "-m", "agent", "spool", "dead", str(site), "--json"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        (row,) = json.loads(listing.stdout)["dead"]
        assert (row["row"], row["topic"], row["bytes"]) == (9, topic, len(big))
        assert row["reason"].startswith("too_large")
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0
        centre.close()
        broker.stop()
    assert [d.row_id for d in read_dead(spool)[0]] == [9]


def test_publish_size_is_what_the_broker_counts(tmp_path: Path) -> None:
    """A row exactly at the limit goes out; one byte more is set aside before sending."""
    broker = LocalBroker(tmp_path / "b", extra=["max_packet_size 2000"]).start()
    try:
        with running(Agent(tmp_path / "s.db", cfg_for(broker.port, protocol="5"))) as agent:
            settle(lambda: agent.link.connected, what="the link up")
            topic = TOPICS.snapshot("fit")
            fits = 2000 - publish_size(topic, b"", v5=True)
            while publish_size(topic, b"x" * fits, v5=True) > 2000:
                fits -= 1
            agent.spool.put(topic, b"x" * fits, Priority.MEDIA)
            agent.spool.put(topic, b"x" * (fits + 1), Priority.MEDIA)
            settle(lambda: len(agent.spool) == 0, what="the spool to empty")
            assert (agent.link.delivered, agent.link.dead, agent.link.reconnects) == (1, 1, 0)
    finally:
        broker.stop()


# --------------------------------------------------------------------------- twin units
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_units_with_one_client_id_slow_down_and_say_so(
    protocol: str, broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    kw: dict[str, Any] = {"client_id": "twin", "protocol": protocol, "backoff_min_s": 0.1}
    kw |= {"backoff_max_s": 3.0, "stable_after_s": 10.0}
    a = Agent(tmp_path / "a.db", cfg_for(broker.port, **kw))
    b = Agent(tmp_path / "b.db", cfg_for(broker.port, **kw))

    def births() -> int:
        with centre._cond:
            msgs = [m for m in centre.messages if m.topic == STATUS]
        return sum(StatusMessage.model_validate_json(m.payload).why == "birth" for m in msgs)

    with running(a), running(b):
        time.sleep(8.0)  # a few short runs in a row: mosquitto sends no DISCONNECT 0x8E
        start, window = births(), 10.0
        time.sleep(window)
        rate = (births() - start) / window
        facts = [a.link.facts(), b.link.facts()]
        whys = {a.link.why, b.link.why}
    # Resetting the backoff on every CONNACK made this several per second, for ever.
    assert rate < 0.8, f"{rate:.2f} connections a second"
    assert sum(f["took_over"] for f in facts) >= 1
    assert "session_taken_over" in whys


# --------------------------------------------------------------------------- failover
def test_the_link_fails_over_to_the_next_broker_losing_nothing_in_order(tmp_path: Path) -> None:
    first = LocalBroker(tmp_path / "b1").start()
    second = LocalBroker(tmp_path / "b2").start()
    centres = [Centre(first.port), Centre(second.port)]
    hosts = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    try:
        with running(Agent(tmp_path / "s.db", cfg_for(first.port, hosts=hosts))) as agent:
            settle(lambda: agent.link.connected, what="the link up")
            assert agent.link.facts()["broker"] == hosts[0]
            sent = [agent.bell() if i % 4 == 0 else agent.obj(i) for i in range(40)]
            first.kill()  # the broker in use dies, mid-stream
            sent += [agent.bell() if i % 3 == 0 else agent.obj(i) for i in range(200)]
            settle(lambda: agent.link.facts()["broker"] == hosts[1], what="the failover")
            settle(lambda: len(agent.spool) == 0, timeout=30, what="the spool to empty")
            assert agent.link.connected
        (birth,) = centres[1].wait_for(lambda m: m.topic == STATUS and b'"birth"' in m.payload)
        assert StatusMessage.model_validate_json(birth.payload).broker == hosts[1]
        ids = {e.id for e in sent}
        both = lambda: first_arrivals(events_of(centres[0]) + events_of(centres[1]))  # noqa: E731
        settle(lambda: ids <= {e.id for e in both()}, what="every event at one of the centres")
        arrived = both()
        for pri in (Priority.ALARM, Priority.OBJECT):
            seqs = [e.seq for e in arrived if e.pri == pri]
            assert seqs == sorted(seqs), f"priority {pri.name} out of order"
    finally:
        for c in centres:
            c.close()
        first.stop()
        second.stop()
