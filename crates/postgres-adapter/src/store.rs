//! The connection pool every repository shares, and the translation of pool and connection
//! failures into [`RepositoryError::Unavailable`].

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use deadpool::Runtime;
use deadpool::managed::{Manager, Metrics, PoolError, QueueMode, RecycleResult, Timeouts};
use diesel::IntoSql;
use diesel::sql_types::Integer;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use rosetta_ports::outbound::{MetadataHealth, RepositoryError};

use crate::connector::{DatabaseUrlError, MetadataConnector};
use crate::error::{Failure, is_connection_loss, may_be_outage};

/// A connection borrowed from the pool for one repository call.
///
/// [`PostgresStore::settle`] gives it back to the pool. A connection dropped before that (the caller
/// stopped awaiting, e.g. a cancelled HTTP request) closes the connection instead: it may be
/// inside a transaction holding row locks, and returned to the pool it would keep them while
/// idle, blocking every writer of those rows. Closing it makes the server roll back at once.
pub(crate) struct PooledConnection {
    /// `Some` until the connection is settled or dropped.
    conn: Option<deadpool::managed::Object<MetadataConnections>>,
}

impl Deref for PooledConnection {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a pooled connection is emptied only when it is consumed"),
        }
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a pooled connection is emptied only when it is consumed"),
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached from the pool, the connection closes when dropped here.
            drop(deadpool::managed::Object::take(conn));
        }
    }
}

/// Checks that `url` is a PostgreSQL connection URL the store can use, without connecting, so
/// that configuration errors are reported at start-up under the setting's name.
///
/// # Errors
///
/// [`DatabaseUrlError`] (which never contains the URL: it may hold a password).
pub fn check_database_url(url: &str) -> Result<(), DatabaseUrlError> {
    MetadataConnector::from_url(url).map(drop)
}

/// How to reach the metadata database.
#[derive(Clone)]
pub struct StoreSettings {
    /// `postgres://user:password@host:port/database` (may carry a password: never logged).
    pub url: String,
    /// The most connections the pool opens (`DB_POOL_SIZE + DB_MAX_OVERFLOW`); at least 1.
    pub max_size: usize,
    /// How long one request may wait for a connection, including opening a new one
    /// (`DB_POOL_TIMEOUT`); then it fails as unavailable. Must not be zero.
    pub connection_timeout: Duration,
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold the database password.
        f.debug_struct("StoreSettings")
            .field("max_size", &self.max_size)
            .field("connection_timeout", &self.connection_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a [`PostgresStore`] could not be built. Reported at start-up; never contains the URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a PostgreSQL connection string, or its TLS settings cannot be used.
    #[error("the database URL cannot be used")]
    InvalidUrl(#[source] DatabaseUrlError),
    /// `max_size` is zero: every request would wait for a connection that never comes.
    #[error("the connection pool size must be at least 1")]
    ZeroPoolSize,
    /// `connection_timeout` is zero: every request would time out at once.
    #[error("the connection timeout must be greater than zero")]
    ZeroTimeout,
    /// The pool rejected its configuration.
    #[error("the connection pool cannot be built")]
    Pool(#[source] deadpool::managed::BuildError),
}

/// The metadata database: a deadpool of diesel-async connections shared by the repositories,
/// plus one connection on which point reads (one entity by id) are pipelined. Cheap to clone
/// (clones share both).
///
/// Connections are opened on demand, so a store can be built while the database is down; one
/// that sat idle is checked with `SELECT 1` before reuse, so connections broken by a database
/// restart are replaced instead of failing requests (see [`MetadataConnections`]); a point read
/// that finds the shared connection broken is retried once on a new one.
///
/// A connection's I/O runs as a task on the runtime that opened it: give each single-threaded
/// runtime (e.g. each HTTP worker) its own store, so that no request waits for another thread.
#[derive(Clone)]
pub struct PostgresStore {
    pool: deadpool::managed::Pool<MetadataConnections>,
    connection_timeout: Duration,
    reader: Arc<SharedReader>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .field("connection_timeout", &self.connection_timeout)
            .finish()
    }
}

impl PostgresStore {
    /// Builds the pool without connecting, so the server can start while the database is
    /// still down (see [`PostgresStore::check_connection`]). Using the store needs a tokio
    /// runtime; building it does not.
    pub fn new(settings: StoreSettings) -> Result<Self, StoreError> {
        let StoreSettings { url, max_size, connection_timeout } = settings;
        let connector = MetadataConnector::from_url(&url).map_err(StoreError::InvalidUrl)?;
        if max_size == 0 {
            return Err(StoreError::ZeroPoolSize);
        }
        if connection_timeout.is_zero() {
            return Err(StoreError::ZeroTimeout);
        }
        let mut config = ManagerConfig::default();
        // Verified (the default, spelled out because recovery depends on it): a pooled
        // connection that sat idle answers `SELECT 1` before it is handed out, so after a
        // database restart dead connections are dropped and new ones opened.
        config.recycling_method = RecyclingMethod::Verified;
        // Every connection (pooled or the shared reader's) is opened with the URL's TLS settings.
        config.custom_setup = Box::new(move |_url| {
            let connector = connector.clone();
            Box::pin(async move { connector.connect().await })
        });
        // A healthy connection answers that check in milliseconds; one that hangs is given up
        // early enough to open a new connection within the same request.
        let recycle_timeout = connection_timeout / 4;
        let manager = MetadataConnections {
            inner: AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config),
        };
        let pool = deadpool::managed::Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            // The most recently returned connection first: a few hot backends serve the load
            // (warm caches, busy connections skip the idle check) instead of every pooled
            // connection in turn.
            .queue_mode(QueueMode::Lifo)
            .timeouts(Timeouts {
                wait: Some(connection_timeout),
                create: Some(connection_timeout),
                recycle: Some(recycle_timeout),
            })
            .build()
            .map_err(StoreError::Pool)?;
        Ok(Self { pool, connection_timeout, reader: Arc::new(SharedReader::new()) })
    }

    /// Checks that the database answers a trivial query; for start-up and readiness.
    /// Errors: `Unavailable` when it cannot, within the connection timeout for getting a
    /// connection and again for the answer.
    pub async fn check_connection(&self) -> Result<(), RepositoryError> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.connection_timeout, select_one(&mut conn)).await {
            Ok(result) => self.settle(conn, result.map_err(Failure::from)).await,
            // The connection is dropped unsettled: the hung connection is closed, not pooled.
            Err(elapsed) => Err(RepositoryError::Unavailable(Box::new(elapsed))),
        }
    }

    /// Runs one read-only statement on the store's shared connection, pipelined with the other
    /// reads in flight on it. Reads are idempotent, so one that finds the shared connection
    /// lost is retried once on a new connection (a database restart costs no request). Opening
    /// the connection and the statement are each bounded by the connection timeout; a read that
    /// times out gives up the shared connection (it may hang), so the next read opens another.
    /// Never use it inside a transaction or for a write.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T, RepositoryError>
    where
        F: for<'c> Fn(&'c AsyncPgConnection) -> std::pin::Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'c>>,
    {
        let mut retried = false;
        loop {
            let conn = self.reader.connection(self.pool.manager(), self.connection_timeout).await?;
            let outcome = tokio::time::timeout(self.connection_timeout, query(&conn)).await;
            match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Repository(err))) => return Err(err),
                // Lost, or a server error that may be an outage (diesel hides SQLSTATEs such as
                // `57P01 admin_shutdown`): once more on a new connection, which tells them apart.
                Ok(Err(Failure::Database(err))) if may_be_outage(&err) || is_connection_loss(&err) => {
                    self.reader.discard(&conn);
                    if retried {
                        return Err(if is_connection_loss(&err) {
                            RepositoryError::Unavailable(Box::new(err))
                        } else {
                            RepositoryError::Unexpected(Box::new(err))
                        });
                    }
                    retried = true;
                }
                Ok(Err(Failure::Database(err))) => return Err(RepositoryError::Unexpected(Box::new(err))),
                Err(elapsed) => {
                    self.reader.discard(&conn);
                    return Err(RepositoryError::Unavailable(Box::new(elapsed)));
                }
            }
        }
    }

    /// Closes the pool for shutdown: idle connections are closed now, busy ones when they are
    /// returned, and later requests fail as unavailable.
    pub fn close(&self) {
        self.pool.close();
        self.reader.close();
    }

    /// A connection from the pool, within the connection timeout.
    ///
    /// deadpool applies its timeouts per step (wait for a slot, open, check a pooled one) and
    /// may check several pooled connections in a row, so the whole acquisition is bounded too:
    /// against a database that accepts connections but never answers, every step would
    /// otherwise use up its own timeout.
    pub(crate) async fn connection(&self) -> Result<PooledConnection, RepositoryError> {
        match tokio::time::timeout(self.connection_timeout, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(PooledConnection { conn: Some(conn) }),
            Ok(Err(err)) => Err(pool_error(err)),
            Err(elapsed) => Err(RepositoryError::Unavailable(Box::new(elapsed))),
        }
    }

    /// Turns the outcome of work done on `conn` into the repository result, and gives the
    /// connection back to the pool.
    ///
    /// A server-side error without a constraint the caller recognised is either a bug or an
    /// outage; diesel does not expose SQLSTATEs such as `57P01 admin_shutdown`, so the
    /// connection is asked: if it can no longer answer `SELECT 1` in time, the store is
    /// unavailable.
    pub(crate) async fn settle<T>(
        &self,
        mut conn: PooledConnection,
        result: Result<T, Failure>,
    ) -> Result<T, RepositoryError> {
        let outcome = self.classify(&mut conn, result).await;
        // Back to the pool, which checks it again before handing it out.
        drop(conn.conn.take());
        outcome
    }

    /// The repository result for `result`, asking `conn` whether it still answers when the
    /// error could be an outage.
    async fn classify<T>(
        &self,
        conn: &mut AsyncPgConnection,
        result: Result<T, Failure>,
    ) -> Result<T, RepositoryError> {
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Repository(err)) => Err(err),
            Err(Failure::Database(err)) if is_connection_loss(&err) => Err(RepositoryError::Unavailable(Box::new(err))),
            Err(Failure::Database(err)) if may_be_outage(&err) => {
                let alive = matches!(tokio::time::timeout(self.connection_timeout, select_one(conn)).await, Ok(Ok(())));
                if alive {
                    Err(RepositoryError::Unexpected(Box::new(err)))
                } else {
                    Err(RepositoryError::Unavailable(Box::new(err)))
                }
            }
            Err(Failure::Database(err)) => Err(RepositoryError::Unexpected(Box::new(err))),
        }
    }
}

/// The connection a store's point reads share. Its I/O task runs on the thread that opened it
/// (each HTTP worker has its own store), and concurrent reads are pipelined on it: one write
/// carries several queries and one read several answers, instead of a round trip each.
struct SharedReader {
    /// `None`: not open (yet, or since the last one was lost); also `None` once closed.
    current: std::sync::Mutex<Option<Arc<AsyncPgConnection>>>,
    /// Set by [`PostgresStore::close`]: no new connection is opened.
    closed: AtomicBool,
    /// Held while connecting, so that concurrent readers wait for one new connection.
    connecting: tokio::sync::Mutex<()>,
}

impl SharedReader {
    fn new() -> Self {
        Self {
            current: std::sync::Mutex::default(),
            closed: AtomicBool::new(false),
            connecting: tokio::sync::Mutex::const_new(()),
        }
    }

    fn current(&self) -> Option<Arc<AsyncPgConnection>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The shared connection, opened by `connections` (as the pool opens its own) within
    /// `timeout` if there is none.
    async fn connection(
        &self,
        connections: &MetadataConnections,
        timeout: Duration,
    ) -> Result<Arc<AsyncPgConnection>, RepositoryError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let connect = async {
            let _connecting = self.connecting.lock().await;
            if let Some(conn) = self.current() {
                return Ok(conn);
            }
            if AtomicBool::load(&self.closed, Ordering::Acquire) {
                return Err(RepositoryError::Unavailable(Box::new(StoreClosed)));
            }
            let conn = Arc::new(connections.create().await.map_err(|err| RepositoryError::Unavailable(Box::new(err)))?);
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&conn));
            Ok(conn)
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(outcome) => outcome,
            Err(elapsed) => Err(RepositoryError::Unavailable(Box::new(elapsed))),
        }
    }

    /// Refuses new connections and lets go of the current one.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Forgets `conn` if it is still the shared connection; it closes once the reads still
    /// using it are done.
    fn discard(&self, conn: &Arc<AsyncPgConnection>) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|shared| Arc::ptr_eq(shared, conn)) {
            *current = None;
        }
    }
}

/// The store was closed for shutdown.
#[derive(Debug, thiserror::Error)]
#[error("the metadata store is closed")]
struct StoreClosed;

/// How long a pooled connection may have been out of use and still be handed out without a
/// `SELECT 1` first. Under load connections come back within milliseconds and the check would
/// double the round trips of every request; a connection idle for longer is checked, which is
/// what catches connections a database restart broke.
const VERIFY_IDLE_AFTER: Duration = Duration::from_millis(500);

/// diesel-async's connection manager, verifying only connections that sat idle (see
/// [`VERIFY_IDLE_AFTER`]). A connection known to be broken (closed socket, broken transaction)
/// is never reused.
pub(crate) struct MetadataConnections {
    inner: AsyncDieselConnectionManager<AsyncPgConnection>,
}

impl Manager for MetadataConnections {
    type Type = AsyncPgConnection;
    type Error = diesel_async::pooled_connection::PoolError;

    async fn create(&self) -> Result<AsyncPgConnection, Self::Error> {
        self.inner.create().await
    }

    async fn recycle(&self, conn: &mut AsyncPgConnection, metrics: &Metrics) -> RecycleResult<Self::Error> {
        if metrics.last_used() < VERIFY_IDLE_AFTER && !conn.is_broken() {
            return Ok(());
        }
        self.inner.recycle(conn, metrics).await
    }
}

#[async_trait]
impl MetadataHealth for PostgresStore {
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.check_connection().await
    }
}

/// `SELECT 1`.
async fn select_one(conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    diesel::select(1.into_sql::<Integer>()).get_result::<i32>(conn).await.map(drop)
}

/// Every pool failure means no usable connection now; only a misconfigured pool is a bug.
fn pool_error(err: PoolError<diesel_async::pooled_connection::PoolError>) -> RepositoryError {
    match err {
        PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed => {
            RepositoryError::Unavailable(Box::new(err))
        }
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => RepositoryError::Unexpected(Box::new(err)),
    }
}
