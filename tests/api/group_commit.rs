//! The chat's group commit (issue 17, `chat::writer`): exchanges that
//! finish together are stored in one transaction, every one of them is
//! stored before its chat is answered, a bad exchange fails only its own
//! chat, and the billing meter stays exact.

use chatter::billing::usage::Meter;
use chatter::chat::{Exchange, ExchangeWriter};
use chatter::db::SchemaName;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn count(app: &TestApp, sql: &str) -> i64 {
    let client = app.pool.get().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

fn exchange(schema: &str, message: &str) -> Exchange {
    Exchange {
        schema: SchemaName::parse(schema).unwrap(),
        session_id: None,
        origin: None,
        message: message.to_string(),
        embedding: None,
        embedding_model: None,
        reply: "the answer".into(),
        faq_id: None,
        score: 0.5,
        meter: None,
    }
}

fn month() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

#[tokio::test]
async fn concurrent_chats_of_several_tenants_are_all_stored_in_few_transactions() {
    let app = spawn_app_with(|s| {
        s.chat.visitor_burst = 1_000;
        s.chat.tenant_burst = 1_000;
    })
    .await;
    let tenants = ["alpha", "beta", "gamma"];
    for t in tenants {
        app.create_tenant(t, t, None).await;
        app.import_faqs(t, &[("When do you open?", "9 to 5")]).await;
    }
    // Each tenant's index built first, so the chats below finish together.
    for t in tenants {
        assert_eq!(app.chat(t, json!({"message": "warm"})).await.0, 200);
    }
    let before = app.state.answerer.writer_stats();
    let chats = (0..60).map(|i| {
        let app = &app;
        async move {
            let tenant = tenants[i % 3];
            let (status, body) = app
                .chat(
                    tenant,
                    json!({ "message": format!("When do you open? {i}") }),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            (tenant, body["session_id"].as_str().unwrap().to_string())
        }
    });
    let answered = futures_util::future::join_all(chats).await;
    // Answered means stored: every exchange is there when its chat returns.
    for t in tenants {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {t}.messages")).await,
            2 * 21,
            "{t}"
        );
    }
    for (tenant, session) in &answered {
        let found = count(
            &app,
            &format!("SELECT count(*) FROM {tenant}.conversations WHERE session_id = '{session}'"),
        )
        .await;
        assert_eq!(found, 1, "{tenant} {session}");
    }
    let after = app.state.answerer.writer_stats();
    assert_eq!(after.grouped - before.grouped, 60);
    assert!(
        after.groups - before.groups < 60,
        "no two exchanges shared a transaction: {after:?}"
    );
    assert_eq!(after.failed_groups, 0);

    // A conversation continued through the group path stays one.
    let (tenant, session) = &answered[0];
    let (status, body) = app
        .chat(
            tenant,
            json!({"message": "and on Sunday?", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_id"], session.as_str());
    let messages = count(
        &app,
        &format!(
            "SELECT count(*) FROM {tenant}.messages m JOIN {tenant}.conversations c \
             ON c.id = m.conversation_id WHERE c.session_id = '{session}'"
        ),
    )
    .await;
    assert_eq!(messages, 4);
}

#[tokio::test]
async fn exchanges_waiting_together_share_one_transaction() {
    let app = spawn_app().await;
    for t in ["alpha", "beta"] {
        app.create_tenant(t, t, None).await;
    }
    let writer = ExchangeWriter::new(app.handle.clone(), 64);
    // All handed over before the writer task first runs (this test's
    // runtime has one thread): one group.
    let stores = (0..40).map(|i| {
        let schema = if i % 2 == 0 { "alpha" } else { "beta" };
        writer.store(exchange(schema, &format!("question {i}")))
    });
    let stored = futures_util::future::join_all(stores).await;
    assert!(
        stored.iter().all(|s| matches!(s, Ok(Some(_)))),
        "{stored:?}"
    );
    let stats = writer.stats();
    assert_eq!((stats.groups, stats.grouped), (1, 40), "{stats:?}");
    for t in ["alpha", "beta"] {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {t}.messages")).await,
            40
        );
    }

    // Alone (group_commit_max = 1): the same, one transaction each.
    let alone = ExchangeWriter::new(app.handle.clone(), 1);
    let stored = alone.store(exchange("alpha", "alone")).await.unwrap();
    assert!(stored.is_some());
    assert_eq!(alone.stats().groups, 0);
}

#[tokio::test]
async fn a_failing_exchange_fails_only_its_own_chat_and_nothing_is_stored_twice() {
    let app = spawn_app().await;
    for t in ["alpha", "beta"] {
        app.create_tenant(t, t, None).await;
    }
    let writer = ExchangeWriter::new(app.handle.clone(), 64);
    let mut exchanges = vec![
        exchange("alpha", "fine 1"),
        // PostgreSQL refuses NUL in text: this statement fails.
        exchange("beta", "bad \0 text"),
        exchange("beta", "fine 2"),
    ];
    // A FAQ that no longer exists: the messages' foreign key refuses the
    // link in the group; alone, the message is kept without it.
    let mut gone = exchange("alpha", "about a deleted FAQ");
    gone.faq_id = Some(999_999);
    exchanges.push(gone);
    let stored =
        futures_util::future::join_all(exchanges.into_iter().map(|e| writer.store(e))).await;
    assert!(matches!(stored[0], Ok(Some(_))), "{:?}", stored[0]);
    assert!(stored[1].is_err(), "{:?}", stored[1]);
    assert!(matches!(stored[2], Ok(Some(_))), "{:?}", stored[2]);
    assert!(matches!(stored[3], Ok(Some(_))), "{:?}", stored[3]);
    let stats = writer.stats();
    assert!(stats.failed_groups >= 1, "{stats:?}");
    // Each stored exactly once: the failed group left nothing behind.
    assert_eq!(
        count(&app, "SELECT count(*) FROM alpha.messages").await,
        4,
        "alpha"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM beta.messages").await, 2);
    assert_eq!(
        count(&app, "SELECT count(*) FROM alpha.conversations").await,
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM beta.conversations").await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM alpha.messages WHERE text = 'about a deleted FAQ' \
             AND faq_id IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_billing_meter_counts_exactly_in_groups_even_when_a_group_fails() {
    let app = spawn_app().await;
    for t in ["alpha", "beta"] {
        app.create_tenant(t, t, None).await;
    }
    let writer = ExchangeWriter::new(app.handle.clone(), 64);
    let meter = Meter {
        month: month(),
        limit: Some(5),
        warn_at: None,
    };
    // 12 new conversations for alpha (limit 5), 3 for beta (no limit), and
    // a failing exchange in the same group, which sends every one of them
    // through the alone path after the group rolled back its meters.
    let mut exchanges = Vec::new();
    for i in 0..12 {
        let mut e = exchange("alpha", &format!("alpha {i}"));
        e.meter = Some(meter);
        exchanges.push(e);
    }
    for i in 0..3 {
        let mut e = exchange("beta", &format!("beta {i}"));
        e.meter = Some(Meter {
            month: month(),
            limit: None,
            warn_at: None,
        });
        exchanges.push(e);
    }
    exchanges.push(exchange("beta", "bad \0 text"));
    let stored =
        futures_util::future::join_all(exchanges.into_iter().map(|e| writer.store(e))).await;
    let alpha_stored = stored[..12]
        .iter()
        .filter(|s| matches!(s, Ok(Some(_))))
        .count();
    let alpha_full = stored[..12]
        .iter()
        .filter(|s| matches!(s, Ok(None)))
        .count();
    assert_eq!((alpha_stored, alpha_full), (5, 7), "{stored:?}");
    assert!(stored[12..15].iter().all(|s| matches!(s, Ok(Some(_)))));
    assert!(stored[15].is_err());
    assert_eq!(
        count(&app, "SELECT sum(conversations)::bigint FROM alpha.usage").await,
        5
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM alpha.conversations").await,
        5
    );
    assert_eq!(
        count(&app, "SELECT sum(conversations)::bigint FROM beta.usage").await,
        3
    );

    // The same in groups that succeed: one more month, 8 asks, limit 5.
    let next = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
    let asks = (0..8).map(|i| {
        let mut e = exchange("beta", &format!("next month {i}"));
        e.meter = Some(Meter {
            month: next,
            limit: Some(5),
            warn_at: None,
        });
        writer.store(e)
    });
    let stored = futures_util::future::join_all(asks).await;
    assert_eq!(
        stored.iter().filter(|s| matches!(s, Ok(Some(_)))).count(),
        5,
        "{stored:?}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT sum(conversations)::bigint FROM beta.usage WHERE month = '2027-01-01'"
        )
        .await,
        5
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM beta.conversations").await,
        3 + 5
    );
}

/// `n` new conversations of alpha at once (one group: this test's
/// runtime has one thread), metered against `meter`: how many were
/// stored, and the month's count after them.
async fn new_conversations(
    app: &TestApp,
    writer: &ExchangeWriter,
    meter: Meter,
    n: usize,
) -> (usize, i64) {
    let stored = futures_util::future::join_all((0..n).map(|i| {
        let mut e = exchange("alpha", &format!("new {i}"));
        e.meter = Some(meter);
        writer.store(e)
    }))
    .await;
    let kept = stored
        .into_iter()
        .filter(|s| s.as_ref().unwrap().is_some())
        .count();
    let total = count(
        app,
        &format!(
            "SELECT coalesce(sum(conversations), 0)::bigint FROM alpha.usage WHERE month = '{}'",
            meter.month
        ),
    )
    .await;
    (kept, total)
}

/// A group's new conversations of one billed tenant are counted with one
/// statement when they fit in its meter row's share; when they do not
/// (the month's first, or near the limit), the group is stored again one
/// exchange at a time, up to the limit.
#[tokio::test]
async fn a_group_meters_a_tenants_new_conversations_at_once_and_exactly_at_the_limit() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    let writer = ExchangeWriter::new(app.handle.clone(), 64);
    let december = Meter {
        month: month(),
        limit: Some(10),
        warn_at: None,
    };
    // A new month, more than the limit in its first group: one by one.
    assert_eq!(
        new_conversations(&app, &writer, december, 12).await,
        (10, 10)
    );
    assert_eq!(writer.stats().failed_groups, 1);

    // The next month, room for all: the first group hands the shares out
    // (one by one), the next fits in the writer's row's share at once.
    let january = Meter {
        month: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        limit: Some(100),
        warn_at: None,
    };
    assert_eq!(new_conversations(&app, &writer, january, 4).await, (4, 4));
    assert_eq!(new_conversations(&app, &writer, january, 3).await, (3, 7));
    let stats = writer.stats();
    assert_eq!((stats.failed_groups, stats.groups), (2, 1), "{stats:?}");
    // 7 counted of 100, 95 more asked: 93 fit.
    assert_eq!(
        new_conversations(&app, &writer, january, 95).await,
        (93, 100)
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM alpha.conversations").await,
        10 + 100
    );
}
