//! The one place where errors become HTTP responses. Each module has its own
//! error type and says its kind (`crate::error_kind`); here a kind becomes a
//! status, a stable code and a body. Clients get `{"error": {"code",
//! "message"}}` with a plain message; the log gets the cause for anything
//! that is our fault.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use std::time::Duration;

use crate::auth::AuthError;
use crate::billing::BillingError;
use crate::bot_config::BotConfigError;
use crate::chat::ChatError;
use crate::conversations::ConversationError;
use crate::db::DbError;
use crate::engine::EngineError;
use crate::error_kind::{Class, Classify, Kind};
use crate::faq::FaqError;
use crate::signup::SignupError;
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
    TooManyRequests(Duration),
    #[error(
        "the origin {0} may not use this chat: the bot's owner can add it to the allowed origins"
    )]
    OriginNotAllowed(String),
    /// A cookie-authenticated request that failed the CSRF check.
    #[error("{0}")]
    Csrf(&'static str),
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
    #[error(transparent)]
    Signup(#[from] SignupError),
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl Classify for AppError {
    /// The one table of statuses: the errors of this layer, and every
    /// module's error by its own `kind()`. No catch-all arm.
    fn kind(&self) -> Kind {
        match self {
            AppError::BadRequest(_) => Kind::new(Class::BadInput, "bad_request"),
            AppError::DisallowedHost(_) => Kind::new(Class::BadInput, "disallowed_host"),
            AppError::MissingTenant => Kind::new(Class::BadInput, "missing_tenant"),
            AppError::UnknownTenant(_) => Kind::new(Class::NotFound, "unknown_tenant"),
            AppError::NotFound(_) => Kind::not_found(),
            AppError::TooLarge(_) => Kind::new(Class::TooLarge, "payload_too_large"),
            AppError::TooManyRequests(wait) => Kind::new(Class::TooMany, "rate_limited")
                .retry_after(*wait)
                .expected(),
            AppError::OriginNotAllowed(_) => Kind::new(Class::Forbidden, "origin_not_allowed"),
            AppError::Csrf(_) => Kind::new(Class::Forbidden, "csrf"),
            AppError::Unavailable {
                retry_after_secs, ..
            } => Kind::new(Class::Unavailable, "unavailable")
                .retry_after(Duration::from_secs(*retry_after_secs))
                .expected(),
            AppError::Tenancy(e) => e.kind(),
            AppError::Db(e) => e.kind(),
            AppError::Engine(e) => e.kind(),
            AppError::Faq(e) => e.kind(),
            AppError::BotConfig(e) => e.kind(),
            AppError::Conversation(e) => e.kind(),
            AppError::Auth(e) => e.kind(),
            AppError::Chat(e) => e.kind(),
            AppError::Signup(e) => e.kind(),
            AppError::Billing(e) => e.kind(),
        }
    }
}

fn status_of(class: Class) -> StatusCode {
    match class {
        Class::BadInput => StatusCode::BAD_REQUEST,
        Class::Unauthenticated => StatusCode::UNAUTHORIZED,
        Class::Forbidden => StatusCode::FORBIDDEN,
        Class::NotFound => StatusCode::NOT_FOUND,
        Class::Conflict => StatusCode::CONFLICT,
        Class::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Class::TooMany => StatusCode::TOO_MANY_REQUESTS,
        Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `Retry-After` for a wait: whole seconds, at least one.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs().max(1)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let status = status_of(kind.class);
        let is_fault = matches!(kind.class, Class::Internal | Class::Unavailable);
        if is_fault && !kind.expected {
            // Our fault or the database's: the cause goes to the log only.
            tracing::error!(error = %self, cause = ?self, code = kind.code, "request failed");
        }
        let message = match (kind.message, kind.class) {
            (Some(message), _) => message.to_string(),
            (None, Class::Unavailable) if kind.expected => self.to_string(),
            (None, Class::Unavailable) => "the service is busy; try again shortly".to_string(),
            (None, Class::Internal) => "internal error".to_string(),
            (None, _) => self.to_string(),
        };
        let retry_after = kind.retry_after.or(match kind.class {
            Class::Unavailable => Some(Duration::from_secs(1)),
            _ => None,
        });
        let body = ErrorBody {
            error: ErrorDetail {
                code: kind.code.to_string(),
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
        if let Some(wait) = retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
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

    async fn body_of(error: AppError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Whatever a fault's own text holds (paths, hosts, SQL), the client
    /// reads a plain message; the details go to the log only.
    #[tokio::test]
    async fn internal_details_never_reach_the_body() {
        use crate::conversations::ConversationError;
        use crate::db::migrate::MigrateError;
        let secret = "/srv/secret/path host=db.internal password=hunter2";
        for error in [
            AppError::Conversation(ConversationError::Export(secret.into())),
            AppError::Db(DbError::Unreachable(secret.into())),
            AppError::Db(DbError::BadUrl(secret.into())),
            AppError::Tenancy(TenancyError::Migrate(MigrateError::Db(
                DbError::Unreachable(secret.into()),
            ))),
            AppError::Auth(AuthError::Hash(secret.into())),
            AppError::Engine(EngineError::Failed(secret.into())),
            AppError::Faq(FaqError::Engine(EngineError::Failed(secret.into()))),
            AppError::Chat(ChatError::Engine(EngineError::Stopped)),
        ] {
            let (status, body) = body_of(error).await;
            assert!(status.is_server_error(), "{status}");
            assert!(
                !body.contains("secret") && !body.contains("hunter2"),
                "{body}"
            );
        }
        // A client's own mistake is told as it is.
        let (status, body) =
            body_of(AppError::Faq(FaqError::Invalid("question is empty".into()))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("question is empty"), "{body}");
    }

    #[test]
    fn every_module_error_keeps_its_status() {
        let cases = [
            (AppError::Chat(ChatError::UnknownSession), 404, "not_found"),
            (AppError::Chat(ChatError::EmptyMessage), 400, "bad_request"),
            (
                AppError::Chat(ChatError::Db(DbError::Busy)),
                503,
                "unavailable",
            ),
            (
                AppError::Auth(AuthError::InvalidCredentials),
                401,
                "invalid_credentials",
            ),
            (AppError::Auth(AuthError::OwnerOnly), 403, "forbidden"),
            (
                AppError::Auth(AuthError::WrongOldPassword),
                400,
                "wrong_password",
            ),
            (
                AppError::Tenancy(TenancyError::DomainTaken("a".into())),
                409,
                "conflict",
            ),
            (AppError::Engine(EngineError::Loading), 503, "model_loading"),
            (
                AppError::BotConfig(BotConfigError::Invalid("x".into())),
                400,
                "invalid",
            ),
            (
                AppError::Signup(SignupError::SlugTaken("acme".into())),
                409,
                "slug_taken",
            ),
            (
                AppError::Signup(SignupError::EmailTaken("a@b.test".into())),
                409,
                "email_taken",
            ),
            (AppError::Auth(AuthError::InvalidLink), 400, "invalid_link"),
        ];
        for (error, status, code) in cases {
            let kind = error.kind();
            assert_eq!(
                (status_of(kind.class).as_u16(), kind.code),
                (status, code),
                "{error}"
            );
        }
    }

    #[test]
    fn unknown_tenant_is_404() {
        let response = AppError::UnknownTenant("x".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
