//! `/api/conversations`: what visitors asked and what the bot answered, for
//! the tenant's members; erasure for its owners.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::conversations::{self, Filter, Page, Transcript};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiPath, Member, Owner};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Words any message of the conversation contains.
    pub q: Option<String>,
    /// From 1.
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    /// `true`: every question answered; `false`: at least one fell back.
    pub answered: Option<bool>,
    /// `true`: a visitor gave at least one answer a thumbs down (👎);
    /// `false`: none.
    pub thumbs_down: Option<bool>,
}

/// Conversations, latest first, 20 a page (members).
#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "bot",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "One page", body = Page),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    member: Member,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Page>, AppError> {
    let Query(params) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let filter = Filter {
        q: params.q,
        from: params.from,
        to: params.to,
        answered: params.answered,
        thumbs_down: params.thumbs_down,
        page: params.page.unwrap_or(1),
    };
    Ok(Json(
        conversations::list(&state.db, &member.tenant.schema, &filter).await?,
    ))
}

/// One conversation with every message and each answer's score (members).
#[utoipa::path(
    get,
    path = "/api/conversations/{id}",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The transcript", body = Transcript),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    member: Member,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Transcript>, AppError> {
    Ok(Json(
        conversations::transcript(&state.db, &member.tenant.schema, id).await?,
    ))
}

/// Erases a conversation and its messages (owners): a visitor's right to erasure.
#[utoipa::path(
    delete,
    path = "/api/conversations/{id}",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The conversation's id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    conversations::delete(&state.db, &owner.tenant.schema, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every message of every conversation as CSV (members).
#[utoipa::path(
    get,
    path = "/api/conversations/export.csv",
    tag = "bot",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "CSV, one row per message", body = String, content_type = "text/csv"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    member: Member,
) -> Result<impl IntoResponse, AppError> {
    let csv = conversations::export_csv(&state.db, &member.tenant.schema).await?;
    let disposition = format!(
        "attachment; filename=\"{}-conversations.csv\"",
        member.tenant.schema
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    ))
}
