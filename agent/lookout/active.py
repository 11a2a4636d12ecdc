"""Active lookouts on a pole, and the matcher that turns records into candidates.

:class:`Lookouts` is the bounded table (``lookout.max_active``), expiring by monotonic
time; the agent keeps one (to answer the command and to replay lookouts to a restarted
vision process) and the vision side keeps one with the matcher's state.
:class:`Matcher` runs on the vision side: :meth:`Matcher.look_back` searches the local index
at once when a lookout arrives, :meth:`Matcher.live` scores every record as it is written.
Each track is reported at most once per lookout, again only when its score rose by
:data:`~agent.lookout.match.RISE`, and at most ``max_candidates`` times per lookout.  Every
lookout, candidate, cancel and expiry is written to the audit log.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.lookout.audit import AuditLog
from agent.lookout.colour import similarity
from agent.lookout.index import AppearanceIndex, Hit
from agent.lookout.match import RISE, LookoutArgs, lookout_score, match
from agent.lookout.record import AppearanceRecord
from agent.lookout.registry import Active, Lookouts
from agent.outbox import EventSink

__all__ = ["Active", "Lookouts", "Matcher"]

log = logging.getLogger(__name__)


def _u8(raw: bytes) -> npt.NDArray[np.uint8]:
    return np.frombuffer(raw, np.uint8)


def _seen(rec: AppearanceRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"size": rec.size, **rec.attrs()}
    out.pop("height_ratio", None)
    if rec.cls == "vehicle":
        out = {"colour": out.pop("upper"), "type": rec.vtype, **out}
        del out["lower"], out["size"]
    if rec.items:
        out["items"] = list(rec.items)
    if rec.riding:
        out["riding"] = rec.riding
    return out


class Matcher:
    """Candidates for the lookouts in ``table`` from ``index``, sent through ``sink``."""

    def __init__(
        self,
        table: Lookouts,
        index: AppearanceIndex,
        sink: EventSink,
        audit: AuditLog,
        *,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self.table, self.index, self.sink, self.audit = table, index, sink, audit
        self._wall_ms = wall_ms or index.now_ms
        self._lock = threading.Lock()  # the look-back and the live matching share `reported`
        self.candidates = 0

    def started(self, active: Active, *, broadcast: bool, replayed: bool = False) -> None:
        """Write the lookout into the audit log (before anything is searched or sent)."""
        spec = active.spec
        self.audit.write(
            "lookout", id=spec.id, req=active.req, signer=active.signer, site=broadcast,
            slots=spec.asked(), since_s=spec.since_s, for_s=spec.for_s,
            min_score=spec.min_score, max_candidates=spec.max_candidates, replayed=replayed,
        )  # fmt: skip

    def ended(self, active: Active, why: str) -> None:
        self.audit.write(why, id=active.spec.id, sent=active.sent)

    def look_back(self, lookout_id: str) -> int:
        """Search what the index holds from ``since_s`` ago; candidates sent."""
        active = self.table.get(lookout_id)
        if active is None:
            return 0
        spec = active.spec
        active.looked_back = True  # records written from now on are matched live
        since = self._wall_ms() - int(spec.since_s * 1000)
        hist = spec.histogram()
        if hist is not None:
            hits = self.index.similar(hist, since, k=spec.max_candidates, cls=spec.cls)
            hits = [h for h in hits if h.score >= spec.min_score]
        else:
            hits = self.index.query(
                spec.slots(), since, min_score=spec.min_score, score=lookout_score
            )
        return sum(self._offer(active, h, live=False) for h in hits)

    def expire(self) -> None:
        """End (and audit) the lookouts whose time is up."""
        for gone in self.table.expire():
            self.ended(gone, "expired")

    def live(self, records: Sequence[AppearanceRecord]) -> int:
        """Score records just written against every lookout in force; candidates sent."""
        self.expire()
        sent = 0
        for active in self.table.active():
            if not active.looked_back:
                continue  # what is written meanwhile is in the index for the look-back
            spec = active.spec
            hist = spec.histogram()
            for rec in records:
                if rec.cls != spec.cls:
                    continue
                if hist is not None:
                    s = similarity(_u8(hist), _u8(rec.histogram))
                    hit = Hit(rec, round(s, 4), {"histogram": s})
                else:
                    score, got = lookout_score(spec.slots(), rec)
                    hit = Hit(rec, score, got)
                if hit.score >= spec.min_score:
                    sent += self._offer(active, hit, live=True)
        return sent

    def _offer(self, active: Active, hit: Hit, *, live: bool) -> bool:
        rec, spec = hit.record, active.spec
        key = (rec.camera, rec.track, rec.first_ms)  # the index outlives a boot
        with self._lock:
            before = active.reported.get(key)
            if before is not None and hit.score < before + RISE:
                return False
            if active.sent >= spec.max_candidates:
                return False
            active.reported[key] = hit.score
            active.sent += 1
        how = self._how(spec, hit)
        event = self.sink.stamper.lookout(
            ts=rec.last_ms, look=spec.id, cam=rec.camera, tid=rec.track, t0=rec.first_ms,
            t1=rec.last_ms, sc=min(1.0, hit.score), live=live, m=how, seen=_seen(rec),
            hist=base64.b64encode(rec.histogram).decode(), snap=True if rec.thumbnail else None,
        )  # fmt: skip
        if not self.sink.emit(event):
            return False
        if rec.thumbnail:
            self.sink.snapshot(event.id, rec.thumbnail)
        self.candidates += 1
        self.audit.write(
            "candidate", id=spec.id, event=event.id, cam=rec.camera, track=rec.track,
            score=event.sc, live=live, matched={k: v["how"] for k, v in how.items()},
            thumb_bytes=len(rec.thumbnail or b""),
        )  # fmt: skip
        return True

    @staticmethod
    def _how(spec: LookoutArgs, hit: Hit) -> dict[str, dict[str, Any]]:
        if spec.hist is not None:
            return {"histogram": {"m": round(min(1.0, hit.score), 3), "how": "similar"}}
        found = match(spec.slots(), hit.record)
        return {k: {"m": s.m, "how": s.how} for k, s in found.slots.items()}
