"""The agent as systemd runs it: readiness, status, watchdog, signals, reload, restarts."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.dev.broker import LocalBroker
from agent.events import BellEvent, StatusMessage, decode_event
from tests.agentproc import AgentProcess, write_site
from tests.centre.observer import Centre, Received


class NotifySocket:
    """What systemd listens on: a datagram socket, by path or abstract name."""

    def __init__(self, tmp_path: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"pole-agent-test-{secrets.token_hex(4)}"
            self.sock.bind(b"\0" + name.encode())
            self.env = f"@{name}"
        else:
            path = tmp_path / "notify.sock"
            self.sock.bind(str(path))
            self.env = str(path)
        self.messages: list[str] = []

    def read_until(self, field: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append(msg)
            if field in msg.split("\n"):
                return msg
        raise AssertionError(f"no {field} within {timeout}s; got {self.messages}")

    def count(self, field: str, seconds: float) -> int:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append(msg)
            n += field in msg.split("\n")
        return n

    def drain(self) -> None:
        """Forget what is already queued (sent before the moment of interest)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    n = NotifySocket(tmp_path)
    yield n
    n.close()


def _status(centre: Centre, state: str, why: str, count: int = 1) -> list[StatusMessage]:
    got = centre.wait_for(
        lambda m: m.topic.endswith("/status") and f'"why":"{why}"' in m.payload.decode(), count
    )
    msgs = [StatusMessage.model_validate_json(m.payload) for m in got]
    assert all(m.state == state for m in msgs)
    return msgs


def test_ready_status_watchdog_and_clean_stop(
    tmp_path: Path, broker: LocalBroker, centre: Centre, notify: NotifySocket
) -> None:
    site = write_site(tmp_path / "unit", broker.port)
    agent = AgentProcess(site, {"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": "1000000"})
    try:
        ready = notify.read_until("READY=1")
        assert any(line.startswith("STATUS=") for line in ready.split("\n"))
        assert notify.count("WATCHDOG=1", 3.0) >= 3  # every 0.5 s while healthy
        _status(centre, "online", "birth")
    finally:
        code = agent.stop()
    assert code == 0
    assert any("STOPPING=1" in m for m in [*notify.messages, notify.read_until("STOPPING=1", 1)])
    _status(centre, "offline", "stopped")
    assert "Traceback" not in agent.output()


def test_abstract_notify_socket(tmp_path: Path, broker: LocalBroker) -> None:
    notify = NotifySocket(tmp_path, abstract=True)
    agent = AgentProcess(write_site(tmp_path / "unit", broker.port), {"NOTIFY_SOCKET": notify.env})
    try:
        notify.read_until("READY=1")
    finally:
        assert agent.stop() == 0
        notify.close()


def test_ready_does_not_wait_for_the_broker(tmp_path: Path, notify: NotifySocket) -> None:
    dead_port = LocalBroker(tmp_path / "nobroker").port  # never started
    agent = AgentProcess(
        write_site(tmp_path / "unit", dead_port),
        {"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": "1000000"},
    )
    try:
        notify.read_until("READY=1")
        # a broker outage must not cause watchdog restarts
        assert notify.count("WATCHDOG=1", 3.0) >= 3
    finally:
        assert agent.stop() == 0


def test_hung_bell_thread_stops_the_watchdog(
    tmp_path: Path, broker: LocalBroker, notify: NotifySocket
) -> None:
    site = write_site(tmp_path / "unit", broker.port, extra={"health": {"watchdog_grace_s": 1}})
    agent = AgentProcess(site, {"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": "1000000"})
    try:
        notify.read_until("READY=1")
        assert notify.count("WATCHDOG=1", 2.0) >= 2
        _simulator_command(agent.socket, "hang 8")
        time.sleep(1.5)  # the grace runs out
        notify.drain()
        assert notify.count("WATCHDOG=1", 3.0) == 0
        time.sleep(4.0)  # the hang ends: pings resume
        assert notify.count("WATCHDOG=1", 2.0) >= 1
    finally:
        agent.stop()


def _simulator_command(path: str, line: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        s.settimeout(0.5)  # a hang replies only when it ends
        with contextlib.suppress(TimeoutError):
            s.recv(1024)


def test_sighup_refuses_a_bad_config_and_applies_a_good_one(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    site = write_site(tmp_path / "unit", broker.port)
    agent = AgentProcess(site)
    try:
        _status(centre, "online", "birth")
        good = site.read_text()
        bad = yaml.safe_load(good)
        bad["mqtt"]["port"] = 70000
        site.write_text(yaml.safe_dump(bad, allow_unicode=True))
        agent.signal(signal.SIGHUP)
        agent.wait_for_output("reload refused")
        assert "mqtt.port: must be <= 65535, got 70000" in agent.output()
        assert agent.proc.poll() is None
        data = yaml.safe_load(good)
        data["health"]["heartbeat_s"] = 3
        site.write_text(yaml.safe_dump(data, allow_unicode=True))
        agent.signal(signal.SIGHUP)
        agent.wait_for_output("reload: applying config")
        births = _status(centre, "online", "birth", count=2)
        assert births[0].cfg != births[1].cfg
        agent.press()
        centre.wait_for(lambda m: m.topic.endswith("/event/bell") and b"activated" in m.payload)
    finally:
        assert agent.stop() == 0


def _wait_spooled(path: Path, topic_end: str, count: int, timeout: float = 30) -> None:
    """Until ``count`` rows for ``topic_end`` are durable in the agent's spool file."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                n = db.execute(
                    "SELECT count(*) FROM outbox WHERE topic LIKE ?", (f"%{topic_end}",)
                ).fetchone()[0]
        except sqlite3.Error:  # the agent is creating or checkpointing the file: look again
            n = 0
        if n >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} of {count} {topic_end} rows in the spool after {timeout} s")


def test_sigkill_and_restart_recovers_and_shows_a_new_boot(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    site = write_site(tmp_path / "unit", broker.port)
    first = AgentProcess(site)
    first_birth = None
    try:
        first_birth = _status(centre, "online", "birth")[0]
        broker.stop()  # events pile up in the spool, then the agent dies
        first.press()
        _wait_spooled(site.parent / "spool.db", "/event/bell", 2)
    finally:
        first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    broker.start()
    second = AgentProcess(site)
    try:
        # A birth from a new boot: the centre sees the restart. (After the broker's restart
        # the centre may also be sent the first run's birth again: its retained copy, or a
        # QoS 1 redelivery of it to the centre's persistent session.)
        assert first_birth is not None
        first_boot = first_birth.boot

        def new_birth(m: Received) -> bool:
            if not (m.topic.endswith("/status") and b'"birth"' in m.payload):
                return False
            return StatusMessage.model_validate_json(m.payload).boot != first_boot

        centre.wait_for(new_birth, timeout=30)
        bells = centre.wait_for(lambda m: m.topic.endswith("/event/bell"), 2, timeout=30)
        events = [decode_event(m.payload) for m in bells]
        assert all(isinstance(e, BellEvent) for e in events)
        assert {e.boot for e in events} == {first_birth.boot}  # from the first run's spool
    finally:
        assert second.stop() == 0


@pytest.mark.slow
def test_broker_down_a_minute_while_bells_ring_and_people_walk(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    outage_s, presses = 60.0, 6
    camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
    site = write_site(
        tmp_path / "unit",
        broker.port,
        cameras=[camera],
        extra={"bell": {"policy": {"lockout_s": 0}}},
    )
    agent = AgentProcess(site)
    try:
        _status(centre, "online", "birth")
        centre.wait_for(lambda m: m.topic.endswith("/event/object"), timeout=60)
        broker.stop()
        for _ in range(presses):
            time.sleep(outage_s / presses)
            agent.press(0.1)
        broker.start()
        centre.wait_for(
            lambda m: m.topic.endswith("/event/bell") and b'"activated"' in m.payload,
            presses,
            timeout=60,
        )
    finally:
        assert agent.stop() == 0
    events = {}
    for m in centre.messages:
        if "/event/" in m.topic or m.topic.endswith(("/heartbeat", "/cmd-result")):
            e = decode_event(m.payload)
            events[e.seq] = e  # duplicates (at least once) collapse here
    # Nothing lost: every seq of this boot arrived, none missing in the middle.
    assert sorted(events) == list(range(1, max(events) + 1))
    assert len({e.boot for e in events.values()}) == 1
    # Replay kept the order within each priority: arrival order by seq, per priority.
    arrived: dict[int, list[int]] = {}
    seen: set[str] = set()
    for m in centre.messages:
        if "/event/" in m.topic:
            e = decode_event(m.payload)
            if e.id not in seen:
                seen.add(e.id)
                arrived.setdefault(int(e.pri), []).append(e.seq)
    for seqs in arrived.values():
        assert seqs == sorted(seqs)
    assert sum(1 for e in events.values() if e.k == "object") > 20
