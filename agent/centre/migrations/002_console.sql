-- The operators' console (docs/centre.md, "Console"): who did what, and live notices for the
-- pole table and the alarm board besides the bell rows' pole_alarm.

-- Every operator action: logins (and refused ones), logouts, acknowledgements with the
-- pole's result.  Rows are only ever inserted, and updated once with the action's result.
CREATE TABLE audit (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    operator text NOT NULL,
    role     text,
    action   text NOT NULL,
    dev      text,
    target   text,
    result   text,
    detail   jsonb NOT NULL DEFAULT '{}',
    done_at  timestamptz
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_target ON audit (target);

-- A pole's link status changed (not every heartbeat: only online/offline and why).
CREATE FUNCTION poles_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
            OR NEW.status_why IS DISTINCT FROM OLD.status_why THEN
        PERFORM pg_notify('pole_status', json_build_object(
            'dev', NEW.dev, 'status', NEW.status, 'why', NEW.status_why)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER poles_status AFTER INSERT OR UPDATE ON poles
    FOR EACH ROW EXECUTE FUNCTION poles_notify_status();

-- An open alarm went (acknowledged): every board drops it.
CREATE FUNCTION open_alarms_notify_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pole_alarm_closed', json_build_object(
        'id', OLD.event_id, 'dev', OLD.dev)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER open_alarms_closed AFTER DELETE ON open_alarms
    FOR EACH ROW EXECUTE FUNCTION open_alarms_notify_closed();
