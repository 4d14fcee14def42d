//! Alerts: evaluation after each recorded sample, and the alert and channel use cases.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;
use rosetta_domain::{
    Alert, AlertFilter, AlertId, AlertRule, AlertState, ChannelId, ChannelPatch, Delivery, EvaluationInput, NewChannel,
    NotificationChannel, Observation, Page, PageRequest, RuleSettings, RuleSettingsPatch, SendResult, SourceId,
    evaluate,
};
use rosetta_ports::alerts::{
    AlertContext, AlertService, AlertStore, AppliedAlerts, ChannelRepository, ChannelService, DeliveryStore,
    EvaluatedSource, Message, Notifier, SourceRule,
};
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::outbound::{Clock, RepositoryError};
use rosetta_ports::wal::SampleOutcome;

/// Evaluates the alert rules of sources whose samples were just recorded, and writes the
/// transitions with their deliveries.
#[derive(Clone)]
pub struct AlertEvaluator {
    store: Arc<dyn AlertStore>,
    renotify_seconds: u64,
}

impl std::fmt::Debug for AlertEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEvaluator").field("renotify_seconds", &self.renotify_seconds).finish_non_exhaustive()
    }
}

impl AlertEvaluator {
    /// An evaluator over `store`, re-notifying firing unacknowledged alerts every
    /// `renotify_seconds`.
    pub fn new(store: Arc<dyn AlertStore>, renotify_seconds: u64) -> Self {
        Self { store, renotify_seconds }
    }

    /// Evaluates the last outcome of each source among `recorded` (outcomes in the order they
    /// were taken) and writes what changed.
    pub async fn evaluate(&self, recorded: &[SampleOutcome]) -> Result<AppliedAlerts, RepositoryError> {
        let mut last: BTreeMap<SourceId, &SampleOutcome> = BTreeMap::new();
        for outcome in recorded {
            last.insert(outcome.source_id, outcome);
        }
        if last.is_empty() {
            return Ok(AppliedAlerts::default());
        }
        let ids: Vec<SourceId> = last.keys().copied().collect();
        let contexts = self.store.contexts(&ids).await?;
        // The WAL rate only for sources whose slots can be lost at all, from the start of each
        // source's window.
        let wanted: Vec<(SourceId, rosetta_domain::Timestamp)> = contexts
            .iter()
            .filter_map(|context| {
                let outcome = last.get(&context.source_id)?;
                let sample = outcome.result.as_ref().ok()?;
                let settings = context.rules.get(AlertRule::SlotTimeToLost);
                let limited = sample.slots.iter().any(|slot| slot.safe_wal_size_bytes.is_some());
                let window = settings.window_seconds().filter(|_| settings.enabled() && limited)?;
                let window = TimeDelta::seconds(i64::try_from(window).unwrap_or(i64::MAX));
                Some((context.source_id, outcome.attempted_at - window))
            })
            .collect();
        let baselines: BTreeMap<SourceId, rosetta_domain::RateBaseline> =
            self.store.rate_baselines(&wanted).await?.into_iter().collect();
        let evaluations: Vec<EvaluatedSource> = contexts
            .into_iter()
            .filter_map(|context| {
                let outcome = last.get(&context.source_id)?;
                Some(self.evaluate_one(context, outcome, baselines.get(&outcome.source_id).copied()))
            })
            .filter(|evaluated| {
                evaluated.memory_changed
                    || !evaluated.evaluation.fired.is_empty()
                    || !evaluated.evaluation.updated.is_empty()
            })
            .collect();
        if evaluations.is_empty() {
            return Ok(AppliedAlerts::default());
        }
        let applied = self.store.apply(evaluations).await?;
        if applied.fired + applied.resolved > 0 {
            tracing::info!(
                fired = applied.fired,
                resolved = applied.resolved,
                deliveries = applied.deliveries,
                "alerts changed"
            );
        }
        Ok(applied)
    }

    fn evaluate_one(
        &self,
        context: AlertContext,
        outcome: &SampleOutcome,
        rate_baseline: Option<rosetta_domain::RateBaseline>,
    ) -> EvaluatedSource {
        let observation = match &outcome.result {
            Ok(sample) => Observation::Sampled(sample),
            Err(_) => Observation::Failed,
        };
        let evaluation = evaluate(&EvaluationInput {
            source_name: &context.source_name,
            at: outcome.attempted_at,
            observation,
            rate_baseline,
            pipeline_should_run: context.pipeline_should_run,
            rules: &context.rules,
            renotify_seconds: self.renotify_seconds,
            firing: &context.firing,
            memory: &context.memory,
        });
        EvaluatedSource {
            source_id: context.source_id,
            memory_changed: evaluation.memory != context.memory,
            source_name: context.source_name,
            at: outcome.attempted_at,
            evaluation,
        }
    }
}

/// The alert use cases over an [`AlertStore`].
#[derive(Clone)]
pub struct AlertManager {
    store: Arc<dyn AlertStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertManager").finish_non_exhaustive()
    }
}

impl AlertManager {
    /// A manager over `store`.
    pub fn new(store: Arc<dyn AlertStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl AlertService for AlertManager {
    async fn list_alerts(&self, filter: AlertFilter, page: PageRequest) -> Result<Page<Alert>, ServiceError> {
        Ok(self.store.list(filter, page).await?)
    }

    async fn get_alert(&self, id: AlertId) -> Result<Alert, ServiceError> {
        Ok(self.store.get(id).await?)
    }

    async fn acknowledge_alert(&self, id: AlertId) -> Result<Alert, ServiceError> {
        // A rule whose alerts cannot clear by themselves (a dropped slot) ends on acknowledgement.
        let current = self.store.get(id).await?;
        let resolve = current.state == AlertState::Firing && current.rule.resolves_when_acknowledged();
        let alert = self.store.acknowledge(id, self.clock.now(), resolve).await?;
        tracing::info!(alert_id = %id, rule = %alert.rule, "alert acknowledged");
        Ok(alert)
    }

    async fn global_rules(&self) -> Result<Vec<RuleSettings>, ServiceError> {
        Ok(self.store.global_rules().await?)
    }

    async fn update_global_rule(
        &self,
        rule: AlertRule,
        patch: RuleSettingsPatch,
    ) -> Result<RuleSettings, ServiceError> {
        let current = self
            .store
            .global_rules()
            .await?
            .into_iter()
            .find(|settings| settings.rule() == rule)
            .unwrap_or_else(|| rule.defaults());
        let settings = current.apply(patch)?;
        self.store.set_global_rule(settings, self.clock.now()).await?;
        tracing::info!(rule = %rule, enabled = settings.enabled(), "alert rule changed");
        Ok(settings)
    }

    async fn source_rules(&self, source: SourceId) -> Result<Vec<SourceRule>, ServiceError> {
        Ok(self.store.source_rules(source).await?)
    }

    async fn update_source_rule(
        &self,
        source: SourceId,
        rule: AlertRule,
        patch: RuleSettingsPatch,
    ) -> Result<SourceRule, ServiceError> {
        let current = self
            .store
            .source_rules(source)
            .await?
            .into_iter()
            .find(|own| own.settings.rule() == rule)
            .map_or_else(|| rule.defaults(), |own| own.settings);
        let settings = current.apply(patch)?;
        self.store.set_source_rule(source, settings, self.clock.now()).await?;
        tracing::info!(source_id = %source, rule = %rule, "alert rule of a source changed");
        Ok(SourceRule { settings, overridden: true })
    }

    async fn remove_source_rule(&self, source: SourceId, rule: AlertRule) -> Result<(), ServiceError> {
        Ok(self.store.remove_source_rule(source, rule).await?)
    }
}

/// The notification-channel use cases.
#[derive(Clone)]
pub struct ChannelManager {
    channels: Arc<dyn ChannelRepository>,
    deliveries: Arc<dyn DeliveryStore>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ChannelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelManager").finish_non_exhaustive()
    }
}

impl ChannelManager {
    /// A manager of channels that sends test messages through `notifier`.
    pub fn new(
        channels: Arc<dyn ChannelRepository>,
        deliveries: Arc<dyn DeliveryStore>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { channels, deliveries, notifier, clock }
    }
}

#[async_trait]
impl ChannelService for ChannelManager {
    async fn create_channel(&self, new: NewChannel) -> Result<NotificationChannel, ServiceError> {
        new.check()?;
        let channel = self.channels.create(new, self.clock.now()).await?;
        tracing::info!(channel_id = %channel.id, kind = %channel.kind, "notification channel created");
        Ok(channel)
    }

    async fn get_channel(&self, id: ChannelId) -> Result<NotificationChannel, ServiceError> {
        Ok(self.channels.get(id).await?)
    }

    async fn list_channels(&self, page: PageRequest) -> Result<Page<NotificationChannel>, ServiceError> {
        Ok(self.channels.list(page).await?)
    }

    async fn update_channel(&self, id: ChannelId, patch: ChannelPatch) -> Result<NotificationChannel, ServiceError> {
        let current = self.channels.get(id).await?;
        patch.check(&current)?;
        Ok(self.channels.update(id, patch, self.clock.now()).await?)
    }

    async fn delete_channel(&self, id: ChannelId) -> Result<(), ServiceError> {
        self.channels.delete(id).await?;
        tracing::info!(channel_id = %id, "notification channel deleted");
        Ok(())
    }

    async fn test_channel(&self, id: ChannelId) -> Result<SendResult, ServiceError> {
        let target = self.channels.target(id).await?;
        let message = Message::Test {
            message_id: format!("test_{}_{}", id, self.clock.now().timestamp_micros()),
            channel_id: id,
        };
        let result = self.notifier.send(&target, &message, self.clock.now()).await;
        tracing::info!(
            channel_id = %id,
            delivered = result.delivered(),
            status_code = result.status_code,
            "test notification sent"
        );
        Ok(result)
    }

    async fn list_deliveries(&self, id: ChannelId, page: PageRequest) -> Result<Page<Delivery>, ServiceError> {
        Ok(self.deliveries.list(id, page).await?)
    }
}
