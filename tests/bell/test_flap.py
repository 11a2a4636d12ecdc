"""Flap suppression on every input: traces through tamper, power, the loop and the links."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.bell.inputs import CommChange, Sample
from agent.bell.machine import BellSignal
from agent.bell.panel import BellPanel
from agent.bell.supervision import AuxInput, SupervisedLoop
from agent.config import BellConfig, SupervisionConfig
from agent.flap import FlapGuard
from tests.bell.conftest import lazy_and_eager, timed

Got = list[tuple[Any, ...]]


def tamper(changes: int = 6, window_s: float = 10) -> AuxInput:
    return AuxInput("tamper", 0.03, "tamper", "tamper_cleared", FlapGuard(changes, window_s))


def chatter(start: float, n: int, every: float = 0.25) -> list[tuple[bool, float]]:
    """``n`` changes of a loose contact, on first, every ``every`` seconds (4 a second)."""
    return [(i % 2 == 0, start + i * every) for i in range(n)]


def run(inp: AuxInput, trace: list[tuple[bool, float]], end: float) -> list[BellSignal]:
    out: list[BellSignal] = []
    for level, t in trace:
        out += inp.feed(level, t)
    return out + inp.tick(end)


def shape(signals: list[BellSignal]) -> Got:
    return [(s.kind, s.inp, round(s.t, 3), s.why) for s in signals]


def test_a_chattering_tamper_contact_gives_one_episode() -> None:
    got = shape(run(tamper(), chatter(1.0, 40), 60))
    assert got == [
        ("tamper", "tamper", 1.0, None),
        ("tamper_cleared", "tamper", 1.25, None),
        ("tamper", "tamper", 1.5, None),
        ("tamper_cleared", "tamper", 1.75, None),
        ("tamper", "tamper", 2.0, None),
        ("flapping", "tamper", 2.25, "6 changes in 10s"),
        # ten quiet seconds after the last change (10.75), then the state the centre lacks
        ("flapping_cleared", "tamper", 20.75, "35 changes not reported; now tamper_cleared"),
        ("tamper_cleared", "tamper", 20.75, None),
    ]


def test_an_episode_that_ends_where_it_was_reported_adds_no_catch_up() -> None:
    got = shape(run(tamper(), chatter(1.0, 41), 60))  # ends on: the last report was "tamper"
    assert got[-1] == ("flapping_cleared", "tamper", 21.0, "36 changes not reported; now tamper")


def test_flapping_again_soon_doubles_the_quiet_time() -> None:
    inp = tamper()
    run(inp, chatter(1.0, 40), 21)  # first episode, cleared at 20.75
    got = shape(run(inp, chatter(25.0, 8), 100))
    assert got == [
        ("tamper", "tamper", 25.0, None),
        ("tamper_cleared", "tamper", 25.25, None),
        ("tamper", "tamper", 25.5, None),
        ("tamper_cleared", "tamper", 25.75, None),
        ("tamper", "tamper", 26.0, None),
        ("flapping", "tamper", 26.25, "6 changes in 10s; again, 20s quiet ends it"),
        ("flapping_cleared", "tamper", 46.75, "3 changes not reported; now tamper_cleared"),
        ("tamper_cleared", "tamper", 46.75, None),
    ]
    # long after the probation, an episode needs the plain window again
    got = shape(run(inp, chatter(200.0, 6), 300))
    assert got[-3:] == [
        ("flapping", "tamper", 201.25, "6 changes in 10s"),
        ("flapping_cleared", "tamper", 211.25, "1 changes not reported; now tamper_cleared"),
        ("tamper_cleared", "tamper", 211.25, None),
    ]


def test_a_contact_chattering_in_bursts_for_an_hour_gives_a_bounded_count() -> None:
    inp = AuxInput("power", 0.03, "power_fail", "power_restored", FlapGuard(20, 10))
    trace: list[tuple[bool, float]] = []
    for burst in range(240):  # 6 s of chatter at 4 a second, then 9 s quiet, for an hour
        trace += chatter(burst * 15.0, 24)
    got = run(inp, trace, 3600)
    changes = len(trace)
    assert changes == 5760
    assert len(got) < 250  # was one alarm row per change
    assert inp.flap.episodes < 12


def test_the_state_during_an_episode_is_what_was_reported() -> None:
    inp = tamper()
    run(inp, chatter(1.0, 7), 3.0)  # on at 1.0 ... flapping from 2.25, value on at 2.5
    assert inp.flap.flapping
    assert inp.value is True
    assert inp.active is True  # the last report (2.0) said tamper
    inp.feed(False, 3.0)
    assert inp.active is True  # noise is not reported, not even in the state


def test_loop_line_faults_flap_like_contacts() -> None:
    sup = SupervisionConfig(enabled=True)
    loop = SupervisedLoop(sup, 0.05, FlapGuard(4, 10))
    out: list[BellSignal] = []
    for i in range(12):  # a wire touching and leaving: open / normal every half second
        out += loop.feed(0.97 if i % 2 == 0 else 0.5, 1.0 + i / 2)
    out += loop.tick(30)
    assert shape(out) == [
        ("line_open", "loop", 1.0, "open"),
        ("line_restored", "loop", 1.5, "normal"),
        ("line_open", "loop", 2.0, "open"),
        ("flapping", "loop", 2.5, "4 changes in 10s"),
        ("flapping_cleared", "loop", 16.5, "9 changes not reported; now line ok"),
        ("line_restored", "loop", 16.5, "normal"),
    ]


def panel(**policy: Any) -> BellPanel:
    return BellPanel(BellConfig(backend="modbus", modbus={"port": "/dev/x"}, policy=policy))


def test_a_flaky_link_gives_one_episode_and_the_state_stays_put() -> None:
    p = panel(flap_changes=4, flap_window_s=5)
    out: list[BellSignal] = []
    states = set()
    for i in range(20):
        out += p.feed(CommChange(i % 2 == 1, 1.0 + i, f"poll {i}"))
        states.add(tuple(p.status(1.0 + i)[1]["faults"]))
    out += p.tick(100)
    assert shape(out) == [
        ("comm_fault", "modbus", 1.0, "poll 0"),
        ("comm_restored", "modbus", 2.0, "poll 1"),
        ("comm_fault", "modbus", 3.0, "poll 2"),
        ("flapping", "modbus", 4.0, "4 changes in 5s"),
        ("flapping_cleared", "modbus", 25.0, "17 changes not reported; now link ok"),
        ("comm_restored", "modbus", 25.0, "poll 19"),
    ]
    assert states == {(), ("comm",), ("comm", "flapping_modbus")}
    assert p.flaps()["modbus"] == {"flapping": False, "episodes": 1, "suppressed": 17}


def test_output_link_faults_are_their_own_input() -> None:
    p = panel()
    out = p.feed(CommChange(False, 1.0, "open_failed: GPIO busy", link="outputs"))
    assert shape(out) == [("comm_fault", "outputs", 1.0, "open_failed: GPIO busy")]
    assert p.faults() == ["comm_outputs"]
    assert p.comm_ok  # the input is fine


def test_a_flapping_button_does_not_move_the_retained_state() -> None:
    p = panel(flap_changes=6, flap_window_s=10, lockout_s=600)
    seen = []
    for i in range(40):
        t = 1.0 + i * 0.25
        p.feed(Sample("button", float(i % 2 == 0), t))
        p.tick(t + 0.1)
        if t > 3:  # flapping from the 6th change on
            seen.append(p.status(t + 0.1))
    assert {s for s, _ in seen} == {"active"}  # the first press activated the outputs
    assert {d["button"] for _, d in seen} == {"flapping"}


@pytest.mark.parametrize("every", [0.01, 0.25, 1.0])
def test_tamper_and_power_flap_apart(every: float) -> None:
    p = panel(flap_changes=6, flap_window_s=10)
    out: list[BellSignal] = []
    for i in range(30):
        out += p.feed(Sample("tamper", float(i % 2 == 0), 1.0 + i * every))
    out += p.feed(Sample("power", 1.0, 50.0)) + p.tick(200)
    power = [s.kind for s in out if s.inp == "power"]
    assert power == ["power_fail"]  # the other input is unaffected
    if every >= 0.25:
        assert [s.kind for s in out if s.inp == "tamper"].count("flapping") == 1


gaps = st.one_of(
    st.floats(min_value=0.001, max_value=12.0),
    st.sampled_from([0.02, 0.029, 0.03, 0.031, 9.99, 10.0, 10.01, 19.99, 20.0]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), gaps), min_size=1, max_size=60))
# A change right at the end of an episode (float slack) extends it, ticked early or not:
@example([(True, 1.0), (False, 19.99), (True, 1.0), (False, 1.0), (True, 2.0), (False, 10.0)])
def test_late_ticks_give_the_same_signals_as_punctual_ones(steps: list[tuple[bool, float]]) -> None:
    trace = timed(steps)
    lazy, eager = lazy_and_eager(lambda: tamper(4, 10), trace, trace[-1][1] + 500, 0.05)
    assert shape(eager) == shape(lazy)
