//! The visitor's routes: `POST /api/chat` (a question, the bot's answer),
//! `GET /api/chat/history` (a conversation back after a reload) and
//! `POST /api/chat/feedback` (thumbs up or down on an answer). Chat and
//! feedback are limited per visitor (tenant and client address) and chat
//! per tenant too: over the limit, 429 with `Retry-After`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::chat::{self, Answer, HistoryMessage, Question, Reply};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiJson, ClientAddress, CurrentTenant};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The visitor's session, from an earlier answer; none starts one.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The question, up to `chat.max_message_chars` characters (2,000 by default).
    #[schema(min_length = 1, max_length = 2000)]
    pub message: String,
    /// The FAQ the visitor picked among an answer's `choices`, with the
    /// question that answer was for as `message`: the bot answers with that
    /// FAQ and, when it was among the likeliest for the question, keeps the
    /// question as a new phrasing of it (the owner can remove it).
    #[serde(default)]
    pub faq_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    #[serde(flatten)]
    pub answer: Answer,
    pub session_id: String,
    /// The bot's message: what `POST /api/chat/feedback` refers to.
    pub message_id: i64,
}

/// A visitor's question and the bot's answer.
///
/// `outcome` says what the bot did: `answer` (the best FAQ's answer, when
/// its score reaches the bot's threshold and, with a learned matcher, its
/// confidence reaches the bot's caution), `clarify` (the fallback reply with
/// 2–3 `choices` to pick from; their questions are also in `suggestions`),
/// or `fallback`. A pick is sent back as `faq_id` with the same message. Limited per visitor (tenant and client
/// address) and per tenant.
#[utoipa::path(
    post,
    path = "/api/chat",
    tag = "visitor",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The bot's answer", body = ChatResponse),
        (status = 400, description = "An empty or too long message", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`: the request's `Origin` is not among the bot's allowed origins", body = ErrorBody),
        (status = 429, description = "Over the fair-use limit; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn chat(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Json<ChatResponse>, AppError> {
    // Refused before any work: a flood costs us a map look-up.
    state
        .chat_limits
        .check_message(&tenant.schema, &address)
        .map_err(AppError::TooManyRequests)?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| o.len() <= crate::origins::MAX_ORIGIN_LEN);
    let question = Question {
        session_id: request.session_id.as_deref(),
        origin,
        message: &request.message,
        pick: request.faq_id,
    };
    let Reply { answer, stored } = state.answerer.respond(&tenant.schema, question).await?;
    // Counted once stored: a reply that failed to save was never given.
    state.metrics.record_chat_answer(answer.matched);
    Ok(Json(ChatResponse {
        answer,
        session_id: stored.session_id,
        message_id: stored.message_id,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// The session id an answer came with (32 hex digits).
    #[param(pattern = "^[0-9a-f]{32}$")]
    pub session_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryResponse {
    pub session_id: String,
    /// Oldest first; the latest 200 at most.
    pub messages: Vec<HistoryMessage>,
}

/// A visitor's conversation so far, so a reload continues it.
///
/// Only that session's messages: the session id is the visitor's secret.
#[utoipa::path(
    get,
    path = "/api/chat/history",
    tag = "visitor",
    params(HistoryParams),
    responses(
        (status = 200, description = "The session's messages", body = HistoryResponse),
        (status = 400, description = "Not a session id", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 404, description = "No conversation with that session id here (the widget starts afresh)", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<HistoryResponse>, AppError> {
    let Query(params) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let messages = chat::history(&state.db, &tenant.schema, &params.session_id).await?;
    Ok(Json(HistoryResponse {
        session_id: params.session_id,
        messages,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The session id the answer came with (32 hex digits).
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub session_id: String,
    /// The `message_id` of one of the bot's answers in that session.
    pub message_id: i64,
    /// 👍 true, 👎 false.
    pub helpful: bool,
}

/// A visitor's thumbs up or down on one of the bot's answers.
///
/// A second verdict on the same answer replaces the first. Counted in the
/// analytics summary.
#[utoipa::path(
    post,
    path = "/api/chat/feedback",
    tag = "visitor",
    request_body = FeedbackRequest,
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Not a session id, or a malformed body", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 404, description = "No such answer in that session's conversation", body = ErrorBody),
        (status = 429, description = "Over the fair-use limit; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn feedback(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientAddress(address): ClientAddress,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<StatusCode, AppError> {
    state
        .chat_limits
        .check_feedback(&tenant.schema, &address)
        .map_err(AppError::TooManyRequests)?;
    chat::record_feedback(
        &state.db,
        &tenant.schema,
        &request.session_id,
        request.message_id,
        request.helpful,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
