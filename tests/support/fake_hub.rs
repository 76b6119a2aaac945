//! A loopback stand-in for the Hugging Face hub, answering the requests hf-hub 0.4 makes:
//! - `GET /api/models/{org}/{name}/revision/{rev}` → JSON with `sha` and `siblings`;
//! - `GET|HEAD /{org}/{name}/resolve/{rev}/{file}` → the file, with `X-Repo-Commit` and a
//!   quoted `ETag` (hf-hub's metadata probe sends `Range: bytes=0-0` and needs
//!   `Content-Range` to learn the size); LFS files get a 302 to a second "CDN" listener with
//!   `X-Linked-Etag` (sha256) and `X-Linked-Size`, as the hub does. The CDN is on another
//!   port so hf-hub's "follow only relative redirects" probe stops at the 302 and queries
//!   `Location` itself, as with the real CDN;
//! - `Range` requests → 206 with `Content-Range`, clamped like a real server (hf-hub asks
//!   one byte past the end for the last chunk).
//!
//! Faults let a test cut the connection mid-file, or end a body early without an error.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const COMMIT: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
const STREAM_PIECE: usize = 64 * 1024;

#[derive(Clone)]
pub struct HubFile {
    pub name: String,
    pub content: Bytes,
    /// Stored in LFS on the hub: served through the CDN redirect, etag = sha256.
    pub lfs: bool,
}

impl HubFile {
    pub fn new(name: &str, content: impl Into<Bytes>, lfs: bool) -> Self {
        Self {
            name: name.to_string(),
            content: content.into(),
            lfs,
        }
    }

    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.content))
    }

    /// Stands in for the git blob sha1 the hub uses as ETag of non-LFS files (40 hex).
    fn git_etag(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"blob ");
        h.update(&self.content);
        hex::encode(h.finalize())[..40].to_string()
    }
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// Drop the connection once the body of `file` reaches absolute byte `at`, `times` times.
    CutAt { file: String, at: usize, times: u32 },
    /// Stop sending (keeping the connection open) once the body of `file` reaches `at`.
    StallAt { file: String, at: usize, times: u32 },
    /// Serve only half of the body of the next range request of `file` that starts past 0,
    /// ending it cleanly (chunked, no Content-Length): a short read hf-hub cannot notice.
    ShortBody { file: String, times: u32 },
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub range: Option<String>,
}

struct Hub {
    repo: String,
    files: Vec<HubFile>,
    cdn: String,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<Logged>>,
}

pub struct FakeHub {
    pub endpoint: String,
    hub: Arc<Hub>,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeHub {
    pub async fn start(repo: &str, files: Vec<HubFile>) -> Self {
        let hub_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cdn_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hub_addr: SocketAddr = hub_listener.local_addr().unwrap();
        let cdn_addr: SocketAddr = cdn_listener.local_addr().unwrap();
        let hub = Arc::new(Hub {
            repo: repo.to_string(),
            files,
            cdn: format!("http://{cdn_addr}"),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/api/models/{org}/{name}/revision/{rev}", get(repo_info))
            .route(
                "/{org}/{name}/resolve/{rev}/{*file}",
                get(resolve).head(resolve),
            )
            .route("/cdn/{sha}", get(cdn).head(cdn))
            .with_state(hub.clone());
        let mut stop = Vec::new();
        let mut tasks = Vec::new();
        for listener in [hub_listener, cdn_listener] {
            let (tx, rx) = oneshot::channel::<()>();
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            }));
            stop.push(tx);
        }
        Self {
            endpoint: format!("http://{hub_addr}"),
            hub,
            stop,
            tasks,
        }
    }

    pub fn add_fault(&self, fault: Fault) {
        self.hub.faults.lock().unwrap().push(fault);
    }

    pub fn clear_faults(&self) {
        self.hub.faults.lock().unwrap().clear();
    }

    pub fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.hub.log.lock().unwrap())
    }

    /// Stops both listeners (the test's runtime ends any connection task still open).
    pub async fn shutdown(mut self) {
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
        // A stalled response never finishes: wait at most 1 s overall for open connections.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn log(hub: &Hub, method: &Method, path: String, headers: &HeaderMap) {
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    hub.log.lock().unwrap().push(Logged {
        method: method.clone(),
        path,
        range,
    });
}

fn not_found(code: &'static str) -> Response {
    (StatusCode::NOT_FOUND, [("x-error-code", code)], code).into_response()
}

async fn repo_info(
    State(hub): State<Arc<Hub>>,
    Path((org, name, rev)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    log(
        &hub,
        &method,
        format!("/api/models/{org}/{name}/revision/{rev}"),
        &headers,
    );
    if format!("{org}/{name}") != hub.repo {
        return not_found("RepoNotFound");
    }
    if rev != "main" && rev != COMMIT {
        return not_found("RevisionNotFound");
    }
    let siblings: Vec<_> = hub
        .files
        .iter()
        .map(|f| serde_json::json!({ "rfilename": f.name }))
        .collect();
    axum::Json(serde_json::json!({
        "_id": "0123456789abcdef01234567",
        "id": hub.repo,
        "modelId": hub.repo,
        "sha": COMMIT,
        "private": false,
        "siblings": siblings,
    }))
    .into_response()
}

async fn resolve(
    State(hub): State<Arc<Hub>>,
    Path((org, name, rev, file)): Path<(String, String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    log(
        &hub,
        &method,
        format!("/{org}/{name}/resolve/{rev}/{file}"),
        &headers,
    );
    if format!("{org}/{name}") != hub.repo {
        return not_found("RepoNotFound");
    }
    if rev != "main" && rev != COMMIT {
        return not_found("RevisionNotFound");
    }
    let Some(f) = hub.files.iter().find(|f| f.name == file) else {
        return not_found("EntryNotFound");
    };
    let commit = HeaderValue::from_static(COMMIT);
    if f.lfs {
        let sha = f.sha256();
        let mut r = StatusCode::FOUND.into_response();
        let h = r.headers_mut();
        h.insert("x-repo-commit", commit);
        h.insert("x-linked-etag", quoted(&sha));
        h.insert("x-linked-size", HeaderValue::from(f.content.len()));
        // The hub's own ETag on the 302 is not the content hash; hf-hub must prefer
        // X-Linked-Etag, so make them differ.
        h.insert(header::ETAG, quoted(&f.git_etag()));
        h.insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("{}/cdn/{sha}", hub.cdn)).unwrap(),
        );
        return r;
    }
    let mut r = serve(&hub, f, &method, &headers);
    r.headers_mut().insert("x-repo-commit", commit);
    r.headers_mut().insert(header::ETAG, quoted(&f.git_etag()));
    r
}

async fn cdn(
    State(hub): State<Arc<Hub>>,
    Path(sha): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    log(&hub, &method, format!("/cdn/{sha}"), &headers);
    let Some(f) = hub.files.iter().find(|f| f.lfs && f.sha256() == sha) else {
        return not_found("NoSuchKey");
    };
    let mut r = serve(&hub, f, &method, &headers);
    r.headers_mut().insert(header::ETAG, quoted(&sha));
    r
}

fn quoted(s: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{s}\"")).unwrap()
}

/// `bytes=a-b` / `bytes=a-` → inclusive (start, end) clamped to the file, like S3 does.
fn parse_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len.checked_sub(1)?,
        b => b.parse::<usize>().ok()?.min(len.checked_sub(1)?),
    };
    (start <= end).then_some((start, end))
}

fn serve(hub: &Hub, f: &HubFile, method: &Method, headers: &HeaderMap) -> Response {
    let len = f.content.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(r) => match parse_range(r, len) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                )
                    .into_response();
            }
        },
    };
    let body_len = if len == 0 { 0 } else { end + 1 - start };
    let mut builder = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    if method == Method::HEAD {
        return builder
            .header(header::CONTENT_LENGTH, body_len)
            .body(Body::empty())
            .unwrap();
    }

    // Faults apply to real data transfers, not to hf-hub's one-byte metadata probe.
    let mut cut_at = None;
    let mut stall_at = None;
    let mut short = false;
    if body_len > 1 {
        let mut faults = hub.faults.lock().unwrap();
        for fault in faults.iter_mut() {
            match fault {
                Fault::CutAt { file, at, times }
                    if *file == f.name && *times > 0 && (start..=end).contains(at) =>
                {
                    *times -= 1;
                    cut_at = Some(*at);
                    break;
                }
                Fault::StallAt { file, at, times }
                    if *file == f.name && *times > 0 && (start..=end).contains(at) =>
                {
                    *times -= 1;
                    stall_at = Some(*at);
                    break;
                }
                Fault::ShortBody { file, times } if *file == f.name && *times > 0 && start > 0 => {
                    *times -= 1;
                    short = true;
                    break;
                }
                _ => {}
            }
        }
    }

    let data = f.content.slice(start..start + body_len);
    if short {
        // No Content-Length: a clean end of a chunked body looks complete to the client.
        let half = data.slice(..body_len / 2);
        return builder
            .body(Body::from_stream(pieces(half, End::Clean)))
            .unwrap();
    }
    builder
        .header(header::CONTENT_LENGTH, body_len)
        .body(Body::from_stream(match (cut_at, stall_at) {
            (Some(at), _) => pieces(data, End::CutAt(at - start)),
            (None, Some(at)) => pieces(data, End::StallAt(at - start)),
            (None, None) => pieces(data, End::Clean),
        }))
        .unwrap()
}

enum End {
    Clean,
    /// An I/O error after that many bytes: hyper drops the connection before
    /// Content-Length bytes were sent.
    CutAt(usize),
    /// Nothing more after that many bytes, connection kept open.
    StallAt(usize),
}

/// The body in 64 KiB pieces, ending as `end` says.
fn pieces(data: Bytes, end: End) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let limit = match end {
        End::Clean => data.len(),
        End::CutAt(n) | End::StallAt(n) => n.min(data.len()),
    };
    let items: Vec<Result<Bytes, std::io::Error>> = (0..limit)
        .step_by(STREAM_PIECE)
        .map(|i| Ok(data.slice(i..(i + STREAM_PIECE).min(limit))))
        .collect();
    let body = futures_util::stream::iter(items);
    match end {
        End::Clean => body.boxed(),
        End::CutAt(_) => body
            .chain(futures_util::stream::once(async {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fake hub cuts the connection",
                ))
            }))
            .boxed(),
        End::StallAt(_) => body.chain(futures_util::stream::pending()).boxed(),
    }
}
