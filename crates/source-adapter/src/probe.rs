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
//! Transport: plain TCP (`NoTls`) for now; TLS to sources is not implemented yet.

mod query;

use std::collections::HashMap;
use std::error::Error as _;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::SubsecRound;
use rosetta_domain::{Secret, SourceConnection, WalSample};
use rosetta_ports::wal::{ProbeError, SourceProbe};
use tokio::sync::oneshot;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// `application_name` of the probe's sessions, so a DBA can tell (and count) them in
/// `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "rosetta-wal-monitor";

/// Default for [`PostgresSourceProbe::with_max_connection_lifetime`].
pub const DEFAULT_MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// TCP keepalive settings: a peer that vanished without closing (host down, network cut) is
/// detected in about 30 s + 3 × 10 s instead of the kernel default of hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVES_RETRIES: u32 = 3;
/// Data sent but unacknowledged for this long kills the socket (keepalives only cover an idle
/// connection).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound of `lock_timeout`: the tick's catalog reads should never wait on a lock for long.
const LOCK_TIMEOUT_MS: u128 = 1_000;
/// How long a dropped connection may take to say goodbye (Terminate) before its task is
/// abandoned; a frozen server would otherwise keep the task and its socket forever.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

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
    password_hasher: std::hash::RandomState,
    max_connection_lifetime: Duration,
}

impl PostgresSourceProbe {
    /// A probe with no connection yet and the default connection lifetime.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            password_hasher: std::hash::RandomState::new(),
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
            password_digest: source.pg_password.as_ref().map(|p| self.password_hasher.hash_one(p.expose())),
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
        let statement_timeout_ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        let lock_timeout_ms = statement_timeout_ms.min(LOCK_TIMEOUT_MS);
        let mut config = Config::new();
        config
            .host(source.pg_host.as_str())
            .port(source.pg_port.get())
            .dbname(source.pg_database.as_str())
            .user(source.pg_username.as_str())
            .application_name(APPLICATION_NAME)
            // Covers only the TCP connect; the caller's outer timeout covers the rest.
            .connect_timeout(timeout)
            // The server gives up on its own too, so an abandoned query does not keep running.
            .options(format!("-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}"))
            .keepalives(true)
            .keepalives_idle(KEEPALIVES_IDLE)
            .keepalives_interval(KEEPALIVES_INTERVAL)
            .keepalives_retries(KEEPALIVES_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        if let Some(password) = &source.pg_password {
            config.password(password.expose());
        }

        let (client, connection) = config.connect(NoTls).await.map_err(|e| ProbeError::Connect(describe(&e)))?;
        let closing = spawn_connection(connection, source);

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

/// Drives `connection` on its own task until it ends, or until the session is dropped and the
/// connection has had [`CLOSE_GRACE`] to close politely. Its errors are logged at debug: the
/// sample that hits the broken connection reports the failure.
fn spawn_connection<S, T>(
    connection: tokio_postgres::Connection<S, T>,
    source: &SourceConnection,
) -> oneshot::Sender<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (closing, closed) = oneshot::channel::<()>();
    let host = source.pg_host.as_str().to_owned();
    let port = source.pg_port.get();
    let password: Option<Secret> = source.pg_password.clone();
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = &mut connection => result,
            // The sender is dropped with the session: the client is gone too, so the connection
            // is closing; do not wait on a server that never answers.
            _ = closed => match tokio::time::timeout(CLOSE_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::debug!(%host, port, "source connection did not close in time; abandoned");
                    return;
                }
            },
        };
        if let Err(error) = result {
            tracing::debug!(%host, port, error = %scrub(&describe(&error), password.as_ref()), "source connection ended");
        }
    });
    closing
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

/// A readable error text: SQLSTATE and message for server errors, else the error and its
/// causes (e.g. "error connecting to server: Connection refused (os error 111)"). It never
/// includes the connection configuration.
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(" (");
            text.push_str(detail);
            text.push(')');
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Removes every occurrence of the password from `text`: a safety net, since no message is
/// built from the configuration, but a server or library might echo it back.
fn scrub(text: &str, password: Option<&Secret>) -> String {
    match password.map(Secret::expose) {
        Some(secret) if !secret.is_empty() && text.contains(secret) => text.replace(secret, "***"),
        _ => text.to_owned(),
    }
}

fn scrub_error(error: ProbeError, password: Option<&Secret>) -> ProbeError {
    match error {
        ProbeError::Timeout(limit) => ProbeError::Timeout(limit),
        ProbeError::Connect(text) => ProbeError::Connect(scrub(&text, password)),
        ProbeError::Query(text) => ProbeError::Query(scrub(&text, password)),
    }
}

/// Locks a std mutex, ignoring poisoning: every critical section here only swaps or reads
/// values, so a panic elsewhere cannot leave them inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_occurrence() {
        let secret = Secret::parse("s3cr3t").ok();
        assert_eq!(scrub("a s3cr3t b s3cr3t", secret.as_ref()), "a *** b ***");
        assert_eq!(scrub("nothing here", secret.as_ref()), "nothing here");
        assert_eq!(scrub("no password", None), "no password");
        let error = scrub_error(ProbeError::Connect("refused s3cr3t".into()), secret.as_ref());
        assert_eq!(error, ProbeError::Connect("refused ***".into()));
    }
}
