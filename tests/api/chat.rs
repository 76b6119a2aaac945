//! `POST /api/chat` with the hashing test double: validation, storage,
//! sessions, the 503 paths. Matching quality is tested with the real model
//! in `real_model`.

use std::sync::Arc;

use chatter::app::ModelChoice;
use chatter::engine::Engine;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with_model};

async fn app_with_faqs() -> TestApp {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    app.import_faqs(
        "shop",
        &[
            (
                "What are your opening hours?",
                "We are open 9 to 5, Monday to Friday.",
            ),
            (
                "How do I return an item?",
                "Send it back within 30 days for a full refund.",
            ),
        ],
    )
    .await;
    app
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let client = app.pool.get().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_question_gets_its_faqs_answer_and_is_stored() {
    let app = app_with_faqs().await;
    let (status, body) = app
        .chat("shop", json!({"message": "what are your opening hours"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], true);
    assert_eq!(body["reply"], "We are open 9 to 5, Monday to Friday.");
    assert!(body["faq_id"].as_i64().is_some());
    let session = body["session_id"].as_str().unwrap().to_string();
    assert_eq!(session.len(), 32, "128 bits as hex");

    // The same session continues the same conversation.
    let (status, body) = app
        .chat("shop", json!({"session_id": session, "message": "zzz qqq"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["session_id"], session);
    assert_eq!(body["matched"], false);
    assert!(
        body["reply"].as_str().unwrap().starts_with("Sorry"),
        "{body}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM shop.conversations").await,
        1
    );
    assert_eq!(count(&app, "SELECT count(*) FROM shop.messages").await, 4);
    assert_eq!(
        count(&app, "SELECT count(*) FROM shop.messages WHERE role = 'bot' AND faq_id IS NOT NULL AND score > 0").await,
        1
    );

    // An unknown or forged session id starts a new conversation with a new id.
    let (_, body) = app
        .chat(
            "shop",
            json!({"session_id": "0123456789abcdef0123456789abcdef", "message": "hours?"}),
        )
        .await;
    assert_ne!(body["session_id"], "0123456789abcdef0123456789abcdef");
    let (_, body) = app
        .chat(
            "shop",
            json!({"session_id": "x'; DROP TABLE messages; --", "message": "hours?"}),
        )
        .await;
    assert_eq!(body["session_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        count(&app, "SELECT count(*) FROM shop.conversations").await,
        3
    );
}

#[tokio::test]
async fn near_misses_come_with_suggestions() {
    let app = app_with_faqs().await;
    // Shares some words with one FAQ: below the threshold, within the margin.
    let client = app.pool.get().await.unwrap();
    client
        .batch_execute("UPDATE shop.bot_config SET match_threshold = 0.7")
        .await
        .unwrap();
    drop(client);
    let (status, body) = app.chat("shop", json!({"message": "your hours"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["matched"], false, "{body}");
    assert_eq!(
        body["suggestions"][0], "What are your opening hours?",
        "{body}"
    );
}

#[tokio::test]
async fn bad_input_is_400_and_nothing_is_stored() {
    let app = app_with_faqs().await;
    let long = "x".repeat(2001);
    for body in [
        json!({"message": ""}),
        json!({"message": "   "}),
        json!({"message": long}),
        json!({"message": 42}),
        json!({"msg": "hi"}),
        json!({"message": "hi", "extra": true}),
        json!({"message": "hi", "session_id": 7}),
        json!(["message"]),
    ] {
        let (status, reply) = app.chat("shop", body.clone()).await;
        assert_eq!(status, 400, "{body} → {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
    }
    let response = app
        .post("/api/chat")
        .header("X-Client-ID", "shop")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "bad_request");
    assert_eq!(count(&app, "SELECT count(*) FROM shop.messages").await, 0);
    // 2,000 characters is still fine.
    let (status, _) = app.chat("shop", json!({"message": "x".repeat(2000)})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn chat_is_503_with_retry_after_until_the_model_is_ready() {
    let engine = Arc::new(Engine::loading());
    let app = spawn_app_with_model(|_| {}, ModelChoice::Given(Arc::clone(&engine))).await;
    app.create_tenant("early", "Early", None).await;
    let healthz = app.get("/healthz").send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let readyz = app.get("/readyz").send().await.unwrap();
    assert_eq!(readyz.status(), 503);
    let response = app
        .post("/api/chat")
        .header("X-Client-ID", "early")
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_loading");

    let ready = crate::helpers::hashing_engine().queue().unwrap();
    engine.set_ready(ready);
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);
    let (status, _) = app.chat("early", json!({"message": "hello"})).await;
    assert_eq!(status, 200);

    engine.set_failed("weights are corrupt".into());
    let (status, body) = app.chat("early", json!({"message": "hello"})).await;
    assert_eq!(status, 503);
    assert!(
        !body.to_string().contains("corrupt"),
        "internal detail leaked: {body}"
    );
}

#[tokio::test]
async fn a_faq_change_is_answered_at_once() {
    let app = app_with_faqs().await;
    let (_, body) = app
        .chat("shop", json!({"message": "do you ship abroad"}))
        .await;
    assert_eq!(body["matched"], false);
    app.import_faqs("shop", &[("Do you ship abroad?", "Yes, to 40 countries.")])
        .await;
    // The import's NOTIFY reaches the server's index cache.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let (_, body) = app
            .chat("shop", json!({"message": "do you ship abroad"}))
            .await;
        if body["matched"] == true {
            assert_eq!(body["reply"], "Yes, to 40 countries.");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new FAQ was not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An embedder slow enough to keep a request in flight.
struct Slow(chatter::engine::hashing::HashingEmbedder);

impl chatter::engine::Embedder for Slow {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, chatter::engine::EmbedError> {
        std::thread::sleep(std::time::Duration::from_millis(800));
        self.0.embed(texts)
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn model_id(&self) -> &str {
        "test/slow"
    }
}

#[tokio::test]
async fn a_graceful_stop_finishes_50_requests_in_flight() {
    let queue = chatter::engine::worker::EmbeddingQueue::start(
        Arc::new(Slow(Default::default())),
        chatter::engine::worker::WorkerSettings {
            max_batch: 32,
            batch_wait: std::time::Duration::from_millis(1),
            queue_capacity: 64,
        },
        Arc::default(),
    )
    .unwrap();
    let app =
        spawn_app_with_model(|_| {}, ModelChoice::Given(Arc::new(Engine::ready(queue)))).await;
    app.create_tenant("inflight", "In Flight", None).await;
    let requests: Vec<_> = (0..50)
        .map(|i| {
            let request = app
                .post("/api/chat")
                .header("X-Client-ID", "inflight")
                .json(&json!({"message": format!("question {i}")}));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let addr = app.addr.clone();
    // Stop while all fifty are in flight (two batches of the slow model): stop waits for them.
    app.stop().await;
    for request in requests {
        assert_eq!(
            request.await.unwrap().unwrap(),
            200,
            "a request in flight failed"
        );
    }
    assert!(
        reqwest::get(format!("{addr}/healthz")).await.is_err(),
        "the server still accepts connections after stopping"
    );
}

/// A visitor who gives up while the tenant's new FAQs are being embedded
/// does not cancel the embedding: the vectors are stored and the index
/// kept, so the next visitor does not start again from nothing. Before,
/// the build ran inside the request and died with it (bench/citus.sh's
/// chat runs answered nothing: each wrk run ended, and so cancelled, the
/// build the next run began again).
#[tokio::test]
async fn a_visitor_who_gives_up_does_not_cancel_the_faq_embedding() {
    let queue = chatter::engine::worker::EmbeddingQueue::start(
        Arc::new(Slow(Default::default())),
        chatter::engine::worker::WorkerSettings {
            max_batch: 32,
            batch_wait: std::time::Duration::from_millis(1),
            queue_capacity: 64,
        },
        Arc::default(),
    )
    .unwrap();
    let app =
        spawn_app_with_model(|_| {}, ModelChoice::Given(Arc::new(Engine::ready(queue)))).await;
    app.create_tenant("patient", "Patient", None).await;
    app.import_faqs(
        "patient",
        &[
            ("When do you open?", "At nine."),
            ("Do you deliver?", "Yes, in two days."),
        ],
    )
    .await;
    let embedded = "SELECT count(*) FROM patient.faqs WHERE embedding IS NOT NULL";
    assert_eq!(
        count(&app, embedded).await,
        0,
        "an import stores no vectors"
    );

    // The slow model takes 800 ms a batch; the visitor waits 200 ms.
    let gave_up = app
        .post("/api/chat")
        .header("X-Client-ID", "patient")
        .timeout(std::time::Duration::from_millis(200))
        .json(&json!({"message": "when do you open"}))
        .send()
        .await;
    assert!(
        gave_up.as_ref().is_err_and(|e| e.is_timeout()),
        "{gave_up:?}"
    );

    let schema = chatter::tenancy::SchemaName::parse("patient").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while count(&app, embedded).await < 2 || !app.state.answerer.index_cached(&schema) {
        assert!(
            std::time::Instant::now() < deadline,
            "the embedding died with the request: {} of 2 FAQs have vectors",
            count(&app, embedded).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.state.answerer.index_cache_stats().builds, 1);
}
