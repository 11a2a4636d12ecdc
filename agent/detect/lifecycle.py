"""Per-track event lifecycle: start once, update on a meaningful change, end once.

The centre wants a handful of messages per object, not a box per frame.  A track is
announced (``start``) when it has enough hits with a good mean score; afterwards only a
change of zones, of moving/stationary or (for moving objects) a slow periodic refresh is
sent, at most once every ``min_update_s``; a change that reverts before then is never
sent.  ``end`` comes when the tracker drops the track, with how long it was seen.  A parked
car is announced once, reported stationary once, and then stays quiet.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent.detect.zones import Pt, Seen

__all__ = ["Lifecycle", "LifecycleParams", "TrackEvent"]

Why = Literal["zone_enter", "zone_leave", "stationary", "moving", "periodic"]


@dataclass(frozen=True)
class LifecycleParams:
    min_hits: int = 2  # reports of the (already confirmed) track before start
    min_score: float = 0.4  # mean score over those hits
    min_update_s: float = 5.0  # at most one update per track this often
    periodic_s: float | None = 60.0  # a moving track is refreshed this often (None: never)
    still_window_s: float = 5.0  # stationary: foot stayed within ...
    still_distance: float = 0.02  # ... this distance (normalised) over the window


@dataclass(frozen=True)
class TrackEvent:
    """What the lifecycle wants said about one track; the service stamps and sends it."""

    ev: Literal["start", "update", "end"]
    tid: int
    cls: int
    score: float  # two decimals
    box: tuple[float, float, float, float]  # normalised, three decimals
    zones: tuple[str, ...]
    t: float
    why: Why | None = None
    dur_s: float | None = None


@dataclass
class _State:
    first: Seen
    first_t: float
    last: Seen
    last_t: float
    hits: int = 0
    score_sum: float = 0.0
    started: bool = False
    sent_t: float = 0.0
    sent_zones: frozenset[str] = frozenset()
    sent_still: bool = False
    still: bool = False
    feet: deque[tuple[float, Pt]] = field(default_factory=deque)


def _dist(a: Pt, b: Pt) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


class Lifecycle:
    """``update(seen, t, live) -> [TrackEvent]``; ``started`` lists the announced tracks."""

    def __init__(self, params: LifecycleParams | None = None) -> None:
        self.params = params or LifecycleParams()
        self._tracks: dict[int, _State] = {}

    @property
    def started(self) -> frozenset[int]:
        return frozenset(tid for tid, s in self._tracks.items() if s.started)

    def update(self, seen: Sequence[Seen], t: float, live: Collection[int]) -> list[TrackEvent]:
        """Feed one analysed frame: the tracks seen in it, and the ids the tracker still holds."""
        out: list[TrackEvent] = []
        for obj in seen:
            st = self._tracks.get(obj.tid)
            if st is None:
                st = self._tracks[obj.tid] = _State(obj, t, obj, t)
            self._observe(st, obj, t)
            ev = self._start(st, t) if not st.started else self._maybe_update(st, t)
            if ev is not None:
                out.append(ev)
        for tid in [tid for tid in self._tracks if tid not in live]:
            st = self._tracks.pop(tid)
            if st.started:
                out.append(self._event("end", st, t, dur_s=st.last_t - st.first_t))
        return out

    def _observe(self, st: _State, obj: Seen, t: float) -> None:
        st.last, st.last_t = obj, t
        st.hits += 1
        st.score_sum += obj.score
        p = self.params
        st.feet.append((t, obj.foot))
        # Keep the window, plus the newest point older than it, so the span covers it.
        while len(st.feet) > 2 and st.feet[1][0] <= t - p.still_window_s:
            st.feet.popleft()
        span = t - st.feet[0][0]
        moved = max(_dist(f, obj.foot) for _, f in st.feet)
        if span >= p.still_window_s and moved <= p.still_distance:
            st.still = True
        elif moved > 2 * p.still_distance:  # hysteresis: jitter does not flip it back
            st.still = False

    def _start(self, st: _State, t: float) -> TrackEvent | None:
        p = self.params
        if st.hits < p.min_hits or st.score_sum / st.hits < p.min_score:
            return None
        st.started, st.sent_t, st.sent_zones = True, t, st.last.zones
        st.sent_still = st.still
        return self._event("start", st, t)

    def _maybe_update(self, st: _State, t: float) -> TrackEvent | None:
        p = self.params
        if t - st.sent_t < p.min_update_s:
            return None
        zones = st.last.zones
        why: Why | None = None
        if zones - st.sent_zones:
            why = "zone_enter"
        elif st.sent_zones - zones:
            why = "zone_leave"
        elif st.still != st.sent_still:
            why = "stationary" if st.still else "moving"
        elif not st.still and p.periodic_s is not None and t - st.sent_t >= p.periodic_s:
            why = "periodic"
        if why is None:
            return None
        st.sent_t, st.sent_zones, st.sent_still = t, zones, st.still
        return self._event("update", st, t, why=why)

    @staticmethod
    def _event(
        ev: Literal["start", "update", "end"],
        st: _State,
        t: float,
        *,
        why: Why | None = None,
        dur_s: float | None = None,
    ) -> TrackEvent:
        o = st.last
        box = (round(o.box[0], 3), round(o.box[1], 3), round(o.box[2], 3), round(o.box[3], 3))
        return TrackEvent(
            ev=ev,
            tid=o.tid,
            cls=o.cls,
            score=round(st.score_sum / st.hits if ev == "start" else o.score, 2),
            box=box,
            zones=tuple(sorted(o.zones)),
            t=t,
            why=why,
            dur_s=dur_s,
        )
