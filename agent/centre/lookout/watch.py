"""`pole-agent lookout watch ID`: the candidates of one lookout from every pole, ranked.

:class:`CandidateBoard` is the pure part (feed it (topic, payload), ask for the ranked
rows): it keeps the poles' places from their retained status, deduplicates candidates by
event id (delivery is at least once) and by pole, camera and track (a track reported again
because its score rose replaces its earlier row), and saves each candidate's thumbnail
(``snapshot/<event id>``, which may arrive before or after its event) into ``--out``.
:class:`LookoutWatch` subscribes and runs it until a timeout or Ctrl-C.
"""

from __future__ import annotations

import queue
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from agent import events as ev

__all__ = ["Candidate", "CandidateBoard", "LookoutWatch"]

EARLY_MAX = 256  # thumbnails waiting for their event


@dataclass
class Candidate:
    dev: str
    event: ev.LookoutEvent
    received: float  # monotonic, when it arrived here
    thumb: Path | None = None

    @property
    def key(self) -> tuple[str, str, int, int]:
        # a track id is unique per camera and boot; a look-back may reach an earlier boot
        return self.dev, self.event.cam, self.event.tid, self.event.t0


def _slots_text(event: ev.LookoutEvent) -> str:
    return ", ".join(f"{k} {v.how} {v.m:.2f}" for k, v in event.m.items())


@dataclass
class CandidateBoard:
    """Candidates of lookout ``lookout_id`` as they arrive; thumbnails into ``out``."""

    lookout_id: str
    out: Path | None = None
    clock: Callable[[], float] = time.monotonic
    places: dict[str, str] = field(default_factory=dict)
    best: dict[tuple[str, str, int, int], Candidate] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    early: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    invalid: int = 0

    def handle(self, topic: str, payload: bytes, at: float | None = None) -> bool:
        """One message (received at monotonic ``at``, default now); True when the ranking
        changed."""
        parts = topic.split("/")
        if len(parts) < 4:
            return False
        dev, leaf = parts[2], parts[3]
        if leaf == "status":
            self._status(dev, payload)
            return False
        if leaf == "snapshot" and len(parts) == 5:
            return self._thumb(parts[4], payload)
        if leaf == "event" and parts[-1] == "lookout":
            return self._candidate(dev, payload, self.clock() if at is None else at)
        return False

    def _status(self, dev: str, payload: bytes) -> None:
        try:
            msg = ev.StatusMessage.model_validate_json(payload)
        except ValidationError:
            return
        if msg.state == "online" and (msg.place or msg.pole):
            self.places[dev] = " ".join(p for p in (msg.pole, msg.place) if p)

    def _candidate(self, dev: str, payload: bytes, at: float) -> bool:
        try:
            event = ev.decode_event(payload)
        except ValidationError:
            self.invalid += 1
            return False
        if not isinstance(event, ev.LookoutEvent) or event.look != self.lookout_id:
            return False
        if event.id in self.seen_ids:
            return False  # delivered again
        self.seen_ids.add(event.id)
        cand = Candidate(dev, event, at)
        old = self.best.get(cand.key)
        if old is not None and old.event.sc >= event.sc:
            return False
        if old is not None:
            cand.thumb = old.thumb
        self.best[cand.key] = cand
        jpeg = self.early.pop(event.id, None)
        if jpeg is not None:
            self._save(cand, jpeg)
        return True

    def _thumb(self, event_id: str, jpeg: bytes) -> bool:
        if not jpeg.startswith(b"\xff\xd8"):
            return False
        for cand in self.best.values():
            if cand.event.id == event_id:
                self._save(cand, jpeg)
                return True
        self.early[event_id] = jpeg  # its event has not arrived (yet), or is another's
        while len(self.early) > EARLY_MAX:
            self.early.popitem(last=False)
        return False

    def _save(self, cand: Candidate, jpeg: bytes) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{cand.dev}_{cand.event.cam}_{cand.event.tid}_{cand.event.t0}.jpg"
        path.write_bytes(jpeg)
        cand.thumb = path

    def ranked(self) -> list[Candidate]:
        """Best score first; the earlier seen first among equals."""
        return sorted(self.best.values(), key=lambda c: (-c.event.sc, c.event.t1))

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for c in self.ranked():
            e = c.event
            out.append(
                {
                    "pole": c.dev,
                    "place": self.places.get(c.dev, ""),
                    "time": datetime.fromtimestamp(e.t1 / 1000).strftime("%H:%M:%S"),
                    "score": e.sc,
                    "slots": _slots_text(e),
                    "cam": e.cam,
                    "track": e.tid,
                    "live": e.live,
                    "thumb": str(c.thumb) if c.thumb else "",
                }
            )
        return out

    def table(self) -> str:
        rows = self.rows()
        head = f"lookout {self.lookout_id}: {len(rows)} candidate(s)"
        lines = [head, f"{'#':>3} {'pole':<12} {'place':<18} {'time':<8} {'score':>5}  slots"]
        for n, r in enumerate(rows, 1):
            where = f"{r['cam']}#{r['track']}{' live' if r['live'] else ''}"
            lines.append(
                f"{n:>3} {r['pole']:<12} {r['place'][:18]:<18} {r['time']:<8} "
                f"{r['score']:>5.2f}  {r['slots']}  [{where}] {r['thumb']}"
            )
        return "\n".join(lines)


class LookoutWatch:
    """Subscribes to a site's lookout candidates, thumbnails and statuses; runs a board."""

    def __init__(self, client: mqtt.Client, prefix: str, site: str, board: CandidateBoard):
        self.client, self.board = client, board
        base = f"{prefix}/{site}/+"
        self.filters = [f"{base}/status", f"{base}/event/lookout", f"{base}/snapshot/+"]
        self.messages: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
        self.error: str | None = None
        client.on_connect = self._on_connect
        client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.error = f"broker refused the connection: {reason}"
            return
        client.subscribe([(f, 1) for f in self.filters])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, bytes(msg.payload), time.monotonic()))

    def start(self, host: str, port: int) -> None:
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def pump(self, wait: float) -> bool:
        """Handle what arrived within ``wait`` seconds; True when the ranking changed."""
        changed = False
        end = time.monotonic() + wait
        while True:
            try:
                topic, payload, at = self.messages.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return changed
            changed |= self.board.handle(topic, payload, at)

    def run(self, timeout: float | None, show: Callable[[str], None]) -> None:
        """Until ``timeout`` (None: until interrupted), showing the table on every change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if self.pump(max(0.0, left)):
                show(self.board.table())
            if self.error:
                show(self.error)
                return
