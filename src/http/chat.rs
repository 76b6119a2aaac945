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

use crate::chat::{self, Answer, HistoryMessage};
use crate::error::AppError;
use crate::http::auth::ClientAddress;
use crate::http::json::ApiJson;
use crate::http::tenant::CurrentTenant;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct ChatResponse {
    #[serde(flatten)]
    pub answer: Answer,
    pub session_id: String,
    /// The bot's message, for feedback.
    pub message_id: i64,
}

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
    let message = request.message.trim();
    if message.is_empty() {
        return Err(AppError::BadRequest("message is empty".into()));
    }
    let limit = state.settings.chat.max_message_chars;
    if message.chars().count() > limit {
        return Err(AppError::BadRequest(format!(
            "message is longer than {limit} characters"
        )));
    }
    let answer = state.answer(&tenant.schema, message).await?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let stored = chat::store_exchange(
        &state.pool,
        &tenant.schema,
        request.session_id.as_deref(),
        origin,
        message,
        &answer,
    )
    .await?;
    // Counted once stored: a reply that failed to save was never given.
    state.metrics.record_chat_answer(answer.matched);
    Ok(Json(ChatResponse {
        answer,
        session_id: stored.session_id,
        message_id: stored.message_id,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    pub session_id: String,
}

#[derive(Debug, Serialize)]
pub struct HistoryResponse {
    pub session_id: String,
    pub messages: Vec<HistoryMessage>,
}

/// The session's own messages only; 404 for a session this tenant does not
/// know (the widget then starts afresh).
pub async fn history(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<HistoryResponse>, AppError> {
    let Query(params) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let messages = chat::history(&state.pool, &tenant.schema, &params.session_id).await?;
    Ok(Json(HistoryResponse {
        session_id: params.session_id,
        messages,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub session_id: String,
    pub message_id: i64,
    pub helpful: bool,
}

/// 204 once stored; 404 unless the message is a bot answer of that session.
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
        &state.pool,
        &tenant.schema,
        &request.session_id,
        request.message_id,
        request.helpful,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
