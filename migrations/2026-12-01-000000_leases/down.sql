DROP TRIGGER sources_deleted ON sources;
DROP FUNCTION rosetta_source_deleted();
DROP TRIGGER sources_created ON sources;
DROP FUNCTION rosetta_source_created();

ALTER TABLE wal_monitor
    ADD COLUMN next_sample_at TIMESTAMPTZ NULL,
    ADD COLUMN lease_owner TEXT NULL,
    ADD COLUMN lease_expires_at TIMESTAMPTZ NULL,
    ADD CONSTRAINT wal_monitor_lease_check CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL));
UPDATE wal_monitor w SET next_sample_at = l.due_at, lease_owner = l.owner, lease_expires_at = l.expires_at
FROM leases l WHERE l.queue = 'wal_sampling' AND l.item_id = w.source_id;
CREATE INDEX wal_monitor_due_idx ON wal_monitor (next_sample_at NULLS FIRST, source_id);

DROP TABLE leases;
