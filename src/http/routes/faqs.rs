//! `/api/faqs`: a tenant's knowledge base. Members read; owners write, and
//! the bot answers with a change at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, ErrorBody};
use crate::faq::{self, Assigned, Faq, NewFaq};
use crate::http::extract::{ApiBytes, ApiJson, ApiPath, Member, Owner};
use crate::http::state::AppState;
use crate::tenancy::SchemaName;
use crate::tenancy::events::{ChangeEvent, Signal};

fn changed(state: &AppState, schema: &SchemaName) {
    // This process drops its index now; others hear the NOTIFY.
    state.apply(&Signal::Event(ChangeEvent::Faqs(schema.clone())));
}

/// Every FAQ of the tenant (members).
#[utoipa::path(
    get,
    path = "/api/faqs",
    tag = "bot",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The FAQs, oldest first", body = Vec<Faq>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<Vec<Faq>>, AppError> {
    Ok(Json(faq::list(&state.db, &member.tenant.schema).await?))
}

/// One FAQ (members).
#[utoipa::path(
    get,
    path = "/api/faqs/{id}",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The FAQ's id")),
    responses(
        (status = 200, description = "The FAQ", body = Faq),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
        (status = 404, description = "No such FAQ", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    member: Member,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Faq>, AppError> {
    Ok(Json(faq::get(&state.db, &member.tenant.schema, id).await?))
}

/// Adds a FAQ (owners); the bot answers it at once.
#[utoipa::path(
    post,
    path = "/api/faqs",
    tag = "bot",
    security(("bearer" = [])),
    request_body = NewFaq,
    responses(
        (status = 201, description = "The FAQ as stored", body = Faq),
        (status = 400, description = "Empty or too long text, or an unknown field", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant, or `plan_limit`: the plan's FAQs are used up", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(new): ApiJson<NewFaq>,
) -> Result<(StatusCode, Json<Faq>), AppError> {
    let schema = &owner.tenant.schema;
    let cap = state.billing.faq_cap(schema).await?;
    let created = faq::create(&state.db, schema, new, cap.as_ref()).await?;
    changed(&state, schema);
    Ok((StatusCode::CREATED, Json(created)))
}

/// Replaces a FAQ (owners); the bot answers with it at once.
#[utoipa::path(
    put,
    path = "/api/faqs/{id}",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The FAQ's id")),
    request_body = NewFaq,
    responses(
        (status = 200, description = "The FAQ as stored", body = Faq),
        (status = 400, description = "Empty or too long text, or an unknown field", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "No such FAQ", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiPath(id): ApiPath<i64>,
    ApiJson(new): ApiJson<NewFaq>,
) -> Result<Json<Faq>, AppError> {
    let schema = &owner.tenant.schema;
    let updated = faq::update(&state.db, schema, id, new).await?;
    changed(&state, schema);
    Ok(Json(updated))
}

/// Removes a FAQ (owners).
#[utoipa::path(
    delete,
    path = "/api/faqs/{id}",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The FAQ's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "No such FAQ", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    let schema = &owner.tenant.schema;
    faq::delete(&state.db, schema, id).await?;
    changed(&state, schema);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhrasingRequest {
    /// A visitor's question (or any wording) of this FAQ.
    #[schema(min_length = 1, max_length = 2000)]
    pub text: String,
}

/// "This question belongs to this FAQ" (members): the text becomes one
/// more alternative phrasing of the FAQ, matched from the next question
/// on. The owner reviews it among the FAQ's alternatives and can remove it.
#[utoipa::path(
    post,
    path = "/api/faqs/{id}/phrasings",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The FAQ's id")),
    request_body = PhrasingRequest,
    responses(
        (status = 200, description = "The FAQ after; `added` is false when it already had this wording", body = Assigned),
        (status = 400, description = "Empty or too long text, or the FAQ has 20 alternatives already", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
        (status = 404, description = "No such FAQ", body = ErrorBody),
    )
)]
pub async fn add_phrasing(
    State(state): State<AppState>,
    member: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<PhrasingRequest>,
) -> Result<Json<Assigned>, AppError> {
    let schema = &member.tenant.schema;
    let assigned = faq::assign(&state.db, schema, id, &request.text).await?;
    if assigned.added {
        changed(&state, schema);
    }
    Ok(Json(assigned))
}

/// Takes a phrasing off a FAQ (owners): the undo of a learned or assigned
/// one. A wording the FAQ does not have changes nothing.
#[utoipa::path(
    delete,
    path = "/api/faqs/{id}/phrasings",
    tag = "bot",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The FAQ's id")),
    request_body = PhrasingRequest,
    responses(
        (status = 200, description = "The FAQ after", body = Faq),
        (status = 400, description = "Empty or too long text", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "No such FAQ", body = ErrorBody),
    )
)]
pub async fn remove_phrasing(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<PhrasingRequest>,
) -> Result<Json<Faq>, AppError> {
    let schema = &owner.tenant.schema;
    let faq = faq::remove_phrasing(&state.db, schema, id, &request.text).await?;
    changed(&state, schema);
    Ok(Json(faq))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    /// How many FAQs were added.
    pub imported: usize,
}

/// Adds many FAQs at once (owners): all rows or none, the bad rows named.
///
/// The body is the file itself, as `chatter faq import` takes it: a JSON
/// array of FAQs, or CSV text with a `question,answer` header.
#[utoipa::path(
    post,
    path = "/api/faqs/import",
    tag = "bot",
    security(("bearer" = [])),
    request_body(content(
        (Vec<NewFaq> = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "Every row was added", body = ImportResult),
        (status = 400, description = "Not JSON or CSV, or bad rows (named); nothing was added", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant, or `plan_limit`: more FAQs than the plan allows", body = ErrorBody),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ImportResult>, AppError> {
    let schema = &owner.tenant.schema;
    let faqs = faq::parse_import(&body)?;
    let cap = state.billing.faq_cap(schema).await?;
    let imported = faq::import(&state.db, schema, &faqs, cap.as_ref()).await?;
    changed(&state, schema);
    Ok(Json(ImportResult { imported }))
}
