//! `chatter console`: the operator console, a terminal UI over the same
//! service layer as the HTTP API (tenants, domains, conversations, the
//! unanswered questions and the FAQs that answer them).
//!
//! - `app`: the state and what each key and each answer does to it (pure).
//! - `data`: the requests the state makes and the answers it gets.
//! - `service`: runs a request against the service layer, in a task.
//! - `render`: draws the state, one function per screen.
//! - `terminal`: raw mode, the panic hook and the event loop.
//!
//! Logs go to `console.log` in `CHATTER_DATA_DIR`, never to the screen
//! (see `main.rs`).

pub mod app;
pub mod data;
pub mod render;
pub mod service;
pub mod terminal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::db::Db;

use crate::config::Settings;
use crate::engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console needs a terminal: {0}")]
    Terminal(std::io::Error),
}

/// Where the console writes its log.
pub fn log_path(settings: &Settings) -> PathBuf {
    settings.database.data_dir.join("console.log")
}

/// Creates the log file's folder if need be.
pub fn prepare_log(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Runs the console until the operator quits.
pub async fn run(db: Db, settings: &Settings) -> Result<(), ConsoleError> {
    let services = service::Services {
        db,
        settings: Arc::new(settings.clone()),
        // Loaded only when the Unanswered screen first needs it.
        engine: Arc::new(Engine::loading()),
        summary_vectors: Arc::new(crate::analytics::SummaryVectors::new(
            settings.chat.summary_cache_bytes,
        )),
    };
    terminal::run(services).await
}

#[cfg(test)]
mod fixtures;
