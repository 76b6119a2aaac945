//! The client dashboard at `/app/`: plain JS modules and CSS from
//! `dashboard/`, embedded, served with the static files' machinery
//! (compressed once, ETags, 304s) and a strict Content-Security-Policy:
//! scripts and styles from this origin only (no inline script, so an FAQ
//! that smuggled markup in could not run even if it were ever rendered as
//! HTML), nothing framed from elsewhere and the dashboard framed nowhere
//! (but the widget preview, framed by the dashboard itself).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

use crate::error::AppError;
use crate::http::assets::{Asset, content_type};

#[derive(RustEmbed)]
#[folder = "dashboard/"]
struct DashboardFiles;

/// `frame-src 'self'`: the widget settings page previews the real widget
/// in a frame of our own.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The widget preview (`preview.html`, the real widget on a sketch of a
/// site): the same policy, but framed by the dashboard's own Widget page.
pub const PREVIEW_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-src 'none'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// Revalidated on every load (a 304 when unchanged): a new release must
/// not mix old and new modules.
const CACHE: &str = "no-cache";

fn files() -> &'static HashMap<String, Asset> {
    static FILES: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    FILES.get_or_init(|| {
        DashboardFiles::iter()
            .filter_map(|path| {
                let content_type = content_type(&path)?;
                let file = DashboardFiles::get(&path)?;
                Some((
                    path.to_string(),
                    Asset::new(file.data.into_owned(), content_type, CACHE),
                ))
            })
            .collect()
    })
}

fn respond(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = files().get(path) else {
        return AppError::NotFound(format!("no dashboard file {path:?}")).into_response();
    };
    let mut response = asset.respond(headers);
    let h = response.headers_mut();
    let (csp, frame) = if path == "preview.html" {
        (PREVIEW_CSP, "SAMEORIGIN")
    } else {
        (CSP, "DENY")
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(frame));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Only our own pages use these files.
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `GET /app`: the dashboard lives under `/app/` so relative URLs resolve.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/app/")
}

/// `GET /app/`: the page; the hash names the screen (`#/faqs`).
pub async fn index(headers: HeaderMap) -> Response {
    respond("index.html", &headers)
}

/// `GET /app/{path}`: a module, the styles, the vendored chart library.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    respond(&path, &headers)
}
