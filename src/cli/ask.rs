//! `chatter ask`: answer a question as the widget would, storing nothing.

use std::sync::Arc;

use super::CliError;
use super::output::print_json;
use crate::bot_config::BotConfigCache;
use crate::chat::{self, Answerer};
use crate::config::Settings;
use crate::db::Database;
use crate::engine::worker::EmbeddingQueue;
use crate::engine::{Engine, loader};
use crate::tenancy::provision;

/// The model, loaded in this process, behind a worker of its own.
pub(super) async fn ready_engine(settings: &Settings) -> Result<Arc<Engine>, CliError> {
    let embedder = loader::load(&settings.model, loader::progress()).await?;
    // A one-off command: its metrics are never scraped.
    let queue = EmbeddingQueue::start(
        embedder,
        loader::worker_settings(&settings.model),
        Arc::default(),
    )?;
    Ok(Arc::new(Engine::ready(queue)))
}

/// The chat's answerer for a one-off command: the model loaded here, and a
/// head that does not fit trained before the answer, not in a background
/// task the exit would cut short.
pub(super) async fn one_off_answerer(
    db: &Database,
    settings: &Settings,
) -> Result<Answerer, CliError> {
    let engine = ready_engine(settings).await?;
    let db = db.db().clone();
    let bot_configs = Arc::new(BotConfigCache::new(db.clone(), 1));
    let billing = Arc::new(crate::billing::Billing::new(
        db.clone(),
        settings.billing.clone(),
        1,
    ));
    Ok(Answerer::new(db, engine, bot_configs, billing, settings.chat.clone()).training_inline())
}

pub(super) async fn ask(
    db: &Database,
    settings: &Settings,
    schema: &str,
    question: &str,
) -> Result<(), CliError> {
    let schema = provision::existing_tenant(db.db(), schema).await?;
    // Checked before the model loads: a bad question fails at once.
    let question = chat::check_message(question, &settings.chat)
        .map_err(|e| CliError::Usage(format!("the question cannot be asked: {e}")))?;
    let answerer = one_off_answerer(db, settings).await?;
    let answer = answerer.answer(&schema, question).await?;
    print_json(&answer)
}
