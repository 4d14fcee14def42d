//! Key rotation of stored secrets: counting the sealed values per key, and re-sealing under the
//! newest key every value still under an older one — every column of [`SEALED_COLUMNS`], in
//! bounded batches, resumable (a value already under the newest key is skipped), and never
//! overwriting a value written meanwhile (each rewrite is a compare-and-swap).

use std::collections::BTreeMap;
use std::sync::Arc;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bytea};
use diesel_async::RunQueryDsl;
use rosetta_ports::outbound::{CipherError, RepositoryError, SecretCipher};

use crate::error::Failure;
use crate::secrets::{SEALED_COLUMNS, SealedColumn};
use crate::store::PostgresStore;

/// The label of values that record no key id (sealed before key ids were recorded).
pub const LEGACY_KEY_LABEL: &str = "legacy (no key id)";

/// How many sealed values of one column are under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCount {
    /// `table.column`.
    pub column: String,
    /// The key's id, or [`LEGACY_KEY_LABEL`].
    pub key: String,
    /// Whether that is the newest configured key (nothing to do).
    pub current: bool,
    /// How many values.
    pub count: u64,
}

/// The stored secrets by column and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSurvey {
    /// One entry per column and key that has values, in registry order then key order.
    pub counts: Vec<SealedCount>,
}

impl SecretSurvey {
    /// How many values are not under the newest key (what `rotate-secrets` would re-seal or
    /// report).
    pub fn outdated(&self) -> u64 {
        self.counts.iter().filter(|count| !count.current).map(|count| count.count).sum()
    }
}

/// A value that could not be re-sealed: its row and why (its key is not configured, or it does
/// not open). The row keeps its value; its owner reports the error when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableSecret {
    /// `table.column`.
    pub column: String,
    /// The row's id.
    pub row_id: i64,
    /// Why.
    pub reason: CipherError,
}

/// Which values a rotation re-seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationScope {
    /// Every value not under the newest key (`rotate-secrets`).
    Outdated,
    /// Only values that record no key id (sealed before key ids were recorded), re-sealed with
    /// the newest key's id.
    Legacy,
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationOutcome {
    /// Values re-sealed under the newest key.
    pub resealed: u64,
    /// Values left as they were because they do not open.
    pub unreadable: Vec<UnreadableSecret>,
}

/// Rotation over the metadata database with the configured keys.
#[derive(Clone)]
pub struct SecretRotation {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
    batch: i64,
}

impl std::fmt::Debug for SecretRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRotation").field("batch", &self.batch).finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct SealedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bytea)]
    sealed: Vec<u8>,
}

impl SecretRotation {
    /// Rows read (and rewritten) per statement when no batch size is given.
    pub const DEFAULT_BATCH: usize = 500;

    /// Rotation over `store` with `cipher`'s keys, `batch` rows at a time (at least 1).
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>, batch: usize) -> Self {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        Self { store, cipher, batch }
    }

    /// Every column of sealed values (`table.column`), in the order they are handled.
    pub fn sealed_columns() -> Vec<String> {
        SEALED_COLUMNS.iter().map(|column| format!("{}.{}", column.table, column.column)).collect()
    }

    /// Counts the stored secrets per column and key, reading every sealed value once (in
    /// batches).
    pub async fn survey(&self) -> Result<SecretSurvey, RepositoryError> {
        let current = self.cipher.current_key_id();
        let mut counts = Vec::new();
        for column in &SEALED_COLUMNS {
            let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
            let mut after = 0;
            loop {
                let rows = self.batch_of(column, after).await?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                for row in &rows {
                    let key = self.cipher.key_id(&row.sealed).unwrap_or_else(|| LEGACY_KEY_LABEL.to_owned());
                    *per_key.entry(key).or_default() += 1;
                }
            }
            counts.extend(per_key.into_iter().map(|(key, count)| SealedCount {
                column: format!("{}.{}", column.table, column.column),
                current: key == current,
                key,
                count,
            }));
        }
        Ok(SecretSurvey { counts })
    }

    /// Re-seals under the newest key every value that is not under it yet. A value that does
    /// not open is reported and left alone; a value changed since it was read is left to its
    /// writer (who sealed it under the newest key). Safe to interrupt and run again, and to run
    /// from several processes.
    pub async fn rotate(&self, scope: RotationScope) -> Result<RotationOutcome, RepositoryError> {
        let current = self.cipher.current_key_id();
        let mut outcome = RotationOutcome::default();
        for column in &SEALED_COLUMNS {
            let mut after = 0;
            loop {
                let rows = self.batch_of(column, after).await?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                for row in rows {
                    let wanted = match self.cipher.key_id(&row.sealed) {
                        None => true,
                        Some(key) => scope == RotationScope::Outdated && key != current,
                    };
                    if !wanted {
                        continue;
                    }
                    let slot = (column.slot)(row.id);
                    let resealed =
                        self.cipher.open(&row.sealed, slot).and_then(|secret| self.cipher.seal(&secret, slot));
                    match resealed {
                        Ok(sealed) => outcome.resealed += self.swap(column, row.id, &row.sealed, &sealed).await?,
                        Err(reason) => outcome.unreadable.push(UnreadableSecret {
                            column: format!("{}.{}", column.table, column.column),
                            row_id: row.id,
                            reason,
                        }),
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Up to `batch` stored values of `column` with ids above `after`, by id.
    async fn batch_of(&self, column: &SealedColumn, after: i64) -> Result<Vec<SealedRow>, RepositoryError> {
        // The identifiers come from the registry, never from input.
        let query = format!(
            "SELECT id, {col} AS sealed FROM {table} WHERE {col} IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
            col = column.column,
            table = column.table
        );
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(query)
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(self.batch)
            .load::<SealedRow>(&mut conn)
            .await
            .map_err(Failure::from);
        self.store.settle(conn, result).await
    }

    /// Replaces `old` with `new` in row `id` if it still holds `old`; 1 if it did.
    async fn swap(&self, column: &SealedColumn, id: i64, old: &[u8], new: &[u8]) -> Result<u64, RepositoryError> {
        let query = format!(
            "UPDATE {table} SET {col} = $1 WHERE id = $2 AND {col} = $3",
            col = column.column,
            table = column.table
        );
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(query)
            .bind::<Bytea, _>(new)
            .bind::<BigInt, _>(id)
            .bind::<Bytea, _>(old)
            .execute(&mut conn)
            .await
            .map_err(Failure::from);
        Ok(self.store.settle(conn, result).await? as u64)
    }
}
