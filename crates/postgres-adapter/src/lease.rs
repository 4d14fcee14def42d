//! [`PostgresLeaseStore`]: the leases of every queue, in the `leases` table — the one claim,
//! renew, complete and release mechanism of all background work.
//!
//! A claim locks due, unleased rows with `FOR UPDATE SKIP LOCKED` and writes its owner and expiry
//! into them, so concurrent claimers skip (rather than queue behind) each other's rows and never
//! get the same item. Stores whose work must be recorded atomically with its lease's completion
//! (WAL samples) call [`complete_in`] inside their own transaction.
//!
//! Lock order, to stay deadlock-free next to deletes that cascade into `leases` (a source's
//! trigger): whoever needs both locks the owning row (`sources`) before the lease row.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rosetta_domain::Timestamp;
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use rosetta_ports::outbound::RepositoryError;

use crate::error::Failure;
use crate::store::PostgresStore;

/// Adds `$2` to queue `$1`, due at `$3` (NULL: now, stored as `-infinity`); an item already
/// queued is left alone.
const ENQUEUE: &str = "\
INSERT INTO leases (queue, item_id, due_at) VALUES ($1, $2, coalesce($3, '-infinity'))
ON CONFLICT (queue, item_id) DO NOTHING";

/// Moves item `$2` of queue `$1` to due time `$3` if it is scheduled later.
const EXPEDITE: &str = "UPDATE leases SET due_at = $3 WHERE queue = $1 AND item_id = $2 AND due_at > $3";

/// Leases up to `$3` claimable items of queue `$1` to `$4` until `$5`; `$2` is now.
///
/// `due` walks `leases_due_idx` in due order (one range: an item due now is due at
/// `-infinity`) and stops after the limit; it locks rows with SKIP LOCKED, so rows a
/// concurrent claim is taking are skipped instead of waited for; LIMIT counts locked rows only.
/// Under READ COMMITTED a row that another claim leased and committed after this statement's
/// snapshot is re-checked on its newest version and dropped (its lease is live). The locked ids
/// are collected into an array so the update is primary-key lookups (a join with the CTE is
/// planned as a scan of the whole queue). The final ORDER BY restores due order, which
/// UPDATE ... RETURNING does not keep.
const CLAIM: &str = "\
WITH due AS (
    SELECT item_id FROM leases
    WHERE queue = $1
      AND due_at <= $2
      AND (expires_at IS NULL OR expires_at <= $2)
    ORDER BY due_at, item_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE leases SET owner = $4, expires_at = $5
    WHERE queue = $1 AND item_id = ANY(ARRAY(SELECT item_id FROM due))
    RETURNING item_id, due_at
)
SELECT item_id FROM claimed ORDER BY due_at, item_id";

/// Extends `$2`'s leases of items `$3` of queue `$1` to `$4`.
const RENEW: &str = "\
UPDATE leases SET expires_at = $4
WHERE queue = $1 AND owner = $2 AND item_id = ANY($3)
RETURNING item_id";

/// Completes `$2`'s leased items `$3` of queue `$1`: due again at `$4` (the same position). A
/// row no longer leased to `$2` matches nothing.
///
/// One due time per statement (the caller groups items by it): joined with per-item input, the
/// planner, which expects an owner to hold almost no rows (most rows have none), nested a scan
/// of the input inside a scan of the queue, quadratic in the batch.
const RESCHEDULE: &str = "\
UPDATE leases SET due_at = $4, owner = NULL, expires_at = NULL
WHERE queue = $1 AND item_id = ANY($3) AND owner = $2
RETURNING item_id";

/// Removes `$2`'s leased items `$3` of queue `$1` (their work is done for good).
const REMOVE: &str = "\
DELETE FROM leases WHERE queue = $1 AND item_id = ANY($3) AND owner = $2
RETURNING item_id";

/// Run first in every transaction of lease bookkeeping (claims, renewals, completions, and the
/// samples recorded with theirs): its commit does not wait for the WAL flush. A crash then loses
/// at most the last fraction of a second of such commits, which only makes their items due again
/// — a lost claim matches no completion, a lost completion leaves a lease that expires — and a
/// busy queue does not wait for one disk flush per claim and per batch.
pub(crate) const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";

/// Releases every lease of `$1`.
const RELEASE_ALL: &str = "UPDATE leases SET owner = NULL, expires_at = NULL WHERE owner = $1";

/// An item id a statement returned.
#[derive(Debug, QueryableByName)]
struct ItemRow {
    #[diesel(sql_type = BigInt)]
    item_id: i64,
}

/// `now + lease`, saturating: an absurdly long lease means "never expires", not an error.
pub(crate) fn lease_expiry(now: Timestamp, lease: Duration) -> Timestamp {
    TimeDelta::from_std(lease).ok().and_then(|lease| now.checked_add_signed(lease)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Completes `owner`'s leased `items` of `queue` on `conn` (inside the caller's transaction when
/// the completion must commit with other writes); returns the items completed.
pub(crate) async fn complete_in(
    conn: &mut AsyncPgConnection,
    queue: Queue,
    owner: &LeaseOwner,
    items: &[(i64, Next)],
) -> Result<Vec<i64>, Failure> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // Items by what comes next for them: one statement per due time, one for those done.
    let mut groups: std::collections::BTreeMap<Option<Timestamp>, Vec<i64>> = std::collections::BTreeMap::new();
    for (id, next) in items {
        let due = match next {
            Next::DueAt(at) => Some(*at),
            Next::Done => None,
        };
        groups.entry(due).or_default().push(*id);
    }
    let mut rows = Vec::with_capacity(items.len());
    for (due, ids) in groups {
        let completed = match due {
            Some(at) => {
                diesel::sql_query(RESCHEDULE)
                    .bind::<Text, _>(queue.name())
                    .bind::<Text, _>(owner.as_str())
                    .bind::<Array<BigInt>, _>(&ids)
                    .bind::<Timestamptz, _>(at)
                    .load::<ItemRow>(conn)
                    .await?
            }
            None => {
                diesel::sql_query(REMOVE)
                    .bind::<Text, _>(queue.name())
                    .bind::<Text, _>(owner.as_str())
                    .bind::<Array<BigInt>, _>(&ids)
                    .load::<ItemRow>(conn)
                    .await?
            }
        };
        rows.extend(completed);
    }
    Ok(rows.into_iter().map(|row| row.item_id).collect())
}

/// [`LeaseStore`] over the metadata database.
#[derive(Debug, Clone)]
pub struct PostgresLeaseStore {
    store: PostgresStore,
}

impl PostgresLeaseStore {
    /// A lease store over `store`.
    pub fn new(store: PostgresStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl LeaseStore for PostgresLeaseStore {
    async fn enqueue(&self, queue: Queue, item: i64, due: Option<Timestamp>) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(ENQUEUE)
            .bind::<Text, _>(queue.name())
            .bind::<BigInt, _>(item)
            .bind::<Nullable<Timestamptz>, _>(due)
            .execute(&mut conn)
            .await;
        self.store.settle(conn, result.map(drop).map_err(Failure::from)).await
    }

    async fn expedite(&self, queue: Queue, item: i64, now: Timestamp) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(EXPEDITE)
            .bind::<Text, _>(queue.name())
            .bind::<BigInt, _>(item)
            .bind::<Timestamptz, _>(now)
            .execute(&mut conn)
            .await;
        self.store.settle(conn, result.map(drop).map_err(Failure::from)).await
    }

    async fn claim(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<i64>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.store.connection().await?;
        let expiry = lease_expiry(now, lease);
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                diesel::sql_query(ASYNC_COMMIT).execute(conn).await?;
                let rows = diesel::sql_query(CLAIM)
                    .bind::<Text, _>(queue.name())
                    .bind::<Timestamptz, _>(now)
                    .bind::<BigInt, _>(i64::from(limit))
                    .bind::<Text, _>(owner.as_str())
                    .bind::<Timestamptz, _>(expiry)
                    .load::<ItemRow>(conn)
                    .await?;
                Ok(rows)
            })
            .await;
        let rows = self.store.settle(conn, result).await?;
        Ok(rows.into_iter().map(|row| row.item_id).collect())
    }

    async fn renew(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        items: &[i64],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<i64>, RepositoryError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.store.connection().await?;
        let expiry = lease_expiry(now, lease);
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                diesel::sql_query(ASYNC_COMMIT).execute(conn).await?;
                let rows = diesel::sql_query(RENEW)
                    .bind::<Text, _>(queue.name())
                    .bind::<Text, _>(owner.as_str())
                    .bind::<Array<BigInt>, _>(items)
                    .bind::<Timestamptz, _>(expiry)
                    .load::<ItemRow>(conn)
                    .await?;
                Ok(rows)
            })
            .await;
        let rows = self.store.settle(conn, result).await?;
        Ok(rows.into_iter().map(|row| row.item_id).collect())
    }

    async fn complete(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        items: &[(i64, Next)],
    ) -> Result<Vec<i64>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                diesel::sql_query(ASYNC_COMMIT).execute(conn).await?;
                complete_in(conn, queue, owner, items).await
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn release_all(&self, owner: &LeaseOwner) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(RELEASE_ALL).bind::<Text, _>(owner.as_str()).execute(&mut conn).await;
        self.store.settle(conn, result.map(drop).map_err(Failure::from)).await
    }
}

/// The plans of the claim and the completion on a queue large enough for the planner to prefer
/// a sequential scan (or the owner index) if the key did not fit the query.
#[cfg(test)]
mod tests {
    use diesel_async::AsyncConnection;

    use super::*;
    use crate::explain::plan;

    #[tokio::test(flavor = "multi_thread")]
    async fn claims_walk_the_due_index_and_completions_the_key_at_20k_items() {
        let server = rosetta_test_support::test_server();
        let template = server
            .template("postgres_adapter_unit", |url| async move { crate::run_migrations(&url).await.unwrap() })
            .await;
        let database = server.create_database(Some(&template)).await;
        let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
        // Two queues of 10 000 items each, half of them scheduled in the future.
        diesel::sql_query(
            "INSERT INTO leases (queue, item_id, due_at)
             SELECT q, g, CASE WHEN g % 2 = 0 THEN now() + interval '1 hour' ELSE '-infinity' END
             FROM unnest(ARRAY['wal_sampling', 'delivery']) q, generate_series(1, 10000) g",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query("ANALYZE leases").execute(&mut conn).await.unwrap();
        let now = chrono::Utc::now();
        let claim = diesel::sql_query(CLAIM)
            .bind::<Text, _>("wal_sampling")
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(64_i64)
            .bind::<Text, _>("owner")
            .bind::<Timestamptz, _>(now);
        let explained = plan(&mut conn, claim).await;
        println!("claim:\n{explained}");
        let in_due_order = |plan: &str| plan.contains("Index Scan using leases_due_idx") && !plan.contains("BitmapOr");
        assert!(in_due_order(&explained), "the claim walks the due index in order: {explained}");
        assert!(explained.contains("Index Scan on leases_pkey"), "the update finds its rows by key: {explained}");
        assert!(!explained.contains("Seq Scan"), "{explained}");

        // A burst: statistics from when nothing was due, then every item of the queue due at
        // once (a restart, each interval). The claim still reads the head of the index only.
        diesel::sql_query("UPDATE leases SET due_at = now() + interval '1 hour'").execute(&mut conn).await.unwrap();
        diesel::sql_query("ANALYZE leases").execute(&mut conn).await.unwrap();
        diesel::sql_query("UPDATE leases SET due_at = now() - interval '1 second' WHERE queue = 'wal_sampling'")
            .execute(&mut conn)
            .await
            .unwrap();
        let claim = diesel::sql_query(CLAIM)
            .bind::<Text, _>("wal_sampling")
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(256_i64)
            .bind::<Text, _>("owner")
            .bind::<Timestamptz, _>(now);
        let explained = plan(&mut conn, claim).await;
        println!("claim in a burst:\n{explained}");
        assert!(in_due_order(&explained), "the claim walks the due index in order: {explained}");

        // Completing a batch finds it by key, also when the owner holds few of the queue's items
        // (as a runner does: at most four times its concurrency).
        diesel::sql_query(
            "UPDATE leases SET owner = 'owner', expires_at = now() + interval '1 minute'
             WHERE queue = 'wal_sampling' AND item_id <= 256",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query("ANALYZE leases").execute(&mut conn).await.unwrap();
        let ids: Vec<i64> = (1..=50).collect();
        let complete = diesel::sql_query(RESCHEDULE)
            .bind::<Text, _>("wal_sampling")
            .bind::<Text, _>("owner")
            .bind::<Array<BigInt>, _>(&ids)
            .bind::<Timestamptz, _>(now);
        let explained = plan(&mut conn, complete).await;
        println!("reschedule:\n{explained}");
        assert!(explained.contains("leases_pkey"), "by key: {explained}");
        assert!(!explained.contains("Nested Loop"), "{explained}");
        assert!(!explained.contains("Seq Scan"), "{explained}");
    }
}
