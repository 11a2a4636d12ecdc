"""What a lookout asks for, and how well a track's record matches it: a pure, explainable score.

:class:`LookoutArgs` is the ``lookout`` command's arguments (and what the centre's tools
build): either slots (class, upper and lower colours, size class, items, riding; vehicle
colour and type) or, for "find similar", a colour histogram.  :func:`match` scores one
appearance record against the slots: a weighted mean over the asked slots only, each slot
0..1, colours with a confusion tolerance (:data:`CONFUSION`).  docs/lookout.md lists the
weights and the table; tests/lookout/test_match.py pins exact values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from agent.control.lookout import ASKABLE, HIST_BINS, LookoutArgs
from agent.lookout.index import Slots
from agent.lookout.record import AppearanceRecord

__all__ = [
    "ASKABLE",
    "CONFUSION",
    "HIST_BINS",
    "RISE",
    "TYPE_CONFUSION",
    "VEHICLE_WEIGHTS",
    "WEIGHTS",
    "LookoutArgs",
    "Match",
    "SlotMatch",
    "lookout_score",
    "match",
]

RISE: Final = 0.15  # a track is reported again only when its score rose by this much

# Slot weights of the score (only the asked slots count; the score is their weighted mean).
WEIGHTS: Final[dict[str, float]] = {
    "upper": 0.35,
    "lower": 0.30,
    "size": 0.10,
    "items": 0.15,
    "riding": 0.10,
}
# ... and of a vehicle lookout's two slots.
VEHICLE_WEIGHTS: Final[dict[str, float]] = {"vehicle_colour": 0.60, "vehicle_type": 0.40}

# asked vehicle type -> {seen type: how much it counts}: the detector calls a van a car or a
# truck from one frame to the next, and a minibus a bus or a truck.
TYPE_CONFUSION: Final[dict[str, dict[str, float]]] = {
    "car": {"car": 1.0, "truck": 0.5},
    "truck": {"truck": 1.0, "car": 0.5, "bus": 0.4},
    "bus": {"bus": 1.0, "truck": 0.4},
    "motorcycle": {"motorcycle": 1.0, "bicycle": 0.5},
    "bicycle": {"bicycle": 1.0, "motorcycle": 0.5},
}

# asked colour -> {seen colour name: how much it counts}; the seen names are the 11 the
# colour judge gives.  Built from the judge's known confusions (navy and dark jeans read
# black, beige reads brown/white/yellow, pale colours read grey/white) and kept symmetric
# where the confusion is.
CONFUSION: Final[dict[str, dict[str, float]]] = {
    "black": {"black": 1.0, "blue": 0.6, "grey": 0.6, "brown": 0.4, "purple": 0.3},
    "white": {"white": 1.0, "grey": 0.7, "yellow": 0.4, "pink": 0.3},
    "grey": {"grey": 1.0, "white": 0.6, "black": 0.6, "blue": 0.3},
    "red": {"red": 1.0, "pink": 0.6, "orange": 0.5, "brown": 0.4, "purple": 0.3},
    "orange": {"orange": 1.0, "red": 0.5, "yellow": 0.5, "brown": 0.5},
    "yellow": {"yellow": 1.0, "orange": 0.5, "white": 0.4, "brown": 0.3, "green": 0.3},
    "green": {"green": 1.0, "blue": 0.3, "grey": 0.3, "yellow": 0.3, "brown": 0.3},
    "blue": {"blue": 1.0, "black": 0.6, "purple": 0.4, "grey": 0.3, "green": 0.3},
    "purple": {"purple": 1.0, "blue": 0.5, "pink": 0.5, "red": 0.3, "black": 0.3},
    "pink": {"pink": 1.0, "red": 0.6, "purple": 0.5, "white": 0.3},
    "brown": {"brown": 1.0, "orange": 0.5, "red": 0.4, "black": 0.4, "grey": 0.3, "yellow": 0.3},
    "navy": {"blue": 1.0, "black": 0.9, "purple": 0.4, "grey": 0.3},
    "beige": {"brown": 0.8, "white": 0.7, "yellow": 0.7, "orange": 0.5, "grey": 0.5},
    "skyblue": {"blue": 1.0, "white": 0.5, "grey": 0.5},
    "silver": {"grey": 1.0, "white": 0.8, "black": 0.3, "blue": 0.3},
}
SIZE_UNKNOWN: Final = 0.5  # the camera has not learnt its people's height there yet


@dataclass(frozen=True)
class SlotMatch:
    m: float  # 0..1
    how: str  # e.g. "red", "navy~black 2nd", "unknown", "2/2"


@dataclass(frozen=True)
class Match:
    score: float
    slots: dict[str, SlotMatch]


def _colour(asked: Sequence[str], seen: Sequence[tuple[str, float]]) -> SlotMatch:
    """Best of asked x seen: confusion weight x share of that seen colour relative to the
    top one (a second colour half as strong as the first counts half)."""
    if not seen:
        return SlotMatch(0.0, "not judged")
    top = seen[0][1] or 1.0
    best = SlotMatch(0.0, "no")
    for a in asked:
        for rank, (name, p) in enumerate(seen):
            m = CONFUSION[a].get(name, 0.0) * min(1.0, p / top)
            if m > best.m:
                how = name if name == a else f"{a}~{name}"
                best = SlotMatch(round(m, 3), how + (" 2nd" if rank else ""))
    return best


def _vehicle(slots: Slots, rec: AppearanceRecord) -> dict[str, SlotMatch]:
    got: dict[str, SlotMatch] = {}
    if slots.upper:
        got["vehicle_colour"] = _colour(slots.upper, rec.upper)
    if slots.vtype is not None:
        m = TYPE_CONFUSION[slots.vtype].get(rec.vtype or "", 0.0)
        how = rec.vtype or "unknown"
        got["vehicle_type"] = SlotMatch(m, how if how == slots.vtype else f"{slots.vtype}~{how}")
    return got


def _person(slots: Slots, rec: AppearanceRecord) -> dict[str, SlotMatch]:
    got: dict[str, SlotMatch] = {}
    if slots.upper:
        got["upper"] = _colour(slots.upper, rec.upper)
    if slots.lower:
        got["lower"] = _colour(slots.lower, rec.lower)
    if slots.size is not None:
        m = 1.0 if rec.size == slots.size else SIZE_UNKNOWN if rec.size == "unknown" else 0.0
        got["size"] = SlotMatch(m, rec.size)
    if slots.items:
        have = sum(i in rec.items for i in slots.items)
        got["items"] = SlotMatch(round(have / len(slots.items), 3), f"{have}/{len(slots.items)}")
    if slots.riding is not None:
        got["riding"] = SlotMatch(float(rec.riding == slots.riding), rec.riding or "no")
    return got


def match(slots: Slots, rec: AppearanceRecord) -> Match:
    """The weighted mean over the asked slots of each slot's match (see :data:`WEIGHTS` and
    :data:`VEHICLE_WEIGHTS`)."""
    vehicle = slots.cls == "vehicle"
    got = _vehicle(slots, rec) if vehicle else _person(slots, rec)
    if not got:
        return Match(1.0, {})
    weights = VEHICLE_WEIGHTS if vehicle else WEIGHTS
    total = sum(weights[k] for k in got)
    return Match(round(sum(weights[k] * s.m for k, s in got.items()) / total, 3), got)


def lookout_score(slots: Slots, rec: AppearanceRecord) -> tuple[float, dict[str, float]]:
    """:func:`match` in the shape :meth:`AppearanceIndex.query` takes."""
    found = match(slots, rec)
    return found.score, {k: s.m for k, s in found.slots.items()}
