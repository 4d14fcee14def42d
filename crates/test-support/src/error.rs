//! The harness's error type.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Why the harness could not provide a PostgreSQL.
///
/// Messages carry enough context (the command, its output, the tail of the server log) to
/// diagnose a failed test run without re-running it by hand.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) were found.
    #[error(
        "no PostgreSQL binaries found (looked in: {searched}); install PostgreSQL, set \
         TEST_PG_BIN_DIR to its bin directory, or set TEST_DATABASE_URL to a server where the \
         user may CREATE DATABASE"
    )]
    NoBinaries {
        /// Where the harness looked, for the message.
        searched: String,
    },

    /// The process runs as root but there is no `postgres` system user to run the server as
    /// (`initdb` and `postgres` refuse to run as root).
    #[error("running as root, but the `postgres` system user does not exist: {0}")]
    NoPostgresUser(String),

    /// A filesystem or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A PostgreSQL command-line tool exited unsuccessfully.
    #[error("{command} failed ({status}):\n{output}\n--- server log tail ({log}) ---\n{log_tail}")]
    Command {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its combined stdout and stderr.
        output: String,
        /// The server log file.
        log: PathBuf,
        /// The last lines of the server log (empty if there is no log yet).
        log_tail: String,
    },

    /// A SQL statement or connection failed.
    // tokio-postgres's Display omits the cause ("error connecting to server" without
    // "Connection refused"), so the message spells out the whole chain.
    #[error("{context}: {}", chain(.source))]
    Postgres {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// `err: cause: cause ...`, the error and all its sources on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl HarnessError {
    /// Wraps an I/O error with what the harness was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// Wraps a PostgreSQL error with what the harness was doing.
    pub(crate) fn pg(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Postgres { context: context.into(), source }
    }
}
