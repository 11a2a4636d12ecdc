"""The camera's own person-height model: how tall an adult looks at each image row.

A fixed camera sees people of every size at every distance, and distance shows as the row
of the foot (the box's bottom).  So the model keeps, per band of foot rows (``ROWS`` equal
bands of the frame height), the box heights (as a fraction of the frame height) of the
person tracks that walked there: one sample per track and band (the track's median there),
so a person who stands still for an hour counts once.  The expected height at a row is the
median of its band; a box well below it is a child.

It learns online from the tracks the camera sees and answers only when the band has
samples of at least ``MIN_TRACKS`` (8) different tracks, or, pooled with its two neighbour
bands, at least that many; before that it says "unknown".  At a street corner with a few
dozen people an hour that takes minutes to an hour per band; bands where nobody walks stay
"unknown".  Each band keeps its newest ``KEEP`` (200) samples, so a moved camera relearns.
The model lives in memory: after a restart it learns again.

Median, not mean: most people are adults, so the median is an adult's height even with
some children, bicycles and partial boxes among the samples.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from typing import Final, Literal

__all__ = ["CHILD_BELOW", "MIN_TRACKS", "HeightModel", "SizeClass", "classify"]

SizeClass = Literal["child", "adult", "unknown"]
ROWS: Final = 12
MIN_TRACKS: Final = 8
KEEP: Final = 200
CHILD_BELOW: Final = 0.78  # height / expected adult height below this: child
ADULT_ABOVE: Final = 0.88  # above this: adult; between the two: unknown


class HeightModel:
    """``learn(samples)`` per finished track; ``expected(foot_y)``; ``size(foot_y, h)``."""

    def __init__(self) -> None:
        self._bands: list[deque[float]] = [deque(maxlen=KEEP) for _ in range(ROWS)]

    @staticmethod
    def band(foot_y: float) -> int:
        """The band of a normalised foot row (0 top .. 1 bottom)."""
        return min(ROWS - 1, max(0, int(foot_y * ROWS)))

    def learn(self, samples: Iterable[tuple[float, float]]) -> None:
        """One track's (foot_y, height) pairs, both normalised to the frame height."""
        per_band: dict[int, list[float]] = {}
        for foot_y, h in samples:
            per_band.setdefault(self.band(foot_y), []).append(h)
        for b, heights in per_band.items():
            self._bands[b].append(statistics.median(heights))

    def tracks(self, foot_y: float) -> int:
        """How many track samples the band of ``foot_y`` holds."""
        return len(self._bands[self.band(foot_y)])

    def expected(self, foot_y: float) -> float | None:
        """The median person height at this row, or None while it has not learned enough."""
        b = self.band(foot_y)
        own = self._bands[b]
        if len(own) >= MIN_TRACKS:
            return statistics.median(own)
        pooled = [h for k in (b - 1, b, b + 1) if 0 <= k < ROWS for h in self._bands[k]]
        return statistics.median(pooled) if len(pooled) >= MIN_TRACKS else None

    def ratio(self, foot_y: float, height: float) -> float | None:
        exp = self.expected(foot_y)
        return None if exp is None or exp <= 0 else height / exp

    def size(self, foot_y: float, height: float) -> SizeClass:
        """child, adult, or unknown (not learned yet, or between the two thresholds)."""
        return classify(self.ratio(foot_y, height))


def classify(ratio: float | None) -> SizeClass:
    """The size class of a height ratio (box height / expected adult height)."""
    if ratio is None:
        return "unknown"
    if ratio < CHILD_BELOW:
        return "child"
    return "adult" if ratio > ADULT_ABOVE else "unknown"
