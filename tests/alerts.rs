//! Black-box tests of alerts and notifications: the real server, real source clusters with real
//! slots, and real HTTP receivers.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use rosetta_test_support::{ClusterOptions, PgCluster};
use serde_json::{Value, json};
use sha2::Sha256;
use support::receiver::{Receiver, Reply};
use support::{TestApp, fresh_database, poll_until, register, start_cluster, superuser};

const SIGNING_SECRET: &str = "a-signing-secret-of-32-characters";

const FAST: &[(&str, &str)] =
    &[("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2"), ("NOTIFY_TIMEOUT_SECONDS", "1")];

/// A source cluster with an inactive logical slot `idle_cdc` pinning a few MB of WAL.
async fn cluster_with_idle_slot(options: ClusterOptions) -> (PgCluster, tokio_postgres::Client) {
    let cluster = start_cluster(options).await;
    let admin = superuser(&cluster).await;
    admin.execute("SELECT pg_create_logical_replication_slot('idle_cdc', 'test_decoding')", &[]).await.expect("slot");
    admin
        .batch_execute(
            "CREATE TABLE t(id bigint, pad text); INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;",
        )
        .await
        .expect("generate WAL");
    (cluster, admin)
}

async fn channel(app: &TestApp, body: Value) -> i64 {
    let response = app.post("/api/v1/notification-channels", &body).await;
    let status = response.status();
    let created: Value = response.json().await.expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().expect("id")
}

/// Only `rules` are on for source `id`, with the given settings (the others disabled).
async fn only_rules(app: &TestApp, id: i64, rules: &[(&str, Value)]) {
    let all: Value = app.get(&format!("/api/v1/sources/{id}/alert-rules")).await.json().await.expect("JSON");
    for rule in all.as_array().expect("rules") {
        let name = rule["rule"].as_str().expect("name");
        let body = rules.iter().find(|(r, _)| *r == name).map_or(json!({"enabled": false}), |(_, body)| body.clone());
        let response = app.patch(&format!("/api/v1/sources/{id}/alert-rules/{name}"), &body).await;
        let status = response.status();
        let text = response.text().await.expect("text");
        assert_eq!(status, StatusCode::OK, "{name}: {text}");
    }
}

fn firing<'a>(alerts: &'a Value, rule: &str) -> Option<&'a Value> {
    alerts.as_array()?.iter().find(|alert| alert["rule"] == rule && alert["state"] == "FIRING")
}

/// Checks a Standard Webhooks signature the way a receiver would, from the secret alone.
fn signature_is_valid(request: &support::receiver::Received) -> bool {
    let (Some(id), Some(timestamp), Some(signature)) = (
        request.headers.get("webhook-id"),
        request.headers.get("webhook-timestamp"),
        request.headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).expect("key");
    mac.update(format!("{id}.{timestamp}.{}", request.body).as_bytes());
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    signature.split(' ').any(|candidate| candidate == expected)
}

async fn metrics(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).send().await.expect("GET").text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_over_its_thresholds_fires_escalates_and_resolves_with_signed_webhooks_delivered_once_after_retries() {
    let (source, admin) = cluster_with_idle_slot(ClusterOptions::default()).await;
    // Fails twice with 500, then accepts.
    let receiver = Receiver::start(|n| if n < 2 { Reply::Status(500) } else { Reply::Status(204) }).await;
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    let channel_id = channel(
        &app,
        json!({"name": "ops", "kind": "webhook", "url": format!("{}/hooks/rosetta?token=t0ps3cret", receiver.url),
               "signing_secret": SIGNING_SECRET}),
    )
    .await;
    let shown: Value =
        app.get(&format!("/api/v1/notification-channels/{channel_id}")).await.json().await.expect("JSON");
    assert_eq!(shown["url_host"], receiver.url.as_str());
    assert_eq!(shown["has_signing_secret"], true);
    assert!(!shown.to_string().contains("t0ps3cret") && !shown.to_string().contains(SIGNING_SECRET), "{shown}");

    let id = register(&app, "orders", &source).await;
    only_rules(&app, id, &[("slot_retained_bytes", json!({"warning": 1_048_576, "critical": null}))]).await;

    let alerts = poll_until(&app, "/api/v1/alerts?state=FIRING", Duration::from_secs(15), |alerts| {
        firing(alerts, "slot_retained_bytes").is_some()
    })
    .await;
    let alert = firing(&alerts, "slot_retained_bytes").expect("alert").clone();
    assert_eq!((alert["severity"].as_str(), alert["slot_name"].as_str()), (Some("warning"), Some("idle_cdc")));
    assert_eq!((alert["source_id"].as_i64(), alert["threshold"].as_i64()), (Some(id), Some(1_048_576)));
    assert!(alert["value"].as_i64().is_some_and(|v| v > 1_048_576), "{alert}");
    assert!(alert["summary"].as_str().is_some_and(|s| s.contains("idle_cdc") && s.contains("MiB")), "{alert}");

    // Two 500s, then a 2xx: three attempts, one delivery id, each signed.
    let received = receiver.wait_for(3, Duration::from_secs(20)).await;
    let ids: Vec<&String> = received.iter().filter_map(|r| r.headers.get("webhook-id")).collect();
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "one delivery id across attempts: {ids:?}");
    assert!(received.iter().all(signature_is_valid), "every attempt is signed: {received:#?}");
    assert!(received.iter().all(|r| r.method == "POST" && r.path == "/hooks/rosetta?token=t0ps3cret"));
    let payload: Value = serde_json::from_str(&received[2].body).expect("JSON body");
    assert_eq!(payload["type"], "alert.firing");
    assert_eq!(payload["data"]["id"], alert["id"]);
    assert_eq!(payload["data"]["rule"], "slot_retained_bytes");

    let deliveries = poll_until(
        &app,
        &format!("/api/v1/notification-channels/{channel_id}/deliveries"),
        Duration::from_secs(10),
        |d| d[0]["state"] == "DELIVERED",
    )
    .await;
    assert_eq!(deliveries.as_array().map(Vec::len), Some(1), "{deliveries}");
    assert_eq!((deliveries[0]["attempts"].as_u64(), deliveries[0]["status_code"].as_u64()), (Some(3), Some(204)));
    assert_eq!(deliveries[0]["type"], "alert.firing");
    // Exactly one delivery: nothing more arrives while the alert keeps firing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 3, "no duplicate while firing");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(&app).await;
        let gauge = text.lines().any(|line| {
            line.starts_with("rosetta_alerts_firing{")
                && line.contains("rule=\"slot_retained_bytes\"")
                && line.contains("severity=\"warning\"")
                && line.ends_with(" 1")
        });
        let counted = text.lines().any(|line| {
            line.starts_with("rosetta_notifications_total{")
                && line.contains("kind=\"webhook\"")
                && line.contains("outcome=\"delivered\"")
        });
        if gauge && counted {
            break;
        }
        assert!(Instant::now() < deadline, "alert metrics missing:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A critical threshold below what the slot retains: the same alert escalates, notified.
    only_rules(&app, id, &[("slot_retained_bytes", json!({"warning": 1_048_576, "critical": 2_097_152}))]).await;
    let received = receiver.wait_for(4, Duration::from_secs(15)).await;
    let escalated: Value = serde_json::from_str(&received[3].body).expect("JSON body");
    assert_eq!(
        (escalated["type"].as_str(), escalated["data"]["severity"].as_str()),
        (Some("alert.escalated"), Some("critical"))
    );
    assert_eq!(escalated["data"]["id"], alert["id"], "the same alert");
    assert!(signature_is_valid(&received[3]));

    // Acknowledged: still firing, and stays acknowledged.
    let acked: Value =
        app.post(&format!("/api/v1/alerts/{}/ack", alert["id"]), &json!({})).await.json().await.expect("JSON");
    assert_eq!(acked["state"], "FIRING");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");

    // The slot is consumed: resolved after two good samples, and notified.
    admin
        .execute("SELECT count(*) FROM pg_logical_slot_get_changes('idle_cdc', NULL, NULL)", &[])
        .await
        .expect("consume");
    admin.batch_execute("CHECKPOINT; INSERT INTO t VALUES (0, 'x');").await.expect("checkpoint");
    admin
        .execute("SELECT count(*) FROM pg_logical_slot_get_changes('idle_cdc', NULL, NULL)", &[])
        .await
        .expect("consume");
    poll_until(&app, &format!("/api/v1/alerts/{}", alert["id"]), Duration::from_secs(15), |a| a["state"] == "RESOLVED")
        .await;
    let received = receiver.wait_for(5, Duration::from_secs(10)).await;
    let resolved: Value = serde_json::from_str(&received[4].body).expect("JSON body");
    assert_eq!(resolved["type"], "alert.resolved");
    assert_eq!(resolved["data"]["state"], "RESOLVED");
    assert!(!app.logs().contains("t0ps3cret") && !app.logs().contains(SIGNING_SECRET), "no secret in the log");
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_receiver_fails_at_once_and_a_silent_one_is_bounded_by_the_timeout() {
    let (source, admin) = cluster_with_idle_slot(ClusterOptions::default()).await;
    let refusing = Receiver::start(|_| Reply::Status(400)).await;
    let silent = Receiver::start(|_| Reply::Hang).await;
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    let refusing_id = channel(&app, json!({"name": "refusing", "kind": "webhook", "url": refusing.url})).await;
    let silent_id = channel(&app, json!({"name": "silent", "kind": "slack", "url": silent.url})).await;
    let id = register(&app, "orders", &source).await;
    only_rules(&app, id, &[("slot_inactive", json!({"for_seconds": 0}))]).await;

    let deliveries = poll_until(
        &app,
        &format!("/api/v1/notification-channels/{refusing_id}/deliveries"),
        Duration::from_secs(15),
        |d| d[0]["state"] == "FAILED",
    )
    .await;
    assert_eq!((deliveries[0]["attempts"].as_u64(), deliveries[0]["status_code"].as_u64()), (Some(1), Some(400)));
    assert!(!refusing.received()[0].headers.contains_key("webhook-signature"), "no secret: unsigned");

    let started = Instant::now();
    let deliveries = poll_until(
        &app,
        &format!("/api/v1/notification-channels/{silent_id}/deliveries"),
        Duration::from_secs(15),
        |d| d[0]["attempts"].as_u64().is_some_and(|attempts| attempts >= 1),
    )
    .await;
    println!("first attempt to the silent receiver recorded after {:?}", started.elapsed());
    assert_eq!(deliveries[0]["state"], "PENDING", "a timeout is retried: {deliveries}");
    assert!(deliveries[0]["error"].as_str().is_some_and(|e| e.contains("no answer within 1 s")), "{deliveries}");
    assert!(deliveries[0]["next_attempt_at"].is_string());
    let slack: Value = serde_json::from_str(&silent.received()[0].body).expect("JSON body");
    assert!(slack["text"].as_str().is_some_and(|t| t.contains("WARNING") && t.contains("idle_cdc")), "{slack}");

    // A test message is sent once, now, and says what happened.
    let test: Value = app
        .post(&format!("/api/v1/notification-channels/{refusing_id}/test"), &json!({}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!((test["delivered"].as_bool(), test["status_code"].as_u64()), (Some(false), Some(400)), "{test}");
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}

/// A real Alertmanager on a free port, its data in a temporary directory; stopped when dropped.
struct Alertmanager {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let binary = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.tools/debian/usr/bin/prometheus-alertmanager");
        assert!(binary.exists(), "Alertmanager is not installed at {}: run scripts/test-tools.sh", binary.display());
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n").expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
        // Debian's build reads its default template from /usr/share/prometheus, which is not
        // installed: it runs in a user and mount namespace of its own where the unpacked
        // package's share/ is laid over /usr/share (read-only, nothing changes outside).
        let share = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/debian/usr/share");
        let script =
            format!("mount -t overlay overlay -o lowerdir={}:/usr/share /usr/share && exec \"$@\"", share.display());
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let child = std::process::Command::new("unshare")
            .args(["-rm", "sh", "-c", &script, "alertmanager"])
            .arg(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start Alertmanager");
        Alertmanager { url: format!("http://127.0.0.1:{port}"), child, _dir: dir }
    }

    async fn alerts(&self, client: &reqwest::Client) -> Option<Value> {
        client.get(format!("{}/api/v2/alerts", self.url)).send().await.ok()?.json().await.ok()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_alert_appears_in_a_real_alertmanager_with_its_labels_and_leaves_when_resolved() {
    let (source, admin) = cluster_with_idle_slot(ClusterOptions::default()).await;
    let alertmanager = Alertmanager::start();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alertmanager.alerts(&client).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not start at {}: {}",
            alertmanager.url,
            std::fs::read_to_string(alertmanager._dir.path().join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    channel(&app, json!({"name": "am", "kind": "alertmanager", "url": alertmanager.url})).await;
    let id = register(&app, "orders-primary", &source).await;
    only_rules(&app, id, &[("slot_retained_bytes", json!({"warning": 1_048_576, "critical": null}))]).await;

    let ours = |alerts: &Value| {
        alerts.as_array().and_then(|alerts| {
            alerts.iter().find(|alert| alert["labels"]["alertname"] == "slot_retained_bytes").cloned()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let alert = loop {
        if let Some(alert) = alertmanager.alerts(&client).await.as_ref().and_then(ours) {
            break alert;
        }
        assert!(Instant::now() < deadline, "no alert reached Alertmanager:\n{}", app.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let labels = &alert["labels"];
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["source"], "orders-primary");
    assert_eq!(labels["source_id"], id.to_string());
    assert_eq!(labels["slot_name"], "idle_cdc");
    assert!(alert["annotations"]["summary"].as_str().is_some_and(|s| s.contains("idle_cdc")), "{alert}");
    assert_eq!(alert["status"]["state"], "active");

    admin
        .execute("SELECT count(*) FROM pg_logical_slot_get_changes('idle_cdc', NULL, NULL)", &[])
        .await
        .expect("consume");
    admin.batch_execute("CHECKPOINT; INSERT INTO t VALUES (0, 'x');").await.expect("checkpoint");
    admin
        .execute("SELECT count(*) FROM pg_logical_slot_get_changes('idle_cdc', NULL, NULL)", &[])
        .await
        .expect("consume");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = alertmanager.alerts(&client).await.unwrap_or(Value::Null);
        if ours(&now).is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the resolved alert stayed in Alertmanager: {now}\n{}", app.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}

async fn alert_of(app: &TestApp, rule: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let alerts = poll_until(app, &format!("/api/v1/alerts?rule={rule}&limit=1000"), limit, |alerts| {
        alerts.as_array().is_some_and(|alerts| alerts.iter().any(&done))
    })
    .await;
    alerts.as_array().and_then(|alerts| alerts.iter().find(|a| done(a)).cloned()).expect("alert")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_physical_slot_is_critical_while_a_pipeline_should_run_and_a_dropped_slot_is_noticed() {
    let source = start_cluster(ClusterOptions::default()).await;
    let admin = superuser(&source).await;
    admin.execute("SELECT pg_create_physical_replication_slot('standby', true)", &[]).await.expect("slot");
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    let id = register(&app, "orders", &source).await;
    let destination: Value =
        app.post("/api/v1/destinations", &support::destination_body("warehouse")).await.json().await.expect("JSON");
    let pipeline: Value = app
        .post("/api/v1/pipelines", &json!({"name": "orders-cdc", "source_id": id, "destination_id": destination["id"]}))
        .await
        .json()
        .await
        .expect("JSON");
    let pipeline_id = pipeline["id"].as_i64().expect("pipeline id");
    only_rules(
        &app,
        id,
        &[
            ("slot_inactive", json!({"for_seconds": 0})),
            ("slot_dropped", json!({})),
            ("source_unreachable", json!({"for_seconds": 2})),
        ],
    )
    .await;

    // A new pipeline's desired status is START: something should be consuming.
    let inactive = alert_of(&app, "slot_inactive", Duration::from_secs(15), |a| a["state"] == "FIRING").await;
    assert_eq!((inactive["severity"].as_str(), inactive["slot_name"].as_str()), (Some("critical"), Some("standby")));
    let paused = app.post(&format!("/api/v1/pipelines/{pipeline_id}/pause"), &json!({})).await;
    assert!(paused.status().is_success(), "{}", paused.text().await.unwrap_or_default());
    let de_escalated = poll_until(&app, &format!("/api/v1/alerts/{}", inactive["id"]), Duration::from_secs(10), |a| {
        a["severity"] == "warning"
    })
    .await;
    assert_eq!(de_escalated["state"], "FIRING", "the same alert, less severe");

    // Dropped: slot_dropped fires, the inactive alert resolves (its slot is gone).
    admin.execute("SELECT pg_drop_replication_slot('standby')", &[]).await.expect("drop");
    let dropped = alert_of(&app, "slot_dropped", Duration::from_secs(10), |a| a["state"] == "FIRING").await;
    assert_eq!(dropped["slot_name"], "standby");
    poll_until(&app, &format!("/api/v1/alerts/{}", inactive["id"]), Duration::from_secs(10), |a| {
        a["state"] == "RESOLVED"
    })
    .await;
    // Acknowledging a dropped slot's alert ends it.
    let acked: Value =
        app.post(&format!("/api/v1/alerts/{}/ack", dropped["id"]), &json!({})).await.json().await.expect("JSON");
    assert_eq!(acked["state"], "RESOLVED");

    // Stopped: unreachable after for_seconds of errors, resolved by the first good sample.
    source.stop().expect("stop the source");
    let unreachable = alert_of(&app, "source_unreachable", Duration::from_secs(15), |a| a["state"] == "FIRING").await;
    assert!(unreachable["slot_name"].is_null());
    assert!(
        unreachable["summary"].as_str().is_some_and(|s| s.starts_with("orders could not be sampled")),
        "{unreachable}"
    );
    source.start_again().expect("start the source again");
    poll_until(&app, &format!("/api/v1/alerts/{}", unreachable["id"]), Duration::from_secs(20), |a| {
        a["state"] == "RESOLVED"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_near_max_slot_wal_keep_size_counts_down_goes_unreserved_then_lost() {
    let source = start_cluster(
        ClusterOptions::default().setting("max_wal_size", "1GB").setting("max_slot_wal_keep_size", "32MB"),
    )
    .await;
    let admin = superuser(&source).await;
    admin.execute("SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')", &[]).await.expect("slot");
    admin.batch_execute("CREATE TABLE t(id bigint, pad text)").await.expect("table");
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    let id = register(&app, "orders", &source).await;
    only_rules(
        &app,
        id,
        &[
            ("slot_time_to_lost", json!({"warning": 86_400, "critical": 3_600, "window_seconds": 60})),
            ("slot_unreserved", json!({})),
            ("slot_lost", json!({})),
        ],
    )
    .await;

    // A steady WAL rate while the slot holds its WAL: the countdown to lost fires.
    let writer = {
        let admin = superuser(&source).await;
        tokio::spawn(async move {
            for _ in 0..40 {
                if admin
                    .batch_execute("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let countdown = alert_of(&app, "slot_time_to_lost", Duration::from_secs(20), |a| a["state"] == "FIRING").await;
    println!("time to lost: {}", countdown["summary"]);
    assert!(countdown["value"].as_i64().is_some_and(|left| left <= 86_400), "{countdown}");
    writer.abort();

    // Past max_slot_wal_keep_size: unreserved, then lost at the checkpoint.
    admin
        .batch_execute("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 400000) g")
        .await
        .expect("generate WAL");
    let unreserved = alert_of(&app, "slot_unreserved", Duration::from_secs(15), |a| a["state"] == "FIRING").await;
    assert_eq!(unreserved["severity"], "critical");
    admin.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let lost = alert_of(&app, "slot_lost", Duration::from_secs(15), |a| a["state"] == "FIRING").await;
    assert_eq!((lost["severity"].as_str(), lost["slot_name"].as_str()), (Some("critical"), Some("cdc")));
    admin.execute("SELECT pg_drop_replication_slot('cdc')", &[]).await.expect("drop slot");
}

/// The pid in a lease owner (`host:pid:random`).
fn owner_pid(owner: &str) -> Option<u32> {
    owner.split(':').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_notify_each_transition_once_a_killed_one_loses_nothing_and_a_restart_forgets_nothing() {
    let (source, admin) = cluster_with_idle_slot(ClusterOptions::default()).await;
    // The first attempt never gets an answer; the next ones are accepted.
    let receiver = Receiver::start(|n| if n == 0 { Reply::Hang } else { Reply::Status(200) }).await;
    let database = fresh_database().await;
    let env: &[(&str, &str)] =
        &[("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2"), ("NOTIFY_TIMEOUT_SECONDS", "3")];
    let first = TestApp::spawn_with(database.url(), env).await;
    let second = TestApp::spawn_with(database.url(), env).await;
    let mut apps = vec![first, second];
    channel(&apps[0], json!({"name": "ops", "kind": "webhook", "url": receiver.url})).await;
    let id = register(&apps[0], "orders", &source).await;
    only_rules(&apps[0], id, &[("slot_retained_bytes", json!({"warning": 1_048_576, "critical": null}))]).await;

    // Whoever sends the first attempt is killed while the receiver holds it.
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.expect("metadata");
    tokio::spawn(connection);
    let owner: String = client
        .query_one("SELECT owner FROM leases WHERE queue = 'notification_delivery' AND owner IS NOT NULL", &[])
        .await
        .expect("the delivery is leased")
        .get(0);
    let pid = owner_pid(&owner).expect("pid in the owner");
    let victim = apps.iter().position(|app| app.pid() == pid).expect("one of ours holds it");
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let killed_at = Instant::now();
    let survivor = apps.remove(1 - victim);

    // The survivor takes the delivery over once the lease expires: same id, delivered.
    let received = receiver.wait_for(2, Duration::from_secs(30)).await;
    println!("delivered by the survivor {:?} after the kill", killed_at.elapsed());
    assert_eq!(received[0].headers.get("webhook-id"), received[1].headers.get("webhook-id"), "the same delivery");
    let deliveries: Value =
        poll_until(&survivor, "/api/v1/notification-channels/1/deliveries", Duration::from_secs(10), |d| {
            d[0]["state"] == "DELIVERED"
        })
        .await;
    assert_eq!(deliveries.as_array().map(Vec::len), Some(1), "one transition, one delivery: {deliveries}");
    let firing: Value = survivor.get("/api/v1/alerts?state=FIRING").await.json().await.expect("JSON");
    assert_eq!(firing.as_array().map(Vec::len), Some(1), "one firing alert across both processes: {firing}");
    let alert_id = firing[0]["id"].clone();

    // A restart while the alert fires: the same alert goes on, nothing is sent again.
    drop(survivor);
    let restarted = TestApp::spawn_with(database.url(), env).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let firing: Value = restarted.get("/api/v1/alerts?state=FIRING").await.json().await.expect("JSON");
    assert_eq!(firing.as_array().map(Vec::len), Some(1), "{firing}");
    assert_eq!(firing[0]["id"], alert_id, "neither re-fired nor forgotten");
    assert_eq!(receiver.received().len(), 2, "no notification for a restart");
    let samples: Value = restarted.get(&format!("/api/v1/wal-monitor/sources/{id}")).await.json().await.expect("JSON");
    assert_eq!(samples["status"], "IDLE", "the restarted process samples again: {samples}");
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}
