//! The SQL of the source operations. Every statement reads catalogs through parameters; the
//! DDL (publications) is built with quoted identifiers only.

/// The facts preflight needs, as the session's own role. Every row counted here is visible to
/// any role (`pg_replication_slots`; `pg_stat_replication`, whose rows come from the WAL senders
/// themselves — `pg_stat_activity.backend_type` is hidden from roles without
/// `pg_read_all_stats`); `pg_stat_ssl` and `pg_settings` are readable by all.
pub(crate) const FACTS: &str = "\
SELECT current_setting('server_version_num')::int4 AS server_version_num,
       current_setting('server_version') AS server_version,
       current_setting('wal_level') AS wal_level,
       r.rolsuper AS is_superuser,
       r.rolreplication OR EXISTS (
           SELECT 1 FROM pg_roles g
           WHERE g.rolname = 'rds_replication' AND pg_has_role(r.oid, g.oid, 'MEMBER')
       ) AS may_replicate,
       pg_has_role(r.oid, 'pg_monitor', 'MEMBER') AS may_monitor,
       current_setting('max_replication_slots')::int8 AS max_replication_slots,
       (SELECT count(*) FROM pg_replication_slots) AS replication_slots_used,
       current_setting('max_wal_senders')::int8 AS max_wal_senders,
       (SELECT count(*) FROM pg_stat_replication) AS wal_senders_used,
       coalesce((SELECT setting::int8 FROM pg_settings WHERE name = 'max_slot_wal_keep_size'), -1)
           AS max_slot_wal_keep_size_mb,
       (SELECT CASE WHEN ssl THEN version || ' ' || cipher END FROM pg_stat_ssl WHERE pid = pg_backend_pid())
           AS tls
FROM pg_roles r WHERE r.rolname = current_user";

/// The user tables (system schemas, partitions and other relation kinds left out), each flagged
/// with whether publication `$1` publishes it: named in it (`pg_publication_rel`, where a
/// partitioned table is listed as itself), or published through `FOR ALL TABLES` or a schema
/// (`pg_publication_tables`). Sorted by bytes, as `TableName` sorts.
pub(crate) const TABLES: &str = "\
SELECT n.nspname::text AS schema_name,
       c.relname::text AS table_name,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_primary_key,
       c.relreplident::text AS replica_identity,
       EXISTS (
           SELECT 1 FROM pg_publication p
           WHERE p.pubname = $1 AND (
               p.puballtables
               OR EXISTS (SELECT 1 FROM pg_publication_rel pr WHERE pr.prpubid = p.oid AND pr.prrelid = c.oid)
               OR EXISTS (
                   SELECT 1 FROM pg_publication_tables pt
                   WHERE pt.pubname = p.pubname AND pt.schemaname = n.nspname AND pt.tablename = c.relname
               )
           )
       ) AS in_publication,
       c.reltuples::float8 AS estimated_rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname::text COLLATE \"C\", c.relname::text COLLATE \"C\"";

/// Publication `$1`: whether it publishes all tables (no row: it does not exist).
pub(crate) const PUBLICATION: &str = "SELECT puballtables FROM pg_publication WHERE pubname = $1";

/// Which of the tables `($1[i], $2[i])` do not exist as tables the session can see.
pub(crate) const MISSING_TABLES: &str = "\
SELECT i.schema_name, i.table_name
FROM unnest($1::text[], $2::text[]) AS i (schema_name, table_name)
WHERE NOT EXISTS (
    SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = i.schema_name AND c.relname = i.table_name AND c.relkind IN ('r', 'p')
)
ORDER BY 1, 2";

/// Slot `$1` in any database, to tell "ours" from "a namesake we must not touch".
pub(crate) const SLOT_KIND: &str = "\
SELECT slot_type::text AS slot_type, database::text AS database_name, current_database()::text AS current_database
FROM pg_replication_slots WHERE slot_name = $1";

/// Slot `$1` of this database as it is now, positions as byte offsets; the retained WAL is
/// measured from where the server is now (its replay position on a standby).
pub(crate) const SLOT: &str = "\
SELECT active, active_pid, plugin::text AS plugin,
       pg_wal_lsn_diff(restart_lsn, '0/0')::int8 AS restart_lsn,
       pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::int8 AS confirmed_flush_lsn,
       wal_status,
       pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
           restart_lsn
       )::int8 AS retained_bytes
FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()";

/// Creates logical slot `$1` with `pgoutput`.
pub(crate) const CREATE_SLOT: &str = "SELECT slot_name::text FROM pg_create_logical_replication_slot($1, 'pgoutput')";

/// Drops slot `$1`.
pub(crate) const DROP_SLOT: &str = "SELECT pg_drop_replication_slot($1)";

/// Disconnects the consumer with WAL sender pid `$1`.
pub(crate) const TERMINATE: &str = "SELECT pg_terminate_backend($1)";
