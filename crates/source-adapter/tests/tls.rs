//! TLS to sources against real servers: throwaway clusters with `ssl=on`, a certificate chain
//! made by the test (rcgen), and `hostssl` alone in `pg_hba.conf` so plain text is refused.
//! Each `pg_sslmode` is checked through the source operations (what preflight reads, including
//! the negotiated TLS) and through the WAL probe.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rosetta_domain::{
    PgDatabase, PgHost, PgPort, PgSslMode, PgSslRootCert, PgUsername, PublicationName, SourceConnection, SourceId,
};
use rosetta_ports::sources::{SourceError, SourceOperations};
use rosetta_ports::wal::{ProbeError, SourceProbe};
use rosetta_source_adapter::{PostgresSourceOperations, PostgresSourceProbe};
use rosetta_test_support::{ClusterOptions, PgCluster, TestCa};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn start_cluster(options: ClusterOptions) -> PgCluster {
    tokio::task::spawn_blocking(move || PgCluster::start(options)).await.unwrap().unwrap()
}

/// A cluster serving a certificate for `localhost` only (no IP address), signed by `ca`,
/// accepting TCP logins over TLS only.
async fn tls_only_cluster(ca: &TestCa) -> PgCluster {
    let certificate = ca.server_certificate(&["localhost"]).unwrap();
    start_cluster(ClusterOptions::default().tls(certificate, true)).await
}

fn source(host: &str, port: u16, mode: PgSslMode, root: Option<&TestCa>) -> SourceConnection {
    SourceConnection {
        source_id: SourceId::new(1),
        pg_host: PgHost::parse(host).unwrap(),
        pg_port: PgPort::new(i64::from(port)).unwrap(),
        pg_database: PgDatabase::parse("postgres").unwrap(),
        pg_username: PgUsername::parse("postgres").unwrap(),
        pg_password: None,
        pg_sslmode: mode,
        pg_sslrootcert: root.map(|ca| PgSslRootCert::parse(ca.cert_pem()).unwrap()),
    }
}

/// What the session negotiated (`pg_stat_ssl`, as preflight's `tls` check reads it), or the
/// connection error's message.
async fn negotiated(source: &SourceConnection) -> Result<Option<String>, String> {
    let publication = PublicationName::parse("rosetta_pub").unwrap();
    match PostgresSourceOperations::new(TIMEOUT).facts(source, &publication).await {
        Ok(facts) => Ok(facts.tls),
        Err(SourceError::Connect { message, .. }) => Err(message),
        Err(other) => panic!("expected a connect error, got {other:?}"),
    }
}

fn assert_fails_with(result: &Result<Option<String>, String>, expected: &str) {
    match result {
        Err(message) => assert!(message.contains(expected), "expected {expected:?} in {message:?}"),
        Ok(tls) => panic!("expected a failure with {expected:?}, connected ({tls:?})"),
    }
}

#[tokio::test]
async fn each_sslmode_against_a_tls_only_server() {
    let ca = TestCa::new("Rosetta test CA").unwrap();
    let other_ca = TestCa::new("Some other CA").unwrap();
    let cluster = tls_only_cluster(&ca).await;
    let port = cluster.port();

    let full = negotiated(&source("localhost", port, PgSslMode::VerifyFull, Some(&ca))).await;
    let how = full.unwrap().unwrap_or_else(|| panic!("verify-full connected without TLS"));
    assert!(how.starts_with("TLSv1."), "negotiated {how}");
    println!("verify-full with the right CA: {how}");

    let untrusted = negotiated(&source("localhost", port, PgSslMode::VerifyFull, Some(&other_ca))).await;
    assert_fails_with(&untrusted, "certificate not trusted");
    let verify_ca_untrusted = negotiated(&source("localhost", port, PgSslMode::VerifyCa, Some(&other_ca))).await;
    assert_fails_with(&verify_ca_untrusted, "certificate not trusted");
    // The system's roots do not hold the test CA either.
    let system_roots = negotiated(&source("localhost", port, PgSslMode::VerifyFull, None)).await;
    assert!(system_roots.is_err(), "the system's roots trusted a test CA: {system_roots:?}");

    // The certificate names `localhost`, not the address.
    let mismatch = negotiated(&source("127.0.0.1", port, PgSslMode::VerifyFull, Some(&ca))).await;
    assert_fails_with(&mismatch, "host name mismatch");
    // verify-ca checks the chain only.
    assert!(negotiated(&source("127.0.0.1", port, PgSslMode::VerifyCa, Some(&ca))).await.unwrap().is_some());
    // …so it needs its own root: with the system's, any public CA's certificate would pass.
    assert_fails_with(
        &negotiated(&source("localhost", port, PgSslMode::VerifyCa, None)).await,
        "verify-ca needs a root",
    );

    // require: encrypted, no certificate check without roots; with roots, the chain is checked.
    assert!(negotiated(&source("127.0.0.1", port, PgSslMode::Require, None)).await.unwrap().is_some());
    let require_checks = negotiated(&source("localhost", port, PgSslMode::Require, Some(&other_ca))).await;
    assert_fails_with(&require_checks, "certificate not trusted");
    // prefer takes the TLS the server offers.
    assert!(negotiated(&source("localhost", port, PgSslMode::Prefer, None)).await.unwrap().is_some());

    let disabled = negotiated(&source("localhost", port, PgSslMode::Disable, None)).await;
    assert_fails_with(&disabled, "no encryption");
    assert_fails_with(&disabled, "set pg_sslmode to require or stronger");
    println!("disable: {}", disabled.unwrap_err());
}

#[tokio::test]
async fn against_a_server_without_tls_prefer_uses_plain_text_and_require_fails() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let port = cluster.port();
    assert_eq!(negotiated(&source("localhost", port, PgSslMode::Prefer, None)).await, Ok(None));
    assert_eq!(negotiated(&source("localhost", port, PgSslMode::Disable, None)).await, Ok(None));
    for mode in [PgSslMode::Require, PgSslMode::VerifyCa, PgSslMode::VerifyFull] {
        let ca = TestCa::new("Rosetta test CA").unwrap();
        assert_fails_with(
            &negotiated(&source("localhost", port, mode, Some(&ca))).await,
            "server does not support TLS",
        );
    }
}

#[tokio::test]
async fn the_probe_samples_over_tls_and_never_shares_a_connection_across_tls_settings() {
    let ca = TestCa::new("Rosetta test CA").unwrap();
    let other_ca = TestCa::new("Some other CA").unwrap();
    let cluster = tls_only_cluster(&ca).await;
    let probe = PostgresSourceProbe::new();

    let trusted = source("localhost", cluster.port(), PgSslMode::VerifyFull, Some(&ca));
    let sample = probe.sample(&trusted, TIMEOUT).await.unwrap();
    assert!(sample.current_lsn.bytes() > 0, "{sample:?}");

    // Same host, port, database and role: only the trusted roots differ. A shared connection
    // would sample it; its own settings must refuse it.
    let untrusted = source("localhost", cluster.port(), PgSslMode::VerifyFull, Some(&other_ca));
    match probe.sample(&untrusted, TIMEOUT).await {
        Err(ProbeError::Connect(message)) => assert!(message.contains("certificate not trusted"), "{message}"),
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    let plain = source("localhost", cluster.port(), PgSslMode::Disable, None);
    match probe.sample(&plain, TIMEOUT).await {
        Err(ProbeError::Connect(message)) => assert!(message.contains("no encryption"), "{message}"),
        other => panic!("expected a refused plain-text login, got {other:?}"),
    }
    assert!(probe.sample(&trusted, TIMEOUT).await.is_ok(), "the trusted source still samples");
}
