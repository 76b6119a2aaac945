//! `chatter ask`: answer a question as the widget would, storing nothing.

use std::sync::Arc;

use super::CliError;
use super::output::print_json;
use crate::config::Settings;
use crate::db::Database;
use crate::engine::worker::EmbeddingQueue;
use crate::engine::{Engine, loader};
use crate::state::AppState;
use crate::tenancy::provision;

/// The model, loaded in this process, behind a worker of its own.
async fn ready_engine(settings: &Settings) -> Result<Arc<Engine>, CliError> {
    let embedder = loader::load(&settings.model, loader::progress()).await?;
    // A one-off command: its metrics are never scraped.
    let queue = EmbeddingQueue::start(
        embedder,
        loader::worker_settings(&settings.model),
        Arc::default(),
    )?;
    Ok(Arc::new(Engine::ready(queue)))
}

pub(super) async fn ask(
    db: &Database,
    settings: &Settings,
    schema: &str,
    question: &str,
) -> Result<(), CliError> {
    let schema = provision::existing_tenant(&db.pool, schema).await?;
    let question = question.trim();
    if question.is_empty() {
        return Err(CliError::Usage("the question is empty".into()));
    }
    let engine = ready_engine(settings).await?;
    let state = AppState::new(db.pool.clone(), settings.clone(), engine, Arc::default());
    let answer = state.answer(&schema, question).await?;
    print_json(&answer)
}
