//! API and integration tests: one binary, real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod auth;
mod backup;
mod chat;
mod citus;
mod cli;
mod client_api;
mod console;
mod conversations;
mod embedded;
mod health;
mod helpers;
mod isolation;
mod metrics;
mod migrations;
mod openapi;
mod real_model;
mod routing;
mod tls;
mod tls_self_signed;
mod widget;
