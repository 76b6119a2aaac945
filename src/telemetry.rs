//! Logging: tracing to stderr, human-readable or JSON.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls do nothing (tests).
pub fn init(settings: &LogSettings) {
    // refinery and tokio-postgres narrate every tenant migration at info
    // (thousands of lines at start-up); keep them at warn unless named.
    let mut directives = settings.level.clone();
    for noisy in ["refinery_core", "tokio_postgres"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=warn"));
        }
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
