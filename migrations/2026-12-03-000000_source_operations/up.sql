-- Source operations: each pipeline's replication slot, and the cleanup tasks that drop a managed
-- slot whose pipeline is gone.

-- slot_name: the slot the pipeline reads through, unique per source; rosetta_<id> by default
-- (set by the trigger below when an insert leaves it out). slot_managed: Rosetta created it,
-- so deleting the pipeline drops it.
ALTER TABLE pipelines
    ADD COLUMN slot_name TEXT NULL,
    ADD COLUMN slot_managed BOOLEAN NOT NULL DEFAULT false;
UPDATE pipelines SET slot_name = 'rosetta_' || id;
ALTER TABLE pipelines
    ALTER COLUMN slot_name SET NOT NULL,
    ADD CONSTRAINT pipelines_slot_name_check CHECK (slot_name ~ '^[a-z0-9_]{1,63}$'),
    ADD CONSTRAINT pipelines_source_id_slot_name_key UNIQUE (source_id, slot_name);
-- The unique index leads with source_id: it serves the lookups the old index did.
DROP INDEX pipelines_source_id_idx;

-- Column defaults (the id) are computed before BEFORE triggers run, and NOT NULL is checked after.
CREATE FUNCTION rosetta_pipeline_slot_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.slot_name := coalesce(NEW.slot_name, 'rosetta_' || NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER pipelines_slot_name BEFORE INSERT ON pipelines
    FOR EACH ROW EXECUTE FUNCTION rosetta_pipeline_slot_name();

-- Work on a source that outlives what asked for it. A task keeps the connection settings it
-- needs (the source may be deleted too); its password is sealed for this row
-- (cleanup_tasks/pg_password/<id>). source_id has no foreign key on purpose.
CREATE TABLE cleanup_tasks (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               TEXT NOT NULL,
    source_id          BIGINT NOT NULL,
    slot_name          TEXT NOT NULL,
    pg_host            TEXT NOT NULL,
    pg_port            INTEGER NOT NULL,
    pg_database        TEXT NOT NULL,
    pg_username        TEXT NOT NULL,
    pg_password_sealed BYTEA NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT NULL,
    next_attempt_at    TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT cleanup_tasks_kind_check CHECK (kind IN ('drop_slot')),
    CONSTRAINT cleanup_tasks_slot_name_check CHECK (slot_name ~ '^[a-z0-9_]{1,63}$'),
    CONSTRAINT cleanup_tasks_attempts_check CHECK (attempts >= 0)
);

-- A task is an item of the source_cleanup queue from the moment it exists until it is done or
-- abandoned (deleted).
CREATE FUNCTION rosetta_cleanup_task_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leases (queue, item_id, due_at) VALUES ('source_cleanup', NEW.id, NEW.next_attempt_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER cleanup_tasks_created AFTER INSERT ON cleanup_tasks
    FOR EACH ROW EXECUTE FUNCTION rosetta_cleanup_task_created();

CREATE FUNCTION rosetta_cleanup_task_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leases WHERE queue = 'source_cleanup' AND item_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER cleanup_tasks_deleted AFTER DELETE ON cleanup_tasks
    FOR EACH ROW EXECUTE FUNCTION rosetta_cleanup_task_deleted();
