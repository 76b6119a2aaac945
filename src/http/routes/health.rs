//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::engine::worker::WorkerHealth;
use crate::error::AppError;
use crate::http::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub database: bool,
    /// `loading`, `ready` or `failed`; `wedged` when the inference thread
    /// has been on one batch longer than `model.wedged_after_secs`,
    /// `stopped` when it has ended.
    pub model: &'static str,
}

/// Alive: answers at once, touches nothing.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Liveness))
)]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// Ready: the database answers within a second, the model is loaded, and
/// its inference thread is alive and not stuck on one batch.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to answer", body = Readiness),
        (status = 503, description = "The database or the model is not ready, or the inference thread is stuck or gone", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = tokio::time::timeout(Duration::from_secs(1), async {
        let client = state.db.shared().await.ok()?;
        client.execute("SELECT 1", &[]).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let wedged_after = Duration::from_secs(state.settings.model.wedged_after_secs.max(1));
    let (model, model_ready) = match state.engine.queue() {
        Ok(queue) => match queue.health(wedged_after) {
            WorkerHealth::Working => ("ready", true),
            WorkerHealth::Wedged => ("wedged", false),
            WorkerHealth::Stopped => ("stopped", false),
        },
        Err(_) => (state.engine.describe(), false),
    };
    let status = if database && model_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { database, model }))
}

pub async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}
