"""The bell thread with a real spool file and outbox: events, state, outputs, commands."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.bell import BellService
from agent.bell.hw.simulator import SimulatorOutputs
from agent.config import BellConfig
from agent.events import BellEvent, Priority, decode_event
from agent.outbox import Outbox
from agent.spool import Spool, SpoolRow
from tests.bell.conftest import DEVICE, TOPICS
from tests.bell.modbus_module import SimModule


def bell_cfg(tmp_path: Path, **over: Any) -> BellConfig:
    base: dict[str, Any] = {
        "backend": "simulator",
        "simulator": {"socket": str(tmp_path / "bell.sock")},
        "debounce_ms": 10,
        "policy": {"lockout_s": 0},
        "outputs": {"duration_s": 0.3},
    }
    return BellConfig(**{**base, **over})


def bell_events(spool: Spool) -> list[BellEvent]:
    out = []
    for row in spool.next_batch(1000):
        if row.topic == TOPICS.event("bell"):
            ev = decode_event(row.payload)
            assert isinstance(ev, BellEvent)
            out.append(ev)
    return out


def wait_events(
    spool: Spool, pred: Callable[[list[BellEvent]], bool], timeout: float = 10
) -> list[BellEvent]:
    deadline = time.monotonic() + timeout
    while True:
        evs = bell_events(spool)
        if pred(evs):
            return evs
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met; events: {[e.ev for e in evs]}")
        time.sleep(0.02)


def wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def has(*kinds: str) -> Callable[[list[BellEvent]], bool]:
    return lambda evs: all(k in [e.ev for e in evs] for k in kinds)


def state_rows(spool: Spool) -> list[SpoolRow]:
    return [r for r in spool.next_batch(1000) if r.topic == TOPICS.state("bell")]


def send(path: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(5)
        c.connect(str(path))
        c.sendall(line.encode() + b"\n")
        return c.recv(200).decode()


def test_a_press_reaches_the_spool_as_alarm_events(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    snaps: list[str] = []
    svc = make_service(bell_cfg(tmp_path), snapshot=lambda eid: snaps.append(eid) is None)
    assert send(tmp_path / "bell.sock", "press 0.2") == "ok press 0.2\n"
    evs = wait_events(spool, has("outputs_off"))
    assert [e.ev for e in evs] == ["pressed", "activated", "released", "outputs_off"]
    rows = [r for r in spool.next_batch(1000) if r.topic == TOPICS.event("bell")]
    assert {r.priority for r in rows} == {Priority.ALARM}
    pressed, activated, released, off = evs
    for e in (pressed, activated):
        assert e.loc is not None
        assert (e.loc.pole, e.loc.lat, e.loc.lon) == ("GN-042", 37.4979, 127.0276)
    assert released.loc is None
    assert released.held == pytest.approx(200, abs=15)
    assert activated.snap is True
    assert snaps == [activated.id]
    assert pressed.snap is None
    assert off.why == "duration"
    assert [e.seq for e in evs] == sorted(e.seq for e in evs)
    assert all(e.dev == "pole-0042" and e.test is None for e in evs)
    assert isinstance(svc.outputs, SimulatorOutputs)
    assert list(svc.outputs.history) == [
        ("strobe", True),
        ("siren", True),
        ("strobe", False),
        ("siren", False),
    ]


def test_retained_state_follows_the_bell(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    svc = make_service(bell_cfg(tmp_path))
    wait_for(lambda: len(state_rows(spool)) > 0)
    first = state_rows(spool)
    assert len(first) == 1
    assert first[0].retain
    assert first[0].priority == Priority.ALARM
    assert json.loads(first[0].payload)["state"] == "idle"
    # The spool keeps only the newest unsent retained value per topic, so the states are
    # read as a link would: taken and acknowledged as they come.
    states: list[str] = []

    def take() -> None:
        rows = state_rows(spool)
        states.extend(json.loads(r.payload)["state"] for r in rows)
        spool.ack_many([r.id for r in rows])

    take()
    svc.simulate_press(0.1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not ("active" in states and states[-1] == "idle"):
        take()
        time.sleep(0.005)
    assert states[0] == "idle"
    assert "active" in states
    assert states[-1] == "idle"
    assert svc.facts()["activations"] == 1
    assert svc.facts()["state"] == "idle"


def test_test_window_flags_events(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    svc = make_service(bell_cfg(tmp_path))
    svc.start_test(60)
    svc.simulate_press(0.05)
    wait_events(spool, has("released"))
    svc.end_test()
    evs = wait_events(spool, has("test_ended"))
    flagged = [(e.ev, e.test) for e in evs if e.ev != "outputs_off"]
    assert flagged == [
        ("test_started", True),
        ("pressed", True),
        ("activated", True),
        ("released", True),
        ("test_ended", True),
    ]


def test_acknowledge_silences_outputs_held_until_ack(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    svc = make_service(bell_cfg(tmp_path, outputs={"until_ack": True}))
    svc.simulate_press(0.05)
    wait_events(spool, has("released"))
    time.sleep(0.5)  # longer than duration_s would be: still on, waiting for the centre
    assert isinstance(svc.outputs, SimulatorOutputs)
    assert svc.outputs.state == {"strobe": True, "siren": True}
    svc.acknowledge()
    evs = wait_events(spool, has("outputs_off"))
    assert evs[-1].why == "ack"
    assert svc.outputs.state == {"strobe": False, "siren": False}


def test_a_failing_snapshot_never_costs_the_alarm(
    tmp_path: Path, spool: Spool, make_service: Callable[..., BellService]
) -> None:
    def broken(event_id: str) -> bool:
        raise RuntimeError("vision is down")

    svc = make_service(bell_cfg(tmp_path), snapshot=broken)
    svc.simulate_press(0.05)
    evs = wait_events(spool, has("activated"))
    assert [e.snap for e in evs if e.ev == "activated"] == [None]
    assert svc.threads()[0].is_alive()


def test_a_crash_in_the_bell_thread_is_logged_and_ends_it(
    tmp_path: Path,
    make_service: Callable[..., BellService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = make_service(bell_cfg(tmp_path))
    caplog.set_level(logging.ERROR)
    svc._submit(lambda t: [1 / 0][0])  # a bug in a command: simulated with a private hook
    svc.threads()[0].join(5)
    assert not svc.threads()[0].is_alive()
    assert svc.crashed == "ZeroDivisionError: division by zero"
    assert "bell thread crashed, the bell is NOT watched" in caplog.text
    assert not (tmp_path / "bell.sock").exists()  # the input was closed on the way out


def test_stop_closes_the_input_and_progress_moves(
    tmp_path: Path, spool: Spool, outbox: Outbox
) -> None:
    svc = BellService(bell_cfg(tmp_path), DEVICE, outbox)
    svc.start()
    first = svc.last_progress()
    svc.simulate_press(0.01)
    wait_events(spool, has("released"))
    assert svc.last_progress() > first
    svc.stop(5)
    assert not svc.threads()[0].is_alive()
    assert not (tmp_path / "bell.sock").exists()


def test_modbus_press_and_dead_module_through_the_thread(
    spool: Spool, make_service: Callable[..., BellService]
) -> None:
    module = SimModule()
    try:
        cfg = BellConfig(
            backend="modbus",
            modbus={"port": module.path, "poll_ms": 20, "timeout_ms": 50, "fault_after": 3},
            debounce_ms=0,
            outputs={"backend": "modbus", "strobe": "0", "siren": "1", "duration_s": 0.2},
        )
        make_service(cfg)
        module.inputs[0] = True
        wait_events(spool, has("activated"))
        # the event goes to the spool first, then the coils are switched
        wait_for(lambda: module.coils == {0: True, 1: True})
        module.inputs[0] = False
        wait_events(spool, has("released", "outputs_off"))
        wait_for(lambda: module.coils == {0: False, 1: False})
        module.mode = "dead"
        wait_events(spool, has("comm_fault"))
        module.mode = "ok"
        evs = wait_events(spool, has("comm_restored"))
        faults = [e for e in evs if e.ev.startswith("comm")]
        assert [(e.ev, e.inp) for e in faults] == [
            ("comm_fault", "modbus"),
            ("comm_restored", "modbus"),
        ]
        assert faults[0].why is not None
        assert faults[0].why.startswith("3 failed polls: no reply from unit 1")
    finally:
        module.close()
