//! The Prometheus rules shipped in deploy/prometheus: valid (`promtool check rules`), right on
//! their unit tests (`promtool test rules`), and over metric names the server really exports.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn promtool() -> PathBuf {
    let path = repo().join(".tools/debian/usr/bin/promtool");
    assert!(
        path.exists(),
        "promtool is not installed at {}: run scripts/test-tools.sh (make test does)",
        path.display()
    );
    path
}

fn run(args: &[&str]) -> String {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_file_is_valid_and_passes_its_unit_tests() {
    let checked = run(&["check", "rules", "rosetta-rules.yml"]);
    println!("{checked}");
    assert!(checked.contains("SUCCESS: 13 rules found"), "{checked}");
    let tested = run(&["test", "rules", "rosetta-rules.test.yml"]);
    println!("{tested}");
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_metric_the_rules_read_is_one_the_server_exports() {
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/rosetta-rules.yml")).expect("rules");
    // The per-source gauges, and the store-wide ones the binary keeps (alerts, cleanup tasks).
    let gauges = std::fs::read_to_string(repo().join("crates/worker/src/gauges.rs")).expect("gauges")
        + &std::fs::read_to_string(repo().join("crates/rosetta-server/src/startup.rs")).expect("startup");
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("rosetta_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        assert!(gauges.contains(&format!("\"{name}\"")), "the rules read {name}, which the server does not export");
    }
}
