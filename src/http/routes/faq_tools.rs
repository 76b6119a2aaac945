//! What the dashboard asks of the FAQs without changing them.
//! `POST /api/faqs/try`: what the bot would answer, for the "Try a
//! question" box: the reply, whether it matched, and the three nearest FAQs
//! with their scores and the phrasing of each that matched. Nothing is stored and nothing counts in the
//! analytics: an owner testing a phrasing is not a visitor.
//! `GET /api/faqs/health`: which FAQs the bot confuses (`faq_health`).
//! `POST /api/faqs/import/preview`: every row of an import file, good or
//! bad (named), before `POST /api/faqs/import` writes anything.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::chat::Answer;
use crate::error::{AppError, ErrorBody};
use crate::faq::{self, NewFaq, PhrasingKind};
use crate::faq_health::Health;
use crate::http::extract::{ApiBytes, ApiJson};
use crate::http::extract::{Member, Owner};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryRequest {
    #[schema(min_length = 1, max_length = 2000)]
    pub message: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    pub faq_id: i64,
    pub question: String,
    /// Cosine similarity of the closest phrasing, -1 to 1.
    pub score: f32,
    /// The phrasing that came closest (`score` is its cosine); absent when
    /// the FAQ changed since the index was built.
    pub matched_text: Option<String>,
    /// Whether that was the FAQ's question, one of its alternative
    /// phrasings, or its answer.
    pub matched_kind: Option<PhrasingKind>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TryResponse {
    /// Exactly what a visitor would be told now.
    #[serde(flatten)]
    pub answer: Answer,
    /// The bot's threshold the best score was held against.
    pub threshold: f32,
    /// The three nearest FAQs, best first.
    pub nearest: Vec<Candidate>,
}

/// The bot's answer to a question, without storing anything (members).
#[utoipa::path(
    post,
    path = "/api/faqs/try",
    tag = "bot",
    security(("bearer" = [])),
    request_body = TryRequest,
    responses(
        (status = 200, description = "The reply and the nearest FAQs", body = TryResponse),
        (status = 400, description = "An empty or too long message", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
        (status = 429, description = "Over the chat's fair-use limit; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn try_question(
    State(state): State<AppState>,
    member: Member,
    ApiJson(request): ApiJson<TryRequest>,
) -> Result<Json<TryResponse>, AppError> {
    // Each try is an inference, like a visitor's question: the same fair
    // use, per member and per tenant, so no member can flood the model
    // every tenant's chat waits on.
    state
        .chat_limits
        .check_message(&member.tenant.schema, &format!("member:{}", member.user.id))
        .map_err(AppError::TooManyRequests)?;
    let trial = state
        .answerer
        .try_question(&member.tenant.schema, &request.message, 3)
        .await?;
    let nearest = trial
        .nearest
        .into_iter()
        .map(|n| {
            let (matched_kind, matched_text) = n.matched.unzip();
            Candidate {
                faq_id: n.faq_id,
                question: n.question,
                score: n.score,
                matched_text,
                matched_kind,
            }
        })
        .collect();
    Ok(Json(TryResponse {
        answer: trial.answer,
        threshold: trial.threshold,
        nearest,
    }))
}

/// Which FAQs the bot confuses with each other, with example phrasings,
/// and which phrasings pull toward the wrong FAQ (members). Every text is
/// compared with every other: it counts against the chat's fair use.
#[utoipa::path(
    get,
    path = "/api/faqs/health",
    tag = "bot",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confused pairs, worst first, and the phrasings that pull", body = Health),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
        (status = 429, description = "Over the chat's fair-use limit; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn health(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<Health>, AppError> {
    state
        .chat_limits
        .check_message(&member.tenant.schema, &format!("member:{}", member.user.id))
        .map_err(AppError::TooManyRequests)?;
    Ok(Json(
        state.answerer.faq_health(&member.tenant.schema).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewRow {
    /// `line 3` (CSV, the header being line 1) or `item 2` (JSON).
    pub label: String,
    /// The row as it would be stored; None when it is bad.
    pub faq: Option<NewFaq>,
    /// Why the row is bad; None when it is good.
    pub error: Option<String>,
}

/// Every row of an import file, checked, nothing written (owners).
#[utoipa::path(
    post,
    path = "/api/faqs/import/preview",
    tag = "bot",
    security(("bearer" = [])),
    request_body(content(
        (Vec<NewFaq> = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "Each row, good or with its reason", body = Vec<PreviewRow>),
        (status = 400, description = "Not JSON or CSV at all", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
    )
)]
pub async fn preview_import(
    Owner(_owner): Owner,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Vec<PreviewRow>>, AppError> {
    let rows = faq::preview_import(&body)?
        .into_iter()
        .map(|(label, row)| match row {
            Ok(faq) => PreviewRow {
                label,
                faq: Some(faq),
                error: None,
            },
            Err(error) => PreviewRow {
                label,
                faq: None,
                error: Some(error),
            },
        })
        .collect();
    Ok(Json(rows))
}
