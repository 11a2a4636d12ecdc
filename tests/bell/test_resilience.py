"""The bell depends on nothing but its hardware: open failures, a blocked or failing spool.

Real components: the simulator over its socket, a simulated Modbus module on a real pty,
a real spool file behind a real Outbox.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bell import BellService
from agent.bell.hw.simulator import SimulatorOutputs
from agent.bell.report import Reporter
from agent.config import BellConfig
from agent.events import BellEvent, EventStamper
from agent.outbox import Outbox
from agent.spool import Spool
from tests.bell.conftest import DEVICE, TOPICS
from tests.bell.modbus_module import SimModule
from tests.bell.test_service import (
    bell_cfg,
    bell_events,
    has,
    send,
    wait_events,
    wait_for,
)


def modbus_cfg(port: Path, **over: Any) -> BellConfig:
    base: dict[str, Any] = {
        "backend": "modbus",
        "modbus": {"port": str(port), "poll_ms": 20, "timeout_ms": 50, "fault_after": 3},
        "debounce_ms": 0,
        "policy": {"lockout_s": 0},
        "outputs": {"backend": "modbus", "strobe": "0", "siren": "1", "duration_s": 30},
    }
    return BellConfig(**{**base, **over})


def test_a_missing_serial_port_is_reported_and_retried_until_it_appears(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService], module: SimModule
) -> None:
    port = tmp_path / "ttyUSB0"  # after a brown-out the adapter is not there (yet)
    svc = make_service(modbus_cfg(port))  # no exception: the agent stays up
    evs = wait_events(spool, has("comm_fault"))
    fault = evs[0]
    assert (fault.ev, fault.inp) == ("comm_fault", "modbus")
    assert fault.why is not None
    assert fault.why.startswith(f"open_failed: bell.modbus.port: cannot open {port}")
    assert svc.facts()["devices"]["input"]["open"] is False
    first = svc.last_progress()
    time.sleep(1.2)
    assert svc.last_progress() > first  # the loop turns: the watchdog is fed
    assert svc.threads()[0].is_alive()

    port.symlink_to(module.path)  # the adapter is back
    evs = wait_events(spool, has("comm_restored"), timeout=15)
    restored = next(e for e in evs if e.ev == "comm_restored")
    assert restored.inp == "modbus"
    assert restored.why is not None
    assert restored.why.startswith("opened after")
    module.inputs[0] = True
    evs = wait_events(spool, has("pressed", "activated"))
    wait_for(lambda: module.coils == {0: True, 1: True})
    comm = [e.ev for e in evs if e.ev.startswith("comm")]
    assert comm == ["comm_fault", "comm_restored"]  # one fault, however many retries
    assert svc.facts()["devices"]["input"] == {"open": True}


def test_outputs_that_cannot_open_are_retried_and_switched_once_they_open(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService], module: SimModule
) -> None:
    port = tmp_path / "ttyRelay"
    cfg = bell_cfg(
        tmp_path,
        modbus={"port": str(port), "timeout_ms": 50},
        outputs={"backend": "modbus", "strobe": "0", "siren": "1", "duration_s": 30},
    )
    svc = make_service(cfg)
    wait_events(spool, has("comm_fault"))
    svc.simulate_press(0.05)  # the press is still an alarm, the input is fine
    evs = wait_events(spool, has("activated"))
    fault = next(e for e in evs if e.ev == "comm_fault")
    assert fault.inp == "outputs"
    assert fault.why is not None
    assert fault.why.startswith("open_failed")
    port.symlink_to(module.path)
    wait_for(lambda: module.coils == {0: True, 1: True}, timeout=15)
    evs = wait_events(spool, has("comm_restored"))
    assert [(e.ev, e.inp) for e in evs if e.ev.startswith("comm")] == [
        ("comm_fault", "outputs"),
        ("comm_restored", "outputs"),
    ]


def test_the_outputs_switch_while_the_spool_is_blocked(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    svc = make_service(bell_cfg(tmp_path, outputs={"duration_s": 30}))
    assert isinstance(svc.outputs, SimulatorOutputs)
    wait_for(lambda: len(spool) > 0)  # the first state row: the reporter has started
    with spool._lock:  # a slow fsync or a long read: every emit waits for this lock
        assert send(tmp_path / "bell.sock", "press 0.05") == "ok press 0.05\n"
        wait_for(lambda: svc.outputs.state == {"strobe": True, "siren": True}, timeout=5)
        time.sleep(0.3)
        assert svc.threads()[0].is_alive()
        held = svc.last_progress()
        time.sleep(1.1)
        assert svc.last_progress() > held  # the bell loop does not wait for the disk
        assert svc.facts()["report"]["kept"] >= 1
    evs = wait_events(spool, has("pressed", "activated", "released"))
    assert [e.ev for e in evs][:3] == ["pressed", "activated", "released"]


class FlakyOutbox(Outbox):
    """A real outbox on a real spool that refuses (False, or an exception) while ``failing``."""

    def __init__(self, spool: Spool) -> None:
        super().__init__(spool, TOPICS, EventStamper(DEVICE.id))
        self.failing = threading.Event()
        self.attempts = 0

    def emit(self, event: Any) -> bool:
        if self.failing.is_set():
            self.attempts += 1
            if self.attempts % 3 == 0:
                raise sqlite3.DatabaseError("database disk image is malformed")
            if self.attempts % 3 == 1:
                raise OSError(30, "Read-only file system")
            return False
        return super().emit(event)


def test_events_wait_in_memory_while_the_outbox_fails_and_arrive_in_order(
    tmp_path: Path, spool: Spool
) -> None:
    outbox = FlakyOutbox(spool)
    outbox.failing.set()
    svc = BellService(bell_cfg(tmp_path, outputs={"duration_s": 0.2}), DEVICE, outbox)
    svc.start()
    try:
        assert isinstance(svc.outputs, SimulatorOutputs)
        for n in range(1, 4):
            assert send(tmp_path / "bell.sock", "press 0.05") == "ok press 0.05\n"
            wait_for(lambda n=n: list(svc.outputs.history).count(("siren", True)) == n)
            wait_for(lambda n=n: list(svc.outputs.history).count(("siren", False)) == n)
        report = svc.facts()["report"]
        assert report["kept"] == 12
        assert report["refused"] >= 1
        assert report["outbox"] == "failing"
        assert bell_events(spool) == []
        outbox.failing.clear()
        evs = wait_events(spool, lambda evs: len(evs) == 12, timeout=10)
        assert [e.ev for e in evs] == ["pressed", "activated", "released", "outputs_off"] * 3
        assert [e.seq for e in evs] == sorted(e.seq for e in evs)
        wait_for(lambda: svc.facts()["report"]["outbox"] == "ok")
        assert svc.facts()["report"]["kept"] == 0
    finally:
        svc.stop(5)


def event(outbox: Outbox, kind: str) -> BellEvent:
    return outbox.stamper.bell(ev=kind, inp="tamper" if kind.startswith("tamper") else "button")


def test_a_full_memory_queue_drops_faults_before_alarms(spool: Spool) -> None:
    outbox = FlakyOutbox(spool)
    outbox.failing.set()
    rep = Reporter(outbox, capacity=4, retry_s=0.05)
    rep.start()
    try:
        sent = [event(outbox, k) for k in ("pressed", "tamper", "activated", "tamper_cleared")]
        sent += [event(outbox, "released"), event(outbox, "pressed")]
        for ev in sent:
            rep.put(ev)
        time.sleep(0.2)
        facts = rep.facts()
        assert facts["overflowed"] == 2
        assert facts["overflowed_alarms"] == 0
        outbox.failing.clear()
        wait_for(lambda: len(bell_events(spool)) == 4)
        assert [e.ev for e in bell_events(spool)] == ["pressed", "activated", "released", "pressed"]
    finally:
        rep.stop(2)


def test_the_last_events_are_written_at_stop(spool: Spool) -> None:
    outbox = FlakyOutbox(spool)
    rep = Reporter(outbox)
    rep.start()
    for kind in ("pressed", "activated", "outputs_off"):
        rep.put(event(outbox, kind))
    rep.stop(5)
    assert [e.ev for e in bell_events(spool)] == ["pressed", "activated", "outputs_off"]
    assert not any(t.is_alive() for t in rep.threads())


def test_a_chattering_tamper_contact_gives_a_bounded_number_of_events(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    script = tmp_path / "loose-door.txt"
    lines = [f"{0.2 + i * 0.1:.2f} tamper {'on' if i % 2 == 0 else 'off'}" for i in range(40)]
    script.write_text("\n".join(lines) + "\n")  # 10 changes a second for 4 s
    cfg = bell_cfg(
        tmp_path,
        simulator={"socket": str(tmp_path / "bell.sock"), "script": str(script)},
        policy={"flap_changes": 6, "flap_window_s": 1.5},
    )
    svc = make_service(cfg)
    wait_events(spool, has("flapping_cleared"), timeout=15)
    time.sleep(0.3)
    tamper = [(e.ev, e.why) for e in bell_events(spool) if e.inp == "tamper"]
    assert len(tamper) == 8  # instead of 40 alarm rows
    assert tamper[5] == ("flapping", "6 changes in 1.5s")
    assert tamper[6] == ("flapping_cleared", "35 changes not reported; now tamper_cleared")
    assert tamper[7] == ("tamper_cleared", None)
    assert svc.facts()["flapping"]["tamper"] == {
        "flapping": False,
        "episodes": 1,
        "suppressed": 35,
    }
