//! `chatter embed` and `chatter model fetch`: the model on its own.

use super::CliError;
use crate::config::Settings;
use crate::engine::{loader, model_files};

pub(super) async fn embed(settings: &Settings, texts: Vec<String>) -> Result<(), CliError> {
    let embedder = loader::load(&settings.model, loader::progress()).await?;
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed(&refs)
    })
    .await
    .map_err(|e| CliError::Failed(e.to_string()))?
    .map_err(crate::engine::EngineError::from)?;
    for vector in vectors {
        let line = serde_json::to_string(&vector).map_err(|e| CliError::Failed(e.to_string()))?;
        println!("{line}");
    }
    Ok(())
}

pub(super) async fn model_fetch(settings: &Settings) -> Result<(), CliError> {
    let files = model_files::resolve(&loader::source(&settings.model), loader::progress()).await?;
    println!("{} in {}", files.model_id, files.dir.display());
    Ok(())
}
