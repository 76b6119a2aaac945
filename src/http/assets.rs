//! Static files from the binary (rust-embed), ready to serve: the widget
//! (`widget/`) and the front page's files (`assets/`) under `/static/`, the
//! front page itself at `/` (its handlers are `routes::static_files`). Every file is compressed once, gzip and brotli, the first time
//! any file is asked for, and kept: a request only picks a representation.
//! Each representation has its own strong `ETag` (RFC 9110: the same tag on
//! two encodings would let a cache serve the wrong bytes); `If-None-Match`
//! answers 304; `Vary: Accept-Encoding` on every answer.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::config::Settings;

#[derive(RustEmbed)]
#[folder = "widget/"]
struct WidgetFiles;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct SiteFiles;

/// The front page's template; `{{public_schema}}` becomes the public tenant.
const FRONT_PAGE: &str = "index.html";

/// The snippet's URL never changes, so browsers keep the widget a few
/// minutes and then revalidate with the ETag (a 304 of a few bytes).
const CACHE_STATIC: &str = "public, max-age=300";
const CACHE_PAGE: &str = "no-cache";

/// One file, ready in each encoding.
pub struct Asset {
    content_type: &'static str,
    cache_control: &'static str,
    /// Hex of the content's SHA-256 (first 16 bytes); each encoding's tag
    /// adds a suffix.
    hash: String,
    identity: Bytes,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Asset {
    /// Compresses `content` (text types only; a compressed copy is kept
    /// only when it is smaller).
    pub fn new(content: Vec<u8>, content_type: &'static str, cache_control: &'static str) -> Self {
        let hash = hex::encode(&Sha256::digest(&content)[..16]);
        let texty = !content_type.starts_with("image/png");
        let smaller =
            |packed: Option<Vec<u8>>| packed.filter(|p| p.len() < content.len()).map(Bytes::from);
        let (gzip, brotli) = if texty {
            (smaller(gzip(&content)), smaller(brotli(&content)))
        } else {
            (None, None)
        };
        Self {
            content_type,
            cache_control,
            hash,
            identity: Bytes::from(content),
            gzip,
            brotli,
        }
    }

    fn etag(&self, encoding: Encoding) -> String {
        match encoding {
            Encoding::Identity => format!("\"{}\"", self.hash),
            Encoding::Gzip => format!("\"{}-gz\"", self.hash),
            Encoding::Brotli => format!("\"{}-br\"", self.hash),
        }
    }

    /// The response for a request with these headers.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let accept = request
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let encoding = negotiate(accept, self.brotli.is_some(), self.gzip.is_some());
        let body = match encoding {
            Encoding::Brotli => self.brotli.clone(),
            Encoding::Gzip => self.gzip.clone(),
            Encoding::Identity => None,
        }
        .unwrap_or_else(|| self.identity.clone());
        let etag = self.etag(encoding);
        let not_modified = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| matches_etag(tags, &etag));
        let mut response = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            match encoding {
                Encoding::Brotli => {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
                }
                Encoding::Gzip => {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                Encoding::Identity => {}
            }
            response
        };
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, etag);
        }
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(self.cache_control),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // Client sites load the widget from their pages, also under COEP.
        headers.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("cross-origin"),
        );
        response
    }
}

pub fn gzip(content: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(content).ok()?;
    encoder.finish().ok()
}

pub fn brotli(content: &[u8]) -> Option<Vec<u8>> {
    // Quality 11 (the best), 4 MiB window: slow, but done once per file.
    let mut writer = brotli::CompressorWriter::new(Vec::new(), 4096, 11, 22);
    writer.write_all(content).ok()?;
    // Finishes the stream.
    Some(writer.into_inner())
}

/// The encoding to send for an `Accept-Encoding` value: the one with the
/// highest q among those we have (brotli before gzip on a tie); identity
/// when nothing else is acceptable.
pub fn negotiate(accept: &str, have_brotli: bool, have_gzip: bool) -> Encoding {
    let mut q_of = HashMap::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if coding.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let coding = if coding == "x-gzip" {
            "gzip".to_string()
        } else {
            coding
        };
        q_of.insert(coding, q);
    }
    let star = q_of.get("*").copied();
    // Codings not listed take the q of `*`, or are not acceptable at all.
    let q = |name: &str| q_of.get(name).copied().or(star).unwrap_or(0.0);
    let mut best = (Encoding::Identity, 0.0f32);
    for (encoding, have) in [(Encoding::Brotli, have_brotli), (Encoding::Gzip, have_gzip)] {
        let q = q(match encoding {
            Encoding::Brotli => "br",
            _ => "gzip",
        });
        if have && q > best.1 {
            best = (encoding, q);
        }
    }
    // Identity is always acceptable unless refused; unlisted, it is the
    // last choice, not a q=1 rival.
    let identity = q_of.get("identity").copied().or(star).unwrap_or(0.0);
    if best.1 > 0.0 && best.1 >= identity {
        best.0
    } else {
        Encoding::Identity
    }
}

/// `If-None-Match` uses the weak comparison: `W/` does not matter.
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if_none_match
        .split(',')
        .any(|tag| tag.trim() == "*" || strip(tag) == strip(etag))
}

pub fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, ext)| ext)?;
    Some(match ext {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// Every embedded file served under `/static/`, compressed on first use.
/// The files are part of the binary, so this is a constant, made once.
fn files() -> &'static HashMap<String, Asset> {
    static FILES: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut files = HashMap::new();
        let widget = WidgetFiles::iter().filter_map(|p| Some((p.clone(), WidgetFiles::get(&p)?)));
        let site = SiteFiles::iter()
            .filter(|p| p != FRONT_PAGE)
            .filter_map(|p| Some((p.clone(), SiteFiles::get(&p)?)));
        for (path, file) in widget.chain(site) {
            // READMEs and anything of an unknown type stay unserved.
            let Some(content_type) = content_type(&path) else {
                continue;
            };
            files
                .entry(path.to_string())
                .or_insert_with(|| Asset::new(file.data.into_owned(), content_type, CACHE_STATIC));
        }
        files
    })
}

/// The raw bytes of an embedded widget file (for the size test and tools).
pub fn widget_file(name: &str) -> Option<Vec<u8>> {
    WidgetFiles::get(name).map(|f| f.data.into_owned())
}

/// An embedded file served under `/static/`.
pub fn embedded(path: &str) -> Option<&'static Asset> {
    files().get(path)
}

/// The front page, rendered for this server's public tenant once.
pub struct FrontPage(OnceLock<Option<Asset>>);

impl FrontPage {
    pub fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The page for this server's public tenant, rendered on first use;
    /// None when the build has no front page.
    pub fn get(&self, settings: &Settings) -> Option<&Asset> {
        self.0
            .get_or_init(|| {
                let template = SiteFiles::get(FRONT_PAGE)?;
                let html = String::from_utf8_lossy(&template.data).replace(
                    "{{public_schema}}",
                    &html_escape(&settings.tenancy.public_schema),
                );
                Some(Asset::new(
                    html.into_bytes(),
                    "text/html; charset=utf-8",
                    CACHE_PAGE,
                ))
            })
            .as_ref()
    }
}

impl Default for FrontPage {
    fn default() -> Self {
        Self::new()
    }
}

fn html_escape(raw: &str) -> String {
    raw.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's budget: widget.js and widget.css, gzipped, 10 KB together.
    #[test]
    fn the_widget_is_at_most_10_kb_gzipped() {
        let total: usize = ["widget.js", "widget.css"]
            .iter()
            .map(|name| {
                let raw = widget_file(name).unwrap();
                assert!(!raw.is_empty(), "{name} is empty");
                gzip(&raw).unwrap().len()
            })
            .sum();
        assert!(total <= 10 * 1024, "widget is {total} bytes gzipped");
    }

    #[test]
    fn accept_encoding_is_negotiated_by_q() {
        use Encoding::*;
        assert_eq!(negotiate("gzip, deflate, br, zstd", true, true), Brotli);
        assert_eq!(negotiate("gzip, deflate, br", false, true), Gzip);
        assert_eq!(negotiate("gzip", true, true), Gzip);
        assert_eq!(negotiate("br;q=0.5, gzip;q=0.8", true, true), Gzip);
        assert_eq!(negotiate("br;q=0, gzip;q=0", true, true), Identity);
        assert_eq!(negotiate("*", true, true), Brotli);
        assert_eq!(negotiate("*;q=0, identity", true, true), Identity);
        assert_eq!(negotiate("", true, true), Identity);
        assert_eq!(negotiate("identity", true, true), Identity);
        assert_eq!(negotiate("x-gzip", true, true), Gzip);
    }

    #[test]
    fn if_none_match_takes_lists_stars_and_weak_tags() {
        assert!(matches_etag("\"a\", \"b\"", "\"b\""));
        assert!(matches_etag("W/\"b\"", "\"b\""));
        assert!(matches_etag("*", "\"b\""));
        assert!(!matches_etag("\"a\"", "\"b\""));
    }
}
