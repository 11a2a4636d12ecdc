"""Lifecycle: start once, update on meaningful change only, end once, compact events."""

from __future__ import annotations

from agent.detect.lifecycle import Lifecycle, LifecycleParams, TrackEvent
from agent.detect.zones import Seen
from agent.events import EventStamper, encode

P = LifecycleParams(
    min_hits=2, min_score=0.4, min_update_s=5.0, periodic_s=60.0, still_window_s=5.0
)


def seen(tid: int, x: float, y: float = 0.5, *, score: float = 0.8, zones: str = "") -> Seen:
    box = (round(x - 0.02, 6), round(y - 0.1, 6), round(x + 0.02, 6), y)
    return Seen(tid, 0, score, box, frozenset(z for z in zones.split(",") if z))


def run(lc: Lifecycle, frames: list[tuple[float, list[Seen]]]) -> list[TrackEvent]:
    out: list[TrackEvent] = []
    for t, objs in frames:
        out += lc.update(objs, t, {o.tid for o in objs} | lc.started)
    return out


def test_start_needs_hits_and_score() -> None:
    lc = Lifecycle(P)
    assert lc.update([seen(1, 0.1, score=0.3)], 0.0, {1}) == []
    assert lc.update([seen(1, 0.1, score=0.35)], 0.2, {1}) == []  # mean 0.325 < 0.4
    (ev,) = lc.update([seen(1, 0.1, score=0.9)], 0.4, {1})  # mean 0.52
    assert (ev.ev, ev.score) == ("start", 0.52)
    assert lc.started == frozenset({1})


def test_start_then_end_with_duration() -> None:
    lc = Lifecycle(P)
    frames = [(i * 0.2, [seen(7, 0.1 + 0.01 * i)]) for i in range(10)]
    evs = run(lc, frames)
    assert [e.ev for e in evs] == ["start"]
    assert evs[0].tid == 7
    assert evs[0].t == 0.2
    end = lc.update([], 3.0, set())
    assert [e.ev for e in end] == ["end"]
    assert end[0].dur_s == 1.8
    assert lc.update([], 3.2, set()) == []  # ended once


def test_unstarted_track_ends_silently() -> None:
    lc = Lifecycle(P)
    assert lc.update([seen(1, 0.1)], 0.0, {1}) == []
    assert lc.update([], 0.2, set()) == []


def test_zone_enter_and_leave_rate_limited() -> None:
    lc = Lifecycle(P)
    evs = run(lc, [(0.0, [seen(1, 0.1)]), (0.2, [seen(1, 0.11)])])
    assert [e.ev for e in evs] == ["start"]
    # Enters a zone 1 s after start: held back until 5 s after the start.
    evs = run(lc, [(t / 10, [seen(1, 0.11 + t / 1000, zones="gate")]) for t in range(10, 50)])
    assert evs == []
    evs = run(lc, [(5.2, [seen(1, 0.16, zones="gate")])])
    assert [(e.ev, e.why, e.zones) for e in evs] == [("update", "zone_enter", ("gate",))]
    evs = run(lc, [(10.3, [seen(1, 0.3)])])
    assert [(e.why, e.zones) for e in evs] == [("zone_leave", ())]


def test_change_that_reverts_before_the_window_is_not_sent() -> None:
    lc = Lifecycle(P)
    run(lc, [(0.0, [seen(1, 0.1)]), (0.2, [seen(1, 0.12)])])
    evs = run(lc, [(1.0, [seen(1, 0.14, zones="gate")]), (5.5, [seen(1, 0.2)])])
    assert evs == []


def test_parked_object_reported_stationary_once_and_never_again() -> None:
    lc = Lifecycle(P)
    frames = [(i * 0.2, [seen(3, 0.5 + 0.001 * (i % 3))]) for i in range(5)]
    frames += [(1.0 + 5.0 * k, [seen(3, 0.5 + 0.001 * (k % 2))]) for k in range(1, 40)]
    evs = run(lc, frames)
    assert [(e.ev, e.why) for e in evs] == [("start", None), ("update", "stationary")]


def test_moving_again_and_periodic_for_moving_tracks_only() -> None:
    lc = Lifecycle(P)
    frames = [(k * 1.0, [seen(4, 0.5)]) for k in range(12)]  # parked 11 s
    frames += [(12 + k * 1.0, [seen(4, 0.5 + 0.02 * k)]) for k in range(1, 20)]  # drives off
    evs = run(lc, frames)
    assert [e.why for e in evs] == [None, "stationary", "moving"]
    frames = [(31 + k * 1.0, [seen(4, 0.88 - 0.005 * k)]) for k in range(1, 80)]
    evs = run(lc, frames)
    assert [e.why for e in evs] == ["periodic"]


def test_events_are_compact() -> None:
    lc = Lifecycle(P)
    evs = run(lc, [(0.0, [seen(12345, 0.123456, zones="school-gate,crossing")])] * 1)
    evs = run(lc, [(0.2, [seen(12345, 0.123456, zones="school-gate,crossing")])])
    (e,) = evs
    assert e.box == (0.103, 0.4, 0.143, 0.5)
    assert e.score == 0.8
    stamper = EventStamper("pole-0001-abcdef")
    msg = stamper.object(
        ev=e.ev,
        cam="cam-main",
        tid=e.tid,
        cls="person",
        sc=e.score,
        box=e.box,
        zones=list(e.zones),
        ts=1_760_000_000_000,
    )
    assert len(encode(msg)) < 300, encode(msg)
