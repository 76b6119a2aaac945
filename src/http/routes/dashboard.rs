//! The client dashboard at `/app/`: plain JS modules and CSS from
//! `dashboard/`, embedded, served with the static files' machinery
//! (compressed once, ETags, 304s) and a strict Content-Security-Policy:
//! scripts and styles from this origin only (no inline script, so an FAQ
//! that smuggled markup in could not run even if it were ever rendered as
//! HTML), nothing framed from elsewhere and the dashboard framed nowhere
//! (but the widget preview, framed by the dashboard itself). With billing
//! on, and only then, Razorpay Checkout's origin is allowed too: its
//! script must come from Razorpay, and it opens its form in a frame.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

use crate::config::BillingSettings;
use crate::error::AppError;
use crate::http::assets::{Asset, content_type};
use crate::http::state::AppState;

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

/// What Razorpay lists for Checkout besides its script's origin (the CSP
/// allow-list of its own Magento module: the risk script and images from
/// its CDN, the payment form framed from its API host, its telemetry).
const RAZORPAY_CHECKOUT_SOURCES: [(&str, &str); 4] = [
    ("script-src", "https://cdn.razorpay.com"),
    ("img-src", "https://cdn.razorpay.com"),
    ("frame-src", "https://api.razorpay.com"),
    (
        "connect-src",
        "https://lumberjack.razorpay.com https://lumberjack-metrics.razorpay.com",
    ),
];

/// The dashboard's policy on a server with `billing`: [`CSP`], and with
/// billing on the Checkout script's origin for scripts and frames (plus
/// Razorpay's own list when the script is Razorpay's).
pub fn csp(billing: &BillingSettings) -> String {
    let origin = match billing.checkout_script_origin() {
        Ok(origin) if billing.enabled() => origin,
        _ => return CSP.to_string(),
    };
    let mut extra = vec![
        ("script-src", origin.as_str()),
        ("frame-src", origin.as_str()),
    ];
    if origin == "https://checkout.razorpay.com" {
        extra.extend(RAZORPAY_CHECKOUT_SOURCES);
    }
    CSP.split("; ")
        .map(|directive| {
            let name = directive.split(' ').next().unwrap_or_default();
            let mut directive = directive.to_string();
            for (_, source) in extra.iter().filter(|(n, _)| *n == name) {
                directive.push(' ');
                directive.push_str(source);
            }
            directive
        })
        .collect::<Vec<_>>()
        .join("; ")
}

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

fn respond(state: &AppState, path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = files().get(path) else {
        return AppError::NotFound(format!("no dashboard file {path:?}")).into_response();
    };
    let mut response = asset.respond(headers);
    let h = response.headers_mut();
    let (csp, frame) = if path == "preview.html" {
        (HeaderValue::from_static(PREVIEW_CSP), "SAMEORIGIN")
    } else {
        let csp = state.dashboard_csp.get_or_init(|| {
            HeaderValue::from_str(&csp(&state.settings.billing))
                .unwrap_or(HeaderValue::from_static(CSP))
        });
        (csp.clone(), "DENY")
    };
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
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
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(&state, "index.html", &headers)
}

/// `GET /app/{path}`: a module, the styles, the vendored chart library.
pub async fn file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(&state, &path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn billing(script: &str, on: bool) -> BillingSettings {
        BillingSettings {
            key_id: on.then(|| Secret::new("rzp_test_x")),
            key_secret: on.then(|| Secret::new("s")),
            checkout_script_url: script.into(),
            ..BillingSettings::default()
        }
    }

    #[test]
    fn checkout_is_allowed_only_with_billing_on() {
        let razorpay = crate::config::RAZORPAY_CHECKOUT_SCRIPT;
        assert_eq!(csp(&billing(razorpay, false)), CSP);
        let on = csp(&billing(razorpay, true));
        assert!(
            on.contains(
                "script-src 'self' https://checkout.razorpay.com https://cdn.razorpay.com;"
            ),
            "{on}"
        );
        assert!(
            on.contains("frame-src 'self' https://checkout.razorpay.com https://api.razorpay.com;"),
            "{on}"
        );
        assert!(on.contains("connect-src 'self' https://lumberjack.razorpay.com"));
        assert!(on.ends_with("frame-ancestors 'none'"), "{on}");
        // A stand-in elsewhere gets its own origin and nothing of Razorpay's.
        let stand_in = csp(&billing("http://127.0.0.1:4100/checkout.js", true));
        assert!(stand_in.contains("script-src 'self' http://127.0.0.1:4100;"));
        assert!(!stand_in.contains("razorpay"), "{stand_in}");
    }
}
