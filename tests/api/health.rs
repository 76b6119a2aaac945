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

/// Blocks every batch until the test lets it go: a model stuck in a loop.
struct Stuck {
    inner: chatter::engine::hashing::HashingEmbedder,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl chatter::engine::Embedder for Stuck {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, chatter::engine::EmbedError> {
        let _ = self
            .release
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv();
        self.inner.embed(texts)
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn model_id(&self) -> &str {
        "test/stuck"
    }
}

/// A wedged inference thread cannot answer chat: `/readyz` says so (503,
/// `"model": "wedged"`) so the load balancer sends visitors elsewhere, and
/// says ready again once it moves (issue 16, item 11).
#[tokio::test]
async fn readyz_is_503_while_the_inference_thread_is_wedged() {
    let (release, released) = std::sync::mpsc::channel();
    let queue = chatter::engine::worker::EmbeddingQueue::start(
        std::sync::Arc::new(Stuck {
            inner: Default::default(),
            release: std::sync::Mutex::new(released),
        }),
        chatter::engine::worker::WorkerSettings {
            max_batch: 32,
            batch_wait: Duration::from_millis(1),
            queue_capacity: 64,
        },
        std::sync::Arc::default(),
    )
    .unwrap();
    let engine = std::sync::Arc::new(chatter::engine::Engine::ready(queue));
    let app = crate::helpers::spawn_app_with_model(
        |s| s.model.wedged_after_secs = 1,
        chatter::app::ModelChoice::Given(engine),
    )
    .await;
    let readiness = || async {
        let response = app.get("/readyz").send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (
            status,
            body["model"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(readiness().await, (200, "ready".to_string()));

    app.create_tenant("stuck", "Stuck", None).await;
    let chat = app
        .post("/api/chat")
        .header("X-Client-ID", "stuck")
        .json(&serde_json::json!({"message": "hello"}))
        .send();
    let chat = tokio::spawn(chat);
    // Busy for less than the limit: still ready.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(readiness().await, (200, "ready".to_string()));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(readiness().await, (503, "wedged".to_string()));

    // The batch finishes: ready again, and the chat was answered.
    drop(release);
    assert_eq!(chat.await.unwrap().unwrap().status(), 200);
    assert_eq!(readiness().await, (200, "ready".to_string()));
}
