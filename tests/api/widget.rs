//! The visitor widget's server side: the embedded files (types, ETag and
//! 304, gzip and brotli, caching), CORS (preflight from the origin alone,
//! the real request per tenant), fair use (429 with Retry-After), the
//! transcript a reload fetches back, and feedback counted in analytics.

use std::io::Read;
use std::time::{Duration, Instant};

use chatter::bot_config::{self, BotConfigUpdate};
use chatter::tenancy::SchemaName;
use serde_json::{Value, json};

use crate::client_api::{call, setup};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn fetch(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn widget_files_are_served_typed_cached_and_compressed_once() {
    let app = spawn_app().await;
    let source = |name: &str| {
        std::fs::read(format!("{}/widget/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    for (name, content_type) in [
        ("widget.js", "text/javascript; charset=utf-8"),
        ("widget.css", "text/css; charset=utf-8"),
    ] {
        let path = format!("/static/{name}");
        let plain = fetch(&app, &path, &[]).await;
        assert_eq!(plain.status(), 200);
        assert_eq!(header(&plain, "content-type"), content_type);
        assert_eq!(header(&plain, "cache-control"), "public, max-age=300");
        assert!(header(&plain, "vary").contains("Accept-Encoding"));
        assert_eq!(header(&plain, "content-encoding"), "");
        let etag = header(&plain, "etag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "a strong ETag: {etag}"
        );
        assert_eq!(plain.bytes().await.unwrap().to_vec(), source(name));

        let gz = fetch(&app, &path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(header(&gz, "content-encoding"), "gzip");
        let gz_etag = header(&gz, "etag");
        assert_ne!(gz_etag, etag, "each encoding has its own tag");
        let gz_bytes = gz.bytes().await.unwrap();
        assert!(gz_bytes.len() < source(name).len());
        assert_eq!(gunzip(&gz_bytes), source(name));

        let br = fetch(&app, &path, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(header(&br, "content-encoding"), "br");
        let br_etag = header(&br, "etag");
        assert_eq!(unbrotli(&br.bytes().await.unwrap()), source(name));

        // Revalidation: the same representation's tag gives 304, no body.
        for (tag, encoding) in [(&etag, ""), (&gz_etag, "gzip"), (&br_etag, "br")] {
            let again = fetch(
                &app,
                &path,
                &[
                    ("if-none-match", tag.as_str()),
                    ("accept-encoding", encoding),
                ],
            )
            .await;
            assert_eq!(again.status(), 304, "{name} {encoding}");
            assert_eq!(header(&again, "etag"), *tag);
            assert!(header(&again, "cache-control").contains("max-age"));
            assert!(again.bytes().await.unwrap().is_empty());
        }
        let changed = fetch(&app, &path, &[("if-none-match", "\"something-else\"")]).await;
        assert_eq!(changed.status(), 200);
    }
    // The front page's files and the page itself.
    let css = fetch(&app, "/static/site.css", &[]).await;
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    let page = fetch(&app, "/", &[("accept-encoding", "br")]).await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let html = String::from_utf8(unbrotli(&page.bytes().await.unwrap())).unwrap();
    assert!(html.contains("content=\"public_tenant\""), "{html}");
    assert!(html.contains("/static/site.js"));
    // Nothing else is served: not the READMEs, not made-up paths.
    for missing in [
        "/static/README.md",
        "/static/index.html",
        "/static/nope.js",
        "/static/../Cargo.toml",
    ] {
        assert_eq!(fetch(&app, missing, &[]).await.status(), 404, "{missing}");
    }
}

async fn set_origins(app: &TestApp, schema: &str, origins: &[&str]) {
    bot_config::update(
        &app.handle,
        &SchemaName::parse(schema).unwrap(),
        BotConfigUpdate {
            allowed_origins: Some(origins.iter().map(|o| o.to_string()).collect()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, format!("{}{path}", app.addr))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type, x-client-id",
        )
        .send()
        .await
        .unwrap()
}

/// Waits until a preflight from `origin` gets `status` (change events reach
/// the server's cache asynchronously).
async fn preflight_until(app: &TestApp, origin: &str, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = preflight(app, "/api/chat", origin).await;
        if response.status() == status {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "preflight from {origin}: {} instead of {status}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn chat_from(app: &TestApp, tenant: &str, origin: &str) -> reqwest::Response {
    app.post("/api/chat")
        .header("X-Client-ID", tenant)
        .header("Origin", origin)
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_preflight_from_the_origin_real_request_per_tenant() {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    app.create_tenant("open", "Open", None).await;

    // While any tenant keeps the open list, every origin passes the preflight.
    let response = preflight_until(&app, "https://anywhere.test", 204).await;
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        "https://anywhere.test"
    );
    let allowed_headers = header(&response, "access-control-allow-headers").to_lowercase();
    assert!(allowed_headers.contains("content-type") && allowed_headers.contains("x-client-id"));
    assert!(header(&response, "access-control-allow-methods").contains("POST"));
    assert!(header(&response, "vary").contains("Origin"));

    // The real request is held to its own tenant's list.
    set_origins(&app, "shop", &["https://shop.test"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let response = chat_from(&app, "shop", "https://evil.test").await;
        if response.status() == 403 || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.status(), 403);
    assert!(header(&refused, "vary").contains("Origin"));
    assert_eq!(
        crate::helpers::error_code(refused).await,
        "origin_not_allowed"
    );
    let allowed = chat_from(&app, "shop", "https://shop.test").await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        "https://shop.test"
    );
    assert!(header(&allowed, "access-control-expose-headers").contains("Retry-After"));
    assert!(header(&allowed, "vary").contains("Origin"));
    // An open tenant takes any origin; `null` is never allowed nor echoed.
    assert_eq!(
        chat_from(&app, "open", "https://evil.test").await.status(),
        200
    );
    let null = chat_from(&app, "open", "null").await;
    assert_eq!(null.status(), 403);
    assert_eq!(header(&null, "access-control-allow-origin"), "");
    // No Origin (a server, curl): no CORS at all.
    let (status, _) = app.chat("shop", json!({"message": "hi"})).await;
    assert_eq!(status, 200);
    // Only the allowed requests were answered and stored.
    let client = app.pool.get().await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM shop.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 4);

    // With no open list left anywhere, the preflight takes only listed origins.
    set_origins(&app, "open", &["https://open.test"]).await;
    set_origins(&app, "public_tenant", &["https://platform.test"]).await;
    let refused = preflight_until(&app, "https://evil.test", 403).await;
    assert_eq!(header(&refused, "access-control-allow-origin"), "");
    assert!(header(&refused, "vary").contains("Origin"));
    for origin in ["https://shop.test", "https://open.test"] {
        let response = preflight(&app, "/api/chat", origin).await;
        assert_eq!(response.status(), 204, "{origin}");
        assert_eq!(header(&response, "access-control-allow-origin"), origin);
    }
    let null = preflight(&app, "/api/widget/config", "null").await;
    assert_eq!(null.status(), 403);
    assert_eq!(header(&null, "access-control-allow-origin"), "");
    // Every visitor route answers preflights.
    for path in [
        "/api/widget/config",
        "/api/chat/history",
        "/api/chat/feedback",
    ] {
        assert_eq!(
            preflight(&app, path, "https://shop.test").await.status(),
            204,
            "{path}"
        );
    }
}

#[tokio::test]
async fn chat_is_limited_per_visitor_and_per_tenant_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.server.trust_proxy = true;
        s.chat.visitor_burst = 2;
        s.chat.visitor_messages_per_minute = 2;
        s.chat.tenant_burst = 5;
        s.chat.tenant_messages_per_minute = 5;
    })
    .await;
    app.create_tenant("shop", "Shop", None).await;
    app.create_tenant("other", "Other", None).await;
    let send = |tenant: &'static str, address: &'static str| {
        app.post("/api/chat")
            .header("X-Client-ID", tenant)
            .header("X-Forwarded-For", address)
            .json(&json!({"message": "hello"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(send("shop", "10.0.0.1").await.unwrap().status(), 200);
    }
    let refused = send("shop", "10.0.0.1").await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    assert_eq!(crate::helpers::error_code(refused).await, "rate_limited");
    // Another visitor, and the same visitor at another tenant, still talk.
    assert_eq!(send("shop", "10.0.0.2").await.unwrap().status(), 200);
    assert_eq!(send("other", "10.0.0.1").await.unwrap().status(), 200);
    // The tenant as a whole: 5 at once, whoever sends them.
    assert_eq!(send("shop", "10.0.0.3").await.unwrap().status(), 200);
    assert_eq!(send("shop", "10.0.0.4").await.unwrap().status(), 200);
    let refused = send("shop", "10.0.0.5").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(!header(&refused, "retry-after").is_empty());
    assert_eq!(send("other", "10.0.0.5").await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_reload_gets_its_own_conversation_back_and_feedback_is_counted() {
    let (app, _owner, agent, _other) = setup().await;
    app.import_faqs(
        "shop",
        &[("What are your opening hours?", "9 to 5 on weekdays.")],
    )
    .await;
    let (_, first) = app
        .chat("shop", json!({"message": "what are your opening hours"}))
        .await;
    let session = first["session_id"].as_str().unwrap().to_string();
    let answer = first["message_id"].as_i64().unwrap();
    let (_, second) = app
        .chat("shop", json!({"session_id": session, "message": "zzz qqq"}))
        .await;
    assert_eq!(second["session_id"], session.as_str());
    let fallback = second["message_id"].as_i64().unwrap();
    let (_, stranger) = app.chat("shop", json!({"message": "a stranger"})).await;
    let stranger_session = stranger["session_id"].as_str().unwrap().to_string();

    let history = |session: String| {
        app.get(&format!("/api/chat/history?session_id={session}"))
            .header("X-Client-ID", "shop")
            .send()
    };
    let response = history(session.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let texts: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(texts.len(), 4, "{body}");
    assert_eq!(texts[0], ("visitor", "what are your opening hours"));
    assert_eq!(texts[1], ("bot", "9 to 5 on weekdays."));
    assert_eq!(texts[2].0, "visitor");
    assert_eq!(body["messages"][1]["id"], answer);
    assert!(!body.to_string().contains("a stranger"));
    // Another tenant does not know the session; nonsense is refused.
    let other = app
        .get(&format!("/api/chat/history?session_id={session}"))
        .header("X-Client-ID", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(
        history("0123456789abcdef0123456789abcdef".into())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(history("nope".into()).await.unwrap().status(), 400);

    let feedback = |session: &str, message: i64, helpful: bool| {
        app.post("/api/chat/feedback")
            .header("X-Client-ID", "shop")
            .json(&json!({"session_id": session, "message_id": message, "helpful": helpful}))
            .send()
    };
    assert_eq!(
        feedback(&session, answer, false).await.unwrap().status(),
        204
    );
    // A second click changes the verdict; it does not add one.
    assert_eq!(
        feedback(&session, answer, true).await.unwrap().status(),
        204
    );
    assert_eq!(
        feedback(&session, fallback, false).await.unwrap().status(),
        204
    );
    // Only a bot answer of one's own conversation.
    assert_eq!(
        feedback(&stranger_session, answer, false)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        feedback(&session, answer - 1, true).await.unwrap().status(),
        404,
        "the visitor's own message"
    );
    let body: Value = history(session.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["messages"][1]["helpful"], true);
    assert_eq!(body["messages"][3]["helpful"], false);
    assert_eq!(body["messages"][0]["helpful"], Value::Null);

    let (status, summary) = call(&app, "GET", "/api/analytics/summary", Some(&agent), None).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary["feedback"],
        json!({"thumbs_up": 1, "thumbs_down": 1})
    );
}
