DELETE FROM leases WHERE queue = 'source_cleanup';
DROP TABLE cleanup_tasks;
DROP FUNCTION rosetta_cleanup_task_created();
DROP FUNCTION rosetta_cleanup_task_deleted();
DROP TRIGGER pipelines_slot_name ON pipelines;
DROP FUNCTION rosetta_pipeline_slot_name();
CREATE INDEX pipelines_source_id_idx ON pipelines (source_id);
ALTER TABLE pipelines
    DROP CONSTRAINT pipelines_source_id_slot_name_key,
    DROP COLUMN slot_name,
    DROP COLUMN slot_managed;
