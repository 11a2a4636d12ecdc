"""What the console reads from (and writes to) the ingest's PostgreSQL: one query per view.

Every query is bounded (a LIMIT, or the poles table, which has one row per pole) and selects
only the heartbeat facts a view shows, so a page costs the same with a busy fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

__all__ = ["Db", "EventFilter"]

Row = dict[str, Any]

# Open alarms, and test activations of the last 15 minutes (tests never open an alarm but the
# operator sees that the test arrived).  ``presses``/``last_press``: the pole's ``pressed``
# events since its previous activation (at most 65 s back: the longest hold is 60 s), from
# which the board infers how the bell was pressed.  "Since" is strict: in immediate mode the
# previous activation's own press has the same time as that activation, and is not this one's.
_ALARMS = """
WITH shown AS (
    SELECT event_id AS id FROM open_alarms
    UNION
    SELECT id FROM events WHERE kind = 'bell' AND ev = 'activated' AND test
        AND ts > now() - interval '15 minutes'
)
SELECT e.id, e.dev, e.site, e.ts, e.test, e.body->>'preset' AS preset, e.body->'loc' AS loc,
       p.pole, p.place, p.addr, (s.event_id IS NOT NULL) AS snap, pr.presses, pr.last_press
FROM shown JOIN events e ON e.id = shown.id
LEFT JOIN poles p ON p.dev = e.dev
LEFT JOIN snapshots s ON s.event_id = e.id
LEFT JOIN LATERAL (
    SELECT count(*) AS presses, max(x.ts) AS last_press FROM events x
    WHERE x.dev = e.dev AND x.boot = e.boot AND x.kind = 'bell' AND x.ev = 'pressed'
      AND x.ts BETWEEN e.ts - interval '65 seconds' AND e.ts
      AND x.ts > coalesce((
          SELECT max(a.ts) FROM events a WHERE a.dev = e.dev AND a.kind = 'bell'
            AND a.ev = 'activated' AND a.ts < e.ts AND a.ts > e.ts - interval '65 seconds'),
          '-infinity')
) pr ON true
ORDER BY e.ts DESC
LIMIT 200
"""

_POLES = """
SELECT p.dev, p.site, p.pole, p.place, p.addr, p.lat, p.lon, p.status, p.status_why,
       p.status_at, p.heartbeat_at, p.last_seen, coalesce(p.heartbeat->'link'->>'broker',
       p.broker) AS broker, p.heartbeat->'spool'->>'state' AS spool_state,
       p.heartbeat->'spool'->'depth' AS spool_depth, p.heartbeat->'cams' AS cams,
       p.heartbeat->'bell'->'faults' AS hb_faults, s.state AS bell_state,
       s.detail->'faults' AS bell_faults,
       extract(epoch FROM now() - coalesce(p.heard_at, p.last_seen))::float8 AS quiet_s,
       p.heartbeat_period_s,
       extract(epoch FROM now() - p.heartbeat_at)::float8 AS hb_age_s
FROM poles p LEFT JOIN pole_states s ON s.dev = p.dev AND s.name = 'bell'
ORDER BY p.site, p.dev
"""

_EVENTS = """
SELECT e.id, e.dev, e.site, e.kind, e.ev, e.ts, e.test, e.body, p.pole, p.place,
       (s.event_id IS NOT NULL) AS snap
FROM events e LEFT JOIN poles p ON p.dev = e.dev LEFT JOIN snapshots s ON s.event_id = e.id
WHERE (%(dev)s::text IS NULL OR e.dev = %(dev)s OR p.pole = %(dev)s)
  AND (%(kind)s::text IS NULL OR e.kind = %(kind)s)
  AND (%(since)s::timestamptz IS NULL OR e.ts >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR e.ts < %(until)s)
ORDER BY e.ts DESC
LIMIT %(limit)s
"""

_ACKS = """
SELECT at, operator, dev, target, result, detail, done_at FROM audit
WHERE action = 'bell-ack' AND at > now() - interval '24 hours' ORDER BY at DESC LIMIT 20
"""


@dataclass(frozen=True)
class EventFilter:
    """The events page's filters; None means any."""

    dev: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200


class Db:
    """A small pool of connections to the centre's database."""

    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self.pool = AsyncConnectionPool(url, min_size=1, max_size=size, open=False,
                                        kwargs={"autocommit": True})  # fmt: skip

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def rows(self, sql: str, params: Any = None) -> list[Row]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def alarms(self) -> list[Row]:
        return await self.rows(_ALARMS)

    async def alarm(self, event_id: str) -> Row | None:
        found = await self.rows(
            "SELECT e.id, e.dev, e.site, (o.event_id IS NOT NULL) AS open FROM events e "
            "LEFT JOIN open_alarms o ON o.event_id = e.id WHERE e.id = %s AND e.kind = 'bell'",
            (event_id,),
        )
        return found[0] if found else None

    async def recent_acks(self) -> list[Row]:
        return await self.rows(_ACKS)

    async def poles(self) -> list[Row]:
        return await self.rows(_POLES)

    async def events(self, f: EventFilter) -> list[Row]:
        return await self.rows(_EVENTS, {**f.__dict__})

    async def kinds(self) -> list[str]:
        return [r["kind"] for r in await self.rows("SELECT DISTINCT kind FROM events LIMIT 50")]

    async def snapshot(self, event_id: str) -> bytes | None:
        found = await self.rows("SELECT jpeg FROM snapshots WHERE event_id = %s", (event_id,))
        return bytes(found[0]["jpeg"]) if found else None

    async def audit(
        self, operator: str, role: str | None, action: str, *, dev: str | None = None,
        target: str | None = None, result: str | None = None, detail: dict[str, Any] | None = None,
    ) -> int:  # fmt: skip
        """One audit row; its id (``finish`` adds the result of a slow action)."""
        found = await self.rows(
            "INSERT INTO audit (operator, role, action, dev, target, result, detail, done_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL "
            "ELSE clock_timestamp() END) RETURNING id",
            (operator, role, action, dev, target, result, Jsonb(detail or {}), result),
        )
        return int(found[0]["id"])

    async def finish(self, audit_id: int, result: str, detail: dict[str, Any]) -> None:
        await self.rows(
            "UPDATE audit SET result = %s, detail = detail || %s, done_at = clock_timestamp() "
            "WHERE id = %s RETURNING id",
            (result, Jsonb(detail), audit_id),
        )
