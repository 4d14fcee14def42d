//! [`PostgresWalMetricsRepository`]: WAL samples and the latest state per source.
//!
//! Which process samples which source is decided by the `wal_sampling` queue of `leases` (one
//! item per source, created and removed with it by triggers; see `crate::lease`). Recording a
//! batch completes those leases and writes the samples in one transaction, so only the outcomes
//! whose lease the recorder still holds are written.
//!
//! Lock order, to stay deadlock-free next to `SourceRepository::delete` (which locks the
//! `sources` row, then cascades into `wal_monitor`, `wal_metrics` and `leases`): whoever needs
//! both takes the `sources` row first. Recordings therefore lock the sources `FOR KEY SHARE` —
//! what the foreign keys take anyway — before touching rows that reference them.

use async_trait::async_trait;

use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use rosetta_domain::{ChartHistory, ChartWindow, SampledBucket, SlotBucket, SourceId, SourceWalState, Timestamp};
use rosetta_ports::EntityKind;
use rosetta_ports::jobs::{LeaseOwner, Next, Queue};
use rosetta_ports::outbound::RepositoryError;
use rosetta_ports::wal::{SampleOutcome, WalHistoryEntry, WalHistoryQuery, WalMetricsRepository};
use serde_json::Value;

use crate::error::{Failure, StoredRow, not_found};
use crate::lease::{ASYNC_COMMIT, complete_in};
use crate::schema::{sources, wal_metrics, wal_monitor};
use crate::store::PostgresStore;
use crate::wal_rows::{HistoryRow, SampleColumns, StateRow, to_bigint};

/// Locks the outcomes' sources (`$1`) against deletion until commit, in id order (see the
/// module's lock order). Deleted sources are simply not returned.
const LOCK_SOURCES: &str = "SELECT id FROM sources WHERE id = ANY($1) ORDER BY id FOR KEY SHARE";

/// Stores a batch of outcomes in one statement: `$1`–`$10` are parallel arrays (one element
/// per outcome), `$11` the sources whose lease the recorder completed (the others' outcomes are
/// not its to record), `$12`–`$14` parallel arrays of the samples' slots (the outcome's
/// 1-based position, the slot, what it retained) for `wal_slot_metrics`.
///
/// * `latest` keeps one outcome per source (the latest attempt; the later one in the batch on
///   a tie), so a batch with a source twice still updates its row once.
/// * `updated` writes the state of the completed sources. A failure (`sampled_at` NULL) keeps
///   the last good sample columns.
/// * History rows are written only for the sources `updated` returned, in batch order.
const RECORD_OUTCOMES: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::bool[],
                         $6::int8[], $7::int8[], $8::int8[], $9::jsonb[], $10::text[])
        WITH ORDINALITY AS i (source_id, attempted_at, status, sampled_at, in_recovery, current_lsn,
                              wal_dir_bytes, size_bytes, slots, error, ord)
), latest AS (
    SELECT DISTINCT ON (source_id) * FROM input ORDER BY source_id, attempted_at DESC, ord DESC
), updated AS (
    UPDATE wal_monitor w SET
        status = l.status,
        sampled_at = CASE WHEN l.sampled_at IS NULL THEN w.sampled_at ELSE l.sampled_at END,
        in_recovery = CASE WHEN l.sampled_at IS NULL THEN w.in_recovery ELSE l.in_recovery END,
        current_lsn = CASE WHEN l.sampled_at IS NULL THEN w.current_lsn ELSE l.current_lsn END,
        wal_dir_bytes = CASE WHEN l.sampled_at IS NULL THEN w.wal_dir_bytes ELSE l.wal_dir_bytes END,
        size_bytes = CASE WHEN l.sampled_at IS NULL THEN w.size_bytes ELSE l.size_bytes END,
        slots = CASE WHEN l.sampled_at IS NULL THEN w.slots ELSE l.slots END,
        error = l.error,
        last_attempt_at = l.attempted_at,
        updated_at = now()
    FROM latest l
    WHERE w.source_id = l.source_id AND l.source_id = ANY($11)
    RETURNING w.source_id
), slot_history AS (
    INSERT INTO wal_slot_metrics (source_id, recorded_at, slot_name, retained_bytes)
    SELECT i.source_id, i.attempted_at, s.slot_name, s.retained_bytes
    FROM unnest($12::int8[], $13::text[], $14::int8[]) AS s (ord, slot_name, retained_bytes)
    JOIN input i ON i.ord = s.ord
    WHERE i.source_id IN (SELECT source_id FROM updated)
)
INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn,
                         wal_dir_bytes, size_bytes, slots, error)
SELECT i.source_id, i.attempted_at, i.status, i.sampled_at, i.in_recovery, i.current_lsn,
       i.wal_dir_bytes, i.size_bytes, i.slots, i.error
FROM input i JOIN updated u ON u.source_id = i.source_id
ORDER BY i.ord
RETURNING source_id";

/// Deletes at most `$2` history rows recorded before `$1`, oldest first.
///
/// The ids are collected into an array so the delete itself is a primary-key lookup (a plain
/// `id IN (subquery)` is planned as a hash semi-join over the whole table). SKIP LOCKED lets
/// several processes apply retention at once without waiting for each other's batches.
///
/// The slots of the deleted rows go with them: every `wal_slot_metrics` row before `$1` and
/// not after the newest deleted row (rows of one instant are written together).
const DELETE_HISTORY_BEFORE: &str = "\
WITH doomed AS (
    DELETE FROM wal_metrics WHERE id = ANY(ARRAY(
        SELECT id FROM wal_metrics WHERE recorded_at < $1
        ORDER BY recorded_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING recorded_at
), slots AS (
    DELETE FROM wal_slot_metrics
    WHERE recorded_at < $1 AND recorded_at <= (SELECT max(recorded_at) FROM doomed)
)
SELECT count(*) AS count FROM doomed";

/// One source's history in a window, aggregated per bucket (`$1` source, `$2`/`$3` from/to,
/// `$4` buckets, `$5` the span in seconds): a `source` row when the source exists, a `sample`
/// row per bucket with attempts, a `slot` row per slot and bucket. The bucket is
/// `ChartWindow::bucket_of`'s formula, in float8 (`date_part`; `extract` computes in numeric,
/// which made the statement twice as slow). Both scans are range scans of one index each.
const CHART_HISTORY: &str = "\
WITH samples AS (
    SELECT LEAST(floor(date_part('epoch', recorded_at - $2) * $4 / $5)::int4, $4 - 1) AS bucket,
           count(*) FILTER (WHERE status <> 'ERROR') AS succeeded,
           count(*) FILTER (WHERE status = 'ERROR') AS failed,
           max(wal_dir_bytes) AS bytes
    FROM wal_metrics
    WHERE source_id = $1 AND recorded_at >= $2 AND recorded_at <= $3
    GROUP BY 1
), slots AS (
    SELECT LEAST(floor(date_part('epoch', recorded_at - $2) * $4 / $5)::int4, $4 - 1) AS bucket,
           slot_name, max(retained_bytes) AS bytes
    FROM wal_slot_metrics
    WHERE source_id = $1 AND recorded_at >= $2 AND recorded_at <= $3
    GROUP BY 1, 2
)
SELECT 'source' AS kind, NULL::int4 AS bucket, NULL::text AS slot_name, NULL::int8 AS succeeded,
       NULL::int8 AS failed, NULL::int8 AS bytes
FROM sources WHERE id = $1
UNION ALL
SELECT 'sample', bucket, NULL, succeeded, failed, bytes FROM samples
UNION ALL
SELECT 'slot', bucket, slot_name, NULL, NULL, bytes FROM slots";

/// A row of [`CHART_HISTORY`].
#[derive(Debug, QueryableByName)]
struct ChartRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Integer>)]
    bucket: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    slot_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    succeeded: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    failed: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    bytes: Option<i64>,
}

/// A count.
#[derive(Debug, QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// A recorded source id.
#[derive(Debug, QueryableByName)]
struct RecordedRow {
    #[diesel(sql_type = BigInt)]
    source_id: i64,
}

/// A batch of outcomes as the parallel arrays [`RECORD_OUTCOMES`] unnests.
#[derive(Debug, Default)]
struct OutcomeArrays {
    source_id: Vec<i64>,
    attempted_at: Vec<Timestamp>,
    status: Vec<&'static str>,
    sampled_at: Vec<Option<Timestamp>>,
    in_recovery: Vec<Option<bool>>,
    current_lsn: Vec<Option<i64>>,
    wal_dir_bytes: Vec<Option<i64>>,
    size_bytes: Vec<Option<i64>>,
    slots: Vec<Option<Value>>,
    error: Vec<Option<String>>,
    slot_outcome: Vec<i64>,
    slot_name: Vec<String>,
    slot_retained_bytes: Vec<Option<i64>>,
}

impl OutcomeArrays {
    fn new(outcomes: Vec<SampleOutcome>) -> Result<Self, serde_json::Error> {
        let mut arrays = Self::default();
        for (position, outcome) in (1..).zip(outcomes) {
            arrays.source_id.push(outcome.source_id.get());
            arrays.attempted_at.push(outcome.attempted_at);
            match outcome.result {
                Ok(sample) => {
                    let columns = SampleColumns::new(&sample)?;
                    for slot in &sample.slots {
                        arrays.slot_outcome.push(position);
                        arrays.slot_name.push(slot.slot_name.clone());
                        arrays.slot_retained_bytes.push(slot.retained_bytes(sample.current_lsn).map(to_bigint));
                    }
                    arrays.status.push(sample.status().as_str());
                    arrays.sampled_at.push(Some(columns.sampled_at));
                    arrays.in_recovery.push(Some(columns.in_recovery));
                    arrays.current_lsn.push(Some(columns.current_lsn));
                    arrays.wal_dir_bytes.push(columns.wal_dir_bytes);
                    arrays.size_bytes.push(columns.size_bytes);
                    arrays.slots.push(Some(columns.slots));
                    arrays.error.push(None);
                }
                Err(error) => {
                    arrays.status.push(rosetta_domain::WalMonitorStatus::Error.as_str());
                    arrays.sampled_at.push(None);
                    arrays.in_recovery.push(None);
                    arrays.current_lsn.push(None);
                    arrays.wal_dir_bytes.push(None);
                    arrays.size_bytes.push(None);
                    arrays.slots.push(None);
                    arrays.error.push(Some(error));
                }
            }
        }
        Ok(arrays)
    }
}

/// The history query for `query`: only the filters asked for, so the planner sees plain range
/// conditions it can match to `wal_metrics_source_recorded_at_idx` (with a source) or
/// `wal_metrics_recorded_at_idx` (without); the ORDER BY matches both indexes, so the scan
/// stops after `limit` rows without sorting.
pub(crate) fn history_query(
    query: &WalHistoryQuery,
) -> wal_metrics::BoxedQuery<'static, Pg, SqlTypeOf<AsSelect<HistoryRow, Pg>>> {
    let mut select = wal_metrics::table.select(HistoryRow::as_select()).into_boxed();
    if let Some(source_id) = query.source_id {
        select = select.filter(wal_metrics::source_id.eq(source_id.get()));
    }
    if let Some(from) = query.from {
        select = select.filter(wal_metrics::recorded_at.ge(from));
    }
    if let Some(to) = query.to {
        select = select.filter(wal_metrics::recorded_at.le(to));
    }
    select.order((wal_metrics::recorded_at.desc(), wal_metrics::id.desc())).limit(i64::from(query.limit.get()))
}

/// [`WalMetricsRepository`] over the metadata database (tables `wal_monitor`, `wal_metrics`).
#[derive(Debug, Clone)]
pub struct PostgresWalMetricsRepository {
    store: PostgresStore,
}

impl PostgresWalMetricsRepository {
    /// A repository over `store`.
    pub fn new(store: PostgresStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl WalMetricsRepository for PostgresWalMetricsRepository {
    async fn record_outcomes(
        &self,
        owner: &LeaseOwner,
        outcomes: Vec<SampleOutcome>,
        next_sample_at: Timestamp,
    ) -> Result<Vec<SourceId>, RepositoryError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let mut sources: Vec<i64> = outcomes.iter().map(|outcome| outcome.source_id.get()).collect();
        sources.sort_unstable();
        sources.dedup();
        let leases: Vec<(i64, Next)> = sources.iter().map(|id| (*id, Next::DueAt(next_sample_at))).collect();
        let arrays = OutcomeArrays::new(outcomes).map_err(|e| RepositoryError::Unexpected(Box::new(e)))?;
        let owner = owner.clone();
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                diesel::sql_query(ASYNC_COMMIT).execute(conn).await?;
                diesel::sql_query(LOCK_SOURCES).bind::<Array<BigInt>, _>(&sources).execute(conn).await?;
                let completed = complete_in(conn, Queue::WAL_SAMPLING, &owner, &leases).await?;
                if completed.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = diesel::sql_query(RECORD_OUTCOMES)
                    .bind::<Array<BigInt>, _>(&arrays.source_id)
                    .bind::<Array<Timestamptz>, _>(&arrays.attempted_at)
                    .bind::<Array<Text>, _>(&arrays.status)
                    .bind::<Array<Nullable<Timestamptz>>, _>(&arrays.sampled_at)
                    .bind::<Array<Nullable<Bool>>, _>(&arrays.in_recovery)
                    .bind::<Array<Nullable<BigInt>>, _>(&arrays.current_lsn)
                    .bind::<Array<Nullable<BigInt>>, _>(&arrays.wal_dir_bytes)
                    .bind::<Array<Nullable<BigInt>>, _>(&arrays.size_bytes)
                    .bind::<Array<Nullable<Jsonb>>, _>(&arrays.slots)
                    .bind::<Array<Nullable<Text>>, _>(&arrays.error)
                    .bind::<Array<BigInt>, _>(&completed)
                    .bind::<Array<BigInt>, _>(&arrays.slot_outcome)
                    .bind::<Array<Text>, _>(&arrays.slot_name)
                    .bind::<Array<Nullable<BigInt>>, _>(&arrays.slot_retained_bytes)
                    .load::<RecordedRow>(conn)
                    .await?;
                Ok(rows)
            })
            .await;
        let rows = self.store.settle(conn, result).await?;
        // One history row per outcome: the sources recorded, each once, in batch order.
        let mut recorded: Vec<SourceId> = Vec::new();
        for row in rows {
            let id = SourceId::new(row.source_id);
            if !recorded.contains(&id) {
                recorded.push(id);
            }
        }
        Ok(recorded)
    }

    async fn list_latest(&self) -> Result<Vec<SourceWalState>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = wal_monitor::table
            .filter(wal_monitor::status.is_not_null())
            .select(StateRow::as_select())
            .order(wal_monitor::source_id.asc())
            .load(&mut conn)
            .await;
        let rows = self.store.settle(conn, result.map_err(Failure::from)).await?;
        let mut states = Vec::with_capacity(rows.len());
        for row in rows {
            // The filter excludes rows without a status, so every row yields a state.
            states.extend(row.into_domain()?);
        }
        Ok(states)
    }

    async fn latest(&self, source_id: SourceId) -> Result<Option<SourceWalState>, RepositoryError> {
        let id = source_id.get();
        let mut conn = self.store.connection().await?;
        // One query answers both "does the source exist" and "what is its state".
        let result = sources::table
            .left_join(wal_monitor::table)
            .filter(sources::id.eq(id))
            .select(Option::<StateRow>::as_select())
            .first::<Option<StateRow>>(&mut conn)
            .await
            .optional()
            .map_err(Failure::from)
            .and_then(|row| row.ok_or_else(|| not_found(EntityKind::Source, id)));
        match self.store.settle(conn, result).await? {
            Some(row) => Ok(row.into_domain()?),
            None => Ok(None),
        }
    }

    async fn history(&self, query: WalHistoryQuery) -> Result<Vec<WalHistoryEntry>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = history_query(&query).load::<HistoryRow>(&mut conn).await;
        let rows = self.store.settle(conn, result.map_err(Failure::from)).await?;
        Ok(rows.into_iter().map(HistoryRow::into_domain).collect::<Result<_, _>>()?)
    }

    async fn delete_history_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepositoryError> {
        if batch == 0 {
            return Ok(0);
        }
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(DELETE_HISTORY_BEFORE)
            .bind::<Timestamptz, _>(cutoff)
            .bind::<BigInt, _>(i64::from(batch))
            .get_result::<CountRow>(&mut conn)
            .await;
        let deleted = self.store.settle(conn, result.map_err(Failure::from)).await?;
        Ok(u64::try_from(deleted.count).unwrap_or(0))
    }

    async fn chart_history(&self, source_id: SourceId, window: ChartWindow) -> Result<ChartHistory, RepositoryError> {
        let buckets = i32::try_from(window.buckets()).map_err(|e| RepositoryError::Unexpected(Box::new(e)))?;
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(CHART_HISTORY)
            .bind::<BigInt, _>(source_id.get())
            .bind::<Timestamptz, _>(window.from())
            .bind::<Timestamptz, _>(window.to())
            .bind::<Integer, _>(buckets)
            .bind::<Double, _>(window.span_seconds())
            .load::<ChartRow>(&mut conn)
            .await;
        let rows = self.store.settle(conn, result.map_err(Failure::from)).await?;
        chart_history(source_id, window, rows)
    }
}

/// The history of [`CHART_HISTORY`]'s rows; a row that breaks the window or the byte rules is
/// corrupt data, named by source.
fn chart_history(
    source_id: SourceId,
    window: ChartWindow,
    rows: Vec<ChartRow>,
) -> Result<ChartHistory, RepositoryError> {
    let corrupt = |problem: &str| {
        StoredRow::new("the chart history of source", source_id.get()).invalid("retained_bytes", problem)
    };
    let mut exists = false;
    let mut history = ChartHistory { window, samples: Vec::new(), slots: Vec::new() };
    for row in rows {
        let bucket = || row.bucket.and_then(|b| u32::try_from(b).ok()).filter(|b| *b < window.buckets());
        let bytes = row.bytes.map(|bytes| u64::try_from(bytes).map_err(|_| corrupt("negative bytes"))).transpose()?;
        match row.kind.as_str() {
            "source" => exists = true,
            "sample" => history.samples.push(SampledBucket {
                bucket: bucket().ok_or_else(|| corrupt("bucket outside the window"))?,
                succeeded: row.succeeded.and_then(|n| u32::try_from(n).ok()).unwrap_or(u32::MAX),
                failed: row.failed.and_then(|n| u32::try_from(n).ok()).unwrap_or(u32::MAX),
                wal_dir_bytes: bytes,
            }),
            _ => history.slots.push(SlotBucket {
                slot_name: row.slot_name.clone().ok_or_else(|| corrupt("slot without a name"))?,
                bucket: bucket().ok_or_else(|| corrupt("bucket outside the window"))?,
                retained_bytes: bytes,
            }),
        }
    }
    if !exists {
        return Err(RepositoryError::NotFound { entity: EntityKind::Source, id: source_id.get() });
    }
    Ok(history)
}

/// Plans of the statements above on a table large enough for the planner to prefer a
/// sequential scan if the indexes did not fit the queries. Here rather than in `tests/`
/// because it explains the exact statements the repository sends, which are crate-private.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use diesel::sql_types::Text;
    use diesel_async::AsyncPgConnection;
    use rosetta_domain::PageLimit;

    use super::*;
    use crate::explain::plan;

    fn day(n: i64) -> Timestamp {
        chrono::DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_000 + n)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn history_and_retention_use_the_indexes_at_200k_rows() {
        let server = rosetta_test_support::test_server();
        let template = server
            .template("postgres_adapter_unit", |url| async move { crate::run_migrations(&url).await.unwrap() })
            .await;
        let database = server.create_database(Some(&template)).await;
        let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
        // 200 sources × 1 000 five-minute ticks, 3.5 days per source.
        diesel::sql_query(
            "INSERT INTO sources (name, pg_host, pg_port, pg_database, pg_username, publication_name,
                                  replication_id, created_at, updated_at)
             SELECT 's' || g, 'db', 5432, 'orders', 'replicator', 'cdc_pub', 1, now(), now()
             FROM generate_series(1, 200) g",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query(
            "INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn,
                                      wal_dir_bytes, size_bytes, slots)
             SELECT s.id, $1 + g * interval '5 minutes', 'ACTIVE', $1 + g * interval '5 minutes', false,
                    g * 16384, 1 << 24, g * 8192, '[]'
             FROM sources s, generate_series(1, 1000) g",
        )
        .bind::<Timestamptz, _>(day(0))
        .execute(&mut conn)
        .await
        .unwrap();
        // Two slots per sample, as the recorder writes them.
        diesel::sql_query(
            "INSERT INTO wal_slot_metrics (source_id, recorded_at, slot_name, retained_bytes)
             SELECT m.source_id, m.recorded_at, 'slot_' || n, m.size_bytes * n
             FROM wal_metrics m, generate_series(1, 2) n",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query("VACUUM ANALYZE wal_metrics").execute(&mut conn).await.unwrap();
        diesel::sql_query("VACUUM ANALYZE wal_slot_metrics").execute(&mut conn).await.unwrap();
        let enable_seqscan = diesel::select(diesel::dsl::sql::<Text>("current_setting('enable_seqscan')"))
            .get_result::<String>(&mut conn)
            .await
            .unwrap();
        assert_eq!(enable_seqscan, "on", "the planner must be free to choose a sequential scan");

        let limit = PageLimit::new(100).unwrap();
        let source_range =
            WalHistoryQuery { source_id: Some(SourceId::new(50)), from: Some(day(1)), to: Some(day(2)), limit };
        let explained = plan(&mut conn, history_query(&source_range)).await;
        println!("source + range:\n{explained}");
        assert!(explained.contains("Index Scan using wal_metrics_source_recorded_at_idx"), "{explained}");
        assert!(!explained.contains("Seq Scan") && !explained.contains("Sort"), "{explained}");

        let source_only = WalHistoryQuery { source_id: Some(SourceId::new(50)), limit, ..Default::default() };
        let explained = plan(&mut conn, history_query(&source_only)).await;
        assert!(explained.contains("Index Scan using wal_metrics_source_recorded_at_idx"), "{explained}");
        assert!(!explained.contains("Sort"), "{explained}");

        let range_only = WalHistoryQuery { from: Some(day(1)), to: Some(day(2)), limit, ..Default::default() };
        let explained = plan(&mut conn, history_query(&range_only)).await;
        println!("range:\n{explained}");
        assert!(explained.contains("Index Scan Backward using wal_metrics_recorded_at_idx"), "{explained}");
        assert!(!explained.contains("Seq Scan") && !explained.contains("Sort"), "{explained}");

        let newest = WalHistoryQuery { limit, ..Default::default() };
        let explained = plan(&mut conn, history_query(&newest)).await;
        assert!(explained.contains("Index Scan Backward using wal_metrics_recorded_at_idx"), "{explained}");

        let retention =
            diesel::sql_query(DELETE_HISTORY_BEFORE).bind::<Timestamptz, _>(day(1)).bind::<BigInt, _>(5_000_i64);
        let explained = plan(&mut conn, retention).await;
        println!("retention:\n{explained}");
        assert!(explained.contains("wal_metrics_recorded_at_idx"), "{explained}");
        assert!(explained.contains("Index Scan using wal_metrics_pkey"), "{explained}");
        assert!(!explained.contains("Seq Scan"), "{explained}");

        // A chart of one source over its whole history is a range scan of one index per table.
        let chart = diesel::sql_query(CHART_HISTORY)
            .bind::<BigInt, _>(50_i64)
            .bind::<Timestamptz, _>(day(0))
            .bind::<Timestamptz, _>(day(4))
            .bind::<Integer, _>(800)
            .bind::<Double, _>(4.0 * 86_400.0);
        let explained = plan(&mut conn, chart).await;
        println!("chart:\n{explained}");
        assert!(explained.contains("Index Only Scan using wal_metrics_source_recorded_at_idx"), "{explained}");
        // Index-only or a bitmap over the same index, as the planner prices the heap pages.
        assert!(explained.contains("wal_slot_metrics_chart_idx"), "{explained}");
        assert!(!explained.contains("Seq Scan"), "{explained}");

        // And the repository itself returns that source's rows in the range, newest first.
        let store = PostgresStore::new(crate::StoreSettings {
            url: database.url().to_owned(),
            max_size: 2,
            connection_timeout: Duration::from_secs(10),
        })
        .unwrap();
        let rows = PostgresWalMetricsRepository::new(store).history(source_range).await.unwrap();
        assert_eq!(rows.len(), 100);
        assert!(rows.iter().all(|row| row.source_id == SourceId::new(50)));
        assert!(rows.windows(2).all(|pair| pair[0].recorded_at > pair[1].recorded_at));
        assert!(rows.iter().all(|row| (day(1)..=day(2)).contains(&row.recorded_at)));
    }
}
