//! The README's API examples, run as printed — top to bottom, against the real server on a fresh
//! database, with only the host, port and key substituted — and each answer's status compared
//! with the one the README shows next to the command (`# → 201: …`). The README is then right by
//! construction.

mod support;

use std::process::Command;

use support::{API_KEY, TestApp};

/// The host and port the README's examples use, and the key placeholder it shows.
const README_AUTHORITY: &str = "127.0.0.1:8000";
const README_KEY: &str = "dev-3f2a…";

/// The `sh` blocks of the README's `## API` section, in order.
fn api_examples(readme: &str) -> Vec<String> {
    let start = readme.find("\n## API\n").expect("the README has an API section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let block: Vec<&str> = lines.by_ref().take_while(|line| line.trim() != "```").collect();
            blocks.push(block.join("\n"));
        }
    }
    blocks
}

/// The statuses the README shows, in order: one `# → NNN` comment before each command.
fn shown_statuses(blocks: &[String]) -> Vec<u16> {
    blocks
        .iter()
        .flat_map(|block| block.lines())
        .filter_map(|line| line.trim_start().strip_prefix('#')?.trim_start().strip_prefix('→'))
        .map(|rest| rest.trim_start()[..3].parse().unwrap_or_else(|_| panic!("a status after →: {rest}")))
        .collect()
}

#[test]
fn api_examples_shown_as_curl_commands_are_each_commented_with_their_status() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let blocks = api_examples(&readme);
    assert!(blocks.len() >= 6, "found {} example blocks", blocks.len());
    let commands = blocks
        .iter()
        .flat_map(|block| block.lines())
        .filter(|line| line.trim_start().starts_with("curl ") || line.contains("=$(curl "))
        .count();
    assert_eq!(commands, shown_statuses(&blocks).len(), "every curl command has one `# → status` comment");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_api_examples_work_as_printed() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let blocks = api_examples(&readme);
    let expected = shown_statuses(&blocks);
    let app = TestApp::spawn().await;
    // The source the source-operation examples act on (`make run`'s PostgreSQL in the README).
    let source = support::start_cluster(rosetta_test_support::ClusterOptions::default()).await;
    let source_port = source.port().to_string();
    let authority = app.address.trim_start_matches("http://").to_owned();
    let examples = blocks.join("\n").replace(README_AUTHORITY, &authority).replace(README_KEY, API_KEY);
    // Every curl reports its status on stderr; the command itself runs as printed.
    let script = format!(
        "set -u\ncurl() {{ command curl -w '%{{stderr}}README-STATUS %{{http_code}}\\n' \"$@\"; }}\n{examples}\n"
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg("-c").arg(script).env("SRC_PORT", source_port).output()
    })
    .await
    .expect("join")
    .expect("running bash");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let statuses: Vec<u16> =
        stderr.lines().filter_map(|line| line.strip_prefix("README-STATUS ")?.trim().parse().ok()).collect();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("README examples: {} commands, statuses {statuses:?}", statuses.len());
    assert_eq!(
        statuses, expected,
        "the README's examples answered otherwise than it shows\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(!app.logs().contains("s3cret"), "the example password never reaches the log");
}
