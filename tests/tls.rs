//! Black-box tests of TLS: the real server over a metadata database that accepts TLS logins
//! only (`sslmode=verify-full&sslrootcert=…` in `DATABASE_URL`), watching a TLS-only source
//! with `verify-full`, and refusing to start against a server whose certificate it does not
//! trust.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use rosetta_test_support::{ClusterOptions, PgCluster, TestCa};
use serde_json::{Value, json};
use support::{SECRET_KEY, TestApp, poll_until, run_to_completion, start_cluster};

const FAST: &[(&str, &str)] = &[("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2")];

/// A cluster serving a certificate for `localhost`, signed by `ca`, TLS-only over TCP.
async fn tls_only_cluster(ca: &TestCa) -> PgCluster {
    let certificate = ca.server_certificate(&["localhost"]).expect("server certificate");
    start_cluster(ClusterOptions::default().tls(certificate, true)).await
}

/// A superuser session over the cluster's Unix socket (TCP needs TLS on these clusters).
async fn admin(cluster: &PgCluster) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config.host_path(cluster.socket_dir()).port(cluster.port()).user("postgres").dbname("postgres");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("socket connection");
    tokio::spawn(connection);
    client
}

/// `ca`'s certificate in a file the server can read, removed with the returned guard.
fn root_file(ca: &TestCa) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".pem").tempfile().expect("temp file");
    std::fs::write(file.path(), ca.cert_pem()).expect("write the CA");
    file
}

fn verify_full_url(cluster: &PgCluster, root: &tempfile::NamedTempFile) -> String {
    format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        root.path().display()
    )
}

fn tls_source(name: &str, cluster: &PgCluster, ca: &TestCa) -> Value {
    json!({
        "name": name, "pg_host": "localhost", "pg_port": cluster.port(), "pg_database": "postgres",
        "pg_username": "postgres", "pg_sslmode": "verify-full", "pg_sslrootcert": ca.cert_pem(),
        "publication_name": "rosetta_pub", "replication_id": 1
    })
}

#[tokio::test]
async fn the_server_migrates_and_serves_over_verify_full_and_watches_a_tls_only_source() {
    let ca = TestCa::new("Rosetta test CA").expect("CA");
    let other_ca = TestCa::new("Some other CA").expect("CA");
    let cluster = tls_only_cluster(&ca).await;
    let root = root_file(&ca);
    let app = TestApp::spawn_with(&verify_full_url(&cluster, &root), FAST).await;
    assert!(app.logs().contains("metadata database migrated"), "{}", app.logs());

    let readiness: Value = app.get("/api/v1/health").await.json().await.expect("JSON");
    assert_eq!(readiness["status"], "healthy", "{readiness}");
    // Every session the server holds is encrypted (the cluster refuses any other over TCP).
    let admin = admin(&cluster).await;
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.client_port > 0 AND a.backend_type = 'client backend'",
            &[],
        )
        .await
        .expect("sessions");
    let (encrypted, tcp): (i64, i64) = (row.get(0), row.get(1));
    assert!(tcp > 0 && encrypted == tcp, "{encrypted} of {tcp} TCP sessions encrypted");

    // A TLS-only source with verify-full is sampled; the same source trusting another CA is not.
    admin.execute("SELECT pg_create_logical_replication_slot('idle_slot', 'pgoutput')", &[]).await.expect("slot");
    let created: Value =
        app.post("/api/v1/sources", &tls_source("tls-source", &cluster, &ca)).await.json().await.expect("JSON");
    assert_eq!(created["pg_sslmode"], "verify-full", "{created}");
    assert_eq!(created["pg_sslrootcert"], ca.cert_pem(), "the root certificate is readable");
    let id = created["id"].as_i64().expect("id");
    let state = poll_until(&app, &format!("/api/v1/wal-monitor/sources/{id}"), Duration::from_secs(15), |s| {
        s["status"] == "IDLE" || s["status"] == "ACTIVE"
    })
    .await;
    println!("verify-full source sampled: {}", state["status"]);
    let preflight: Value =
        app.post(&format!("/api/v1/sources/{id}/validate"), &json!({})).await.json().await.expect("JSON");
    let tls = preflight["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "tls").expect("tls");
    assert_eq!(tls["status"], "pass", "{tls}");
    assert!(tls["message"].as_str().is_some_and(|m| m.contains("TLSv1.")), "{tls}");

    let untrusted: Value =
        app.post("/api/v1/sources", &tls_source("untrusted", &cluster, &other_ca)).await.json().await.expect("JSON");
    let untrusted_id = untrusted["id"].as_i64().expect("id");
    let failed =
        poll_until(&app, &format!("/api/v1/wal-monitor/sources/{untrusted_id}"), Duration::from_secs(15), |s| {
            s["status"] == "ERROR"
        })
        .await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("certificate not trusted")), "{failed}");

    let bad_pem = json!({ "pg_sslrootcert": "not a certificate" });
    let response = app.patch(&format!("/api/v1/sources/{id}"), &bad_pem).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn a_metadata_server_whose_certificate_is_not_trusted_stops_the_start_with_the_cause() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ca = TestCa::new("Rosetta test CA").expect("CA");
    let cluster = runtime.block_on(tls_only_cluster(&ca));
    let other_root = root_file(&TestCa::new("Some other CA").expect("CA"));
    let url = verify_full_url(&cluster, &other_root);
    let (status, output) = run_to_completion(&["migrate"], &[("DATABASE_URL", &url), ("SECRET_KEY", SECRET_KEY)]);
    assert!(!status.success(), "migrate succeeded against an untrusted server:\n{output}");
    assert!(output.contains("certificate not trusted"), "{output}");

    let root = root_file(&ca);
    let mismatch = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        root.path().display()
    );
    let (status, output) = run_to_completion(&["migrate"], &[("DATABASE_URL", &mismatch), ("SECRET_KEY", SECRET_KEY)]);
    assert!(!status.success() && output.contains("host name mismatch"), "{output}");
}
