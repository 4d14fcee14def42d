use std::fmt;
use std::str::FromStr;

use crate::slot::SlotName;
use crate::text::resource_name;
use crate::{Destination, DestinationId, InvalidKind, InvalidValue, PipelineId, Source, SourceId, Timestamp};

resource_name!(
    /// A pipeline's unique name: 1–255 letters, digits, `-`, `_`, lower-cased.
    PipelineName
);

/// The desired state of a pipeline, written by the API (`pipelines.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "UPPERCASE"))]
pub enum PipelineStatus {
    /// Replicate.
    #[default]
    Start,
    /// Stop replicating, keep the position.
    Pause,
    /// Re-copy the tables, then replicate.
    Refresh,
}

impl PipelineStatus {
    /// Every status, in declaration order.
    pub const ALL: [Self; 3] = [Self::Start, Self::Pause, Self::Refresh];

    /// The wire and storage form: `START`, `PAUSE`, `REFRESH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "START",
            Self::Pause => "PAUSE",
            Self::Refresh => "REFRESH",
        }
    }
}

impl fmt::Display for PipelineStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PipelineStatus {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| {
            InvalidValue::new(InvalidKind::PatternMismatch, "must be one of 'START', 'PAUSE', 'REFRESH'")
        })
    }
}

/// The observed state of a pipeline (`pipeline_metadata.status`), written by the CDC engine and
/// by the lifecycle transitions of this service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "UPPERCASE"))]
pub enum PipelineMetadataStatus {
    /// The engine replicates.
    Running,
    /// The engine holds.
    Paused,
    /// The engine stopped on an error (see `last_error`).
    Error,
}

impl PipelineMetadataStatus {
    /// Every status, in declaration order.
    pub const ALL: [Self; 3] = [Self::Running, Self::Paused, Self::Error];

    /// The wire and storage form: `RUNNING`, `PAUSED`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Error => "ERROR",
        }
    }
}

impl fmt::Display for PipelineMetadataStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PipelineMetadataStatus {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| {
            InvalidValue::new(InvalidKind::PatternMismatch, "must be one of 'RUNNING', 'PAUSED', 'ERROR'")
        })
    }
}

/// The observed runtime state of one pipeline; exactly one per pipeline, created with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineMetadata {
    /// The pipeline this state belongs to.
    pub pipeline_id: PipelineId,
    /// Observed status.
    pub status: PipelineMetadataStatus,
    /// The engine's last error, if any.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<Timestamp>,
    /// When the pipeline was last started.
    pub last_start_at: Option<Timestamp>,
    /// When this row was created.
    pub created_at: Timestamp,
    /// When this row last changed.
    pub updated_at: Timestamp,
}

/// A pipeline with its observed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// The pipeline's identifier.
    pub id: PipelineId,
    /// Unique, lower-cased name.
    pub name: PipelineName,
    /// Where changes are read.
    pub source_id: SourceId,
    /// Where changes are written.
    pub destination_id: DestinationId,
    /// Desired status.
    pub status: PipelineStatus,
    /// The replication slot on the source this pipeline reads through (unique per source).
    pub slot_name: SlotName,
    /// Whether Rosetta created that slot, and so drops it with the pipeline.
    pub slot_managed: bool,
    /// Observed state.
    pub metadata: PipelineMetadata,
    /// When the pipeline was created.
    pub created_at: Timestamp,
    /// When the pipeline was last changed.
    pub updated_at: Timestamp,
}

/// The outcome of asking a pipeline for a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The pipeline already is in the requested state: nothing to write (actions are idempotent).
    Unchanged,
    /// Write this desired status and observed state.
    Changed {
        /// New desired status.
        status: PipelineStatus,
        /// New observed state.
        metadata: PipelineMetadata,
    },
}

impl PipelineMetadata {
    /// The observed state of a pipeline created with `status` at `now`: `RUNNING` (started now)
    /// unless it is created paused.
    pub fn initial(pipeline_id: PipelineId, status: PipelineStatus, now: Timestamp) -> Self {
        let (observed, last_start_at) = match status {
            PipelineStatus::Pause => (PipelineMetadataStatus::Paused, None),
            PipelineStatus::Start | PipelineStatus::Refresh => (PipelineMetadataStatus::Running, Some(now)),
        };
        Self {
            pipeline_id,
            status: observed,
            last_error: None,
            last_error_at: None,
            last_start_at,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Pipeline {
    /// The lifecycle rule: what asking for `requested` at `now` does.
    ///
    /// * `START` → observed `RUNNING`, `last_start_at = now`, last error cleared;
    /// * `PAUSE` → observed `PAUSED`;
    /// * `REFRESH` → observed state unchanged.
    ///
    /// A request the pipeline already satisfies is [`Transition::Unchanged`], so repeating an
    /// action changes nothing (not even timestamps).
    pub fn request(&self, requested: PipelineStatus, now: Timestamp) -> Transition {
        let current = &self.metadata;
        let mut metadata = current.clone();
        match requested {
            PipelineStatus::Start => {
                let already = self.status == PipelineStatus::Start
                    && current.status == PipelineMetadataStatus::Running
                    && current.last_error.is_none()
                    && current.last_error_at.is_none();
                if already {
                    return Transition::Unchanged;
                }
                metadata.status = PipelineMetadataStatus::Running;
                metadata.last_start_at = Some(now);
                metadata.last_error = None;
                metadata.last_error_at = None;
            }
            PipelineStatus::Pause => {
                if self.status == PipelineStatus::Pause && current.status == PipelineMetadataStatus::Paused {
                    return Transition::Unchanged;
                }
                metadata.status = PipelineMetadataStatus::Paused;
            }
            PipelineStatus::Refresh => {
                if self.status == PipelineStatus::Refresh {
                    return Transition::Unchanged;
                }
            }
        }
        if metadata != *current {
            metadata.updated_at = now;
        }
        Transition::Changed { status: requested, metadata }
    }
}

/// A pipeline read together with the source and destination it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineDetails {
    /// The pipeline and its observed state.
    pub pipeline: Pipeline,
    /// Its source.
    pub source: Source,
    /// Its destination.
    pub destination: Destination,
}

/// A pipeline's id and name: how a refusal to delete a source or destination names the
/// pipelines that still use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSummary {
    /// The pipeline's identifier.
    pub id: PipelineId,
    /// Its name.
    pub name: PipelineName,
}

/// What it takes to create a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPipeline {
    /// Unique name.
    pub name: PipelineName,
    /// Source to read from (must exist).
    pub source_id: SourceId,
    /// Destination to write to (must exist).
    pub destination_id: DestinationId,
    /// Desired status (default `START`).
    pub status: PipelineStatus,
    /// Its replication slot's name; `None`: `rosetta_<pipeline id>`.
    pub slot_name: Option<SlotName>,
}

/// A partial update of a pipeline. A `status` has exactly the effect of the matching action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipelinePatch {
    /// New name.
    pub name: Option<PipelineName>,
    /// New source (must exist).
    pub source_id: Option<SourceId>,
    /// New destination (must exist).
    pub destination_id: Option<DestinationId>,
    /// Requested status.
    pub status: Option<PipelineStatus>,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn at(second: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).single().unwrap()
    }

    fn pipeline(status: PipelineStatus) -> Pipeline {
        let id = PipelineId::new(1);
        Pipeline {
            id,
            name: PipelineName::parse("p").unwrap(),
            source_id: SourceId::new(1),
            destination_id: DestinationId::new(1),
            status,
            slot_name: SlotName::for_pipeline(id),
            slot_managed: false,
            metadata: PipelineMetadata::initial(id, status, at(0)),
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn apply(pipeline: &mut Pipeline, requested: PipelineStatus, now: Timestamp) -> bool {
        match pipeline.request(requested, now) {
            Transition::Unchanged => false,
            Transition::Changed { status, metadata } => {
                pipeline.status = status;
                pipeline.metadata = metadata;
                true
            }
        }
    }

    #[test]
    fn created_state_follows_the_requested_status() {
        let started = PipelineMetadata::initial(PipelineId::new(1), PipelineStatus::Start, at(0));
        assert_eq!(started.status, PipelineMetadataStatus::Running);
        assert_eq!(started.last_start_at, Some(at(0)));
        let paused = PipelineMetadata::initial(PipelineId::new(1), PipelineStatus::Pause, at(0));
        assert_eq!(paused.status, PipelineMetadataStatus::Paused);
        assert_eq!(paused.last_start_at, None);
    }

    #[test]
    fn pause_then_start_sets_last_start_and_clears_errors() {
        let mut p = pipeline(PipelineStatus::Start);
        p.metadata.status = PipelineMetadataStatus::Error;
        p.metadata.last_error = Some("boom".into());
        p.metadata.last_error_at = Some(at(1));
        assert!(apply(&mut p, PipelineStatus::Pause, at(2)));
        assert_eq!((p.status, p.metadata.status), (PipelineStatus::Pause, PipelineMetadataStatus::Paused));
        assert_eq!(p.metadata.last_error.as_deref(), Some("boom"));
        assert!(apply(&mut p, PipelineStatus::Start, at(3)));
        assert_eq!(p.metadata.status, PipelineMetadataStatus::Running);
        assert_eq!(p.metadata.last_start_at, Some(at(3)));
        assert_eq!((p.metadata.last_error.clone(), p.metadata.last_error_at), (None, None));
        assert_eq!(p.metadata.updated_at, at(3));
    }

    #[test]
    fn actions_are_idempotent() {
        for status in PipelineStatus::ALL {
            let mut p = pipeline(PipelineStatus::Start);
            apply(&mut p, status, at(1));
            let before = p.clone();
            assert!(!apply(&mut p, status, at(2)), "{status} twice changed the pipeline");
            assert_eq!(p, before);
        }
    }

    #[test]
    fn start_restarts_a_pipeline_in_error() {
        let mut p = pipeline(PipelineStatus::Start);
        p.metadata.status = PipelineMetadataStatus::Error;
        assert!(apply(&mut p, PipelineStatus::Start, at(5)));
        assert_eq!(p.metadata.status, PipelineMetadataStatus::Running);
        assert_eq!(p.metadata.last_start_at, Some(at(5)));
    }

    #[test]
    fn refresh_keeps_the_observed_state() {
        let mut p = pipeline(PipelineStatus::Pause);
        let observed = p.metadata.clone();
        assert!(apply(&mut p, PipelineStatus::Refresh, at(4)));
        assert_eq!(p.status, PipelineStatus::Refresh);
        assert_eq!(p.metadata, observed);
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in PipelineStatus::ALL {
            assert_eq!(s.as_str().parse::<PipelineStatus>().unwrap(), s);
        }
        for s in PipelineMetadataStatus::ALL {
            assert_eq!(s.as_str().parse::<PipelineMetadataStatus>().unwrap(), s);
        }
        assert!("start".parse::<PipelineStatus>().is_err());
    }
}
