//! Typed settings: defaults in the code < `config.toml` (or `--config FILE`) <
//! environment. Parsed once at start-up; nothing else reads the environment.
//!
//! The environment names of the Django deployment guide keep their meaning
//! (`SECRET_KEY`, `DEBUG`, `DATABASE_URL`, `ALLOWED_HOSTS`, `PORT`), the hub's
//! own variables keep theirs (`HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`), and
//! everything else is `CHATTER_*`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the environment variable {name}={value:?} is not valid: {expected}")]
    Env {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "SECRET_KEY is not set and DEBUG is off: set SECRET_KEY to a long random string \
         (for example `openssl rand -hex 32`), or set DEBUG=True for local development"
    )]
    MissingSecretKey,
    #[error("{0}")]
    Mail(&'static str),
    #[error("billing plans: {0}")]
    Plans(String),
    #[error(
        "billing.checkout_script_url {0:?} is not usable: an https URL (http only on loopback, for tests)"
    )]
    CheckoutScript(String),
}

/// A string that never shows itself in `Debug` or logs.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub tenancy: TenancySettings,
    pub model: ModelSettings,
    pub chat: ChatSettings,
    pub auth: AuthSettings,
    pub signup: SignupSettings,
    pub smtp: SmtpSettings,
    pub billing: BillingSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub debug: bool,
    pub secret_key: Option<Secret>,
    /// Host names this server answers for; a leading dot matches any
    /// subdomain, `*` matches everything (Django's ALLOWED_HOSTS).
    pub allowed_hosts: Vec<String>,
    /// Longest a graceful stop waits for requests in flight.
    pub shutdown_timeout_secs: u64,
    /// Behind a proxy (Render, nginx) that sets X-Forwarded-For: take the
    /// client's address from its last hop. Off, the header is ignored, since
    /// a client talking to us directly could write anything there.
    pub trust_proxy: bool,
    /// Longest a client may take to send a request's headers; also how long
    /// a kept-alive connection may sit idle.
    pub header_read_timeout_secs: u64,
    /// Longest a request may take until its response starts (then 408).
    pub request_timeout_secs: u64,
    /// Open connections at most; more are closed as soon as accepted.
    pub max_connections: usize,
    /// The address people reach this server at (`https://chat.example.com`),
    /// for links in mail. Unset: `https://` and the public domain.
    pub public_url: Option<String>,
    /// A bearer token `/metrics` also accepts (besides an operator's
    /// sign-in token), for a Prometheus scraper; unset, only operators.
    pub metrics_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// None: run the embedded PostgreSQL cluster under `data_dir`.
    pub url: Option<Secret>,
    pub data_dir: PathBuf,
    pub pool_size: usize,
    pub wait_timeout_ms: u64,
    pub create_timeout_ms: u64,
    pub recycle_timeout_ms: u64,
    /// Tenant schemas migrated at once by `migrate --tenants` and `serve`.
    pub migrate_parallelism: usize,
    /// Longest one statement may run, and wait for a lock, on a pooled
    /// connection (0: no limit).
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancySettings {
    /// Schema of the platform's own tenant (the front page's bot).
    pub public_schema: String,
    pub public_name: String,
    /// Becomes the public tenant's primary domain on start
    /// (`CHATTER_PUBLIC_DOMAIN`, or Render's `RENDER_EXTERNAL_HOSTNAME`).
    pub public_domain: Option<String>,
    /// Entries kept by the routing cache before it starts over.
    pub cache_capacity: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// A local sentence-transformers folder; wins over the hub.
    pub path: Option<PathBuf>,
    pub repo: String,
    pub revision: String,
    pub hf_home: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub offline: bool,
    /// Compute threads for inference; 0 means one per core.
    pub threads: usize,
    pub max_batch: usize,
    pub batch_wait_ms: u64,
    pub queue_capacity: usize,
    /// The inference thread on one batch for longer than this: `/readyz`
    /// answers 503 until it finishes.
    pub wedged_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Below the bot's threshold by at most this much: fall back, but offer
    /// the nearest questions as suggestions.
    pub suggestion_margin: f32,
    pub max_suggestions: usize,
    pub max_message_chars: usize,
    /// Bytes of question embeddings kept (per process, keyed by tenant): a
    /// repeated question costs no inference. 0 turns the cache off.
    pub question_cache_bytes: usize,
    /// Bytes of built FAQ indexes kept (per process): the least recently
    /// used tenants' indexes are dropped beyond it and rebuilt from their
    /// stored vectors on their next question.
    pub index_cache_bytes: usize,
    /// Exchanges stored in one transaction at most (group commit): those
    /// that finish while the previous group commits wait for the next one,
    /// and each chat is answered once its group committed. 1: every
    /// exchange in a transaction of its own.
    pub group_commit_max: usize,
    /// Fair use, token buckets: one visitor (a tenant and a client address)
    /// may send `visitor_burst` messages at once and earns
    /// `visitor_messages_per_minute` back a minute; then 429. Feedback has
    /// buckets of the same size of its own.
    pub visitor_messages_per_minute: u32,
    pub visitor_burst: u32,
    /// All visitors of one tenant together, so one busy (or attacked)
    /// tenant cannot take the model from the others.
    pub tenant_messages_per_minute: u32,
    pub tenant_burst: u32,
    /// Analytics summaries a minute for one user that had to embed
    /// unanswered questions stored without their vector (up to 500 each).
    pub summaries_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// A token unused this long is dead.
    pub idle_timeout_secs: u64,
    /// A token this old is dead, however often it is used.
    pub max_age_secs: u64,
    /// Sign-in attempts a minute for one account from one address; one
    /// address may make three times as many across accounts.
    pub login_attempts_per_minute: u32,
    /// Password changes a minute for one account, right or wrong.
    pub password_changes_per_minute: u32,
    /// Password hashes computed at once (19 MiB each); 0: two per core.
    pub max_concurrent_hashes: usize,
    /// Password-reset requests an hour for one email (three times as many
    /// from one address), and reset confirmations an hour from one address.
    pub password_resets_per_hour: u32,
    /// How long a password-reset link works.
    pub reset_link_ttl_secs: u64,
    /// How long an address-verification link works.
    pub verify_link_ttl_secs: u64,
}

/// Self-service sign-up (`POST /api/signup`, the dashboard's `#/signup`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignupSettings {
    /// Off: the sign-up routes answer 404 and only operators make tenants.
    pub enabled: bool,
    /// Sign-ups an hour from one client address, and for one email.
    pub per_address_per_hour: u32,
    pub per_email_per_hour: u32,
}

/// How the server connects to its SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text all the way (a relay on the same host only).
    None,
    /// Plain, then upgraded with STARTTLS (refused if the server cannot).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Mail (address verification, password reset, usage notices): on when
/// `host` is set. The password only from the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: Option<String>,
    pub port: u16,
    pub username: Option<String>,
    /// `CHATTER_SMTP_PASSWORD` only: never in a file.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// The sender, `Name <address>` or an address.
    pub from: Option<String>,
    pub tls: SmtpTls,
    /// PEM certificate(s) trusted for the relay besides the Mozilla roots:
    /// a relay on a private CA. Read when the mailer is built.
    pub ca_file: Option<PathBuf>,
    /// Longest one SMTP conversation may take.
    pub timeout_secs: u64,
}

impl SmtpSettings {
    pub fn enabled(&self) -> bool {
        self.host.is_some()
    }
}

impl AuthSettings {
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn max_age(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.max_age_secs)
    }
}

/// Plans, trial and Razorpay. Billing is on only when the Razorpay key id
/// and secret are in the environment; without them (self-hosting) there
/// are no plans and no limits, and no billing screens show.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingSettings {
    /// Razorpay's API (tests point it at a stand-in on loopback).
    pub api_base: String,
    /// `RAZORPAY_KEY_ID`, `RAZORPAY_KEY_SECRET`, `RAZORPAY_WEBHOOK_SECRET`:
    /// from the environment only, never from a file.
    #[serde(skip)]
    pub key_id: Option<Secret>,
    #[serde(skip)]
    pub key_secret: Option<Secret>,
    #[serde(skip)]
    pub webhook_secret: Option<Secret>,
    /// Days a halted subscription or an expired trial keeps the bot answering.
    pub grace_days: u32,
    /// Percent of a month's conversations at which the owner is warned.
    pub warn_percent: u32,
    /// Billing cycles a subscription runs for (Razorpay's `total_count`).
    pub total_count: u32,
    /// Owners' calls that reach Razorpay (subscribe, change plan, cancel,
    /// invoices) per tenant per minute; more get 429 with `Retry-After`.
    pub razorpay_calls_per_minute: u32,
    /// Razorpay Checkout's script, which the Billing page loads when an
    /// owner subscribes. Razorpay requires it be loaded from them (it
    /// cannot be bundled); its origin is allowed in the dashboard's CSP
    /// only while billing is on. Tests point it at a stand-in on loopback.
    pub checkout_script_url: String,
    pub trial: TrialSettings,
    /// What owners can buy; none by default (list them in config.toml).
    pub plans: Vec<PlanSettings>,
}

/// What a plan allows; an absent limit is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub faqs: Option<u32>,
    /// Conversations started in a calendar month (UTC).
    pub conversations_per_month: Option<u32>,
    /// Owners and agents of the tenant.
    pub members: Option<u32>,
    /// Whether the widget may hide "Powered by Chatter".
    pub remove_branding: bool,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        faqs: None,
        conversations_per_month: None,
        members: None,
        remove_branding: true,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    /// Shown to owners and used by operators (`chatter billing grant`).
    pub name: String,
    /// As shown, e.g. "₹999 / month" (Razorpay's plan holds the amount).
    pub price: String,
    /// The plan's id in Razorpay's dashboard (`plan_...`).
    pub razorpay_plan_id: String,
    #[serde(flatten)]
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrialSettings {
    /// Days from the tenant's creation.
    pub days: u32,
    pub faqs: Option<u32>,
    pub conversations_per_month: Option<u32>,
    pub members: Option<u32>,
}

impl TrialSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            faqs: self.faqs,
            conversations_per_month: self.conversations_per_month,
            members: self.members,
            remove_branding: false,
        }
    }
}

/// Where Razorpay serves Checkout (its documented `<script>`).
pub const RAZORPAY_CHECKOUT_SCRIPT: &str = "https://checkout.razorpay.com/v1/checkout.js";

impl BillingSettings {
    /// The origin of `checkout_script_url`, for the dashboard's CSP: an
    /// https URL, or http on a loopback host (a test's stand-in).
    pub fn checkout_script_origin(&self) -> Result<String, ConfigError> {
        let bad = || ConfigError::CheckoutScript(self.checkout_script_url.clone());
        let url = url::Url::parse(&self.checkout_script_url).map_err(|_| bad())?;
        let loopback = matches!(
            url.host(),
            Some(url::Host::Domain("localhost"))
                | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        );
        let allowed = match url.scheme() {
            "https" => true,
            "http" => loopback,
            _ => false,
        };
        if !allowed || url.host().is_none() || !url.username().is_empty() {
            return Err(bad());
        }
        Ok(url.origin().ascii_serialization())
    }

    /// Billing is on: both Razorpay keys are set.
    pub fn enabled(&self) -> bool {
        self.key_id.is_some() && self.key_secret.is_some()
    }

    pub fn plan(&self, name: &str) -> Option<&PlanSettings> {
        self.plans.iter().find(|p| p.name == name)
    }

    pub fn plan_by_razorpay_id(&self, id: &str) -> Option<&PlanSettings> {
        self.plans.iter().find(|p| p.razorpay_plan_id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `chatter=debug,info`.
    pub level: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8000,
            debug: false,
            secret_key: None,
            allowed_hosts: vec![
                ".onrender.com".into(),
                "localhost".into(),
                "127.0.0.1".into(),
            ],
            shutdown_timeout_secs: 25,
            trust_proxy: false,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 768,
            public_url: None,
            metrics_token: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from("./data"),
            pool_size: 16,
            wait_timeout_ms: 2_000,
            create_timeout_ms: 5_000,
            recycle_timeout_ms: 1_000,
            migrate_parallelism: 8,
            statement_timeout_ms: 10_000,
            lock_timeout_ms: 2_000,
        }
    }
}

impl Default for TenancySettings {
    fn default() -> Self {
        Self {
            public_schema: "public_tenant".into(),
            public_name: "Public Tenant".into(),
            public_domain: None,
            cache_capacity: 100_000,
        }
    }
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            path: None,
            repo: "sentence-transformers/all-MiniLM-L6-v2".into(),
            revision: "main".into(),
            hf_home: None,
            endpoint: None,
            offline: false,
            threads: 0,
            max_batch: 32,
            batch_wait_ms: 2,
            queue_capacity: 256,
            wedged_after_secs: 30,
        }
    }
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            suggestion_margin: 0.10,
            max_suggestions: 3,
            max_message_chars: 2_000,
            question_cache_bytes: 16 * 1024 * 1024,
            index_cache_bytes: 64 * 1024 * 1024,
            group_commit_max: 64,
            visitor_messages_per_minute: 20,
            visitor_burst: 10,
            tenant_messages_per_minute: 3_000,
            tenant_burst: 300,
            summaries_per_minute: 6,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 24 * 60 * 60,
            max_age_secs: 30 * 24 * 60 * 60,
            login_attempts_per_minute: 10,
            password_changes_per_minute: 5,
            max_concurrent_hashes: 0,
            password_resets_per_hour: 5,
            reset_link_ttl_secs: 60 * 60,
            verify_link_ttl_secs: 7 * 24 * 60 * 60,
        }
    }
}

impl Default for SignupSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            per_address_per_hour: 10,
            per_email_per_hour: 5,
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            username: None,
            password: None,
            from: None,
            tls: SmtpTls::Starttls,
            ca_file: None,
            timeout_secs: 15,
        }
    }
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            api_base: "https://api.razorpay.com".into(),
            key_id: None,
            key_secret: None,
            webhook_secret: None,
            grace_days: 7,
            warn_percent: 80,
            total_count: 120,
            razorpay_calls_per_minute: 10,
            checkout_script_url: RAZORPAY_CHECKOUT_SCRIPT.into(),
            trial: TrialSettings::default(),
            plans: Vec::new(),
        }
    }
}

impl Default for TrialSettings {
    fn default() -> Self {
        Self {
            days: 14,
            faqs: Some(50),
            conversations_per_month: Some(500),
            members: Some(3),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Settings {
    /// Loads the settings: defaults, then the file (the named one, which must
    /// exist, or `./config.toml` when present), then `env`.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut settings = match file {
            Some(path) => Self::from_file(path)?,
            None => {
                let default_path = Path::new("config.toml");
                if default_path.exists() {
                    Self::from_file(default_path)?
                } else {
                    Self::default()
                }
            }
        };
        settings.apply_env(env)?;
        Ok(settings)
    }

    /// Loads with the process environment.
    pub fn from_process_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load(file, &env)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        if let Some(v) = get("SECRET_KEY") {
            self.server.secret_key = Some(Secret::new(v));
        }
        if let Some(v) = get("DEBUG") {
            self.server.debug = parse_bool("DEBUG", v)?;
        }
        if let Some(v) = get("ALLOWED_HOSTS") {
            self.server.allowed_hosts = split_list(v);
        }
        if let Some(v) = get("PORT") {
            self.server.port = parse_num("PORT", v, "a TCP port number")?;
        }
        if let Some(v) = get("CHATTER_HOST") {
            self.server.host = v.to_string();
        }
        if let Some(v) = get("CHATTER_TRUST_PROXY") {
            self.server.trust_proxy = parse_bool("CHATTER_TRUST_PROXY", v)?;
        }
        if let Some(v) = get("CHATTER_SHUTDOWN_TIMEOUT_SECS") {
            self.server.shutdown_timeout_secs =
                parse_num("CHATTER_SHUTDOWN_TIMEOUT_SECS", v, "a number of seconds")?;
        }
        if let Some(v) = get("CHATTER_METRICS_TOKEN") {
            self.server.metrics_token = Some(Secret::new(v));
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database.url = Some(Secret::new(v));
        }
        if let Some(v) = get("CHATTER_DATA_DIR") {
            self.database.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CHATTER_DB_POOL_SIZE") {
            self.database.pool_size = parse_num("CHATTER_DB_POOL_SIZE", v, "a positive number")?;
        }
        if let Some(v) = get("CHATTER_MIGRATE_PARALLELISM") {
            self.database.migrate_parallelism =
                parse_num("CHATTER_MIGRATE_PARALLELISM", v, "a positive number")?;
        }
        // Render sets RENDER_EXTERNAL_HOSTNAME; an explicit CHATTER_PUBLIC_DOMAIN wins.
        if let Some(v) = get("CHATTER_PUBLIC_DOMAIN").or_else(|| get("RENDER_EXTERNAL_HOSTNAME")) {
            self.tenancy.public_domain = Some(v.to_ascii_lowercase());
        }
        if let Some(v) = get("CHATTER_PUBLIC_SCHEMA") {
            self.tenancy.public_schema = v.to_string();
        }
        if let Some(v) = get("CHATTER_MODEL_PATH") {
            self.model.path = Some(PathBuf::from(v));
        }
        if let Some(v) = get("HF_HOME") {
            self.model.hf_home = Some(PathBuf::from(v));
        }
        if let Some(v) = get("HF_ENDPOINT") {
            self.model.endpoint = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) = get("HF_HUB_OFFLINE") {
            self.model.offline = parse_bool("HF_HUB_OFFLINE", v)?;
        }
        if let Some(v) = get("CHATTER_MODEL_THREADS") {
            self.model.threads = parse_num("CHATTER_MODEL_THREADS", v, "a number of threads")?;
        }
        if let Some(v) = get("CHATTER_PUBLIC_URL") {
            self.server.public_url = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) = get("CHATTER_SIGNUP_ENABLED") {
            self.signup.enabled = parse_bool("CHATTER_SIGNUP_ENABLED", v)?;
        }
        if let Some(v) = get("CHATTER_SMTP_HOST") {
            self.smtp.host = Some(v.to_string());
        }
        if let Some(v) = get("CHATTER_SMTP_PORT") {
            self.smtp.port = parse_num("CHATTER_SMTP_PORT", v, "a TCP port number")?;
        }
        if let Some(v) = get("CHATTER_SMTP_USERNAME") {
            self.smtp.username = Some(v.to_string());
        }
        if let Some(v) = env.get("CHATTER_SMTP_PASSWORD").filter(|v| !v.is_empty()) {
            // Not trimmed: a password may begin or end with a space.
            self.smtp.password = Some(Secret::new(v.as_str()));
        }
        if let Some(v) = get("CHATTER_SMTP_FROM") {
            self.smtp.from = Some(v.to_string());
        }
        if let Some(v) = get("CHATTER_SMTP_TLS") {
            self.smtp.tls = match v.to_ascii_lowercase().as_str() {
                "none" => SmtpTls::None,
                "starttls" => SmtpTls::Starttls,
                "tls" => SmtpTls::Tls,
                _ => {
                    return Err(ConfigError::Env {
                        name: "CHATTER_SMTP_TLS",
                        value: v.to_string(),
                        expected: "`none`, `starttls` or `tls`",
                    });
                }
            };
        }
        if let Some(v) = get("CHATTER_SMTP_CA_FILE") {
            self.smtp.ca_file = Some(PathBuf::from(v));
        }
        // Razorpay's keys: only ever from the environment.
        if let Some(v) = get("RAZORPAY_KEY_ID") {
            self.billing.key_id = Some(Secret::new(v));
        }
        if let Some(v) = get("RAZORPAY_KEY_SECRET") {
            self.billing.key_secret = Some(Secret::new(v));
        }
        if let Some(v) = get("RAZORPAY_WEBHOOK_SECRET") {
            self.billing.webhook_secret = Some(Secret::new(v));
        }
        if let Some(v) = get("CHATTER_RAZORPAY_API_BASE") {
            self.billing.api_base = v.trim_end_matches('/').to_string();
        }
        if let Some(v) = get("CHATTER_RAZORPAY_CHECKOUT_SCRIPT_URL") {
            self.billing.checkout_script_url = v.to_string();
        }
        if let Some(v) = get("CHATTER_LOG_FORMAT") {
            self.log.format = match v.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "CHATTER_LOG_FORMAT",
                        value: v.to_string(),
                        expected: "`text` or `json`",
                    });
                }
            };
        }
        if let Some(v) = get("CHATTER_LOG").or_else(|| get("RUST_LOG")) {
            self.log.level = v.to_string();
        }
        Ok(())
    }

    /// Checks what only matters for serving (the CLI's other commands need no secret).
    pub fn validate_for_serving(&self) -> Result<(), ConfigError> {
        if !self.server.debug && self.server.secret_key.is_none() {
            return Err(ConfigError::MissingSecretKey);
        }
        if self.smtp.enabled() {
            if self.smtp.from.is_none() {
                return Err(ConfigError::Mail(
                    "smtp.host is set but smtp.from is not: set CHATTER_SMTP_FROM to the \
                     sender's address (for example `Chatter <no-reply@example.com>`)",
                ));
            }
            if self.public_url().is_none() {
                return Err(ConfigError::Mail(
                    "smtp.host is set but the server does not know its public address for \
                     the links in mail: set CHATTER_PUBLIC_URL (for example \
                     `https://chat.example.com`)",
                ));
            }
        }
        self.billing.checkout_script_origin()?;
        self.validate_plans()
    }

    /// Plan names are unique and every limit is at least 1.
    pub fn validate_plans(&self) -> Result<(), ConfigError> {
        let billing = &self.billing;
        let bad = |message: String| ConfigError::Plans(message);
        let mut limits = vec![("trial".to_string(), billing.trial.limits())];
        for (i, plan) in billing.plans.iter().enumerate() {
            if plan.name.trim().is_empty() || plan.razorpay_plan_id.trim().is_empty() {
                return Err(bad(format!(
                    "billing.plans[{i}] needs a name and a razorpay_plan_id"
                )));
            }
            if billing.plans[..i].iter().any(|p| p.name == plan.name) {
                return Err(bad(format!("two plans are named {:?}", plan.name)));
            }
            limits.push((plan.name.clone(), plan.limits.clone()));
        }
        for (name, l) in limits {
            if [l.faqs, l.conversations_per_month, l.members].contains(&Some(0)) {
                return Err(bad(format!(
                    "plan {name:?}: a limit of 0 allows nothing; leave it out for no limit"
                )));
            }
        }
        Ok(())
    }

    /// The address people reach this server at, without a trailing slash:
    /// `server.public_url`, else `https://` and the public domain (Render's
    /// external host name). Never the request's `Host`: a link in a mail
    /// built from what a client sent could point anywhere.
    pub fn public_url(&self) -> Option<String> {
        self.server
            .public_url
            .as_ref()
            .map(|url| url.trim_end_matches('/').to_string())
            .or_else(|| {
                self.tenancy
                    .public_domain
                    .as_ref()
                    .map(|domain| format!("https://{domain}"))
            })
    }

    /// Allowed hosts plus the public domain, which is always served.
    pub fn effective_allowed_hosts(&self) -> Vec<String> {
        let mut hosts = self.server.allowed_hosts.clone();
        if let Some(domain) = &self.tenancy.public_domain {
            hosts.push(domain.clone());
        }
        hosts
    }
}

/// Django reads `DEBUG == "True"`; we also take the other usual spellings.
fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Env {
            name,
            value: value.to_string(),
            expected: "True or False",
        }),
    }
}

fn parse_num<T: FromStr>(
    name: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Env {
        name,
        value: value.to_string(),
        expected,
    })
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn environment_beats_file_beats_defaults() {
        let file = write_file("[server]\nport = 9000\ndebug = true\n[database]\npool_size = 3\n");
        let s = Settings::load(Some(file.path()), &env(&[("PORT", "7000")])).unwrap();
        assert_eq!(s.server.port, 7000);
        assert!(s.server.debug);
        assert_eq!(s.database.pool_size, 3);
        assert_eq!(s.database.wait_timeout_ms, 2_000);
    }

    #[test]
    fn guide_names_keep_their_meaning() {
        let s = Settings::load(
            Some(write_file("").path()),
            &env(&[
                ("DEBUG", "False"),
                ("SECRET_KEY", "s3cret"),
                ("DATABASE_URL", "postgres://u:p@db/x"),
                ("ALLOWED_HOSTS", "example.com, .example.org"),
                ("RENDER_EXTERNAL_HOSTNAME", "Chatter.onrender.com"),
            ]),
        )
        .unwrap();
        assert!(!s.server.debug);
        assert_eq!(s.server.secret_key.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(
            s.database.url.as_ref().unwrap().expose(),
            "postgres://u:p@db/x"
        );
        assert_eq!(s.server.allowed_hosts, vec!["example.com", ".example.org"]);
        assert_eq!(
            s.tenancy.public_domain.as_deref(),
            Some("chatter.onrender.com")
        );
        assert!(s.validate_for_serving().is_ok());
    }

    #[test]
    fn debug_off_without_secret_key_stops_serving() {
        let s = Settings::load(Some(write_file("").path()), &env(&[("DEBUG", "False")])).unwrap();
        let err = s.validate_for_serving().unwrap_err();
        assert!(err.to_string().contains("SECRET_KEY is not set"));
        let s = Settings::load(Some(write_file("").path()), &env(&[("DEBUG", "True")])).unwrap();
        assert!(s.validate_for_serving().is_ok());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = Settings::load(
            Some(write_file("").path()),
            &env(&[
                ("SECRET_KEY", "hunter2"),
                ("DATABASE_URL", "postgres://u:pw1@h/d"),
            ]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw1"),
            "{shown}"
        );
    }

    #[test]
    fn smtp_comes_from_the_environment_and_its_password_never_from_a_file() {
        let s = Settings::load(
            Some(write_file("[smtp]\nport = 2525\nca_file = \"/etc/file-ca.pem\"\n").path()),
            &env(&[
                ("CHATTER_SMTP_HOST", "mail.example.com"),
                ("CHATTER_SMTP_CA_FILE", "/etc/chatter/relay-ca.pem"),
                ("CHATTER_SMTP_USERNAME", "chatter"),
                ("CHATTER_SMTP_PASSWORD", " pa ss "),
                ("CHATTER_SMTP_FROM", "Chatter <no-reply@example.com>"),
                ("CHATTER_SMTP_TLS", "TLS"),
                ("CHATTER_SIGNUP_ENABLED", "true"),
                ("CHATTER_PUBLIC_URL", "https://chat.example.com/"),
                ("DEBUG", "True"),
            ]),
        )
        .unwrap();
        assert!(s.smtp.enabled() && s.signup.enabled);
        assert_eq!(s.smtp.port, 2525);
        assert_eq!(
            s.smtp.ca_file.as_deref(),
            Some(Path::new("/etc/chatter/relay-ca.pem"))
        );
        assert_eq!(s.smtp.tls, SmtpTls::Tls);
        assert_eq!(s.smtp.password.as_ref().unwrap().expose(), " pa ss ");
        assert_eq!(s.public_url().as_deref(), Some("https://chat.example.com"));
        assert!(s.validate_for_serving().is_ok());
        assert!(!format!("{s:?}").contains("pa ss"));
        let err = Settings::load(
            Some(write_file("[smtp]\npassword = \"x\"\n").path()),
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
        let err = Settings::load(
            Some(write_file("").path()),
            &env(&[("CHATTER_SMTP_TLS", "ssl")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CHATTER_SMTP_TLS"), "{err}");
    }

    /// Mail needs a sender and an address for its links; the public
    /// domain (Render's host name) is one.
    #[test]
    fn mail_without_a_sender_or_a_public_address_stops_serving() {
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("DEBUG", "True"), ("CHATTER_SMTP_HOST", "localhost")];
            all.extend_from_slice(pairs);
            Settings::load(Some(write_file("").path()), &env(&all)).unwrap()
        };
        let err = load(&[("CHATTER_PUBLIC_URL", "http://x.example")])
            .validate_for_serving()
            .unwrap_err();
        assert!(err.to_string().contains("CHATTER_SMTP_FROM"), "{err}");
        let err = load(&[("CHATTER_SMTP_FROM", "a@example.com")])
            .validate_for_serving()
            .unwrap_err();
        assert!(err.to_string().contains("CHATTER_PUBLIC_URL"), "{err}");
        let s = load(&[
            ("CHATTER_SMTP_FROM", "a@example.com"),
            ("RENDER_EXTERNAL_HOSTNAME", "chatter.onrender.com"),
        ]);
        assert!(s.validate_for_serving().is_ok());
        assert_eq!(
            s.public_url().as_deref(),
            Some("https://chatter.onrender.com")
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err =
            Settings::load(Some(write_file("").path()), &env(&[("PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
        let err =
            Settings::load(Some(write_file("[server]\nprot = 1\n").path()), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        let err =
            Settings::load(Some(Path::new("/nonexistent/chatter.toml")), &env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/chatter.toml"),
            "{err}"
        );
    }

    /// config.toml documents every setting as a commented `# key = value`
    /// line: uncommented, those lines must parse and give the defaults.
    #[test]
    fn committed_config_toml_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let setting = regex_lite_setting();
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if setting(rest) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file = write_file(&uncommented);
        let from_file = Settings::load(Some(file.path()), &env(&[])).unwrap();
        assert_eq!(
            format!("{from_file:?}"),
            format!("{:?}", Settings::default())
        );
        // And every default field is documented.
        for key in [
            "host",
            "port",
            "debug",
            "allowed_hosts",
            "shutdown_timeout_secs",
            "trust_proxy",
            "header_read_timeout_secs",
            "request_timeout_secs",
            "max_connections",
            "data_dir",
            "pool_size",
            "wait_timeout_ms",
            "create_timeout_ms",
            "recycle_timeout_ms",
            "migrate_parallelism",
            "statement_timeout_ms",
            "lock_timeout_ms",
            "public_schema",
            "public_name",
            "cache_capacity",
            "repo",
            "revision",
            "offline",
            "threads",
            "max_batch",
            "batch_wait_ms",
            "queue_capacity",
            "wedged_after_secs",
            "suggestion_margin",
            "max_suggestions",
            "max_message_chars",
            "question_cache_bytes",
            "index_cache_bytes",
            "group_commit_max",
            "visitor_messages_per_minute",
            "visitor_burst",
            "tenant_messages_per_minute",
            "tenant_burst",
            "summaries_per_minute",
            "idle_timeout_secs",
            "max_age_secs",
            "login_attempts_per_minute",
            "password_changes_per_minute",
            "max_concurrent_hashes",
            "password_resets_per_hour",
            "reset_link_ttl_secs",
            "verify_link_ttl_secs",
            "enabled",
            "per_address_per_hour",
            "per_email_per_hour",
            "tls",
            "timeout_secs",
            "api_base",
            "grace_days",
            "warn_percent",
            "total_count",
            "days",
            "faqs",
            "conversations_per_month",
            "members",
            "format",
            "level",
        ] {
            assert!(
                uncommented
                    .lines()
                    .any(|l| l.starts_with(&format!("{key} = "))),
                "{key} undocumented"
            );
        }
    }

    /// The README's configuration table names every setting.
    #[test]
    fn readme_documents_every_setting() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let keys = [
            "server.host",
            "server.port",
            "server.debug",
            "server.secret_key",
            "server.allowed_hosts",
            "server.shutdown_timeout_secs",
            "server.trust_proxy",
            "server.header_read_timeout_secs",
            "server.request_timeout_secs",
            "server.max_connections",
            "database.url",
            "database.data_dir",
            "database.pool_size",
            "database.wait_timeout_ms",
            "database.create_timeout_ms",
            "database.recycle_timeout_ms",
            "database.migrate_parallelism",
            "database.statement_timeout_ms",
            "database.lock_timeout_ms",
            "tenancy.public_schema",
            "tenancy.public_name",
            "tenancy.public_domain",
            "tenancy.cache_capacity",
            "model.path",
            "model.repo",
            "model.revision",
            "model.hf_home",
            "model.endpoint",
            "model.offline",
            "model.threads",
            "model.max_batch",
            "model.batch_wait_ms",
            "model.queue_capacity",
            "model.wedged_after_secs",
            "server.metrics_token",
            "chat.suggestion_margin",
            "chat.max_suggestions",
            "chat.max_message_chars",
            "chat.question_cache_bytes",
            "chat.index_cache_bytes",
            "chat.group_commit_max",
            "chat.visitor_messages_per_minute",
            "chat.visitor_burst",
            "chat.tenant_messages_per_minute",
            "chat.tenant_burst",
            "chat.summaries_per_minute",
            "auth.idle_timeout_secs",
            "auth.max_age_secs",
            "auth.login_attempts_per_minute",
            "auth.password_changes_per_minute",
            "auth.max_concurrent_hashes",
            "auth.password_resets_per_hour",
            "auth.reset_link_ttl_secs",
            "auth.verify_link_ttl_secs",
            "server.public_url",
            "signup.enabled",
            "signup.per_address_per_hour",
            "signup.per_email_per_hour",
            "smtp.host",
            "smtp.port",
            "smtp.username",
            "smtp.from",
            "smtp.tls",
            "smtp.ca_file",
            "smtp.timeout_secs",
            "billing.api_base",
            "billing.grace_days",
            "billing.warn_percent",
            "billing.total_count",
            "billing.razorpay_calls_per_minute",
            "billing.checkout_script_url",
            "billing.plans",
            "billing.trial.days",
            "billing.trial.faqs",
            "billing.trial.conversations_per_month",
            "billing.trial.members",
            "log.format",
            "log.level",
        ];
        // Every key parses as a setting: a renamed field fails here too.
        for key in keys {
            let (section, field) = key.split_once('.').unwrap();
            // An empty table is valid TOML and the wrong type for every
            // setting: known fields fail on the type, unknown ones by name.
            let probe = format!("[{section}]\n{field} = {{}}\n");
            let err = toml::from_str::<Settings>(&probe)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                !err.contains("unknown field"),
                "{key} is not a setting: {err}"
            );
            assert!(
                readme.contains(&format!("| `{key}` |")),
                "README's configuration table lacks {key}"
            );
        }
    }

    fn regex_lite_setting() -> impl Fn(&str) -> bool {
        |s: &str| {
            let Some((key, _)) = s.split_once(" = ") else {
                return false;
            };
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        }
    }

    #[test]
    fn the_checkout_script_is_https_or_a_loopback_stand_in() {
        let origin = |url: &str| {
            BillingSettings {
                checkout_script_url: url.into(),
                ..BillingSettings::default()
            }
            .checkout_script_origin()
            .ok()
        };
        assert_eq!(
            origin(RAZORPAY_CHECKOUT_SCRIPT).as_deref(),
            Some("https://checkout.razorpay.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:4100/v1/checkout.js").as_deref(),
            Some("http://127.0.0.1:4100")
        );
        for bad in [
            "http://checkout.example.com/checkout.js",
            "javascript:alert(1)",
            "not a url",
            "https://user@checkout.example.com/x.js",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }
}
