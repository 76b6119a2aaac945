//! `GET /static/{path}` and `GET /`: the embedded files of `http::assets`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::config::Settings;
use crate::error::AppError;
use crate::http::assets::{self, FrontPage};

/// `GET /static/{path}`.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match assets::embedded(&path) {
        Some(asset) => asset.respond(&headers),
        None => AppError::NotFound(format!("no static file {path:?}")).into_response(),
    }
}

/// `GET /`: what the platform is, the snippet, a live widget.
pub async fn front_page(
    State(front_page): State<Arc<FrontPage>>,
    State(settings): State<Arc<Settings>>,
    headers: HeaderMap,
) -> Response {
    match front_page.get(&settings) {
        Some(asset) => asset.respond(&headers),
        None => AppError::NotFound("no front page in this build".into()).into_response(),
    }
}
