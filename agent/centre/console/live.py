"""Live updates: one LISTEN connection per console, fanned out to every browser as SSE.

PostgreSQL sends ``pole_alarm`` (each new bell row, from the ingest's trigger),
``pole_status`` (a pole's online/offline or its why changed), ``pole_alarm_closed`` (an
open alarm went) and ``pole_lookout`` (a lookout candidate, or its thumbnail, arrived) when
the writing transaction commits.  The console itself adds ``answer`` (a pole's answer to a
lookout it sent) and ``sent`` (that broadcast is over) with :meth:`Hub.publish`.  The hub
forwards them to each connected browser's bounded queue; a browser too slow to keep up gets
one ``resync`` instead of a backlog, and reloads the view once.  Browsers never poll: with
2,000 poles the only steady traffic is a keep-alive comment every 15 s.  When the console
stops, :meth:`Hub.close` ends every feed (the browsers reconnect by themselves once it is
back): an open page must not hold the server's graceful stop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import psycopg

__all__ = ["CHANNELS", "Hub"]

log = logging.getLogger(__name__)

# channel -> SSE event name
CHANNELS = {"pole_alarm": "alarm", "pole_status": "status", "pole_alarm_closed": "closed",
            "pole_lookout": "candidate"}  # fmt: skip
QUEUE = 4096  # notices buffered per browser (a storm of alarms) before it must resync
KEEPALIVE_S = 15.0

Message = tuple[str, str]
_CLOSE: Message = ("", "")  # not an SSE event: the feed ends


class Hub:
    """``run()`` listens (reconnecting with backoff); ``stream()`` is one browser's feed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._subs: set[asyncio.Queue[Message]] = set()
        self.listening = asyncio.Event()
        self.forwarded = 0
        self.closed = False

    def close(self) -> None:
        """End every browser's feed now and refuse new ones (the console is stopping)."""
        self.closed = True
        for q in self._subs:
            while q.full():
                q.get_nowait()
            q.put_nowait(_CLOSE)

    def publish(self, event: str, data: str) -> None:
        if self.closed:
            return
        for q in self._subs:
            try:
                q.put_nowait((event, data))
            except asyncio.QueueFull:
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(("resync", "{}"))
        self.forwarded += 1

    def _forward(self, channel: str, payload: str) -> None:
        event = CHANNELS.get(channel)
        if event is None:
            return
        if event == "alarm":
            # Only activations change the board; the other bell rows would be noise.
            try:
                body = json.loads(payload)
            except ValueError:
                return
            if body.get("ev") != "activated":
                return
        self.publish(event, payload)

    async def run(self) -> None:
        backoff = 1.0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                async with conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    if backoff > 1.0:
                        self.publish("resync", "{}")  # notices were missed while away
                    backoff = 1.0
                    self.listening.set()
                    async for n in conn.notifies():
                        self._forward(n.channel, n.payload)
            except psycopg.OperationalError as exc:
                self.listening.clear()
                log.warning("console: live feed lost the database (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def stream(self, until: float | None = None) -> AsyncIterator[str]:
        """Server-sent events for one browser, until it goes away, :meth:`close`, or
        ``until`` (``time.time()``: when its session expires), which ends the feed with a
        ``session`` event: the page then says so and goes to the login page, instead of
        chiming at alarms it can no longer show."""
        if self.closed:
            return
        q: asyncio.Queue[Message] = asyncio.Queue(QUEUE)
        self._subs.add(q)
        try:
            yield "retry: 3000\n\n"
            while True:
                left = KEEPALIVE_S if until is None else min(KEEPALIVE_S, until - time.time())
                if left <= 0:
                    yield "event: session\ndata: ended\n\n"
                    return
                try:
                    first = await asyncio.wait_for(q.get(), left)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                batch = [first]  # a burst goes out in one write, not one per notice
                while not q.empty() and len(batch) < 500:
                    batch.append(q.get_nowait())
                ended = _CLOSE in batch
                batch = batch[: batch.index(_CLOSE)] if ended else batch
                if batch:
                    yield "".join(f"event: {e}\ndata: {d}\n\n" for e, d in batch)
                if ended:
                    return
        finally:
            self._subs.discard(q)

    @property
    def browsers(self) -> int:
        return len(self._subs)
