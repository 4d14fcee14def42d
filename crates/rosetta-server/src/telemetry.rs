//! Logging: one `tracing` subscriber for the process, JSON or text, filtered by `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Calling it again (tests building several servers) is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|error| {
        eprintln!("LOG_LEVEL {:?} is not a valid filter ({error}); using \"info\"", config.level);
        EnvFilter::new("info")
    });
    // Colours only for a person at a terminal: a file or a log collector would keep the escapes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_ansi(ansi);
    // The HTTP adapter writes one access line per request inside the request span, so each
    // event carries the span's fields (request id, route) and no span events are needed.
    let installed = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber is already installed");
    }
}
