//! The contracts of the repository ports.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{
    CleanupKind, DestinationId, DestinationName, DestinationPatch, NewPipeline, PageLimit, PageRequest, Patch, PgPort,
    PgSslMode, PgSslRootCert, PipelineId, PipelineMetadataStatus, PipelineName, PipelinePatch, PipelineStatus, Secret,
    ShortText, SlotName, SourceId, SourceName, SourcePatch,
};

use super::fixtures::{ROOT_CERT_PEM, fixed_time, new_destination, new_pipeline, new_source};
use crate::EntityKind;
use crate::outbound::{DestinationRepository, PipelineRepository, RepositoryError, SourcePipeline, SourceRepository};

/// The three repositories of one empty store, plus whatever must stay alive while they are used
/// (a test database, a temporary directory…).
pub struct RepositoryBundle {
    /// Sources.
    pub sources: Arc<dyn SourceRepository>,
    /// Destinations.
    pub destinations: Arc<dyn DestinationRepository>,
    /// Pipelines.
    pub pipelines: Arc<dyn PipelineRepository>,
    /// Dropped after the case that used the bundle.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for RepositoryBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryBundle").finish_non_exhaustive()
    }
}

/// Makes a fresh, empty store for each contract case.
#[async_trait]
pub trait RepositoryFactory: Send + Sync {
    /// A new store with no sources, destinations or pipelines.
    async fn fresh(&self) -> RepositoryBundle;
}

fn page(skip: u64, limit: u32) -> PageRequest {
    PageRequest { skip, limit: PageLimit::new(limit).unwrap_or_default() }
}

#[allow(clippy::unwrap_used)]
fn name<T: TryFrom<String, Error = rosetta_domain::InvalidValue>>(value: &str) -> T {
    T::try_from(value.to_owned()).unwrap()
}

macro_rules! ok {
    ($case:expr, $call:expr) => {
        $call.await.unwrap_or_else(|e| panic!("[{}] {} failed: {e:?}", $case, stringify!($call)))
    };
}

contract! { $ repository_contract_tests, testing::repositories, RepositoryFactory:
    /// source: create then get.
    async fn source_create_then_get(factory) {
        let case = "source: create then get";
        let store = factory.fresh().await;
        let created = ok!(case, store.sources.create(new_source("Orders-DB", Some("s3cret")), fixed_time(1)));
        assert_eq!(created.name.as_str(), "orders-db", "[{case}] name");
        assert!(created.has_password, "[{case}] has_password");
        assert_eq!((created.created_at, created.updated_at), (fixed_time(1), fixed_time(1)), "[{case}] timestamps");
        assert_eq!(created.pg_port, PgPort::DEFAULT, "[{case}] port");
        let read = ok!(case, store.sources.get(created.id));
        assert_eq!(read, created, "[{case}] get differs from create");
        let without = ok!(case, store.sources.create(new_source("no-password", None), fixed_time(1)));
        assert!(!without.has_password, "[{case}] has_password without password");
        assert_ne!(without.id, created.id, "[{case}] ids must differ");
    }

    /// source: TLS settings are stored, changed and cleared, and reach the connection settings.
    async fn source_tls_settings_round_trip(factory) {
        let case = "source: TLS settings";
        let store = factory.fresh().await;
        let created = ok!(case, store.sources.create(new_source("plain", None), fixed_time(1)));
        assert_eq!((created.pg_sslmode, created.pg_sslrootcert.clone()), (PgSslMode::Prefer, None), "[{case}] defaults");
        #[allow(clippy::unwrap_used)]
        let root = PgSslRootCert::parse(ROOT_CERT_PEM).unwrap();
        let mut new = new_source("verified", None);
        new.pg_sslmode = PgSslMode::VerifyFull;
        new.pg_sslrootcert = Some(root.clone());
        let verified = ok!(case, store.sources.create(new, fixed_time(1)));
        assert_eq!(ok!(case, store.sources.get(verified.id)), verified, "[{case}] read back");
        assert_eq!((verified.pg_sslmode, verified.pg_sslrootcert.clone()), (PgSslMode::VerifyFull, Some(root.clone())));
        let connection = ok!(case, store.sources.connection(verified.id));
        assert_eq!((connection.pg_sslmode, connection.pg_sslrootcert), (PgSslMode::VerifyFull, Some(root.clone())));

        let keep = SourcePatch { pg_sslmode: Some(PgSslMode::VerifyCa), ..SourcePatch::default() };
        let changed = ok!(case, store.sources.update(verified.id, keep, fixed_time(2)));
        assert_eq!((changed.pg_sslmode, changed.pg_sslrootcert), (PgSslMode::VerifyCa, Some(root)), "[{case}] root kept");
        let clear = SourcePatch { pg_sslrootcert: Patch::Clear, ..SourcePatch::default() };
        let cleared = ok!(case, store.sources.update(verified.id, clear, fixed_time(3)));
        assert_eq!(cleared.pg_sslrootcert, None, "[{case}] cleared");
        assert_eq!(ok!(case, store.sources.connection(verified.id)).pg_sslrootcert, None, "[{case}] connection cleared");
    }

    /// source: duplicate name is a conflict.
    async fn source_duplicate_name_is_a_conflict(factory) {
        let case = "source: duplicate name is a conflict";
        let store = factory.fresh().await;
        ok!(case, store.sources.create(new_source("dup", None), fixed_time(1)));
        match store.sources.create(new_source("DUP", None), fixed_time(2)).await {
            Err(RepositoryError::Conflict { entity: EntityKind::Source, field: "name", value }) => {
                assert_eq!(value, "dup", "[{case}] conflict value");
            }
            other => panic!("[{case}] expected Conflict, got {other:?}"),
        }
        let listed = ok!(case, store.sources.list(page(0, 10)));
        assert_eq!(listed.total, 1, "[{case}] the refused create must not be stored");
    }

    /// source: missing ids are NotFound.
    async fn source_missing_ids_are_notfound(factory) {
        let case = "source: missing ids are NotFound";
        let store = factory.fresh().await;
        let missing = SourceId::new(424_242);
        assert!(
            matches!(
                store.sources.get(missing).await,
                Err(RepositoryError::NotFound { entity: EntityKind::Source, id: 424_242 })
            ),
            "[{case}] get"
        );
        assert!(
            matches!(
                store.sources.update(missing, SourcePatch::default(), fixed_time(2)).await,
                Err(RepositoryError::NotFound { .. })
            ),
            "[{case}] update"
        );
        assert!(
            matches!(store.sources.delete(missing, false, fixed_time(9)).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] delete"
        );
        assert!(
            matches!(store.sources.connection(missing).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] connection"
        );
    }

    /// source: list pages by id with total.
    async fn source_list_pages_by_id_with_total(factory) {
        let case = "source: list pages by id with total";
        let store = factory.fresh().await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(ok!(case, store.sources.create(new_source(&format!("s{i}"), None), fixed_time(i))).id);
        }
        let first = ok!(case, store.sources.list(page(0, 2)));
        assert_eq!(first.total, 5, "[{case}] total");
        assert_eq!(first.items.iter().map(|s| s.id).collect::<Vec<_>>(), ids[..2], "[{case}] first page");
        let last = ok!(case, store.sources.list(page(4, 2)));
        assert_eq!(last.items.iter().map(|s| s.id).collect::<Vec<_>>(), ids[4..], "[{case}] last page");
        let beyond = ok!(case, store.sources.list(page(10, 2)));
        assert!(beyond.items.is_empty() && beyond.total == 5, "[{case}] beyond the end");
    }

    /// source: partial update keeps, clears and replaces.
    async fn source_partial_update_keeps_clears_and_replaces(factory) {
        let case = "source: partial update keeps, clears and replaces";
        let store = factory.fresh().await;
        let created = ok!(case, store.sources.create(new_source("a", Some("old")), fixed_time(1)));
        let patch = SourcePatch { pg_port: Some(PgPort::new(6543).unwrap_or_default()), ..SourcePatch::default() };
        let updated = ok!(case, store.sources.update(created.id, patch, fixed_time(2)));
        assert_eq!(updated.pg_port.get(), 6543, "[{case}] port");
        assert_eq!(
            (updated.name.clone(), updated.pg_host.clone()),
            (created.name.clone(), created.pg_host.clone()),
            "[{case}] kept fields"
        );
        assert!(updated.has_password, "[{case}] omitted password must be kept");
        assert_eq!((updated.created_at, updated.updated_at), (fixed_time(1), fixed_time(2)), "[{case}] timestamps");
        assert_eq!(
            ok!(case, store.sources.connection(created.id)).pg_password.map(|p| p.expose().to_owned()),
            Some("old".into()),
            "[{case}] kept password"
        );

        let replace = SourcePatch { pg_password: Patch::Set(secret("new")), ..SourcePatch::default() };
        ok!(case, store.sources.update(created.id, replace, fixed_time(3)));
        let connection = ok!(case, store.sources.connection(created.id));
        assert_eq!(
            connection.pg_password.map(|p| p.expose().to_owned()),
            Some("new".into()),
            "[{case}] replaced password"
        );
        assert_eq!(connection.pg_port.get(), 6543, "[{case}] connection port");

        let clear = SourcePatch { pg_password: Patch::Clear, ..SourcePatch::default() };
        let cleared = ok!(case, store.sources.update(created.id, clear, fixed_time(4)));
        assert!(!cleared.has_password, "[{case}] cleared password");
        assert_eq!(
            ok!(case, store.sources.connection(created.id)).pg_password,
            None,
            "[{case}] cleared connection password"
        );
        assert_eq!(ok!(case, store.sources.get(created.id)), cleared, "[{case}] get after update");

        let other = ok!(case, store.sources.create(new_source("b", Some("other")), fixed_time(6)));
        let mut batch = ok!(case, store.sources.connections(&[other.id, SourceId::new(987_654), created.id]));
        batch.sort_by_key(|c| c.source_id);
        let summary: Vec<_> = batch
            .iter()
            .map(|c| {
                let settings = c.settings.as_ref().unwrap_or_else(|e| panic!("[{case}] {:?}: {e}", c.source_id));
                assert_eq!(settings.source_id, c.source_id, "[{case}] settings of the right source");
                (c.source_id, settings.pg_password.as_ref().map(|p| p.expose().to_owned()))
            })
            .collect();
        assert_eq!(summary, vec![(created.id, None), (other.id, Some("other".to_owned()))], "[{case}] batch lookup");
        assert!(ok!(case, store.sources.connections(&[])).is_empty(), "[{case}] empty batch");

        let unchanged = ok!(case, store.sources.update(created.id, SourcePatch::default(), fixed_time(5)));
        assert_eq!(unchanged, cleared, "[{case}] an empty patch changes nothing");
    }

    /// source: rename conflicts with another source, not with itself.
    async fn source_rename_conflicts_with_another_source_not_with_itself(factory) {
        let case = "source: rename conflicts with another source, not with itself";
        let store = factory.fresh().await;
        let a = ok!(case, store.sources.create(new_source("a", None), fixed_time(1)));
        ok!(case, store.sources.create(new_source("b", None), fixed_time(1)));
        let to_b = SourcePatch { name: Some(name::<SourceName>("B")), ..SourcePatch::default() };
        assert!(
            matches!(
                store.sources.update(a.id, to_b, fixed_time(2)).await,
                Err(RepositoryError::Conflict { field: "name", .. })
            ),
            "[{case}] rename to b"
        );
        let to_self = SourcePatch { name: Some(name::<SourceName>("A")), ..SourcePatch::default() };
        ok!(case, store.sources.update(a.id, to_self, fixed_time(2)));
        assert_eq!(ok!(case, store.sources.get(a.id)).name.as_str(), "a", "[{case}] a refused rename changed nothing");
    }

    /// source: delete refuses while pipelines use it, cascades on request.
    async fn source_delete_refuses_while_pipelines_use_it_cascades_on_request(factory) {
        let case = "source: delete refuses while pipelines use it, cascades on request";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let p2 = ok!(
            case,
            store.pipelines.create(new_pipeline("p2", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        );
        let p1 = ok!(
            case,
            store.pipelines.create(new_pipeline("p1", source.id, destination.id, PipelineStatus::Pause), fixed_time(1))
        );
        match store.sources.delete(source.id, false, fixed_time(9)).await {
            Err(RepositoryError::InUse { entity: EntityKind::Source, id, pipelines }) => {
                assert_eq!(id, source.id.get(), "[{case}] id");
                let named: Vec<_> = pipelines.iter().map(|p| (p.id, p.name.as_str().to_owned())).collect();
                assert_eq!(
                    named,
                    vec![(p2.pipeline.id, "p2".to_owned()), (p1.pipeline.id, "p1".to_owned())],
                    "[{case}] pipelines by id"
                );
            }
            other => panic!("[{case}] expected InUse, got {other:?}"),
        }
        ok!(case, store.sources.get(source.id));
        ok!(case, store.sources.delete(source.id, true, fixed_time(9)));
        assert!(
            matches!(store.sources.get(source.id).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] source gone"
        );
        assert!(
            matches!(store.pipelines.get(p1.pipeline.id).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] pipeline gone"
        );
        assert_eq!(ok!(case, store.pipelines.list(page(0, 10))).total, 0, "[{case}] no pipelines left");
        ok!(case, store.destinations.get(destination.id));
        let unused = ok!(case, store.sources.create(new_source("unused", None), fixed_time(1)));
        ok!(case, store.sources.delete(unused.id, false, fixed_time(9)));
        assert!(
            matches!(store.sources.delete(unused.id, false, fixed_time(9)).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] second delete"
        );
    }

    /// source: concurrent creates with one name.
    async fn source_concurrent_creates_with_one_name(factory) {
        let case = "source: concurrent creates with one name";
        let store = factory.fresh().await;
        let attempts = (0..8).map(|i| {
            let sources = Arc::clone(&store.sources);
            async move { sources.create(new_source("race", None), fixed_time(i)).await }
        });
        let results = futures::future::join_all(attempts).await;
        let created = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results.iter().filter(|r| matches!(r, Err(RepositoryError::Conflict { .. }))).count();
        assert_eq!((created, conflicts), (1, 7), "[{case}] exactly one create wins: {results:?}");
    }

    /// destination: create, get, list.
    async fn destination_create_get_list(factory) {
        let case = "destination: create, get, list";
        let store = factory.fresh().await;
        let created = ok!(case, store.destinations.create(new_destination("WH", Some("pass")), fixed_time(1)));
        assert_eq!(created.name.as_str(), "wh", "[{case}] name");
        assert!(created.has_private_key_passphrase, "[{case}] flag");
        assert_eq!(created.settings, new_destination("wh", None).settings, "[{case}] settings");
        assert_eq!(ok!(case, store.destinations.get(created.id)), created, "[{case}] get");
        let second = ok!(case, store.destinations.create(new_destination("wh2", None), fixed_time(2)));
        assert!(!second.has_private_key_passphrase, "[{case}] no passphrase");
        let listed = ok!(case, store.destinations.list(page(0, 1)));
        assert_eq!((listed.total, listed.items.len()), (2, 1), "[{case}] page");
        assert_eq!(listed.items[0].id, created.id, "[{case}] ordered by id");
        assert!(
            matches!(
                store.destinations.create(new_destination("wh", None), fixed_time(3)).await,
                Err(RepositoryError::Conflict { entity: EntityKind::Destination, field: "name", .. })
            ),
            "[{case}] duplicate"
        );
        assert!(
            matches!(
                store.destinations.get(DestinationId::new(999_999)).await,
                Err(RepositoryError::NotFound { entity: EntityKind::Destination, .. })
            ),
            "[{case}] missing"
        );
    }

    /// destination: partial update keeps, clears and replaces.
    async fn destination_partial_update_keeps_clears_and_replaces(factory) {
        let case = "destination: partial update keeps, clears and replaces";
        let store = factory.fresh().await;
        let created = ok!(case, store.destinations.create(new_destination("wh", Some("pass")), fixed_time(1)));
        let patch = DestinationPatch {
            name: Some(name::<DestinationName>("Renamed")),
            snowflake_user: Patch::Clear,
            snowflake_role: Patch::Set(name::<ShortText>("LOADER")),
            ..DestinationPatch::default()
        };
        let updated = ok!(case, store.destinations.update(created.id, patch, fixed_time(2)));
        assert_eq!(updated.name.as_str(), "renamed", "[{case}] name");
        assert_eq!(updated.settings.snowflake_user, None, "[{case}] cleared");
        assert_eq!(updated.settings.snowflake_role.as_ref().map(ShortText::as_str), Some("LOADER"), "[{case}] set");
        assert_eq!(updated.settings.snowflake_account, created.settings.snowflake_account, "[{case}] kept");
        assert!(updated.has_private_key_passphrase, "[{case}] passphrase kept");
        assert_eq!(updated.updated_at, fixed_time(2), "[{case}] updated_at");
        let cleared =
            DestinationPatch { snowflake_private_key_passphrase: Patch::Clear, ..DestinationPatch::default() };
        assert!(
            !ok!(case, store.destinations.update(created.id, cleared, fixed_time(3))).has_private_key_passphrase,
            "[{case}] passphrase cleared"
        );
        assert_eq!(ok!(case, store.destinations.get(created.id)).updated_at, fixed_time(3), "[{case}] stored");
    }

    /// destination: delete refuses while used, cascades on request.
    async fn destination_delete_refuses_while_used_cascades_on_request(factory) {
        let case = "destination: delete refuses while used, cascades on request";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let pipeline = ok!(
            case,
            store.pipelines.create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        );
        assert!(
            matches!(store.destinations.delete(destination.id, false, fixed_time(9)).await, Err(RepositoryError::InUse { entity: EntityKind::Destination, ref pipelines, .. }) if pipelines.len() == 1 && pipelines[0].id == pipeline.pipeline.id),
            "[{case}] in use"
        );
        ok!(case, store.destinations.delete(destination.id, true, fixed_time(9)));
        assert!(
            matches!(store.pipelines.get(pipeline.pipeline.id).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] cascade"
        );
        ok!(case, store.sources.delete(source.id, false, fixed_time(9)));
    }

    /// pipeline: create reads back nested, with initial metadata.
    async fn pipeline_create_reads_back_nested_with_initial_metadata(factory) {
        let case = "pipeline: create reads back nested, with initial metadata";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", Some("pw")), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let started = ok!(
            case,
            store
                .pipelines
                .create(new_pipeline("Started", source.id, destination.id, PipelineStatus::Start), fixed_time(2))
        );
        assert_eq!(started.pipeline.name.as_str(), "started", "[{case}] name");
        assert_eq!(
            (started.source.clone(), started.destination.clone()),
            (source.clone(), destination.clone()),
            "[{case}] nested"
        );
        let meta = &started.pipeline.metadata;
        assert_eq!(
            (meta.pipeline_id, meta.status, meta.last_start_at),
            (started.pipeline.id, PipelineMetadataStatus::Running, Some(fixed_time(2))),
            "[{case}] metadata"
        );
        assert_eq!(
            (started.pipeline.created_at, meta.created_at),
            (fixed_time(2), fixed_time(2)),
            "[{case}] timestamps"
        );
        let paused = ok!(
            case,
            store
                .pipelines
                .create(new_pipeline("paused", source.id, destination.id, PipelineStatus::Pause), fixed_time(3))
        );
        assert_eq!(
            (paused.pipeline.status, paused.pipeline.metadata.status),
            (PipelineStatus::Pause, PipelineMetadataStatus::Paused),
            "[{case}] paused"
        );
        assert_eq!(ok!(case, store.pipelines.get(started.pipeline.id)), started, "[{case}] get");
        assert!(
            matches!(
                store
                    .pipelines
                    .create(new_pipeline("STARTED", source.id, destination.id, PipelineStatus::Start), fixed_time(4))
                    .await,
                Err(RepositoryError::Conflict { entity: EntityKind::Pipeline, field: "name", .. })
            ),
            "[{case}] duplicate"
        );
    }

    /// pipeline: references to missing entities.
    async fn pipeline_references_to_missing_entities(factory) {
        let case = "pipeline: references to missing entities";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let missing_source = new_pipeline("p", SourceId::new(9_999), destination.id, PipelineStatus::Start);
        assert!(
            matches!(
                store.pipelines.create(missing_source, fixed_time(2)).await,
                Err(RepositoryError::MissingReference { field: "source_id", entity: EntityKind::Source, id: 9_999 })
            ),
            "[{case}] source"
        );
        let missing_destination = new_pipeline("p", source.id, DestinationId::new(8_888), PipelineStatus::Start);
        assert!(
            matches!(
                store.pipelines.create(missing_destination, fixed_time(2)).await,
                Err(RepositoryError::MissingReference {
                    field: "destination_id",
                    entity: EntityKind::Destination,
                    id: 8_888
                })
            ),
            "[{case}] destination"
        );
        assert_eq!(ok!(case, store.pipelines.list(page(0, 10))).total, 0, "[{case}] nothing stored");
        let created = ok!(
            case,
            store.pipelines.create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(2))
        );
        let repoint = PipelinePatch { source_id: Some(SourceId::new(9_999)), ..PipelinePatch::default() };
        assert!(
            matches!(
                store.pipelines.update(created.pipeline.id, repoint, fixed_time(3)).await,
                Err(RepositoryError::MissingReference { field: "source_id", .. })
            ),
            "[{case}] update"
        );
        assert_eq!(
            ok!(case, store.pipelines.get(created.pipeline.id)),
            created,
            "[{case}] refused update changed nothing"
        );
    }

    /// pipeline: status changes follow the lifecycle and are idempotent.
    async fn pipeline_status_changes_follow_the_lifecycle_and_are_idempotent(factory) {
        let case = "pipeline: status changes follow the lifecycle and are idempotent";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let id = ok!(
            case,
            store.pipelines.create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        )
        .pipeline
        .id;
        let pause = || PipelinePatch { status: Some(PipelineStatus::Pause), ..PipelinePatch::default() };
        let paused = ok!(case, store.pipelines.update(id, pause(), fixed_time(2)));
        assert_eq!(
            (paused.pipeline.status, paused.pipeline.metadata.status),
            (PipelineStatus::Pause, PipelineMetadataStatus::Paused),
            "[{case}] paused"
        );
        assert_eq!(
            (paused.pipeline.updated_at, paused.pipeline.metadata.updated_at),
            (fixed_time(2), fixed_time(2)),
            "[{case}] pause timestamps"
        );
        let again = ok!(case, store.pipelines.update(id, pause(), fixed_time(3)));
        assert_eq!(again, paused, "[{case}] pausing twice changes nothing");
        let start = PipelinePatch { status: Some(PipelineStatus::Start), ..PipelinePatch::default() };
        let started = ok!(case, store.pipelines.update(id, start, fixed_time(4)));
        assert_eq!(
            (started.pipeline.metadata.status, started.pipeline.metadata.last_start_at),
            (PipelineMetadataStatus::Running, Some(fixed_time(4))),
            "[{case}] started"
        );
        let refresh = PipelinePatch {
            status: Some(PipelineStatus::Refresh),
            name: Some(name::<PipelineName>("renamed")),
            ..PipelinePatch::default()
        };
        let refreshed = ok!(case, store.pipelines.update(id, refresh, fixed_time(5)));
        assert_eq!(
            (refreshed.pipeline.status, refreshed.pipeline.name.as_str()),
            (PipelineStatus::Refresh, "renamed"),
            "[{case}] refresh + rename"
        );
        assert_eq!(refreshed.pipeline.metadata, started.pipeline.metadata, "[{case}] refresh keeps metadata");
        assert_eq!(ok!(case, store.pipelines.get(id)), refreshed, "[{case}] stored");
    }

    /// pipeline: list pages with nested objects.
    async fn pipeline_list_pages_with_nested_objects(factory) {
        let case = "pipeline: list pages with nested objects";
        let store = factory.fresh().await;
        let s1 = ok!(case, store.sources.create(new_source("s1", None), fixed_time(1)));
        let s2 = ok!(case, store.sources.create(new_source("s2", None), fixed_time(1)));
        let d = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let mut ids = Vec::new();
        for i in 0..7u32 {
            let source = if i % 2 == 0 { s1.id } else { s2.id };
            ids.push(
                ok!(
                    case,
                    store
                        .pipelines
                        .create(new_pipeline(&format!("p{i}"), source, d.id, PipelineStatus::Start), fixed_time(i))
                )
                .pipeline
                .id,
            );
        }
        let listed = ok!(case, store.pipelines.list(page(2, 3)));
        assert_eq!(listed.total, 7, "[{case}] total");
        assert_eq!(listed.items.iter().map(|p| p.pipeline.id).collect::<Vec<_>>(), ids[2..5], "[{case}] ids");
        for item in &listed.items {
            assert_eq!(item.source.id, item.pipeline.source_id, "[{case}] nested source");
            assert_eq!(item.destination, d, "[{case}] nested destination");
            assert_eq!(item.pipeline.metadata.pipeline_id, item.pipeline.id, "[{case}] nested metadata");
        }
    }

    /// pipeline: delete removes pipeline and metadata.
    async fn pipeline_delete_removes_pipeline_and_metadata(factory) {
        let case = "pipeline: delete removes pipeline and metadata";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let id = ok!(
            case,
            store.pipelines.create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        )
        .pipeline
        .id;
        ok!(case, store.pipelines.delete(id, fixed_time(9)));
        assert!(
            matches!(
                store.pipelines.get(id).await,
                Err(RepositoryError::NotFound { entity: EntityKind::Pipeline, .. })
            ),
            "[{case}] gone"
        );
        assert!(matches!(store.pipelines.delete(id, fixed_time(9)).await, Err(RepositoryError::NotFound { .. })), "[{case}] twice");
        assert!(
            matches!(
                store.pipelines.update(PipelineId::new(77_777), PipelinePatch::default(), fixed_time(2)).await,
                Err(RepositoryError::NotFound { .. })
            ),
            "[{case}] update missing"
        );
        ok!(case, store.sources.delete(source.id, false, fixed_time(9)));
        ok!(case, store.destinations.delete(destination.id, false, fixed_time(9)));
    }

    /// pipeline: the slot name defaults to rosetta_<id>, is unique per source, and starts unmanaged.
    async fn pipeline_slot_names_default_and_are_unique_per_source(factory) {
        let case = "pipeline: slot names";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let other = ok!(case, store.sources.create(new_source("other", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let first = ok!(
            case,
            store.pipelines.create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        )
        .pipeline;
        assert_eq!(first.slot_name, SlotName::for_pipeline(first.id), "[{case}] default");
        assert!(!first.slot_managed, "[{case}] unmanaged until created");
        let named = |pipeline: &str, source_id| NewPipeline {
            slot_name: Some(name::<SlotName>(first.slot_name.as_str())),
            ..new_pipeline(pipeline, source_id, destination.id, PipelineStatus::Start)
        };
        match store.pipelines.create(named("clash", source.id), fixed_time(2)).await {
            Err(RepositoryError::Conflict { entity: EntityKind::Pipeline, field: "slot_name", value }) => {
                assert_eq!(value, first.slot_name.as_str(), "[{case}] value");
            }
            other => panic!("[{case}] expected a slot_name conflict, got {other:?}"),
        }
        let elsewhere = ok!(case, store.pipelines.create(named("elsewhere", other.id), fixed_time(2))).pipeline;
        assert_eq!(elsewhere.slot_name, first.slot_name, "[{case}] the same name on another source");
        assert!(
            matches!(
                store.pipelines.update(elsewhere.id, PipelinePatch { source_id: Some(source.id), ..PipelinePatch::default() }, fixed_time(3)).await,
                Err(RepositoryError::Conflict { field: "slot_name", .. })
            ),
            "[{case}] moving onto a source whose pipeline names the slot"
        );
        let owners = ok!(case, store.pipelines.pipelines_of(Some(source.id)));
        assert_eq!(
            owners,
            vec![SourcePipeline {
                pipeline_id: first.id,
                source_id: source.id,
                slot_name: first.slot_name.clone(),
                status: PipelineStatus::Start,
            }],
            "[{case}] owners of one source"
        );
        assert_eq!(ok!(case, store.pipelines.pipelines_of(None)).len(), 2, "[{case}] every owner");
    }

    /// pipeline: deleting a pipeline with a managed slot records one cleanup task; unmanaged records none.
    async fn pipeline_delete_records_a_cleanup_task_for_a_managed_slot(factory) {
        let case = "pipeline: delete records cleanup";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let create = |name: &'static str| {
            store.pipelines.create(new_pipeline(name, source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        };
        let unmanaged = ok!(case, create("unmanaged")).pipeline;
        let managed = ok!(case, create("managed")).pipeline;
        ok!(case, store.pipelines.set_slot_managed(managed.id, true, fixed_time(2)));
        assert!(ok!(case, store.pipelines.get(managed.id)).pipeline.slot_managed, "[{case}] flag stored");
        assert_eq!(ok!(case, store.pipelines.delete(unmanaged.id, fixed_time(3))), None, "[{case}] unmanaged");
        let task = ok!(case, store.pipelines.delete(managed.id, fixed_time(3)))
            .unwrap_or_else(|| panic!("[{case}] a managed slot's delete records a task"));
        assert_eq!(
            (task.kind, task.source_id, task.slot_name.clone(), task.attempts, task.last_error.clone()),
            (CleanupKind::DropSlot, source.id, managed.slot_name.clone(), 0, None),
            "[{case}] task"
        );
        assert_eq!(task.created_at, fixed_time(3), "[{case}] created now");
        assert!(task.next_attempt_at > fixed_time(3), "[{case}] first due after the request's own attempt");
        assert!(
            matches!(store.pipelines.set_slot_managed(managed.id, true, fixed_time(4)).await, Err(RepositoryError::NotFound { .. })),
            "[{case}] gone"
        );
    }

    /// source and destination: a cascade records a cleanup task per managed slot of the pipelines it deletes.
    async fn cascades_record_cleanup_tasks_for_managed_slots(factory) {
        let case = "cascade records cleanup";
        let store = factory.fresh().await;
        let source = ok!(case, store.sources.create(new_source("s", None), fixed_time(1)));
        let destination = ok!(case, store.destinations.create(new_destination("d", None), fixed_time(1)));
        let other = ok!(case, store.destinations.create(new_destination("d2", None), fixed_time(1)));
        let mut managed = Vec::new();
        for (name, to) in [("a", destination.id), ("b", destination.id), ("c", other.id), ("d", other.id)] {
            let pipeline =
                ok!(case, store.pipelines.create(new_pipeline(name, source.id, to, PipelineStatus::Start), fixed_time(1)))
                    .pipeline;
            if name != "b" {
                ok!(case, store.pipelines.set_slot_managed(pipeline.id, true, fixed_time(2)));
                managed.push(pipeline);
            }
        }
        let tasks = ok!(case, store.destinations.delete(other.id, true, fixed_time(3)));
        let mut slots: Vec<String> = tasks.iter().map(|t| t.slot_name.as_str().to_owned()).collect();
        slots.sort();
        let mut expected: Vec<String> = managed[1..].iter().map(|p| p.slot_name.as_str().to_owned()).collect();
        expected.sort();
        assert_eq!(slots, expected, "[{case}] destination cascade");
        let tasks = ok!(case, store.sources.delete(source.id, true, fixed_time(4)));
        let slots: Vec<&str> = tasks.iter().map(|t| t.slot_name.as_str()).collect();
        assert_eq!(slots, vec![managed[0].slot_name.as_str()], "[{case}] source cascade: only the managed slot");
        assert!(tasks.iter().all(|t| t.source_id == source.id), "[{case}] source id kept");
    }
}

fn secret(value: &str) -> Secret {
    #[allow(clippy::unwrap_used)]
    Secret::parse(value).unwrap()
}
