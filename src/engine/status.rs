//! `Engine`: whether the model is loading, ready or failed, and the queue
//! to its worker once it is ready. The server answers `/healthz` before the
//! model is loaded; chat answers 503 until it is.

use std::sync::RwLock;
use std::time::Duration;

use crate::engine::EngineError;
use crate::engine::worker::EmbeddingQueue;

enum Status {
    Loading,
    Ready(EmbeddingQueue),
    Failed(String),
}

pub struct Engine {
    status: RwLock<Status>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::loading()
    }
}

impl Engine {
    pub fn loading() -> Self {
        Self {
            status: RwLock::new(Status::Loading),
        }
    }

    pub fn ready(queue: EmbeddingQueue) -> Self {
        Self {
            status: RwLock::new(Status::Ready(queue)),
        }
    }

    pub fn set_ready(&self, queue: EmbeddingQueue) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = Status::Ready(queue);
    }

    pub fn set_failed(&self, reason: String) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = Status::Failed(reason);
    }

    /// The queue to the model, or why there is none yet.
    pub fn queue(&self) -> Result<EmbeddingQueue, EngineError> {
        match &*self.status.read().unwrap_or_else(|e| e.into_inner()) {
            Status::Ready(queue) => Ok(queue.clone()),
            Status::Loading => Err(EngineError::Loading),
            Status::Failed(reason) => Err(EngineError::Failed(reason.clone())),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.queue().is_ok()
    }

    /// "loading", "ready" or "failed", for `/readyz`.
    pub fn describe(&self) -> &'static str {
        match &*self.status.read().unwrap_or_else(|e| e.into_inner()) {
            Status::Loading => "loading",
            Status::Ready(_) => "ready",
            Status::Failed(_) => "failed",
        }
    }
}

/// How long a client should wait before asking again.
pub fn retry_after(error: &EngineError) -> Duration {
    match error {
        EngineError::Loading => Duration::from_secs(5),
        EngineError::Busy => Duration::from_secs(1),
        _ => Duration::from_secs(30),
    }
}
