"""FlapFilter: a source that changes too often is reported as one flapping episode."""

from __future__ import annotations

from agent.flap import FlapFilter, FlapGuard, Told


def shape(told: list[Told]) -> list[tuple[str, str | None, float]]:
    return [(t.ev, t.why, t.t) for t in told]


def flip(f: FlapFilter, n: int, start: float, every: float = 1.0) -> list[Told]:
    """``n`` changes lost/ok, lost first, every ``every`` seconds."""
    out: list[Told] = []
    for i in range(n):
        t = start + i * every
        lost = i % 2 == 0
        out += f.change("lost" if lost else "ok", Told("lost" if lost else "restored", None, t))
    return out


def test_a_chattering_source_gives_one_episode_then_the_state_it_ended_in() -> None:
    f = FlapFilter(FlapGuard(4, 10), "ok")
    got = shape(flip(f, 21, 0.0) + f.tick(100))
    assert got == [
        ("lost", None, 0.0),
        ("restored", None, 1.0),
        ("lost", None, 2.0),
        ("flapping", "4 changes in 10s", 3.0),
        # ten quiet seconds after the last change (20): ended lost, last told lost
        ("flapping_cleared", "18 changes not reported; now lost", 30.0),
    ]
    assert f.reported == "lost"


def test_the_state_the_centre_lacks_follows_the_end_of_an_episode() -> None:
    f = FlapFilter(FlapGuard(4, 10), "ok", show=lambda t: f"{t.ev} ({t.why})")
    flip(f, 4, 0.0)  # lost restored lost | flapping: restored not reported
    assert f.tick(12.9) == []
    assert shape(f.tick(13.0)) == [
        ("flapping_cleared", "1 changes not reported; now restored (None)", 13.0),
        ("restored", None, 13.0),
    ]


def test_a_repeat_is_no_change_and_a_late_change_ends_the_episode_first() -> None:
    f = FlapFilter(FlapGuard(4, 10), "ok")
    flip(f, 4, 0.0)
    assert f.change("ok", Told("restored", None, 5.0)) == []
    got = shape(f.change("lost", Told("lost", "stall", 50.0)))
    assert got == [
        ("flapping_cleared", "1 changes not reported; now restored", 13.0),
        ("restored", None, 13.0),
        ("lost", "stall", 50.0),
    ]
