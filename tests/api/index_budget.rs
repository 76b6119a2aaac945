//! The FAQ index cache's memory budget (issue 17): beyond
//! `chat.index_cache_bytes` the least recently used tenant's index is
//! dropped; that tenant still answers (its index rebuilt from the vectors
//! stored with its FAQs, with no inference), an FAQ change still reaches
//! it, and the cache never holds more than the budget.

use chatter::config::Secret;
use chatter::engine::index::{FaqIndex, FaqVectors, IndexedFaq};
use chatter::faq::{self, NewFaq};
use chatter::tenancy::SchemaName;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

/// Each tenant's FAQs: the same lengths everywhere, so every tenant's index
/// takes the same bytes.
fn faqs(tenant: &str) -> Vec<(String, String)> {
    [
        "When do you open?",
        "Do you ship abroad?",
        "Can I pay by card?",
    ]
    .iter()
    .enumerate()
    .map(|(i, q)| (q.to_string(), format!("{tenant} answer {i}")))
    .collect()
}

/// The heap bytes of one tenant's index, built as the server builds it
/// (the hashing model's 384 dimensions; question and answer rows).
fn index_bytes(tenant: &str) -> usize {
    let entries = faqs(tenant)
        .into_iter()
        .enumerate()
        .map(|(id, (question, answer))| FaqVectors {
            faq: IndexedFaq {
                id: id as i64,
                question,
                answer,
            },
            vectors: vec![vec![0.05; 384]; 2],
        })
        .collect();
    FaqIndex::build(384, entries).heap_bytes()
}

/// A gauge or sum from `/metrics`.
/// `/metrics` wants the scraper's token (or an operator).
const SCRAPE_TOKEN: &str = "index-budget-scrape-token";

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .get("/metrics")
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn ask(app: &TestApp, tenant: &str, message: &str) -> String {
    let (status, body) = app.chat(tenant, json!({ "message": message })).await;
    assert_eq!(status, 200, "{body}");
    body["reply"].as_str().unwrap_or_default().to_string()
}

/// Asks until the reply is `want` (a change event takes a moment).
async fn ask_until(app: &TestApp, tenant: &str, message: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = ask(app, tenant, message).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{tenant} still answers {got:?}, not {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Asks `tenant` until its index is held: change events of the setup
/// (tenants created, FAQs imported) arrive a moment later and drop indexes
/// built before them.
async fn ask_until_cached(app: &TestApp, tenant: &str, message: &str, want: &str) {
    let schema = SchemaName::parse(tenant).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert_eq!(ask(app, tenant, message).await, want);
        if app.state.answerer.index_cached(&schema) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{tenant}'s index is never kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_index_budget_evicts_and_an_evicted_tenant_still_answers_from_stored_vectors() {
    // Room for one tenant's index, not two.
    let budget = index_bytes("ib_a") * 3 / 2;
    let app = spawn_app_with(|s| {
        s.chat.index_cache_bytes = budget;
        s.server.metrics_token = Some(Secret::new(SCRAPE_TOKEN));
    })
    .await;
    for tenant in ["ib_a", "ib_b"] {
        app.create_tenant(tenant, tenant, None).await;
        let pairs = faqs(tenant);
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(q, a)| (q.as_str(), a.as_str()))
            .collect();
        app.import_faqs(tenant, &pairs).await;
    }
    let (a, b) = (
        SchemaName::parse("ib_a").unwrap(),
        SchemaName::parse("ib_b").unwrap(),
    );
    let within_budget = |app: &TestApp| {
        let stats = app.state.answerer.index_cache_stats();
        assert!(stats.bytes <= budget, "{stats:?} over {budget}");
        stats
    };

    ask_until_cached(&app, "ib_a", "When do you open?", "ib_a answer 0").await;
    within_budget(&app);
    let before = app.state.answerer.index_cache_stats();

    // b's index pushes a's out.
    ask_until_cached(&app, "ib_b", "When do you open?", "ib_b answer 0").await;
    let stats = within_budget(&app);
    assert!(!app.state.answerer.index_cached(&a), "{stats:?}");
    assert_eq!(stats.entries, 1, "{stats:?}");
    assert!(stats.evictions > before.evictions, "{stats:?}");

    // a asks again: rebuilt from its stored vectors. No FAQ is embedded
    // again (3 FAQs: 6 texts); at most the question, if a late setup event
    // emptied the question cache.
    let embedded = metric(&app, "chatter_embedding_batch_size_sum").await;
    let builds = metric(&app, "chatter_index_builds").await;
    assert_eq!(
        ask(&app, "ib_a", "When do you open?").await,
        "ib_a answer 0"
    );
    assert!(metric(&app, "chatter_index_builds").await > builds);
    let made = metric(&app, "chatter_embedding_batch_size_sum").await - embedded;
    assert!(
        made <= 1.0,
        "the evicted index was embedded again ({made} texts)"
    );
    assert!(metric(&app, "chatter_index_evictions").await >= 2.0);
    within_budget(&app);

    // b is out now; its FAQ changes meanwhile: its next answer is the new one.
    let id = faq::list(&app.handle, &b).await.unwrap()[0].id;
    faq::update(
        &app.handle,
        &b,
        id,
        NewFaq {
            question: "When do you open?".into(),
            answer: "ib_b opens at 10 now".into(),
            alternatives: vec![],
        },
    )
    .await
    .unwrap();
    ask_until(&app, "ib_b", "When do you open?", "ib_b opens at 10 now").await;
    // And a, evicted once more, still answers every question.
    assert_eq!(
        ask(&app, "ib_a", "Can I pay by card?").await,
        "ib_a answer 2"
    );
    let stats = within_budget(&app);
    assert!(stats.entries <= 1, "{stats:?}");
    assert!(
        metric(&app, "chatter_index_cache_bytes").await <= budget as f64,
        "the gauge shows the bound"
    );
    app.stop().await;
}

/// A budget too small for any index keeps none, and chat still works.
#[tokio::test]
async fn a_budget_smaller_than_any_index_keeps_none_and_still_answers() {
    let app = spawn_app_with(|s| {
        s.chat.index_cache_bytes = 0;
        s.server.metrics_token = Some(Secret::new(SCRAPE_TOKEN));
    })
    .await;
    app.create_tenant("ib_c", "ib_c", None).await;
    app.import_faqs("ib_c", &[("When do you open?", "9 to 5")])
        .await;
    for _ in 0..3 {
        assert_eq!(ask(&app, "ib_c", "When do you open?").await, "9 to 5");
        let stats = app.state.answerer.index_cache_stats();
        assert_eq!((stats.entries, stats.bytes), (0, 0), "{stats:?}");
    }
    assert_eq!(metric(&app, "chatter_index_builds").await, 3.0);
    app.stop().await;
}
