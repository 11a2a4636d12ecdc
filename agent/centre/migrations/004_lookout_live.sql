-- The console's lookout page, live (docs/centre.md, "Console"): a notice for each new
-- candidate, and again when its thumbnail (the snapshot with the candidate's event id)
-- arrives after it, as pole_alarm does for bell rows.  Sent when the row is committed.
CREATE FUNCTION lookout_candidates_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pole_lookout', json_build_object(
        'id', NEW.id, 'event', NEW.event_id, 'look', NEW.look, 'dev', NEW.dev,
        'score', NEW.score)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER lookout_candidates_new AFTER INSERT ON lookout_candidates
    FOR EACH ROW EXECUTE FUNCTION lookout_candidates_notify();

CREATE FUNCTION snapshots_notify_lookout() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    SELECT id, look, score INTO c FROM lookout_candidates WHERE event_id = NEW.event_id;
    IF FOUND THEN
        PERFORM pg_notify('pole_lookout', json_build_object(
            'id', c.id, 'event', NEW.event_id, 'look', c.look, 'dev', NEW.dev,
            'score', c.score, 'thumb', true)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER snapshots_lookout AFTER INSERT ON snapshots
    FOR EACH ROW EXECUTE FUNCTION snapshots_notify_lookout();
