//! API and integration tests: one binary, real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod analytics;
mod auth;
mod backup;
mod billing;
mod chat;
mod citus;
mod clarify;
mod cli;
mod cli_eval;
mod client_api;
mod console;
mod conversations;
mod embedded;
mod faq_tools;
mod group_commit;
mod health;
mod helpers;
mod index_budget;
mod isolation;
mod matcher_store;
mod members;
mod metrics;
mod migrations;
mod openapi;
mod question_cache;
mod real_model;
mod routing;
mod session;
mod signup;
#[path = "../support/smtp_sink.rs"]
mod smtp_sink;
mod tls;
mod tls_self_signed;
mod widget;
