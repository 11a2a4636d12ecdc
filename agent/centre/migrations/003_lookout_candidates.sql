-- The lookout's candidates (event/lookout, docs/lookout.md): one row per candidate event,
-- idempotent on its event id (the whole event is in events too).  The placeholder of 001
-- gets its columns; its thumbnail is the snapshot with the same event id (snapshots).
ALTER TABLE lookout_candidates
    ADD COLUMN site     text,
    ADD COLUMN look     text,
    ADD COLUMN cam      text,
    ADD COLUMN tid      bigint,
    ADD COLUMN score    real,
    ADD COLUMN live     boolean,
    ADD COLUMN first_at timestamptz,
    ADD COLUMN last_at  timestamptz;
CREATE UNIQUE INDEX lookout_candidates_event ON lookout_candidates (event_id);
CREATE INDEX lookout_candidates_look ON lookout_candidates (look, score DESC);
