"""Rules: intrusion, loitering, line crossing, crowding, cooldown, arm/disarm."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from agent.config import RuleConfig
from agent.detect.rules import RuleEngine, RuleHit, Scene, in_hours
from agent.detect.zones import Seen, ZoneSet, points_in_polygon

NAMES = ["person", "bicycle", "car"]
NOON = datetime(2026, 5, 1, 12, 0)
NIGHT = datetime(2026, 5, 1, 23, 30)


def rule(**kw: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": "r", "cooldown_s": 0, **kw})


def obj(tid: int, x: float, y: float, zones: str = "", cls: int = 0) -> Seen:
    return Seen(tid, cls, 0.8, (x - 0.02, y - 0.1, x + 0.02, y), frozenset(zones.split(",")) - {""})


def feed(eng: RuleEngine, frames: list[tuple[float, list[Seen]]], local: datetime = NOON):
    hits: list[RuleHit] = []
    for t, seen in frames:
        hits += eng.update(Scene(seen, {s.tid for s in seen} | {99}, t, local))
    return hits


def test_points_in_polygon_and_zone_membership() -> None:
    square = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]
    pts = np.array([[0.4, 0.4], [0.1, 0.4], [0.59, 0.59], [0.7, 0.3]])
    assert points_in_polygon(pts, square).tolist() == [True, False, True, False]
    from agent.config import ZoneConfig

    zs = ZoneSet.of([ZoneConfig(name="a", polygon=square)])
    assert zs.membership(pts) == [frozenset({"a"}), frozenset(), frozenset({"a"}), frozenset()]


@pytest.mark.parametrize(
    ("hours", "hour", "armed"),
    [
        ((0, 24), 3, True),
        ((22, 6), 23, True),
        ((22, 6), 5, True),
        ((22, 6), 6, False),
        ((22, 6), 12, False),
        ((9, 18), 18, False),
        ((9, 18), 9, True),
        ((5, 5), 5, False),
    ],
)
def test_armed_hours_wrap_midnight(hours: tuple[int, int], hour: int, armed: bool) -> None:
    assert in_hours(hours, datetime(2026, 1, 1, hour, 30)) is armed


def test_intrusion_only_in_armed_hours_once_per_visit() -> None:
    eng = RuleEngine([rule(type="intrusion", zone="park", armed_hours=(22, 6))], NAMES)
    inside = [(t * 0.2, [obj(1, 0.5, 0.5, "park")]) for t in range(10)]
    assert feed(eng, inside, NOON) == []  # outside armed hours: nothing
    hits = feed(eng, [(t * 0.2 + 2, [obj(1, 0.5, 0.5, "park")]) for t in range(10)], NIGHT)
    assert [(h.rule, h.type, h.zone, h.tids) for h in hits] == [("r", "intrusion", "park", (1,))]
    # A second person joins: a new occurrence for them alone.
    hits = feed(eng, [(5.0, [obj(1, 0.5, 0.5, "park"), obj(2, 0.4, 0.5, "park")])], NIGHT)
    assert [h.tids for h in hits] == [(2,)]


def test_intrusion_cooldown_groups_late_arrivals() -> None:
    eng = RuleEngine([rule(type="intrusion", zone="park", cooldown_s=30)], NAMES)
    assert [h.tids for h in feed(eng, [(0.0, [obj(1, 0.5, 0.5, "park")])])] == [(1,)]
    both = [obj(1, 0.5, 0.5, "park"), obj(2, 0.4, 0.5, "park"), obj(3, 0.3, 0.5, "park")]
    assert feed(eng, [(t, both) for t in range(1, 30)]) == []
    assert [h.tids for h in feed(eng, [(30.0, both)])] == [(2, 3)]


def test_intrusion_re_entry_after_leaving_is_a_new_occurrence() -> None:
    eng = RuleEngine([rule(type="intrusion", zone="park")], NAMES)
    frames = [(0.0, [obj(1, 0.5, 0.5, "park")]), (1.0, [obj(1, 0.9, 0.9)])]
    frames += [(2.0, [obj(1, 0.5, 0.5, "park")])]  # back within the grace: same visit
    frames += [(3.0, [obj(1, 0.9, 0.9)]), (5.5, [obj(1, 0.9, 0.9)])]  # out for 2.5 s: left
    frames += [(6.0, [obj(1, 0.5, 0.5, "park")])]
    assert [h.t for h in feed(eng, frames)] == [0.0, 6.0]


@pytest.mark.parametrize(("last_t", "fires"), [(59.8, False), (60.0, True)])
def test_loitering_just_under_and_over(last_t: float, fires: bool) -> None:
    eng = RuleEngine([rule(type="loitering", zone="gate", dwell_s=60)], NAMES)
    frames = [(t * 0.2, [obj(5, 0.5, 0.5, "gate")]) for t in range(int(last_t * 5) + 1)]
    hits = feed(eng, frames)
    assert bool(hits) is fires
    if fires:
        assert hits[0].tids == (5,)
        assert hits[0].dwell_s == pytest.approx(60.0)
        assert feed(eng, [(70.0, [obj(5, 0.5, 0.5, "gate")])]) == []  # once per visit


def test_loitering_survives_the_motion_gate_gaps() -> None:
    # A still loiterer is seen only every 5 s (keep-alive): the visit must not reset.
    eng = RuleEngine([rule(type="loitering", zone="gate", dwell_s=60)], NAMES)
    hits = feed(eng, [(t * 5.0, [obj(5, 0.5, 0.5, "gate")]) for t in range(14)])
    assert [h.tids for h in hits] == [(5,)]


def test_rule_counts_only_its_classes() -> None:
    eng = RuleEngine([rule(type="intrusion", zone="park", classes=["person"])], NAMES)
    assert feed(eng, [(0.0, [obj(1, 0.5, 0.5, "park", cls=2)])]) == []


LINE = ((0.5, 0.0), (0.5, 1.0))  # vertical, a at top: looking from a to b (down), left is +x


def walk_across(tid: int, x0: float, x1: float, t0: float = 0.0) -> list[tuple[float, list[Seen]]]:
    steps = 10
    return [(t0 + i * 0.2, [obj(tid, x0 + (x1 - x0) * i / steps, 0.5)]) for i in range(steps + 1)]


@pytest.mark.parametrize(
    ("direction", "x0", "x1", "expect"),
    [
        ("any", 0.3, 0.7, "right_to_left"),
        ("any", 0.7, 0.3, "left_to_right"),
        ("left_to_right", 0.3, 0.7, None),
        ("left_to_right", 0.7, 0.3, "left_to_right"),
        ("right_to_left", 0.3, 0.7, "right_to_left"),
        ("right_to_left", 0.7, 0.3, None),
    ],
)
def test_line_crossing_directions(direction: str, x0: float, x1: float, expect: str | None) -> None:
    eng = RuleEngine([rule(type="line_crossing", line=LINE, direction=direction)], NAMES)
    hits = feed(eng, walk_across(1, x0, x1))
    assert [h.dir for h in hits] == ([expect] if expect else [])
    if expect:
        assert hits[0].tids == (1,)
        assert hits[0].zone is None


def test_line_crossing_screen_convention_horizontal_line() -> None:
    # Line from left to right across the frame: "left" of it, as seen from a, is the top.
    eng = RuleEngine(
        [rule(type="line_crossing", line=((0.0, 0.5), (1.0, 0.5)), direction="left_to_right")],
        NAMES,
    )
    down = [(i * 0.2, [obj(1, 0.5, 0.3 + 0.04 * i)]) for i in range(11)]
    assert [h.dir for h in feed(eng, down)] == ["left_to_right"]


def test_line_crossing_outside_the_segment_and_jitter_on_the_line() -> None:
    eng = RuleEngine([rule(type="line_crossing", line=((0.5, 0.0), (0.5, 0.4)))], NAMES)
    below = [(i * 0.2, [obj(1, 0.3 + 0.04 * i, 0.8)]) for i in range(11)]
    assert feed(eng, below) == []  # passes below the end of the segment
    jitter = [(10 + i * 0.2, [obj(2, 0.5 + (0.003 if i % 2 else -0.003), 0.2)]) for i in range(20)]
    assert feed(eng, jitter) == []


def test_line_crossing_cooldown_suppresses_and_counts() -> None:
    eng = RuleEngine([rule(type="line_crossing", line=LINE, cooldown_s=10)], NAMES)
    assert len(feed(eng, walk_across(1, 0.3, 0.7))) == 1
    assert feed(eng, walk_across(2, 0.3, 0.7, t0=3.0)) == []
    assert eng.facts()["r"] == {"fired": 1, "suppressed": 1}
    assert len(feed(eng, walk_across(3, 0.7, 0.3, t0=20.0))) == 1


def test_crowding_fires_once_per_occurrence() -> None:
    eng = RuleEngine([rule(type="crowding", zone="plaza", min_count=3)], NAMES)
    two = [obj(i, 0.5, 0.5, "plaza") for i in (1, 2)]
    three = [*two, obj(3, 0.4, 0.5, "plaza")]
    four = [*three, obj(4, 0.45, 0.5, "plaza")]
    assert feed(eng, [(0.0, two), (0.2, two)]) == []
    hits = feed(eng, [(0.4, three), (0.6, four), (0.8, four)])
    assert [(h.tids, h.n) for h in hits] == [((1, 2, 3), 3)]
    # Disperses (one leaves for longer than the grace), then gathers again: a new one.
    out = [*two, obj(3, 0.9, 0.9)]
    assert feed(eng, [(1.0, out), (3.5, out)]) == []
    assert [h.n for h in feed(eng, [(4.0, three)])] == [3]


def test_arm_and_disarm_override_the_schedule_until_a_time() -> None:
    eng = RuleEngine([rule(type="intrusion", zone="park", armed_hours=(22, 6))], NAMES)
    assert eng.arm("nope", None) is False
    assert eng.arm("r", until=10.0) is True
    hits = feed(eng, [(1.0, [obj(1, 0.5, 0.5, "park")])], NOON)
    assert [h.tids for h in hits] == [(1,)]
    # Disarming the zone at night silences the rule until t=100, then the schedule rules.
    assert eng.disarm("park", until=100.0) is True
    assert feed(eng, [(50.0, [obj(2, 0.5, 0.5, "park")])], NIGHT) == []
    assert [h.tids for h in feed(eng, [(100.0, [obj(2, 0.5, 0.5, "park")])], NIGHT)] == [(2,)]
    # After arm's own expiry (t=10) the noon schedule applies again.
    eng2 = RuleEngine([rule(type="intrusion", zone="park", armed_hours=(22, 6))], NAMES)
    eng2.arm("r", until=10.0)
    assert feed(eng2, [(11.0, [obj(3, 0.5, 0.5, "park")])], NOON) == []


def test_departed_tracks_are_forgotten() -> None:
    eng = RuleEngine([rule(type="loitering", zone="gate", dwell_s=10)], NAMES)
    feed(eng, [(t, [obj(5, 0.5, 0.5, "gate")]) for t in range(5)])
    eng.update(Scene([], set(), 6.0, NOON))  # the tracker dropped track 5
    hits = feed(eng, [(t, [obj(5, 0.5, 0.5, "gate")]) for t in range(7, 15)])
    assert hits == []  # the dwell started again at 7
