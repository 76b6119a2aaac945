//! The analytics summary: counts, rates, the per-day series, and the
//! unanswered questions grouped by meaning.

use serde_json::json;

use crate::client_api::{call, setup};

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
    // The visitors' questions per hour of the day (UTC): all five now.
    let hours: Vec<i64> = summary["busiest_hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours.iter().sum::<i64>(), 5, "{hours:?}");
    let now = chrono::Timelike::hour(&chrono::Utc::now()) as usize;
    assert!(hours[now] == 5 || hours[(now + 23) % 24] > 0, "{hours:?}");
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

/// The chat keeps the vector of each question it could not answer; the
/// grouping reads those, embeds only rows without one (older rows, another
/// model's) and keeps theirs, and groups alike either way. Only a summary
/// that had to embed counts against a member's few a minute.
#[tokio::test]
async fn unanswered_questions_keep_their_vectors_and_group_the_same() {
    let (app, _owner, agent, _other) = setup().await;
    app.import_faqs(
        "shop",
        &[("What are your opening hours?", "9 to 5 on weekdays.")],
    )
    .await;
    for message in [
        "what are your opening hours",
        "do you sell bicycles",
        "bicycles do you sell",
        "do you sell bicycles here",
        "tents for rent",
        "kayak lessons",
    ] {
        let (status, _) = app.chat("shop", json!({"message": message})).await;
        assert_eq!(status, 200);
    }
    let client = app.pool.get().await.unwrap();
    let kept = || async {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE embedding IS NOT NULL AND embedding_model IS NOT NULL), \
                 count(*) FILTER (WHERE embedding IS NOT NULL AND (role = 'bot' OR text LIKE 'what are%')), \
                 min(length(embedding)) FROM shop.messages",
                &[],
            )
            .await
            .unwrap();
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, Option<i32>>(2),
        )
    };
    // The five fallback questions, half precision: 2 bytes a dimension.
    let (with_vector, wrongly, bytes) = kept().await;
    assert_eq!((with_vector, wrongly), (5, 0));
    assert!(bytes.is_some_and(|b| b > 0 && b % 2 == 0), "{bytes:?}");

    let groups = || async {
        let (status, summary) =
            call(&app, "GET", "/api/analytics/summary", Some(&agent), None).await;
        (status, summary["top_unanswered"].clone())
    };
    let (status, stored) = groups().await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored[0]["count"], 3, "{stored}");
    assert_eq!(stored.as_array().unwrap().len(), 3, "{stored}");
    // Reading the kept vectors costs no inference: past the limit of six a
    // minute, no 429.
    for _ in 0..8 {
        assert_eq!(groups().await, (200, stored.clone()));
    }

    // Rows from before the column, and rows of another model: embedded,
    // kept, and grouped the same.
    client
        .batch_execute("UPDATE shop.messages SET embedding = NULL, embedding_model = NULL")
        .await
        .unwrap();
    assert_eq!(kept().await.0, 0);
    assert_eq!(groups().await, (200, stored.clone()));
    assert_eq!(kept().await.0, 5, "kept for the next view");
    client
        .batch_execute("UPDATE shop.messages SET embedding_model = 'another model' WHERE embedding IS NOT NULL")
        .await
        .unwrap();
    assert_eq!(groups().await, (200, stored.clone()));
    let remade: i64 = client
        .query_one(
            "SELECT count(*) FROM shop.messages WHERE embedding_model = 'another model'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(remade, 0);
    // Each of those views embedded: they count, and the limit holds.
    let mut refused = false;
    for _ in 0..6 {
        client
            .batch_execute("UPDATE shop.messages SET embedding = NULL")
            .await
            .unwrap();
        let (status, _) = groups().await;
        refused |= status == 429;
    }
    assert!(refused, "summaries that embed are limited");
}
