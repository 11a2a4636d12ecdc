"""Track ids across vision processes: a successor carries on above every id given.

A restarted child (or a reload's new process) must not give a track id that the centre
has already seen for another track on the same camera in this boot: a ``tid`` names the
same track in object events, rules, lookout candidates and the appearance index.  The
parent notes the highest id each camera's events carried and the trackers' next ids from
the child's facts; a successor starts above both, plus :data:`TID_GAP` for tracks made
since the last facts (recorded in the index even if never reported).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.events import Event, LookoutEvent, ObjectEvent, RuleEvent
from agent.vision.protocol import TID_GAP, TID_MAX

__all__ = ["TrackIds"]


class TrackIds:
    """Per camera: the first id of this process, the highest id seen, the tracker's next."""

    def __init__(self, cameras: Iterable[str], first: Mapping[str, int] | None = None) -> None:
        self.first = {cid: (first or {}).get(cid, 1) for cid in cameras}
        self._max = {cid: n - 1 for cid, n in self.first.items()}
        self._next: dict[str, int] = {}

    def successor(self) -> dict[str, int]:
        """Per camera, a first track id for a successor."""
        return {cid: max(m + 1, self._next.get(cid, 1)) + TID_GAP for cid, m in self._max.items()}

    def note(self, event: Event) -> None:
        """The highest track id seen per camera (ids above :data:`TID_MAX` are a broken
        child's and are not taken into account)."""
        if isinstance(event, ObjectEvent | LookoutEvent):
            cam, tids = event.cam, [event.tid]
        elif isinstance(event, RuleEvent):
            cam, tids = event.cam, list(event.tids)
        else:
            return
        tids = [t for t in tids if t <= TID_MAX]
        if tids and cam in self._max:
            self._max[cam] = max(self._max[cam], *tids)

    def trackers(self, next_tids: Mapping[str, int]) -> None:
        """The child's trackers' next ids, from its last facts."""
        self._next = {cid: n for cid, n in next_tids.items() if cid in self._max and n <= TID_MAX}
