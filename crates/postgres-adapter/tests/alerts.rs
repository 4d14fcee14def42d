//! The alert, channel and delivery stores against PostgreSQL: what an evaluation writes in its
//! one transaction, the one-firing-alert-per-key guarantee under a race, the outbox rows and
//! their lease items, and what deleting a source or acknowledging does.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rosetta_domain::{
    AlertChange, AlertFilter, AlertKey, AlertMemory, AlertRule, AlertState, AlertUpdate, ChannelKind, ChannelName,
    ChannelUrl, Evaluation, NewAlert, NewChannel, NotificationType, PageRequest, Reading, ResolveReason, SendResult,
    Severity, SigningSecret, SourceId,
};
use rosetta_ports::alerts::{AlertStore, ChannelRepository, DeliveryAttempt, DeliveryStore, EvaluatedSource};
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use rosetta_ports::outbound::SourceRepository;
use rosetta_ports::testing::{fixed_time, new_source};
use rosetta_postgres_adapter::{
    PostgresAlertStore, PostgresChannelRepository, PostgresDeliveryStore, PostgresLeaseStore, PostgresStore,
};

struct Stores {
    alerts: PostgresAlertStore,
    channels: PostgresChannelRepository,
    deliveries: PostgresDeliveryStore,
    leases: PostgresLeaseStore,
    store: PostgresStore,
    _database: rosetta_test_support::TestDatabase,
}

async fn stores() -> Stores {
    let database = support::fresh_database().await;
    let store = support::store(database.url(), 10, Duration::from_secs(10));
    Stores {
        alerts: PostgresAlertStore::new(store.clone()),
        channels: PostgresChannelRepository::new(store.clone(), support::cipher()),
        deliveries: PostgresDeliveryStore::new(store.clone(), support::cipher()),
        leases: PostgresLeaseStore::new(store.clone()),
        store,
        _database: database,
    }
}

async fn source(stores: &Stores, name: &str) -> SourceId {
    let repositories = support::repositories(&stores.store);
    repositories.sources.create(new_source(name, None), fixed_time(0)).await.expect("source").id
}

async fn channel(stores: &Stores, name: &str, min_severity: Severity, enabled: bool) -> i64 {
    let new = NewChannel {
        name: ChannelName::parse(name).expect("name"),
        kind: ChannelKind::Webhook,
        url: ChannelUrl::parse(format!("https://hooks.example.com/{name}?token=secret")).expect("url"),
        signing_secret: Some(SigningSecret::parse("0123456789abcdef0123").expect("secret")),
        min_severity,
        enabled,
    };
    stores.channels.create(new, fixed_time(0)).await.expect("channel").id.get()
}

fn fired(source_id: SourceId, severity: Severity) -> EvaluatedSource {
    EvaluatedSource {
        source_id,
        source_name: "orders".into(),
        at: fixed_time(10),
        evaluation: Evaluation {
            fired: vec![NewAlert {
                key: AlertKey { rule: AlertRule::SlotRetainedBytes, slot_name: Some("cdc".into()) },
                reading: Reading { severity, value: Some(2 << 30), threshold: Some(1 << 30), summary: "big".into() },
            }],
            updated: Vec::new(),
            memory: AlertMemory::default(),
        },
        memory_changed: true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_writes_one_delivery_per_enabled_channel_it_is_severe_enough_for() {
    let stores = stores().await;
    let id = source(&stores, "orders").await;
    let everything = channel(&stores, "everything", Severity::Warning, true).await;
    let _critical_only = channel(&stores, "critical-only", Severity::Critical, true).await;
    let _off = channel(&stores, "off", Severity::Warning, false).await;

    let applied = stores.alerts.apply(vec![fired(id, Severity::Warning)]).await.expect("apply");
    assert_eq!((applied.fired, applied.deliveries), (1, 1), "only the enabled warning channel");
    let contexts = stores.alerts.contexts(&[id]).await.expect("contexts");
    assert_eq!(contexts[0].firing.len(), 1);
    let alert_id = contexts[0].firing[0].id;

    // The delivery is queued in the lease queue, claimable now, and reads back ready to send.
    let owner = LeaseOwner::new("me");
    let claimed = stores
        .leases
        .claim(Queue::NOTIFICATION_DELIVERY, &owner, chrono::Utc::now(), Duration::from_secs(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let pending = stores.deliveries.pending(&claimed).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].delivery.notification_type, NotificationType::Firing);
    assert_eq!(pending[0].alert.id, alert_id);
    let target = pending[0].target.as_ref().expect("secrets open");
    assert!(target.url.expose().ends_with("token=secret") && target.signing_secret.is_some());
    assert_eq!(target.channel.id.get(), everything);

    // Recorded as delivered: out of the queue, readable in the channel's list.
    let attempt = DeliveryAttempt {
        id: pending[0].delivery.id,
        result: SendResult { status_code: Some(204), error: None, duration_ms: 3 },
        attempts: 1,
        next: Next::Done,
        delivered: true,
        at: fixed_time(11),
    };
    let recorded = stores.deliveries.record(&owner, vec![attempt.clone()]).await.expect("record");
    assert_eq!(recorded, vec![attempt.id.get()]);
    let listed = stores.deliveries.list(target.channel.id, PageRequest::default()).await.expect("list");
    assert_eq!(listed.items[0].state, rosetta_domain::DeliveryState::Delivered);
    assert_eq!((listed.items[0].attempts, listed.items[0].status_code), (1, Some(204)));
    let again = stores
        .leases
        .claim(Queue::NOTIFICATION_DELIVERY, &owner, chrono::Utc::now(), Duration::from_secs(30), 10)
        .await
        .expect("claim");
    assert!(again.is_empty(), "a delivered delivery leaves the queue");
    // Someone else's attempt at it is dropped.
    let stolen = stores.deliveries.record(&LeaseOwner::new("other"), vec![attempt]).await.expect("record");
    assert!(stolen.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_evaluations_racing_to_fire_one_key_make_one_alert_and_one_delivery() {
    let stores = Arc::new(stores().await);
    let id = source(&stores, "orders").await;
    channel(&stores, "ops", Severity::Warning, true).await;
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let stores = Arc::clone(&stores);
            tokio::spawn(async move { stores.alerts.apply(vec![fired(id, Severity::Warning)]).await.expect("apply") })
        })
        .collect();
    let mut fired_total = 0;
    let mut deliveries_total = 0;
    for racer in racers {
        let applied = racer.await.expect("join");
        fired_total += applied.fired;
        deliveries_total += applied.deliveries;
    }
    assert_eq!((fired_total, deliveries_total), (1, 1), "one alert, one delivery, whatever the race");
    let firing = stores
        .alerts
        .list(AlertFilter { state: Some(AlertState::Firing), ..AlertFilter::default() }, PageRequest::default())
        .await
        .expect("list");
    assert_eq!(firing.total, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn escalations_clear_the_acknowledgement_and_deleting_the_source_resolves_its_alerts() {
    let stores = stores().await;
    let id = source(&stores, "orders").await;
    channel(&stores, "ops", Severity::Critical, true).await;
    stores.alerts.apply(vec![fired(id, Severity::Warning)]).await.expect("apply");
    let alert_id = stores.alerts.contexts(&[id]).await.expect("contexts")[0].firing[0].id;
    let acked = stores.alerts.acknowledge(alert_id, fixed_time(20), false).await.expect("ack");
    assert_eq!(acked.acknowledged_at, Some(fixed_time(20)));
    let again = stores.alerts.acknowledge(alert_id, fixed_time(30), false).await.expect("ack");
    assert_eq!(again.acknowledged_at, Some(fixed_time(20)), "idempotent: the first time stays");
    assert_eq!(again.state, AlertState::Firing, "acknowledging without resolving leaves it firing");

    let escalation = EvaluatedSource {
        evaluation: Evaluation {
            fired: Vec::new(),
            updated: vec![AlertUpdate {
                id: alert_id,
                change: AlertChange::Holds {
                    reading: Reading {
                        severity: Severity::Critical,
                        value: Some(6 << 30),
                        threshold: Some(5 << 30),
                        summary: "bigger".into(),
                    },
                    notify: Some(NotificationType::Escalated),
                },
            }],
            memory: AlertMemory::default(),
        },
        memory_changed: false,
        ..fired(id, Severity::Warning)
    };
    let applied = stores.alerts.apply(vec![escalation]).await.expect("apply");
    assert_eq!(applied.deliveries, 1, "the critical-only channel hears of the escalation");
    let escalated = stores.alerts.get(alert_id).await.expect("get");
    assert_eq!((escalated.severity, escalated.acknowledged_at), (Severity::Critical, None));

    support::repositories(&stores.store)
        .sources
        .delete(id, false, chrono::Utc::now())
        .await
        .expect("delete the source");
    let resolved = stores.alerts.get(alert_id).await.expect("the alert outlives its source");
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.resolve_reason, Some(ResolveReason::SourceDeleted));
    assert_eq!((resolved.source_id, resolved.source_name.as_str()), (None, "orders"));
    let queued = stores
        .leases
        .claim(Queue::NOTIFICATION_DELIVERY, &LeaseOwner::new("me"), chrono::Utc::now(), Duration::from_secs(30), 10)
        .await
        .expect("claim");
    let mut pending = stores.deliveries.pending(&queued).await.expect("pending");
    pending.sort_by_key(|p| p.delivery.id);
    let kinds: Vec<NotificationType> = pending.iter().map(|p| p.delivery.notification_type).collect();
    assert_eq!(kinds, vec![NotificationType::Escalated, NotificationType::Resolved], "{kinds:?}");
}
