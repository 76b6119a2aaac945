use std::time::{Duration, Instant};

use chatter::app::{Application, StartupError};
use chatter::config::ConfigError;

use crate::helpers::{TestDb, error_code, spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn healthz_answers_any_host_without_the_database() {
    let app = spawn_app().await;
    let response = app
        .get("/healthz")
        .header("Host", "10.0.0.7:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_200_with_the_database_up() {
    let app = spawn_app().await;
    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], true);
}

#[tokio::test]
async fn a_host_that_is_not_allowed_gets_400() {
    let app = spawn_app().await;
    let response = app
        .get("/api/widget/config")
        .header("Host", "evil.example")
        .header("X-Client-ID", "public_tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "disallowed_host");
}

#[tokio::test]
async fn debug_off_without_secret_key_refuses_to_start() {
    let db = TestDb::create().await;
    let mut settings = test_settings(&db);
    settings.server.debug = false;
    settings.server.secret_key = None;
    let err = Application::build(settings)
        .await
        .err()
        .expect("start-up refused");
    assert!(
        matches!(err, StartupError::Config(ConfigError::MissingSecretKey)),
        "{err}"
    );
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_promptly() {
    let app = spawn_app_with(|s| {
        s.database.pool_size = 1;
        s.database.wait_timeout_ms = 200;
    })
    .await;
    app.create_tenant("busy_co", "Busy", None).await;
    let held = app.state.db.shared().await.unwrap();
    let started = Instant::now();
    let response = app
        .get("/api/widget/config")
        .header("X-Client-ID", "busy_co")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(5), "the pool hung");
    drop(held);
    let response = app
        .get("/api/widget/config")
        .header("X-Client-ID", "busy_co")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
