//! Black-box test of secret-key rotation, as an operator does it: secrets sealed under key A;
//! restart with `SECRET_KEYS=B,A` (everything readable, new secrets under B);
//! `rotate-secrets --dry-run`, then `rotate-secrets` (none left under A); restart with
//! `SECRET_KEYS=B` (readable); restart with `SECRET_KEYS=C` (each source ERROR with the key
//! message, other routes fine, no crash).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use rosetta_test_support::{ClusterOptions, PgCluster};
use serde_json::{Value, json};
use support::{SECRET_KEY, TestApp, destination_body, fresh_database, poll_until, run_to_completion, start_cluster};

const KEY_B: &str = "key B: the newer key of at least 32 characters";
const KEY_C: &str = "key C: a key nothing was ever sealed under";
const FAST: [(&str, &str); 2] = [("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2")];

fn source(name: &str, cluster: &PgCluster) -> Value {
    json!({
        "name": name, "pg_host": "127.0.0.1", "pg_port": cluster.port(), "pg_database": "postgres",
        "pg_username": "postgres", "pg_password": format!("{name}-password"),
        "publication_name": "rosetta_pub", "replication_id": 1
    })
}

async fn spawn(url: &str, keys: &str) -> TestApp {
    let mut env = FAST.to_vec();
    env.push(("SECRET_KEYS", keys));
    TestApp::spawn_with(url, &env).await
}

async fn sampled(app: &TestApp, id: i64) -> Value {
    poll_until(app, &format!("/api/v1/wal-monitor/sources/{id}"), Duration::from_secs(15), |s| {
        s["status"] == "ACTIVE" || s["status"] == "IDLE"
    })
    .await
}

/// `rotate-secrets` with `keys`: its exit status and output.
fn rotate(url: &str, keys: &str, dry_run: bool) -> (bool, String) {
    let args: &[&str] = if dry_run { &["rotate-secrets", "--dry-run"] } else { &["rotate-secrets"] };
    let (status, output) =
        run_to_completion(args, &[("DATABASE_URL", url), ("SECRET_KEYS", keys), ("LOG_FORMAT", "text")]);
    (status.success(), output)
}

#[tokio::test]
async fn rotating_the_secret_key_step_by_step() {
    let database = fresh_database().await;
    let url = database.url().to_owned();
    let cluster = start_cluster(ClusterOptions::default()).await;
    let keys_b_a = format!("{KEY_B},{SECRET_KEY}");

    // 1. Key A (the harness's SECRET_KEY).
    let app = spawn(&url, SECRET_KEY).await;
    let first: Value = app.post("/api/v1/sources", &source("first", &cluster)).await.json().await.expect("JSON");
    let first_id = first["id"].as_i64().expect("id");
    let destination = app.post("/api/v1/destinations", &destination_body("warehouse")).await;
    assert_eq!(destination.status(), StatusCode::CREATED);
    sampled(&app, first_id).await;
    drop(app);

    // 2. B newest, A still configured: readable; a new secret is sealed under B.
    let app = spawn(&url, &keys_b_a).await;
    let second: Value = app.post("/api/v1/sources", &source("second", &cluster)).await.json().await.expect("JSON");
    let second_id = second["id"].as_i64().expect("id");
    sampled(&app, first_id).await;
    sampled(&app, second_id).await;
    let logs = app.logs();
    assert!(logs.contains("2 stored secrets are under older keys"), "start-up counts them:\n{logs}");
    drop(app);

    // 3. Rotate: the dry run counts, the run re-seals, a second dry run finds nothing.
    let (ok, dry) = rotate(&url, &keys_b_a, true);
    assert!(ok, "{dry}");
    assert!(dry.contains("dry run: 2 secrets would be re-sealed"), "{dry}");
    let (ok, done) = rotate(&url, &keys_b_a, false);
    assert!(ok && done.contains("re-sealed 2 secrets"), "{done}");
    let (ok, again) = rotate(&url, &keys_b_a, true);
    assert!(ok && again.contains("dry run: 0 secrets would be re-sealed"), "{again}");
    println!("{dry}\n{done}");

    // 4. B alone reads everything.
    let app = spawn(&url, KEY_B).await;
    sampled(&app, first_id).await;
    sampled(&app, second_id).await;
    assert!(app.logs().contains("every stored secret is under the newest key"), "{}", app.logs());
    drop(app);

    // 5. C alone: each source reports the key, nothing else breaks.
    let app = spawn(&url, KEY_C).await;
    for id in [first_id, second_id] {
        let failed = poll_until(&app, &format!("/api/v1/wal-monitor/sources/{id}"), Duration::from_secs(15), |s| {
            s["status"] == "ERROR"
        })
        .await;
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(error.contains("cannot decrypt pg_password: its key is not configured"), "{failed}");
    }
    for path in ["/api/v1/sources", "/api/v1/destinations", "/api/v1/pipelines", "/api/v1/wal-monitor"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    let validate: Value =
        app.post(&format!("/api/v1/sources/{first_id}/validate"), &json!({})).await.json().await.expect("JSON");
    assert!(validate.to_string().contains("its key is not configured"), "{validate}");
    assert!(app.logs().contains("under keys that are not configured"), "{}", app.logs());
    let (ok, stuck) = rotate(&url, KEY_C, false);
    assert!(!ok && stuck.contains("its key is not configured"), "{stuck}");
}
