use std::time::{Duration, Instant};

use chatter::tenancy::provision;

use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn client_id_header_selects_the_tenant() {
    let app = spawn_app().await;
    app.create_tenant("acme", "Acme Corp", None).await;
    let response = app
        .get("/api/widget/config")
        .header("X-Client-ID", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["bot_name"], "Acme Corp");
    assert_eq!(body["client_id"], "acme");
    assert!(body["greeting"].as_str().is_some_and(|g| !g.is_empty()));
}

#[tokio::test]
async fn host_selects_the_tenant_without_a_header() {
    let app = spawn_app().await;
    app.create_tenant("globex", "Globex", Some("chat.globex.test"))
        .await;
    let response = app
        .get("/api/widget/config")
        .header("Host", "chat.globex.test:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "a tenant's domain is an allowed host"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], "globex");
}

#[tokio::test]
async fn unknown_tenant_is_404_never_500() {
    let app = spawn_app().await;
    for id in ["nosuch", "Bad\"; DROP", "pg_catalog", ""] {
        let response = app
            .get("/api/widget/config")
            .header("X-Client-ID", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(error_code(response).await, "unknown_tenant");
    }
}

#[tokio::test]
async fn no_header_and_no_known_host_is_400() {
    let app = spawn_app().await;
    let response = app.get("/api/widget/config").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "missing_tenant");
}

#[tokio::test]
async fn a_suspended_tenant_is_404() {
    let app = spawn_app().await;
    app.create_tenant("sleepy", "Sleepy", None).await;
    let ok = app
        .get("/api/widget/config")
        .header("X-Client-ID", "sleepy")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    provision::set_active(&app.handle, "sleepy", false)
        .await
        .unwrap();
    let status = poll_status(&app, "sleepy", 404).await;
    assert_eq!(status, 404);
}

/// Another process (a pool of the test's own, as the CLI has) deletes the
/// tenant: the server's cache hears of it through NOTIFY.
#[tokio::test]
async fn a_deleted_tenant_is_404_at_once() {
    let app = spawn_app().await;
    app.create_tenant("gone", "Gone Ltd", Some("gone.test"))
        .await;
    let ok = app
        .get("/api/widget/config")
        .header("X-Client-ID", "gone")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "cached now");
    let ok = app
        .get("/api/widget/config")
        .header("Host", "gone.test")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "cached by host too");
    provision::delete_tenant(&app.handle, "gone").await.unwrap();
    let started = Instant::now();
    assert_eq!(poll_status(&app, "gone", 404).await, 404);
    // LISTEN/NOTIFY delivery: well under a second, never a cache lifetime.
    assert!(started.elapsed() < Duration::from_secs(2));
    let by_host = app
        .get("/api/widget/config")
        .header("Host", "gone.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_host.status(),
        400,
        "the domain no longer routes (nor is it allowed)"
    );
}

/// Requests the widget config until it answers `want` (at most 2 s).
async fn poll_status(app: &crate::helpers::TestApp, client_id: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = app
            .get("/api/widget/config")
            .header("X-Client-ID", client_id)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_public_tenant_and_its_domain_exist_on_first_start() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.tenancy.public_domain = Some("chatter-xyz.onrender.com".into())
    })
    .await;
    let response = app
        .get("/api/widget/config")
        .header("Host", "chatter-xyz.onrender.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], "public_tenant");
    let domains = provision::list_domains(&app.handle).await.unwrap();
    assert!(
        domains
            .iter()
            .any(|d| d.domain == "chatter-xyz.onrender.com" && d.is_primary)
    );
}
