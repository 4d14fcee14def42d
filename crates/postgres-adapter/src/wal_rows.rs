//! How WAL samples are laid out in `wal_monitor` and `wal_metrics`: byte counts as BIGINT, the
//! slots as a JSONB array, and the conversions back to domain values.

use diesel::pg::Pg;
use diesel::prelude::*;
use rosetta_domain::{Lsn, SlotSample, SourceId, SourceWalState, Timestamp, WalMonitorStatus, WalSample};
use rosetta_ports::wal::WalHistoryEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CorruptRow, StoredRow};
use crate::schema::{wal_metrics, wal_monitor};

/// A byte count or LSN as BIGINT.
///
/// Values above `i64::MAX` (8 EiB) cannot come from a real server — a primary writing 1 GB/s
/// needs 292 years to reach that LSN — so they are clamped instead of failing the whole batch
/// of other sources' outcomes over one absurd answer. Values in range are stored exactly.
pub(crate) fn to_bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A BIGINT byte count read back; negative values are corrupt (the adapter never writes them).
fn from_bigint(row: StoredRow, column: &'static str, value: i64) -> Result<u64, CorruptRow> {
    u64::try_from(value).map_err(|_| row.invalid(column, "is negative"))
}

/// One slot in the `slots` JSONB array. LSNs and byte counts are JSON numbers, so they keep
/// their full `u64` range (jsonb numbers are arbitrary precision).
#[derive(Debug, Serialize, Deserialize)]
struct SlotJson {
    slot_name: String,
    slot_type: String,
    active: bool,
    temporary: bool,
    restart_lsn: Option<u64>,
    confirmed_flush_lsn: Option<u64>,
    wal_status: Option<String>,
    safe_wal_size_bytes: Option<i64>,
    conflicting: Option<bool>,
    inactive_since: Option<Timestamp>,
    /// 17+; absent from rows written before it was recorded.
    #[serde(default)]
    synced: Option<bool>,
    /// 17+; absent from rows written before it was recorded.
    #[serde(default)]
    invalidation_reason: Option<String>,
    /// Derived (`current − restart_lsn`), stored for SQL readers and dashboards; recomputed
    /// from the sample when read back, so it is never trusted over the LSNs.
    #[serde(default, skip_deserializing)]
    retained_bytes: Option<u64>,
    /// Derived (`current − confirmed_flush_lsn`, logical slots), as `retained_bytes`.
    #[serde(default, skip_deserializing)]
    confirmed_lag_bytes: Option<u64>,
}

impl SlotJson {
    fn new(slot: &SlotSample, current: Lsn) -> Self {
        Self {
            slot_name: slot.slot_name.clone(),
            slot_type: slot.slot_type.as_str().to_owned(),
            active: slot.active,
            temporary: slot.temporary,
            restart_lsn: slot.restart_lsn.map(Lsn::bytes),
            confirmed_flush_lsn: slot.confirmed_flush_lsn.map(Lsn::bytes),
            wal_status: slot.wal_status.map(|status| status.as_str().to_owned()),
            safe_wal_size_bytes: slot.safe_wal_size_bytes,
            conflicting: slot.conflicting,
            inactive_since: slot.inactive_since,
            synced: slot.synced,
            invalidation_reason: slot.invalidation_reason.clone(),
            retained_bytes: slot.retained_bytes(current),
            confirmed_lag_bytes: slot.confirmed_lag_bytes(current),
        }
    }

    fn into_domain(self, row: StoredRow) -> Result<SlotSample, CorruptRow> {
        Ok(SlotSample {
            slot_name: self.slot_name,
            slot_type: row.field("slots", self.slot_type.parse())?,
            active: self.active,
            temporary: self.temporary,
            restart_lsn: self.restart_lsn.map(Lsn::from_bytes),
            confirmed_flush_lsn: self.confirmed_flush_lsn.map(Lsn::from_bytes),
            wal_status: self.wal_status.map(|status| row.field("slots", status.parse())).transpose()?,
            safe_wal_size_bytes: self.safe_wal_size_bytes,
            conflicting: self.conflicting,
            inactive_since: self.inactive_since,
            synced: self.synced,
            invalidation_reason: self.invalidation_reason,
        })
    }
}

/// A sample as the columns shared by `wal_monitor` and `wal_metrics`.
#[derive(Debug)]
pub(crate) struct SampleColumns {
    pub(crate) sampled_at: Timestamp,
    pub(crate) in_recovery: bool,
    pub(crate) current_lsn: i64,
    pub(crate) wal_dir_bytes: Option<i64>,
    pub(crate) size_bytes: Option<i64>,
    pub(crate) slots: Value,
}

impl SampleColumns {
    /// The columns of `sample`. Errors only if serde_json cannot serialise plain strings and
    /// numbers, which it always can; reported rather than assumed.
    pub(crate) fn new(sample: &WalSample) -> Result<Self, serde_json::Error> {
        let slots: Vec<SlotJson> = sample.slots.iter().map(|slot| SlotJson::new(slot, sample.current_lsn)).collect();
        Ok(Self {
            sampled_at: sample.sampled_at,
            in_recovery: sample.in_recovery,
            current_lsn: to_bigint(sample.current_lsn.bytes()),
            wal_dir_bytes: sample.wal_dir_bytes.map(to_bigint),
            size_bytes: sample.size_bytes().map(to_bigint),
            slots: serde_json::to_value(slots)?,
        })
    }
}

/// The nullable sample columns of a stored row, turned back into a sample: `None` when no
/// sample is stored (`sampled_at` NULL), corrupt when only part of one is.
fn decode_sample(
    row: StoredRow,
    sampled_at: Option<Timestamp>,
    in_recovery: Option<bool>,
    current_lsn: Option<i64>,
    wal_dir_bytes: Option<i64>,
    slots: Option<Value>,
) -> Result<Option<WalSample>, CorruptRow> {
    let Some(sampled_at) = sampled_at else {
        return Ok(None);
    };
    let missing = |column| row.invalid(column, "is NULL in a stored sample");
    let in_recovery = in_recovery.ok_or_else(|| missing("in_recovery"))?;
    let current_lsn = from_bigint(row, "current_lsn", current_lsn.ok_or_else(|| missing("current_lsn"))?)?;
    let wal_dir_bytes = wal_dir_bytes.map(|bytes| from_bigint(row, "wal_dir_bytes", bytes)).transpose()?;
    let slots = serde_json::from_value::<Vec<SlotJson>>(slots.ok_or_else(|| missing("slots"))?)
        .map_err(|e| row.invalid("slots", format!("is not a slot array: {e}")))?
        .into_iter()
        .map(|slot| slot.into_domain(row))
        .collect::<Result<_, _>>()?;
    Ok(Some(WalSample { sampled_at, in_recovery, current_lsn: Lsn::from_bytes(current_lsn), wal_dir_bytes, slots }))
}

/// A `wal_monitor` row as read back (coordination columns left out).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = wal_monitor, check_for_backend(Pg))]
pub(crate) struct StateRow {
    source_id: i64,
    status: Option<String>,
    sampled_at: Option<Timestamp>,
    in_recovery: Option<bool>,
    current_lsn: Option<i64>,
    wal_dir_bytes: Option<i64>,
    slots: Option<Value>,
    error: Option<String>,
    last_attempt_at: Option<Timestamp>,
}

impl StateRow {
    /// The latest state; `None` while no attempt was recorded (status NULL).
    pub(crate) fn into_domain(self) -> Result<Option<SourceWalState>, CorruptRow> {
        let row = StoredRow::new("wal_monitor", self.source_id);
        let Some(status) = self.status else {
            return Ok(None);
        };
        Ok(Some(SourceWalState {
            source_id: SourceId::new(self.source_id),
            status: row.field("status", status.parse::<WalMonitorStatus>())?,
            last_sample: decode_sample(
                row,
                self.sampled_at,
                self.in_recovery,
                self.current_lsn,
                self.wal_dir_bytes,
                self.slots,
            )?,
            error: self.error,
            last_attempt_at: self.last_attempt_at,
        }))
    }
}

/// A `wal_metrics` row as read back.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = wal_metrics, check_for_backend(Pg))]
pub(crate) struct HistoryRow {
    id: i64,
    source_id: i64,
    recorded_at: Timestamp,
    status: String,
    sampled_at: Option<Timestamp>,
    in_recovery: Option<bool>,
    current_lsn: Option<i64>,
    wal_dir_bytes: Option<i64>,
    slots: Option<Value>,
    error: Option<String>,
}

impl HistoryRow {
    /// The history entry; a success row must hold its sample.
    pub(crate) fn into_domain(self) -> Result<WalHistoryEntry, CorruptRow> {
        let row = StoredRow::new("wal_metrics", self.id);
        let status = row.field("status", self.status.parse::<WalMonitorStatus>())?;
        let sample =
            decode_sample(row, self.sampled_at, self.in_recovery, self.current_lsn, self.wal_dir_bytes, self.slots)?;
        if status != WalMonitorStatus::Error && sample.is_none() {
            return Err(row.invalid("sampled_at", "is NULL in a successful attempt"));
        }
        Ok(WalHistoryEntry {
            source_id: SourceId::new(self.source_id),
            recorded_at: self.recorded_at,
            status,
            sample,
            error: self.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use rosetta_domain::{SlotType, WalStatus};

    use super::*;

    fn sample() -> WalSample {
        WalSample {
            sampled_at: Timestamp::default(),
            in_recovery: false,
            current_lsn: Lsn::from_bytes(5_000),
            wal_dir_bytes: Some(u64::MAX),
            slots: vec![SlotSample {
                slot_name: "cdc".into(),
                slot_type: SlotType::Logical,
                active: false,
                temporary: false,
                restart_lsn: Some(Lsn::from_bytes(1_000)),
                confirmed_flush_lsn: Some(Lsn::from_bytes(u64::MAX)),
                wal_status: Some(WalStatus::Extended),
                safe_wal_size_bytes: Some(-5),
                conflicting: Some(false),
                inactive_since: Some(Timestamp::default()),
                synced: None,
                invalidation_reason: None,
            }],
        }
    }

    #[test]
    fn slots_round_trip_with_derived_fields_for_sql_readers() {
        let sample = sample();
        let columns = SampleColumns::new(&sample).unwrap();
        assert_eq!(columns.slots[0]["retained_bytes"], 4_000);
        assert_eq!(columns.slots[0]["confirmed_flush_lsn"], u64::MAX, "JSON keeps the full u64 range");
        assert_eq!(columns.wal_dir_bytes, Some(i64::MAX), "BIGINT clamps what cannot happen");
        assert_eq!(columns.size_bytes, Some(4_000));
        let row = StoredRow::new("wal_metrics", 1);
        let back = decode_sample(
            row,
            Some(columns.sampled_at),
            Some(columns.in_recovery),
            Some(columns.current_lsn),
            Some(7),
            Some(columns.slots),
        )
        .unwrap()
        .unwrap();
        assert_eq!(back.slots, sample.slots);
        assert_eq!(back.wal_dir_bytes, Some(7));
    }

    #[test]
    fn unreadable_samples_are_corrupt_not_panics() {
        let row = StoredRow::new("wal_metrics", 1);
        let now = Some(Timestamp::default());
        assert!(decode_sample(row, now, Some(false), Some(-1), None, Some(Value::Array(vec![]))).is_err());
        assert!(decode_sample(row, now, Some(false), Some(1), None, Some(Value::Bool(true))).is_err());
        assert!(decode_sample(row, now, None, Some(1), None, Some(Value::Array(vec![]))).is_err());
        let bad_type =
            serde_json::json!([{"slot_name": "s", "slot_type": "weird", "active": true, "temporary": false}]);
        assert!(decode_sample(row, now, Some(false), Some(1), None, Some(bad_type)).is_err());
        let minimal =
            serde_json::json!([{"slot_name": "s", "slot_type": "physical", "active": true, "temporary": false}]);
        let decoded = decode_sample(row, now, Some(false), Some(1), None, Some(minimal)).unwrap().unwrap();
        assert_eq!(decoded.slots[0].restart_lsn, None, "missing optional fields read as absent");
        assert_eq!(decode_sample(row, None, None, None, None, None).unwrap(), None);
    }
}
