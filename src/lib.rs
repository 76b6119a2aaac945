//! Chatter: a multi-tenant FAQ chatbot platform in one binary.
//!
//! Where to look first:
//! - **The door to the data** is `db::door`: `Db` holds the pool privately;
//!   `db.tenant(&schema)` opens a `TenantTx` (the tenant's schema alone on
//!   its `search_path`), `db.shared()` / `db.shared_tx()` reach the public
//!   tables. Nothing else touches a pool or a raw client.
//! - **The error table** is `error_kind` (each module's error says its
//!   `Kind` in an exhaustive `impl Classify`) and `error.rs` (a kind
//!   becomes a status and a JSON body, in one place).
//! - **The chat use case** is `chat::Answerer`: check, embed, decide, store;
//!   the HTTP route, `chatter ask` and the console share it.
//!
//! The modules:
//! - `config`: typed settings (defaults < config.toml < environment).
//! - `app`: `Application`, what `chatter serve` runs; `cli`: the commands
//!   (`args` for clap, one file per command group, `output` for printing);
//!   `serve`: the accept loop with its timeouts and connection cap.
//! - `http`: the router; `http::state::AppState`, the handles every request
//!   shares; `http::layers`, `http::extract` (who is asking, in which
//!   tenant), `http::routes` (one file per route group); `error`: errors
//!   become responses.
//! - `db`: the door (`Db`, `TenantTx`, `Shared`), `SchemaName`, the pool,
//!   the embedded PostgreSQL, migrations, TLS.
//! - `tenancy`: tenant routing (`TenantResolver`), provisioning and the
//!   `public.tenants` / `public.domains` tables, change events.
//! - `auth`: accounts, passwords, sign-in tokens, mailed links
//!   (`auth::recovery`: address verification, password reset).
//! - `signup`: a business makes its own tenant and owner (all or nothing);
//!   `mail`: the SMTP `Mailer`.
//! - `billing`: plans, monthly usage, Razorpay subscriptions and webhooks;
//!   what each tenant may do now, cached.
//! - `bot_config`: a tenant's bot settings, cached; `origins`: which sites
//!   may use the widget (CORS), per tenant and across tenants.
//! - `engine`: the embedding model, its batching worker, the FAQ index.
//! - `faq`: a tenant's knowledge base; `matcher_store`: its learned
//!   matcher's weights, kept; `faq_health`: which FAQs the bot
//!   confuses; `chat`: answering and storing;
//!   `conversations`: reading them back; `analytics`: the numbers.
//! - `eval`: answer quality on a labelled data set (`chatter eval FILE`);
//!   `tenant_eval`: an owner's labelled questions asked of a live tenant
//!   (`chatter eval SCHEMA FILE`).
//! - `backup`: one tenant as one portable JSON file, exported and imported.
//! - `cache`: the invalidation-safe map behind every cache;
//!   `rate_limit`: token buckets and the sign-in and chat limits.
//! - `metrics`: the Prometheus registry behind `GET /metrics`.
//! - `console`: `chatter console`, the operator's terminal UI.
// Unsafe only where a dependency forces it (the gemm kernels of `engine::minilm`).
#![deny(unsafe_code)]

pub mod analytics;
pub mod app;
pub mod auth;
pub mod backup;
pub mod billing;
pub mod bot_config;
pub mod cache;
pub mod chat;
pub mod citus;
pub mod cli;
pub mod config;
pub mod console;
pub mod conversations;
pub mod db;
pub mod engine;
pub mod error;
pub mod error_kind;
pub mod eval;
pub mod faq;
pub mod faq_health;
pub mod http;
pub mod mail;
pub mod matcher_store;
pub mod metrics;
pub mod origins;
pub mod rate_limit;
pub mod serve;
pub mod signup;
pub mod telemetry;
pub mod tenancy;
pub mod tenant_eval;
