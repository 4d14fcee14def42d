-- Claims that stay cheap under a burst of due items (every source due at once, as after a
-- restart or each interval).
--
-- * "Due now" is '-infinity' instead of NULL: a claim's condition is then one range of
--   leases_due_idx, which the planner walks in order and stops after the claim's LIMIT; with
--   `due_at IS NULL OR due_at <= now` it OR-ed two bitmap scans and read every due entry (live
--   and dead) on every claim, so a burst cost O(items²).
-- * leases_owner_idx goes: every claim wrote an entry into it and every completion left one
--   dead, and completions (which the planner sent through it) walked them. Without it a claim
--   changes no indexed column and can be a HOT update (fillfactor leaves room on the page),
--   completions find their rows by primary key, and releasing a process's leases at shutdown
--   scans the table (one statement per shutdown).
DROP INDEX leases_owner_idx;
DROP INDEX leases_due_idx;
UPDATE leases SET due_at = '-infinity' WHERE due_at IS NULL;
ALTER TABLE leases
    ALTER COLUMN due_at SET DEFAULT '-infinity',
    ALTER COLUMN due_at SET NOT NULL,
    SET (fillfactor = 70);
CREATE INDEX leases_due_idx ON leases (queue, due_at, item_id);
