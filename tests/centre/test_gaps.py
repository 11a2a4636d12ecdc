"""SeqTracker: a missing seq is pending for the window, lost after it, late if it comes."""

from __future__ import annotations

from agent.centre.gaps import Gap, SeqTracker, dropped_ranges


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def tracker(window: float = 30.0, warm: bool = False) -> tuple[SeqTracker, Clock]:
    clock = Clock()
    t = SeqTracker(window, clock=clock)
    if warm:
        clock.t += window
    return t, clock


def test_reordered_seq_is_never_reported() -> None:
    t, clock = tracker()
    assert t.see("p1", "b", 1) == []
    assert t.see("p1", "b", 3) == []  # 2 overtaken by a higher priority
    assert t.pending == 1
    clock.t += 5
    assert t.see("p1", "b", 2) == []
    clock.t += 60
    assert t.expire() == []
    assert t.pending == 0


def test_missing_seq_is_lost_only_after_the_window_then_late() -> None:
    t, clock = tracker(window=30)
    t.see("p1", "b", 1)
    t.see("p1", "b", 5)
    clock.t += 29
    assert t.expire() == []
    clock.t += 2
    assert t.expire() == [Gap("p1", "b", 2, 4, "lost", "window")]
    assert t.expire() == []  # reported once
    assert t.see("p1", "b", 3) == [Gap("p1", "b", 3, 3, "late", "arrived")]
    assert t.see("p1", "b", 3) == []  # a duplicate of a late one is just a duplicate


def test_boots_are_separate_and_duplicates_ignored() -> None:
    t, clock = tracker()
    t.see("p1", "a", 1)
    t.see("p1", "b", 1)
    t.see("p2", "a", 1)
    t.see("p1", "a", 1)
    t.see("p1", "a", 2)
    clock.t += 100
    assert t.expire() == []


def test_a_boot_first_seen_after_the_window_is_expected_from_seq_one() -> None:
    t, clock = tracker(window=10)
    t.see("p1", "old", 500)  # listening began mid-boot: nothing before 500 is ours
    clock.t += 11
    t.see("p1", "new", 3)  # a restart while we listen: 1 and 2 must come
    t.see("p1", "new", 1)
    clock.t += 11
    assert t.expire() == [Gap("p1", "new", 2, 2, "lost", "window")]


def test_pole_reported_drops_are_lost_at_once() -> None:
    t, clock = tracker()
    t.see("p1", "b", 10)
    t.see("p1", "b", 30)  # 11..29 pending
    assert t.dropped("p1", "b", [(12, 14), (20, 20)]) == [
        Gap("p1", "b", 12, 14, "lost", "dropped_by_pole"),
        Gap("p1", "b", 20, 20, "lost", "dropped_by_pole"),
    ]
    for seq in (11, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29):
        t.see("p1", "b", seq)
    clock.t += 31
    assert t.expire() == []


def test_drops_above_the_highest_seen_and_after_the_window() -> None:
    t, clock = tracker()
    t.see("p1", "b", 1)
    assert t.dropped("p1", "b", [(4, 6)]) == [Gap("p1", "b", 4, 6, "lost", "dropped_by_pole")]
    t.see("p1", "b", 7)
    clock.t += 31
    assert t.expire() == [Gap("p1", "b", 2, 3, "lost", "window")]
    # The pole's notice came after the window: the reason is corrected.
    assert t.dropped("p1", "b", [(3, 3)]) == [Gap("p1", "b", 3, 3, "lost", "dropped_by_pole")]


def test_idle_boots_are_forgotten() -> None:
    t, clock = tracker()
    t.see("p1", "b", 1)
    clock.t += 7 * 3600
    t.expire()
    assert t._boots == {}


def test_dropped_ranges_takes_only_well_formed_pairs() -> None:
    assert dropped_ranges({"dropped": [[1, 3], [5, 5]]}) == [(1, 3), (5, 5)]
    assert dropped_ranges({"dropped": [[3, 1], [0, 2], ["a", 2], [True, 2], [1]]}) == []
    assert dropped_ranges(None) == []
    assert dropped_ranges({"dropped": "1-3"}) == []
