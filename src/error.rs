//! The one place where errors become HTTP responses. Each module has its own
//! error type; here each is given its status and a stable code. Clients get
//! `{"error": {"code", "message"}}` with a plain message; the log gets the
//! cause for anything that is our fault.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::bot_config::BotConfigError;
use crate::chat::ChatError;
use crate::conversations::ConversationError;
use crate::db::DbError;
use crate::engine::EngineError;
use crate::engine::status::retry_after;
use crate::faq::FaqError;
use crate::tenancy::TenancyError;

/// Every error's body, as clients read it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `bad_request`, `invalid`, `unauthenticated`,
    /// `forbidden`, `not_found`, `unknown_tenant`, `conflict`, `rate_limited`, ...
    pub code: String,
    /// For people.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("host {0:?} is not served here (see ALLOWED_HOSTS)")]
    DisallowedHost(String),
    #[error("this request names no tenant: send the X-Client-ID header or use a tenant's domain")]
    MissingTenant,
    #[error("no active tenant {0:?}")]
    UnknownTenant(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A rate limiter's refusal, with how long until it allows again.
    #[error("too many attempts; try again in {} seconds", retry_after_secs(*.0))]
    TooManyRequests(std::time::Duration),
    #[error(
        "the origin {0} may not use this chat: the bot's owner can add it to the allowed origins"
    )]
    OriginNotAllowed(String),
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Faq(#[from] FaqError),
    #[error(transparent)]
    BotConfig(#[from] BotConfigError),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Chat(#[from] ChatError),
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::DisallowedHost(_) => (StatusCode::BAD_REQUEST, "disallowed_host"),
            AppError::MissingTenant => (StatusCode::BAD_REQUEST, "missing_tenant"),
            AppError::UnknownTenant(_) => (StatusCode::NOT_FOUND, "unknown_tenant"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::OriginNotAllowed(_) => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            AppError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::Tenancy(e) => match e {
                TenancyError::InvalidSchema(_)
                | TenancyError::InvalidDomain(_)
                | TenancyError::InvalidName => (StatusCode::BAD_REQUEST, "invalid"),
                TenancyError::UnknownTenant(_) => (StatusCode::NOT_FOUND, "unknown_tenant"),
                TenancyError::UnknownDomain(_) => (StatusCode::NOT_FOUND, "not_found"),
                TenancyError::TenantExists(_)
                | TenancyError::DomainTaken(_)
                | TenancyError::PublicTenant(_) => (StatusCode::CONFLICT, "conflict"),
                TenancyError::Db(db) => db_parts(db),
                TenancyError::Migrate(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            AppError::Db(db) => db_parts(db),
            AppError::Engine(e) => engine_parts(e),
            AppError::BotConfig(BotConfigError::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid"),
            AppError::BotConfig(BotConfigError::Db(db)) => db_parts(db),
            AppError::Conversation(ConversationError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AppError::Conversation(ConversationError::Export(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            AppError::Conversation(ConversationError::Db(db)) => db_parts(db),
            AppError::Chat(e) => match e {
                ChatError::InvalidSession => (StatusCode::BAD_REQUEST, "invalid"),
                ChatError::UnknownSession | ChatError::UnknownMessage(_) => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
                ChatError::Db(db) => db_parts(db),
            },
            AppError::Faq(e) => match e {
                FaqError::Invalid(_) | FaqError::BadRows(_) => (StatusCode::BAD_REQUEST, "invalid"),
                FaqError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                FaqError::Db(db) => db_parts(db),
                FaqError::Engine(e) => engine_parts(e),
            },
            AppError::Auth(e) => match e {
                AuthError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
                AuthError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
                AuthError::Forbidden | AuthError::OwnerOnly | AuthError::OperatorOnly => {
                    (StatusCode::FORBIDDEN, "forbidden")
                }
                AuthError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
                AuthError::EmailTaken(_) => (StatusCode::CONFLICT, "conflict"),
                AuthError::UnknownTenant(_) => (StatusCode::NOT_FOUND, "unknown_tenant"),
                AuthError::UnknownUser(_) => (StatusCode::NOT_FOUND, "not_found"),
                AuthError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
                AuthError::Hash(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                AuthError::Db(db) => db_parts(db),
            },
        }
    }
}

/// `Retry-After` for a limiter's wait: whole seconds, at least one.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs().max(1)
}

fn db_parts(err: &DbError) -> (StatusCode, &'static str) {
    match err {
        DbError::Busy | DbError::Unreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ if is_transient(err) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ if is_unstorable_text(err) => (StatusCode::BAD_REQUEST, "invalid"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// The database went away or gave up on this one request, and the same
/// request may well work in a moment: 503 with `Retry-After`, so the widget
/// retries (issue 16). A terminated or crashed backend (57P01-57P03), a
/// connection failure (class 08) or a closed connection, too many
/// connections, a lock or statement timeout, a deadlock or serialization
/// failure.
fn is_transient(err: &DbError) -> bool {
    let DbError::Postgres(e) = err else {
        return false;
    };
    if e.is_closed() {
        return true;
    }
    e.code().is_some_and(|state| {
        let code = state.code();
        code.starts_with("08")
            || matches!(
                code,
                "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "53300" | "40001" | "40P01"
            )
    })
}

/// PostgreSQL refuses text with a NUL character (JSON's `\u0000`), however
/// it reached a query: the client's input, not our fault.
fn is_unstorable_text(err: &DbError) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        err.sqlstate(),
        Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE | &SqlState::UNTRANSLATABLE_CHARACTER)
    )
}

const UNSTORABLE_TEXT: &str = "text may not contain NUL (\\u0000) characters";

fn engine_parts(err: &EngineError) -> (StatusCode, &'static str) {
    match err {
        EngineError::Loading => (StatusCode::SERVICE_UNAVAILABLE, "model_loading"),
        EngineError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "model_unavailable"),
    }
}

impl AppError {
    fn db_error(&self) -> Option<&DbError> {
        match self {
            AppError::Db(e)
            | AppError::Tenancy(TenancyError::Db(e))
            | AppError::Faq(FaqError::Db(e))
            | AppError::BotConfig(BotConfigError::Db(e))
            | AppError::Conversation(ConversationError::Db(e))
            | AppError::Auth(AuthError::Db(e)) => Some(e),
            _ => None,
        }
    }

    fn engine_error(&self) -> Option<&EngineError> {
        match self {
            AppError::Engine(e) | AppError::Faq(FaqError::Engine(e)) => Some(e),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = if let AppError::Unavailable { message, .. } = &self {
            message.clone()
        } else if let Some(e) = self.engine_error() {
            // Loading and busy are expected states, not faults: say which.
            match e {
                EngineError::Loading | EngineError::Busy => e.to_string(),
                _ => {
                    tracing::error!(error = %e, "the engine cannot answer");
                    "the bot cannot answer right now; try again later".to_string()
                }
            }
        } else if self.db_error().is_some_and(is_unstorable_text) {
            UNSTORABLE_TEXT.to_string()
        } else if status.is_server_error() {
            // Our fault or the database's: the cause goes to the log only.
            tracing::error!(error = %self, cause = ?self, "request failed");
            match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "the service is busy; try again shortly".to_string()
                }
                _ => "internal error".to_string(),
            }
        } else {
            self.to_string()
        };
        let retry_after = match &self {
            AppError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            AppError::TooManyRequests(wait) => Some(retry_after_secs(*wait)),
            _ if self.engine_error().is_some() => {
                self.engine_error().map(|e| retry_after(e).as_secs())
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: a 401 names the scheme that would have worked.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_database_is_503_with_retry_after() {
        let response = AppError::Db(DbError::Busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn a_refused_origin_is_403_with_its_own_code() {
        let response = AppError::OriginNotAllowed("https://evil.test".into()).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn unknown_tenant_is_404() {
        let response = AppError::UnknownTenant("x".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
