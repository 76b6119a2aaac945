//! From settings to a running model: find the files (`model_files`), load
//! all-MiniLM-L6-v2 (`minilm`) off the async runtime, warm it up, and start
//! its worker.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ModelSettings;
use crate::engine::minilm::{self, MiniLm, ModelError};
use crate::engine::model_files::{self, ModelFilesError, ModelSource, Progress};
use crate::engine::worker::{EmbeddingQueue, WorkerSettings};
use crate::engine::{EmbedError, Embedder, Engine, EngineError};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Files(#[from] ModelFilesError),
    #[error("cannot load the model: {0}")]
    Model(#[from] ModelError),
    #[error("the model loader stopped: {0}")]
    Join(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// MiniLM with the id of the files it came from.
pub struct LoadedModel {
    model: MiniLm,
    model_id: String,
}

impl Embedder for LoadedModel {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model
            .embed(texts)
            .map_err(|e| EmbedError::Model(e.to_string()))
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

pub fn source(settings: &ModelSettings) -> ModelSource {
    ModelSource {
        local_path: settings.path.clone(),
        repo: settings.repo.clone(),
        revision: settings.revision.clone(),
        hf_home: settings.hf_home.clone(),
        endpoint: settings.endpoint.clone(),
        offline: settings.offline,
    }
}

/// A progress bar on a terminal, log lines otherwise.
pub fn progress() -> Progress {
    if std::io::stderr().is_terminal() {
        Progress::Terminal
    } else {
        Progress::Log
    }
}

pub fn worker_settings(settings: &ModelSettings) -> WorkerSettings {
    WorkerSettings {
        max_batch: settings.max_batch,
        batch_wait: Duration::from_millis(settings.batch_wait_ms),
        queue_capacity: settings.queue_capacity,
    }
}

/// Finds (or downloads) the files and loads the model.
pub async fn load(
    settings: &ModelSettings,
    progress: Progress,
) -> Result<Arc<dyn Embedder>, LoadError> {
    let files = model_files::resolve(&source(settings), progress).await?;
    let threads = match settings.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    minilm::init_threads(threads);
    let model_id = files.model_id.clone();
    let dir = files.dir.clone();
    let model = tokio::task::spawn_blocking(move || MiniLm::load(&dir))
        .await
        .map_err(|e| LoadError::Join(e.to_string()))??;
    Ok(Arc::new(LoadedModel { model, model_id }))
}

/// Loads in the background; the engine turns ready (or failed) when done.
/// The worker records into `metrics`, which also gets the load time.
/// `progress`: `progress()` for the server; the console, which owns the
/// screen, takes `Progress::Log` (its log goes to a file).
pub fn spawn_loading(
    engine: Arc<Engine>,
    settings: ModelSettings,
    metrics: Arc<Metrics>,
    progress: Progress,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let result = async {
            let embedder = load(&settings, progress).await?;
            // The first forward pass pays for lazy set-up: not a visitor's job.
            let warm = Arc::clone(&embedder);
            tokio::task::spawn_blocking(move || warm.embed(&["warm up"]))
                .await
                .map_err(|e| LoadError::Join(e.to_string()))?
                .map_err(EngineError::from)?;
            let model_id = embedder.model_id().to_string();
            let queue =
                EmbeddingQueue::start(embedder, worker_settings(&settings), Arc::clone(&metrics))?;
            Ok::<_, LoadError>((queue, model_id))
        }
        .await;
        match result {
            Ok((queue, model_id)) => {
                metrics.set_model_load_time(started.elapsed());
                tracing::info!(%model_id, load_ms = started.elapsed().as_millis() as u64, "model ready");
                engine.set_ready(queue);
            }
            Err(e) => {
                tracing::error!(error = %e, "the model could not be loaded; chat will answer 503");
                engine.set_failed(e.to_string());
            }
        }
    })
}
