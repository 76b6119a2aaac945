//! Browser sessions (the dashboard's): the cookie signs in like a bearer
//! token, unsafe methods need the CSRF proof, bearer clients are unchanged,
//! sign-out revokes the session and clears the cookies; `/app/` carries a
//! strict Content-Security-Policy.

use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

use crate::client_api::setup;
use crate::helpers::{TestApp, error_code};

const PASSWORD: &str = "correct horse battery";

/// Signs in by cookie; returns the `Cookie` header to send back and the CSRF token.
async fn browser_sign_in(app: &TestApp, email: &str) -> (String, String, Vec<String>) {
    let response = app
        .post("/api/auth/session")
        .header(ORIGIN, &app.addr)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let set: Vec<String> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let value = |name: &str| {
        set.iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|rest| rest.split(';').next().unwrap().to_string())
            .unwrap()
    };
    let session = value("chatter_session");
    let csrf = value("chatter_csrf");
    (
        format!("chatter_session={session}; chatter_csrf={csrf}"),
        csrf,
        set,
    )
}

fn new_faq() -> Value {
    json!({"question": "Do you deliver?", "answer": "Yes, everywhere."})
}

#[tokio::test]
async fn a_cookie_session_is_httponly_strict_and_signs_requests_in() {
    let (app, _owner, _agent, _other) = setup().await;
    let (cookies, csrf, set) = browser_sign_in(&app, "owner@shop.test").await;
    let session = set
        .iter()
        .find(|c| c.starts_with("chatter_session="))
        .unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain HTTP without a proxy: {session}"
    );
    let csrf_cookie = set.iter().find(|c| c.starts_with("chatter_csrf=")).unwrap();
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the page reads it: {csrf_cookie}"
    );
    assert!(!csrf.is_empty());

    // A read needs only the cookie.
    let me = app
        .get("/api/auth/user")
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "owner@shop.test");

    // A write with the proof goes through.
    let created = app
        .post("/api/faqs")
        .header("X-Client-ID", "shop")
        .header(COOKIE, &cookies)
        .header(ORIGIN, &app.addr)
        .header("X-CSRF-Token", &csrf)
        .json(&new_faq())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn cookie_writes_without_the_csrf_proof_are_refused() {
    let (app, owner, _agent, _other) = setup().await;
    let (cookies, csrf, _) = browser_sign_in(&app, "owner@shop.test").await;
    let post = |origin: Option<&str>, token: Option<&str>| {
        let mut request = app
            .post("/api/faqs")
            .header("X-Client-ID", "shop")
            .header(COOKIE, &cookies)
            .json(&new_faq());
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(token) = token {
            request = request.header("X-CSRF-Token", token);
        }
        request.send()
    };
    // No token, a wrong token, another site, no origin at all.
    for (origin, token) in [
        (Some(app.addr.as_str()), None),
        (Some(app.addr.as_str()), Some("0000")),
        (Some("http://evil.example"), Some(csrf.as_str())),
        (None, Some(csrf.as_str())),
    ] {
        let response = post(origin, token).await.unwrap();
        assert_eq!(response.status(), 403, "{origin:?} {token:?}");
        assert_eq!(error_code(response).await, "csrf");
    }
    // Bearer clients need none of it.
    let bearer = app
        .post("/api/faqs")
        .header("X-Client-ID", "shop")
        .bearer_auth(&owner)
        .json(&new_faq())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 201);
    // Nothing but the bearer's FAQ was written.
    let list: Value = app
        .get("/api/faqs")
        .header("X-Client-ID", "shop")
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Signing in from another site is refused too.
    let forged = app
        .post("/api/auth/session")
        .header(ORIGIN, "http://evil.example")
        .json(&json!({"email": "owner@shop.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn signing_out_revokes_the_session_and_clears_the_cookies() {
    let (app, _owner, _agent, _other) = setup().await;
    let (cookies, csrf, _) = browser_sign_in(&app, "agent@shop.test").await;
    // Without the proof, no sign-out (another site must not sign us out).
    let refused = app
        .http
        .delete(format!("{}/api/auth/session", app.addr))
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let out = app
        .http
        .delete(format!("{}/api/auth/session", app.addr))
        .header(COOKIE, &cookies)
        .header(ORIGIN, &app.addr)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let cleared: Vec<&str> = out
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    for cookie in cleared {
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
        assert!(cookie.split(';').next().unwrap().ends_with('='), "{cookie}");
    }
    // The old cookie no longer signs anyone in.
    let me = app
        .get("/api/auth/user")
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn behind_a_tls_proxy_the_cookies_are_secure() {
    let app = crate::helpers::spawn_app_with(|s| s.server.trust_proxy = true).await;
    chatter::auth::users::create_user(
        &app.handle,
        chatter::auth::users::NewUser {
            email: "owner@shop.test",
            password: PASSWORD,
            is_operator: false,
            membership: None,
        },
    )
    .await
    .unwrap();
    let response = app
        .post("/api/auth/session")
        .header(ORIGIN, &app.addr)
        .header("X-Forwarded-Proto", "https")
        .json(&json!({"email": "owner@shop.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for cookie in response.headers().get_all(SET_COOKIE) {
        assert!(cookie.to_str().unwrap().contains("; Secure"), "{cookie:?}");
    }
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_csp() {
    let app = crate::helpers::spawn_app().await;
    let page = app
        .get("/app/")
        .header("Accept-Encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["content-encoding"], "br");
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    let again = app
        .get("/app/")
        .header("Accept-Encoding", "br")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let module = app.get("/app/app.js").send().await.unwrap();
    assert_eq!(module.status(), 200);
    assert!(
        module.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(module.headers().contains_key("content-security-policy"));
    assert_eq!(app.get("/app/nope.js").send().await.unwrap().status(), 404);
    // The widget preview may be framed, by the dashboard only, under the
    // same strict policy; the real widget script, no inline script.
    let preview = app.get("/app/preview.html").send().await.unwrap();
    assert_eq!(preview.status(), 200);
    let preview_csp = preview.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        preview_csp.contains("frame-ancestors 'self'"),
        "{preview_csp}"
    );
    assert!(preview_csp.contains("script-src 'self'"), "{preview_csp}");
    assert!(!preview_csp.contains("unsafe-inline"), "{preview_csp}");
    assert_eq!(preview.headers()["x-frame-options"], "SAMEORIGIN");
    let html = preview.text().await.unwrap();
    assert!(
        html.contains(r#"src="/static/widget.js""#) && html.contains("data-preview"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "no inline script");
    let index = app.get("/app/").send().await.unwrap();
    assert_eq!(index.headers()["x-frame-options"], "DENY");
    // The chart library is vendored with its licence.
    assert_eq!(
        app.get("/app/vendor/uPlot.LICENSE.txt")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/app", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/app/");
}

#[tokio::test]
async fn signing_a_browser_out_leaves_bearer_tokens_alone() {
    let (app, owner, _agent, _other) = setup().await;
    let out = app
        .http
        .delete(format!("{}/api/auth/session", app.addr))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let me = app
        .get("/api/auth/user")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the API client's token still works");
}

/// "Sign out everywhere": every token and browser session of the user goes,
/// this browser's too (its cookies are cleared); other users keep theirs.
/// A cookie request needs the CSRF proof like any write.
#[tokio::test]
async fn signing_out_everywhere_revokes_every_session_of_the_user() {
    let (app, owner, agent, _other) = setup().await;
    let (cookies, csrf, _) = browser_sign_in(&app, "owner@shop.test").await;
    let (other_browser, _, _) = browser_sign_in(&app, "owner@shop.test").await;
    let second_token = crate::client_api::sign_in(&app, "owner@shop.test").await;
    let me = |cookie: Option<String>, token: Option<String>| {
        let mut request = app.get("/api/auth/user");
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(Some(other_browser.clone()), None).await, 200);

    // Without the CSRF proof: refused, nothing revoked.
    let refused = app
        .http
        .delete(format!("{}/api/auth/sessions", app.addr))
        .header(COOKIE, &cookies)
        .header(ORIGIN, &app.addr)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(me(Some(cookies.clone()), None).await, 200);

    let done = app
        .http
        .delete(format!("{}/api/auth/sessions", app.addr))
        .header(COOKIE, &cookies)
        .header(ORIGIN, &app.addr)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 204);
    let cleared: Vec<String> = done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("chatter_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    for (cookie, token) in [
        (Some(cookies.clone()), None),
        (Some(other_browser), None),
        (None, Some(owner.clone())),
        (None, Some(second_token)),
    ] {
        assert_eq!(me(cookie, token).await, 401);
    }
    assert_eq!(
        me(None, Some(agent)).await,
        200,
        "another user's session stays"
    );
    // A bearer client may do it too; signed out, it gets 401.
    let again = app
        .http
        .delete(format!("{}/api/auth/sessions", app.addr))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
}
