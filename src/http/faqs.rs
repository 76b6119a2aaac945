//! `/api/faqs`: a tenant's knowledge base. Members read; owners write, and
//! the bot answers with a change at once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::AppError;
use crate::faq::{self, Faq, NewFaq};
use crate::http::auth::{Member, Owner};
use crate::http::json::{ApiBytes, ApiJson};
use crate::state::AppState;
use crate::tenancy::SchemaName;
use crate::tenancy::events::{ChangeEvent, Signal};

fn changed(state: &AppState, schema: &SchemaName) {
    // This process drops its index now; others hear the NOTIFY.
    state.apply(&Signal::Event(ChangeEvent::Faqs(schema.clone())));
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<Vec<Faq>>, AppError> {
    Ok(Json(faq::list(&state.pool, &member.tenant.schema).await?))
}

pub async fn get(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<i64>,
) -> Result<Json<Faq>, AppError> {
    Ok(Json(
        faq::get(&state.pool, &member.tenant.schema, id).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(new): ApiJson<NewFaq>,
) -> Result<(StatusCode, Json<Faq>), AppError> {
    let schema = &owner.tenant.schema;
    let created = faq::create(&state.pool, schema, new).await?;
    changed(&state, schema);
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn update(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<i64>,
    ApiJson(new): ApiJson<NewFaq>,
) -> Result<Json<Faq>, AppError> {
    let schema = &owner.tenant.schema;
    let updated = faq::update(&state.pool, schema, id, new).await?;
    changed(&state, schema);
    Ok(Json(updated))
}

pub async fn delete(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let schema = &owner.tenant.schema;
    faq::delete(&state.pool, schema, id).await?;
    changed(&state, schema);
    Ok(StatusCode::NO_CONTENT)
}

/// The body is the file itself: a JSON array or CSV text, as `chatter faq
/// import` takes; all rows or none.
pub async fn import(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Value>, AppError> {
    let schema = &owner.tenant.schema;
    let faqs = faq::parse_import(&body)?;
    let imported = faq::import(&state.pool, schema, &faqs).await?;
    changed(&state, schema);
    Ok(Json(json!({ "imported": imported })))
}
