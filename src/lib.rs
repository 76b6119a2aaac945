//! Chatter: a multi-tenant FAQ chatbot platform in one binary.
//!
//! - `config`: typed settings (defaults < config.toml < environment).
//! - `app`: `Application`, what `chatter serve` runs; `cli`: the commands;
//!   `serve`: the accept loop with its timeouts and connection cap.
//! - `auth`: accounts, passwords, sign-in tokens.
//! - `http`: router, layers and routes; `error`: errors become responses.
//! - `state`: the handles every request shares.
//! - `tenancy`: schema names, tenant routing, provisioning, `TenantTx`.
//! - `db`: the pool, the embedded PostgreSQL, migrations.
//! - `bot_config`: a tenant's bot settings, cached; `origins`: which sites
//!   may use the widget (CORS), per tenant and across tenants.
//! - `engine`: the embedding model, its batching worker, the FAQ index.
//! - `faq`: a tenant's knowledge base; `chat`: answering and storing;
//!   `conversations`: reading them back; `analytics`: the numbers.
//! - `backup`: one tenant as one portable JSON file, exported and imported.
//! - `cache`: the invalidation-safe map behind every cache;
//!   `rate_limit`: token buckets (sign-in attempts, chat fair use).
//! - `metrics`: the Prometheus registry behind `GET /metrics`.
//! - `console`: `chatter console`, the operator's terminal UI.
// Unsafe only where a dependency forces it (the gemm kernels of `engine::minilm`).
#![deny(unsafe_code)]

pub mod analytics;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bot_config;
pub mod cache;
pub mod chat;
pub mod cli;
pub mod config;
pub mod console;
pub mod conversations;
pub mod db;
pub mod engine;
pub mod error;
pub mod faq;
pub mod http;
pub mod metrics;
pub mod origins;
pub mod rate_limit;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod tenancy;
