"""The link against a real mosquitto: round trips, outages, kill -9, will, auth, ACL, TLS.

The centre is :class:`tests.centre.observer.Centre`, an independent paho subscriber.  Where the
broker itself is restarted, the link reaches it through a :class:`Gate` (a plain TCP relay)
that the test opens only once the centre has subscribed again: the centre's own session is
not persistent, and without the gate a fast link could publish before the centre is back,
which would test the centre, not the link.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import agent.mqtt.publisher as publisher_module
from agent.config import DeviceConfig, MqttConfig, TlsConfig
from agent.dev.broker import LocalBroker
from agent.events import (
    EventStamper,
    Priority,
    StatusMessage,
    Topics,
    decode_event,
)
from agent.mqtt.link import Link, StatusInfo
from agent.outbox import Outbox
from agent.spool import Spool
from tests.centre.observer import Centre
from tests.mqtt.netfaults import Gate
from tests.test_events import every_kind
from tests.tls import Pki

ROOT = Path(__file__).resolve().parents[2]
DEVICE = DeviceConfig(
    id="pole-1",
    site="s1",
    pole="P-0412",
    location="역삼초 정문 앞",
    address="서울 강남구 역삼로 1",
    latitude=37.498,
    longitude=127.027,
)
TOPICS = Topics("pole", "s1", "pole-1")
STATUS = TOPICS.status


def settle(pred: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Wait until ``pred()`` holds; fail with ``what`` after ``timeout`` (never asserts time)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def events_of(centre: Centre) -> list[Any]:
    """Every event the centre got so far, decoded and validated, in arrival order."""
    with centre._cond:
        msgs = list(centre.messages)
    return [decode_event(m.payload) for m in msgs if "/event/" in m.topic]


def statuses(centre: Centre, boot: str) -> list[StatusMessage]:
    with centre._cond:
        msgs = list(centre.messages)
    found = [StatusMessage.model_validate_json(m.payload) for m in msgs if m.topic == STATUS]
    return [s for s in found if s.boot == boot]


def first_arrivals(events: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for e in events:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


class Agent:
    """Spool + Outbox + Link in this process, as the runner builds them."""

    def __init__(self, spool_path: Path, cfg: MqttConfig, **link_kw: Any) -> None:
        self.spool = Spool(spool_path)
        self.stamper = EventStamper(DEVICE.id)
        self.outbox = Outbox(self.spool, TOPICS, self.stamper)
        info = StatusInfo(DEVICE, self.stamper.boot_id, "9.9.9", "cfg-hash-1")
        self.link = Link(cfg, self.spool, TOPICS, info, **link_kw)

    def bell(self) -> Any:
        event = self.stamper.bell(ev="pressed", inp="button")
        assert self.outbox.emit(event)
        return event

    def obj(self, tid: int = 1) -> Any:
        event = self.stamper.object(
            ev="update", cam="cam0", tid=tid, cls="person", sc=0.9, box=(0.1, 0.2, 0.3, 0.4)
        )
        assert self.outbox.emit(event)
        return event

    def stop(self) -> None:
        self.link.stop(3.0)
        self.spool.close()


def cfg_for(port: int, **kw: Any) -> MqttConfig:
    base: dict[str, Any] = {"backoff_min_s": 0.05, "backoff_max_s": 0.5, "keepalive_s": 5}
    return MqttConfig(port=port, **{**base, **kw})


@contextmanager
def running(agent: Agent) -> Iterator[Agent]:
    agent.link.start()
    try:
        yield agent
    finally:
        agent.stop()


def centre_back(centre: Centre) -> None:
    """Wait until the centre has reconnected and subscribed (it hears its own probe)."""
    token = os.urandom(4).hex()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if centre.client.is_connected():
            centre.client.publish(f"probe/{token}", b"1", qos=1)
            with suppress(AssertionError):
                centre.on_topic(f"probe/{token}", timeout=0.5)
                return
        time.sleep(0.05)
    raise AssertionError("the centre did not come back after the broker restart")


# --------------------------------------------------------------------------- round trips
def test_every_kind_round_trips_through_the_broker(
    broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    with running(Agent(tmp_path / "s.db", cfg_for(broker.port))) as agent:
        sent = every_kind(agent.stamper)
        for event in sent:
            assert agent.outbox.emit(event)
        kinds = ("/event/", "/heartbeat", "/cmd-result")
        got = centre.wait_for(lambda m: any(k in m.topic for k in kinds), count=len(sent))
        settle(lambda: len(agent.spool) == 0, what="the spool to empty")
    by_id = {}
    for msg in got:
        assert msg.retain is False
        event = decode_event(msg.payload)
        assert msg.topic == TOPICS.event(event.k)
        raw = msg.json()
        assert raw["st"] >= raw["ts"]  # the send time was added at publish
        schema = type(event).model_json_schema()
        assert list(Draft202012Validator(schema).iter_errors(raw)) == []
        by_id[event.id] = event
    for event in sent:
        assert by_id[event.id].model_copy(update={"st": None}) == event


def test_birth_is_retained_with_version_boot_config_and_location(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with running(Agent(tmp_path / "s.db", cfg_for(broker.port))) as agent:
        settle(lambda: agent.link.connected, what="the link to connect")
        late = Centre(broker.port, STATUS)  # subscribes after the birth was sent
        try:
            (msg,) = late.on_topic("/status")
        finally:
            late.close()
        assert msg.retain is True
        birth = StatusMessage.model_validate_json(msg.payload)
        assert (birth.state, birth.why, birth.dev) == ("online", "birth", "pole-1")
        assert (birth.boot, birth.ver, birth.cfg) == (agent.stamper.boot_id, "9.9.9", "cfg-hash-1")
        assert (birth.site, birth.pole, birth.place) == ("s1", "P-0412", "역삼초 정문 앞")
        assert (birth.addr, birth.lat, birth.lon) == ("서울 강남구 역삼로 1", 37.498, 127.027)
        assert agent.link.facts()["state"] == "connected"


# --------------------------------------------------------------------------- outage
def test_broker_outage_loses_nothing_and_keeps_order_per_priority(
    broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    gate = Gate(broker.port)
    try:
        with running(Agent(tmp_path / "s.db", cfg_for(gate.port))) as agent:
            settle(lambda: agent.link.connected, what="the link to connect")
            sent = [agent.bell() if i % 4 == 0 else agent.obj(i) for i in range(40)]
            gate.open.clear()
            broker.stop()  # mid-stream: some of the above may still be in flight
            settle(lambda: not agent.link.connected, what="the link to notice")
            sent += [agent.bell() if i % 3 == 0 else agent.obj(i) for i in range(300)]
            assert len(agent.spool) > 0
            broker.start()
            centre_back(centre)
            gate.open.set()
            ids = {e.id for e in sent}
            centre.wait_for(lambda m: "/event/" in m.topic, count=len(sent), timeout=30)
            settle(lambda: ids <= {e.id for e in events_of(centre)}, what="every event")
            settle(lambda: len(agent.spool) == 0, what="the spool to empty")
            assert agent.link.reconnects >= 1
    finally:
        gate.close()
    arrived = first_arrivals(events_of(centre))
    for pri in (Priority.ALARM, Priority.OBJECT):
        seqs = [e.seq for e in arrived if e.pri == pri]
        assert seqs == sorted(seqs), f"priority {pri.name} out of order"
        assert len(seqs) == len([e for e in sent if e.pri == pri])


def test_started_while_the_broker_is_down_then_delivers(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "b")  # not started yet: the pole boots before the network
    agent = Agent(tmp_path / "s.db", cfg_for(broker.port))
    with running(agent):
        events = [agent.bell(), agent.obj()]
        settle(lambda: agent.link.state == "disconnected", what="a failed attempt")
        assert len(agent.spool) == 2
        broker.start()
        try:
            centre = Centre(broker.port)
            try:
                centre.wait_for(lambda m: "/event/" in m.topic, count=2)
                assert {e.id for e in events} <= {e.id for e in events_of(centre)}
            finally:
                centre.close()
        finally:
            broker.stop()


def test_a_dropped_connection_is_down_but_not_yet_a_failed_attempt(tmp_path: Path) -> None:
    # The fault watch raises a link fault after a number of failed attempts: the drop of an
    # established connection starts the outage, and only the first reconnect that fails
    # counts (else the fault came one attempt early).
    broker = LocalBroker(tmp_path / "b")
    broker.start()
    # First reconnect at least 2 s after the drop (backoff 2 x 2 x jitter 0.5..1).
    agent = Agent(tmp_path / "s.db", cfg_for(broker.port, backoff_min_s=2.0, backoff_max_s=8.0))
    with running(agent):
        settle(lambda: agent.link.connected, what="the link to connect")
        broker.stop()
        settle(lambda: not agent.link.connected, what="the link to notice the drop")
        facts = agent.link.facts()
        assert facts["down_s"] is not None
        assert facts["attempts"] == 0, facts
        settle(lambda: agent.link.facts()["attempts"] == 1, what="the first failed reconnect")
        broker.start()
        try:
            settle(lambda: agent.link.connected, timeout=30, what="the link back")
            assert agent.link.facts()["attempts"] == 0
            assert agent.link.facts()["down_s"] is None
        finally:
            broker.stop()


# --------------------------------------------------------------------------- kill -9
def burst(spool: Path, port: int, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.mqtt.burst_agent", str(spool), str(port), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_boot(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("boot "), line
    return line.split()[1]


def test_agent_killed_mid_burst_then_restarted_delivers_every_emitted_event(
    broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    spool = tmp_path / "s.db"
    gate = Gate(broker.port)
    first = burst(spool, gate.port, -1)
    boot1 = read_boot(first)
    assert first.stdout is not None
    emitted = []
    for line in first.stdout:
        emitted.append(int(line))
        if len(emitted) == 200:
            gate.cut()  # the network goes too: the rest piles up in the spool
        if len(emitted) >= 400:
            break
    first.send_signal(signal.SIGKILL)
    gate.close()
    emitted += [int(x) for x in first.stdout.read().split("\n")[:-1]]
    first.wait(10)
    # The will tells the centre the pole was lost.
    centre.wait_for(
        lambda m: m.topic == STATUS and json.loads(m.payload).get("why") == "lost", timeout=20
    )
    left = Spool(spool)
    pending = len(left)  # what the dead process had not delivered: the second run sends it
    left.close()
    second = burst(spool, broker.port, 3)
    boot2 = read_boot(second)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, "the second run did not drain the spool"
    emitted2 = [int(x) for x in out.split()]
    want = {(boot1, s) for s in emitted} | {(boot2, s) for s in emitted2}
    got = lambda: {(e.boot, e.seq) for e in events_of(centre)}  # noqa: E731
    settle(lambda: want <= got(), timeout=30, what="every emitted event at the centre")
    assert len(emitted) >= 400
    assert pending > 0
    reopened = Spool(spool)
    assert len(reopened) == 0
    reopened.close()


def test_last_will_on_kill_and_offline_on_clean_stop(
    broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    proc = burst(tmp_path / "s.db", broker.port, -1)
    boot = read_boot(proc)
    settle(lambda: any(s.why == "birth" for s in statuses(centre, boot)), what="the birth")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    settle(lambda: any(s.why == "lost" for s in statuses(centre, boot)), what="the will")
    lost = next(s for s in statuses(centre, boot) if s.why == "lost")
    assert lost.state == "offline"

    agent = Agent(tmp_path / "t.db", cfg_for(broker.port))
    agent.link.start()
    boot2 = agent.stamper.boot_id
    settle(lambda: any(s.why == "birth" for s in statuses(centre, boot2)), what="a birth")
    agent.stop()
    settle(lambda: any(s.why == "stopped" for s in statuses(centre, boot2)), what="offline")
    assert agent.link.state == "stopped"
    # The clean stop sent no will, and the retained status says stopped.
    late = Centre(broker.port, STATUS)
    try:
        (retained,) = late.on_topic("/status")
    finally:
        late.close()
    assert retained.retain is True
    assert json.loads(retained.payload)["why"] == "stopped"  # no will replaced it
    assert [s.why for s in statuses(centre, boot2)] == ["birth", "stopped"]


# --------------------------------------------------------------------------- refusals
ACL = """user centre
topic readwrite #

user pole-1
topic write pole/s1/pole-1/status
topic write pole/s1/pole-1/event/bell
topic write pole/s1/pole-1/event/object
topic read pole/s1/pole-1/cmd/#
topic read pole/s1/_site/cmd/#
"""


def test_wrong_password_is_refused_never_connected_and_keeps_the_rows(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "b", passwords={"pole-1": "right", "centre": "c"}, acl=ACL)
    broker.start()
    try:
        centre = Centre(broker.port, username="centre", password="c")
        bad = Agent(tmp_path / "s.db", cfg_for(broker.port, username="pole-1", password="wrong"))
        seen_states: set[str] = set()
        with running(bad):
            events = [bad.bell(), bad.obj()]
            settle(lambda: bad.link.state == "refused", what="the refusal")
            for _ in range(100):  # it keeps retrying with backoff, never "connected"
                seen_states.add(bad.link.state)
                time.sleep(0.01)
            refusal = bad.link.last_refusal or ""
            assert bad.link.facts()["refusal"] == refusal
        assert "connected" not in seen_states
        assert "refused" in seen_states
        assert "user name or password" in refusal.lower() or "not authorized" in refusal.lower()
        good = Agent(tmp_path / "s.db", cfg_for(broker.port, username="pole-1", password="right"))
        assert len(good.spool) == 2  # nothing was lost to the refusals
        with running(good):
            settle(lambda: {e.id for e in events} <= {e.id for e in events_of(centre)})
            settle(lambda: len(good.spool) == 0, what="the spool to empty")
            assert good.link.connected
        centre.close()
    finally:
        broker.stop()


def test_a_publish_the_acl_refuses_is_retried_and_the_rest_flows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "REFUSED_RETRY_S", 0.3)
    broker = LocalBroker(tmp_path / "b", passwords={"pole-1": "pw", "centre": "c"}, acl=ACL)
    broker.start()
    try:
        centre = Centre(broker.port, username="centre", password="c")
        cfg = cfg_for(broker.port, username="pole-1", password="pw")
        with running(Agent(tmp_path / "s.db", cfg)) as agent:
            denied = agent.stamper.camera(ev="lost", cam="cam0", why="stall")  # not in the ACL
            assert agent.outbox.emit(denied)
            others = [agent.bell(), agent.obj(), agent.bell(), agent.obj()]
            settle(lambda: {e.id for e in others} <= {e.id for e in events_of(centre)})
            settle(lambda: len(agent.spool) == 1, what="only the refused row to stay")
            tries = agent.link.published
            settle(lambda: agent.link.published > tries + 1, what="the refused row retried")
            assert denied.id not in {e.id for e in events_of(centre)}
            # The centre's operator fixes the ACL; mosquitto rereads it on SIGHUP.
            (tmp_path / "b" / "acl").write_text(ACL + "topic write pole/s1/pole-1/event/camera\n")
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGHUP)
            settle(lambda: denied.id in {e.id for e in events_of(centre)}, what="the retry")
            settle(lambda: len(agent.spool) == 0, what="the spool to empty")
        centre.close()
    finally:
        broker.stop()


# --------------------------------------------------------------------------- TLS
def test_tls_with_the_right_client_certificate_delivers(
    pki: Pki, tls_broker: LocalBroker, tmp_path: Path
) -> None:
    creds = {
        "ca_certs": str(pki.ca),
        "certfile": str(pki.client_cert),
        "keyfile": str(pki.client_key),
    }
    centre = Centre(tls_broker.port, tls=creds)
    tls = TlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    try:
        with running(Agent(tmp_path / "s.db", cfg_for(tls_broker.port, tls=tls))) as agent:
            event = agent.bell()
            settle(lambda: event.id in {e.id for e in events_of(centre)}, what="the bell")
            assert agent.link.connected
            assert agent.link.last_refusal is None
    finally:
        centre.close()


def test_tls_with_a_certificate_from_another_ca_is_refused_clearly(
    pki: Pki, tls_broker: LocalBroker, tmp_path: Path
) -> None:
    tls = TlsConfig(ca=str(pki.ca), cert=str(pki.rogue_cert), key=str(pki.rogue_key))
    # A long keepalive: an attempt whose refusal went unnoticed would hang for a minute.
    cfg = cfg_for(tls_broker.port, tls=tls, keepalive_s=60)
    states: list[str] = []
    with running(Agent(tmp_path / "s.db", cfg)) as agent:
        agent.bell()

        def refused_five_times() -> bool:
            if not states or states[-1] != agent.link.state:
                states.append(agent.link.state)
            return agent.link.refusals >= 5

        settle(refused_five_times, what="five refused attempts")
        refusal = agent.link.last_refusal or ""
        assert len(agent.spool) == 1
    assert "connected" not in states
    assert "certificate" in refusal.lower() or "unknown ca" in refusal.lower(), refusal
    assert "tls" in refusal.lower(), refusal


def test_tls_with_a_broker_we_do_not_trust_is_refused_clearly(
    pki: Pki, tls_broker: LocalBroker, tmp_path: Path
) -> None:
    tls = TlsConfig(ca=str(pki.rogue_ca), cert=str(pki.client_cert), key=str(pki.client_key))
    with running(Agent(tmp_path / "s.db", cfg_for(tls_broker.port, tls=tls))) as agent:
        settle(lambda: agent.link.state == "refused", what="the refusal")
        refusal = agent.link.last_refusal or ""
    assert "certificate verify failed" in refusal.lower(), refusal


# --------------------------------------------------------------------------- commands
def test_commands_for_the_device_and_the_whole_site_reach_the_handler(
    broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    got: list[tuple[str, bytes]] = []
    agent = Agent(
        tmp_path / "s.db", cfg_for(broker.port), on_command=lambda t, p: got.append((t, p))
    )
    with running(agent):
        settle(lambda: agent.link.connected, what="the link to connect")
        for topic in (TOPICS.cmd("ping"), "pole/s1/_site/cmd/ping"):
            body = json.dumps({"req": topic, "ts": 1}).encode()
            deadline = time.monotonic() + 15
            while (topic, body) not in got:  # until the link's subscription is in place
                assert time.monotonic() < deadline, f"no command on {topic}"
                centre.publish(topic, body)
                time.sleep(0.2)
        assert agent.link.facts()["commands"] >= 2
        centre.publish("pole/s1/pole-2/cmd/ping", b"{}")  # another pole's command
        centre.publish(TOPICS.cmd("reboot"), b"{}")
        settle(lambda: any(t.endswith("/reboot") for t, _ in got), what="the second command")
    assert not any("pole-2" in t for t, _ in got)


# --------------------------------------------------------------------------- stopping
def test_put_after_the_link_stopped_writes_into_no_other_file(
    broker: LocalBroker, tmp_path: Path
) -> None:
    agent = Agent(tmp_path / "s.db", cfg_for(broker.port))
    agent.link.start()
    settle(lambda: agent.link.connected, what="the link to connect")
    agent.link.stop(2.0)
    # The runner stops the link before the bell; the bell may still put. The link's wake
    # pipe is closed by then, and its descriptor numbers are free for other files.
    files = [os.open(tmp_path / f"other{i}", os.O_WRONLY | os.O_CREAT) for i in range(4)]
    try:
        agent.bell()
        agent.obj()
    finally:
        for fd in files:
            os.close(fd)
    assert [(tmp_path / f"other{i}").read_bytes() for i in range(4)] == [b""] * 4
    assert len(agent.spool) == 2
    agent.spool.close()
