//! Black-box harness: the real `rosetta-server` binary, configured through its environment,
//! against a real PostgreSQL database, driven over HTTP.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod receiver;

use rosetta_test_support::{TemplateDatabase, TestDatabase, test_server};
use serde_json::Value;

pub const SECRET_KEY: &str = "black-box-test-secret-key-0123456789";
pub const API_KEY: &str = "test-api-key-0123456789abcdef";

/// A database with the migrated schema, cloned from this process's template.
pub async fn fresh_database() -> TestDatabase {
    let server = test_server();
    let template = migrated_template().await;
    server.create_database(Some(&template)).await
}

async fn migrated_template() -> TemplateDatabase {
    test_server()
        .template("rosetta", |url| async move {
            rosetta_postgres_adapter::run_migrations(&url).await.expect("migrating the template database");
        })
        .await
}

/// Captured output of the server process.
#[derive(Default)]
struct Output {
    text: Mutex<String>,
    changed: Condvar,
}

/// A running `rosetta-server serve` process.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    child: Child,
    output: Arc<Output>,
    _database: Option<TestDatabase>,
}

impl TestApp {
    /// A server over a fresh database, with API keys configured.
    pub async fn spawn() -> TestApp {
        let database = fresh_database().await;
        let url = database.url().to_owned();
        let mut app = Self::spawn_with(&url, &[]).await;
        app._database = Some(database);
        app
    }

    /// A server over `database_url` with extra environment variables.
    pub async fn spawn_with(database_url: &str, env: &[(&str, &str)]) -> TestApp {
        Self::spawn_wrapped(database_url, env, &[]).await
    }

    /// [`TestApp::spawn_with`], the binary run by `wrapper` (a command and its arguments, to
    /// which the binary's path is appended), e.g. in a namespace of its own.
    pub async fn spawn_wrapped(database_url: &str, env: &[(&str, &str)], wrapper: &[&str]) -> TestApp {
        let mut command = if wrapper.is_empty() { server_command() } else { wrapped_server_command(wrapper) };
        command
            .env("DATABASE_URL", database_url)
            .env("SECRET_KEY", SECRET_KEY)
            .env("API_KEYS", API_KEY)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("WORKERS", "2")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "debug")
            .env("DB_POOL_TIMEOUT", "3")
            .env("SHUTDOWN_TIMEOUT_SECONDS", "10");
        for (key, value) in env {
            command.env(key, value);
        }
        let (child, output) = spawn_capturing(command);
        let mut app = TestApp {
            address: String::new(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client"),
            child,
            output,
            _database: None,
        };
        app.address = app.wait_for_listening(Duration::from_secs(60));
        app
    }

    fn wait_for_listening(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut text = self.output.text.lock().expect("output lock");
        loop {
            for line in text.lines() {
                if let Ok(event) = serde_json::from_str::<Value>(line)
                    && event["message"] == "listening"
                    && let Some(address) = event["address"].as_str()
                {
                    return format!("http://{address}");
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rosetta-server exited with {status} before listening:\n{text}");
            }
            let now = Instant::now();
            assert!(now < deadline, "rosetta-server did not listen within {limit:?}:\n{text}");
            text = self.output.changed.wait_timeout(text, deadline - now).expect("output lock").0;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request with the API key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(API_KEY)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path).json(body).send().await.expect("POST")
    }

    pub async fn patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::PATCH, path).json(body).send().await.expect("PATCH")
    }

    pub async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::PUT, path).json(body).send().await.expect("PUT")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path).send().await.expect("DELETE")
    }

    /// Everything the server printed so far.
    pub fn logs(&self) -> String {
        self.output.text.lock().expect("output lock").clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit on its own.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit within {limit:?}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary in the workspace root (so `config/` is found), with a clean environment.
pub fn server_command() -> Command {
    configured(Command::new(env!("CARGO_BIN_EXE_rosetta-server")))
}

/// [`server_command`], run by `wrapper`.
fn wrapped_server_command(wrapper: &[&str]) -> Command {
    let mut command = Command::new(wrapper[0]);
    command.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_rosetta-server"));
    configured(command)
}

fn configured(mut command: Command) -> Command {
    command
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn spawn_capturing(mut command: Command) -> (Child, Arc<Output>) {
    let mut child = command.spawn().expect("spawning rosetta-server");
    let output = Arc::new(Output::default());
    let streams: Vec<Box<dyn std::io::Read + Send>> =
        vec![Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
    for stream in streams {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut text = output.text.lock().expect("output lock");
                text.push_str(&line);
                text.push('\n');
                output.changed.notify_all();
            }
        });
    }
    (child, output)
}

/// Runs the binary to completion with `args` and environment; returns (status, stdout+stderr).
pub fn run_to_completion(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut command = server_command();
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("running rosetta-server");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status, text)
}

/// A throwaway source cluster started off the async runtime.
pub async fn start_cluster(options: rosetta_test_support::ClusterOptions) -> rosetta_test_support::PgCluster {
    tokio::task::spawn_blocking(move || rosetta_test_support::PgCluster::start(options))
        .await
        .expect("join")
        .expect("throwaway source cluster")
}

/// A superuser connection to `cluster`'s `postgres` database.
pub async fn superuser(cluster: &rosetta_test_support::PgCluster) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls).await.expect("connect to source");
    tokio::spawn(connection);
    client
}

/// Creates the inactive logical slot `slot` on `admin`'s database and writes `rows` rows of about
/// 100 bytes after it (table `t`), so the slot retains WAL.
pub async fn inactive_slot_with_wal(admin: &tokio_postgres::Client, slot: &str, rows: u32) {
    admin.execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", &[&slot]).await.expect("slot");
    admin
        .batch_execute(&format!(
            "CREATE TABLE t(id bigint, pad text); INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g;"
        ))
        .await
        .expect("generate WAL");
}

/// Polls `GET path` until `done` accepts the JSON body or `limit` passes.
pub async fn poll_until(app: &TestApp, path: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let body: Value = app.get(path).await.json().await.expect("JSON");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never satisfied the condition; last body: {body:#}\n{}", app.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers `cluster`'s `postgres` database as a source and returns its id.
pub async fn register(app: &TestApp, name: &str, cluster: &rosetta_test_support::PgCluster) -> i64 {
    let body = serde_json::json!({
        "name": name, "pg_host": "127.0.0.1", "pg_port": cluster.port(), "pg_database": "postgres",
        "pg_username": "postgres", "publication_name": "cdc_pub", "replication_id": 1
    });
    let response = app.post("/api/v1/sources", &body).await;
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    response.json::<Value>().await.expect("JSON")["id"].as_i64().expect("id")
}

/// A valid source body.
pub fn source_body(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "pg_host": "db.internal",
        "pg_port": 5432,
        "pg_database": "orders",
        "pg_username": "replicator",
        "pg_password": "source-password-do-not-leak",
        "publication_name": "cdc_pub",
        "replication_id": 1
    })
}

/// A valid destination body.
pub fn destination_body(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "snowflake_account": "xy12345.eu-central-1",
        "snowflake_user": "loader",
        "snowflake_private_key_passphrase": "passphrase-do-not-leak"
    })
}
