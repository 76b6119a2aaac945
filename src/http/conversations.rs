//! `/api/conversations`: what visitors asked and what the bot answered, for
//! the tenant's members; erasure for its owners.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::conversations::{self, Filter, Page, Transcript};
use crate::error::AppError;
use crate::http::auth::{Member, Owner};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub q: Option<String>,
    pub page: Option<i64>,
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    /// `true`: every question answered; `false`: at least one fell back.
    pub answered: Option<bool>,
}

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
        page: params.page.unwrap_or(1),
    };
    Ok(Json(
        conversations::list(&state.pool, &member.tenant.schema, &filter).await?,
    ))
}

pub async fn get(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<i64>,
) -> Result<Json<Transcript>, AppError> {
    Ok(Json(
        conversations::transcript(&state.pool, &member.tenant.schema, id).await?,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    conversations::delete(&state.pool, &owner.tenant.schema, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn export(
    State(state): State<AppState>,
    member: Member,
) -> Result<impl IntoResponse, AppError> {
    let csv = conversations::export_csv(&state.pool, &member.tenant.schema).await?;
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
