//! `GET /metrics`: request, chat and engine metrics after real traffic,
//! read by parsing the exposition rather than matching the whole page.

use std::collections::BTreeMap;

use serde_json::json;

use chatter::auth::users::{self, NewUser};
use chatter::config::Secret;

use crate::helpers::{TestApp, spawn_app_with};

/// What a Prometheus scraper would be configured with.
const SCRAPE_TOKEN: &str = "scrape-token-for-tests";

async fn spawn_scraped_app() -> TestApp {
    spawn_app_with(|s| s.server.metrics_token = Some(Secret::new(SCRAPE_TOKEN))).await
}

/// One sample: metric name and its labels, sorted.
type Series = (String, BTreeMap<String, String>);

/// The samples of an exposition (comments and `# EOF` skipped). Our label
/// values hold no quotes or commas, so a plain split is enough here.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let value: f64 = value.parse().expect("a numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let labels = inner
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label is k=v");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        assert!(
            samples.insert((name, labels), value).is_none(),
            "a series appears twice: {line}"
        );
    }
    samples
}

fn value(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples.get(&(name.to_string(), labels)).copied()
}

async fn scrape(app: &TestApp) -> (String, BTreeMap<Series, f64>) {
    let response = app
        .get("/metrics")
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

const WIDGET_OK: &[(&str, &str)] = &[("route", "/api/widget/config"), ("status", "200")];

#[tokio::test]
async fn metrics_follow_traffic_without_naming_tenants() {
    let app = spawn_scraped_app().await;
    app.create_tenant("zebra", "Zebra Unlimited", None).await;
    app.import_faqs(
        "zebra",
        &[(
            "What are your opening hours?",
            "We are open 9 to 5, Monday to Friday.",
        )],
    )
    .await;

    let (_, before) = scrape(&app).await;
    let widget_before = value(&before, "chatter_http_requests_total", WIDGET_OK).unwrap_or(0.0);

    for _ in 0..3 {
        let response = app
            .get("/api/widget/config")
            .header("X-Client-ID", "zebra")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (status, body) = app
        .chat("zebra", json!({"message": "what are your opening hours"}))
        .await;
    assert_eq!((status, body["matched"].clone()), (200, json!(true)));
    let (status, body) = app.chat("zebra", json!({"message": "zzz qqq"})).await;
    assert_eq!((status, body["matched"].clone()), (200, json!(false)));
    let response = app.get("/no/such/page/12345").send().await.unwrap();
    assert_eq!(response.status(), 404);

    // Scrapers come by IP: no allowed-host check, like /healthz.
    let response = app
        .get("/metrics")
        .header("Host", "10.0.0.7:9090")
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (text, after) = scrape(&app).await;
    assert_eq!(
        value(&after, "chatter_http_requests_total", WIDGET_OK),
        Some(widget_before + 3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "chatter_http_requests_total",
            &[("route", "/api/chat"), ("status", "200")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "chatter_http_request_duration_seconds_count",
            &[("route", "/api/widget/config")]
        ),
        Some(widget_before + 3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "chatter_chat_answers_total",
            &[("outcome", "answered")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "chatter_chat_answers_total",
            &[("outcome", "fallback")]
        ),
        Some(1.0),
        "{text}"
    );

    // The 404 is counted under no route pattern, and its path is nowhere.
    let not_found: f64 = after
        .iter()
        .filter(|((name, labels), _)| {
            name == "chatter_http_requests_total"
                && labels.get("status").map(String::as_str) == Some("404")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(not_found, 1.0, "{text}");
    assert!(
        !text.contains("/no/such"),
        "a raw path became a label: {text}"
    );

    // The FAQ and both questions went through the worker.
    let batches = value(&after, "chatter_embedding_batch_size_count", &[]).unwrap_or(0.0);
    let texts = value(&after, "chatter_embedding_batch_size_sum", &[]).unwrap_or(0.0);
    assert!(batches >= 1.0, "{text}");
    assert!(texts >= 3.0, "{text}");
    assert_eq!(
        value(&after, "chatter_embedding_queue_depth", &[]),
        Some(0.0)
    );

    for gauge in [
        "chatter_db_pool_in_use",
        "chatter_db_pool_idle",
        "chatter_db_pool_waiting",
    ] {
        let v = value(&after, gauge, &[]);
        assert!(v.is_some_and(|v| v >= 0.0), "{gauge} missing: {text}");
    }
    assert!(
        value(&after, "chatter_db_pool_idle", &[]).unwrap_or(0.0)
            + value(&after, "chatter_db_pool_in_use", &[]).unwrap_or(0.0)
            >= 1.0,
        "the pool has served requests, so it holds a connection: {text}"
    );
    assert!(value(&after, "chatter_model_load_seconds", &[]).is_some());

    // Both exchanges went through the writer's groups; none was refused.
    assert_eq!(value(&after, "chatter_exchanges_grouped", &[]), Some(2.0));
    let groups = value(&after, "chatter_exchange_groups", &[]).unwrap_or(0.0);
    assert!((1.0..=2.0).contains(&groups), "{text}");
    assert_eq!(
        value(&after, "chatter_exchange_groups_failed", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "chatter_exchanges_stored_alone", &[]),
        Some(0.0)
    );

    // Bounded cardinality: no tenant anywhere, by schema or by name.
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("zebra"),
        "a tenant leaked into metrics: {text}"
    );
    for ((_, labels), _) in after.iter() {
        assert!(
            labels
                .keys()
                .all(|k| ["route", "status", "outcome", "le"].contains(&k.as_str())),
            "unexpected label in {labels:?}"
        );
    }
}

/// The scrape tells the load, the pool and the queue: only the scraper's
/// token or an operator may read it (issue 16, item 13).
#[tokio::test]
async fn metrics_answer_only_the_scrape_token_or_an_operator() {
    let app = spawn_scraped_app().await;
    for (email, is_operator) in [("op@example.com", true), ("ann@example.com", false)] {
        users::create_user(
            &app.handle,
            NewUser {
                email,
                password: "correct horse battery",
                is_operator,
                membership: None,
            },
        )
        .await
        .unwrap();
    }
    let token = |email: &'static str| {
        let app = &app;
        async move {
            let body: serde_json::Value = app
                .post("/api/auth/login")
                .json(&json!({"email": email, "password": "correct horse battery"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["token"].as_str().unwrap().to_string()
        }
    };
    let operator = token("op@example.com").await;
    let user = token("ann@example.com").await;
    let status = |bearer: Option<String>| {
        let app = &app;
        async move {
            let request = app.get("/metrics");
            let request = match bearer {
                Some(b) => request.bearer_auth(b),
                None => request,
            };
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(None).await, 401, "nobody");
    assert_eq!(status(Some("not-the-token".into())).await, 401, "a guess");
    assert_eq!(status(Some(format!("{SCRAPE_TOKEN}x"))).await, 401, "close");
    assert_eq!(status(Some(user)).await, 403, "a user, not an operator");
    assert_eq!(status(Some(operator)).await, 200, "an operator");
    assert_eq!(status(Some(SCRAPE_TOKEN.into())).await, 200, "the scraper");

    // Without a scrape token set, only operators.
    let app = spawn_app_with(|_| {}).await;
    let response = app
        .get("/metrics")
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
