//! The harness against real PostgreSQL. These tests fail (never skip) when no PostgreSQL is
//! available, like every database test in the workspace.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rosetta_test_support::{ClusterOptions, PgCluster, TemplateDatabase, postgres_command, test_server};
use tokio_postgres::{Client, NoTls};

/// Connects and drives the connection on a task; returns the task so callers can wait for
/// the connection to be closed.
async fn connect(url: &str) -> (Client, tokio::task::JoinHandle<()>) {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

async fn scalar_i64(url: &str, sql: &str) -> i64 {
    let (client, _task) = connect(url).await;
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_starts_stops_restarts_and_cleans_up() {
    let started = Instant::now();
    let cluster =
        tokio::task::spawn_blocking(|| PgCluster::start(ClusterOptions::default().setting("work_mem", "7MB")))
            .await
            .unwrap()
            .unwrap();
    eprintln!("cluster start: {:?}", started.elapsed());

    let url = cluster.url("postgres");
    assert_eq!(url, format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port()));
    assert_eq!(cluster.host(), "127.0.0.1");
    assert!(cluster.bin_dir().join("pg_basebackup").is_file());
    let first_pid = cluster.postmaster_pid().expect("running server has a pid");

    {
        let (client, _task) = connect(&url).await;
        let wal_level: String = client.query_one("SHOW wal_level", &[]).await.unwrap().get(0);
        assert_eq!(wal_level, "logical");
        let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
        assert_eq!(work_mem, "7MB", "ClusterOptions settings are applied");
        let slots: String = client.query_one("SHOW max_replication_slots", &[]).await.unwrap().get(0);
        assert_eq!(slots, "20");
        client.batch_execute("CREATE TABLE survives (v int); INSERT INTO survives VALUES (42)").await.unwrap();
        // Logical replication works (the reason for a throwaway cluster).
        client.batch_execute("SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')").await.unwrap();
    }

    let port = cluster.port();
    let data_dir = cluster.data_dir().to_path_buf();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await
    .unwrap();
    assert_eq!(cluster.postmaster_pid(), None);
    assert!(tokio_postgres::connect(&url, NoTls).await.is_err(), "the stopped server refuses connections");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again().unwrap();
        cluster
    })
    .await
    .unwrap();
    assert_eq!(cluster.port(), port, "restarted on the same port");
    assert_ne!(cluster.postmaster_pid(), Some(first_pid));
    assert_eq!(scalar_i64(&url, "SELECT v::int8 FROM survives").await, 42);

    let root = data_dir.parent().unwrap().to_path_buf();
    assert!(root.is_dir());
    let stopped = Instant::now();
    tokio::task::spawn_blocking(move || drop(cluster)).await.unwrap();
    eprintln!("cluster drop: {:?}", stopped.elapsed());
    assert!(!root.exists(), "Drop removes {}", root.display());
    assert!(tokio_postgres::connect(&url, NoTls).await.is_err(), "the dropped server is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn databases_cloned_from_a_template_are_independent() {
    let server = test_server();
    let started = Instant::now();
    let template: TemplateDatabase = server
        .template("harness", |url| async move {
            let (client, task) = connect(&url).await;
            client
                .batch_execute("CREATE TABLE made_by_init (v int); INSERT INTO made_by_init VALUES (1)")
                .await
                .unwrap();
            // Close the connection before returning: cloning needs the template idle.
            drop(client);
            task.await.unwrap();
        })
        .await;
    eprintln!("template: {:?}", started.elapsed());

    let started = Instant::now();
    let (a, b) = tokio::join!(server.create_database(Some(&template)), server.create_database(Some(&template)));
    eprintln!("two databases in parallel: {:?}", started.elapsed());
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with("rosetta_test_"));
    assert!(a.url().ends_with(&format!("/{}", a.name())));

    let sql = "SELECT count(*) FROM made_by_init";
    assert_eq!(scalar_i64(a.url(), sql).await, 1);
    assert_eq!(scalar_i64(b.url(), sql).await, 1);
    {
        let (client, _task) = connect(a.url()).await;
        client.batch_execute("INSERT INTO made_by_init VALUES (2)").await.unwrap();
    }
    assert_eq!(scalar_i64(a.url(), sql).await, 2);
    assert_eq!(scalar_i64(b.url(), sql).await, 1, "databases are independent");

    // A connection left open must not prevent the drop (WITH (FORCE)).
    let (_open, _task) = connect(a.url()).await;
    let names = [a.name().to_owned(), b.name().to_owned()];
    let started = Instant::now();
    drop(a);
    drop(b);
    eprintln!("two drops: {:?}", started.elapsed());
    let (admin, _task) = connect(server.admin_url()).await;
    let left: i64 = admin
        .query_one("SELECT count(*) FROM pg_database WHERE datname = ANY($1)", &[&names.to_vec()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "dropping TestDatabase drops the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_is_initialised_once_for_concurrent_callers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let calls = Arc::clone(&calls);
        tasks.push(tokio::spawn(async move {
            test_server()
                .template("once", |_url| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                })
                .await
                .name()
                .to_owned()
        }));
    }
    let mut names = Vec::new();
    for task in tasks {
        names.push(task.await.unwrap());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(names.iter().all(|n| n == &names[0]));
    assert!(names[0].starts_with("rosetta_tpl_once_"));
}

/// Actix tests run on a current-thread runtime; creating and dropping must work there too.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let started = Instant::now();
    let db = test_server().create_database(None).await;
    eprintln!("database without template: {:?}", started.elapsed());
    assert_eq!(scalar_i64(db.url(), "SELECT 1::int8").await, 1);
    let name = db.name().to_owned();
    drop(db);
    let count =
        scalar_i64(test_server().admin_url(), &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"))
            .await;
    assert_eq!(count, 0);
}

#[test]
fn postgres_command_runs_as_the_postgres_user_when_root() {
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap();
    let out = postgres_command(std::path::Path::new("/usr/bin/id")).arg("-un").output().unwrap();
    assert!(out.status.success());
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if root {
        assert_eq!(user, "postgres");
    } else {
        assert_ne!(user, "root");
    }
}

/// Tests SIGSTOP servers to simulate a hung database; dropping such a cluster must neither
/// hang nor leave the server or its directory behind.
#[test]
fn dropping_a_sigstopped_cluster_cleans_up() {
    let cluster = PgCluster::start(ClusterOptions::default()).unwrap();
    let pid = cluster.postmaster_pid().unwrap();
    let root = cluster.data_dir().parent().unwrap().to_path_buf();
    let status = std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    drop(cluster);
    let elapsed = started.elapsed();
    println!("dropping a SIGSTOPped cluster took {elapsed:?}");
    // Typically well under a second; the bound leaves room for a loaded machine and only
    // catches a drop that waits out pg_ctl's own timeouts.
    assert!(elapsed < std::time::Duration::from_secs(30), "dropping took {elapsed:?}");
    assert!(!root.exists());
    // The postmaster may linger briefly as a zombie until its new parent reaps it.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z"), "postmaster {pid} still running: {state}");
}
