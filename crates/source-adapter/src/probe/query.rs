//! The SQL the probe runs and how its rows become a [`WalSample`].
//!
//! One statement per tick returns the position, the WAL on disk (when readable) and one row
//! per slot (or a single row with NULL slot columns when there is none), so a tick costs one
//! round trip. Its text depends on the server version and the role's privileges, both decided
//! once per connection.

use rosetta_domain::{Lsn, SlotSample, SlotType, Timestamp, WalSample, WalStatus};
use tokio_postgres::Row;

/// Oldest server the probe supports: `pg_current_wal_lsn()` and friends are named so from 10.
pub(crate) const MIN_SERVER_VERSION: i32 = 100_000;

/// Asked once per connection: which SQL variant to prepare.
///
/// `has_function_privilege` rather than trying `pg_ls_waldir()`: a failed call would be an
/// error to handle, and the answer (superuser, `pg_monitor`, or an explicit GRANT) is exactly
/// what decides whether the call may run.
pub(crate) const SETUP_SQL: &str = "SELECT current_setting('server_version_num')::int4 AS server_version_num, \
     has_function_privilege('pg_ls_waldir()', 'EXECUTE') AS reads_wal_dir";

/// The per-tick statement for a server of `server_version_num` and a role that may (or may
/// not) call `pg_ls_waldir()`.
///
/// * The current position comes from `pg_current_wal_lsn()` on a primary, and from the receive
///   (else replay) position on a standby, where `pg_current_wal_lsn()` raises "recovery is in
///   progress". `pg_is_in_recovery()` is read once so both columns agree.
/// * Slots: every physical slot of the cluster and the logical slots of the connected database
///   (logical slots of other databases belong to other sources).
/// * LSNs travel as `int8` byte positions (`lsn - '0/0'`), so no text parsing is needed.
/// * `safe_wal_size` is masked when `restart_lsn` is NULL: PostgreSQL 15 reports a large
///   negative value for never-reserved slots that means nothing.
/// * Columns missing from older servers are typed NULLs so every variant has the same shape.
pub(crate) fn tick_sql(server_version_num: i32, reads_wal_dir: bool) -> String {
    let (wal_status, safe_wal_size) = if server_version_num >= 130_000 {
        ("s.wal_status", "CASE WHEN s.restart_lsn IS NOT NULL THEN s.safe_wal_size END")
    } else {
        ("NULL::text", "NULL::int8")
    };
    let conflicting = if server_version_num >= 160_000 { "s.conflicting" } else { "NULL::bool" };
    let (inactive_since, synced, invalidation_reason) = if server_version_num >= 170_000 {
        ("s.inactive_since", "s.synced", "s.invalidation_reason")
    } else {
        ("NULL::timestamptz", "NULL::bool", "NULL::text")
    };
    // An uncorrelated sub-select in the one-row CTE: evaluated once per tick, not per slot.
    let wal_dir_bytes =
        if reads_wal_dir { "(SELECT coalesce(sum(size), 0)::int8 FROM pg_ls_waldir())" } else { "NULL::int8" };
    format!(
        "WITH recovery AS (SELECT pg_is_in_recovery() AS in_recovery), \
         cur AS ( \
           SELECT r.in_recovery, \
                  CASE WHEN r.in_recovery \
                       THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) \
                       ELSE pg_current_wal_lsn() END AS lsn, \
                  {wal_dir_bytes} AS wal_dir_bytes \
           FROM recovery r \
         ) \
         SELECT cur.in_recovery, \
                (cur.lsn - '0/0')::int8 AS current_lsn, \
                cur.wal_dir_bytes, \
                s.slot_name::text AS slot_name, \
                s.slot_type, \
                s.active, \
                s.temporary, \
                (s.restart_lsn - '0/0')::int8 AS restart_lsn, \
                (s.confirmed_flush_lsn - '0/0')::int8 AS confirmed_flush_lsn, \
                {wal_status} AS wal_status, \
                {safe_wal_size} AS safe_wal_size, \
                {conflicting} AS conflicting, \
                {inactive_since} AS inactive_since, \
                {synced} AS synced, \
                {invalidation_reason} AS invalidation_reason \
         FROM cur \
         LEFT JOIN pg_replication_slots s \
           ON s.slot_type = 'physical' OR s.database = current_database() \
         ORDER BY s.slot_name"
    )
}

/// Builds the sample from the tick statement's rows. Errors are texts for
/// `ProbeError::Query`.
pub(crate) fn sample_from_rows(rows: &[Row], sampled_at: Timestamp) -> Result<WalSample, String> {
    let first = rows.first().ok_or("the monitoring query returned no row")?;
    let in_recovery: bool = column(first, "in_recovery")?;
    let current_lsn = lsn(column(first, "current_lsn")?)
        .ok_or("the server reported no current WAL position (a standby that has received and replayed nothing?)")?;
    // A sum of file sizes is never negative; if it were, reporting it would be a guess.
    let wal_dir_bytes = column::<Option<i64>>(first, "wal_dir_bytes")?.and_then(|bytes| u64::try_from(bytes).ok());

    let mut slots = Vec::with_capacity(rows.len());
    for row in rows {
        // The LEFT JOIN yields one row with NULL slot columns when there is no slot.
        let Some(slot_name) = column::<Option<String>>(row, "slot_name")? else {
            continue;
        };
        let slot_type: SlotType = column::<String>(row, "slot_type")?
            .parse()
            .map_err(|_| format!("slot {slot_name:?} has an unknown slot_type"))?;
        let wal_status = match column::<Option<String>>(row, "wal_status")? {
            None => None,
            // A value a future server may add: report the slot without a status rather than
            // failing the whole source.
            Some(text) => text.parse::<WalStatus>().ok().or_else(|| {
                tracing::debug!(slot = %slot_name, wal_status = %text, "unknown wal_status; reported as none");
                None
            }),
        };
        slots.push(SlotSample {
            active: column(row, "active")?,
            temporary: column(row, "temporary")?,
            restart_lsn: lsn(column(row, "restart_lsn")?),
            confirmed_flush_lsn: lsn(column(row, "confirmed_flush_lsn")?),
            wal_status,
            safe_wal_size_bytes: column(row, "safe_wal_size")?,
            conflicting: column(row, "conflicting")?,
            inactive_since: column(row, "inactive_since")?,
            synced: column(row, "synced")?,
            invalidation_reason: column(row, "invalidation_reason")?,
            slot_name,
            slot_type,
        });
    }
    Ok(WalSample { sampled_at, in_recovery, current_lsn, wal_dir_bytes, slots })
}

/// A byte position read as `int8`. NULL stays `None` (a lost or never-reserved slot is never
/// "at 0"); a negative value cannot be an LSN and is treated as unknown too.
fn lsn(bytes: Option<i64>) -> Option<Lsn> {
    bytes.and_then(|b| u64::try_from(b).ok()).map(Lsn::from_bytes)
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, String> {
    row.try_get(name).map_err(|e| format!("reading column {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_follow_the_server_version() {
        let pg12 = tick_sql(120_000, false);
        assert!(pg12.contains("NULL::text AS wal_status") && pg12.contains("NULL::int8 AS safe_wal_size"));
        assert!(pg12.contains("NULL::bool AS conflicting") && pg12.contains("NULL::timestamptz AS inactive_since"));

        let pg15 = tick_sql(150_004, false);
        assert!(pg15.contains("s.wal_status AS wal_status"));
        assert!(pg15.contains("CASE WHEN s.restart_lsn IS NOT NULL THEN s.safe_wal_size END AS safe_wal_size"));
        assert!(pg15.contains("NULL::bool AS conflicting"));

        let pg16 = tick_sql(160_000, false);
        assert!(pg16.contains("s.conflicting AS conflicting") && pg16.contains("NULL::timestamptz AS inactive_since"));

        let pg17 = tick_sql(170_002, false);
        assert!(pg17.contains("s.conflicting AS conflicting") && pg17.contains("s.inactive_since AS inactive_since"));
        assert!(pg17.contains("s.synced AS synced") && pg16.contains("NULL::bool AS synced"));
    }

    #[test]
    fn wal_dir_is_summed_only_when_readable() {
        assert!(tick_sql(150_000, true).contains("FROM pg_ls_waldir()"));
        let without = tick_sql(150_000, false);
        assert!(!without.contains("pg_ls_waldir") && without.contains("NULL::int8 AS wal_dir_bytes"));
    }

    #[test]
    fn null_or_negative_positions_are_unknown_not_zero() {
        assert_eq!(lsn(None), None);
        assert_eq!(lsn(Some(-1)), None);
        assert_eq!(lsn(Some(0x16B_3748)), Some(Lsn::from_bytes(0x16B_3748)));
    }
}
