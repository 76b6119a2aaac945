//! `ApiJson`: axum's JSON extractor with our errors. A body that is not
//! JSON, has the wrong types or unknown fields gets a 400 in the usual
//! `{"error": ...}` shape, with serde's message naming the field.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
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
