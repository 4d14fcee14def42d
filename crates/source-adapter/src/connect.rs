//! Connecting to a source: the one place that builds a session's settings (TLS, timeouts, TCP
//! keepalives, `application_name`), drives its connection task, and turns errors into text
//! without secrets. The probe and the source operations both connect through [`open`].
//!
//! TLS follows the source's `pg_sslmode` / `pg_sslrootcert` (see `rosetta-pg-tls`).

use std::error::Error as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rosetta_domain::{Secret, SourceConnection};
use rosetta_pg_tls::{TlsFailure, TlsSettings};
use tokio::sync::oneshot;
use tokio_postgres::{Client, Config};

/// TCP keepalive settings: a peer that vanished without closing (host down, network cut) is
/// detected in about 30 s + 3 × 10 s instead of the kernel default of hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVES_RETRIES: u32 = 3;
/// Data sent but unacknowledged for this long kills the socket (keepalives only cover an idle
/// connection).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a dropped connection may take to say goodbye (Terminate) before its task is
/// abandoned; a frozen server would otherwise keep the task and its socket forever.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why [`open`] failed: the text (secrets removed) and the server's SQLSTATE when it answered
/// (`28P01`: wrong password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectFailure {
    pub(crate) message: String,
    pub(crate) sqlstate: Option<String>,
}

impl From<ConnectFailure> for String {
    fn from(failure: ConnectFailure) -> Self {
        failure.message
    }
}

/// Connects to `source` as `application_name`. The server bounds every statement by `timeout`
/// and every lock wait by `lock_timeout` on its own, so an abandoned statement does not keep
/// running; `timeout` also bounds the TCP connect. The caller still wraps the whole exchange in
/// its own deadline (name lookup, TLS and authentication are not covered here).
///
/// The returned sender closes the connection when dropped (see [`CLOSE_GRACE`]).
pub(crate) async fn open(
    source: &SourceConnection,
    application_name: &str,
    timeout: Duration,
    lock_timeout: Duration,
) -> Result<(Client, oneshot::Sender<()>), ConnectFailure> {
    let tls = TlsSettings::new(source.pg_sslmode, source.pg_sslrootcert.as_ref())
        .map_err(|error| ConnectFailure { message: error.to_string(), sqlstate: None })?;
    let statement_timeout_ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    let lock_timeout_ms = lock_timeout.as_millis().clamp(1, statement_timeout_ms);
    let mut config = Config::new();
    config
        .host(source.pg_host.as_str())
        .port(source.pg_port.get())
        .dbname(source.pg_database.as_str())
        .user(source.pg_username.as_str())
        .application_name(application_name)
        .ssl_mode(tls.negotiation)
        .connect_timeout(timeout)
        .options(format!("-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}"))
        .keepalives(true)
        .keepalives_idle(KEEPALIVES_IDLE)
        .keepalives_interval(KEEPALIVES_INTERVAL)
        .keepalives_retries(KEEPALIVES_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    if let Some(password) = &source.pg_password {
        config.password(password.expose());
    }
    match config.connect(tls.connector).await {
        Ok((client, connection)) => Ok((client, spawn_connection(connection, source))),
        Err(error) => Err(ConnectFailure {
            message: scrub(&describe_connect(&error), source.pg_password.as_ref()),
            sqlstate: error.code().map(|code| code.code().to_owned()),
        }),
    }
}

/// Drives `connection` on its own task until it ends, or until the sender is dropped and the
/// connection has had [`CLOSE_GRACE`] to close politely. Its errors are logged at debug: the
/// call that hits the broken connection reports the failure.
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
            // The sender is dropped with its owner: the client is gone too, so the connection
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

/// Why a connection attempt failed: the TLS cause in an operator's words when TLS is why, a
/// hint when the server accepts only TLS and the source asked for plain text, else
/// [`describe`].
fn describe_connect(error: &tokio_postgres::Error) -> String {
    if let Some(failure) = TlsFailure::of(error) {
        return failure.to_string();
    }
    let text = describe(error);
    // pg_hba.conf's words for a plain-text attempt that only a `hostssl` line would accept.
    if error.code().is_some_and(|code| code.code() == "28000") && text.ends_with("no encryption") {
        return format!("{text} — the server accepts this login only over TLS: set pg_sslmode to require or stronger");
    }
    text
}

/// A readable error text: SQLSTATE and message for server errors, else the error and its
/// causes (e.g. "error connecting to server: Connection refused (os error 111)"). It never
/// includes the connection configuration.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
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
pub(crate) fn scrub(text: &str, password: Option<&Secret>) -> String {
    match password.map(Secret::expose) {
        Some(secret) if !secret.is_empty() && text.contains(secret) => text.replace(secret, "***"),
        _ => text.to_owned(),
    }
}

/// Locks a std mutex, ignoring poisoning: every critical section in this crate only swaps or
/// reads values, so a panic elsewhere cannot leave them inconsistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
    }
}
