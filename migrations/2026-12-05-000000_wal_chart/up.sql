-- Charts of a source's WAL: retained bytes per slot and WAL on disk over up to months, downsampled
-- per bucket (max) in the database. The slots of a sample are JSONB in wal_metrics, which a chart
-- over 30 days would have to unnest row by row; this narrow table holds one row per sampled slot,
-- written with its wal_metrics row, so the chart reads an index and nothing else.
CREATE TABLE wal_slot_metrics (
    source_id      BIGINT NOT NULL,
    -- The recorded_at of its wal_metrics row.
    recorded_at    TIMESTAMPTZ NOT NULL,
    slot_name      TEXT NOT NULL,
    -- What the slot retained (current_lsn - restart_lsn); NULL when it held nothing it could
    -- use (lost, or never reserved).
    retained_bytes BIGINT NULL,
    CONSTRAINT wal_slot_metrics_source_id_fkey
        FOREIGN KEY (source_id) REFERENCES sources (id) ON DELETE CASCADE,
    CONSTRAINT wal_slot_metrics_bytes_check CHECK (retained_bytes >= 0)
);

-- The history recorded so far (slots of successful samples).
INSERT INTO wal_slot_metrics (source_id, recorded_at, slot_name, retained_bytes)
SELECT m.source_id, m.recorded_at, s.slot ->> 'slot_name', (s.slot ->> 'retained_bytes')::bigint
FROM wal_metrics m CROSS JOIN LATERAL jsonb_array_elements(m.slots) AS s (slot)
WHERE m.slots IS NOT NULL;

-- The chart's slot lines: an index-only range scan of one source's rows in a time range. Also
-- serves the ON DELETE CASCADE from sources.
CREATE INDEX wal_slot_metrics_chart_idx ON wal_slot_metrics (source_id, recorded_at)
    INCLUDE (slot_name, retained_bytes);
-- Retention, oldest first, next to wal_metrics' own.
CREATE INDEX wal_slot_metrics_recorded_at_idx ON wal_slot_metrics (recorded_at);

-- The chart's WAL-on-disk line and its failed samples come from wal_metrics: the index history
-- reads already walks carries what the chart needs, so that scan is index-only too.
DROP INDEX wal_metrics_source_recorded_at_idx;
CREATE INDEX wal_metrics_source_recorded_at_idx ON wal_metrics (source_id, recorded_at DESC, id DESC)
    INCLUDE (status, wal_dir_bytes);
