//! Logging: tracing to stderr (or, for the console, which owns the screen,
//! to a file), human-readable or JSON.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

fn filter(settings: &LogSettings) -> EnvFilter {
    // refinery and tokio-postgres narrate every tenant migration at info
    // (thousands of lines at start-up); keep them at warn unless named.
    let mut directives = settings.level.clone();
    for noisy in ["refinery_core", "tokio_postgres"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=warn"));
        }
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber once; later calls do nothing (tests).
pub fn init(settings: &LogSettings) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(settings))
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Like `init`, appending to the file at `path` (created if need be).
pub fn init_to_file(settings: &LogSettings, path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(settings))
        .with_ansi(false)
        .with_writer(Mutex::new(file));
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}
