"""Faults of a fleet's link against real mosquittos: poison rows, twin units, broker failover."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agent.dev.broker import LocalBroker
from agent.events import Priority, StatusMessage
from agent.mqtt.poison import publish_size
from agent.spool import Spool, SpoolRow
from tests.centre.observer import Centre
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
            spools[0].ack_many([row.id])  # the spool owner's dead-letter table goes here

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
        else:
            # 3.1.1 states no limit: the broker dropped us; three strikes set it aside.
            assert facts["max_packet"] is None
            assert 3 <= facts["reconnects"] <= 5
    finally:
        centre.close()
        broker.stop()


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
