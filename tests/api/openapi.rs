//! The OpenAPI document: served, printed by the CLI, true to the router,
//! and readable at `/api/docs` with nothing fetched from elsewhere.

use std::process::Command;

use serde_json::Value;

use crate::helpers::spawn_app;

async fn document(app: &crate::helpers::TestApp) -> Value {
    let response = app.get("/api/schema.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_describes_the_contract() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let ops = operations(&doc);
    for (method, path) in [
        ("post", "/api/chat"),
        ("get", "/api/chat/history"),
        ("post", "/api/chat/feedback"),
        ("get", "/api/widget/config"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/logout"),
        ("get", "/api/auth/user"),
        ("post", "/api/auth/password/change"),
        ("post", "/api/signup"),
        ("get", "/signup"),
        ("get", "/api/auth/options"),
        ("post", "/api/auth/password-reset"),
        ("post", "/api/auth/password-reset/confirm"),
        ("post", "/api/auth/verify-email"),
        ("post", "/api/auth/verify-email/resend"),
        ("get", "/api/bot/config"),
        ("put", "/api/bot/config"),
        ("get", "/api/faqs"),
        ("post", "/api/faqs"),
        ("get", "/api/faqs/{id}"),
        ("put", "/api/faqs/{id}"),
        ("delete", "/api/faqs/{id}"),
        ("post", "/api/faqs/import"),
        ("post", "/api/faqs/{id}/phrasings"),
        ("delete", "/api/faqs/{id}/phrasings"),
        ("get", "/api/faqs/health"),
        ("get", "/api/conversations"),
        ("get", "/api/conversations/{id}"),
        ("delete", "/api/conversations/{id}"),
        ("get", "/api/conversations/export.csv"),
        ("get", "/api/analytics/summary"),
        ("get", "/api/members"),
        ("post", "/api/members"),
        ("put", "/api/members/{email}"),
        ("delete", "/api/members/{email}"),
        ("delete", "/api/auth/sessions"),
        ("get", "/api/tenants"),
        ("post", "/api/tenants"),
        ("delete", "/api/tenants/{schema}"),
        ("get", "/api/domains"),
        ("post", "/api/domains"),
        ("delete", "/api/domains"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    ] {
        assert!(
            ops.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is not documented"
        );
    }
    // Tenant routes take the tenant header; account routes do not.
    let header_names = |op: &Value| -> Vec<String> {
        op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "header")
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let op = |method: &str, path: &str| doc["paths"][path][method].clone();
    assert_eq!(header_names(&op("post", "/api/chat")), ["X-Client-ID"]);
    assert!(header_names(&op("post", "/api/auth/login")).is_empty());
    // Secured routes say so, and answer 401 in the document as they do live.
    let faqs = op("get", "/api/faqs");
    assert_eq!(faqs["security"][0]["bearer"], serde_json::json!([]));
    assert!(faqs["responses"]["401"].is_object());
    assert!(faqs["responses"]["404"].is_object(), "unknown tenant");
    assert!(op("post", "/api/faqs")["responses"]["413"].is_object());
    assert!(op("post", "/api/auth/login")["responses"]["429"].is_object());
    // Sign-up is documented off (404) as well as on, with its refusals.
    for status in ["201", "400", "403", "404", "409", "429"] {
        assert!(
            op("post", "/api/signup")["responses"][status].is_object(),
            "POST /api/signup documents {status}"
        );
    }
    for status in ["202", "404", "429"] {
        assert!(
            op("post", "/api/auth/password-reset")["responses"][status].is_object(),
            "POST /api/auth/password-reset documents {status}"
        );
    }
    // The widget's routes: fair use, CORS, and the tenant header.
    for (method, path) in [("post", "/api/chat"), ("post", "/api/chat/feedback")] {
        assert!(op(method, path)["responses"]["429"].is_object(), "{path}");
        assert!(op(method, path)["responses"]["403"].is_object(), "{path}");
    }
    assert_eq!(
        header_names(&op("get", "/api/chat/history")),
        ["X-Client-ID"]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    app.stop().await;
}

/// Each documented operation reaches a handler: not the fallback's 404
/// `no such route`, not a 405. Without credentials, protected ones are 401.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    for (method, path, op) in operations(&doc) {
        let url = path
            .replace("{id}", "1")
            .replace("{schema}", "no_such_tenant");
        let request = app
            .http
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{url}", app.addr),
            )
            .header("X-Client-ID", "public_tenant");
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{method} {path} is not routed");
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains("no such route"),
            "{method} {path} fell through to the fallback"
        );
        if op.get("security").is_some() {
            assert_eq!(status, 401, "{method} {path} needs a token");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_cli_prints_the_same_document() {
    let app = spawn_app().await;
    let served = document(&app).await;
    // No database, no secret: printing the document needs neither.
    let out = Command::new(env!("CARGO_BIN_EXE_chatter"))
        .arg("openapi")
        .env_remove("DATABASE_URL")
        .env_remove("SECRET_KEY")
        .env("DEBUG", "False")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, served);
    app.stop().await;
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = spawn_app().await;
    let response = app.get("/api/docs").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("/api/schema.json"));
    // Nothing is loaded from another host: no CDN, works offline.
    for attribute in ["src=\"http", "href=\"http", "src='http", "@import"] {
        assert!(!page.contains(attribute), "the page loads {attribute}…");
    }
    app.stop().await;
}

/// Found by schemathesis: axum answered a bad path segment in plain text.
#[tokio::test]
async fn a_path_segment_of_the_wrong_type_is_a_json_400() {
    let app = spawn_app().await;
    let token = crate::client_api::operator(&app).await;
    for url in ["/api/faqs/9223372036854775808", "/api/conversations/abc"] {
        let response = app
            .get(url)
            .header("X-Client-ID", "public_tenant")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{url}");
        assert_eq!(crate::helpers::error_code(response).await, "bad_request");
    }
    app.stop().await;
}

/// Found by schemathesis: PostgreSQL refuses text holding NUL, which was a
/// 500. It is the client's input: 400, and nothing is stored.
#[tokio::test]
async fn text_with_a_nul_character_is_a_400_not_a_500() {
    let app = spawn_app().await;
    let token = crate::client_api::operator(&app).await;
    let with_nul = serde_json::json!({"question": "a\u{0}b", "answer": "yes"});
    for (path, body) in [
        ("/api/faqs", with_nul.clone()),
        ("/api/faqs/import", serde_json::json!([with_nul])),
    ] {
        let response = app
            .post(path)
            .header("X-Client-ID", "public_tenant")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("NUL"),
            "{body}"
        );
    }
    let search = app
        .get("/api/conversations?q=a%00b")
        .header("X-Client-ID", "public_tenant")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 400);
    let (status, _) = app
        .chat(
            "public_tenant",
            serde_json::json!({"message": "hello\u{0}"}),
        )
        .await;
    assert_eq!(status, 400);
    let faqs: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM public_tenant.faqs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(faqs, 0);
    app.stop().await;
}

/// The message limit is a setting; the document says the one in force.
#[tokio::test]
async fn the_documented_message_limit_is_the_configured_one() {
    let app = crate::helpers::spawn_app_with(|s| s.chat.max_message_chars = 500).await;
    let doc = document(&app).await;
    assert_eq!(
        doc["components"]["schemas"]["ChatRequest"]["properties"]["message"]["maxLength"], 500,
        "{}",
        doc["components"]["schemas"]["ChatRequest"]
    );
    app.stop().await;
}
