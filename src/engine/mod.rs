//! The answering engine: a sentence embedder behind a trait, the batching
//! worker that runs it off the async runtime, and the per-tenant FAQ index.
//!
//! - `minilm`: all-MiniLM-L6-v2 on candle, the real embedder.
//! - `model_files`: where the model comes from (local folder, hub cache, hub).
//! - `loader`: settings → a loaded embedder.
//! - `worker`: the bounded queue and the batching inference thread.
//! - `status`: loading / ready / failed, what `/readyz` and chat look at.
//! - `index`: one tenant's FAQ vectors as one contiguous matrix.
//! - `index_cache`: built indexes by tenant, within a memory budget.
//! - `matcher`: the tenant's learned head over those vectors, with calibrated confidence.
//! - `packed`: vectors stored compactly in the database (half precision).
//! - `hashing`: a small deterministic embedder for tests that don't test matching.

pub mod hashing;
pub mod index;
pub mod index_cache;
pub mod loader;
pub mod matcher;
// The forward pass calls gemm's unsafe entry point, shares thread-local
// buffers between pool threads and madvises its weights: the one place
// where a dependency forces unsafe code (the safety rules are in comments).
#[allow(unsafe_code)]
pub mod minilm;
pub mod model_files;
pub mod packed;
pub mod question_cache;
pub mod status;
pub mod worker;

use crate::error_kind::{Class, Classify, Kind};
pub use status::Engine;

/// Turns texts into L2-normalised vectors, one per text, in order.
/// Blocking and CPU-bound: only the worker thread calls it on a server.
pub trait Embedder: Send + Sync + 'static {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn dim(&self) -> usize;
    /// Names the model and revision that made a vector; stored beside it.
    fn model_id(&self) -> &str;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("the model failed: {0}")]
    Model(String),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("the model is still loading")]
    Loading,
    #[error("the model could not be loaded: {0}")]
    Failed(String),
    #[error("too many questions at once; try again shortly")]
    Busy,
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("the inference worker stopped")]
    Stopped,
}

impl Classify for EngineError {
    fn kind(&self) -> Kind {
        let wait = status::retry_after(self);
        match self {
            EngineError::Loading => Kind::new(Class::Unavailable, "model_loading")
                .retry_after(wait)
                .expected(),
            EngineError::Busy => Kind::new(Class::Unavailable, "busy")
                .retry_after(wait)
                .expected(),
            EngineError::Failed(_) | EngineError::Embed(_) | EngineError::Stopped => {
                Kind::new(Class::Unavailable, "model_unavailable")
                    .retry_after(wait)
                    .saying("the bot cannot answer right now; try again later")
            }
        }
    }
}
