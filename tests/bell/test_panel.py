"""Whole scenarios through the panel: inputs, loop, comm, injected presses, outputs, state."""

from __future__ import annotations

from typing import Any

from agent.bell.inputs import CommChange, Sample
from agent.bell.machine import BellSignal
from agent.bell.panel import BellPanel
from agent.config import BellConfig


def panel(**over: Any) -> BellPanel:
    return BellPanel(BellConfig(**{"backend": "simulator", **over}))


def kinds(signals: list[BellSignal]) -> list[tuple[str, float]]:
    return [(s.kind, round(s.t, 3)) for s in signals]


def test_outputs_run_for_their_duration() -> None:
    p = panel(outputs={"duration_s": 30})
    out = p.feed(Sample("button", 1.0, 1.0)) + p.tick(1.1)
    assert p.outputs.on
    out += p.feed(Sample("button", 0.0, 2.0)) + p.tick(2.1)
    assert p.status(2.1)[0] == "active"  # released, but the strobe still runs
    assert p.deadline() == 31.0
    out += p.tick(40.0)
    assert not p.outputs.on
    assert kinds(out)[-1] == ("outputs_off", 31.0)
    assert out[-1].why == "duration"
    assert p.status(40.0)[0] == "idle"


def test_until_ack_runs_until_acknowledged() -> None:
    p = panel(outputs={"duration_s": 30, "until_ack": True})
    p.feed(Sample("button", 1.0, 1.0))
    p.feed(Sample("button", 0.0, 1.5))
    assert [s.kind for s in p.tick(1000.0)] == ["released"]
    assert p.outputs.on
    out = p.acknowledge(1001.0)
    assert [(s.kind, s.why) for s in out] == [("outputs_off", "ack")]
    assert p.acknowledge(1002.0) == []  # nothing to silence


def test_no_outputs_backend_never_runs_them() -> None:
    p = panel(outputs={"backend": "none"})
    p.feed(Sample("button", 1.0, 1.0))
    assert [s.kind for s in p.tick(2.0)] == ["pressed", "activated"]
    assert not p.outputs.on


def test_injected_press_goes_through_the_policy() -> None:
    p = panel(policy={"mode": "hold", "hold_s": 3})
    out = p.inject_press(10.0, 4.0)
    while (d := p.deadline()) is not None and d < 20:
        out += p.tick(d)
    got = [(s.kind, round(s.t, 3), s.held_ms) for s in out]
    assert got[:3] == [("pressed", 10.0, None), ("activated", 13.0, None), ("released", 14.0, 4000)]


def test_real_and_injected_presses_combine() -> None:
    p = panel()
    p.feed(Sample("button", 1.0, 1.0))
    p.tick(1.1)
    out = p.inject_press(2.0, 0.5) + p.tick(3.0)  # already held: no second press
    assert [s.kind for s in out] == []
    out = p.feed(Sample("button", 0.0, 4.0)) + p.tick(4.1)
    assert [(s.kind, s.held_ms) for s in out] == [("released", 3000)]


def test_comm_fault_and_restore_are_reported_once() -> None:
    p = panel(backend="modbus", modbus={"port": "/dev/null"})
    out = p.feed(CommChange(False, 1.0, "3 failed polls"))
    out += p.feed(CommChange(False, 2.0, "again"))
    assert p.status(2.0) == (
        "fault",
        {"button": "idle", "outputs": False, "test": False, "faults": ["comm"]},
    )
    out += p.feed(CommChange(True, 3.0, "after 5 failed polls"))
    assert [(s.kind, s.inp, s.why) for s in out] == [
        ("comm_fault", "modbus", "3 failed polls"),
        ("comm_restored", "modbus", "after 5 failed polls"),
    ]


def test_supervised_loop_press_and_cut_while_pressed() -> None:
    p = panel(supervision={"enabled": True})
    out = p.feed(Sample("loop", 0.5, 0.0)) + p.tick(0.1)
    out += p.feed(Sample("loop", 0.2, 1.0)) + p.tick(1.1)  # alarm band: pressed
    out += p.feed(Sample("loop", 1.0, 2.0)) + p.tick(2.1)  # wire cut while pressed
    assert p.status(2.1)[1]["faults"] == ["line_open"]
    out += p.feed(Sample("loop", 0.5, 5.0)) + p.tick(5.1)
    assert [(s.kind, round(s.t, 3)) for s in out] == [
        ("pressed", 1.0),
        ("activated", 1.0),
        ("line_open", 2.0),
        ("released", 2.0),
        ("line_restored", 5.0),
    ]
    assert p.status(5.1)[1]["loop"] == "normal"


def test_test_flag_covers_every_input() -> None:
    p = panel()
    out = p.start_test(0.0, 60) + p.feed(Sample("tamper", 1.0, 1.0)) + p.tick(2.0)
    out += p.feed(CommChange(False, 3.0, "x"))
    assert all(s.test for s in out)
    assert [s.kind for s in out] == ["test_started", "tamper", "comm_fault"]
    assert p.status(3.0)[0] == "fault"
    out = p.end_test(4.0) + p.feed(Sample("tamper", 0.0, 5.0)) + p.tick(6.0)
    assert [(s.kind, s.test) for s in out] == [("test_ended", True), ("tamper_cleared", False)]


def test_state_order() -> None:
    p = panel()
    assert p.status(0.0)[0] == "idle"
    p.start_test(0.0, 100)
    assert p.status(0.0)[0] == "test"
    p.feed(Sample("power", 1.0, 1.0))
    p.tick(1.1)
    assert p.status(1.1)[0] == "fault"
    p.feed(Sample("button", 1.0, 2.0))
    p.tick(2.1)
    assert p.status(2.1)[0] == "active"
