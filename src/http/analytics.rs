//! `GET /api/analytics/summary?days=N`: a tenant's numbers, for members.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::analytics::{self, Summary};
use crate::error::AppError;
use crate::http::auth::Member;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub days: Option<i64>,
}

pub async fn summary(
    State(state): State<AppState>,
    member: Member,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Summary>, AppError> {
    let Query(params) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let days = params.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(AppError::BadRequest(
            "days must be between 1 and 365".into(),
        ));
    }
    let queue = state.engine.queue().ok();
    Ok(Json(
        analytics::summary(&state.pool, &member.tenant.schema, days, queue.as_ref()).await?,
    ))
}
