"""Writes one batch of records to PostgreSQL in one transaction (idempotent on event ids).

The caller acknowledges the batch's messages to the broker only after :meth:`Store.write`
returned, i.e. after COMMIT: a crash before that leaves them unacknowledged, and the broker
delivers them again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from agent import events as ev
from agent.centre.ingest.records import (
    EventRecord,
    Record,
    SnapshotRecord,
    StateRecord,
    StatusRecord,
    utc,
)
from agent.centre.liveness import MIN_PERIOD_S

__all__ = ["Store", "Written"]

_INSERT_EVENTS = """
INSERT INTO events (id, dev, site, boot, seq, kind, ev, ts, st, pri, test, body)
SELECT i, d, s, b, q, k, e, t, x, p, tt, j::jsonb FROM unnest(
    %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[],
    %s::timestamptz[], %s::timestamptz[], %s::smallint[], %s::boolean[], %s::text[]
) AS u(i, d, s, b, q, k, e, t, x, p, tt, j)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# A birth is proof of life too (the age of a pole back from a will counts from it); a new
# boot may run a new config, so its heartbeat period is learnt again.  A birth of another
# boot is always taken (it names the pole's current boot, which decides which heartbeat is
# the last): compared by stamps with status_at (which the sweeper sets by the centre's
# clock), a pole whose clock is behind would have its new boot refused.
_BIRTH = """
INSERT INTO poles AS p (dev, site, pole, place, addr, lat, lon, boot, ver, cfg, broker, birth,
                        birth_at, status, status_why, status_at, last_seen, heard_at)
VALUES (%(dev)s, %(site)s, %(pole)s, %(place)s, %(addr)s, %(lat)s, %(lon)s, %(boot)s, %(ver)s,
        %(cfg)s, %(broker)s, %(birth)s, %(at)s, 'online', 'birth', %(at)s, now(), now())
ON CONFLICT (dev) DO UPDATE SET
    site = EXCLUDED.site, pole = EXCLUDED.pole, place = EXCLUDED.place, addr = EXCLUDED.addr,
    lat = EXCLUDED.lat, lon = EXCLUDED.lon, boot = EXCLUDED.boot, ver = EXCLUDED.ver,
    cfg = EXCLUDED.cfg, broker = EXCLUDED.broker, birth = EXCLUDED.birth,
    birth_at = EXCLUDED.birth_at, status = 'online', status_why = 'birth',
    status_at = EXCLUDED.status_at, last_seen = now(), heard_at = now(),
    heartbeat_period_s = CASE WHEN p.boot IS DISTINCT FROM EXCLUDED.boot THEN NULL
                              ELSE p.heartbeat_period_s END
WHERE p.status_at IS NULL OR p.boot IS DISTINCT FROM EXCLUDED.boot
   OR p.status_at <= EXCLUDED.status_at
"""

_OFFLINE = """
INSERT INTO poles AS p (dev, site, boot, status, status_why, status_at)
VALUES (%(dev)s, %(site)s, %(boot)s, 'offline', %(why)s, %(at)s)
ON CONFLICT (dev) DO UPDATE SET status = 'offline', status_why = EXCLUDED.status_why,
    status_at = EXCLUDED.status_at
WHERE p.status_at IS NULL OR p.status_at <= EXCLUDED.status_at
"""

# A heartbeat is proof of life: heard_at (its arrival, the centre's clock) is what the
# sweeper's silent judgement ages, and a pole judged silent is online again; a replayed or
# late one, or one stamped by a clock that stepped back, too.  It becomes the stored (last)
# heartbeat when it is of the same boot with a higher seq, or of another boot that is the
# pole's current one (its birth's, p.boot) or, neither being that, stamped no earlier: an
# old boot's heartbeats replayed after a reboot never displace the new boot's.  The period
# is learnt from the stamps of a heartbeat and the last one it replaces, within one boot, at
# least MIN_PERIOD_S (shorter, or backwards, is a clock step); a new boot forgets it.  The
# rule of agent.centre.liveness, held to it by tests/centre/test_liveness_agreement.py.
_HEARTBEAT = """
INSERT INTO poles AS p (dev, site, boot, status, status_why, status_at, heartbeat, heartbeat_at,
                        last_seen, heard_at)
VALUES (%(dev)s, %(site)s, %(boot)s, 'online', 'heard', %(at)s, %(hb)s, %(at)s, now(), now())
ON CONFLICT (dev) DO UPDATE SET
    last_seen = now(), heard_at = now(),
    -- the rule's two questions asked once, in c: is it the new last one; is it a new boot's
    (heartbeat, heartbeat_at, heartbeat_period_s) = (
        SELECT CASE WHEN c.last THEN EXCLUDED.heartbeat ELSE p.heartbeat END,
               CASE WHEN c.last THEN EXCLUDED.heartbeat_at ELSE p.heartbeat_at END,
               CASE WHEN p.heartbeat IS NULL OR NOT c.last THEN p.heartbeat_period_s
                    WHEN c.other_boot THEN NULL
                    WHEN c.gap >= %(min_s)s
                         AND (p.heartbeat_period_s IS NULL OR c.gap < p.heartbeat_period_s)
                    THEN c.gap
                    ELSE p.heartbeat_period_s END
        FROM (SELECT
            p.heartbeat IS NULL
              OR (p.heartbeat->>'boot' = %(boot)s AND (p.heartbeat->>'seq')::bigint < %(seq)s)
              OR (p.heartbeat->>'boot' <> %(boot)s
                  AND (p.boot = %(boot)s OR (p.heartbeat->>'boot' IS DISTINCT FROM p.boot
                                             AND EXCLUDED.heartbeat_at >= p.heartbeat_at)))
                AS last,
            p.heartbeat->>'boot' <> %(boot)s AS other_boot,
            extract(epoch FROM EXCLUDED.heartbeat_at - p.heartbeat_at)::float8 AS gap
        ) AS c
    ),
    status = CASE WHEN p.status_why = 'silent' THEN 'online' ELSE p.status END,
    status_why = CASE WHEN p.status_why = 'silent' THEN 'heard' ELSE p.status_why END
"""

# Coarse on purpose: one write per pole every few seconds, not one per event.
_SEEN = """
UPDATE poles SET last_seen = now()
WHERE dev = ANY(%s) AND last_seen < now() - interval '5 seconds'
"""

_STATE = """
INSERT INTO pole_states AS s (dev, name, state, since, ts, detail)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (dev, name) DO UPDATE SET state = EXCLUDED.state, since = EXCLUDED.since,
    ts = EXCLUDED.ts, detail = EXCLUDED.detail
WHERE s.ts <= EXCLUDED.ts
"""

_SNAPSHOT = """
INSERT INTO snapshots (event_id, dev, site, jpeg) VALUES (%s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""

_LOOKOUT = """
INSERT INTO lookout_candidates (event_id, dev, site, look, cam, tid, score, live, first_at,
                                last_at, body)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""

_OPEN = """
INSERT INTO open_alarms (event_id, dev, site, ts, inp, loc) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""

_CLOSE = "DELETE FROM open_alarms WHERE dev = %s AND ts <= %s"


@dataclass(frozen=True)
class Written:
    """What one batch did: new event rows and event duplicates (already stored)."""

    events: int
    duplicates: int


def _status_params(r: StatusRecord) -> dict[str, Any]:
    m = r.msg
    return {
        "dev": m.dev, "site": m.site or r.site, "boot": m.boot, "at": utc(m.ts), "why": m.why,
        "pole": m.pole, "place": m.place, "addr": m.addr, "lat": m.lat, "lon": m.lon,
        "ver": m.ver, "cfg": m.cfg, "broker": m.broker,
        "birth": Jsonb(m.model_dump(mode="json", exclude_none=True)),
    }  # fmt: skip


class Store:
    """One connection to the centre's database; ``write`` one batch per transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, records: Sequence[Record]) -> Written:
        """Store ``records`` in one transaction; raises psycopg.Error with nothing stored."""
        conn = self.connection()
        try:
            with conn.transaction():
                return self._write(conn, records)
        except psycopg.OperationalError:
            self.close()  # a broken connection: the next write opens a new one
            raise

    def _write(
        self, conn: psycopg.Connection[tuple[Any, ...]], records: Sequence[Record]
    ) -> Written:
        events: dict[str, EventRecord] = {}
        offered = 0
        beats: dict[str, EventRecord] = {}  # every heartbeat once, in arrival order
        heard: set[str] = set()
        for r in records:
            if isinstance(r, EventRecord):
                offered += 1
                events.setdefault(r.event.id, r)
                if isinstance(r.event, ev.HealthEvent) and r.event.id not in beats:
                    beats[r.event.id] = r
            elif isinstance(r, StatusRecord):
                # The heartbeats before it first: a birth names the current boot, which
                # decides which of them is the last (as it does in the monitor).
                heard |= self._beats(conn, list(beats.values()))
                beats.clear()
                conn.execute(_BIRTH if r.msg.state == "online" else _OFFLINE, _status_params(r))
            elif isinstance(r, StateRecord):
                m = r.msg
                detail = Jsonb(m.detail) if m.detail is not None else None
                conn.execute(_STATE, (m.dev, r.name, m.state, utc(m.since), utc(m.ts), detail))
            elif isinstance(r, SnapshotRecord):
                conn.execute(_SNAPSHOT, (r.event_id, r.dev, r.site, r.jpeg))
        new = self._events(conn, list(events.values()))
        self._alarms(conn, [r for r in events.values() if r.event.id in new])
        self._candidates(conn, [r for r in events.values() if r.event.id in new])
        heard |= self._beats(conn, list(beats.values()))
        devs = sorted({r.event.dev for r in events.values()} - heard)
        if devs:
            conn.execute(_SEEN, (devs,))
        return Written(len(new), offered - len(new))

    def _beats(
        self, conn: psycopg.Connection[tuple[Any, ...]], beats: list[EventRecord]
    ) -> set[str]:
        """Apply heartbeats each in turn (a replay burst's spacings teach the period, as they
        do the monitor), poles in a fixed order (fewer lock waits between workers; a deadlock
        that still happens is retried by the worker); the poles heard."""
        if not beats:
            return set()
        order = sorted(beats, key=lambda r: r.event.dev)  # stable: arrival order per pole
        with conn.cursor() as cur:
            cur.executemany(_HEARTBEAT, [self._beat(r) for r in order])
        return {r.event.dev for r in beats}

    @staticmethod
    def _events(conn: psycopg.Connection[tuple[Any, ...]], recs: list[EventRecord]) -> set[str]:
        if not recs:
            return set()
        rows = [r.row() for r in recs]
        cols: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)]
        cols[-1] = [json.dumps(b, ensure_ascii=False, separators=(",", ":")) for b in cols[-1]]
        return {row[0] for row in conn.execute(_INSERT_EVENTS, cols).fetchall()}

    @staticmethod
    def _alarms(conn: psycopg.Connection[tuple[Any, ...]], new: list[EventRecord]) -> None:
        """Open alarms for new activations, then close what an acknowledgement covers."""
        with conn.cursor() as cur:
            opens = [r for r in new if r.opens_alarm]
            if opens:
                cur.executemany(_OPEN, [_open_params(r) for r in opens])
            closes = [(r.event.dev, utc(r.event.ts)) for r in new if r.closes_alarms]
            if closes:
                cur.executemany(_CLOSE, closes)

    @staticmethod
    def _candidates(conn: psycopg.Connection[tuple[Any, ...]], new: list[EventRecord]) -> None:
        """A lookout's candidates into their own table (their thumbnails are snapshots)."""
        rows = []
        for r in new:
            e = r.event
            if isinstance(e, ev.LookoutEvent):
                body = Jsonb(e.model_dump(mode="json", include={"m", "seen", "hist"}))
                rows.append(
                    (e.id, e.dev, r.site, e.look, e.cam, e.tid, e.sc, e.live, utc(e.t0),
                     utc(e.t1), body)
                )  # fmt: skip
        if rows:
            with conn.cursor() as cur:
                cur.executemany(_LOOKOUT, rows)

    @staticmethod
    def _beat(r: EventRecord) -> dict[str, Any]:
        e = r.event
        facts = e.model_dump(mode="json", exclude_none=True, exclude={"v", "k", "pri"})
        return {
            "dev": e.dev, "site": r.site, "boot": e.boot, "seq": e.seq, "at": utc(e.ts),
            "hb": Jsonb(facts), "min_s": MIN_PERIOD_S,
        }  # fmt: skip


def _open_params(r: EventRecord) -> tuple[Any, ...]:
    e = r.event
    assert isinstance(e, ev.BellEvent)
    loc = Jsonb(e.loc.model_dump(mode="json")) if e.loc is not None else None
    return (e.id, e.dev, r.site, utc(e.ts), e.inp, loc)
