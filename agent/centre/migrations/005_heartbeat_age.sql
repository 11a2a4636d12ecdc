-- The ingest judges a pole silent by the age of its last heartbeat, as the monitor does
-- (agent/centre/liveness.py; docs/centre-ingest.md, "Silent poles"), no longer by last_seen
-- (any message).
--   heard_at: when the last heartbeat (or birth) arrived, by the centre's clock: the age is
--             measured on it, not on heartbeat_at (the pole's own stamp, which a pole with
--             a wrong clock would make look old or young).
--   heartbeat_period_s: the pole's heartbeat period as learnt from its heartbeats: the
--             shortest spacing of their stamps within one boot (NULL until two were seen;
--             a new boot may run a new config and starts again).
ALTER TABLE poles ADD COLUMN heard_at timestamptz, ADD COLUMN heartbeat_period_s double precision;
UPDATE poles SET heard_at = last_seen WHERE status = 'online' OR heartbeat_at IS NOT NULL;
