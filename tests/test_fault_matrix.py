"""The fault matrix: the real agent (``pole-agent run``, as systemd runs it) under each field
fault, against the real component.  For every fault the same four promises are checked:

1. the bell keeps working: a press becomes a ``pressed`` bell event and the outputs switch;
2. the agent process stays up;
3. the centre is told what is wrong: a fault event (``event/system`` or the bell's own
   ``comm_fault``) and a heartbeat field, not only a log line;
4. nothing already accepted is lost.

Faults covered elsewhere against the same real components, each with the real agent unless
said, and why not here (each needs a set-up of its own that would only be copied here):
a hung capture read (tests/vision, a real FIFO, the vision process), a vision child killed or
stopped (tests/vision), a clock step (tests/control/test_gate.py and tests/test_clock.py,
not the real agent: stepping this machine's clock would disturb everything else running on
it), two units with one client id and a poison row (tests/mqtt/test_fleet_faults.py), a
resolver that never answers (tests/mqtt/test_watchdog.py, a real silent DNS server), a
reload during an alarm, a reload to a busy or missing bell input and a reload that cannot
be built (tests/test_reload.py), a rotated key (tests/test_reload.py,
tests/control/test_gate.py), outputs before a blocked disk (tests/bell/test_resilience.py,
the bell service on a locked spool), the unit's restart policy (tests/test_systemd.py,
systemd-analyze), the provisioned files read as the service user (tests/technician,
runuser), a camera file cut to nothing (tests/test_faults.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.dev.broker import BrokerTls, LocalBroker, free_port
from agent.events import EventStamper, Priority, Topics
from agent.spool import Spool
from tests.agentproc import ROOT, AgentProcess, write_site
from tests.bell.modbus_module import SimModule
from tests.centre.observer import Centre, Received
from tests.fsfaults import LoopExt4
from tests.mqtt.netfaults import black_hole
from tests.tls import make_pki

pytestmark = pytest.mark.timeout(180)
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in Python 3.10+ on Linux only


def body(m: Received) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(m.payload)
    return data


def bell(ev: str, **match: Any) -> Callable[[Received], bool]:
    def pred(m: Received) -> bool:
        if not m.topic.endswith("/event/bell"):
            return False
        b = body(m)
        return b["ev"] == ev and all(b.get(k) == v for k, v in match.items())

    return pred


def system(what: str, ev: str = "fault") -> Callable[[Received], bool]:
    def pred(m: Received) -> bool:
        return m.topic.endswith("/event/system") and (body(m)["what"], body(m)["ev"]) == (
            what,
            ev,
        )

    return pred


def heartbeat(check: Callable[[dict[str, Any]], bool]) -> Callable[[Received], bool]:
    def pred(m: Received) -> bool:
        return m.topic.endswith("/heartbeat") and check(body(m))

    return pred


def bell_works(agent: AgentProcess, centre: Centre, nth: int = 1) -> None:
    """Promise 1 (and 2): a press is a ``pressed`` event at the centre; the outputs switch."""
    agent.wait_for_output("bell: watching", timeout=30)
    agent.press()
    centre.wait_for(bell("pressed"), count=nth, timeout=30)
    agent.wait_for_output("strobe and siren ON", timeout=10)
    assert agent.proc.poll() is None, agent.output()[-2000:]


def test_a_silent_broker_is_a_heartbeat_fact_and_the_pole_moves_on(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """The first broker drops every SYN (black-holed); the second one works."""
    with black_hole() as dead:
        site = write_site(
            tmp_path / "unit",
            broker.port,
            extra={
                "mqtt": {
                    "hosts": [f"127.0.0.1:{dead}", f"127.0.0.1:{broker.port}"],
                    "connect_timeout_s": 2,
                }
            },
        )
        agent = AgentProcess(site)
        try:
            bell_works(agent, centre)
            beat = centre.wait_for(heartbeat(lambda b: b["link"].get("why") == "timeout"))[0]
            link = body(beat)["link"]
            assert link["broker"] == f"127.0.0.1:{broker.port}"
            assert str(dead) in link["detail"]
            # The move to the second broker is an event too, and a heartbeat count.
            notice = body(centre.wait_for(system("link", "notice"), timeout=30)[0])
            assert notice["data"] == {
                "broker": f"127.0.0.1:{broker.port}",
                "from": f"127.0.0.1:{dead}",
            }
            centre.wait_for(heartbeat(lambda b: b["link"]["failovers"] == 1), timeout=30)
        finally:
            assert agent.stop() == 0


def spooled_heartbeat(spool: Path, pred: Callable[[dict[str, Any]], bool]) -> None:
    """Wait until the running agent's spool file holds a heartbeat for which ``pred`` holds
    (read-only, beside the agent: the spool is in WAL mode)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT payload FROM outbox WHERE topic LIKE '%/heartbeat'")
            if any(pred(json.loads(payload)) for (payload,) in rows):
                return
        time.sleep(0.2)
    raise AssertionError(f"no such heartbeat in {spool} within 30 s")


def test_a_broker_silent_for_a_while_is_a_link_fault_the_centre_gets_once_it_is_back(
    tmp_path: Path,
) -> None:
    """The only broker drops every SYN for a while, then comes up on the same address."""
    port = free_port()
    with black_hole(port):
        site = write_site(
            tmp_path / "unit",
            port,
            extra={"mqtt": {"connect_timeout_s": 1, "backoff_max_s": 2}},
        )
        agent = AgentProcess(site)
        agent.wait_for_output("bell: watching", timeout=30)
        agent.press()  # pressed while no broker answers: kept in the spool
        # five attempts (or 30 s) without a connection: a fault, said where it can be
        agent.wait_for_output("link fault: no connection for", timeout=60)
        # A heartbeat of the outage that says so is in the spool before the broker comes
        # (else, on a loaded machine, the link could be back before the next heartbeat).
        spooled_heartbeat(site.parent / "spool.db", lambda b: b["link"]["attempts"] >= 5)
    try:
        with LocalBroker(tmp_path / "late", port=port) as late:
            centre = Centre(late.port)
            try:
                fault = body(centre.wait_for(system("link"), timeout=60)[0])
                assert fault["data"]["why"] == "timeout", fault
                assert fault["data"]["attempts"] >= 5
                assert f"127.0.0.1:{port}" in fault["why"]
                cleared = body(centre.wait_for(system("link", "cleared"), timeout=30)[0])
                assert f"connected to 127.0.0.1:{port} after" in cleared["why"]
                centre.wait_for(bell("pressed"), timeout=30)  # nothing accepted was lost
                # the heartbeats of the outage say it too, and arrive from the spool
                centre.wait_for(
                    heartbeat(lambda b: b["link"]["attempts"] >= 5 and b["link"]["down_s"] > 0)
                )
            finally:
                centre.close()
    finally:
        assert agent.stop() == 0


def test_a_bad_certificate_is_refused_reported_and_picked_up_once_fixed(
    tmp_path: Path, centre: Centre
) -> None:
    """The CA file the unit needs is missing: refused with backoff; fixed without a restart."""
    pki = make_pki(tmp_path / "pki")
    tls = BrokerTls(pki.ca, pki.server_cert, pki.server_key, require_certificate=True)
    with LocalBroker(tmp_path / "tb", tls=tls) as secure:
        ca = tmp_path / "unit-ca.pem"  # not there yet: the technician forgot to copy it
        site = write_site(
            tmp_path / "unit",
            secure.port,
            extra={
                "mqtt": {
                    "tls": {"ca": str(ca), "cert": str(pki.client_cert), "key": str(pki.client_key)}
                }
            },
        )
        agent = AgentProcess(site)
        try:
            agent.wait_for_output("bell: watching", timeout=30)
            agent.press()  # pressed while the link is refused: kept in the spool
            agent.wait_for_output("strobe and siren ON", timeout=20)
            agent.wait_for_output("refused", timeout=20)
            watcher = Centre(
                secure.port,
                tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert),
                     "keyfile": str(pki.client_key)},
            )  # fmt: skip
            try:
                ca.write_bytes(pki.ca.read_bytes())  # fixed on the spot
                watcher.wait_for(bell("pressed"), timeout=60)  # nothing accepted was lost
                fault = watcher.wait_for(system("link"), timeout=30)[0]
                assert "tls" in body(fault)["why"] or str(ca) in body(fault)["why"]
                # Heartbeats made while it was still connecting wait in the spool and arrive
                # first; the one made once connected still counts the refusals.
                beat = watcher.wait_for(
                    heartbeat(lambda b: b["link"]["state"] == "connected"), timeout=30
                )[0]
                assert body(beat)["link"]["refusals"] >= 1
                agent.press()
                watcher.wait_for(bell("pressed"), count=2, timeout=30)
                assert agent.proc.poll() is None
            finally:
                watcher.close()
        finally:
            assert agent.stop() == 0
    del centre  # the plain broker's centre saw nothing: this unit talks TLS only


def test_a_renamed_serial_port_is_a_comm_fault_retried_until_it_is_back(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """After a brown-out the adapter came back as another tty: the configured path is gone."""
    module = SimModule()
    port = tmp_path / "ttyUSB0"  # what the site file names; the pty appears there later
    try:
        site = write_site(
            tmp_path / "unit",
            broker.port,
            extra={
                "bell": {
                    "backend": "modbus",
                    "modbus": {"port": str(port), "unit": 1, "button": 0, "poll_ms": 20},
                    "outputs": {"backend": "simulator"},
                }
            },
        )
        agent = AgentProcess(site)
        try:
            fault = centre.wait_for(bell("comm_fault"), timeout=30)[0]
            assert "open_failed" in body(fault)["why"]
            assert str(port) in body(fault)["why"]
            beat = centre.wait_for(
                heartbeat(lambda b: b["bell"]["devices"]["input"]["open"] is False)
            )[0]
            assert body(beat)["bell"]["devices"]["input"]["attempts"] >= 1
            port.symlink_to(module.path)  # the port is back
            centre.wait_for(bell("comm_restored"), timeout=60)
            module.inputs[0] = True
            time.sleep(0.3)
            module.inputs[0] = False
            centre.wait_for(bell("pressed"), timeout=30)
            agent.wait_for_output("strobe and siren ON", timeout=10)
            assert agent.proc.poll() is None
        finally:
            assert agent.stop() == 0
    finally:
        module.close()


def test_a_read_only_card_keeps_the_bell_and_its_alarms(
    tmp_path: Path, broker: LocalBroker, centre: Centre, card: LoopExt4
) -> None:
    """The spool's ext4 fails (a worn SD card): alarms go on, held in memory, and are sent."""
    site = write_site(
        tmp_path / "unit", broker.port, extra={"spool": {"path": str(card.mnt / "spool.db")}}
    )
    agent = AgentProcess(site)
    try:
        bell_works(agent, centre)
        card.fail()
        bell_works(agent, centre, nth=2)
        fault = centre.wait_for(system("spool"), timeout=30)[0]
        assert "degraded" in body(fault)["why"]
        centre.wait_for(heartbeat(lambda b: b["spool"]["state"] == "degraded"), timeout=30)
        broker.stop()  # and now the broker goes too: the alarm waits in memory
        agent.press()
        agent.wait_for_output("bell pressed", timeout=10)
        time.sleep(1)
        broker.start()
        centre.wait_for(bell("pressed"), count=3, timeout=60)
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0


def test_a_damaged_spool_is_salvaged_and_said(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """The card lost power mid-write last night: the spool file is damaged at start."""
    folder = tmp_path / "unit"
    folder.mkdir()
    path = folder / "spool.db"
    spool = Spool(path)
    stamper = EventStamper("test-0001")
    topics = Topics("pole", "test-site", "test-0001")
    kept = []
    for i in range(40):
        ev = stamper.bell(ev="pressed", inp="button")
        kept.append(ev.id)
        spool.put(topics.event("bell"), ev.model_dump_json().encode(), Priority.ALARM)
        spool.put(topics.event("object"), b"x" * 2000 + str(i).encode(), Priority.OBJECT)
    spool.close()
    page = 4096
    with path.open("r+b") as f:  # garbage over two leaf pages in the middle of the file
        f.seek(page * 30)
        f.write(b"\0" * 100 + os.urandom(page * 2))
    site = write_site(folder, broker.port)
    agent = AgentProcess(site)
    try:
        notice = centre.wait_for(
            lambda m: m.topic.endswith("/event/system") and body(m)["what"] == "spool",
            timeout=30,
        )[0]
        assert "salvaged" in body(notice)["why"], body(notice)
        beat = centre.wait_for(heartbeat(lambda b: "salvaged" in b["spool"]))[0]
        salvaged = body(beat)["spool"]["salvaged"]
        assert salvaged > 0, (body(notice), body(beat)["spool"])
        assert body(beat)["spool"]["lost"] > 0  # said, not hidden: what could not be read
        # Nothing the file still held is lost: salvaged alarms are sent.
        centre.wait_for(lambda m: m.topic.endswith("/event/bell") and body(m)["id"] in kept)
        time.sleep(2)  # let the salvaged rows arrive, then press once more
        before = len([m for m in list(centre.messages) if bell("pressed")(m)])
        bell_works(agent, centre, nth=before + 1)
    finally:
        assert agent.stop() == 0


def test_a_stalled_journal_does_not_stall_the_bell(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """journald stops reading the agent's stdout: the pipe is full, the bell goes on."""
    site = write_site(tmp_path / "unit", broker.port)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 512)  # full before the agent writes a byte
    os.set_blocking(write_end, True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", str(site)],
        stdout=write_end,
        stderr=write_end,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(write_end)
    try:
        centre.wait_for(lambda m: m.topic.endswith("/status") and b"online" in m.payload)
        sock = str(Path(site).parent / "bell.sock")
        for i in range(1, 4):
            press = subprocess.run(
                [sys.executable, "-m", "agent", "bell", "press", "--hold", "0.1", "--socket",
                 sock],
                capture_output=True, check=False, cwd=ROOT, timeout=30,
            )  # fmt: skip
            assert press.returncode == 0, press.stderr
            centre.wait_for(bell("pressed"), count=i, timeout=30)
            time.sleep(0.3)
        # The centre sees the journal stall: log lines waiting (and, later, dropped).
        beat = centre.wait_for(heartbeat(lambda b: b["sys"]["log"]["queued"] > 0), timeout=30)
        assert body(beat[0])["sys"]["log"]["queued"] > 0
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        drained = threading.Thread(target=_drain, args=(read_end,), daemon=True)
        drained.start()  # the journal catches up: the agent writes its last lines and exits
        assert proc.wait(30) == 0
        drained.join(5)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass
    with contextlib.suppress(OSError):
        os.close(fd)


def simulate(agent: AgentProcess, lines: list[str]) -> None:
    """Send simulator command lines (``tamper on``...) to the agent's bell, one connection."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(agent.socket)
        for line in lines:
            s.sendall(line.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                reply += s.recv(4096)
            assert reply.startswith(b"ok"), reply
            time.sleep(0.1)  # past the 30 ms debounce: each is a real change


def test_a_chattering_tamper_contact_is_one_episode_and_the_bell_goes_on(
    tmp_path: Path, broker: LocalBroker, centre: Centre
) -> None:
    """A loose box-door contact: 40 changes in 4 s.  Before flap suppression each one was
    an ALARM-priority row, never evicted; now the centre hears a few changes, one
    ``flapping``, and (once quiet) one ``flapping_cleared`` with the count."""
    site = write_site(
        tmp_path / "unit",
        broker.port,
        extra={"bell": {"policy": {"flap_changes": 6, "flap_window_s": 5}}},
    )
    agent = AgentProcess(site)
    try:
        agent.wait_for_output("bell: watching", timeout=30)
        simulate(agent, [f"tamper {'on' if i % 2 == 0 else 'off'}" for i in range(40)])
        centre.wait_for(bell("flapping", inp="tamper"), timeout=30)
        bell_works(agent, centre)  # the button is another input: unaffected
        cleared = centre.wait_for(bell("flapping_cleared", inp="tamper"), timeout=30)
        assert "not reported" in body(cleared[0])["why"]

        def after(b: dict[str, Any]) -> bool:
            facts = b["bell"]["flapping"]["tamper"]
            return facts["episodes"] >= 1 and not facts["flapping"]

        beat = centre.wait_for(heartbeat(after), timeout=30)
        assert body(beat[0])["bell"]["flapping"]["tamper"]["suppressed"] >= 30
        kinds = ("tamper", "tamper_cleared")
        tamper = [m for m in list(centre.messages) if any(bell(k, inp="tamper")(m) for k in kinds)]
        assert 1 <= len(tamper) <= 7, [body(m) for m in tamper]  # not 40
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0
