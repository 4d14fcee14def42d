//! Rosetta's domain model.
//!
//! Pure types and rules: sources (PostgreSQL databases), destinations (Snowflake warehouses),
//! pipelines and their lifecycle, replication slots, publications and preflight checks, and the alert rules that watch sources' WAL. No async, no I/O and no framework; `serde` support is behind the
//! `serde` feature so other services can link this crate with or without it.
//!
//! Every value type is valid once it exists ("parse, don't validate"): constructors return
//! [`InvalidValue`] describing the first rule the input breaks.

mod alert;
mod catalog;
mod chart;
mod destination;
mod ids;
mod invalid;
mod notification;
mod page;
mod patch;
mod pipeline;
mod preflight;
mod secret;
mod slot;
mod source;
mod text;
mod tls;
mod wal;

pub use alert::{
    Alert, AlertChange, AlertFilter, AlertKey, AlertMemory, AlertRule, AlertState, AlertUpdate, EffectiveRules,
    Evaluation, EvaluationInput, FiringAlert, InvalidRuleSettings, NewAlert, NotificationType, Observation,
    RateBaseline, Reading, ResolveReason, RuleSettings, RuleSettingsPatch, RuleSubject, Severity, Watch, evaluate,
    format_bytes, format_seconds,
};
pub use catalog::{Publication, PublicationTables, ReplicaIdentity, SourceTable, TableName};
pub use chart::{
    ChartHistory, ChartLine, ChartPoint, ChartThresholds, ChartWindow, InvalidChartWindow, SampledBucket, SlotBucket,
    WalChart,
};
pub use destination::{
    Destination, DestinationName, DestinationPatch, NewDestination, SnowflakeAccount, SnowflakeSettings,
};
pub use ids::{AlertId, ChannelId, CleanupTaskId, DeliveryId, DestinationId, PipelineId, SourceId};
pub use invalid::{InvalidKind, InvalidValue};
pub use notification::{
    AfterAttempt, ChannelKind, ChannelName, ChannelPatch, ChannelTarget, ChannelUrl, Delivery, DeliveryState,
    InvalidChannel, NewChannel, NotificationChannel, RetryPolicy, SendResult, SigningSecret,
};
pub use page::{Page, PageLimit, PageRequest};
pub use patch::Patch;
pub use pipeline::{
    NewPipeline, Pipeline, PipelineDetails, PipelineMetadata, PipelineMetadataStatus, PipelineName, PipelinePatch,
    PipelineStatus, PipelineSummary, Transition,
};
pub use preflight::{
    CheckName, CheckStatus, MIN_SOURCE_VERSION_NUM, Preflight, PreflightCheck, PreflightSubject, PublicationFacts,
    SourceFacts, quote_identifier,
};
pub use secret::Secret;
pub use slot::{CleanupKind, CleanupTask, LiveSlot, PipelineSlot, SlotName, cleanup_retry_at};
pub use source::{
    NewSource, PgDatabase, PgHost, PgPort, PgUsername, PublicationName, ReplicationId, Source, SourceConnection,
    SourceName, SourcePatch,
};
pub use text::ShortText;
pub use tls::{PgSslMode, PgSslRootCert};
pub use wal::{Lsn, SlotSample, SlotType, SourceWalState, SystemSample, WalMonitorStatus, WalSample, WalStatus};

/// A point in time, always UTC. Adapters store it with microsecond precision.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

#[cfg(all(test, feature = "serde"))]
mod serde_tests {
    use super::*;

    #[test]
    fn deserialising_enforces_the_invariants() {
        assert_eq!(serde_json::from_str::<SourceName>("\"Orders\"").unwrap().as_str(), "orders");
        assert!(serde_json::from_str::<SourceName>("\"has space\"").is_err());
        assert!(serde_json::from_str::<PgPort>("0").is_err());
        assert_eq!(serde_json::from_str::<PipelineStatus>("\"PAUSE\"").unwrap(), PipelineStatus::Pause);
        assert_eq!(serde_json::to_string(&PgPort::DEFAULT).unwrap(), "5432");
    }
}
