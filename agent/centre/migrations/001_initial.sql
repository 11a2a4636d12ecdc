-- The centre's tables for what poles send (docs/centre-ingest.md).  Times are timestamptz;
-- the contract's millisecond times are converted by the ingest.

-- One row per event, idempotent on the contract's event id.  The envelope and the fields most
-- queries filter on are columns; the rest of the kind's fields are in body.
CREATE TABLE events (
    id          text PRIMARY KEY,
    dev         text NOT NULL,
    site        text NOT NULL,
    boot        text NOT NULL,
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    ev          text,
    ts          timestamptz NOT NULL,
    st          timestamptz,
    pri         smallint NOT NULL,
    test        boolean NOT NULL DEFAULT false,
    body        jsonb NOT NULL,
    rx          bigint GENERATED ALWAYS AS IDENTITY,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_dev_ts ON events (dev, ts);
CREATE INDEX events_kind_ts ON events (kind, ts);
CREATE INDEX events_rx ON events (rx);

-- A console can LISTEN pole_alarm: the notice is sent when the row is committed, once.
CREATE FUNCTION events_notify_bell() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pole_alarm', json_build_object(
        'id', NEW.id, 'dev', NEW.dev, 'ev', NEW.ev, 'ts', NEW.ts, 'st', NEW.st)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER events_bell AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.kind = 'bell') EXECUTE FUNCTION events_notify_bell();

-- One row per pole: its last birth, its link status and why, its last heartbeat's facts.
CREATE TABLE poles (
    dev          text PRIMARY KEY,
    site         text NOT NULL,
    pole         text,
    place        text,
    addr         text,
    lat          double precision,
    lon          double precision,
    boot         text,
    ver          text,
    cfg          text,
    broker       text,
    birth        jsonb,
    birth_at     timestamptz,
    status       text NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'unknown')),
    status_why   text,
    status_at    timestamptz,
    heartbeat    jsonb,
    heartbeat_at timestamptz,
    last_seen    timestamptz NOT NULL DEFAULT now()
);

-- The retained state/<name> of each pole (state/bell today).
CREATE TABLE pole_states (
    dev    text NOT NULL,
    name   text NOT NULL,
    state  text NOT NULL,
    since  timestamptz NOT NULL,
    ts     timestamptz NOT NULL,
    detail jsonb,
    PRIMARY KEY (dev, name)
);

-- Bell alarms (ev = activated, not a test) that no one has acknowledged yet; the row goes
-- when the pole reports outputs_off why=ack or a cmd_result of bell-ack.
CREATE TABLE open_alarms (
    event_id  text PRIMARY KEY,
    dev       text NOT NULL,
    site      text NOT NULL,
    ts        timestamptz NOT NULL,
    inp       text,
    loc       jsonb,
    opened_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX open_alarms_dev_ts ON open_alarms (dev, ts);

-- Snapshot JPEGs (~100 kB) by the id of the event they belong to.
CREATE TABLE snapshots (
    event_id    text PRIMARY KEY,
    dev         text NOT NULL,
    site        text NOT NULL,
    jpeg        bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Seqs a boot of a pole lost (reorder window passed, or the pole said it dropped them), and
-- lost ones that came late after all.  Pending seqs live only in the ingest's memory.
CREATE TABLE gaps (
    dev       text NOT NULL,
    boot      text NOT NULL,
    first_seq bigint NOT NULL,
    last_seq  bigint NOT NULL,
    state     text NOT NULL CHECK (state IN ('lost', 'late')),
    why       text NOT NULL CHECK (why IN ('window', 'dropped_by_pole', 'arrived')),
    noted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (dev, boot, first_seq),
    CHECK (first_seq <= last_seq)
);

-- Placeholder for the lookout's candidates (a later issue fills in the columns).
CREATE TABLE lookout_candidates (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dev        text NOT NULL,
    event_id   text,
    body       jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
