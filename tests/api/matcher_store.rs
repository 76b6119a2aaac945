//! The learned matcher's stored weights (issue 14, tenant migration V7): a
//! restarted server answers with them without training, weights trained on
//! other FAQs (a stale fingerprint) or by another model are trained again,
//! and the chat never waits for a training.

use std::time::Duration;

use chatter::config::Secret;
use chatter::faq::{self, NewFaq};
use chatter::tenancy::SchemaName;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

const TENANT: &str = "weights";
const SCRAPE_TOKEN: &str = "scrape-token-for-weights";

/// Five FAQs of four texts each (question, two alternatives, answer): data
/// enough for a learned matcher.
async fn app_with_faqs() -> TestApp {
    let app = spawn_app_with(|s| s.server.metrics_token = Some(Secret::new(SCRAPE_TOKEN))).await;
    app.create_tenant(TENANT, "Weights", None).await;
    let topics = ["hours", "shipping", "returns", "payment", "parking"];
    let faqs: Vec<NewFaq> = topics
        .iter()
        .map(|t| NewFaq {
            question: format!("What about {t}?"),
            answer: format!("All about {t}."),
            alternatives: vec![format!("Tell me about {t}"), format!("{t} please")],
        })
        .collect();
    faq::import(
        &app.handle,
        &SchemaName::parse(TENANT).unwrap(),
        &faqs,
        None,
    )
    .await
    .unwrap();
    app
}

async fn ask(app: &TestApp) -> serde_json::Value {
    let (status, body) = app
        .chat(TENANT, json!({"message": "Tell me about shipping"}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asks until a learned matcher ranks (training ends in the background).
async fn until_learned(app: &TestApp) -> serde_json::Value {
    for _ in 0..100 {
        let body = ask(app).await;
        if body["confidence"].is_number() {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the matcher was never trained");
}

/// The stored row: model id, fingerprint, weights' bytes.
async fn stored(app: &TestApp) -> Option<(String, Vec<u8>, usize)> {
    let client = app.pool.get().await.unwrap();
    client
        .query_opt(
            &format!("SELECT model_id, fingerprint, weights FROM {TENANT}.matcher_weights"),
            &[],
        )
        .await
        .unwrap()
        .map(|row| {
            let weights: Vec<u8> = row.get(2);
            (row.get(0), row.get(1), weights.len())
        })
}

/// `chatter_matcher_trainings` and `chatter_matcher_loads` on /metrics.
async fn scraped(app: &TestApp) -> (u64, u64) {
    let body = app
        .get("/metrics")
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {body}"))
    };
    (
        value("chatter_matcher_trainings"),
        value("chatter_matcher_loads"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_answers_with_the_stored_matcher_without_training() {
    let mut app = app_with_faqs().await;
    assert!(stored(&app).await.is_none());
    // No weights yet: the first question is answered at once by the
    // nearest phrasing, and the head is trained in the background.
    let first = ask(&app).await;
    assert!(first["confidence"].is_null(), "{first}");
    assert_eq!(first["reply"], "All about shipping.");
    let learned = until_learned(&app).await;
    assert_eq!(app.state.answerer.matcher_stats().trained, 1);
    let (model_id, fingerprint, bytes) = stored(&app).await.expect("weights stored");
    assert_eq!(model_id, app.state.engine.queue().unwrap().model_id());
    assert_eq!(fingerprint.len(), 32);
    let dim = app.state.engine.queue().unwrap().dim();
    assert_eq!(bytes, 5 * (dim + 1) * 2, "half precision, 5 FAQs");

    app.restart().await;
    assert_eq!(scraped(&app).await, (0, 0));
    // The first question after the restart is ranked by the stored head.
    let again = ask(&app).await;
    assert_eq!(again["confidence"], learned["confidence"], "{again}");
    assert_eq!(again["outcome"], learned["outcome"]);
    assert_eq!(scraped(&app).await, (0, 1), "loaded, not trained");
    // Long after: nothing was trained in the background either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ask(&app).await;
    assert_eq!(app.state.answerer.matcher_stats().trained, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_of_other_faqs_or_another_model_are_trained_again() {
    let mut app = app_with_faqs().await;
    until_learned(&app).await;
    let (model_id, fingerprint, _) = stored(&app).await.unwrap();

    // Weights fitted on other FAQs (as after an edit the server missed).
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            &format!("UPDATE {TENANT}.matcher_weights SET fingerprint = '\\x00'"),
            &[],
        )
        .await
        .unwrap();
    app.restart().await;
    let first = ask(&app).await;
    assert!(
        first["confidence"].is_null(),
        "stale weights unused: {first}"
    );
    until_learned(&app).await;
    // Trained once, then loaded by the build its end caused.
    let stats = app.state.answerer.matcher_stats();
    assert_eq!((stats.trained, stats.loaded), (1, 1), "{stats:?}");
    assert_eq!(stored(&app).await.unwrap().1, fingerprint, "stored again");

    // Weights of another model are not used either.
    client
        .execute(
            &format!("UPDATE {TENANT}.matcher_weights SET model_id = 'another/model@main'"),
            &[],
        )
        .await
        .unwrap();
    app.restart().await;
    let first = ask(&app).await;
    assert!(first["confidence"].is_null(), "another model's: {first}");
    until_learned(&app).await;
    assert_eq!(app.state.answerer.matcher_stats().trained, 1);
    assert_eq!(stored(&app).await.unwrap().0, model_id);

    // A FAQ edit retrains on the running server; the stored fingerprint
    // follows the FAQs.
    let schema = SchemaName::parse(TENANT).unwrap();
    let id = faq::list(&app.handle, &schema).await.unwrap()[0].id;
    faq::add_phrasing(&app.handle, &schema, id, "opening times")
        .await
        .unwrap();
    for _ in 0..100 {
        if stored(&app).await.is_some_and(|s| s.1 != fingerprint) {
            break;
        }
        ask(&app).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(stored(&app).await.unwrap().1, fingerprint, "retrained");
    until_learned(&app).await;
    app.stop().await;
}
