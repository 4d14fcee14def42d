//! Valid domain values for tests.

use chrono::{TimeZone, Utc};
use rosetta_domain::{
    DestinationId, DestinationName, NewDestination, NewPipeline, NewSource, PgDatabase, PgHost, PgPort, PgSslMode,
    PgUsername, PipelineName, PipelineStatus, PublicationName, ReplicationId, Secret, ShortText, SnowflakeAccount,
    SnowflakeSettings, SourceId, SourceName, Timestamp,
};

/// A fixed instant `second` seconds into 2026, with microseconds, as a store keeps it.
pub fn fixed_time(second: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 14, 10, 6, second % 60)
        .single()
        .map(|t| t + chrono::Duration::microseconds(454_666))
        .unwrap_or_default()
}

fn parsed<T, E: std::fmt::Debug>(value: Result<T, E>) -> T {
    #[allow(clippy::unwrap_used)] // fixtures are constants known to be valid
    value.unwrap()
}

/// A real self-signed X.509 certificate (CN=rosetta-test, made with openssl), for TLS settings.
pub const ROOT_CERT_PEM: &str = include_str!("../../../domain/testdata/self-signed.pem");

/// A valid source named `name`, with a password when `password` is given.
pub fn new_source(name: &str, password: Option<&str>) -> NewSource {
    NewSource {
        name: parsed(SourceName::parse(name)),
        pg_host: parsed(PgHost::parse("db.internal")),
        pg_port: PgPort::DEFAULT,
        pg_database: parsed(PgDatabase::parse("orders")),
        pg_username: parsed(PgUsername::parse("replicator")),
        pg_password: password.map(|p| parsed(Secret::parse(p))),
        pg_sslmode: PgSslMode::default(),
        pg_sslrootcert: None,
        publication_name: parsed(PublicationName::parse("cdc_pub")),
        replication_id: parsed(ReplicationId::new(7)),
    }
}

/// A valid destination named `name`, with a passphrase when given.
pub fn new_destination(name: &str, passphrase: Option<&str>) -> NewDestination {
    NewDestination {
        name: parsed(DestinationName::parse(name)),
        settings: SnowflakeSettings {
            snowflake_account: Some(parsed(SnowflakeAccount::parse("xy12345.eu-central-1"))),
            snowflake_user: Some(parsed(ShortText::parse("loader"))),
            snowflake_database: Some(parsed(ShortText::parse("analytics"))),
            snowflake_schema: None,
            snowflake_role: None,
            snowflake_private_key_path: Some(parsed(ShortText::parse("/keys/loader.p8"))),
            snowflake_host: None,
        },
        snowflake_private_key_passphrase: passphrase.map(|p| parsed(Secret::parse(p))),
    }
}

/// A valid pipeline named `name` from `source_id` to `destination_id`.
pub fn new_pipeline(
    name: &str,
    source_id: SourceId,
    destination_id: DestinationId,
    status: PipelineStatus,
) -> NewPipeline {
    NewPipeline { name: parsed(PipelineName::parse(name)), source_id, destination_id, status, slot_name: None }
}
