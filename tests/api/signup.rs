//! Sign-up (issue 13): off by default (404), a business's tenant and owner
//! made all or nothing, each bad field named, limits per address and per
//! email; mail through a local SMTP sink: the verification link and the
//! password-reset link, followed as a person would, once and not after
//! they expire; the operator's reset without mail.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use chatter::auth::{NewUser, Role, users};
use chatter::config::{Secret, Settings, SmtpSettings, SmtpTls};
use reqwest::header::{COOKIE, ORIGIN, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with};
use crate::smtp_sink::{Mail, SinkTls, SmtpSink};

const PASSWORD: &str = "correct horse battery";
const PUBLIC_URL: &str = "https://chat.example.com";
const MAIL_WAIT: Duration = Duration::from_secs(20);

fn form(slug: &str, email: &str) -> Value {
    json!({"business_name": "Acme Shoes", "slug": slug, "email": email, "password": PASSWORD})
}

fn enabled(settings: &mut Settings) {
    settings.signup.enabled = true;
}

fn with_mail(settings: &mut Settings, sink: &SmtpSink) {
    settings.signup.enabled = true;
    settings.server.public_url = Some(PUBLIC_URL.into());
    settings.smtp.host = Some("127.0.0.1".into());
    settings.smtp.port = sink.port;
    settings.smtp.tls = SmtpTls::None;
    settings.smtp.from = Some("Chatter <no-reply@chat.example.com>".into());
}

async fn sign_up(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post("/api/signup")
        .header(ORIGIN, &app.addr)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `Cookie` header that the response's `Set-Cookie`s make.
fn cookies_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Tenant rows, user rows and schemas named `slug` / `email`.
async fn traces(app: &TestApp, slug: &str, email: &str) -> (i64, i64, i64) {
    let client = app.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM public.tenants WHERE schema_name = $1), \
                    (SELECT count(*) FROM public.users WHERE email = $2), \
                    (SELECT count(*) FROM pg_namespace WHERE nspname = $1)",
            &[&slug, &email],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn sign_up_is_404_unless_enabled() {
    let app = spawn_app().await;
    let response = sign_up(&app, &form("acme_shoes", "ann@acme.test")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(app.get("/signup").send().await.unwrap().status(), 404);
    let options: Value = app
        .get("/api/auth/options")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options, json!({"signup": false, "password_reset": false}));
    // Without mail, reset is the operator's.
    let response = app
        .post("/api/auth/password-reset")
        .json(&json!({"email": "ann@acme.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(traces(&app, "acme_shoes", "ann@acme.test").await, (0, 0, 0));
}

#[tokio::test]
async fn a_business_signs_up_and_lands_signed_in_as_the_owner() {
    let app = spawn_app_with(enabled).await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/signup", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 303);
    assert_eq!(redirect.headers()["location"], "/app/#/signup");

    let response = sign_up(&app, &form("acme_shoes", " Ann@Acme.test ")).await;
    assert_eq!(response.status(), 201);
    let cookies = cookies_of(&response);
    assert!(cookies.contains("chatter_session=") && cookies.contains("chatter_csrf="));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"tenant": "acme_shoes", "email": "ann@acme.test",
               "verification_sent": false, "signed_in": true})
    );
    // The cookie is a session: the owner of the new tenant.
    let user: Value = app
        .get("/api/auth/user")
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        user["memberships"],
        json!([{"tenant": "acme_shoes", "role": "owner"}])
    );
    let config: Value = app
        .get("/api/bot/config")
        .header(COOKIE, &cookies)
        .header("X-Client-ID", "acme_shoes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["bot_name"], "Acme Shoes");
    // A tenant's chat works at once (the widget's route).
    let (status, _) = app.chat("acme_shoes", json!({"message": "hello"})).await;
    assert_eq!(status, 200);
    // And the password signs in.
    let login = app
        .post("/api/auth/login")
        .json(&json!({"email": "ann@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    // A client that is no browser (no Origin) gets the account, no cookies.
    let response = app
        .post("/api/signup")
        .json(&form("bolt_bikes", "bob@bolt.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(response.json::<Value>().await.unwrap()["signed_in"], false);
    // Another site may not sign a visitor in.
    let response = app
        .post("/api/signup")
        .header(ORIGIN, "https://evil.example")
        .json(&form("evil_shop", "eve@evil.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(traces(&app, "evil_shop", "eve@evil.test").await, (0, 0, 0));
}

#[tokio::test]
async fn each_bad_field_gets_a_400_that_names_it() {
    let app = spawn_app_with(enabled).await;
    let good = form("acme_shoes", "ann@acme.test");
    for (field, value) in [
        ("business_name", json!("")),
        ("business_name", json!("x".repeat(201))),
        ("slug", json!("Acme Shoes")),
        ("slug", json!("pg_catalog2")),
        ("slug", json!("public")),
        ("slug", json!("ab")),
        ("slug", json!("www")),
        ("email", json!("not-an-email")),
        ("password", json!("short")),
        ("password", json!("x".repeat(1025))),
    ] {
        let mut body = good.clone();
        body[field] = value.clone();
        let response = sign_up(&app, &body).await;
        assert_eq!(response.status(), 400, "{field} = {value}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{field}: {message}"
        );
    }
    // A missing field and an unknown one are named too.
    let response = sign_up(
        &app,
        &json!({"business_name": "A", "slug": "abc", "email": "a@b.test"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("password"));
    let mut extra = good.clone();
    extra["plan"] = json!("gold");
    let response = sign_up(&app, &extra).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("plan"));
    assert_eq!(traces(&app, "acme_shoes", "ann@acme.test").await, (0, 0, 0));
}

#[tokio::test]
async fn a_taken_slug_or_email_is_a_clear_409_and_leaves_nothing() {
    let app = spawn_app_with(enabled).await;
    app.create_tenant("acme_shoes", "Acme", None).await;
    users::create_user(
        &app.handle,
        NewUser {
            email: "taken@acme.test",
            password: PASSWORD,
            is_operator: false,
            membership: None,
        },
    )
    .await
    .unwrap();

    let response = sign_up(&app, &form("acme_shoes", "new@acme.test")).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "slug_taken");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acme_shoes")
    );
    assert_eq!(traces(&app, "acme_shoes", "new@acme.test").await, (1, 0, 1));

    let response = sign_up(&app, &form("fresh_shop", "Taken@acme.test")).await;
    assert_eq!(response.status(), 409);
    assert_eq!(error_code(response).await, "email_taken");
    assert_eq!(
        traces(&app, "fresh_shop", "taken@acme.test").await,
        (0, 1, 0)
    );
    // The public tenant's schema is taken too.
    let response = sign_up(&app, &form("public_tenant", "new@acme.test")).await;
    assert_eq!(response.status(), 409);
}

/// The last write of the sign-up fails (a constraint the test adds refuses
/// the owner's membership; on Citus too, where a reference table takes no
/// trigger): the tenant row, its schema with its migrated tables, and the
/// user, all written before it in the same transaction, are gone.
#[tokio::test]
async fn a_failure_at_the_last_step_leaves_no_tenant_no_user_no_schema() {
    let app = spawn_app_with(enabled).await;
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute(
            "ALTER TABLE public.memberships ADD CONSTRAINT test_refuses_owners \
             CHECK (role <> 'owner')",
        )
        .await
        .unwrap();
    let response = sign_up(&app, &form("acme_shoes", "ann@acme.test")).await;
    assert_eq!(response.status(), 500);
    assert_eq!(traces(&app, "acme_shoes", "ann@acme.test").await, (0, 0, 0));
    // Once the constraint is gone, the same sign-up succeeds.
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE public.memberships DROP CONSTRAINT test_refuses_owners")
        .await
        .unwrap();
    let response = sign_up(&app, &form("acme_shoes", "ann@acme.test")).await;
    assert_eq!(response.status(), 201);
    assert_eq!(traces(&app, "acme_shoes", "ann@acme.test").await, (1, 1, 1));
}

#[tokio::test]
async fn sign_ups_are_limited_per_address_and_per_email() {
    let app = spawn_app_with(|s| {
        s.signup.enabled = true;
        s.signup.per_address_per_hour = 3;
        s.signup.per_email_per_hour = 1;
    })
    .await;
    // The email's bucket: the second try for it waits, even with a new slug.
    assert_eq!(
        sign_up(&app, &form("first_shop", "ann@acme.test"))
            .await
            .status(),
        201
    );
    let response = sign_up(&app, &form("second_shop", "ANN@acme.test")).await;
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 60, "one an hour: {wait}");
    assert_eq!(traces(&app, "second_shop", "ann@acme.test").await.0, 0);
    // The address's bucket: three tries an hour, whatever they were.
    assert_eq!(
        sign_up(&app, &form("third_shop", "cat@acme.test"))
            .await
            .status(),
        201
    );
    let response = sign_up(&app, &form("fourth_shop", "dan@acme.test")).await;
    assert_eq!(response.status(), 429, "the fourth try from this address");
    assert!(response.headers().contains_key(RETRY_AFTER));
}

/// The token at the end of a mailed link, after `#/<page>/`.
fn token_in(mail: &Mail, page: &str) -> String {
    let link = mail.link();
    let prefix = format!("{PUBLIC_URL}/app/#/{page}/");
    assert!(link.starts_with(&prefix), "{link}");
    link[prefix.len()..].to_string()
}

#[tokio::test]
async fn the_verification_link_marks_the_address_verified_once() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_app_with(|s| {
        with_mail(s, &sink);
        s.smtp.username = Some("chatter".into());
        s.smtp.password = Some(Secret::new("relay pass"));
    })
    .await;
    let options: Value = app
        .get("/api/auth/options")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options, json!({"signup": true, "password_reset": true}));
    let response = sign_up(&app, &form("acme_shoes", "ann@acme.test")).await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.json::<Value>().await.unwrap()["verification_sent"],
        true
    );

    let mail = sink.next(MAIL_WAIT).await;
    assert_eq!(mail.to, vec!["ann@acme.test"]);
    assert_eq!(mail.from, "no-reply@chat.example.com");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm your email address")
    );
    assert_eq!(mail.auth, Some(("chatter".into(), "relay pass".into())));
    let token = token_in(&mail, "verify");
    let verified = || async {
        let row = app
            .pool
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT email_verified_at IS NOT NULL FROM public.users WHERE email = 'ann@acme.test'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, bool>(0)
    };
    assert!(!verified().await);
    // A new link on request: the first one stops working.
    let session: Value = login(&app, "ann@acme.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let bearer = session["token"].as_str().unwrap().to_string();
    let resend = || {
        app.post("/api/auth/verify-email/resend")
            .bearer_auth(&bearer)
            .send()
    };
    let resent: Value = resend().await.unwrap().json().await.unwrap();
    assert_eq!(resent, json!({"sent": true}));
    let first = token;
    let token = token_in(&sink.next(MAIL_WAIT).await, "verify");
    assert_ne!(first, token);
    let stale = app
        .post("/api/auth/verify-email")
        .json(&json!({"token": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 400, "the older link stopped working");
    let follow = || {
        app.post("/api/auth/verify-email")
            .json(&json!({"token": token}))
            .send()
    };
    assert_eq!(follow().await.unwrap().status(), 204);
    assert!(verified().await);
    let again = follow().await.unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(error_code(again).await, "invalid_link");
    let user: Value = app
        .get("/api/auth/user")
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["email_verified"], true);
    let resent: Value = resend().await.unwrap().json().await.unwrap();
    assert_eq!(resent, json!({"sent": false}), "confirmed already: no mail");
    assert!(sink.nothing_within(Duration::from_millis(300)).await);
    // Only the link's digest was stored.
    let stored: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM public.email_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a used link is deleted");
}

async fn agent(app: &TestApp, email: &str) {
    app.create_tenant("shop", "Shop", None).await;
    users::create_user(
        &app.handle,
        NewUser {
            email,
            password: PASSWORD,
            is_operator: false,
            membership: Some(("shop", Role::Agent)),
        },
    )
    .await
    .unwrap();
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post("/api/auth/login")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn ask_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.post("/api/auth/password-reset")
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reset_link_sets_the_new_password_once_and_signs_out_everywhere() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_app_with(|s| with_mail(s, &sink)).await;
    agent(&app, "agent@shop.test").await;
    let old_session: Value = login(&app, "agent@shop.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let old_token = old_session["token"].as_str().unwrap().to_string();

    // Unknown and known emails get the same answer; only one gets mail.
    let unknown = ask_reset(&app, "nobody@shop.test").await;
    assert_eq!(unknown.status(), 202);
    let unknown: Value = unknown.json().await.unwrap();
    assert!(sink.nothing_within(Duration::from_secs(1)).await);
    let known = ask_reset(&app, "Agent@Shop.test").await;
    assert_eq!(known.status(), 202);
    assert_eq!(known.json::<Value>().await.unwrap(), unknown);

    let mail = sink.next(MAIL_WAIT).await;
    assert_eq!(mail.to, vec!["agent@shop.test"]);
    assert_eq!(mail.auth, None, "no credentials configured, none sent");
    let token = token_in(&mail, "reset");
    let confirm = |password: &'static str| {
        app.post("/api/auth/password-reset/confirm")
            .json(&json!({"token": token, "new_password": password}))
            .send()
    };
    // A bad new password is named and spends nothing.
    let short = confirm("short").await.unwrap();
    assert_eq!(short.status(), 400);
    assert!(short.text().await.unwrap().contains("new_password"));
    assert_eq!(confirm("a brand new password").await.unwrap().status(), 204);
    assert_eq!(login(&app, "agent@shop.test", PASSWORD).await.status(), 401);
    assert_eq!(
        login(&app, "agent@shop.test", "a brand new password")
            .await
            .status(),
        200
    );
    let old = app
        .get("/api/auth/user")
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the reset signed the old session out");
    // The same link twice: refused, and the password stays.
    let again = confirm("yet another password").await.unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(error_code(again).await, "invalid_link");
    assert_eq!(
        login(&app, "agent@shop.test", "a brand new password")
            .await
            .status(),
        200
    );
    // A token of the wrong shape never reaches the database.
    let response = app
        .post("/api/auth/password-reset/confirm")
        .json(&json!({"token": "x".repeat(5000), "new_password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_expired_reset_link_is_refused() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_app_with(|s| with_mail(s, &sink)).await;
    agent(&app, "agent@shop.test").await;
    assert_eq!(ask_reset(&app, "agent@shop.test").await.status(), 202);
    let token = token_in(&sink.next(MAIL_WAIT).await, "reset");
    // The hour passes.
    app.pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE public.email_tokens SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let response = app
        .post("/api/auth/password-reset/confirm")
        .json(&json!({"token": token, "new_password": "a brand new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_link");
    assert_eq!(login(&app, "agent@shop.test", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn reset_requests_are_limited_per_email_and_bad_emails_named() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_app_with(|s| {
        with_mail(s, &sink);
        s.auth.password_resets_per_hour = 2;
    })
    .await;
    agent(&app, "agent@shop.test").await;
    assert_eq!(ask_reset(&app, "agent@shop.test").await.status(), 202);
    assert_eq!(ask_reset(&app, "agent@shop.test").await.status(), 202);
    let third = ask_reset(&app, "AGENT@shop.test").await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key(RETRY_AFTER));
    sink.next(MAIL_WAIT).await;
    sink.next(MAIL_WAIT).await;
    assert!(sink.nothing_within(Duration::from_millis(500)).await);
    let bad = ask_reset(&app, "not an email").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("email"));
}

#[tokio::test]
async fn an_operator_resets_a_password_from_the_command_line() {
    let app = spawn_app().await;
    agent(&app, "agent@shop.test").await;
    let session: Value = login(&app, "agent@shop.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let url = app.db.url.clone();
    let run = move |email: &str, stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatter"))
            .args(["user", "reset-password", email])
            .env("DATABASE_URL", &url)
            .env_remove("SECRET_KEY")
            .env("DEBUG", "True")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let outputs = tokio::task::spawn_blocking(move || {
        (
            run("agent@shop.test", "operator set this\n"),
            run("nobody@shop.test", "operator set this\n"),
            run("agent@shop.test", "short\n"),
        )
    })
    .await
    .unwrap();
    let (done, unknown, short) = outputs;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody@shop.test"));
    assert!(!short.status.success());
    assert_eq!(
        login(&app, "agent@shop.test", "operator set this")
            .await
            .status(),
        200
    );
    assert_eq!(login(&app, "agent@shop.test", PASSWORD).await.status(), 401);
    let old = app
        .get("/api/auth/user")
        .bearer_auth(session["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
}

/// The `Mailer` other code sends through (usage notices): a message reaches
/// the relay as written, and `starttls` never falls back to plain text when
/// the relay offers no STARTTLS.
#[tokio::test]
async fn the_mailer_delivers_and_never_downgrades_starttls() {
    use chatter::mail::{MailError, Mailer};
    let mut sink = SmtpSink::start().await;
    let mut smtp = chatter::config::SmtpSettings {
        host: Some("127.0.0.1".into()),
        port: sink.port,
        from: Some("Chatter <no-reply@chat.example.com>".into()),
        tls: SmtpTls::None,
        ..Default::default()
    };
    let mailer = Mailer::from_settings(&smtp).unwrap().unwrap();
    mailer
        .send(
            "owner@acme.test",
            "You have used 80% of this month's conversations",
            "Héllo: 80% of 1,000 conversations.\nhttps://chat.example.com/app/#/billing",
        )
        .await
        .unwrap();
    let mail = sink.next(MAIL_WAIT).await;
    assert_eq!(mail.to, vec!["owner@acme.test"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("You have used 80% of this month's conversations")
    );
    assert!(
        mail.text()
            .starts_with("Héllo: 80% of 1,000 conversations.\n"),
        "{}",
        mail.text()
    );
    assert_eq!(mail.link(), "https://chat.example.com/app/#/billing");

    smtp.tls = SmtpTls::Starttls;
    let mailer = Mailer::from_settings(&smtp).unwrap().unwrap();
    let err = mailer
        .send("owner@acme.test", "plain?", "must not go in the clear")
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Send(_)), "{err:?}");
    assert!(sink.nothing_within(Duration::from_millis(300)).await);
}

/// The settings that reach `sink` with `tls`, trusting the CA in `ca_file`.
fn relay(sink: &SmtpSink, tls: SmtpTls, ca_file: Option<&std::path::Path>) -> SmtpSettings {
    SmtpSettings {
        host: Some("127.0.0.1".into()),
        port: sink.port,
        from: Some("Chatter <no-reply@chat.example.com>".into()),
        username: Some("chatter".into()),
        password: Some(Secret::new("relay pass")),
        tls,
        ca_file: ca_file.map(std::path::Path::to_path_buf),
        ..Default::default()
    }
}

/// The sink's TLS mode and the mailer's setting that speaks it.
const TLS_MODES: [(SinkTls, SmtpTls); 2] = [
    (SinkTls::Starttls, SmtpTls::Starttls),
    (SinkTls::Tls, SmtpTls::Tls),
];

/// Both TLS paths end to end: lettre against a sink whose certificate comes
/// from a private CA, trusted through `smtp.ca_file`. The message and the
/// credentials reach the sink only inside TLS, intact.
#[tokio::test]
async fn the_mailer_delivers_over_starttls_and_implicit_tls_to_a_relay_on_a_private_ca() {
    use chatter::mail::Mailer;
    for (mode, tls) in TLS_MODES {
        let mut sink = SmtpSink::start_with(mode).await;
        let smtp = relay(&sink, tls, Some(sink.ca_file()));
        let mailer = Mailer::from_settings(&smtp).unwrap().unwrap();
        mailer
            .send(
                "owner@acme.test",
                "Confirm your address for Acme Shoes",
                "Héllo over TLS.\nhttps://chat.example.com/app/#/verify/abc",
            )
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        let mail = sink.next(MAIL_WAIT).await;
        assert!(mail.tls, "{tls:?}: the message came in the clear");
        assert_eq!(mail.from, "no-reply@chat.example.com", "{tls:?}");
        assert_eq!(mail.to, vec!["owner@acme.test"], "{tls:?}");
        assert_eq!(
            mail.header("To").as_deref(),
            Some("owner@acme.test"),
            "{tls:?}"
        );
        assert_eq!(
            mail.auth,
            Some(("chatter".to_string(), "relay pass".to_string())),
            "{tls:?}"
        );
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("Confirm your address for Acme Shoes"),
            "{tls:?}"
        );
        assert!(
            mail.text()
                .starts_with("Héllo over TLS.\nhttps://chat.example.com/app/#/verify/abc"),
            "{tls:?}: {}",
            mail.text()
        );
        assert_eq!(mail.link(), "https://chat.example.com/app/#/verify/abc");
    }
}

/// A relay whose certificate the mailer cannot trust (no `ca_file`, so the
/// Mozilla roots only, or another CA's file) gets nothing: no credentials,
/// no message, and the caller hears `Send`.
#[tokio::test]
async fn the_mailer_refuses_a_relay_it_does_not_trust() {
    use chatter::mail::{MailError, Mailer};
    for (mode, tls) in TLS_MODES {
        let mut sink = SmtpSink::start_with(mode).await;
        let stranger = SmtpSink::start_with(mode).await;
        for ca_file in [None, Some(stranger.ca_file())] {
            let mailer = Mailer::from_settings(&relay(&sink, tls, ca_file))
                .unwrap()
                .unwrap();
            let err = mailer
                .send("owner@acme.test", "trusted?", "must not reach an impostor")
                .await
                .unwrap_err();
            assert!(
                matches!(err, MailError::Send(_)),
                "{tls:?}, {ca_file:?}: {err:?}"
            );
            assert!(
                err.to_string().contains("certificate"),
                "{tls:?}, {ca_file:?}: {err}"
            );
            assert!(sink.nothing_within(Duration::from_millis(300)).await);
        }
    }
}

/// A `ca_file` that is not there stops the mailer from being built, naming
/// the file, whichever `tls` is set.
#[test]
fn a_missing_ca_file_is_a_settings_error_naming_it() {
    use chatter::mail::{MailError, Mailer};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay-ca.pem");
    for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
        let smtp = SmtpSettings {
            host: Some("127.0.0.1".into()),
            from: Some("Chatter <no-reply@chat.example.com>".into()),
            tls,
            ca_file: Some(path.clone()),
            ..Default::default()
        };
        let err = match Mailer::from_settings(&smtp) {
            Err(e) => e,
            Ok(_) => panic!("{tls:?}: a mailer without its ca_file"),
        };
        assert!(matches!(err, MailError::Settings(_)), "{tls:?}: {err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{tls:?}: {err}"
        );
    }
}

/// Each resend mails the address: limited like reset requests (the same
/// bucket per address), 429 with `Retry-After`, and nothing mailed.
#[tokio::test]
async fn verification_resends_are_limited_per_email() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_app_with(|s| {
        with_mail(s, &sink);
        s.auth.password_resets_per_hour = 2;
    })
    .await;
    agent(&app, "agent@shop.test").await;
    let session: Value = login(&app, "agent@shop.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let bearer = session["token"].as_str().unwrap().to_string();
    let resend = || {
        app.post("/api/auth/verify-email/resend")
            .bearer_auth(&bearer)
            .send()
    };
    for _ in 0..2 {
        let resent: Value = resend().await.unwrap().json().await.unwrap();
        assert_eq!(resent, json!({"sent": true}));
        sink.next(MAIL_WAIT).await;
    }
    let third = resend().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key(RETRY_AFTER));
    assert!(sink.nothing_within(Duration::from_millis(500)).await);
    // A reset request for the same address shares the bucket.
    assert_eq!(ask_reset(&app, "agent@shop.test").await.status(), 429);
}
