//! Accounts and sign-in through the HTTP API and the CLI: tokens, their
//! expiry and revocation, password changes and hash upgrades, membership.

use std::io::Write;
use std::process::{Command, Stdio};

use chatter::auth::password;
use chatter::auth::users::{self, NewUser, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

async fn with_user(app: &TestApp, membership: Option<(&str, Role)>, operator: bool) {
    users::create_user(
        &app.handle,
        NewUser {
            email: EMAIL,
            password: PASSWORD,
            is_operator: operator,
            membership,
        },
    )
    .await
    .unwrap();
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let response = app
        .post("/api/auth/login")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn token(app: &TestApp) -> String {
    let (status, body) = login(app, EMAIL, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn me(app: &TestApp, authorization: &str) -> (u16, Value) {
    let response = app
        .get("/api/auth/user")
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn execute(app: &TestApp, sql: &str) {
    let client = app.pool.get().await.unwrap();
    client.batch_execute(sql).await.unwrap();
}

#[tokio::test]
async fn login_gives_a_token_that_names_the_user() {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    with_user(&app, Some(("shop", Role::Owner)), false).await;
    // Any case and surrounding space: emails are stored lowercased.
    let (status, body) = login(&app, " Ann@Example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 43, "256 bits, base64url without padding");

    let (status, body) = me(&app, &format!("Bearer {token}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"email": EMAIL, "email_verified": false, "is_operator": false,
               "memberships": [{"tenant": "shop", "role": "owner"}]})
    );
    // Django REST framework's scheme works too.
    let (status, _) = me(&app, &format!("Token {token}")).await;
    assert_eq!(status, 200);

    // Only the SHA-256 is stored: no row holds the token's text.
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT t::text AS row, encode(token_sha256, 'escape') AS raw, \
             token_sha256 = sha256($1::text::bytea) AS hashed \
             FROM public.auth_tokens t",
            &[&token],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row: String = rows[0].get("row");
    let raw: String = rows[0].get("raw");
    assert!(!row.contains(token) && !raw.contains(token));
    assert!(rows[0].get::<_, bool>("hashed"));
}

#[tokio::test]
async fn bad_credentials_are_401_alike_and_bad_headers_401() {
    let app = spawn_app().await;
    with_user(&app, None, false).await;
    let (wrong_status, wrong) = login(&app, EMAIL, "not the password").await;
    let (unknown_status, unknown) = login(&app, "bob@example.com", PASSWORD).await;
    assert_eq!(wrong_status, 401);
    assert_eq!(unknown_status, 401);
    assert_eq!(
        wrong, unknown,
        "the answer must not tell which emails exist"
    );
    assert_eq!(wrong["error"]["code"], "invalid_credentials");

    let token = token(&app).await;
    for bad in [
        String::new(),
        token.clone(),
        format!("Basic {token}"),
        format!("Bearer {token}x"),
        "Bearer ".to_string(),
        format!("Bearer {}", "A".repeat(43)),
    ] {
        let (status, body) = me(&app, &bad).await;
        assert_eq!(status, 401, "{bad:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    let response = app.get("/api/auth/user").send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn logout_revokes_the_presented_token_only() {
    let app = spawn_app().await;
    with_user(&app, None, false).await;
    let first = token(&app).await;
    let second = token(&app).await;
    let response = app
        .post("/api/auth/logout")
        .header("Authorization", format!("Bearer {first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(me(&app, &format!("Bearer {first}")).await.0, 401);
    assert_eq!(me(&app, &format!("Bearer {second}")).await.0, 200);
}

#[tokio::test]
async fn a_password_change_signs_out_every_other_session() {
    let app = spawn_app().await;
    with_user(&app, None, false).await;
    let current = token(&app).await;
    let other = token(&app).await;
    let change = |old: &str, new: &str| {
        app.post("/api/auth/password/change")
            .header("Authorization", format!("Bearer {current}"))
            .json(&json!({"old_password": old, "new_password": new}))
            .send()
    };
    // A wrong old password is a bad field (400 naming it), not a dead token
    // (401 would send the dashboard to sign in).
    let response = change("wrong password", "a new password").await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_password", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("old_password"),
        "{body}"
    );
    let response = change(PASSWORD, "short").await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(me(&app, &format!("Bearer {other}")).await.0, 200);

    let response = change(PASSWORD, "a new password").await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(me(&app, &format!("Bearer {current}")).await.0, 200);
    assert_eq!(me(&app, &format!("Bearer {other}")).await.0, 401);
    assert_eq!(login(&app, EMAIL, PASSWORD).await.0, 401);
    assert_eq!(login(&app, EMAIL, "a new password").await.0, 200);
}

#[tokio::test]
async fn tokens_expire_when_idle_and_at_their_maximum_age() {
    let app = spawn_app().await;
    with_user(&app, None, false).await;
    let idle = token(&app).await;
    let old = token(&app).await;
    let fresh = token(&app).await;
    let digest = |t: &str| format!("sha256('{t}'::bytea)");
    // 23 hours idle: alive, and the use moves last_used_at forward.
    execute(&app, &format!(
        "UPDATE public.auth_tokens SET last_used_at = now() - interval '23 hours' WHERE token_sha256 = {}",
        digest(&fresh)
    ))
    .await;
    assert_eq!(me(&app, &format!("Bearer {fresh}")).await.0, 200);
    let client = app.pool.get().await.unwrap();
    let touched: bool = client
        .query_one(
            &format!(
                "SELECT last_used_at > now() - interval '1 minute' FROM public.auth_tokens WHERE token_sha256 = {}",
                digest(&fresh)
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(touched, "a use after a minute refreshes last_used_at");

    execute(&app, &format!(
        "UPDATE public.auth_tokens SET last_used_at = now() - interval '25 hours' WHERE token_sha256 = {}",
        digest(&idle)
    ))
    .await;
    assert_eq!(me(&app, &format!("Bearer {idle}")).await.0, 401);

    // Used every day, but created 31 days ago: dead all the same.
    execute(&app, &format!(
        "UPDATE public.auth_tokens SET created_at = now() - interval '31 days' WHERE token_sha256 = {}",
        digest(&old)
    ))
    .await;
    assert_eq!(me(&app, &format!("Bearer {old}")).await.0, 401);
    assert_eq!(me(&app, &format!("Bearer {fresh}")).await.0, 200);
}

#[tokio::test]
async fn short_expiries_from_the_settings_apply() {
    let app = spawn_app_with(|s| {
        s.auth.idle_timeout_secs = 1;
        s.auth.max_age_secs = 3600;
    })
    .await;
    with_user(&app, None, false).await;
    let token = token(&app).await;
    assert_eq!(me(&app, &format!("Bearer {token}")).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(me(&app, &format!("Bearer {token}")).await.0, 401);
}

#[tokio::test]
async fn a_weak_hash_is_upgraded_at_login() {
    let app = spawn_app().await;
    let weak = password::hash_with(PASSWORD, 4096, 1, 1).unwrap();
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO public.users (email, password_hash) VALUES ($1, $2)",
            &[&EMAIL, &weak],
        )
        .await
        .unwrap();
    token(&app).await;
    let stored: String = client
        .query_one("SELECT password_hash FROM public.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, weak);
    assert_eq!(
        password::parameters(&stored),
        Some((password::MEMORY_KIB, password::ITERATIONS, password::LANES))
    );
    assert_eq!(login(&app, EMAIL, PASSWORD).await.0, 200);
}

#[tokio::test]
async fn member_admits_members_and_operators_only() {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    app.create_tenant("other", "Other", None).await;
    with_user(&app, Some(("shop", Role::Agent)), false).await;
    users::create_user(
        &app.handle,
        NewUser {
            email: "op@example.com",
            password: PASSWORD,
            is_operator: true,
            membership: None,
        },
    )
    .await
    .unwrap();
    let agent = token(&app).await;
    let (_, body) = login(&app, "op@example.com", PASSWORD).await;
    let operator = body["token"].as_str().unwrap().to_string();

    let membership = |tenant: &str, token: Option<&str>| {
        let mut request = app
            .get("/api/auth/membership")
            .header("X-Client-ID", tenant);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    let response = membership("shop", Some(&agent)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tenant"], "shop");
    assert_eq!(body["role"], "agent");
    let response = membership("other", Some(&agent)).await.unwrap();
    assert_eq!(response.status(), 403);
    let response = membership("other", Some(&operator)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["role"], Value::Null);
    assert_eq!(body["is_operator"], true);
    let response = membership("shop", None).await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn auth_routes_still_check_the_host() {
    let app = spawn_app().await;
    let response = app
        .post("/api/auth/login")
        .header("Host", "evil.example.com")
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

fn create_user_cli(db_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatter"))
        .args(["user", "create"])
        .args(args)
        .env("DATABASE_URL", db_url)
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
}

#[tokio::test]
async fn user_create_from_the_command_line() {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    let url = app.db.url.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        [
            create_user_cli(
                &url,
                &["Ann@Example.com", "--tenant", "shop", "--role", "owner"],
                &format!("{PASSWORD}\nignored\n"),
            ),
            create_user_cli(&url, &["empty@example.com"], "\n"),
            create_user_cli(&url, &["ann@example.com"], "another password\n"),
            create_user_cli(
                &url,
                &["x@example.com", "--tenant", "nope", "--role", "agent"],
                "password123\n",
            ),
        ]
    })
    .await
    .unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let [created, empty, duplicate, unknown] = &outputs;
    assert!(created.status.success(), "{}", text(created));
    assert!(
        text(created).contains("ann@example.com"),
        "{}",
        text(created)
    );
    assert!(!empty.status.success());
    assert!(text(empty).contains("password"), "{}", text(empty));
    assert!(!duplicate.status.success());
    assert!(
        text(duplicate).contains("already exists"),
        "{}",
        text(duplicate)
    );
    assert!(!unknown.status.success());
    assert!(text(unknown).contains("nope"), "{}", text(unknown));

    // The first line was the password; the membership was made.
    let token = token(&app).await;
    let (status, body) = me(&app, &format!("Bearer {token}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["memberships"],
        json!([{"tenant": "shop", "role": "owner"}])
    );
    let client = app.pool.get().await.unwrap();
    let users: i64 = client
        .query_one("SELECT count(*) FROM public.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "the failed commands created nobody");
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account_and_address_without_locking_the_user_out() {
    // Behind a proxy: addresses come from X-Forwarded-For, as on Render.
    let app = spawn_app_with(|s| s.server.trust_proxy = true).await;
    with_user(&app, None, false).await;
    let attempt = |address: &'static str, password: &'static str| {
        app.post("/api/auth/login")
            .header("X-Forwarded-For", format!("198.51.100.7, {address}"))
            .json(&json!({"email": EMAIL, "password": password}))
            .send()
    };
    for _ in 0..10 {
        assert_eq!(
            attempt("203.0.113.1", "wrong password")
                .await
                .unwrap()
                .status(),
            401
        );
    }
    let refused = attempt("203.0.113.1", PASSWORD).await.unwrap();
    assert_eq!(
        refused.status(),
        429,
        "the 11th attempt in a minute is refused, even with the right password"
    );
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // The real user, from another address, still signs in.
    assert_eq!(
        attempt("203.0.113.2", PASSWORD).await.unwrap().status(),
        200
    );
    // One address trying many accounts hits its own limit (three times the per-account one).
    let mut statuses = Vec::new();
    for i in 0..32 {
        let response = app
            .post("/api/auth/login")
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&json!({"email": format!("user{i}@example.com"), "password": "whatever123"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[31], 429, "{statuses:?}");
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forged_forwarded_for_changes_nothing() {
    let app = spawn_app().await;
    with_user(&app, None, false).await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let response = app
            .post("/api/auth/login")
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .json(&json!({"email": EMAIL, "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses[10], 429,
        "a new forged address each time must not buy new attempts: {statuses:?}"
    );
}

/// Expired tokens do not pile up: a user's go when they sign in again.
#[tokio::test]
async fn a_sign_in_deletes_the_users_expired_tokens() {
    let app = spawn_app().await;
    with_user(&app, None, false).await;
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO public.auth_tokens (token_sha256, user_id, expires_at) \
             SELECT sha256(('expired-' || g)::bytea), u.id, now() - interval '1 day' \
             FROM public.users u, generate_series(1, 3) g WHERE u.email = $1",
            &[&EMAIL],
        )
        .await
        .unwrap();
    let count = || async {
        client
            .query_one("SELECT count(*) FROM public.auth_tokens", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count().await, 3);
    let (status, _) = login(&app, EMAIL, PASSWORD).await;
    assert_eq!(status, 200);
    assert_eq!(count().await, 1, "only the new, live token is left");
    app.stop().await;
}
