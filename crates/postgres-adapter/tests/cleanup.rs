//! Cleanup tasks against PostgreSQL: a delete records them in its transaction with their own
//! sealed copy of the source's password, they are queued from the moment they exist, and the job's
//! and the request's records complete, reschedule or remove them.

mod support;

use std::time::Duration;

use rosetta_domain::{PageRequest, PgSslMode, PgSslRootCert, PipelineStatus, Secret};
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use rosetta_ports::outbound::{DestinationRepository, PipelineRepository, RepositoryError, SourceRepository};
use rosetta_ports::sources::{CleanupAttempt, CleanupTaskStore};
use rosetta_ports::testing::{ROOT_CERT_PEM, fixed_time, new_destination, new_pipeline, new_source};
use rosetta_postgres_adapter::{PostgresCleanupTaskStore, PostgresLeaseStore};

#[tokio::test]
async fn a_cascade_keeps_each_slot_with_its_own_connection_settings_until_done() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 5, Duration::from_secs(10));
    let repos = support::repositories(&store);
    let tasks = PostgresCleanupTaskStore::new(store.clone(), support::cipher());
    let leases = PostgresLeaseStore::new(store.clone());

    let root = PgSslRootCert::parse(ROOT_CERT_PEM).expect("pem");
    let mut new = new_source("s", Some("p@ss word"));
    new.pg_sslmode = PgSslMode::VerifyFull;
    new.pg_sslrootcert = Some(root.clone());
    let source = repos.sources.create(new, fixed_time(1)).await.expect("source");
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.expect("destination");
    let mut managed = Vec::new();
    for name in ["a", "b", "c"] {
        let pipeline = repos
            .pipelines
            .create(new_pipeline(name, source.id, destination.id, PipelineStatus::Start), fixed_time(1))
            .await
            .expect("pipeline")
            .pipeline;
        if name != "c" {
            repos.pipelines.set_slot_managed(pipeline.id, true, fixed_time(2)).await.expect("managed");
            managed.push(pipeline);
        }
    }
    let recorded = repos.sources.delete(source.id, true, fixed_time(3)).await.expect("cascade");
    assert_eq!(recorded.len(), 2, "one task per managed slot: {recorded:?}");
    assert!(matches!(repos.sources.get(source.id).await, Err(RepositoryError::NotFound { .. })));

    // The tasks outlive the source: each opens its own copy of the password.
    let ids: Vec<_> = recorded.iter().map(|t| t.id).collect();
    let pending = tasks.pending(&ids).await.expect("pending");
    assert_eq!(pending.len(), 2);
    for pending in &pending {
        let connection = pending.connection.as_ref().expect("the kept settings open");
        assert_eq!(connection.source_id, source.id);
        assert_eq!(connection.pg_password.as_ref().map(Secret::expose), Some("p@ss word"));
        assert_eq!((connection.pg_sslmode, connection.pg_sslrootcert.as_ref()), (PgSslMode::VerifyFull, Some(&root)));
    }
    let listed = tasks.list(PageRequest::default()).await.expect("list");
    assert_eq!(listed.total, 2);
    assert_eq!(listed.items, recorded, "listed as recorded, oldest first");

    // Queued, first due after the deleting request's own attempt.
    let owner = LeaseOwner::new("cleanup-test");
    let lease = Duration::from_secs(30);
    let early = leases.claim(Queue::SOURCE_CLEANUP, &owner, fixed_time(4), lease, 10).await.expect("claim");
    assert!(early.is_empty(), "not due yet: {early:?}");
    let due_at = recorded[0].next_attempt_at;
    let claimed = leases.claim(Queue::SOURCE_CLEANUP, &owner, due_at, lease, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2);

    // The job records one success and one failure.
    let retry_at = due_at + chrono::Duration::seconds(1);
    let attempts = vec![
        CleanupAttempt { id: recorded[0].id, outcome: Ok(()), attempts: 1, next: Next::Done },
        CleanupAttempt {
            id: recorded[1].id,
            outcome: Err("cannot connect: refused".into()),
            attempts: 1,
            next: Next::DueAt(retry_at),
        },
    ];
    let done = tasks.record(&owner, attempts).await.expect("record");
    assert_eq!(done.len(), 2);
    let left = tasks.list(PageRequest::default()).await.expect("list");
    assert_eq!(left.total, 1, "the dropped slot's task is gone");
    let task = &left.items[0];
    assert_eq!(
        (task.attempts, task.last_error.as_deref(), task.next_attempt_at),
        (1, Some("cannot connect: refused"), retry_at)
    );
    let again = leases.claim(Queue::SOURCE_CLEANUP, &owner, retry_at, lease, 10).await.expect("claim");
    assert_eq!(again, vec![task.id.get()], "due again at its retry time");

    // Abandoning removes it and its queue item.
    tasks.abandon(task.id).await.expect("abandon");
    assert!(matches!(tasks.abandon(task.id).await, Err(RepositoryError::NotFound { .. })));
    let none = leases.claim(Queue::SOURCE_CLEANUP, &owner, retry_at + chrono::Duration::hours(1), lease, 10).await;
    assert!(none.expect("claim").is_empty());
}

#[tokio::test]
async fn the_requests_own_attempt_reschedules_an_unleased_task() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 5, Duration::from_secs(10));
    let repos = support::repositories(&store);
    let tasks = PostgresCleanupTaskStore::new(store.clone(), support::cipher());
    let leases = PostgresLeaseStore::new(store.clone());
    let source = repos.sources.create(new_source("s", None), fixed_time(1)).await.expect("source");
    let destination = repos.destinations.create(new_destination("d", None), fixed_time(1)).await.expect("destination");
    let pipeline = repos
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .expect("pipeline")
        .pipeline;
    repos.pipelines.set_slot_managed(pipeline.id, true, fixed_time(2)).await.expect("managed");
    let task = repos.pipelines.delete(pipeline.id, fixed_time(3)).await.expect("delete").expect("a task");
    let pending = tasks.pending(&[task.id]).await.expect("pending");
    assert_eq!(pending[0].connection.as_ref().map(|c| c.pg_password.is_none()), Ok(true));

    let soon = fixed_time(3) + chrono::Duration::seconds(1);
    tasks
        .record_unleased(CleanupAttempt {
            id: task.id,
            outcome: Err("busy".into()),
            attempts: 1,
            next: Next::DueAt(soon),
        })
        .await
        .expect("record");
    let owner = LeaseOwner::new("cleanup-test");
    let claimed = leases.claim(Queue::SOURCE_CLEANUP, &owner, soon, Duration::from_secs(30), 10).await.expect("claim");
    assert_eq!(claimed, vec![task.id.get()], "due at the request's retry time, not a minute later");
    tasks
        .record_unleased(CleanupAttempt { id: task.id, outcome: Ok(()), attempts: 2, next: Next::Done })
        .await
        .expect("done");
    assert_eq!(tasks.list(PageRequest::default()).await.expect("list").total, 0);
}
