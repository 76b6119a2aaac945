//! `POST /api/chat`: a visitor's question, the bot's answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use crate::chat::{self, Answer};
use crate::error::{AppError, ErrorBody};
use crate::http::json::ApiJson;
use crate::http::tenant::CurrentTenant;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The visitor's session, from an earlier answer; none starts one.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The question, up to `chat.max_message_chars` characters (2,000 by default).
    #[schema(min_length = 1, max_length = 2000)]
    pub message: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    #[serde(flatten)]
    pub answer: Answer,
    pub session_id: String,
}

/// A visitor's question and the bot's answer.
///
/// The answer is the best-matching FAQ's when its score reaches the bot's
/// threshold; otherwise the fallback reply, with the nearest questions as
/// suggestions when they came close.
#[utoipa::path(
    post,
    path = "/api/chat",
    tag = "visitor",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The bot's answer", body = ChatResponse),
        (status = 400, description = "An empty or too long message", body = ErrorBody),
    )
)]
pub async fn chat(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Json<ChatResponse>, AppError> {
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
    let session_id = chat::store_exchange(
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
    Ok(Json(ChatResponse { answer, session_id }))
}
