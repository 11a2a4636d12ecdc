"""Connecting never stalls the link loop; TLS and credential files are refusals, not crashes.

Real mosquitto, real sockets, real certificate files.  The link loop's ``last_progress`` is
what the runner's watchdog trusts: while an attempt hangs in DNS, TCP or TLS it must keep
moving, and the attempt must be given up after its total deadline.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import TlsConfig
from agent.dev.broker import LocalBroker
from agent.mqtt.connector import MAX_HELPERS
from tests.centre.observer import Centre
from tests.mqtt.netfaults import V311Relay, black_hole
from tests.mqtt.test_link import Agent, cfg_for, events_of, running, settle
from tests.tls import Pki


def helpers() -> int:
    return sum(t.name == "link-connect" for t in threading.enumerate())


def watch(agent: Agent, seconds: float) -> tuple[float, set[str], set[str | None]]:
    """The largest age of the loop's progress, and the states and reasons seen."""
    worst, states, whys = 0.0, set(), set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        worst = max(worst, time.monotonic() - agent.link.last_progress())
        states.add(agent.link.state)
        whys.add(agent.link.why)
        assert helpers() <= MAX_HELPERS
        time.sleep(0.02)
    return worst, states, whys


# --------------------------------------------------------------------------- silent broker
def test_a_black_holed_broker_never_stalls_the_loop_and_a_healthy_one_is_then_used(
    broker: LocalBroker, centre: Centre, tmp_path: Path
) -> None:
    timeout = 2.0
    with black_hole() as port:
        cfg = cfg_for(port, connect_timeout_s=timeout, backoff_max_s=0.5)
        with running(Agent(tmp_path / "s.db", cfg)) as agent:
            event = agent.bell()
            worst, states, whys = watch(agent, 2.5 * timeout)
            assert agent.link.threads()[0].is_alive()
            facts = agent.link.facts()
        # Old code blocked in connect() for the whole timeout; the loop ticks every 0.5 s.
        assert worst < timeout / 2, f"the link loop stalled for {worst:.2f}s"
        assert "connected" not in states
        assert states <= {"connecting", "disconnected"}
        assert whys & {"timeout", "no_connack"}, whys
        assert facts["broker"] == f"127.0.0.1:{port}"
        assert facts["detail"]
        assert str(port) in facts["detail"]
        # The same spool, now with a healthy broker after the black hole: it moves on.
        hosts = [f"127.0.0.1:{port}", f"127.0.0.1:{broker.port}"]
        cfg = cfg_for(broker.port, hosts=hosts, connect_timeout_s=timeout)
        with running(Agent(tmp_path / "s.db", cfg)) as agent:
            settle(lambda: event.id in {e.id for e in events_of(centre)}, what="the bell")
            assert agent.link.facts()["broker"] == f"127.0.0.1:{broker.port}"


def test_a_resolver_that_does_not_answer_never_stalls_the_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DNS that never answers, simulated by a ``getaddrinfo`` that blocks for this one name.

    A real silent DNS server would need control of resolv.conf, which a test cannot take
    safely on a shared machine; the blocking call runs inside the link's helper thread just
    as a stuck ``getaddrinfo`` would.  Every other name resolves normally.
    """
    release = threading.Event()
    real = socket.getaddrinfo

    def stuck(host: Any, *args: Any, **kw: Any) -> Any:
        if host == "stuck.invalid":
            release.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    timeout = 2.0
    cfg = cfg_for(1883, hosts=["stuck.invalid"], connect_timeout_s=timeout, backoff_max_s=0.2)
    try:
        with running(Agent(tmp_path / "s.db", cfg)) as agent:
            worst, states, _ = watch(agent, 4 * timeout)  # 3 stuck helpers, then none more
            assert agent.link.threads()[0].is_alive()
            assert agent.link.why == "dns"
            assert "resolving" in (agent.link.detail or "")
        assert worst < timeout / 2, f"the link loop stalled for {worst:.2f}s"
        assert states <= {"connecting", "disconnected"}
        # Stuck helpers are bounded: no new thread per retry while resolving hangs.
        assert helpers() <= MAX_HELPERS
    finally:
        release.set()
    settle(lambda: helpers() == 0, what="the stuck helpers to end once DNS answers")


# --------------------------------------------------------------------------- TLS files
def refused_then_fixed(agent: Agent, why: str, file: Path, fix: Any) -> None:
    """Refused with ``why`` naming ``file``, retried with backoff; after ``fix()``, delivers."""
    settle(lambda: agent.link.refusals >= 3, what="three refusals")
    facts = agent.link.facts()
    assert (facts["state"], facts["why"], facts["file"]) == ("refused", why, str(file))
    assert str(file) in (facts["refusal"] or "")
    assert agent.link.threads()[0].is_alive()
    assert len(agent.spool) == 1
    fix()  # a technician fixes the file; no restart
    settle(lambda: agent.link.connected, what="the link to connect after the fix")
    settle(lambda: len(agent.spool) == 0, what="the spool to empty")


def test_a_missing_ca_file_is_a_refusal_until_it_appears(
    pki: Pki, tls_broker: LocalBroker, tmp_path: Path
) -> None:
    ca = tmp_path / "etc" / "ca.pem"
    tls = TlsConfig(ca=str(ca), cert=str(pki.client_cert), key=str(pki.client_key))
    with running(Agent(tmp_path / "s.db", cfg_for(tls_broker.port, tls=tls))) as agent:
        agent.bell()

        def fix() -> None:
            ca.parent.mkdir()
            shutil.copy(pki.ca, ca)

        refused_then_fixed(agent, "tls", ca, fix)


def test_a_key_that_does_not_match_the_certificate_is_a_refusal_until_replaced(
    pki: Pki, tls_broker: LocalBroker, tmp_path: Path
) -> None:
    key = tmp_path / "device.key"
    shutil.copy(pki.rogue_key, key)  # a renewed certificate with the old key
    tls = TlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(key))
    with running(Agent(tmp_path / "s.db", cfg_for(tls_broker.port, tls=tls))) as agent:
        agent.bell()
        refused_then_fixed(agent, "tls", key, lambda: shutil.copy(pki.client_key, key))


def test_a_missing_password_file_is_a_refusal_until_it_appears(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "b", passwords={"pole-1": "pw"}).start()
    try:
        pw = tmp_path / "mqtt-password"
        cfg = cfg_for(broker.port, username="pole-1", password_file=str(pw))
        agent = Agent(tmp_path / "s.db", cfg)  # building the link reads no file
        with running(agent):
            agent.bell()
            refused_then_fixed(agent, "credentials", pw, lambda: pw.write_text("pw\n"))
    finally:
        broker.stop()


# --------------------------------------------------------------------------- protocol auto
def test_auto_says_once_per_episode_that_it_falls_back_to_311(
    broker: LocalBroker, centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = V311Relay(broker.port)
    relay.refuse_all.set()  # first the broker closes everything, both versions
    caplog.set_level(logging.INFO, logger="agent.mqtt.link")
    try:
        with running(Agent(tmp_path / "s.db", cfg_for(relay.port))) as agent:
            time.sleep(1.5)  # many attempts, flipping between 5 and 3.1.1
            assert relay.v5_refused >= 2
            relay.refuse_all.clear()
            event = agent.bell()
            settle(lambda: event.id in {e.id for e in events_of(centre)}, what="the bell")
            assert agent.link.facts()["protocol"] == "3.1.1"
            relay.cut()  # a new episode, on 3.1.1 already: nothing more to say
            settle(lambda: agent.link.reconnects >= 1 and agent.link.connected, what="again")
    finally:
        relay.close()
    said = [r for r in caplog.records if "falling back to MQTT 3.1.1" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert f"127.0.0.1:{relay.port}" in said[0].getMessage()
