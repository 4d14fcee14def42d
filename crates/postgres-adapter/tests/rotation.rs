//! Key rotation against PostgreSQL: the registry of sealed columns is the schema's `bytea`
//! columns, and every kind of stored secret (source and cleanup-task passwords, a destination's
//! passphrase, a channel's URL and signing secret) moves from an older key to the newest one and
//! stays readable, while a key that is gone fails only its own rows.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rosetta_domain::{ChannelKind, ChannelName, ChannelUrl, NewChannel, PipelineStatus, Severity, SigningSecret};
use rosetta_ports::alerts::ChannelRepository;
use rosetta_ports::outbound::{
    CipherError, ConnectionSettingsError, DestinationRepository, PipelineRepository, RepositoryError, SecretCipher,
    SecretSlot, SourceRepository,
};
use rosetta_ports::sources::CleanupTaskStore;
use rosetta_ports::testing::{fixed_time, new_destination, new_pipeline, new_source};
use rosetta_postgres_adapter::{
    PostgresChannelRepository, PostgresCleanupTaskStore, PostgresDestinationRepository, PostgresPipelineRepository,
    PostgresSourceRepository, PostgresStore, RotationScope, SecretRotation, XChaChaSecretCipher,
};

const KEY_A: &str = "key A: the one the secrets were first sealed under";
const KEY_B: &str = "key B: the one that replaces key A after rotation";
const KEY_C: &str = "key C: unrelated to anything that was ever sealed";

fn cipher(keys: &[&str]) -> Arc<dyn SecretCipher> {
    Arc::new(XChaChaSecretCipher::with_keys(keys).expect("keys"))
}

/// Every store that reads a secret, sealing and opening with `cipher`.
struct Stores {
    sources: PostgresSourceRepository,
    destinations: PostgresDestinationRepository,
    pipelines: PostgresPipelineRepository,
    channels: PostgresChannelRepository,
    tasks: PostgresCleanupTaskStore,
}

fn stores(store: &PostgresStore, cipher: &Arc<dyn SecretCipher>) -> Stores {
    Stores {
        sources: PostgresSourceRepository::new(store.clone(), Arc::clone(cipher)),
        destinations: PostgresDestinationRepository::new(store.clone(), Arc::clone(cipher)),
        pipelines: PostgresPipelineRepository::new(store.clone(), Arc::clone(cipher)),
        channels: PostgresChannelRepository::new(store.clone(), Arc::clone(cipher)),
        tasks: PostgresCleanupTaskStore::new(store.clone(), Arc::clone(cipher)),
    }
}

#[tokio::test]
async fn the_registry_of_sealed_columns_is_every_bytea_column_of_the_schema() {
    let database = support::fresh_database().await;
    let client = support::raw_client(database.url()).await;
    let rows = client
        .query(
            "SELECT table_name::text || '.' || column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND data_type = 'bytea'",
            &[],
        )
        .await
        .expect("columns");
    let schema: BTreeSet<String> = rows.iter().map(|row| row.get(0)).collect();
    let registry: BTreeSet<String> = SecretRotation::sealed_columns().into_iter().collect();
    assert_eq!(registry, schema, "a sealed column rotate-secrets does not know of, or one that does not exist");
}

#[tokio::test]
async fn every_secret_moves_to_the_newest_key_and_a_missing_key_fails_only_its_rows() {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 4, Duration::from_secs(10));
    let under_a = stores(&store, &cipher(&[KEY_A]));

    let source = under_a.sources.create(new_source("s", Some("source password")), fixed_time(1)).await.expect("source");
    let destination = under_a
        .destinations
        .create(new_destination("d", Some("passphrase")), fixed_time(1))
        .await
        .expect("destination");
    let pipeline = under_a
        .pipelines
        .create(new_pipeline("p", source.id, destination.id, PipelineStatus::Start), fixed_time(1))
        .await
        .expect("pipeline")
        .pipeline;
    under_a.pipelines.set_slot_managed(pipeline.id, true, fixed_time(1)).await.expect("managed");
    let task = under_a.pipelines.delete(pipeline.id, fixed_time(2)).await.expect("delete").expect("a cleanup task");
    let channel = NewChannel {
        name: ChannelName::parse("hook").expect("name"),
        kind: ChannelKind::Webhook,
        url: ChannelUrl::parse("https://hooks.example.com/x?token=secret").expect("url"),
        signing_secret: Some(SigningSecret::parse("0123456789abcdef0123").expect("secret")),
        min_severity: Severity::Warning,
        enabled: true,
    };
    let channel = under_a.channels.create(channel, fixed_time(1)).await.expect("channel");

    // B is the newest, A still configured: everything reads; new writes are under B.
    let both = cipher(&[KEY_B, KEY_A]);
    let rotation = SecretRotation::new(store.clone(), Arc::clone(&both), 2);
    let before = rotation.survey().await.expect("survey");
    assert_eq!(before.outdated(), 5, "five secrets under A: {before:?}");
    assert!(before.counts.iter().all(|count| !count.current), "{before:?}");
    let under_both = stores(&store, &both);
    assert!(under_both.sources.connection(source.id).await.is_ok());
    let other = under_both.sources.create(new_source("t", Some("new password")), fixed_time(3)).await.expect("source");
    assert_eq!(rotation.survey().await.expect("survey").outdated(), 5, "the new source is under B");

    let outcome = rotation.rotate(RotationScope::Outdated).await.expect("rotate");
    assert_eq!((outcome.resealed, outcome.unreadable.len()), (5, 0), "{outcome:?}");
    let after = rotation.survey().await.expect("survey");
    assert_eq!(after.outdated(), 0, "{after:?}");
    assert_eq!(after.counts.iter().map(|count| count.count).sum::<u64>(), 6);
    assert_eq!(rotation.rotate(RotationScope::Outdated).await.expect("again").resealed, 0, "nothing left to do");

    // B alone reads every secret.
    let under_b = stores(&store, &cipher(&[KEY_B]));
    let connection = under_b.sources.connection(source.id).await.expect("source password under B");
    assert_eq!(connection.pg_password.as_ref().map(|p| p.expose().to_owned()).as_deref(), Some("source password"));
    // Nothing in the service reads a passphrase back (it is for the CDC engine): open it here.
    let client = support::raw_client(database.url()).await;
    let row = client
        .query_one(
            "SELECT snowflake_private_key_passphrase_sealed FROM destinations WHERE id = $1",
            &[&destination.id.get()],
        )
        .await
        .expect("passphrase");
    let slot =
        SecretSlot { table: "destinations", column: "snowflake_private_key_passphrase", row_id: destination.id.get() };
    let passphrase = cipher(&[KEY_B]).open(&row.get::<_, Vec<u8>>(0), slot).expect("passphrase under B");
    assert_eq!(passphrase.expose(), "passphrase");
    let pending = under_b.tasks.pending(&[task.id]).await.expect("pending");
    assert!(pending[0].connection.is_ok(), "the task's password under B: {:?}", pending[0].connection);
    assert!(under_b.channels.target(channel.id).await.is_ok(), "channel URL and signing secret under B");

    // C alone: each row fails with the key message; listing still works.
    let under_c = stores(&store, &cipher(&[KEY_C]));
    let unreadable =
        ConnectionSettingsError::UnreadableSecret { column: "pg_password", reason: CipherError::UnknownKey };
    for id in [source.id, other.id] {
        match under_c.sources.connection(id).await {
            Err(RepositoryError::Unexpected(error)) => assert_eq!(error.to_string(), unreadable.to_string()),
            other => panic!("expected the key error, got {other:?}"),
        }
    }
    assert_eq!(unreadable.to_string(), "cannot decrypt pg_password: its key is not configured");
    assert_eq!(under_c.sources.list(Default::default()).await.expect("list").total, 2);
    let rotation_c = SecretRotation::new(store.clone(), cipher(&[KEY_C]), 100);
    let stuck = rotation_c.rotate(RotationScope::Outdated).await.expect("rotate under C");
    assert_eq!((stuck.resealed, stuck.unreadable.len()), (0, 6), "{stuck:?}");
    assert!(stuck.unreadable.iter().all(|u| u.reason == CipherError::UnknownKey), "{stuck:?}");
}
