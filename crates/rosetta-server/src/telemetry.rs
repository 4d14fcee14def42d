//! Logging: one `tracing` subscriber for the process, JSON or text, filtered by `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Calling it again (tests building several servers) is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|error| {
        eprintln!("LOG_LEVEL {:?} is not a valid filter ({error}); using \"info\"", config.level);
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    // Span close events carry the request span (request id, status, latency): the access log.
    let installed = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::CLOSE)
            .try_init(),
        LogFormat::Text => builder.with_span_events(FmtSpan::CLOSE).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber is already installed");
    }
}
