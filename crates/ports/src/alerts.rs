//! Alerts and notifications: the stores of alerts, rules, channels and deliveries, the sender,
//! and the use cases the API offers over them.

use async_trait::async_trait;
use rosetta_domain::{
    Alert, AlertFilter, AlertId, AlertMemory, AlertRule, ChannelId, ChannelPatch, ChannelTarget, Delivery, DeliveryId,
    EffectiveRules, Evaluation, FiringAlert, NewChannel, NotificationChannel, NotificationType, Page, PageRequest,
    RateBaseline, RuleSettings, RuleSettingsPatch, SendResult, Severity, SourceId, Timestamp,
};

use crate::inbound::ServiceError;
use crate::jobs::{LeaseOwner, Next};
use crate::outbound::RepositoryError;

/// Everything the evaluation of one source reads, but the sample and the rate baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertContext {
    /// The source.
    pub source_id: SourceId,
    /// Its name, for summaries.
    pub source_name: String,
    /// Whether a pipeline of the source has desired status `START`.
    pub pipeline_should_run: bool,
    /// Its effective rules (global settings, then its overrides).
    pub rules: EffectiveRules,
    /// Its firing alerts.
    pub firing: Vec<FiringAlert>,
    /// What its last evaluation remembered.
    pub memory: AlertMemory,
}

/// One source's evaluation, to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatedSource {
    /// The source.
    pub source_id: SourceId,
    /// Its name now.
    pub source_name: String,
    /// When the attempt that was evaluated finished.
    pub at: Timestamp,
    /// The result.
    pub evaluation: Evaluation,
    /// Whether `evaluation.memory` differs from what was read (else it is not written).
    pub memory_changed: bool,
}

/// What [`AlertStore::apply`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedAlerts {
    /// Alerts created.
    pub fired: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Deliveries written (one per transition and matching channel).
    pub deliveries: usize,
}

/// A rule's settings as a source sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRule {
    /// The effective settings.
    pub settings: RuleSettings,
    /// Whether they are the source's own (else the global ones).
    pub overridden: bool,
}

/// Stores alerts, rule settings and evaluation memory.
///
/// Writing an evaluation is one transaction: new alerts (a key that already fires is left
/// alone — a partial unique index makes a second firing alert per key impossible, even when two
/// processes race), changes of firing alerts, the memory, and one delivery per notification and
/// enabled channel whose `min_severity` the alert meets, each delivery queued for sending.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// The evaluation contexts of `sources` (sources that no longer exist are left out).
    async fn contexts(&self, sources: &[SourceId]) -> Result<Vec<AlertContext>, RepositoryError>;

    /// For each `(source, since)`: the oldest good sample of the source recorded at or after
    /// `since` (the start of its `slot_time_to_lost` window). Sources without one are left out.
    async fn rate_baselines(
        &self,
        sources: &[(SourceId, Timestamp)],
    ) -> Result<Vec<(SourceId, RateBaseline)>, RepositoryError>;

    /// Writes evaluations (see the trait's documentation).
    async fn apply(&self, evaluations: Vec<EvaluatedSource>) -> Result<AppliedAlerts, RepositoryError>;

    /// A page of alerts matching `filter`, newest `started_at` first.
    async fn list(&self, filter: AlertFilter, page: PageRequest) -> Result<Page<Alert>, RepositoryError>;

    /// One alert. Errors: `NotFound`.
    async fn get(&self, id: AlertId) -> Result<Alert, RepositoryError>;

    /// Acknowledges an alert (idempotent: the first acknowledgement's time stays) and, with
    /// `resolve`, resolves it if it still fires, with its deliveries, in the same transaction.
    /// Errors: `NotFound`.
    async fn acknowledge(&self, id: AlertId, now: Timestamp, resolve: bool) -> Result<Alert, RepositoryError>;

    /// Firing alerts by rule and severity (rules and severities without any are left out).
    async fn firing_counts(&self) -> Result<Vec<(AlertRule, Severity, u64)>, RepositoryError>;

    /// The global settings of every rule, in [`AlertRule::ALL`] order.
    async fn global_rules(&self) -> Result<Vec<RuleSettings>, RepositoryError>;

    /// Replaces a rule's global settings.
    async fn set_global_rule(&self, settings: RuleSettings, now: Timestamp) -> Result<(), RepositoryError>;

    /// The effective settings of every rule for a source. Errors: `NotFound` (the source).
    async fn source_rules(&self, source: SourceId) -> Result<Vec<SourceRule>, RepositoryError>;

    /// Sets a source's own settings of a rule. Errors: `NotFound` (the source).
    async fn set_source_rule(
        &self,
        source: SourceId,
        settings: RuleSettings,
        now: Timestamp,
    ) -> Result<(), RepositoryError>;

    /// Removes a source's own settings of a rule (idempotent). Errors: `NotFound` (the source).
    async fn remove_source_rule(&self, source: SourceId, rule: AlertRule) -> Result<(), RepositoryError>;
}

/// Stores notification channels; URLs and signing secrets sealed, never part of a
/// [`NotificationChannel`].
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ChannelRepository: Send + Sync {
    /// Inserts a channel. Errors: `Conflict{field: "name"}`.
    async fn create(&self, new: NewChannel, now: Timestamp) -> Result<NotificationChannel, RepositoryError>;
    /// One channel. Errors: `NotFound`.
    async fn get(&self, id: ChannelId) -> Result<NotificationChannel, RepositoryError>;
    /// A page of channels by id.
    async fn list(&self, page: PageRequest) -> Result<Page<NotificationChannel>, RepositoryError>;
    /// Applies a checked patch. Errors: `NotFound`, `Conflict{field: "name"}`.
    async fn update(
        &self,
        id: ChannelId,
        patch: ChannelPatch,
        now: Timestamp,
    ) -> Result<NotificationChannel, RepositoryError>;
    /// Deletes a channel and its deliveries. Errors: `NotFound`.
    async fn delete(&self, id: ChannelId) -> Result<(), RepositoryError>;
    /// A channel with its secrets opened. Errors: `NotFound`; `Unexpected` if a secret does not
    /// open.
    async fn target(&self, id: ChannelId) -> Result<ChannelTarget, RepositoryError>;
}

/// A delivery ready to send: the delivery, its channel with secrets opened, and the alert as it
/// is now.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Where it goes; `Err` when the channel's secrets cannot be opened (the delivery fails).
    pub target: Result<ChannelTarget, String>,
    /// What it is about.
    pub alert: Alert,
}

/// The outcome of one attempt, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The delivery.
    pub id: DeliveryId,
    /// What the attempt gave.
    pub result: SendResult,
    /// Its number (1 = the first).
    pub attempts: u32,
    /// `Done` when delivered or given up, else when to retry.
    pub next: Next,
    /// Whether it was delivered (else, with `Next::Done`, it failed).
    pub delivered: bool,
    /// When the attempt ended.
    pub at: Timestamp,
}

/// Stores deliveries, each an item of the deliveries' lease queue.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// The pending deliveries among `ids`, ready to send (gone or finished ones are left out).
    async fn pending(&self, ids: &[i64]) -> Result<Vec<PendingDelivery>, RepositoryError>;

    /// Records attempts and completes their leases, in one transaction; attempts whose lease
    /// `owner` no longer holds are dropped. Returns the deliveries recorded.
    async fn record(&self, owner: &LeaseOwner, attempts: Vec<DeliveryAttempt>) -> Result<Vec<i64>, RepositoryError>;

    /// A page of a channel's deliveries, newest first. Errors: `NotFound` (the channel).
    async fn list(&self, channel: ChannelId, page: PageRequest) -> Result<Page<Delivery>, RepositoryError>;
}

/// What to send.
#[derive(Debug, Clone)]
pub enum Message {
    /// An alert transition.
    Alert {
        /// The delivery (its id is the `webhook-id`).
        delivery: DeliveryId,
        /// The transition.
        notification_type: NotificationType,
        /// The alert.
        alert: Box<Alert>,
    },
    /// A test message (`POST /notification-channels/{id}/test`).
    Test {
        /// A fresh id for this message.
        message_id: String,
        /// The channel.
        channel_id: ChannelId,
    },
}

/// Sends one message to one channel, once: no retries, no redirects, bounded by the sender's
/// timeout. Never fails: every problem is in the [`SendResult`] (without the URL or a secret).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `message` to `target`.
    async fn send(&self, target: &ChannelTarget, message: &Message, now: Timestamp) -> SendResult;
}

/// The alert use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AlertService: Send + Sync {
    /// A page of alerts.
    async fn list_alerts(&self, filter: AlertFilter, page: PageRequest) -> Result<Page<Alert>, ServiceError>;
    /// One alert.
    async fn get_alert(&self, id: AlertId) -> Result<Alert, ServiceError>;
    /// Acknowledges an alert.
    async fn acknowledge_alert(&self, id: AlertId) -> Result<Alert, ServiceError>;
    /// The global rules.
    async fn global_rules(&self) -> Result<Vec<RuleSettings>, ServiceError>;
    /// Changes a rule's global settings. Errors: `InvalidInput`.
    async fn update_global_rule(&self, rule: AlertRule, patch: RuleSettingsPatch)
    -> Result<RuleSettings, ServiceError>;
    /// A source's effective rules.
    async fn source_rules(&self, source: SourceId) -> Result<Vec<SourceRule>, ServiceError>;
    /// Changes a source's own settings of a rule (starting from its effective ones).
    async fn update_source_rule(
        &self,
        source: SourceId,
        rule: AlertRule,
        patch: RuleSettingsPatch,
    ) -> Result<SourceRule, ServiceError>;
    /// Removes a source's own settings of a rule.
    async fn remove_source_rule(&self, source: SourceId, rule: AlertRule) -> Result<(), ServiceError>;
}

/// The notification-channel use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ChannelService: Send + Sync {
    /// Creates a channel. Errors: `InvalidInput`, `Conflict`.
    async fn create_channel(&self, new: NewChannel) -> Result<NotificationChannel, ServiceError>;
    /// One channel.
    async fn get_channel(&self, id: ChannelId) -> Result<NotificationChannel, ServiceError>;
    /// A page of channels.
    async fn list_channels(&self, page: PageRequest) -> Result<Page<NotificationChannel>, ServiceError>;
    /// Changes a channel. Errors: `InvalidInput`, `Conflict`, `NotFound`.
    async fn update_channel(&self, id: ChannelId, patch: ChannelPatch) -> Result<NotificationChannel, ServiceError>;
    /// Deletes a channel.
    async fn delete_channel(&self, id: ChannelId) -> Result<(), ServiceError>;
    /// Sends a test message now, once (also to a disabled channel).
    async fn test_channel(&self, id: ChannelId) -> Result<SendResult, ServiceError>;
    /// A page of a channel's deliveries.
    async fn list_deliveries(&self, id: ChannelId, page: PageRequest) -> Result<Page<Delivery>, ServiceError>;
}
