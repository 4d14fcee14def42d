//! Pipeline reads cost a constant number of statements whatever the page size.
//!
//! Counts every statement diesel sends through its process-wide default instrumentation, so
//! this binary holds this one test only.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
use rosetta_domain::{PageLimit, PageRequest, PipelineStatus};
use rosetta_ports::outbound::{DestinationRepository, PipelineRepository, SourceRepository};
use rosetta_ports::testing::{fixed_time, new_destination, new_pipeline, new_source};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn statements<T>(work: impl Future<Output = T>) -> (usize, T) {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let value = work.await;
    (STATEMENTS.load(Ordering::SeqCst) - before, value)
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_reads_use_a_constant_number_of_statements() {
    set_default_instrumentation(|| Some(Box::new(CountStatements))).unwrap();
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 2, Duration::from_secs(10));
    let repos = support::repositories(&store);
    let mut ids = Vec::new();
    for i in 0..100 {
        let source = repos.sources.create(new_source(&format!("s{i}"), None), fixed_time(1)).await.unwrap();
        let destination =
            repos.destinations.create(new_destination(&format!("d{i}"), None), fixed_time(1)).await.unwrap();
        let pipeline = new_pipeline(&format!("p{i}"), source.id, destination.id, PipelineStatus::Start);
        ids.push(repos.pipelines.create(pipeline, fixed_time(2)).await.unwrap().pipeline.id);
    }

    let page = |limit| PageRequest { skip: 0, limit: PageLimit::new(limit).unwrap() };
    let (one, listed) = statements(repos.pipelines.list(page(1))).await;
    assert_eq!(listed.unwrap().items.len(), 1);
    let (hundred, listed) = statements(repos.pipelines.list(page(1000))).await;
    assert_eq!(listed.unwrap().items.len(), 100);
    assert_eq!(hundred, one, "a page of 100 took {hundred} statements, a page of 1 took {one}");
    // Pool check + BEGIN + count + page + COMMIT.
    assert!(hundred <= 5, "{hundred} statements for a page");

    // Point reads go to the store's shared connection; the first one opens it (two `SET`s).
    repos.pipelines.get(ids[0]).await.unwrap();
    let (get, got) = statements(repos.pipelines.get(ids[50])).await;
    got.unwrap();
    assert_eq!(get, 1, "{get} statements for one pipeline");
}
