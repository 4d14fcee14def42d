//! Behaviour specific to the PostgreSQL adapter, beyond the port contracts: what is stored at
//! rest, corrupt rows, concurrency, pool exhaustion, terminated connections and migrations.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rosetta_domain::{PageLimit, PageRequest, PgPort, PipelinePatch, PipelineStatus, SourceId, SourcePatch};
use rosetta_ports::outbound::{
    DestinationRepository, MetadataHealth, PipelineRepository, RepositoryError, SourceRepository,
};
use rosetta_ports::testing::{fixed_time, new_destination, new_pipeline, new_source};
use rosetta_postgres_adapter::run_migrations;
use rosetta_test_support::test_server;

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn sealed_columns_hold_no_plaintext_and_only_open_in_their_own_row() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 4, TIMEOUT);
    let repos = support::repositories(&store);
    let password = "hunter2-very-secret-password";
    let passphrase = "key-passphrase-also-secret";
    let a = repos.sources.create(new_source("a", Some(password)), fixed_time(1)).await.unwrap();
    let b = repos.sources.create(new_source("b", Some("b-password")), fixed_time(1)).await.unwrap();
    repos.destinations.create(new_destination("d", Some(passphrase)), fixed_time(1)).await.unwrap();

    let raw = support::raw_client(database.url()).await;
    let sealed: Vec<u8> =
        raw.query_one("SELECT pg_password_sealed FROM sources WHERE id = $1", &[&a.id.get()]).await.unwrap().get(0);
    let sealed_passphrase: Vec<u8> =
        raw.query_one("SELECT snowflake_private_key_passphrase_sealed FROM destinations", &[]).await.unwrap().get(0);
    for (bytes, plaintext) in [(&sealed, password), (&sealed_passphrase, passphrase)] {
        assert!(!bytes.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()), "plaintext stored");
        assert_eq!(bytes[0], 2, "format version byte (2: with the key id)");
    }
    // No text column holds it either (a row as text shows bytea as hex).
    for table in ["sources", "destinations"] {
        for plaintext in [password, passphrase] {
            let rows: i64 = raw
                .query_one(&format!("SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0"), &[&plaintext])
                .await
                .unwrap()
                .get(0);
            assert_eq!(rows, 0, "plaintext visible in {table}");
        }
    }

    // The password opens where it was sealed…
    let opened = repos.sources.connection(a.id).await.unwrap().pg_password.unwrap();
    assert_eq!(opened.expose(), password);
    // …but not when copied to another row.
    raw.execute(
        "UPDATE sources SET pg_password_sealed = (SELECT pg_password_sealed FROM sources WHERE id = $1) WHERE id = $2",
        &[&a.id.get(), &b.id.get()],
    )
    .await
    .unwrap();
    match repos.sources.connection(b.id).await {
        Err(RepositoryError::Unexpected(cause)) => {
            assert!(!format!("{cause:?}").contains(password), "the error shows the secret");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
    // In a batch the copied value costs only its own row, and a row written around the API (a
    // host the domain refuses) only that row, too.
    let c = repos.sources.create(new_source("c", None), fixed_time(1)).await.unwrap();
    let d = repos.sources.create(new_source("d", None), fixed_time(1)).await.unwrap();
    raw.execute("UPDATE sources SET pg_host = 'has space' WHERE id = $1", &[&d.id.get()]).await.unwrap();
    let mut batch = repos.sources.connections(&[a.id, b.id, c.id, d.id]).await.expect("the batch as a whole works");
    batch.sort_by_key(|stored| stored.source_id);
    let outcome: Vec<(SourceId, Result<Option<String>, String>)> = batch
        .into_iter()
        .map(|stored| {
            let settings = stored.settings.map(|s| s.pg_password.map(|p| p.expose().to_owned()));
            (stored.source_id, settings.map_err(|e| e.to_string()))
        })
        .collect();
    assert_eq!(outcome[0], (a.id, Ok(Some(password.to_owned()))));
    assert_eq!(outcome[2], (c.id, Ok(None)));
    let unreadable = outcome[1].1.as_ref().unwrap_err();
    assert!(unreadable.starts_with("cannot decrypt pg_password: "), "{unreadable}");
    assert!(!unreadable.contains(password) && !unreadable.contains("b-password"), "{unreadable}");
    let corrupt = outcome[3].1.as_ref().unwrap_err();
    assert!(corrupt.contains("pg_host") && !corrupt.contains("has space"), "{corrupt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_row_is_an_unexpected_error() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 4, TIMEOUT);
    let repos = support::repositories(&store);
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .unwrap();

    let raw = support::raw_client(database.url()).await;
    // A value the schema allows but the domain refuses (a host with a space).
    raw.execute("UPDATE sources SET pg_host = 'bad host'", &[]).await.unwrap();
    assert!(matches!(repos.sources.get(source.id).await, Err(RepositoryError::Unexpected(_))));
    raw.execute("UPDATE sources SET pg_host = 'db.internal'", &[]).await.unwrap();
    // A pipeline whose metadata row was deleted behind the API's back.
    raw.execute("DELETE FROM pipeline_metadata", &[]).await.unwrap();
    assert!(matches!(repos.pipelines.get(pipeline.pipeline.id).await, Err(RepositoryError::Unexpected(_))));
    assert!(matches!(repos.pipelines.list(PageRequest::default()).await, Err(RepositoryError::Unexpected(_))));
    let pause = PipelinePatch { status: Some(PipelineStatus::Pause), ..PipelinePatch::default() };
    assert!(matches!(
        repos.pipelines.update(pipeline.pipeline.id, pause, fixed_time(2)).await,
        Err(RepositoryError::Unexpected(_))
    ));
    // The store itself is fine.
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_with_one_name_give_exactly_one_conflict_per_loser() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 8, TIMEOUT);
    let repos = Arc::new(support::repositories(&store));
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();

    let destinations = futures::future::join_all((0..8).map(|_| {
        let repos = Arc::clone(&repos);
        async move { repos.destinations.create(new_destination("race", Some("pw")), fixed_time(2)).await }
    }))
    .await;
    let pipelines = futures::future::join_all((0..8).map(|_| {
        let repos = Arc::clone(&repos);
        async move {
            repos
                .pipelines
                .create(new_pipeline("race", source.id, destination.id, PipelineStatus::Start), fixed_time(2))
                .await
        }
    }))
    .await;
    for (what, oks, conflicts) in [
        ("destinations", destinations.iter().filter(|r| r.is_ok()).count(), count_conflicts(&destinations)),
        ("pipelines", pipelines.iter().filter(|r| r.is_ok()).count(), count_conflicts(&pipelines)),
    ] {
        assert_eq!((oks, conflicts), (1, 7), "{what}");
    }
}

fn count_conflicts<T>(results: &[Result<T, RepositoryError>]) -> usize {
    results.iter().filter(|r| matches!(r, Err(RepositoryError::Conflict { field: "name", .. }))).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_a_hundred_pipelines_has_everything_nested() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 4, TIMEOUT);
    let repos = support::repositories(&store);
    let mut sources = Vec::new();
    let mut destinations = Vec::new();
    for i in 0..10 {
        sources.push(repos.sources.create(new_source(&format!("s{i}"), Some("pw")), fixed_time(1)).await.unwrap());
        destinations
            .push(repos.destinations.create(new_destination(&format!("d{i}"), None), fixed_time(1)).await.unwrap());
    }
    let mut created = Vec::new();
    for i in 0..100 {
        let (source, destination) = (&sources[i % 10], &destinations[(i / 10) % 10]);
        let status = if i % 3 == 0 { PipelineStatus::Pause } else { PipelineStatus::Start };
        created.push(
            repos
                .pipelines
                .create(new_pipeline(&format!("p{i}"), source.id, destination.id, status), fixed_time(2))
                .await
                .unwrap(),
        );
    }
    let page = repos.pipelines.list(PageRequest { skip: 0, limit: PageLimit::new(1000).unwrap() }).await.unwrap();
    assert_eq!(page.total, 100);
    assert_eq!(page.items, created, "every pipeline with its own metadata, source and destination, by id");
    let tail = repos.pipelines.list(PageRequest { skip: 95, limit: PageLimit::new(10).unwrap() }).await.unwrap();
    assert_eq!((tail.total, tail.items.as_slice()), (100, &created[95..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_is_unavailable_within_the_timeout() {
    let database = support::fresh_database().await;
    let timeout = Duration::from_secs(1);
    let store = support::store(database.url(), 1, timeout);
    let repos = Arc::new(support::repositories(&store));
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .unwrap()
        .pipeline
        .id;

    // Another session holds the pipeline's row, so an update blocks holding the only connection.
    let mut raw = support::raw_client(database.url()).await;
    let blocker = raw.transaction().await.unwrap();
    blocker.execute("SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE", &[&pipeline.get()]).await.unwrap();
    let blocked = tokio::spawn({
        let repos = Arc::clone(&repos);
        async move { repos.pipelines.update(pipeline, pause(), fixed_time(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // (A list needs a pooled connection; point reads have their own.)
    let started = Instant::now();
    let waited = repos.sources.list(PageRequest::default()).await;
    let elapsed = started.elapsed();
    assert!(matches!(waited, Err(RepositoryError::Unavailable(_))), "{waited:?}");
    assert!(elapsed >= timeout && elapsed < timeout + Duration::from_secs(1), "waited {elapsed:?}");

    blocker.rollback().await.unwrap();
    let updated = blocked.await.unwrap().unwrap();
    assert_eq!(updated.pipeline.status, PipelineStatus::Pause);
    repos.sources.get(source.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn terminated_connections_are_replaced_and_a_killed_query_is_unavailable() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 2, TIMEOUT);
    let repos = Arc::new(support::repositories(&store));
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .unwrap()
        .pipeline
        .id;
    let mut raw = support::raw_client(database.url()).await;
    let terminate_others = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                            WHERE datname = current_database() AND pid <> pg_backend_pid()";

    // Idle pooled connections killed (57P01, as in a database restart): the next request
    // gets a fresh connection instead of an error.
    let killed: i64 = raw.query_one(terminate_others, &[]).await.unwrap().get(0);
    assert!(killed >= 1, "the pool held no connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(repos.sources.get(source.id).await.unwrap().id, source.id);

    // A connection killed in the middle of a request: that request is Unavailable (retryable),
    // not Unexpected; both inside a transaction (a pipeline update) and for a single statement
    // (a source update), where the server's 57P01 error reaches the adapter as it is.
    let blocker = raw.transaction().await.unwrap();
    blocker.execute("SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE", &[&pipeline.get()]).await.unwrap();
    blocker.execute("SELECT 1 FROM sources WHERE id = $1 FOR UPDATE", &[&source.id.get()]).await.unwrap();
    let blocked_pipeline = tokio::spawn({
        let repos = Arc::clone(&repos);
        async move { repos.pipelines.update(pipeline, pause(), fixed_time(2)).await.map(drop) }
    });
    let blocked_source = tokio::spawn({
        let repos = Arc::clone(&repos);
        let patch = SourcePatch { pg_port: Some(PgPort::new(6543).unwrap()), ..SourcePatch::default() };
        async move { repos.sources.update(source.id, patch, fixed_time(2)).await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.query_one(terminate_others, &[]).await.unwrap();
    for outcome in [blocked_pipeline.await.unwrap(), blocked_source.await.unwrap()] {
        assert!(matches!(outcome, Err(RepositoryError::Unavailable(_))), "{outcome:?}");
    }
    blocker.rollback().await.unwrap();
    assert_eq!(repos.sources.get(source.id).await.unwrap().pg_port, PgPort::DEFAULT);
    assert_eq!(repos.pipelines.get(pipeline).await.unwrap().pipeline.status, PipelineStatus::Start);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_call_does_not_leave_its_locks_behind() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 1, TIMEOUT);
    let repos = Arc::new(support::repositories(&store));
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .unwrap()
        .pipeline
        .id;

    // The update locks the pipeline row, then waits for the metadata row held here; the caller
    // gives up while the update's transaction holds the pipeline row.
    let mut raw = support::raw_client(database.url()).await;
    let blocker = raw.transaction().await.unwrap();
    blocker
        .execute("SELECT 1 FROM pipeline_metadata WHERE pipeline_id = $1 FOR UPDATE", &[&pipeline.get()])
        .await
        .unwrap();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(300), repos.pipelines.update(pipeline, pause(), fixed_time(2)))
            .await;
    assert!(cancelled.is_err(), "the update should have been waiting for the lock");
    blocker.rollback().await.unwrap();

    // The abandoned transaction ends with its connection instead of idling in the pool.
    let raw = support::raw_client(database.url()).await;
    let started = Instant::now();
    loop {
        let locked = raw.query("SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE NOWAIT", &[&pipeline.get()]).await;
        if locked.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the pipeline row is still locked after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the one-connection pool still serves requests.
    let unchanged = repos.pipelines.get(pipeline).await.unwrap();
    assert_eq!(unchanged.pipeline.status, PipelineStatus::Start);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_pooled_connection_is_replaced_within_the_timeout() {
    let database = support::fresh_database().await;
    let timeout = Duration::from_secs(2);
    let store = support::store(database.url(), 1, timeout);
    store.check_connection().await.unwrap();
    let raw = support::raw_client(database.url()).await;
    let pid: i32 = raw
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The pooled connection's server process stops answering (as behind a network partition)
    // after the connection sat idle long enough to be checked before reuse.
    tokio::time::sleep(Duration::from_millis(600)).await;
    signal(pid, "STOP");
    let started = Instant::now();
    let checked = store.check_connection().await;
    let elapsed = started.elapsed();
    signal(pid, "CONT");
    checked.unwrap();
    assert!(elapsed < timeout, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_connection_used_a_moment_ago_costs_one_call_then_is_replaced() {
    let database = support::fresh_database().await;
    let timeout = Duration::from_secs(1);
    let store = support::store(database.url(), 1, timeout);
    store.check_connection().await.unwrap();
    let raw = support::raw_client(database.url()).await;
    let pid: i32 = raw
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Busy connections are not pinged before reuse (it would double every request's round
    // trips): the first call on the hung one fails within the timeout and closes it…
    signal(pid, "STOP");
    let first = store.check_connection().await;
    signal(pid, "CONT");
    assert!(matches!(first, Err(RepositoryError::Unavailable(_))), "{first:?}");
    // …and the next call gets a new connection.
    store.check_connection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn point_reads_share_one_pipelined_connection_beside_the_pool() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 1, TIMEOUT);
    let repos = support::repositories(&store);
    let source = repos.sources.create(new_source("s", Some("pw")), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Pause), fixed_time(1))
        .await
        .unwrap();

    // 150 reads at once, with a pool of one connection that a writer holds meanwhile.
    let reads = (0..50).map(|_| async {
        let (s, d, p) = tokio::join!(
            repos.sources.get(source.id),
            repos.destinations.get(destination.id),
            repos.pipelines.get(pipeline.pipeline.id)
        );
        (s.unwrap(), d.unwrap(), p.unwrap())
    });
    let write = repos.sources.update(source.id, SourcePatch::default(), fixed_time(2));
    let (reads, written) = tokio::join!(futures::future::join_all(reads), write);
    written.unwrap();
    for (s, d, p) in reads {
        assert_eq!((s.id, d, p.pipeline.id), (source.id, destination.clone(), pipeline.pipeline.id));
    }
    let raw = support::raw_client(database.url()).await;
    let backends: i64 = raw
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(backends, 3, "the pooled connection, the shared one and this one");
    let missing = source.id.get() + 100;
    let read = repos.sources.get(SourceId::new(missing)).await;
    assert!(matches!(read, Err(RepositoryError::NotFound { id, .. }) if id == missing), "{read:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_shared_read_connection_fails_reads_within_the_timeout_then_is_replaced() {
    let database = support::fresh_database().await;
    let timeout = Duration::from_secs(1);
    let store = support::store(database.url(), 1, timeout);
    let repos = support::repositories(&store);
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    repos.sources.get(source.id).await.unwrap();
    let raw = support::raw_client(database.url()).await;
    let pid: i32 = raw
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND query LIKE 'SELECT %FROM \"sources\" WHERE%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    signal(pid, "STOP");
    let started = Instant::now();
    let reads = futures::future::join_all((0..3).map(|_| repos.sources.get(source.id))).await;
    let elapsed = started.elapsed();
    signal(pid, "CONT");
    for read in reads {
        assert!(matches!(read, Err(RepositoryError::Unavailable(_))), "{read:?}");
    }
    assert!(elapsed < timeout + Duration::from_millis(500), "took {elapsed:?}");
    assert_eq!(repos.sources.get(source.id).await.unwrap(), source);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_store_refuses_point_reads() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 1, TIMEOUT);
    let repos = support::repositories(&store);
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    repos.sources.get(source.id).await.unwrap();
    store.close();
    let read = repos.sources.get(source.id).await;
    assert!(matches!(read, Err(RepositoryError::Unavailable(_))), "{read:?}");
}

fn signal(pid: i32, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_concurrently_and_repeatedly() {
    let database = test_server().create_database(None).await;
    let url = database.url();
    let (first, second, third) = tokio::join!(run_migrations(url), run_migrations(url), run_migrations(url));
    for result in [first, second, third] {
        result.unwrap();
    }
    run_migrations(url).await.unwrap();
    let store = support::store(url, 2, TIMEOUT);
    let repos = support::repositories(&store);
    repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let raw = support::raw_client(url).await;
    let applied: i64 = raw.query_one("SELECT count(*) FROM __diesel_schema_migrations", &[]).await.unwrap().get(0);
    assert!(applied >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cascading_delete_removes_pipelines_with_their_metadata() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 2, TIMEOUT);
    let repos = support::repositories(&store);
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.unwrap();
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.unwrap();
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .unwrap();
    repos.destinations.delete(destination.id, true, chrono::Utc::now()).await.unwrap();
    let raw = support::raw_client(database.url()).await;
    let metadata: i64 = raw.query_one("SELECT count(*) FROM pipeline_metadata", &[]).await.unwrap().get(0);
    assert_eq!(metadata, 0, "metadata deleted with its pipeline");
    assert!(matches!(
        repos.pipelines.delete(pipeline.pipeline.id, chrono::Utc::now()).await,
        Err(RepositoryError::NotFound { .. })
    ));
}

fn pause() -> PipelinePatch {
    PipelinePatch { status: Some(PipelineStatus::Pause), ..PipelinePatch::default() }
}
