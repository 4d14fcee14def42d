//! The store across a database outage: built while the database is down, `Unavailable` within
//! the connection timeout while it is stopped, working again after it restarts, without being
//! rebuilt. Uses its own cluster, since stopping the shared one would break other tests.

mod support;

use std::time::{Duration, Instant};

use rosetta_domain::PageRequest;
use rosetta_ports::outbound::{MetadataHealth, RepositoryError, SourceRepository};
use rosetta_ports::testing::{fixed_time, new_source};
use rosetta_postgres_adapter::run_migrations;
use rosetta_test_support::{ClusterOptions, PgCluster};

const TIMEOUT: Duration = Duration::from_secs(2);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("the blocking task panicked")
}

fn assert_unavailable_in_time<T: std::fmt::Debug>(result: Result<T, RepositoryError>, started: Instant) {
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(RepositoryError::Unavailable(_))), "{result:?}");
    assert!(elapsed < TIMEOUT + Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_rides_out_a_database_restart() {
    let cluster = blocking(|| PgCluster::start(ClusterOptions::default()).unwrap()).await;
    let url = cluster.url("postgres");
    run_migrations(&url).await.unwrap();
    let store = support::store(&url, 4, TIMEOUT);
    let repos = support::repositories(&store);
    let source = repos.sources.create(new_source("s", Some("pw")), fixed_time(1)).await.unwrap();
    // Fill the pool with several connections, all of which the restart will break.
    let reads = futures::future::join_all((0..4).map(|_| repos.sources.get(source.id))).await;
    assert!(reads.iter().all(Result::is_ok));

    let cluster = blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await;
    let started = Instant::now();
    assert_unavailable_in_time(repos.sources.get(source.id).await, started);
    let started = Instant::now();
    assert_unavailable_in_time(store.ping().await, started);
    let started = Instant::now();
    assert_unavailable_in_time(repos.sources.list(PageRequest::default()).await, started);

    let _cluster = blocking(move || {
        cluster.start_again().unwrap();
        cluster
    })
    .await;
    // The very first request after the restart succeeds: dead connections are dropped on
    // checkout and new ones opened.
    assert_eq!(repos.sources.get(source.id).await.unwrap(), source);
    store.check_connection().await.unwrap();
    let connection = repos.sources.connection(source.id).await.unwrap();
    assert_eq!(connection.pg_password.map(|p| p.expose().to_owned()), Some("pw".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_can_be_built_before_the_database_is_up() {
    let cluster = blocking(|| PgCluster::start(ClusterOptions::default()).unwrap()).await;
    let url = cluster.url("postgres");
    run_migrations(&url).await.unwrap();
    let cluster = blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await;

    let store = support::store(&url, 4, TIMEOUT);
    let started = Instant::now();
    assert_unavailable_in_time(store.check_connection().await, started);

    let _cluster = blocking(move || {
        cluster.start_again().unwrap();
        cluster
    })
    .await;
    store.check_connection().await.unwrap();
    let repos = support::repositories(&store);
    repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_never_answers_is_unavailable_within_the_timeout() {
    // A listener that accepts connections and never speaks: the PostgreSQL handshake hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = support::store(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), 4, TIMEOUT);
    let started = Instant::now();
    assert_unavailable_in_time(store.check_connection().await, started);
    assert!(started.elapsed() >= TIMEOUT, "gave up before the timeout, after {:?}", started.elapsed());
}
