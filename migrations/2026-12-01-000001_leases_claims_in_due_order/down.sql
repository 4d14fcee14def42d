DROP INDEX leases_due_idx;
ALTER TABLE leases
    RESET (fillfactor),
    ALTER COLUMN due_at DROP NOT NULL,
    ALTER COLUMN due_at DROP DEFAULT;
UPDATE leases SET due_at = NULL WHERE due_at = '-infinity';
CREATE INDEX leases_due_idx ON leases (queue, due_at NULLS FIRST, item_id);
CREATE INDEX leases_owner_idx ON leases (owner) WHERE owner IS NOT NULL;
