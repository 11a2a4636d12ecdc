"""Supervised loop classification with hysteresis, line faults, tamper and power inputs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.bell.supervision import AuxInput, LoopClassifier, LoopState, SupervisedLoop
from agent.config import BellConfig, SupervisionConfig

SUP = SupervisionConfig(enabled=True, normal=(0.35, 0.65), alarm=(0.10, 0.35), hysteresis=0.02)


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (0.0, "short"),
        (0.09, "short"),
        (0.10, "alarm"),
        (0.3, "alarm"),
        (0.35, "normal"),
        (0.5, "normal"),
        (0.65, "normal"),
        (0.66, "open"),
        (1.0, "open"),
    ],
)
def test_raw_bands(value: float, band: str) -> None:
    assert LoopClassifier(SUP).raw(value) == band


@pytest.mark.parametrize(
    ("current", "value", "new"),
    [
        ("normal", 0.34, "normal"),  # inside the margin below the normal band
        ("normal", 0.33, "normal"),
        ("normal", 0.32, "alarm"),
        ("normal", 0.66, "normal"),
        ("normal", 0.68, "open"),
        ("alarm", 0.36, "alarm"),
        ("alarm", 0.38, "normal"),
        ("alarm", 0.09, "alarm"),
        ("alarm", 0.07, "short"),
        ("open", 0.64, "open"),
        ("open", 0.62, "normal"),
        ("short", 0.11, "short"),
        ("short", 0.2, "alarm"),
        ("normal", float("nan"), "open"),
    ],
)
def test_hysteresis(current: LoopState, value: float, new: str) -> None:
    assert LoopClassifier(SUP).classify(value, current) == new


def test_bands_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="bands must satisfy"):
        SupervisionConfig(enabled=True, normal=(0.1, 0.3), alarm=(0.2, 0.5))


def run_loop(trace: list[tuple[float, float]], end: float) -> list[tuple[str, float, str | None]]:
    loop = SupervisedLoop(SUP, 0.05)
    out = []
    for value, t in trace:
        out += loop.feed(value, t)
    out += loop.tick(end)
    return [(s.kind, round(s.t, 3), s.why) for s in out]


def test_cut_wire_then_restore() -> None:
    got = run_loop([(0.5, 0.0), (0.97, 1.0), (0.97, 1.2), (0.5, 5.0)], 10)
    assert got == [("line_open", 1.0, "open"), ("line_restored", 5.0, "normal")]


def test_short_then_open_then_restore() -> None:
    got = run_loop([(0.5, 0.0), (0.01, 1.0), (0.98, 2.0), (0.5, 3.0)], 10)
    assert got == [
        ("line_short", 1.0, "short"),
        ("line_open", 2.0, "open"),
        ("line_restored", 3.0, "normal"),
    ]


def test_a_glitch_shorter_than_the_debounce_is_no_fault() -> None:
    assert run_loop([(0.5, 0.0), (0.99, 1.0), (0.5, 1.02)], 10) == []


def test_the_alarm_band_is_the_button() -> None:
    loop = SupervisedLoop(SUP, 0.05)
    loop.feed(0.5, 0.0)
    assert not loop.button
    loop.feed(0.2, 1.0)
    assert loop.button
    assert loop.line == "ok"


def test_tamper_and_power_inputs() -> None:
    tamper = AuxInput("tamper", 0.03, "tamper", "tamper_cleared")
    power = AuxInput("power", 0.03, "power_fail", "power_restored")
    out = tamper.feed(True, 1.0) + tamper.feed(False, 1.01) + tamper.feed(True, 1.02)
    out += tamper.tick(2.0) + tamper.feed(False, 3.0) + tamper.tick(4.0)
    out += power.feed(True, 5.0) + power.tick(6.0) + power.feed(False, 7.0) + power.tick(8.0)
    assert [(s.kind, s.inp, round(s.t, 3)) for s in out] == [
        ("tamper", "tamper", 1.02),
        ("tamper_cleared", "tamper", 3.0),
        ("power_fail", "power", 5.0),
        ("power_restored", "power", 7.0),
    ]
    assert tamper.debounce.rejected == 1


def test_supervision_needs_an_analog_input() -> None:
    with pytest.raises(ValidationError, match="gpiod has none"):
        BellConfig(
            backend="gpiod", gpiod={"chip": "c", "button": "B"}, supervision={"enabled": True}
        )
    with pytest.raises(ValidationError, match="loop_register"):
        BellConfig(backend="modbus", modbus={"port": "/dev/ttyUSB0"}, supervision={"enabled": True})
