-- Leased work: the queues of background work every server process shares (rosetta_ports::jobs).
-- One row per item of a queue (a source to sample, a delivery to send, a cleanup task to run),
-- with when it is due and who, if anyone, holds its lease. It replaces the lease columns of
-- wal_monitor, so sampling, deliveries and cleanup tasks share one mechanism.
CREATE TABLE leases (
    queue      TEXT NOT NULL,
    item_id    BIGINT NOT NULL,
    -- NULL: due now, before every scheduled item.
    due_at     TIMESTAMPTZ NULL,
    owner      TEXT NULL,
    expires_at TIMESTAMPTZ NULL,
    CONSTRAINT leases_pkey PRIMARY KEY (queue, item_id),
    CONSTRAINT leases_queue_check CHECK (queue ~ '^[a-z_]{1,63}$'),
    CONSTRAINT leases_owner_check CHECK ((owner IS NULL) = (expires_at IS NULL)),
    CONSTRAINT leases_owner_length_check CHECK (char_length(owner) BETWEEN 1 AND 255)
);

-- A claim reads the due items of one queue in this order and stops after its limit.
CREATE INDEX leases_due_idx ON leases (queue, due_at NULLS FIRST, item_id);
-- Releasing a process's leases at shutdown.
CREATE INDEX leases_owner_idx ON leases (owner) WHERE owner IS NOT NULL;

-- Every source is an item of the sampling queue, carried over with its schedule and lease.
INSERT INTO leases (queue, item_id, due_at, owner, expires_at)
SELECT 'wal_sampling', s.id, w.next_sample_at, w.lease_owner, w.lease_expires_at
FROM sources s LEFT JOIN wal_monitor w ON w.source_id = s.id;
INSERT INTO wal_monitor (source_id) SELECT id FROM sources ON CONFLICT (source_id) DO NOTHING;

DROP INDEX wal_monitor_due_idx;
ALTER TABLE wal_monitor
    DROP CONSTRAINT wal_monitor_lease_check,
    DROP COLUMN next_sample_at,
    DROP COLUMN lease_owner,
    DROP COLUMN lease_expires_at;

-- A new source has its latest-state row and its sampling item from the moment it exists (also
-- when written around the API), so no claim has to look for sources without them.
CREATE FUNCTION rosetta_source_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wal_monitor (source_id) VALUES (NEW.id);
    INSERT INTO leases (queue, item_id) VALUES ('wal_sampling', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER sources_created AFTER INSERT ON sources
    FOR EACH ROW EXECUTE FUNCTION rosetta_source_created();

-- Its state and history go by ON DELETE CASCADE; its sampling item here.
CREATE FUNCTION rosetta_source_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leases WHERE queue = 'wal_sampling' AND item_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER sources_deleted AFTER DELETE ON sources
    FOR EACH ROW EXECUTE FUNCTION rosetta_source_deleted();
