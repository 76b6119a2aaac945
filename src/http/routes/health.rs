//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;

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
    /// `loading`, `ready` or `failed`.
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

/// Ready: the database answers within a second and the model is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to answer", body = Readiness),
        (status = 503, description = "The database or the model is not ready", body = Readiness),
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
    let model = state.engine.describe();
    let status = if database && state.engine.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { database, model }))
}

pub async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}
