//! `GET /api/analytics/summary?days=N`: a tenant's numbers, for members.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::analytics::{self, Grouping, Summary};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::Member;
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// The last N days, today included: 1 to 365, 30 when absent.
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<i64>,
    /// `false`: group the unanswered questions by identical wording only,
    /// without the model: fast, for pages that show only the numbers.
    pub groups: Option<bool>,
}

/// The tenant's numbers for the last N days (members): conversations,
/// messages, answered and fallback rates, a series per day, and the
/// unanswered questions grouped by meaning.
#[utoipa::path(
    get,
    path = "/api/analytics/summary",
    tag = "bot",
    security(("bearer" = [])),
    params(Params),
    responses(
        (status = 200, description = "The summary", body = Summary),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
        (status = 429, description = "Too many grouped summaries for this user; see `Retry-After`", body = ErrorBody),
    )
)]
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
    let groups = params.groups != Some(false);
    if groups {
        // Grouping embeds up to 500 questions: a member may ask for a few
        // a minute, not a stream (issue 16). The numbers alone are a
        // database read, like any other page's.
        state
            .summary_limits
            .check(&member.user.id.to_string())
            .map_err(AppError::TooManyRequests)?;
    }
    let queue = state.engine.queue().ok().filter(|_| groups);
    let grouping = queue.as_ref().map(|queue| Grouping {
        queue,
        vectors: &state.summary_vectors,
    });
    Ok(Json(
        analytics::summary(&state.db, &member.tenant.schema, days, grouping).await?,
    ))
}
