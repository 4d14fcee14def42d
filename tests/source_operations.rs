//! Black-box tests of the source operations: the real server acting on real throwaway clusters
//! — preflight, tables and publication, pipelines' slots with a real consumer, and cleanup tasks
//! that finish a slot's drop once a stopped source is back, shared by two server processes.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rosetta_test_support::{ClusterOptions, PgCluster, SlotConsumer};
use serde_json::{Value, json};
use support::{TestApp, destination_body, fresh_database, poll_until, start_cluster, superuser};

const FAST: &[(&str, &str)] =
    &[("WAL_MONITOR_INTERVAL_SECONDS", "1"), ("WAL_MONITOR_TIMEOUT_SECONDS", "2"), ("SOURCE_TIMEOUT_SECONDS", "3")];

fn source_for(name: &str, cluster: &PgCluster, user: &str, password: Option<&str>) -> Value {
    json!({
        "name": name, "pg_host": "127.0.0.1", "pg_port": cluster.port(), "pg_database": "postgres",
        "pg_username": user, "pg_password": password, "publication_name": "rosetta_pub", "replication_id": 1
    })
}

async fn created(app: &TestApp, path: &str, body: &Value) -> Value {
    let response = app.post(path, body).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "POST {path}: {body}");
    body
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON") })
}

fn check<'a>(preflight: &'a Value, name: &str) -> &'a Value {
    preflight["checks"].as_array().expect("checks").iter().find(|c| c["name"] == name).expect("check")
}

/// The names of the replication slots of `cluster`.
async fn slots_on(cluster: &PgCluster) -> Vec<String> {
    let admin = superuser(cluster).await;
    let rows = admin.query("SELECT slot_name::text FROM pg_replication_slots ORDER BY 1", &[]).await.expect("slots");
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_tables_and_publication_through_the_api() {
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    let ready = start_cluster(ClusterOptions::default()).await;
    let admin = superuser(&ready).await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE \"Customers\" (id int PRIMARY KEY); \
             CREATE TABLE events (at timestamptz); \
             CREATE ROLE scram_user LOGIN PASSWORD 'right-password-3c1d'",
        )
        .await
        .expect("schema");
    let unready = start_cluster(ClusterOptions::default().setting("wal_level", "replica")).await;

    // Not saved: a cluster without logical decoding fails with the fix.
    let (status, preflight) =
        json_of(app.post("/api/v1/sources/validate", &source_for("x", &unready, "postgres", None)).await).await;
    assert_eq!(status, StatusCode::OK, "{preflight}");
    assert_eq!(preflight["ok"], false);
    assert_eq!(check(&preflight, "wal_level")["status"], "fail");
    assert!(check(&preflight, "wal_level")["fix"].as_str().expect("fix").contains("wal_level = logical"));
    assert_eq!(check(&preflight, "connect")["status"], "pass");
    let (_, sources) = json_of(app.get("/api/v1/sources").await).await;
    assert_eq!(sources, json!([]), "validate saves nothing");

    // A wrong password on a scram-sha-256 role: a failed connect, the others skipped, the
    // password nowhere.
    let hba = ready.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("hba");
    std::fs::write(&hba, format!("host all scram_user 127.0.0.1/32 scram-sha-256\n{rules}")).expect("hba");
    admin.batch_execute("SELECT pg_reload_conf()").await.expect("reload");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wrong = "wrong-password-9e8d";
    let response = app.post("/api/v1/sources/validate", &source_for("x", &ready, "scram_user", Some(wrong))).await;
    let text = response.text().await.expect("body");
    assert!(!text.contains(wrong), "{text}");
    let preflight: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(check(&preflight, "connect")["status"], "fail", "{preflight}");
    assert!(
        check(&preflight, "connect")["message"].as_str().expect("message").contains("password authentication failed")
    );
    assert!(preflight["checks"].as_array().expect("checks")[1..].iter().all(|c| c["status"] == "skip"));

    // Saved, as the superuser: ok, with the missing publication a warning.
    let source = created(&app, "/api/v1/sources", &source_for("ready", &ready, "postgres", None)).await;
    let id = source["id"].as_i64().expect("id");
    let (status, preflight) = json_of(app.post(&format!("/api/v1/sources/{id}/validate"), &json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{preflight}");
    assert_eq!(preflight["ok"], true, "{preflight:#}");
    assert_eq!(check(&preflight, "publication")["status"], "warn");

    let (status, tables) = json_of(app.get(&format!("/api/v1/sources/{id}/tables")).await).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = tables
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| format!("{}.{}", t["schema"].as_str().unwrap_or(""), t["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(names, ["public.Customers", "public.events", "public.orders"]);
    assert_eq!(tables[1]["has_primary_key"], false);
    assert_eq!(tables[1]["replica_identity"], "default");

    let publication = format!("/api/v1/sources/{id}/publication");
    let (_, missing) = json_of(app.get(&publication).await).await;
    assert_eq!(missing, json!({"name": "rosetta_pub", "exists": false, "all_tables": false, "tables": []}));
    let (status, made) =
        json_of(app.put(&publication, &json!({"tables": ["public.orders", "public.Customers"]})).await).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["tables"], json!(["public.Customers", "public.orders"]));
    let (_, altered) =
        json_of(app.put(&publication, &json!({"tables": ["public.orders", "public.events"]})).await).await;
    assert_eq!(altered["tables"], json!(["public.events", "public.orders"]));
    let (_, repeated) =
        json_of(app.put(&publication, &json!({"tables": ["public.events", "public.orders"]})).await).await;
    assert_eq!(repeated, altered);
    let (status, refused) =
        json_of(app.put(&publication, &json!({"tables": ["public.orders", "public.nope"]})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["details"][0]["msg"].as_str().expect("msg").contains("public.nope"), "{refused}");
    let (status, _) = json_of(app.put(&publication, &json!({})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, preflight) = json_of(app.post(&format!("/api/v1/sources/{id}/validate"), &json!({})).await).await;
    assert_eq!(check(&preflight, "publication")["status"], "pass");
    assert_eq!(check(&preflight, "replica_identity")["status"], "warn");
    assert!(check(&preflight, "replica_identity")["message"].as_str().expect("message").contains("public.events"));

    // Dropping it is refused while a pipeline of the source is started.
    let destination = created(&app, "/api/v1/destinations", &destination_body("wh")).await;
    let pipeline =
        created(&app, "/api/v1/pipelines", &json!({"name": "p", "source_id": id, "destination_id": destination["id"]}))
            .await;
    let (status, conflict) = json_of(app.delete(&publication).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    app.post(&format!("/api/v1/pipelines/{}/pause", pipeline["id"]), &json!({})).await;
    assert_eq!(app.delete(&publication).await.status(), StatusCode::NO_CONTENT);
    let (status, gone) = json_of(app.delete(&publication).await).await;
    assert_eq!((status, &gone["error"]), (StatusCode::NOT_FOUND, &json!("NotFound")), "{gone}");
    assert!(!app.logs().contains(wrong), "the wrong password is not logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provisioned_slot_is_monitored_with_its_pipeline_and_goes_with_it() {
    let database = fresh_database().await;
    let app = TestApp::spawn_with(database.url(), FAST).await;
    let cluster = start_cluster(ClusterOptions::default()).await;
    superuser(&cluster)
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION rosetta_pub FOR TABLE t")
        .await
        .expect("schema");
    let unready = start_cluster(ClusterOptions::default().setting("wal_level", "replica")).await;
    let source = created(&app, "/api/v1/sources", &source_for("src", &cluster, "postgres", None)).await;
    let no_logical = created(&app, "/api/v1/sources", &source_for("nolog", &unready, "postgres", None)).await;
    let destination = created(&app, "/api/v1/destinations", &destination_body("wh")).await;

    // Provisioning fails on a source without logical decoding: no pipeline.
    let body =
        json!({"name": "fails", "source_id": no_logical["id"], "destination_id": destination["id"], "provision": true});
    let (status, error) = json_of(app.post("/api/v1/pipelines", &body).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"], "SourceError");
    assert_eq!(error["details"]["source_id"], no_logical["id"]);
    assert_eq!(error["details"]["sqlstate"], "55000", "{error}");
    let (_, pipelines) = json_of(app.get("/api/v1/pipelines").await).await;
    assert_eq!(pipelines, json!([]));

    let body =
        json!({"name": "orders", "source_id": source["id"], "destination_id": destination["id"], "provision": true});
    let pipeline = created(&app, "/api/v1/pipelines", &body).await;
    let pipeline_id = pipeline["id"].as_i64().expect("id");
    let slot_name = format!("rosetta_{pipeline_id}");
    assert_eq!((pipeline["slot_name"].as_str(), &pipeline["slot_managed"]), (Some(slot_name.as_str()), &json!(true)));
    assert_eq!(slots_on(&cluster).await, std::slice::from_ref(&slot_name));

    let slot_path = format!("/api/v1/pipelines/{pipeline_id}/slot");
    let (status, slot) = json_of(app.get(&slot_path).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&slot["exists"], &slot["active"], &slot["plugin"], &slot["managed"]),
        (&json!(true), &json!(false), &json!("pgoutput"), &json!(true))
    );
    let (status, again) = json_of(app.post(&slot_path, &json!({})).await).await;
    assert_eq!((status, &again["managed"]), (StatusCode::OK, &json!(true)), "exists: 200");

    // The monitor names the slot's pipeline.
    let monitored =
        poll_until(&app, &format!("/api/v1/wal-monitor/sources/{}", source["id"]), Duration::from_secs(20), |body| {
            body["slots"].as_array().is_some_and(|slots| slots.iter().any(|s| s["slot_name"] == slot_name.as_str()))
        })
        .await;
    let entry = monitored["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["slot_name"] == slot_name.as_str())
        .expect("slot");
    assert_eq!(entry["pipeline_id"], pipeline_id);

    // A consumer attached: a plain delete is refused, force disconnects it.
    let consumer = SlotConsumer::attach(&cluster, &slot_name, "rosetta_pub").expect("pg_recvlogical");
    poll_until(&app, &slot_path, Duration::from_secs(10), |slot| slot["active"] == true).await;
    let (status, refused) = json_of(app.delete(&slot_path).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["message"].as_str().expect("message").contains("force=true"));
    assert_eq!(app.delete(&format!("{slot_path}?force=true")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(slots_on(&cluster).await, Vec::<String>::new());
    drop(consumer);
    let (_, after) = json_of(app.get(&format!("/api/v1/pipelines/{pipeline_id}")).await).await;
    assert_eq!(after["slot_managed"], false, "a dropped slot is no longer Rosetta's");

    // Created again (201), then the pipeline's delete drops it.
    let (status, recreated) = json_of(app.post(&slot_path, &json!({})).await).await;
    assert_eq!((status, &recreated["managed"]), (StatusCode::CREATED, &json!(true)));
    assert_eq!(app.delete(&format!("/api/v1/pipelines/{pipeline_id}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(slots_on(&cluster).await, Vec::<String>::new(), "the pipeline's slot went with it");
    let (_, tasks) = json_of(app.get("/api/v1/cleanup-tasks").await).await;
    assert_eq!(tasks, json!([]), "dropped at once: no task left");

    // A slot Rosetta did not create is adopted unmanaged and survives the pipeline.
    superuser(&cluster)
        .await
        .execute("SELECT pg_create_logical_replication_slot('theirs', 'pgoutput')", &[])
        .await
        .expect("slot");
    let body = json!({"name": "adopts", "source_id": source["id"], "destination_id": destination["id"], "slot_name": "theirs", "provision": true});
    let adopted = created(&app, "/api/v1/pipelines", &body).await;
    assert_eq!(adopted["slot_managed"], false);
    assert_eq!(app.delete(&format!("/api/v1/pipelines/{}", adopted["id"])).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(slots_on(&cluster).await, ["theirs"]);
}

/// The `attempts` of every "cleanup task failed" event of `task` in `logs`.
fn failed_attempts(logs: &str, task: i64) -> Vec<u64> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            event["message"] == "cleanup task failed; retrying"
                && event["cleanup_task_id"].as_str() == Some(task.to_string().as_str())
        })
        .filter_map(|event| event["attempts"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_tasks_drop_slots_once_a_stopped_source_is_back() {
    let database = fresh_database().await;
    // Two processes share the tasks.
    let first = TestApp::spawn_with(database.url(), FAST).await;
    let second = TestApp::spawn_with(database.url(), FAST).await;
    let cluster = start_cluster(ClusterOptions::default()).await;
    superuser(&cluster)
        .await
        .batch_execute("CREATE PUBLICATION rosetta_pub FOR ALL TABLES")
        .await
        .expect("publication");
    let source = created(&first, "/api/v1/sources", &source_for("src", &cluster, "postgres", None)).await;
    let destination = created(&first, "/api/v1/destinations", &destination_body("wh")).await;
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let body =
            json!({"name": name, "source_id": source["id"], "destination_id": destination["id"], "provision": true});
        ids.push(created(&first, "/api/v1/pipelines", &body).await["id"].as_i64().expect("id"));
    }
    let slot = |id: i64| format!("rosetta_{id}");
    assert_eq!(slots_on(&cluster).await.len(), 3);

    tokio::task::block_in_place(|| cluster.stop()).expect("stop the source");

    // The source is down: the pipeline goes anyway, its slot becomes a task.
    let started = Instant::now();
    assert_eq!(first.delete(&format!("/api/v1/pipelines/{}", ids[0])).await.status(), StatusCode::NO_CONTENT);
    eprintln!("delete with the source down answered in {:?}", started.elapsed());
    let (_, tasks) = json_of(second.get("/api/v1/cleanup-tasks").await).await;
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{tasks}");
    let task = &tasks[0];
    assert_eq!(
        (&task["kind"], &task["source_id"], task["slot_name"].as_str()),
        (&json!("drop_slot"), &source["id"], Some(slot(ids[0]).as_str()))
    );
    assert_eq!(task["attempts"], 1);
    assert!(task["last_error"].as_str().expect("error").contains("cannot connect"), "{task}");
    let first_task = task["id"].as_i64().expect("id");

    // A cascade delete of the source: a task per remaining managed slot.
    assert_eq!(
        first.delete(&format!("/api/v1/sources/{}?cascade=true", source["id"])).await.status(),
        StatusCode::NO_CONTENT
    );
    let (_, tasks) = json_of(first.get("/api/v1/cleanup-tasks").await).await;
    assert_eq!(tasks.as_array().map(Vec::len), Some(3), "{tasks}");
    // An operator abandons the last one: its slot stays.
    let abandoned = tasks[2]["id"].as_i64().expect("id");
    assert_eq!(first.delete(&format!("/api/v1/cleanup-tasks/{abandoned}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(first.delete(&format!("/api/v1/cleanup-tasks/{abandoned}")).await.status(), StatusCode::NOT_FOUND);

    // Retried while the source is down, each attempt by one process.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut attempts: Vec<u64> = failed_attempts(&first.logs(), first_task);
    attempts.extend(failed_attempts(&second.logs(), first_task));
    attempts.sort_unstable();
    eprintln!("attempts of task {first_task} by the job: {attempts:?}");
    assert!(!attempts.is_empty(), "the job retried");
    let mut seen = BTreeMap::new();
    for attempt in &attempts {
        *seen.entry(*attempt).or_insert(0) += 1;
    }
    assert!(seen.values().all(|count| *count == 1), "an attempt ran twice: {attempts:?}");

    // The store-wide gauges say two slots are still to drop.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = second.get("/metrics").await.text().await.expect("metrics");
        if metrics.lines().any(|line| line == "rosetta_cleanup_tasks_pending 2") {
            let oldest = metrics.lines().find_map(|line| line.strip_prefix("rosetta_cleanup_task_oldest_seconds "));
            assert!(oldest.and_then(|v| v.parse::<f64>().ok()).is_some_and(|age| age > 0.0), "{oldest:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no pending-task gauge:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    tokio::task::block_in_place(|| cluster.start_again()).expect("start the source");
    let started = Instant::now();
    poll_until(&first, "/api/v1/cleanup-tasks", Duration::from_secs(60), |tasks| {
        tasks.as_array().is_some_and(Vec::is_empty)
    })
    .await;
    eprintln!("tasks done {:?} after the source came back", started.elapsed());
    assert_eq!(slots_on(&cluster).await, [slot(ids[2])], "only the abandoned task's slot is left");
}
