//! Finding and downloading the sentence-transformers model files.
//!
//! This module owns one question: "which folder holds a complete, undamaged copy of
//! config.json, tokenizer.json, model.safetensors (and sentence_bert_config.json when the
//! model has one), and what is the model's id?". It answers it, in this order, from
//! 1. a local folder given by the operator (CHATTER_MODEL_PATH),
//! 2. the Hugging Face cache (HF_HOME layout, shared with Python's `huggingface_hub`),
//! 3. a download through the `hf-hub` crate from the hub or a mirror (HF_ENDPOINT),
//!    unless offline (HF_HUB_OFFLINE).
//!
//! It never reads the environment itself: the config module fills [`ModelSource`].
//! Loading the weights is another module's job; it gets a folder with the file names above.
//!
//! Why files are verified here: hf-hub 0.4 downloads into `blobs/<etag>.sync.part`, renames
//! to the blob only when every chunk finished, and only then links the snapshot entry, so a
//! cut connection (detected by hyper through Content-Length) leaves no snapshot entry and the
//! next download resumes from the last finished chunk. But it never checks that a chunk got as
//! many bytes as it asked for, nor the blob's hash: a body that ends early without an error
//! (no Content-Length, a misbehaving proxy or mirror) or a stale `.sync.part` yields a blob of
//! the right length with zero-filled holes. So every file is checked before it is returned:
//! LFS blobs (named by their sha256) are hashed, JSON files must parse, and model.safetensors
//! must have a readable header whose tensors end exactly at the end of the file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hf_hub::api::tokio::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

/// The hub used when [`ModelSource::endpoint`] is `None` (what hf-hub also defaults to).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Files that must be present for the model to load.
pub const REQUIRED_FILES: [&str; 3] = [CONFIG_JSON, TOKENIZER_JSON, MODEL_SAFETENSORS];
/// Read when present (pooling/normalisation settings); older repos lack it.
pub const OPTIONAL_FILES: [&str; 1] = [SENTENCE_BERT_CONFIG_JSON];

const CONFIG_JSON: &str = "config.json";
const TOKENIZER_JSON: &str = "tokenizer.json";
const MODEL_SAFETENSORS: &str = "model.safetensors";
const SENTENCE_BERT_CONFIG_JSON: &str = "sentence_bert_config.json";

/// How often [`Progress::Log`] reports, at most (besides every 10%).
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Files smaller than this get only the start and end lines from [`Progress::Log`].
const LOG_PROGRESS_FROM: u64 = 10 * 1024 * 1024;
/// A safetensors header larger than this is not a header but garbage (real ones are KBs).
const MAX_SAFETENSORS_HEADER: u64 = 100 * 1024 * 1024;

/// Where the model comes from; filled by the config module (CHATTER_MODEL_PATH, HF_HOME,
/// HF_ENDPOINT, HF_HUB_OFFLINE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// A folder with the model files; when set, nothing else is consulted.
    pub local_path: Option<PathBuf>,
    /// Hub repo id, e.g. "sentence-transformers/all-MiniLM-L6-v2".
    pub repo: String,
    /// Branch, tag or commit sha, e.g. "main".
    pub revision: String,
    /// The HF_HOME folder (the cache is its `hub/` subfolder); `None` means
    /// `~/.cache/huggingface`, like hf-hub and Python.
    pub hf_home: Option<PathBuf>,
    /// Hub base URL; `None` means [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Use the cache only, never the network.
    pub offline: bool,
}

impl ModelSource {
    /// The default model from the default hub, cached under `hf_home`.
    pub fn hub_default(hf_home: Option<PathBuf>) -> Self {
        Self {
            local_path: None,
            repo: "sentence-transformers/all-MiniLM-L6-v2".to_string(),
            revision: "main".to_string(),
            hf_home,
            endpoint: None,
            offline: false,
        }
    }

    fn endpoint(&self) -> &str {
        self.endpoint
            .as_deref()
            .map(|e| e.trim_end_matches('/'))
            .unwrap_or(DEFAULT_ENDPOINT)
    }
}

/// Where [`ModelFiles`] were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesOrigin {
    /// The operator's folder ([`ModelSource::local_path`]).
    Local,
    /// Already complete in the Hugging Face cache; no network used.
    Cache,
    /// Downloaded (at least in part) during this call.
    Downloaded,
}

/// A verified, complete set of model files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// Folder holding the files under their usual names (for the hub: the snapshot folder,
    /// whose entries are symlinks into `blobs/`).
    pub dir: PathBuf,
    pub config_json: PathBuf,
    pub tokenizer_json: PathBuf,
    pub model_safetensors: PathBuf,
    /// `None` when the model has no sentence_bert_config.json.
    pub sentence_bert_config_json: Option<PathBuf>,
    /// "org/name@<commit sha>" for hub models, "org/name@local" for a local folder; stored
    /// with embeddings so a model change can be detected.
    pub model_id: String,
    pub origin: FilesOrigin,
}

/// Why no usable model files could be found.
#[derive(Debug, thiserror::Error)]
pub enum ModelFilesError {
    #[error("model folder {dir} (CHATTER_MODEL_PATH) is not a readable directory: {source}")]
    LocalDirUnreadable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "model folder {dir} (CHATTER_MODEL_PATH) has no {file}; it needs config.json, \
         tokenizer.json and model.safetensors (sentence_bert_config.json is optional)"
    )]
    LocalFileMissing { dir: PathBuf, file: String },
    #[error(
        "offline (HF_HUB_OFFLINE) and {repo}@{revision} is not complete in the cache {cache}: \
         missing {}; run once with network access (or HF_ENDPOINT pointing at a mirror), or set \
         CHATTER_MODEL_PATH to a folder holding the model files",
        missing.join(", ")
    )]
    OfflineNotCached {
        repo: String,
        revision: String,
        cache: PathBuf,
        missing: Vec<String>,
    },
    #[error(
        "cannot reach the model hub at {endpoint} to get {repo}: {reason}; set \
         CHATTER_MODEL_PATH to a local folder with the model files, or HF_ENDPOINT to a \
         reachable mirror (or fill HF_HOME beforehand and set HF_HUB_OFFLINE=1)"
    )]
    HubUnreachable {
        endpoint: String,
        repo: String,
        reason: String,
    },
    #[error(
        "the model hub at {endpoint} answered {status} for {repo}@{revision}; check the model \
         name and revision, or HF_ENDPOINT"
    )]
    HubRejected {
        endpoint: String,
        repo: String,
        revision: String,
        status: u16,
    },
    #[error(
        "{repo}@{commit} on {endpoint} has no {file}; it is not a usable sentence-transformers model"
    )]
    MissingInRepo {
        endpoint: String,
        repo: String,
        commit: String,
        file: String,
    },
    #[error(
        "downloading {file} of {repo} from {endpoint} failed after {attempts} attempt(s): \
         {reason}; the partial download is kept and resumed on the next start (or set \
         CHATTER_MODEL_PATH / HF_ENDPOINT)"
    )]
    Download {
        endpoint: String,
        repo: String,
        file: String,
        attempts: u32,
        reason: String,
    },
    #[error("model file {path} is damaged ({reason}){hint}")]
    Corrupt {
        path: PathBuf,
        reason: String,
        /// What the operator can do, depending on where the file came from.
        hint: &'static str,
    },
    #[error(
        "no HF_HOME and no home directory to put the Hugging Face cache in; set HF_HOME or \
         CHATTER_MODEL_PATH"
    )]
    NoCacheDir,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How download progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif bar on stderr (hf-hub's own bar), for interactive use.
    Terminal,
    /// `tracing` info lines every few seconds or 10%, for services and CI logs.
    Log,
    /// Nothing.
    Silent,
}

/// Network limits of a download. hf-hub's HTTP client has no timeout at all, so without
/// these a firewall that drops packets, or a connection that stalls, would hang startup
/// silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for the repo-info answer that tells whether the hub is reachable.
    pub info_timeout: Duration,
    /// A file download that receives no byte for this long is abandoned (and retried).
    pub stall_timeout: Duration,
    /// Attempts per file for cut or stalled connections; each resumes from the last
    /// finished 10 MB chunk. The partial file stays for the next start after the last one.
    pub attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            info_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            attempts: 3,
        }
    }
}

/// Finds or downloads the model files; see the module doc for the order.
pub async fn resolve(
    source: &ModelSource,
    progress: Progress,
) -> Result<ModelFiles, ModelFilesError> {
    resolve_with(source, progress, Limits::default()).await
}

/// [`resolve`] with non-default network [`Limits`].
pub async fn resolve_with(
    source: &ModelSource,
    progress: Progress,
    limits: Limits,
) -> Result<ModelFiles, ModelFilesError> {
    if let Some(dir) = &source.local_path {
        return resolve_local(dir, &source.repo).await;
    }
    let hub_cache = hub_cache_dir(source)?;
    let repo_dir = hub_cache.join(Repo::model(source.repo.clone()).folder_name());

    // Cache first, even online: a complete snapshot needs no network, so a running
    // deployment does not depend on the hub at every start.
    let mut from_cache = None;
    if let Some(commit) = cached_commit(&repo_dir, &source.revision)? {
        let snapshot = repo_dir.join("snapshots").join(&commit);
        let missing = check_snapshot(&snapshot, source.offline).await?;
        if missing.is_empty() {
            tracing::info!(repo = %source.repo, %commit, dir = %snapshot.display(), "model files found in the Hugging Face cache");
            return files_in(
                snapshot,
                format!("{}@{commit}", source.repo),
                FilesOrigin::Cache,
            );
        }
        from_cache = Some(missing);
    }
    if source.offline {
        let missing = from_cache.unwrap_or_else(|| {
            REQUIRED_FILES
                .iter()
                .map(|f| (*f).to_string())
                .collect::<Vec<_>>()
        });
        return Err(ModelFilesError::OfflineNotCached {
            repo: source.repo.clone(),
            revision: source.revision.clone(),
            cache: hub_cache,
            missing,
        });
    }
    download(source, &hub_cache, &repo_dir, progress, limits).await
}

async fn resolve_local(dir: &Path, repo: &str) -> Result<ModelFiles, ModelFilesError> {
    match tokio::fs::metadata(dir).await {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ModelFilesError::LocalDirUnreadable {
                dir: dir.to_path_buf(),
                source: std::io::Error::other("not a directory"),
            });
        }
        Err(source) => {
            return Err(ModelFilesError::LocalDirUnreadable {
                dir: dir.to_path_buf(),
                source,
            });
        }
    }
    for file in REQUIRED_FILES {
        if !dir.join(file).is_file() {
            return Err(ModelFilesError::LocalFileMissing {
                dir: dir.to_path_buf(),
                file: file.to_string(),
            });
        }
    }
    for file in REQUIRED_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let path = dir.join(file);
        if path.is_file()
            && let Err(reason) = verify_file(path.clone()).await
        {
            return Err(ModelFilesError::Corrupt {
                path,
                reason,
                hint: "; replace the files in CHATTER_MODEL_PATH",
            });
        }
    }
    tracing::info!(dir = %dir.display(), "model files from local folder");
    files_in(
        dir.to_path_buf(),
        format!("{repo}@local"),
        FilesOrigin::Local,
    )
}

fn files_in(
    dir: PathBuf,
    model_id: String,
    origin: FilesOrigin,
) -> Result<ModelFiles, ModelFilesError> {
    let sbert = dir.join(SENTENCE_BERT_CONFIG_JSON);
    Ok(ModelFiles {
        config_json: dir.join(CONFIG_JSON),
        tokenizer_json: dir.join(TOKENIZER_JSON),
        model_safetensors: dir.join(MODEL_SAFETENSORS),
        sentence_bert_config_json: sbert.is_file().then_some(sbert),
        dir,
        model_id,
        origin,
    })
}

/// `<HF_HOME>/hub`, the folder hf-hub and Python's huggingface_hub share.
fn hub_cache_dir(source: &ModelSource) -> Result<PathBuf, ModelFilesError> {
    let home = match &source.hf_home {
        Some(home) => home.clone(),
        // The documented default of every HF client. Only the platform's home directory is
        // looked up here, never HF_* variables (those come through `source`).
        None => std::env::home_dir()
            .ok_or(ModelFilesError::NoCacheDir)?
            .join(".cache")
            .join("huggingface"),
    };
    Ok(home.join("hub"))
}

fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit a cached revision points at: `refs/<revision>` (written by us after a
/// verified download, or by Python), or the revision itself when it is a commit sha.
fn cached_commit(repo_dir: &Path, revision: &str) -> Result<Option<String>, ModelFilesError> {
    if is_commit_sha(revision) {
        return Ok(repo_dir
            .join("snapshots")
            .join(revision)
            .is_dir()
            .then(|| revision.to_string()));
    }
    let ref_path = repo_dir.join("refs").join(revision);
    match std::fs::read_to_string(&ref_path) {
        Ok(commit) => {
            let commit = commit.trim();
            // A ref with anything but a sha would let a crafted file point outside the cache.
            Ok(is_commit_sha(commit).then(|| commit.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ModelFilesError::Io {
            what: "cannot read the cache ref",
            path: ref_path,
            source,
        }),
    }
}

/// Required files missing or damaged in a snapshot (empty: complete and verified).
/// Online, damaged entries are removed so the download replaces them; offline, damage is an
/// error, because silently reporting "missing" would hide that the cache is corrupt.
async fn check_snapshot(snapshot: &Path, offline: bool) -> Result<Vec<String>, ModelFilesError> {
    let mut missing = Vec::new();
    for file in REQUIRED_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let path = snapshot.join(file);
        // `exists` follows the symlink: a link to a blob that is gone counts as missing.
        if !path.exists() {
            if REQUIRED_FILES.contains(file) {
                missing.push((*file).to_string());
            }
            continue;
        }
        if let Err(reason) = verify_file(path.clone()).await {
            if offline {
                return Err(ModelFilesError::Corrupt {
                    path,
                    reason,
                    hint: "; run once online to download it again, or set CHATTER_MODEL_PATH",
                });
            }
            tracing::warn!(path = %path.display(), %reason, "damaged model file in the cache; downloading it again");
            remove_cached(&path)?;
            missing.push((*file).to_string());
        }
    }
    Ok(missing)
}

/// Deletes a snapshot entry and the blob it links to. The link must go too: hf-hub skips
/// creating a link whose path exists, and fails on a dangling one.
fn remove_cached(entry: &Path) -> Result<(), ModelFilesError> {
    if let Ok(blob) = std::fs::canonicalize(entry)
        && blob != entry
    {
        remove_if_present(&blob)?;
    }
    remove_if_present(entry)
}

fn remove_if_present(path: &Path) -> Result<(), ModelFilesError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ModelFilesError::Io {
            what: "cannot remove damaged cache file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

async fn download(
    source: &ModelSource,
    hub_cache: &Path,
    repo_dir: &Path,
    progress: Progress,
    limits: Limits,
) -> Result<ModelFiles, ModelFilesError> {
    let endpoint = source.endpoint().to_string();
    let unreachable = |reason: String| ModelFilesError::HubUnreachable {
        endpoint: endpoint.clone(),
        repo: source.repo.clone(),
        reason,
    };
    // Progress is drawn by us per file (download_with_progress), not by hf-hub's flag.
    let api = ApiBuilder::from_cache(Cache::new(hub_cache.to_path_buf()))
        .with_endpoint(endpoint.clone())
        .with_progress(false)
        .build()
        .map_err(|e| unreachable(e.to_string()))?;

    // Resolve the revision to a commit once, then download every file at that commit: with
    // "main", files fetched one by one could otherwise come from two commits if the repo
    // changes meanwhile. This request also tells, with a timeout, whether the hub answers.
    let info_repo = api.repo(Repo::with_revision(
        source.repo.clone(),
        RepoType::Model,
        source.revision.clone(),
    ));
    let response = info_repo
        .info_request()
        .timeout(limits.info_timeout)
        .send()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ModelFilesError::HubRejected {
            endpoint: endpoint.clone(),
            repo: source.repo.clone(),
            revision: source.revision.clone(),
            status: status.as_u16(),
        });
    }
    let info: hf_hub::api::RepoInfo = response
        .json()
        .await
        .map_err(|e| unreachable(format!("unexpected repo info: {}", error_chain(&e))))?;
    let commit = info.sha.trim().to_string();
    if !is_commit_sha(&commit) {
        return Err(unreachable(format!(
            "repo info has no commit sha (got {commit:?})"
        )));
    }
    let listed = |file: &str| info.siblings.iter().any(|s| s.rfilename == file);
    let mut wanted: Vec<&str> = Vec::new();
    for file in REQUIRED_FILES {
        // Some mirrors return no file list; then just try the download.
        if !info.siblings.is_empty() && !listed(file) {
            return Err(ModelFilesError::MissingInRepo {
                endpoint,
                repo: source.repo.clone(),
                commit,
                file: file.to_string(),
            });
        }
        wanted.push(file);
    }
    for file in OPTIONAL_FILES {
        if listed(file) {
            wanted.push(file);
        }
    }

    let snapshot = repo_dir.join("snapshots").join(&commit);
    let repo = api.repo(Repo::with_revision(
        source.repo.clone(),
        RepoType::Model,
        commit.clone(),
    ));
    tracing::info!(repo = %source.repo, %commit, %endpoint, "getting model files from the hub");
    for file in wanted {
        let path = snapshot.join(file);
        // hf-hub downloads again whatever is asked; keep what an earlier run completed.
        if path.exists() {
            match verify_file(path.clone()).await {
                Ok(()) => continue,
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "damaged model file in the cache; downloading it again");
                    remove_cached(&path)?;
                }
            }
        }
        let downloaded = download_file(&repo, file, progress, limits)
            .await
            .map_err(|(attempts, e)| download_error(&endpoint, &source.repo, file, attempts, e))?;
        if let Err(reason) = verify_file(downloaded.clone()).await {
            // Never leave a damaged blob where the next (maybe offline) start would find it.
            remove_cached(&downloaded)?;
            return Err(ModelFilesError::Corrupt {
                path: downloaded,
                reason,
                hint: "; as received from the hub. It was removed and the next start \
                       downloads it again (check HF_ENDPOINT if this repeats)",
            });
        }
    }

    // Only now point the revision at the commit: a cache lookup by revision then never finds
    // a snapshot that this code has not verified complete.
    if commit != source.revision {
        write_ref(repo_dir, &source.revision, &commit)?;
    }
    files_in(
        snapshot,
        format!("{}@{commit}", source.repo),
        FilesOrigin::Downloaded,
    )
}

/// Downloads one file, retrying cut and stalled connections (hf-hub resumes from the last
/// finished chunk).
async fn download_file(
    repo: &ApiRepo,
    file: &str,
    progress: Progress,
    limits: Limits,
) -> Result<PathBuf, (u32, AttemptError)> {
    let attempts = limits.attempts.max(1);
    let mut attempt = 1;
    loop {
        let stall = limits.stall_timeout;
        let result = match progress {
            Progress::Terminal => {
                watched_download(repo, file, indicatif::ProgressBar::new(0), stall).await
            }
            Progress::Log => watched_download(repo, file, LogProgress::default(), stall).await,
            Progress::Silent => watched_download(repo, file, (), stall).await,
        };
        match result {
            Ok(path) => return Ok(path),
            Err(e) if attempt < attempts && e.is_transient() => {
                tracing::warn!(file, attempt, error = %e, "model download interrupted; resuming");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            Err(e) => return Err((attempt, e)),
        }
    }
}

/// Why one download attempt failed.
enum AttemptError {
    Api(ApiError),
    Stalled(Duration),
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(e) => f.write_str(&error_chain(e)),
            Self::Stalled(d) => write!(f, "no data received for {} s", d.as_secs_f32()),
        }
    }
}

impl AttemptError {
    /// Cut connections, stalls and timeouts are worth a retry; refused connections and HTTP
    /// errors are not (they would only delay the error message).
    fn is_transient(&self) -> bool {
        match self {
            Self::Stalled(_) => true,
            // A cut body shows as a decode error ("end of file before message length reached").
            Self::Api(ApiError::RequestError(e)) => {
                !e.is_connect() && !e.is_status() && !e.is_builder()
            }
            Self::Api(ApiError::TooManyRetries(_) | ApiError::Join(_)) => true,
            Self::Api(_) => false,
        }
    }
}

/// Runs one hf-hub download, abandoning it when no byte arrives for `stall`. Dropping the
/// future releases hf-hub's lock; a chunk task it spawned may linger on the dead connection,
/// but it could only write the same bytes at the same offsets, and never after the rename.
async fn watched_download<P>(
    repo: &ApiRepo,
    file: &str,
    progress: P,
    stall: Duration,
) -> Result<PathBuf, AttemptError>
where
    P: hf_hub::api::tokio::Progress + Clone + Send + Sync + 'static,
{
    let watched = Watched {
        inner: progress,
        start: Instant::now(),
        last_ms: Arc::new(AtomicU64::new(0)),
    };
    let idle = {
        let w = watched.clone();
        move || {
            w.start
                .elapsed()
                .saturating_sub(Duration::from_millis(w.last_ms.load(Ordering::Relaxed)))
        }
    };
    let download = repo.download_with_progress(file, watched);
    tokio::pin!(download);
    let mut tick =
        tokio::time::interval((stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    loop {
        tokio::select! {
            result = &mut download => return result.map_err(AttemptError::Api),
            _ = tick.tick() => {
                if idle() >= stall {
                    return Err(AttemptError::Stalled(stall));
                }
            }
        }
    }
}

/// A progress reporter that also records when bytes last arrived, for the stall watchdog.
#[derive(Clone)]
struct Watched<P> {
    inner: P,
    start: Instant,
    /// Milliseconds after `start` of the last activity; shared by hf-hub's per-chunk clones.
    last_ms: Arc<AtomicU64>,
}

impl<P> Watched<P> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl<P: hf_hub::api::tokio::Progress + Send> hf_hub::api::tokio::Progress for Watched<P> {
    async fn init(&mut self, size: usize, filename: &str) {
        self.touch();
        self.inner.init(size, filename).await;
    }

    async fn update(&mut self, size: usize) {
        self.touch();
        self.inner.update(size).await;
    }

    async fn finish(&mut self) {
        self.inner.finish().await;
    }
}

fn download_error(
    endpoint: &str,
    repo: &str,
    file: &str,
    attempts: u32,
    e: AttemptError,
) -> ModelFilesError {
    if let AttemptError::Api(ApiError::RequestError(re)) = &e
        && re.is_connect()
    {
        return ModelFilesError::HubUnreachable {
            endpoint: endpoint.to_string(),
            repo: repo.to_string(),
            reason: e.to_string(),
        };
    }
    ModelFilesError::Download {
        endpoint: endpoint.to_string(),
        repo: repo.to_string(),
        file: file.to_string(),
        attempts,
        reason: e.to_string(),
    }
}

/// reqwest's Display omits the cause ("error sending request"); the cause is what the
/// operator needs ("connection refused", "end of file before message length reached").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Writes `refs/<revision>` atomically (temp file + rename), as hf-hub and Python read it.
fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<(), ModelFilesError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelFilesError::Io { what, path, source }
    };
    let ref_path = repo_dir.join("refs").join(revision);
    let parent = ref_path.parent().unwrap_or(repo_dir);
    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    let tmp = parent.join(format!(
        ".{}.chatter-tmp",
        ref_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, commit).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, &ref_path).map_err(io("cannot write cache ref", &ref_path))
}

/// Checks a model file is whole; `Err` says why not. Runs on the blocking pool: hashing
/// 90 MB takes a fraction of a second but must not stall the runtime.
async fn verify_file(path: PathBuf) -> Result<(), String> {
    tokio::task::spawn_blocking(move || verify_file_blocking(&path))
        .await
        .map_err(|e| format!("verification task failed: {e}"))?
}

fn verify_file_blocking(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // In the cache an entry links to `blobs/<etag>`; for LFS files the etag is the sha256 of
    // the content, which catches zero-filled holes that keep the length right.
    if let Ok(target) = std::fs::canonicalize(path)
        && target != path
        && let Some(etag) = target.file_name().and_then(|n| n.to_str())
        && is_sha256(etag)
    {
        let actual = sha256_file(&target)?;
        if !actual.eq_ignore_ascii_case(etag) {
            return Err(format!("sha256 {actual} differs from the hub's {etag}"));
        }
    }
    if name.ends_with(".json") {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
            .map_err(|e| format!("not valid JSON: {e}"))?;
    } else if name.ends_with(".safetensors") {
        check_safetensors(path)?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The safetensors layout is `u64 LE header length | JSON header | tensor data`; the header
/// gives each tensor's `data_offsets`, so a truncated (or padded) file shows as a length that
/// differs from `8 + header + last offset`.
fn check_safetensors(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| format!("{len} bytes is too short for a safetensors file"))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_SAFETENSORS_HEADER || 8 + header_len > len {
        return Err(format!(
            "safetensors header length {header_len} does not fit in {len} bytes"
        ));
    }
    let mut header = vec![0u8; usize::try_from(header_len).map_err(|e| e.to_string())?];
    file.read_exact(&mut header)
        .map_err(|e| format!("cannot read the safetensors header: {e}"))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("safetensors header is not valid JSON: {e}"))?;
    let mut data_end = 0u64;
    for (name, tensor) in &header {
        if name == "__metadata__" {
            continue;
        }
        let end = tensor
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("tensor {name} has no data_offsets in the header"))?;
        data_end = data_end.max(end);
    }
    let expected = 8 + header_len + data_end;
    if len != expected {
        return Err(format!(
            "{len} bytes, but its header describes {expected} bytes (truncated download?)"
        ));
    }
    Ok(())
}

/// Reports download progress as `tracing` lines: hf-hub calls `update` from each chunk task
/// on its own clone, so the counters live behind a shared lock.
#[derive(Clone, Default)]
struct LogProgress {
    state: Arc<Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    file: String,
    total: u64,
    done: u64,
    last_tenth: u64,
    last_log: Option<Instant>,
}

impl LogProgress {
    fn with_state(&self, f: impl FnOnce(&mut LogState)) {
        // A panic elsewhere while holding the lock leaves plain counters; keep reporting.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state);
    }
}

impl hf_hub::api::tokio::Progress for LogProgress {
    async fn init(&mut self, size: usize, filename: &str) {
        self.with_state(|s| {
            s.file = filename.to_string();
            s.total = size as u64;
            s.done = 0;
            s.last_tenth = 0;
            s.last_log = Some(Instant::now());
            tracing::info!(file = %s.file, bytes = s.total, "downloading model file");
        });
    }

    async fn update(&mut self, size: usize) {
        self.with_state(|s| {
            s.done += size as u64;
            if s.total < LOG_PROGRESS_FROM {
                return;
            }
            let tenth = (s.done * 10).checked_div(s.total).unwrap_or(0);
            let due = s.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
            if tenth > s.last_tenth || due {
                s.last_tenth = tenth;
                s.last_log = Some(Instant::now());
                let percent = (s.done * 100).checked_div(s.total).unwrap_or(0);
                tracing::info!(file = %s.file, done = s.done, total = s.total, percent, "downloading model file");
            }
        });
    }

    async fn finish(&mut self) {
        self.with_state(|s| {
            tracing::info!(file = %s.file, bytes = s.total, "model file downloaded");
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn safetensors(data_len: usize) -> Vec<u8> {
        let header = format!(
            r#"{{"w":{{"dtype":"U8","shape":[{data_len}],"data_offsets":[0,{data_len}]}}}}"#
        );
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(7u8, data_len));
        out
    }

    #[test]
    fn safetensors_length_must_match_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let good = safetensors(1000);
        std::fs::write(&path, &good).unwrap();
        assert_eq!(check_safetensors(&path), Ok(()));
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(check_safetensors(&path).unwrap_err().contains("truncated"));
        std::fs::write(&path, &good[..4]).unwrap();
        assert!(check_safetensors(&path).is_err());
    }

    #[test]
    fn lfs_blob_hash_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let content = safetensors(100);
        let sha = hex::encode(Sha256::digest(&content));
        let blob = dir.path().join(&sha);
        let mut damaged = content.clone();
        damaged[50] ^= 1;
        std::fs::write(&blob, &damaged).unwrap();
        let link = dir.path().join("model.safetensors");
        std::os::unix::fs::symlink(&blob, &link).unwrap();
        assert!(verify_file_blocking(&link).unwrap_err().contains("sha256"));
        std::fs::write(&blob, &content).unwrap();
        assert_eq!(verify_file_blocking(&link), Ok(()));
    }
}
