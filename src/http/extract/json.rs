//! axum's extractors with our errors: `ApiJson` (a body that is not JSON,
//! has the wrong types or unknown fields gets a 400 in the usual
//! `{"error": ...}` shape, with serde's message naming the field), `ApiBytes`
//! and `ApiPath` (a path segment of the wrong type is a 400, not axum's
//! plain-text answer).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::http::MAX_BODY_BYTES;

/// A raw body (an import file) with our errors: 413 past the limit.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::TooLarge(MAX_BODY_BYTES))
            }
            Err(rejection) => Err(AppError::BadRequest(rejection.body_text())),
        }
    }
}

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::TooLarge(MAX_BODY_BYTES))
            }
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => AppError::BadRequest(e.body_text()),
                JsonRejection::JsonSyntaxError(e) => AppError::BadRequest(e.body_text()),
                JsonRejection::MissingJsonContentType(_) => AppError::BadRequest(
                    "send the body as JSON with Content-Type: application/json".into(),
                ),
                other => AppError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// A typed path parameter, such as `/api/faqs/{id}`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| AppError::BadRequest(rejection.body_text()))
    }
}
