DROP INDEX wal_metrics_source_recorded_at_idx;
CREATE INDEX wal_metrics_source_recorded_at_idx ON wal_metrics (source_id, recorded_at DESC, id DESC);
DROP TABLE wal_slot_metrics;
