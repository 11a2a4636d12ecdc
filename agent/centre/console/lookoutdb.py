"""What the lookout page reads: candidates, lookouts in force, the lookout actions' audit.

Every query is bounded like the console's others (a LIMIT, a time window, or the poles table).
"""

from __future__ import annotations

from typing import Any

from agent.centre.console.db import Db

__all__ = ["ACTIONS", "actions", "active", "candidate", "candidates", "lookout_ids", "places"]

Row = dict[str, Any]
ACTIONS = ("lookout-send", "lookout-similar", "lookout-cancel")
SENDS = ("lookout-send", "lookout-similar")

# The best report of each track (a pole reports a track again when its score rose), ranked by
# score within each lookout, the lookout with the newest candidate first.  Without a filter:
# the last 24 hours.
_CANDIDATES = """
WITH best AS (
    SELECT DISTINCT ON (c.look, c.dev, c.cam, c.tid, c.first_at) c.*
    FROM lookout_candidates c
    WHERE CASE WHEN %(look)s::text IS NULL THEN c.created_at > now() - interval '24 hours'
               ELSE c.look = %(look)s END
    ORDER BY c.look, c.dev, c.cam, c.tid, c.first_at, c.score DESC NULLS LAST,
             c.created_at DESC
)
SELECT b.id, b.event_id, b.dev, b.site, coalesce(b.look, '?') AS look, b.cam, b.tid, b.score,
       b.live, b.first_at, b.last_at, b.created_at, b.body->'m' AS m, p.pole, p.place,
       (s.event_id IS NOT NULL) AS snap, max(b.created_at) OVER (PARTITION BY b.look) AS latest
FROM best b LEFT JOIN poles p ON p.dev = b.dev LEFT JOIN snapshots s ON s.event_id = b.event_id
ORDER BY latest DESC, b.look, b.score DESC NULLS LAST, b.created_at DESC
LIMIT 300
"""

# Lookouts in force: sent from the console (not refused, not cancelled, time not up) or
# listed in an online pole's last heartbeat (``det.lookouts``: sent by the CLI too).
_ACTIVE = """
WITH sent AS (
    SELECT DISTINCT ON (target) target AS id, at, operator, dev, detail->>'site' AS site,
           at + make_interval(secs => coalesce((detail->'args'->>'for_s')::float8, 21600))
               AS ends
    FROM audit
    WHERE action IN ('lookout-send', 'lookout-similar') AND at > now() - interval '7 days'
      -- still collecting answers (a console that stopped meanwhile never finished the row)
      AND (result = 'ok' OR (result IS NULL AND at > now() - interval '2 minutes'))
    ORDER BY target, at DESC
), held AS (
    SELECT lk->>'id' AS id, count(*) AS poles, min(p.site) AS site,
           -- a pole's heartbeat is its own: a value of the wrong type is skipped, not cast
           sum(CASE WHEN jsonb_typeof(lk->'sent') = 'number'
                    THEN floor((lk->>'sent')::numeric) ELSE 0 END)::bigint AS reported,
           max(CASE WHEN jsonb_typeof(lk->'left_s') = 'number'
                    THEN (lk->>'left_s')::float8
                         - extract(epoch FROM now() - p.heartbeat_at) END) AS left_s
    FROM poles p CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(p.heartbeat->'det'->'lookouts') = 'array'
             THEN p.heartbeat->'det'->'lookouts' ELSE '[]'::jsonb END) lk
    WHERE p.status = 'online' AND jsonb_typeof(lk) = 'object' AND lk ? 'id'
    GROUP BY 1
), cancelled AS (
    SELECT target AS id, max(at) AS at FROM audit
    WHERE action = 'lookout-cancel' AND result = 'ok' AND at > now() - interval '7 days'
    GROUP BY target
)
SELECT coalesce(s.id, h.id) AS id, coalesce(s.site, h.site) AS site, s.dev, s.at, s.operator,
       greatest(0, coalesce(h.left_s, extract(epoch FROM s.ends - now())))::float8 AS left_s,
       coalesce(h.poles, 0) AS poles, coalesce(h.reported, 0) AS reported
FROM sent s FULL JOIN held h ON h.id = s.id
LEFT JOIN cancelled c ON c.id = coalesce(s.id, h.id)
    AND c.at > coalesce(s.at, '-infinity'::timestamptz)
WHERE c.id IS NULL AND (h.id IS NOT NULL OR s.ends > now())
ORDER BY s.at DESC NULLS LAST, 1
LIMIT 50
"""

_ACTIONS = """
SELECT id, at, operator, action, dev, target, result, detail, done_at FROM audit
WHERE action IN ('lookout-send', 'lookout-similar', 'lookout-cancel')
  AND at > now() - interval '24 hours'
ORDER BY at DESC LIMIT 30
"""


async def candidates(db: Db, look: str | None) -> list[Row]:
    return await db.rows(_CANDIDATES, {"look": look})


async def candidate(db: Db, cid: int) -> Row | None:
    """One candidate with what find-similar needs: its site and histogram."""
    found = await db.rows(
        "SELECT id, event_id, dev, site, look, body->>'hist' AS hist, "
        "(body->'seen'->>'type') IS NOT NULL AS vehicle "
        "FROM lookout_candidates WHERE id = %s",
        (cid,),
    )
    return found[0] if found else None


async def lookout_ids(db: Db) -> list[str]:
    """Lookouts with candidates in the last 7 days, newest first (the grid's filter)."""
    rows = await db.rows(
        "SELECT look FROM lookout_candidates WHERE look IS NOT NULL "
        "AND created_at > now() - interval '7 days' GROUP BY look "
        "ORDER BY max(created_at) DESC LIMIT 100"
    )
    return [r["look"] for r in rows]


async def places(db: Db) -> list[Row]:
    """Every pole's device, site, number and place (the form's site and pole)."""
    return await db.rows("SELECT dev, site, pole, place FROM poles ORDER BY site, pole, dev")


async def active(db: Db) -> list[Row]:
    return await db.rows(_ACTIVE)


async def actions(db: Db) -> list[Row]:
    """The lookout actions of the last 24 hours, newest first."""
    return await db.rows(_ACTIONS)
