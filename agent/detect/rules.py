"""Rules over tracked objects: intrusion, loitering, line crossing, crowding.

Pure logic: ``RuleEngine.update(scene)`` takes the objects seen in one analysed frame, the
ids the tracker still holds, a monotonic time and the local wall-clock time (armed hours
are local: 22..6 means from 22:00 to 05:59).  Each rule fires once per occurrence and is
then quiet for ``cooldown_s``:

* intrusion: a track standing in the zone while armed; each track is reported once per
  visit (tracks that arrive during the cooldown are reported together after it);
* loitering: a track in the zone for ``dwell_s`` or longer, once per visit;
* line crossing: the foot point moved from one side of the segment to the other (sides are
  taken only at a small distance from the line, so a person standing on it does not
  flicker); crossings during the cooldown are counted in ``suppressed``, not sent;
* crowding: ``min_count`` or more tracks in the zone; the occurrence lasts until fewer are.

Leaving a zone takes an observation outside it ``leave_grace_s`` after the last one
inside, so a foot point that jitters on the edge does not end a visit; a track that is not
seen (the motion gate skips frames of a still scene) is not taken to have left.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.config import RuleConfig
from agent.detect.zones import Pt, Seen, segments_cross, side_of_line

__all__ = ["RuleEngine", "RuleHit", "Scene", "in_hours"]

LEAVE_GRACE_S = 2.0
LINE_MARGIN = 0.005  # normalised distance from a line below which the side is unknown


@dataclass(frozen=True)
class Scene:
    """One analysed frame as the rules see it."""

    seen: Sequence[Seen]
    live: Collection[int]
    t: float  # monotonic seconds
    local: datetime  # local wall-clock time, for armed hours


@dataclass(frozen=True)
class RuleHit:
    """A rule fired; the service turns it into a RuleEvent with a snapshot."""

    rule: str
    type: str
    zone: str | None
    tids: tuple[int, ...]
    t: float
    n: int | None = None
    dwell_s: float | None = None
    dir: str | None = None


@dataclass
class _Visit:
    enter_t: float
    last_in_t: float


@dataclass
class _RuleState:
    cfg: RuleConfig
    classes: frozenset[int]
    last_fire: float | None = None
    visits: dict[int, _Visit] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)
    crowded: bool = False
    sides: dict[int, tuple[float, Pt]] = field(default_factory=dict)
    suppressed: int = 0
    fired: int = 0

    def cooling(self, t: float) -> bool:
        return self.last_fire is not None and t - self.last_fire < self.cfg.cooldown_s


def in_hours(hours: tuple[int, int], local: datetime) -> bool:
    """Whether ``local`` falls in [start, end) hours; start > end wraps past midnight."""
    start, end = hours
    h = local.hour
    if start <= end:
        return start <= h < end
    return h >= start or h < end


class RuleEngine:
    """The rules of one camera."""

    def __init__(self, rules: Sequence[RuleConfig], class_names: Sequence[str]) -> None:
        index = {name: i for i, name in enumerate(class_names)}
        self._rules = [
            _RuleState(r, frozenset(index[c] for c in r.classes if c in index)) for r in rules
        ]
        self._overrides: dict[str, tuple[bool, float | None]] = {}
        self.names = frozenset([r.name for r in rules] + [r.zone for r in rules if r.zone])

    # ------------------------------------------------------------------ arming
    def arm(self, name: str, until: float | None = None) -> bool:
        """Force a rule, or every rule of a zone, armed until ``until`` (monotonic s)."""
        return self._override(name, True, until)

    def disarm(self, name: str, until: float | None = None) -> bool:
        """Force a rule or a zone's rules disarmed until ``until``; None: until changed."""
        return self._override(name, False, until)

    def _override(self, name: str, armed: bool, until: float | None) -> bool:
        if name not in self.names:
            return False
        self._overrides[name] = (armed, until)
        return True

    def armed(self, rule: RuleConfig, t: float, local: datetime) -> bool:
        for name in (rule.name, rule.zone):
            if name is not None and name in self._overrides:
                state, until = self._overrides[name]
                if until is None or t < until:
                    return state
        return in_hours(rule.armed_hours, local)

    # ------------------------------------------------------------------ update
    def update(self, scene: Scene) -> list[RuleHit]:
        """Feed one analysed frame; the rules that fired in it."""
        hits: list[RuleHit] = []
        for st in self._rules:
            seen = [s for s in scene.seen if s.cls in st.classes]
            if st.cfg.type == "line_crossing":
                hit = self._line(st, seen, scene)
            else:
                self._track_visits(st, seen, scene)
                hit = self._zone_rule(st, scene)
            if hit is not None:
                st.last_fire, st.fired = scene.t, st.fired + 1
                hits.append(hit)
        return hits

    def facts(self) -> dict[str, dict[str, int]]:
        return {st.cfg.name: {"fired": st.fired, "suppressed": st.suppressed} for st in self._rules}

    @staticmethod
    def _track_visits(st: _RuleState, seen: Sequence[Seen], scene: Scene) -> None:
        zone, t = st.cfg.zone, scene.t
        for s in seen:
            visit = st.visits.get(s.tid)
            if zone in s.zones:
                if visit is None:
                    st.visits[s.tid] = _Visit(t, t)
                else:
                    visit.last_in_t = t
            elif visit is not None and t - visit.last_in_t >= LEAVE_GRACE_S:
                del st.visits[s.tid]
        for tid in [tid for tid in st.visits if tid not in scene.live]:
            del st.visits[tid]
        st.reported &= set(st.visits)

    def _zone_rule(self, st: _RuleState, scene: Scene) -> RuleHit | None:
        cfg, t = st.cfg, scene.t
        if cfg.type == "crowding" and st.crowded and len(st.visits) < cfg.min_count:
            st.crowded = False
        if st.cooling(t) or not self.armed(cfg, t, scene.local):
            return None
        if cfg.type == "crowding":
            if st.crowded or len(st.visits) < cfg.min_count:
                return None
            st.crowded = True
            tids = tuple(sorted(st.visits))
            return RuleHit(cfg.name, cfg.type, cfg.zone, tids, t, n=len(tids))
        due = {
            tid: t - v.enter_t
            for tid, v in st.visits.items()
            if tid not in st.reported and (cfg.type == "intrusion" or t - v.enter_t >= cfg.dwell_s)
        }
        if not due:
            return None
        st.reported |= set(due)
        dwell = max(due.values()) if cfg.type == "loitering" else None
        return RuleHit(cfg.name, cfg.type, cfg.zone, tuple(sorted(due)), t, dwell_s=dwell)

    def _line(self, st: _RuleState, seen: Sequence[Seen], scene: Scene) -> RuleHit | None:
        cfg, t = st.cfg, scene.t
        assert cfg.line is not None  # the config validator guarantees it
        a, b = cfg.line
        length = max(((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5, 1e-9)
        crossed: dict[str, list[int]] = {}
        for s in seen:
            side = side_of_line(s.foot, a, b) / length  # signed distance to the line
            if abs(side) < LINE_MARGIN:
                continue
            prev = st.sides.get(s.tid)
            st.sides[s.tid] = (side, s.foot)
            if prev is None or (prev[0] < 0) == (side < 0):
                continue
            if not segments_cross(prev[1], s.foot, a, b):
                continue
            direction = "left_to_right" if prev[0] < 0 else "right_to_left"
            if cfg.direction in ("any", direction):
                crossed.setdefault(direction, []).append(s.tid)
        for tid in [tid for tid in st.sides if tid not in scene.live]:
            del st.sides[tid]
        if not crossed:
            return None
        if st.cooling(t) or not self.armed(cfg, t, scene.local):
            st.suppressed += sum(len(v) for v in crossed.values())
            return None
        direction, tids = max(crossed.items(), key=lambda kv: len(kv[1]))
        st.suppressed += sum(len(v) for k, v in crossed.items() if k != direction)
        return RuleHit(cfg.name, cfg.type, None, tuple(sorted(tids)), t, dir=direction)
