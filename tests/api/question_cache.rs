//! The question cache (issue 17): a repeated question costs no inference,
//! yet gets the current answer, is stored like any other, and is never
//! shared between tenants. Inference is read from the engine's own metric
//! (texts embedded, summed over batches).

use chatter::faq::{self, NewFaq};
use chatter::tenancy::SchemaName;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// Texts the model has embedded so far.
pub async fn embedded_texts(app: &TestApp) -> f64 {
    // The app's own registry, as `/metrics` renders it (the route itself
    // wants the scraper's token or an operator).
    let text = app
        .state
        .metrics
        .render(chatter::metrics::ScrapeGauges::default())
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("chatter_embedding_batch_size_sum "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn messages(app: &TestApp, schema: &str) -> i64 {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(&format!("SELECT count(*) FROM {schema}.messages"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_repeated_question_costs_no_inference_and_still_gets_the_current_answer() {
    let app = spawn_app().await;
    for tenant in ["shop", "other"] {
        app.create_tenant(tenant, tenant, None).await;
        app.import_faqs(tenant, &[("When do you open?", "9 to 5")])
            .await;
    }
    let ask = |tenant: &'static str, message: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.chat(tenant, json!({ "message": message })).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    // The first question builds the index and embeds the question.
    assert_eq!(ask("shop", "When do you open?").await["reply"], "9 to 5");
    let before = embedded_texts(&app).await;

    // The same words (spacing aside): answered, stored, not embedded again.
    assert_eq!(
        ask("shop", "  When do   you open? ").await["reply"],
        "9 to 5"
    );
    assert_eq!(embedded_texts(&app).await, before, "a repeat was embedded");
    assert!(app.state.answerer.question_cache_bytes() > 0);

    // The same words at another tenant: its own entry, so embedded again.
    ask("other", "When do you open?").await;
    assert!(
        embedded_texts(&app).await > before,
        "a tenant used another's entry"
    );

    // The FAQ changes: the cached question gets the new answer.
    let shop = SchemaName::parse("shop").unwrap();
    let id = faq::list(&app.handle, &shop).await.unwrap()[0].id;
    faq::update(
        &app.handle,
        &shop,
        id,
        NewFaq {
            question: "When do you open?".into(),
            answer: "10 to 6 now".into(),
            alternatives: vec![],
        },
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if ask("shop", "When do you open?").await["reply"] == "10 to 6 now" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Every exchange was stored, cached or not: two messages each.
    let shop_chats = messages(&app, "shop").await;
    assert!(shop_chats >= 6 && shop_chats % 2 == 0, "{shop_chats}");
    assert_eq!(messages(&app, "other").await, 2);
    app.stop().await;
}
