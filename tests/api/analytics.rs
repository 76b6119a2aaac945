//! The analytics summary: counts, rates, the per-day series, and the
//! unanswered questions grouped by meaning.

use serde_json::json;

use crate::client_api::{call, setup};
use crate::question_cache::embedded_texts;

#[tokio::test]
async fn the_summary_counts_and_groups_what_fell_back() {
    let (app, _owner, agent, other) = setup().await;
    app.import_faqs(
        "shop",
        &[("What are your opening hours?", "9 to 5 on weekdays.")],
    )
    .await;
    for message in [
        "what are your opening hours",
        "opening hours please",
        "do you sell bicycles",
        "bicycles do you sell",
        "tents for rent",
    ] {
        let (status, _) = app.chat("shop", json!({"message": message})).await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        call(&app, "GET", "/api/analytics/summary", Some(&other), None)
            .await
            .0,
        403
    );
    let (status, summary) = call(
        &app,
        "GET",
        "/api/analytics/summary?days=7",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["conversations"], 5);
    assert_eq!(summary["messages"], 10);
    assert_eq!(summary["answered"], 2);
    assert_eq!(summary["fallback"], 3);
    assert!((summary["fallback_rate"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    let days = summary["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 8, "7 days back and today");
    assert_eq!(days.last().unwrap()["messages"], 10);
    let top = &summary["top_unanswered"];
    assert_eq!(top[0]["count"], 2, "{top}");
    assert!(top[0]["question"].as_str().unwrap().contains("bicycles"));
    assert_eq!(top[1]["question"], "tents for rent");
    // Without the model (`groups=false`, the overview's): the same numbers,
    // the two wordings about bicycles apart.
    let (status, quick) = call(
        &app,
        "GET",
        "/api/analytics/summary?days=7&groups=false",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 200, "{quick}");
    assert_eq!(quick["fallback"], 3);
    assert_eq!(quick["per_day"], summary["per_day"]);
    assert_eq!(
        quick["top_unanswered"].as_array().unwrap().len(),
        3,
        "{quick}"
    );
    for bad in ["?days=0", "?days=999", "?days=x", "?weeks=1"] {
        let (status, _) = call(
            &app,
            "GET",
            &format!("/api/analytics/summary{bad}"),
            Some(&agent),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
}

/// A year of 40,000 messages: the per-day series is one pass over the
/// messages, not one per day (which took seconds here, a minute at 100,000).
#[tokio::test]
async fn a_year_of_many_messages_is_summed_per_day_quickly() {
    let (app, _owner, agent, _other) = setup().await;
    let client = app.pool.get().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO shop.conversations (session_id, started_at, last_message_at) \
             SELECT md5(i::text), now() - (i % 365) * interval '1 day', now() - (i % 365) * interval '1 day' \
             FROM generate_series(1, 10000) i; \
             INSERT INTO shop.messages (conversation_id, role, text, created_at) \
             SELECT c.id, r.role, 'hello', c.started_at FROM shop.conversations c \
             CROSS JOIN generate_series(1, 2) k CROSS JOIN (VALUES ('visitor'), ('bot')) r(role); \
             ANALYZE shop.messages;",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, summary) = call(
        &app,
        "GET",
        "/api/analytics/summary?days=365",
        Some(&agent),
        None,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["messages"], 40_000);
    assert_eq!(summary["conversations"], 10_000);
    assert_eq!(summary["fallback"], 20_000);
    assert_eq!(summary["per_day"].as_array().unwrap().len(), 366);
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
}

/// A repeated summary, or another range over the same questions, costs no
/// inference; a new unanswered question costs its own text only (issue 16,
/// item 4: every view embedded up to 500 questions again).
#[tokio::test]
async fn a_repeated_summary_embeds_only_questions_it_has_not_seen() {
    let (app, _owner, agent, _other) = setup().await;
    app.import_faqs("shop", &[("What are your opening hours?", "9 to 5.")])
        .await;
    for message in [
        "do you sell bicycles",
        "bicycles do you sell",
        "tents for rent",
    ] {
        assert_eq!(app.chat("shop", json!({"message": message})).await.0, 200);
    }
    let summary = |days: u32| {
        let (app, agent) = (&app, &agent);
        async move {
            let before = embedded_texts(app).await;
            let (status, body) = call(
                app,
                "GET",
                &format!("/api/analytics/summary?days={days}"),
                Some(agent),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            (embedded_texts(app).await - before, body)
        }
    };
    let (first, body) = summary(7).await;
    assert_eq!(first, 3.0, "the first view embeds the three questions");
    assert_eq!(body["top_unanswered"][0]["count"], 2, "{body}");
    let (again, same) = summary(7).await;
    assert_eq!(again, 0.0, "a repeated view embeds nothing");
    assert_eq!(same["top_unanswered"], body["top_unanswered"]);
    assert_eq!(summary(30).await.0, 0.0, "nor does another range");

    // A new fallback: the numbers move at once, and only it is embedded.
    assert_eq!(
        app.chat("shop", json!({"message": "kayak hire"})).await.0,
        200
    );
    let (new, body) = summary(7).await;
    assert_eq!(new, 1.0, "only the new question");
    assert_eq!(body["fallback"], 4, "{body}");
    assert_eq!(
        body["top_unanswered"].as_array().unwrap().len(),
        3,
        "{body}"
    );
}
