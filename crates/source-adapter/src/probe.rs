//! [`PostgresSourceProbe`]: the [`SourceProbe`] that reads a source's WAL with tokio-postgres.
//!
//! Cost model: a source is sampled every few seconds and there may be thousands of them, many
//! pointing at the same few databases. So connections are kept between ticks and shared by
//! every source with the same connection settings (a new connection costs the source a backend
//! process and 5–15 ms of CPU for TLS/SCRAM; a prepared tick costs about 0.13 ms), and a tick
//! is one round trip of one prepared statement.
//!
//! Safety model: a source that is down, frozen or half-open must cost at most `timeout` and
//! must never leave a connection behind that later ticks would trip over. Hence the outer
//! `tokio::time::timeout` around connect *and* query, server-side `statement_timeout`, TCP
//! keepalives and `tcp_user_timeout`, and dropping a connection after any failure that may
//! have broken it.
//!
//! Connection set-up (timeouts, keepalives, scrubbing) is [`crate::connect`]'s, shared with the
//! source operations.

mod query;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::SubsecRound;
use rosetta_domain::{PgSslMode, Secret, SourceConnection, WalSample};
use rosetta_ports::wal::{ProbeError, SourceProbe};
use tokio::sync::oneshot;
use tokio_postgres::{Client, Statement};

use crate::connect::{self, describe, lock, scrub};

/// `application_name` of the probe's sessions, so a DBA can tell (and count) them in
/// `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "rosetta-wal-monitor";

/// Upper bound of the tick's `lock_timeout`.
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// Default for [`PostgresSourceProbe::with_max_connection_lifetime`].
pub const DEFAULT_MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Reads a source's WAL position, WAL on disk and replication slots over tokio-postgres.
///
/// Connections are cached by a fingerprint of (host, port, database, user, password): sources
/// that log in identically share one connection, whose queries tokio-postgres pipelines. A
/// connection is re-established after a failure, and rotated after
/// [`DEFAULT_MAX_CONNECTION_LIFETIME`] so DNS changes after a failover, and privilege changes
/// (which decide the SQL variant), are picked up.
///
/// Must be used inside a tokio runtime (each connection is driven by a spawned task).
pub struct PostgresSourceProbe {
    entries: Mutex<HashMap<Fingerprint, Arc<Entry>>>,
    /// Keyed per probe, so the password digest in a fingerprint means nothing outside this
    /// process and the map never holds a password.
    digest_hasher: std::hash::RandomState,
    max_connection_lifetime: Duration,
}

impl PostgresSourceProbe {
    /// A probe with no connection yet and the default connection lifetime.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            digest_hasher: std::hash::RandomState::new(),
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
        }
    }

    /// Re-establishes a connection once it is older than `lifetime` (checked when it is next
    /// used).
    #[must_use]
    pub fn with_max_connection_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_connection_lifetime = lifetime;
        self
    }

    fn fingerprint(&self, source: &SourceConnection) -> Fingerprint {
        Fingerprint {
            host: source.pg_host.as_str().to_owned(),
            port: source.pg_port.get(),
            database: source.pg_database.as_str().to_owned(),
            username: source.pg_username.as_str().to_owned(),
            password_digest: source.pg_password.as_ref().map(|p| self.digest_hasher.hash_one(p.expose())),
            sslmode: source.pg_sslmode,
            sslrootcert_digest: source.pg_sslrootcert.as_ref().map(|pem| self.digest_hasher.hash_one(pem.as_str())),
        }
    }

    /// The cache entry for `fingerprint` (created on first use), marked as used now.
    fn entry(&self, fingerprint: Fingerprint) -> Arc<Entry> {
        let entry = Arc::clone(lock(&self.entries).entry(fingerprint).or_insert_with(|| Arc::new(Entry::new())));
        *lock(&entry.last_used) = Instant::now();
        entry
    }

    /// A usable connection for `entry`: the cached one, or a new one established under the
    /// entry's async mutex so concurrent callers wait for one connect instead of each opening
    /// their own. The flag says whether it was just established by this call.
    async fn session(
        &self,
        entry: &Entry,
        source: &SourceConnection,
        timeout: Duration,
    ) -> Result<(Arc<Session>, bool), ProbeError> {
        if let Some(session) = entry.usable(self.max_connection_lifetime) {
            return Ok((session, false));
        }
        let _establishing = entry.establishing.lock().await;
        // Someone may have connected while we waited.
        if let Some(session) = entry.usable(self.max_connection_lifetime) {
            return Ok((session, false));
        }
        let session = Arc::new(Session::establish(source, timeout).await?);
        *lock(&entry.current) = Some(Arc::clone(&session));
        Ok((session, true))
    }

    /// Everything a sample does, without the deadline. `used` records the connection in use, so
    /// the caller can discard it if the deadline cuts this future off.
    async fn sample_within(
        &self,
        entry: &Entry,
        source: &SourceConnection,
        timeout: Duration,
        used: &mut Option<Arc<Session>>,
    ) -> Result<WalSample, ProbeError> {
        let (session, fresh) = self.session(entry, source, timeout).await?;
        *used = Some(Arc::clone(&session));
        match session.tick().await {
            Ok(sample) => Ok(sample),
            Err(failure) => {
                if !failure.breaks_session {
                    return Err(failure.error);
                }
                entry.discard(&session);
                if fresh {
                    return Err(failure.error);
                }
                // A connection kept from an earlier tick may have died in between (the source
                // restarted, an idle timeout, a revoked privilege): one more attempt on a new
                // connection, still within the same deadline, instead of reporting an error
                // the source does not have.
                tracing::debug!(error = %failure.error, "cached source connection failed; reconnecting once");
                let (session, _) = self.session(entry, source, timeout).await?;
                *used = Some(Arc::clone(&session));
                session.tick().await.map_err(|failure| {
                    if failure.breaks_session {
                        entry.discard(&session);
                    }
                    failure.error
                })
            }
        }
    }
}

impl Default for PostgresSourceProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PostgresSourceProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSourceProbe")
            .field("open_connections", &self.open_connections())
            .field("max_connection_lifetime", &self.max_connection_lifetime)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SourceProbe for PostgresSourceProbe {
    async fn sample(&self, source: &SourceConnection, timeout: Duration) -> Result<WalSample, ProbeError> {
        let entry = self.entry(self.fingerprint(source));
        let mut used = None;
        let outcome = tokio::time::timeout(timeout, self.sample_within(&entry, source, timeout, &mut used)).await;
        let result = match outcome {
            Ok(result) => result,
            Err(_elapsed) => {
                // The connection may be wedged (frozen server, half-open socket): later ticks
                // must not queue behind it.
                if let Some(session) = &used {
                    entry.discard(session);
                }
                Err(ProbeError::Timeout(timeout))
            }
        };
        result.map_err(|error| scrub_error(error, source.pg_password.as_ref()))
    }

    fn close_idle(&self, idle_since: Instant) {
        lock(&self.entries).retain(|_, entry| *lock(&entry.last_used) >= idle_since);
    }

    fn open_connections(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|entry| lock(&entry.current).as_ref().is_some_and(|session| !session.client.is_closed()))
            .count()
    }
}

/// What identifies a shareable connection. The password is kept only as a keyed digest:
/// enough to keep sources with different passwords apart (a wrong password must not ride on
/// another source's login), without holding the password in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Fingerprint {
    host: String,
    port: u16,
    database: String,
    username: String,
    password_digest: Option<u64>,
    /// Two sources differing only in TLS settings must not share a connection: one of them
    /// would be sampled over a connection its own settings would refuse.
    sslmode: PgSslMode,
    sslrootcert_digest: Option<u64>,
}

/// One cached connection slot.
struct Entry {
    /// The live connection. A std mutex: only held to clone or replace the `Arc`.
    current: Mutex<Option<Arc<Session>>>,
    /// Held while establishing, so concurrent samples of one database do not stampede it.
    establishing: tokio::sync::Mutex<()>,
    /// For [`SourceProbe::close_idle`].
    last_used: Mutex<Instant>,
}

impl Entry {
    fn new() -> Self {
        Self {
            current: Mutex::new(None),
            establishing: tokio::sync::Mutex::new(()),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// The cached connection if it is open and not past its lifetime; otherwise drops it.
    fn usable(&self, max_lifetime: Duration) -> Option<Arc<Session>> {
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|s| s.client.is_closed() || s.established_at.elapsed() >= max_lifetime) {
            *current = None;
        }
        current.clone()
    }

    /// Forgets `session` if it is still the cached one (a newer connection made by another
    /// caller is left alone). Callers still holding it finish their query on it.
    fn discard(&self, session: &Arc<Session>) {
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|cached| Arc::ptr_eq(cached, session)) {
            *current = None;
        }
    }
}

/// One connection to a source, with its prepared tick statement.
struct Session {
    client: Client,
    tick: Statement,
    established_at: Instant,
    /// Dropped with the session: tells the connection task to close (see [`CLOSE_GRACE`]).
    _closing: oneshot::Sender<()>,
}

/// A failed tick: the error, and whether the connection should be replaced.
struct TickFailure {
    error: ProbeError,
    breaks_session: bool,
}

impl Session {
    /// Connects, learns the server version and privileges, and prepares the tick statement.
    async fn establish(source: &SourceConnection, timeout: Duration) -> Result<Session, ProbeError> {
        // The tick's catalog reads should never wait on a lock for long.
        let lock_timeout = timeout.min(LOCK_TIMEOUT);
        let (client, closing) = connect::open(source, APPLICATION_NAME, timeout, lock_timeout)
            .await
            .map_err(|failure| ProbeError::Connect(failure.into()))?;

        let setup = client.query_one(query::SETUP_SQL, &[]).await.map_err(|e| ProbeError::Query(describe(&e)))?;
        let server_version_num: i32 =
            setup.try_get("server_version_num").map_err(|e| ProbeError::Query(describe(&e)))?;
        let reads_wal_dir: bool = setup.try_get("reads_wal_dir").map_err(|e| ProbeError::Query(describe(&e)))?;
        if server_version_num < query::MIN_SERVER_VERSION {
            return Err(ProbeError::Connect(format!(
                "server_version_num {server_version_num} is not supported (PostgreSQL 10 or later is needed)"
            )));
        }
        let tick = client
            .prepare(&query::tick_sql(server_version_num, reads_wal_dir))
            .await
            .map_err(|e| ProbeError::Query(describe(&e)))?;
        tracing::debug!(
            host = source.pg_host.as_str(),
            port = source.pg_port.get(),
            database = source.pg_database.as_str(),
            server_version_num,
            reads_wal_dir,
            "connected to source"
        );
        Ok(Session { client, tick, established_at: Instant::now(), _closing: closing })
    }

    /// One tick: one round trip of the prepared statement.
    async fn tick(&self) -> Result<WalSample, TickFailure> {
        let rows = self
            .client
            .query(&self.tick, &[])
            .await
            .map_err(|e| TickFailure { breaks_session: breaks_session(&e), error: ProbeError::Query(describe(&e)) })?;
        // The monitor's clock, at the moment the answer arrived; stored with microsecond
        // precision, so truncated here for samples to compare equal after a round trip.
        let sampled_at = chrono::Utc::now().trunc_subsecs(6);
        query::sample_from_rows(&rows, sampled_at)
            .map_err(|text| TickFailure { error: ProbeError::Query(text), breaks_session: false })
    }
}

/// Whether a query error means the connection (or its prepared statement) can no longer be
/// trusted, so the next tick should reconnect.
fn breaks_session(error: &tokio_postgres::Error) -> bool {
    let Some(code) = error.code() else {
        // Not a server error: I/O, a closed connection, a protocol or decoding problem.
        return true;
    };
    let code = code.code();
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code == "26000" // prepared statement gone (e.g. a pooler switched backends)
        || code == "0A000" // "cached plan must not change result type"
        || code == "42501" // privilege revoked since connect: the next connection picks another variant
}

fn scrub_error(error: ProbeError, password: Option<&Secret>) -> ProbeError {
    match error {
        ProbeError::Timeout(limit) => ProbeError::Timeout(limit),
        ProbeError::Connect(text) => ProbeError::Connect(scrub(&text, password)),
        ProbeError::Query(text) => ProbeError::Query(scrub(&text, password)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_scrubbed() {
        let secret = Secret::parse("s3cr3t").ok();
        let error = scrub_error(ProbeError::Connect("refused s3cr3t".into()), secret.as_ref());
        assert_eq!(error, ProbeError::Connect("refused ***".into()));
    }
}
