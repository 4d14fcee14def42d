//! The console in a real browser: Debian's chromium driven by Playwright (tests/browser, both
//! installed by scripts/test-tools.sh) against the real server, a throwaway source cluster with
//! an inactive slot, a pipeline and a firing alert. The script walks sign-in, the overview, the
//! source page (chart, slots, preflight), the source form (the API's message next to the field),
//! pipeline start / pause and alert acknowledgement; this test checks the API afterwards too.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use rosetta_test_support::ClusterOptions;
use serde_json::{Value, json};
use support::{API_KEY, TestApp, destination_body, fresh_database, poll_until, register, superuser};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_signs_in_reads_a_source_and_acts_on_pipelines_alerts_and_forms() {
    let tools = std::env::var_os("ROSETTA_TOOLS_DIR").map_or_else(|| workspace().join(".tools"), PathBuf::from);
    let modules = tools.join("browser/node_modules");
    assert!(
        modules.join("playwright-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "run scripts/test-tools.sh first (make test does): it installs chromium and playwright-core"
    );

    let source = support::start_cluster(ClusterOptions::default()).await;
    let admin = superuser(&source).await;
    support::inactive_slot_with_wal(&admin, "idle_cdc", 5000).await;
    let database = fresh_database().await;
    let app = TestApp::spawn_with(
        database.url(),
        &[("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2")],
    )
    .await;
    // Any retained WAL fires the slot alert.
    let rule = app.patch("/api/v1/alert-rules/slot_retained_bytes", &json!({"warning": 1, "critical": null})).await;
    assert_eq!(rule.status(), StatusCode::OK);
    let source_id = register(&app, "browsed-source", &source).await;
    let destination = app.post("/api/v1/destinations", &destination_body("browsed-warehouse")).await;
    let destination_id = destination.json::<Value>().await.expect("JSON")["id"].as_i64().expect("id");
    let pipeline = app
        .post(
            "/api/v1/pipelines",
            &json!({"name": "browsed-pipeline", "source_id": source_id, "destination_id": destination_id}),
        )
        .await;
    assert_eq!(pipeline.status(), StatusCode::CREATED);
    let pipeline_id = pipeline.json::<Value>().await.expect("JSON")["id"].as_i64().expect("id");
    let alerts =
        poll_until(&app, &format!("/api/v1/alerts?state=FIRING&source_id={source_id}"), Duration::from_secs(20), |a| {
            a.as_array().is_some_and(|alerts| !alerts.is_empty())
        })
        .await;
    let alert_id = alerts[0]["id"].as_i64().expect("alert id");

    // The hour before the monitor started, so the screenshot's chart has a line to show: the
    // slot's retained WAL growing, WAL on disk at 16 MiB, one failed sample (a gap).
    let (metadata, connection) =
        tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.expect("connect to the metadata database");
    tokio::spawn(connection);
    metadata
        .execute(
            "WITH ticks AS (
                 SELECT now() - interval '62 minutes' + g * interval '30 seconds' AS at, g FROM generate_series(0, 119) g
             ), history AS (
                 INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn,
                                          wal_dir_bytes, slots, error)
                 SELECT $1, at, CASE WHEN g = 80 THEN 'ERROR' ELSE 'IDLE' END,
                        CASE WHEN g = 80 THEN NULL ELSE at END, CASE WHEN g = 80 THEN NULL ELSE false END,
                        CASE WHEN g = 80 THEN NULL ELSE g * 8192 END, CASE WHEN g = 80 THEN NULL ELSE 16 << 20 END,
                        CASE WHEN g = 80 THEN NULL ELSE '[]'::jsonb END,
                        CASE WHEN g = 80 THEN 'no answer within 2s' END
                 FROM ticks
             )
             INSERT INTO wal_slot_metrics (source_id, recorded_at, slot_name, retained_bytes)
             SELECT $1, at, 'idle_cdc', g * 7000 FROM ticks WHERE g <> 80",
            &[&source_id],
        )
        .await
        .expect("an hour of history");

    // docs/console-source.png in the README is a copy of this file.
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-source.png");
    let started = std::time::Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(workspace().join("tests/browser/console.mjs"))
        .env("BASE_URL", &app.address)
        .env("API_KEY", API_KEY)
        .env("SOURCE_ID", source_id.to_string())
        .env("SOURCE_NAME", "browsed-source")
        .env("SLOT_NAME", "idle_cdc")
        .env("PIPELINE_ID", pipeline_id.to_string())
        .env("ALERT_ID", alert_id.to_string())
        .env("SOURCE_PORT", source.port().to_string())
        .env("CHROMIUM", "/usr/bin/chromium")
        .env("PLAYWRIGHT_MODULES", &modules)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(180), output).await.expect("the browser run timed out").expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("browser run ({:?}), screenshot {}:\n{stdout}{stderr}", started.elapsed(), screenshot.display());
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}\nserver log:\n{}", app.logs());

    // What the clicks did, read back from the API by this test as well.
    let sources: Value = app.get("/api/v1/sources?limit=1000").await.json().await.expect("JSON");
    assert!(
        sources
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"].as_str().is_some_and(|n| n.starts_with("console-made-"))))
    );
    let pipeline: Value = app.get(&format!("/api/v1/pipelines/{pipeline_id}")).await.json().await.expect("JSON");
    assert_eq!(pipeline["status"], "START", "paused, then started again");
    let alert: Value = app.get(&format!("/api/v1/alerts/{alert_id}")).await.json().await.expect("JSON");
    assert!(alert["acknowledged_at"].is_string(), "{alert}");
    // The key never reached a log line (the access log logs paths and queries).
    assert!(!app.logs().contains(API_KEY), "the API key is in the server log");
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}
