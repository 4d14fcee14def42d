//! [`PostgresSystemMetricsRepository`]: host CPU / memory / swap samples in `system_metrics`.

use async_trait::async_trait;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::RunQueryDsl;
use rosetta_domain::{SystemSample, Timestamp};
use rosetta_ports::outbound::RepositoryError;
use rosetta_ports::wal::{SystemHistoryQuery, SystemMetricsRepository};

use crate::error::{CorruptRow, Failure, StoredRow};
use crate::schema::system_metrics;
use crate::store::PostgresStore;
use crate::wal_rows::to_bigint;

/// Deletes at most `$2` samples taken before `$1`, oldest first; shaped like the WAL history
/// retention (primary-key delete of an id array, SKIP LOCKED between processes).
const DELETE_BEFORE: &str = "\
DELETE FROM system_metrics WHERE id = ANY(ARRAY(
    SELECT id FROM system_metrics WHERE sampled_at < $1
    ORDER BY sampled_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
))";

/// A stored sample.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = system_metrics, check_for_backend(Pg))]
struct SystemRow {
    id: i64,
    sampled_at: Timestamp,
    cpu_percent: f64,
    memory_used_bytes: i64,
    memory_total_bytes: i64,
    swap_used_bytes: i64,
    swap_total_bytes: i64,
}

impl SystemRow {
    fn into_domain(self) -> Result<SystemSample, CorruptRow> {
        let row = StoredRow::new("system_metrics", self.id);
        let bytes = |column, value: i64| u64::try_from(value).map_err(|_| row.invalid(column, "is negative"));
        Ok(SystemSample {
            sampled_at: self.sampled_at,
            cpu_percent: self.cpu_percent,
            memory_used_bytes: bytes("memory_used_bytes", self.memory_used_bytes)?,
            memory_total_bytes: bytes("memory_total_bytes", self.memory_total_bytes)?,
            swap_used_bytes: bytes("swap_used_bytes", self.swap_used_bytes)?,
            swap_total_bytes: bytes("swap_total_bytes", self.swap_total_bytes)?,
        })
    }
}

/// The columns of a new sample (byte counts clamped to BIGINT; 8 EiB of RAM is not a thing).
#[derive(Insertable)]
#[diesel(table_name = system_metrics)]
struct NewSystemRow {
    sampled_at: Timestamp,
    cpu_percent: f64,
    memory_used_bytes: i64,
    memory_total_bytes: i64,
    swap_used_bytes: i64,
    swap_total_bytes: i64,
}

/// [`SystemMetricsRepository`] over the metadata database (table `system_metrics`).
#[derive(Debug, Clone)]
pub struct PostgresSystemMetricsRepository {
    store: PostgresStore,
}

impl PostgresSystemMetricsRepository {
    /// A repository over `store`.
    pub fn new(store: PostgresStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl SystemMetricsRepository for PostgresSystemMetricsRepository {
    async fn record(&self, sample: SystemSample) -> Result<(), RepositoryError> {
        let row = NewSystemRow {
            sampled_at: sample.sampled_at,
            cpu_percent: sample.cpu_percent,
            memory_used_bytes: to_bigint(sample.memory_used_bytes),
            memory_total_bytes: to_bigint(sample.memory_total_bytes),
            swap_used_bytes: to_bigint(sample.swap_used_bytes),
            swap_total_bytes: to_bigint(sample.swap_total_bytes),
        };
        let mut conn = self.store.connection().await?;
        let result = diesel::insert_into(system_metrics::table).values(row).execute(&mut conn).await;
        self.store.settle(conn, result.map(drop).map_err(Failure::from)).await
    }

    async fn history(&self, query: SystemHistoryQuery) -> Result<Vec<SystemSample>, RepositoryError> {
        // Only the filters asked for, so the range matches `system_metrics_sampled_at_idx`,
        // scanned backwards for newest first.
        let mut select = system_metrics::table.select(SystemRow::as_select()).into_boxed();
        if let Some(from) = query.from {
            select = select.filter(system_metrics::sampled_at.ge(from));
        }
        if let Some(to) = query.to {
            select = select.filter(system_metrics::sampled_at.le(to));
        }
        let select = select
            .order((system_metrics::sampled_at.desc(), system_metrics::id.desc()))
            .limit(i64::from(query.limit.get()));
        let mut conn = self.store.connection().await?;
        let result = select.load::<SystemRow>(&mut conn).await;
        let rows = self.store.settle(conn, result.map_err(Failure::from)).await?;
        Ok(rows.into_iter().map(SystemRow::into_domain).collect::<Result<_, _>>()?)
    }

    async fn delete_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepositoryError> {
        if batch == 0 {
            return Ok(0);
        }
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(DELETE_BEFORE)
            .bind::<Timestamptz, _>(cutoff)
            .bind::<BigInt, _>(i64::from(batch))
            .execute(&mut conn)
            .await;
        let deleted = self.store.settle(conn, result.map_err(Failure::from)).await?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }
}
