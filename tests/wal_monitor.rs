//! Black-box tests of the WAL monitor: real server processes, real source clusters with real
//! replication slots, one shared metadata database.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rosetta_test_support::{ClusterOptions, PgCluster};
use serde_json::{Value, json};
use support::{TestApp, fresh_database, poll_until, register, superuser};

async fn start_cluster() -> PgCluster {
    support::start_cluster(ClusterOptions::default()).await
}

/// How many samples this process took (its `rosetta_wal_monitor_samples_total`, both outcomes).
async fn samples_taken(app: &TestApp) -> u64 {
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("GET").text().await.expect("text");
    metrics
        .lines()
        .filter(|line| line.starts_with("rosetta_wal_monitor_samples_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

const FAST_MONITOR: &[(&str, &str)] = &[("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2")];

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_slot_shows_its_retained_wal_in_the_api_and_in_metrics() {
    let source = start_cluster().await;
    let admin = superuser(&source).await;
    support::inactive_slot_with_wal(&admin, "idle_cdc", 20000).await;

    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST_MONITOR).await;
    let id = register(&app, "idle-source", &source).await;

    let state = poll_until(&app, &format!("/api/v1/wal-monitor/sources/{id}"), Duration::from_secs(10), |s| {
        s["status"] == "IDLE"
    })
    .await;
    let slot = state["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|s| s["slot_name"] == "idle_cdc"))
        .expect("slot listed");
    let retained = slot["retained_bytes"].as_u64().expect("retained bytes");
    assert!(retained > 2_000_000, "20k rows of WAL are pinned, got {retained}");
    assert_eq!((slot["active"].as_bool(), slot["slot_type"].as_str()), (Some(false), Some("logical")));
    assert!(state["current_lsn"].as_str().is_some_and(|lsn| lsn.contains('/')));
    assert!(state["size_bytes"].as_u64().is_some_and(|size| size >= retained));

    let listed: Value = app.get("/api/v1/wal-monitor").await.json().await.expect("JSON");
    assert!(listed.as_array().is_some_and(|states| states.iter().any(|s| s["source_id"] == id)));
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("GET").text().await.expect("text");
    let gauge = metrics
        .lines()
        .find(|line| line.starts_with("rosetta_wal_slot_retained_bytes") && line.contains("slot_name=\"idle_cdc\""))
        .unwrap_or_else(|| panic!("no retained-bytes gauge for the slot:\n{metrics}"));
    assert!(gauge.contains(&format!("source_id=\"{id}\"")), "{gauge}");
    let history: Value =
        app.get(&format!("/api/v1/metrics/wal?source_id={id}&limit=5")).await.json().await.expect("JSON");
    assert!(history.as_array().is_some_and(|rows| !rows.is_empty() && rows[0]["size_bytes"].as_u64().is_some()));
    let readiness: Value =
        app.client.get(app.url("/api/v1/health")).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(readiness["checks"]["wal_monitor"]["status"], "healthy");

    // Consuming the slot releases the WAL it pinned.
    admin
        .execute("SELECT count(*) FROM pg_logical_slot_get_changes('idle_cdc', NULL, NULL)", &[])
        .await
        .expect("consume");
    admin.batch_execute("CHECKPOINT; INSERT INTO t VALUES (0, 'x');").await.expect("checkpoint");
    admin
        .execute("SELECT count(*) FROM pg_logical_slot_get_changes('idle_cdc', NULL, NULL)", &[])
        .await
        .expect("consume");
    poll_until(&app, &format!("/api/v1/wal-monitor/sources/{id}"), Duration::from_secs(10), |s| {
        s["slots"][0]["retained_bytes"].as_u64().is_some_and(|now| now < retained / 2)
    })
    .await;
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_source_is_an_error_while_the_others_stay_on_schedule() {
    let (healthy, failing) = tokio::join!(start_cluster(), start_cluster());
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST_MONITOR).await;
    let healthy_id = register(&app, "healthy", &healthy).await;
    let failing_id = register(&app, "failing", &failing).await;
    let path = |id: i64| format!("/api/v1/wal-monitor/sources/{id}");
    let before = poll_until(&app, &path(failing_id), Duration::from_secs(10), |s| s["status"] == "ACTIVE").await;

    failing.stop().expect("stop the source");
    let stopped_at = Instant::now();
    let failed = poll_until(&app, &path(failing_id), Duration::from_secs(10), |s| s["status"] == "ERROR").await;
    assert!(
        stopped_at.elapsed() < Duration::from_secs(6),
        "ERROR within interval + timeout, took {:?}",
        stopped_at.elapsed()
    );
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(failed["current_lsn"], before["current_lsn"], "an error keeps the last good values");

    // Meanwhile the healthy source keeps being sampled about once per second.
    let count = |rows: &Value| rows.as_array().map_or(0, Vec::len);
    let query = format!("/api/v1/metrics/wal?source_id={healthy_id}&limit=1000");
    let first = count(&app.get(&query).await.json().await.expect("JSON"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = count(&app.get(&query).await.json().await.expect("JSON"));
    assert!(second - first >= 3, "healthy source sampled {} times in 4 s", second - first);
    let history: Value =
        app.get(&format!("/api/v1/metrics/wal?source_id={failing_id}&limit=1")).await.json().await.expect("JSON");
    assert_eq!(history[0]["status"], "ERROR");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_share_the_sources_and_one_takes_over_when_the_other_dies() {
    let source = start_cluster().await;
    let database = fresh_database().await;
    let interval: u32 = 2;
    let settings: &[(&str, &str)] = &[("WAL_MONITOR_INTERVAL_SECONDS", "2"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2")];
    let first = TestApp::spawn_with(database.url(), settings).await;
    let mut second = TestApp::spawn_with(database.url(), settings).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(register(&first, &format!("shared-{i}"), &source).await);
    }
    tokio::time::sleep(Duration::from_secs(7)).await;

    let (metadata, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    // Seconds between consecutive samples of each source, over both processes.
    let all_gaps: Vec<f64> = metadata
        .query(
            "SELECT gap FROM (SELECT extract(epoch FROM recorded_at - lag(recorded_at) \
                 OVER (PARTITION BY source_id ORDER BY recorded_at))::float8 AS gap FROM wal_metrics) g \
             WHERE gap IS NOT NULL",
            &[],
        )
        .await
        .expect("gaps")
        .iter()
        .map(|row| row.get::<_, f64>(0))
        .collect();
    assert!(!all_gaps.is_empty(), "sources were sampled repeatedly");
    let shortest = all_gaps.iter().copied().fold(f64::MAX, f64::min);
    assert!(shortest >= f64::from(interval) * 0.9, "a source was sampled twice within one interval ({shortest:.3} s)");
    let per_source: i64 =
        metadata.query_one("SELECT count(DISTINCT source_id) FROM wal_metrics", &[]).await.expect("count").get(0);
    assert_eq!(per_source, 8);
    // Both processes took their share: each one's own counter of samples taken has grown.
    for (name, process) in [("first", &first), ("second", &second)] {
        let samples = samples_taken(process).await;
        println!("{name} process took {samples} samples");
        assert!(samples > 0, "the {name} process sampled nothing");
    }

    // Kill one process without letting it release anything; the other covers every source.
    let killed = tokio::task::spawn_blocking(move || {
        let status = std::process::Command::new("kill").args(["-KILL", &second.pid().to_string()]).status();
        let _ = second.wait_for_exit(Duration::from_secs(5));
        status
    });
    assert!(killed.await.expect("join").expect("kill").success());
    let killed_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(u64::from(interval) * 2 + 2)).await;
    let covered: i64 = metadata
        .query_one("SELECT count(DISTINCT source_id) FROM wal_metrics WHERE recorded_at > $1", &[&killed_at])
        .await
        .expect("count")
        .get(0);
    assert_eq!(covered, 8, "the surviving process samples every source");
    drop(first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_that_does_not_decrypt_costs_only_its_own_source() {
    let source = start_cluster().await;
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST_MONITOR).await;
    // The cluster trusts every login, so any stored password works, as long as it decrypts.
    let body = |name: &str, password: Option<&str>| {
        json!({
            "name": name, "pg_host": "127.0.0.1", "pg_port": source.port(), "pg_database": "postgres",
            "pg_username": "postgres", "pg_password": password, "publication_name": "cdc_pub", "replication_id": 1
        })
    };
    let mut ids = Vec::new();
    for (name, password) in [("with-password", Some("password-a")), ("without", None), ("copied", Some("password-c"))] {
        let created = app.post("/api/v1/sources", &body(name, password)).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        ids.push(created.json::<Value>().await.expect("JSON")["id"].as_i64().expect("id"));
    }
    let (with_password, without, copied) = (ids[0], ids[1], ids[2]);
    let path = |id: i64| format!("/api/v1/wal-monitor/sources/{id}");
    poll_until(&app, &path(copied), Duration::from_secs(10), |s| s["status"] == "ACTIVE").await;

    // A sealed password copied onto another row no longer opens: it is bound to its row.
    let (metadata, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    metadata
        .execute(
            "UPDATE sources SET pg_password_sealed = (SELECT pg_password_sealed FROM sources WHERE id = $1) \
             WHERE id = $2",
            &[&with_password, &copied],
        )
        .await
        .expect("copy the sealed password");

    let failed = poll_until(&app, &path(copied), Duration::from_secs(10), |s| s["status"] == "ERROR").await;
    let error = failed["error"].as_str().expect("error text");
    assert!(error.starts_with("cannot decrypt pg_password"), "{error}");
    assert!(!error.contains("password-a") && !error.contains("password-c"), "{error}");

    // Every other source keeps its schedule.
    for id in [with_password, without] {
        let first = poll_until(&app, &path(id), Duration::from_secs(5), |s| s["status"] == "ACTIVE").await;
        let later = poll_until(&app, &path(id), Duration::from_secs(5), |s| {
            s["status"] == "ACTIVE" && s["last_attempt_at"] != first["last_attempt_at"]
        })
        .await;
        assert!(later["error"].is_null());
    }
    // Readiness stays ready but names the source that cannot be sampled.
    let readiness = app.client.get(app.url("/api/v1/health")).send().await.expect("GET");
    assert_eq!(readiness.status(), StatusCode::OK);
    let readiness: Value = readiness.json().await.expect("JSON");
    let monitor = &readiness["checks"]["wal_monitor"];
    assert_eq!(monitor["status"], "degraded", "{readiness}");
    let message = monitor["error"].as_str().expect("what is degraded");
    assert!(message.contains(&format!("source {copied}: cannot decrypt pg_password")), "{message}");
    assert!(!message.contains(&format!("source {with_password}:")), "{message}");
}

/// The `<text>` contents and the polylines (as point lists) of an SVG document.
fn parse_chart(svg: &str) -> (Vec<String>, Vec<Vec<(f64, f64)>>) {
    let document = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not SVG ({e}):\n{svg}"));
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let texts = document
        .descendants()
        .filter(|node| node.has_tag_name("text"))
        .filter_map(|node| node.text())
        .map(|text| text.trim().to_owned())
        .collect();
    let lines = document
        .descendants()
        .filter(|node| node.has_tag_name("polyline"))
        .map(|node| {
            let points = node.attribute("points").unwrap_or_default().split_whitespace();
            points
                .filter_map(|pair| pair.split_once(','))
                .filter_map(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
                .collect()
        })
        .collect();
    (texts, lines)
}

async fn chart(app: &TestApp, source: i64, query: &str) -> String {
    let response = app.get(&format!("/api/v1/wal-monitor/sources/{source}/chart.svg?{query}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/svg+xml"));
    response.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_draws_recorded_slots_and_keeps_a_spike_when_it_downsamples_many_samples() {
    let source = start_cluster().await;
    let admin = superuser(&source).await;
    admin.execute("SELECT pg_create_logical_replication_slot('idle_cdc', 'test_decoding')", &[]).await.expect("slot");
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST_MONITOR).await;
    let id = register(&app, "charted", &source).await;
    poll_until(&app, &format!("/api/v1/metrics/wal?source_id={id}&limit=3"), Duration::from_secs(15), |rows| {
        rows.as_array().is_some_and(|rows| rows.len() >= 3)
    })
    .await;

    // What the monitor recorded: the slot's line, named in the legend, over the last day.
    let (texts, lines) = parse_chart(&chart(&app, id, "").await);
    assert!(texts.iter().any(|t| t == "idle_cdc"), "legend: {texts:?}");
    assert!(texts.iter().any(|t| t == "WAL on disk"), "legend: {texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("warning ") && t.ends_with("iB")), "default threshold: {texts:?}");
    assert!(!lines.is_empty());

    // 20 000 samples of another slot over ten hours, ten hours ago, one of them a spike of 7 GiB
    // among values under 100 MiB: a 400-pixel chart has at most one point per plot pixel, and
    // its byte axis still reaches the spike (an average would have hidden it).
    let metadata = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(metadata.1);
    let start = chrono::Utc::now() - chrono::TimeDelta::hours(20);
    metadata
        .0
        .execute(
            "WITH rows AS (
                 SELECT $2::timestamptz + g * interval '1.8 seconds' AS at, g FROM generate_series(1, 20000) g
             ), history AS (
                 INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn, slots)
                 SELECT $1, at, 'IDLE', at, false, g * 8192, '[]' FROM rows
             )
             INSERT INTO wal_slot_metrics (source_id, recorded_at, slot_name, retained_bytes)
             SELECT $1, at, 'synthetic', CASE WHEN g = 12345 THEN 7::int8 << 30 ELSE (g % 100) << 20 END FROM rows",
            &[&id, &start],
        )
        .await
        .expect("history");
    let from = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (start + chrono::TimeDelta::hours(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let started = Instant::now();
    let svg = chart(&app, id, &format!("from={from}&to={to}&width=400&height=240")).await;
    println!("chart of 20 000 samples: {:?}", started.elapsed());
    let (texts, lines) = parse_chart(&svg);
    assert!(texts.iter().any(|t| t == "synthetic"), "legend: {texts:?}");
    assert!(!texts.iter().any(|t| t == "idle_cdc"), "not sampled in that range: {texts:?}");
    assert!(texts.iter().any(|t| t == "8.0 GiB"), "the axis reaches the 7 GiB spike: {texts:?}");
    // Runs of more than two points are the slot's line (dashes and legend samples have two).
    let drawn: usize = lines.iter().filter(|run| run.len() > 2).map(Vec::len).sum();
    assert!((100..=400).contains(&drawn), "{drawn} points drawn for 20 000 samples on a 400-pixel chart");

    // A range without samples says so; a source that does not exist is the 404 error body.
    let (texts, _) = parse_chart(&chart(&app, id, "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z").await);
    assert!(texts.iter().any(|t| t == "No samples in this range"), "{texts:?}");
    let missing = app.get("/api/v1/wal-monitor/sources/999999/chart.svg").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(body["error"], "NotFound");
    let reversed = app.get(&format!("/api/v1/wal-monitor/sources/{id}/chart.svg?from={to}&to={from}")).await;
    assert_eq!(reversed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    admin.execute("SELECT pg_drop_replication_slot('idle_cdc')", &[]).await.expect("drop slot");
}
