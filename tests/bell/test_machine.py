"""Input traces (level, time) through the bell machine, for every policy, with the signals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bell.machine import BellMachine, BellSignal, Debouncer
from agent.config import BellConfig
from tests.bell.conftest import lazy_and_eager, timed

Trace = list[tuple[bool, float]]
Expected = list[tuple[Any, ...]]  # (kind, t) or (kind, t, held_ms) or (kind, t, held_ms, why)


def machine(debounce_ms: int = 30, **policy: Any) -> BellMachine:
    return BellMachine(BellConfig(backend="simulator", debounce_ms=debounce_ms, policy=policy))


def run(m: BellMachine, trace: Trace, end: float) -> list[BellSignal]:
    out: list[BellSignal] = []
    for level, t in trace:
        out += m.feed(level, t)
    return out + m.tick(end)


def shape(signals: list[BellSignal], expected: Expected) -> list[tuple[Any, ...]]:
    """Signals cut to the fields the expectation gives, times rounded to the ms."""
    out = []
    for s, e in zip(signals, expected, strict=False):
        full = (s.kind, round(s.t, 3), s.held_ms, s.why)
        out.append(full[: len(e)])
    return out + [(s.kind, round(s.t, 3)) for s in signals[len(expected) :]]


def bouncy(level: bool, t: float) -> Trace:
    """A contact that bounces for 5 ms before settling at ``level``."""
    return [
        (level, t),
        (not level, t + 0.002),
        (level, t + 0.003),
        (not level, t + 0.004),
        (level, t + 0.005),
    ]


CASES: list[tuple[str, dict[str, Any], Trace, float, Expected]] = [
    (
        "bounce on press and release counts once",
        {"mode": "immediate"},
        [*bouncy(True, 1.0), *bouncy(False, 1.5)],
        5,
        [("pressed", 1.005), ("activated", 1.005), ("released", 1.505, 500)],
    ),
    ("a 10 ms spike is no press", {"mode": "immediate"}, [(True, 1.0), (False, 1.01)], 5, []),
    (
        "short tap, immediate",
        {"mode": "immediate"},
        [(True, 1.0), (False, 1.1)],
        5,
        [("pressed", 1.0, None, None), ("activated", 1.0), ("released", 1.1, 100, None)],
    ),
    (
        "hold just under the threshold",
        {"mode": "hold", "hold_s": 3},
        [(True, 1.0), (False, 3.99)],
        10,
        [("pressed", 1.0), ("released", 3.99, 2990, "short")],
    ),
    (
        "hold just over the threshold",
        {"mode": "hold", "hold_s": 3},
        [(True, 1.0), (False, 4.01)],
        10,
        [("pressed", 1.0), ("activated", 4.0), ("released", 4.01, 3010, None)],
    ),
    (
        "hold reached with no sample after it (timer)",
        {"mode": "hold", "hold_s": 5},
        [(True, 1.0)],
        7,
        [("pressed", 1.0), ("activated", 6.0)],
    ),
    (
        "double press inside the window",
        {"mode": "double", "double_window_s": 2},
        [(True, 1.0), (False, 1.2), (True, 2.9), (False, 3.1)],
        10,
        [
            ("pressed", 1.0),
            ("released", 1.2, 200),
            ("pressed", 2.9),
            ("activated", 2.9),
            ("released", 3.1, 200),
        ],
    ),
    (
        "double press outside the window, then a pair",
        {"mode": "double", "double_window_s": 2},
        [(True, 1.0), (False, 1.2), (True, 3.1), (False, 3.3), (True, 4.0), (False, 4.2)],
        10,
        [
            ("pressed", 1.0),
            ("released", 1.2),
            ("pressed", 3.1),
            ("released", 3.3),
            ("pressed", 4.0),
            ("activated", 4.0),
            ("released", 4.2),
        ],
    ),
    (
        "lockout: a second press inside it does not activate, one after it does",
        {"mode": "immediate", "lockout_s": 10},
        [(True, 1.0), (False, 1.2), (True, 6.0), (False, 6.2), (True, 11.5), (False, 11.7)],
        20,
        [
            ("pressed", 1.0, None, None),
            ("activated", 1.0),
            ("released", 1.2),
            ("pressed", 6.0, None, "lockout"),
            ("released", 6.2),
            ("pressed", 11.5, None, None),
            ("activated", 11.5),
            ("released", 11.7),
        ],
    ),
    (
        "a duress hold that outlasts the lockout activates when it ends",
        {"mode": "hold", "hold_s": 3, "lockout_s": 10},
        [(True, 1.0), (False, 5.0), (True, 9.0), (False, 20.0)],
        30,
        [
            ("pressed", 1.0),
            ("activated", 4.0),
            ("released", 5.0),
            ("pressed", 9.0, None, "lockout"),
            ("activated", 14.0),
            ("released", 20.0, 11000),
        ],
    ),
    (
        "stuck button: one activation, one stuck fault, cleared on release",
        {"mode": "immediate", "stuck_s": 120},
        [(True, 1.0), (True, 300.0), (True, 900.0), (False, 1000.0)],
        2000,
        [
            ("pressed", 1.0),
            ("activated", 1.0),
            ("stuck", 121.0, 120000),
            ("stuck_cleared", 1000.0, 999000),
            ("released", 1000.0, 999000),
        ],
    ),
]


@pytest.mark.parametrize(
    ("policy", "trace", "end", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_policy_traces(
    policy: dict[str, Any], trace: Trace, end: float, expected: Expected
) -> None:
    m = machine(**policy)
    got = run(m, trace, end)
    assert shape(got, expected) == [
        tuple(round(x, 3) if isinstance(x, float) else x for x in e) for e in expected
    ]


def test_bounces_are_counted() -> None:
    m = machine()
    run(m, [*bouncy(True, 1.0), *bouncy(False, 2.0)], 5)
    assert m.debounce.rejected == 4


def test_flapping_is_reported_once_and_suppresses_the_storm() -> None:
    m = machine(mode="immediate", lockout_s=10, flap_changes=6, flap_window_s=10)
    trace: Trace = []
    for i in range(10):  # a press every second for ten seconds
        trace += [(True, 1.0 + i), (False, 1.5 + i)]
    got = run(m, trace, 40)
    kinds = [s.kind for s in got]
    assert kinds.count("flapping") == 1
    assert kinds.count("flapping_cleared") == 1
    # before flapping: 3 presses and 2 releases reported; the 6th change starts the episode
    assert kinds[: kinds.index("flapping")] == [
        "pressed",
        "activated",
        "released",
        "pressed",
        "released",
        "pressed",
    ]
    flap = got[kinds.index("flapping")]
    assert round(flap.t, 3) == 3.5
    cleared = got[kinds.index("flapping_cleared")]
    assert round(cleared.t, 3) == 20.5  # ten quiet seconds after the last change at 10.5
    assert cleared.why == "15 changes not reported; button up"
    # activations are never suppressed, only limited by the lockout
    assert [round(s.t, 3) for s in got if s.kind == "activated"] == [1.0]


def test_flapping_keeps_activating_only_after_each_lockout() -> None:
    m = machine(mode="immediate", lockout_s=10, flap_changes=6, flap_window_s=10)
    trace: Trace = []
    for i in range(30):
        trace += [(True, 1.0 + i), (False, 1.5 + i)]
    got = run(m, trace, 60)
    assert [round(s.t, 3) for s in got if s.kind == "activated"] == [1.0, 11.0, 21.0]
    assert [s.kind for s in got].count("flapping") == 1
    assert sum(1 for s in got if s.kind in ("pressed", "released")) == 5


def test_test_window_flags_signals_and_expires() -> None:
    m = machine(mode="immediate")
    out = m.start_test(0.0, 60)
    out += run(m, [(True, 1.0), (False, 1.2)], 61)
    out += run(m, [(True, 70.0), (False, 70.2)], 80)
    got = [(s.kind, round(s.t, 3), s.test) for s in out]
    assert got == [
        ("test_started", 0.0, True),
        ("pressed", 1.0, True),
        ("activated", 1.0, True),
        ("released", 1.2, True),
        ("test_ended", 60.0, True),
        ("pressed", 70.0, False),
        ("activated", 70.0, False),
        ("released", 70.2, False),
    ]


def test_test_window_ended_early_and_extended() -> None:
    m = machine()
    assert [s.kind for s in m.start_test(0.0, 10)] == ["test_started"]
    assert m.start_test(5.0, 10) == []  # extending does not start a second window
    assert m.tick(14.0) == []
    assert [(s.kind, s.why) for s in m.end_test(14.5)] == [("test_ended", "ended")]
    assert m.tick(100) == []
    assert not m.in_test


def test_zero_debounce_reports_at_once() -> None:
    m = machine(debounce_ms=0)
    assert [(s.kind, s.t) for s in m.feed(True, 1.0)] == [("pressed", 1.0), ("activated", 1.0)]
    assert [(s.kind, s.held_ms) for s in m.feed(False, 1.25)] == [("released", 250)]


def test_deadline_points_at_the_next_transition() -> None:
    m = machine(mode="hold", hold_s=3)
    assert m.deadline() is None
    m.feed(True, 1.0)
    assert m.deadline() == pytest.approx(1.03)  # the debounce settles
    m.tick(1.03)
    assert m.deadline() == pytest.approx(4.0)  # the hold is reached
    m.feed(False, 2.0)
    # the hold timer waits for the pending release to settle, never fires before it
    assert m.deadline() == pytest.approx(2.03)


def test_state_names() -> None:
    m = machine(mode="hold", hold_s=3, lockout_s=10, stuck_s=60)
    assert m.state(0) == "idle"
    m.feed(True, 1.0)
    m.tick(2.0)
    assert m.state(2.0) == "pressed"
    m.tick(5.0)
    assert m.state(5.0) == "active"
    m.tick(70.0)
    assert m.state(70.0) == "stuck"
    m.feed(False, 71.0)
    m.tick(71.1)
    assert m.state(71.1) == "idle"  # lockout (from 4 s to 14 s) is over
    m2 = machine(mode="immediate", lockout_s=10)
    run(m2, [(True, 1.0), (False, 1.5)], 2)
    assert m2.state(2.0) == "lockout"


def test_debouncer_alone() -> None:
    d: Debouncer[str] = Debouncer(0.05, "ok")
    assert d.feed("open", 1.0) == []
    assert d.feed("ok", 1.02) == []  # back before it counted
    assert d.feed("open", 1.03) == []
    assert d.tick(1.079) == []
    assert d.tick(1.08) == [("open", 1.03)]
    assert d.rejected == 1


def test_a_timer_waits_for_a_release_that_is_being_debounced() -> None:
    """Released at 2.99 s of a 3 s hold, ticked at 3.01 s while the release settles."""
    m = machine(mode="hold", hold_s=3)
    out = m.feed(True, 1.0) + m.tick(1.5) + m.feed(False, 3.99) + m.tick(4.01) + m.tick(4.03)
    assert [(s.kind, s.why) for s in out] == [("pressed", None), ("released", "short")]


def test_a_second_press_at_the_window_edge_counts_even_while_debounced() -> None:
    m = machine(mode="double", double_window_s=2)
    out = m.feed(True, 1.0) + m.feed(False, 1.2) + m.feed(True, 2.995) + m.tick(3.01)
    out += m.tick(3.03)
    assert [s.kind for s in out] == ["pressed", "released", "pressed", "activated"]


# Gaps near the thresholds (hold 3 s, window 2 s, debounce 30 ms) find ordering bugs.
gaps = st.one_of(
    st.floats(min_value=0.001, max_value=3.0),
    st.sampled_from([0.01, 0.02, 0.029, 0.031, 1.98, 1.99, 2.0, 2.01, 2.98, 2.99, 3.0, 3.01]),
)
events = st.lists(st.tuples(st.booleans(), gaps), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(events, st.sampled_from(["immediate", "hold", "double"]))
def test_late_ticks_give_the_same_signals_as_punctual_ones(
    steps: list[tuple[bool, float]], mode: str
) -> None:
    """Ticking often or never between samples must not change what is reported."""
    trace = timed(steps)
    lazy, eager = lazy_and_eager(
        lambda: machine(mode=mode, stuck_s=30, flap_changes=8), trace, trace[-1][1] + 200, 0.003
    )
    assert [(s.kind, round(s.t, 6), s.held_ms) for s in eager] == [
        (s.kind, round(s.t, 6), s.held_ms) for s in lazy
    ]
