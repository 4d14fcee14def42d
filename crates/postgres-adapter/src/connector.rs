//! The one way to connect to the metadata database, used by the pools, the shared reader and the
//! migrations: `DATABASE_URL` with libpq's `sslmode` and `sslrootcert` (a file path), which
//! tokio-postgres's own URL parser refuses (`verify-ca`, `verify-full`, `sslrootcert`), over
//! rustls (see `rosetta-pg-tls`).

use std::fmt;
use std::path::PathBuf;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use percent_encoding::percent_decode_str;
use rosetta_domain::{InvalidValue, PgSslMode, PgSslRootCert};
use rosetta_pg_tls::{TlsFailure, TlsSettings, TlsSetupError};

/// Why `DATABASE_URL` cannot be used. Never contains the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    /// tokio-postgres refused the URL (the TLS parameters removed).
    #[error("the database URL is not a valid PostgreSQL connection URL")]
    Invalid(#[source] tokio_postgres::Error),
    /// `sslmode` is not one of libpq's.
    #[error("sslmode {0}")]
    SslMode(#[source] InvalidValue),
    /// The `sslrootcert` file cannot be read.
    #[error("sslrootcert: cannot read {}: {reason}", .path.display())]
    RootCertFile {
        /// The file named.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The `sslrootcert` file is not PEM certificates.
    #[error("sslrootcert: {} {reason}", .path.display())]
    RootCert {
        /// The file named.
        path: PathBuf,
        /// What is wrong with it.
        reason: InvalidValue,
    },
    /// rustls cannot be configured with these settings.
    #[error(transparent)]
    Tls(TlsSetupError),
}

/// Opens connections to the metadata database with the URL's TLS settings.
#[derive(Clone)]
pub struct MetadataConnector {
    config: tokio_postgres::Config,
    tls: TlsSettings,
    sslmode: PgSslMode,
}

impl fmt::Debug for MetadataConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration is left out: it holds the password.
        f.debug_struct("MetadataConnector").field("sslmode", &self.sslmode).finish_non_exhaustive()
    }
}

impl MetadataConnector {
    /// Parses `url` (`postgres://…?sslmode=verify-full&sslrootcert=/path/ca.pem`, any other
    /// parameter tokio-postgres knows) and reads the root certificate file, without connecting.
    /// Without `sslmode`, `prefer`, as libpq.
    pub fn from_url(url: &str) -> Result<Self, DatabaseUrlError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut sslmode = PgSslMode::default();
        let mut root_file = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || percent_decode_str(value).decode_utf8_lossy().into_owned();
            match key {
                "sslmode" => sslmode = PgSslMode::parse(&decoded()).map_err(DatabaseUrlError::SslMode)?,
                "sslrootcert" => root_file = Some(PathBuf::from(decoded())),
                _ => kept.push(pair),
            }
        }
        let stripped = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        let config = stripped.parse::<tokio_postgres::Config>().map_err(DatabaseUrlError::Invalid)?;
        let root_cert = match root_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read_to_string(&path)
                    .map_err(|reason| DatabaseUrlError::RootCertFile { path: path.clone(), reason })?;
                Some(PgSslRootCert::parse(pem).map_err(|reason| DatabaseUrlError::RootCert { path, reason })?)
            }
        };
        let tls = TlsSettings::new(sslmode, root_cert.as_ref()).map_err(DatabaseUrlError::Tls)?;
        let mut config = config;
        config.ssl_mode(tls.negotiation);
        Ok(Self { config, tls, sslmode })
    }

    /// The URL's `sslmode` (`prefer` when it has none).
    pub fn sslmode(&self) -> PgSslMode {
        self.sslmode
    }

    /// Opens one connection; its I/O runs on a task of the current runtime. A TLS failure is
    /// named (certificate not trusted, host name mismatch, server does not support TLS).
    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let (client, connection) = self.config.connect(self.tls.connector.clone()).await.map_err(|error| {
            let text = TlsFailure::of(&error).map_or_else(|| error.to_string(), |failure| failure.to_string());
            ConnectionError::BadConnection(text)
        })?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(url: &str) -> String {
        MetadataConnector::from_url(url).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn libpq_tls_parameters_are_read_and_the_others_kept() {
        let plain = MetadataConnector::from_url("postgres://u:p@db:5432/rosetta").map(|c| c.sslmode());
        assert_eq!(plain.ok(), Some(PgSslMode::Prefer));
        let full = MetadataConnector::from_url("postgres://u:p@db/rosetta?connect_timeout=3&sslmode=verify-full");
        assert_eq!(full.map(|c| c.sslmode()).ok(), Some(PgSslMode::VerifyFull));
        let require = MetadataConnector::from_url("postgresql://db/rosetta?sslmode=require&application_name=x");
        assert_eq!(require.map(|c| c.sslmode()).ok(), Some(PgSslMode::Require));
    }

    #[test]
    fn bad_tls_parameters_are_named_without_the_url() {
        let message = error("postgres://u:hunter2@db/rosetta?sslmode=allow");
        assert!(message.starts_with("sslmode must be one of"), "{message}");
        let message = error("postgres://u:hunter2@db/rosetta?sslmode=verify-full&sslrootcert=%2Fno%2Fsuch.pem");
        assert!(message.starts_with("sslrootcert: cannot read /no/such.pem: No such file"), "{message}");
        let not_pem = std::env::temp_dir().join(format!("rosetta-not-pem-{}.txt", std::process::id()));
        std::fs::write(&not_pem, "hello").unwrap_or_else(|e| panic!("{e}"));
        let message = error(&format!("postgres://u:hunter2@db/rosetta?sslrootcert={}", not_pem.display()));
        let _ = std::fs::remove_file(&not_pem);
        assert!(
            message.ends_with(
                "must hold at least one PEM certificate ('-----BEGIN CERTIFICATE-----' … '-----END CERTIFICATE-----')"
            ),
            "{message}"
        );
        let message = error("postgres://u:hunter2@db/rosetta?frobnicate=1");
        assert_eq!(message, "the database URL is not a valid PostgreSQL connection URL");
    }
}
