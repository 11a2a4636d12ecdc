"""Polygon zones in normalised frame coordinates, and tracked objects seen against them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.config import ZoneConfig
from agent.detect.detections import Detections

__all__ = [
    "Seen",
    "ZoneSet",
    "observe",
    "points_in_polygon",
    "segments_cross",
    "side_of_line",
]

F = npt.NDArray[np.float64]
Pt = tuple[float, float]


def points_in_polygon(points: F, polygon: Sequence[Pt]) -> npt.NDArray[np.bool_]:
    """(N,) True where a point of ``points`` (N, 2) is inside ``polygon`` (even-odd rule)."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0:1], points[:, 1:2]  # (N, 1) against (M,) edges
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hits = straddles & (x < x_cross)
    return np.asarray(hits.sum(axis=1) % 2 == 1)


def side_of_line(point: Pt, a: Pt, b: Pt) -> float:
    """Cross product sign: < 0 left of a->b, > 0 right of it, as seen on screen (y down)."""
    return (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0])


def segments_cross(p: Pt, q: Pt, a: Pt, b: Pt) -> bool:
    """True when the move p->q crosses the segment a-b (touching an end counts)."""
    d1, d2 = side_of_line(p, a, b), side_of_line(q, a, b)
    d3, d4 = side_of_line(a, p, q), side_of_line(b, p, q)
    return d1 * d2 < 0 and d3 * d4 <= 0


@dataclass(frozen=True)
class ZoneSet:
    """The named zones of one camera."""

    zones: tuple[ZoneConfig, ...]

    @classmethod
    def of(cls, zones: Sequence[ZoneConfig]) -> ZoneSet:
        return cls(tuple(zones))

    @property
    def names(self) -> list[str]:
        return [z.name for z in self.zones]

    def membership(self, points: F) -> list[frozenset[str]]:
        """For each normalised point (N, 2), the names of the zones it stands in."""
        n = len(points)
        inside = [points_in_polygon(points, z.polygon) for z in self.zones] if n else []
        return [
            frozenset(z.name for z, m in zip(self.zones, inside, strict=True) if m[i])
            for i in range(n)
        ]


@dataclass(frozen=True)
class Seen:
    """One tracked object in one frame, normalised to the frame (0..1)."""

    tid: int
    cls: int
    score: float
    box: tuple[float, float, float, float]
    zones: frozenset[str]

    @property
    def foot(self) -> Pt:
        """Bottom centre of the box: the point that stands on the ground."""
        return ((self.box[0] + self.box[2]) / 2, self.box[3])


def observe(tracked: Detections, size: tuple[int, int], zones: ZoneSet) -> list[Seen]:
    """Tracked detections (frame pixels) as normalised :class:`Seen` with their zones."""
    w, h = size
    scale = np.array([w, h, w, h], dtype=np.float64)
    boxes = np.clip(tracked.xyxy.astype(np.float64) / scale, 0.0, 1.0)
    feet = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
    member = zones.membership(feet)
    return [
        Seen(
            tid=int(tracked.track_ids[i]),
            cls=int(tracked.class_ids[i]),
            score=float(tracked.scores[i]),
            box=(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3])),
            zones=member[i],
        )
        for i in range(len(tracked))
    ]
