//! The OpenAPI contract: the real server, started on a fresh database, fuzzed by schemathesis
//! over the document it serves, with every check, over every operation — examples, coverage,
//! fuzzing and stateful phases (the document's links lead from a created resource to the
//! operations on it). Zero failures is the bar; a genuine false positive is switched off by
//! name in `tests/contract/schemathesis.toml`, with why.
//!
//! schemathesis is installed by `scripts/test-tools.sh` (which `make test` runs) into `.tools/`.
//! `CONTRACT_EXAMPLES` sets the examples per operation (default 100), `CONTRACT_SEED` replays a
//! run.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rosetta_test_support::ClusterOptions;
use support::{API_KEY, TestApp, destination_body, fresh_database, source_body, start_cluster};

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn schemathesis() -> PathBuf {
    let tools = std::env::var_os("ROSETTA_TOOLS_DIR").map_or_else(|| root().join(".tools"), PathBuf::from);
    let st = tools.join("venv/bin/st");
    assert!(
        st.is_file(),
        "schemathesis is not installed at {}: run scripts/test-tools.sh (make test does)",
        st.display()
    );
    st
}

/// The figures of a run: `(operations tested, test cases generated, failures)`, from the summary.
fn figures(output: &str) -> (Option<u64>, Option<u64>, u64) {
    let number_after = |marker: &str| {
        output.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(marker)?;
            rest.trim().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
    };
    let failures = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix('❌').map(str::trim))
        .filter_map(|line| line.rsplit(':').next()?.trim().parse::<u64>().ok())
        .sum();
    (
        number_after("Tested:"),
        number_after("Test cases:")
            .or_else(|| output.lines().find_map(|line| line.trim().split(" generated").next()?.trim().parse().ok())),
        failures,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_answers_exactly_as_its_openapi_document_says() {
    let st = schemathesis();
    let database = fresh_database().await;
    // Source operations answer within this (an unreachable source is a 502/504 at once).
    let app = TestApp::spawn_with(database.url(), &[("SOURCE_TIMEOUT_SECONDS", "2")]).await;
    // The first seed source is a real throwaway cluster, so source operations (tables,
    // publication, slots) are exercised on their success paths too; the second is unreachable.
    let cluster = start_cluster(ClusterOptions::default()).await;
    let reachable = serde_json::json!({
        "name": "seed-1", "pg_host": "127.0.0.1", "pg_port": cluster.port(), "pg_database": "postgres",
        "pg_username": "postgres", "publication_name": "cdc_pub", "replication_id": 1
    });
    // A few resources with low ids, so that generated ids (which favour small numbers) also
    // reach existing ones besides those the stateful phase creates through the links.
    for i in 1..=2 {
        let body = if i == 1 { reachable.clone() } else { source_body(&format!("seed-{i}")) };
        let source = app.post("/api/v1/sources", &body).await;
        let destination = app.post("/api/v1/destinations", &destination_body(&format!("seed-{i}"))).await;
        let (source, destination): (serde_json::Value, serde_json::Value) =
            (source.json().await.expect("JSON"), destination.json().await.expect("JSON"));
        let pipeline = serde_json::json!({"name": format!("seed-{i}"), "source_id": source["id"], "destination_id": destination["id"]});
        assert_eq!(app.post("/api/v1/pipelines", &pipeline).await.status(), reqwest::StatusCode::CREATED);
    }
    let document: serde_json::Value = app.get("/openapi.json").await.json().await.expect("the document");
    let operations_in_document: u64 = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |methods| methods.len() as u64))
        .sum();
    let examples = std::env::var("CONTRACT_EXAMPLES").unwrap_or_else(|_| "100".to_owned());
    let reports = root().join("target/contract");
    std::fs::create_dir_all(&reports).expect("report directory");
    let mut command = Command::new(st);
    command
        .current_dir(&reports)
        .arg("--config-file")
        .arg(root().join("tests/contract/schemathesis.toml"))
        .args(["--no-color", "run", &app.url("/openapi.json"), "--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {API_KEY}")])
        .args(["--max-examples", &examples, "--workers", "2", "--request-timeout", "20"])
        .args(["--generation-database", "none", "--report", "junit", "--report-dir"])
        .arg(&reports);
    if let Ok(seed) = std::env::var("CONTRACT_SEED") {
        command.args(["--seed", &seed]);
    }
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("running st");
    let elapsed = started.elapsed();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let (operations, cases, failures) = figures(&text);
    println!("{text}");
    println!(
        "contract: {} operations, {} test cases, {failures} failures, in {elapsed:.1?} ({examples} examples per operation)",
        operations.map_or("?".to_owned(), |n| n.to_string()),
        cases.map_or("?".to_owned(), |n| n.to_string()),
    );
    assert!(output.status.success(), "schemathesis found the server and its document disagree (see above)");
    assert_eq!(failures, 0);
    // Every operation but `GET /openapi.json`, the document itself, which schemathesis reads.
    assert_eq!(operations, Some(operations_in_document - 1), "every operation is tested");
    assert!(elapsed < Duration::from_secs(600), "bounded: {elapsed:?}");
    assert!(!app.logs().contains("source-password-do-not-leak"));
}
