//! The client API's bot settings and FAQs: owners write, agents read,
//! another tenant's owner gets 403, and the bot answers a change at once.

use chatter::auth::users::{self, NewUser, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

pub const PASSWORD: &str = "correct horse battery";

/// Two tenants; an owner and an agent of `shop`, an owner of `other`.
pub async fn setup() -> (TestApp, String, String, String) {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    app.create_tenant("other", "Other", None).await;
    let mut tokens = Vec::new();
    for (email, tenant, role) in [
        ("owner@shop.test", "shop", Role::Owner),
        ("agent@shop.test", "shop", Role::Agent),
        ("owner@other.test", "other", Role::Owner),
    ] {
        users::create_user(
            &app.handle,
            NewUser {
                email,
                password: PASSWORD,
                is_operator: false,
                membership: Some((tenant, role)),
            },
        )
        .await
        .unwrap();
        tokens.push(sign_in(&app, email).await);
    }
    let other = tokens.pop().unwrap();
    let agent = tokens.pop().unwrap();
    let owner = tokens.pop().unwrap();
    (app, owner, agent, other)
}

/// A token for `email`, signed in with the shared test password.
pub async fn sign_in(app: &TestApp, email: &str) -> String {
    let response = app
        .post("/api/auth/login")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// A new operator's token.
pub async fn operator(app: &TestApp) -> String {
    users::create_user(
        &app.handle,
        NewUser {
            email: "op@platform.test",
            password: PASSWORD,
            is_operator: true,
            membership: None,
        },
    )
    .await
    .unwrap();
    sign_in(app, "op@platform.test").await
}

pub async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{}", app.addr, path);
    let mut request = match method {
        "GET" => app.http.get(url),
        "POST" => app.http.post(url),
        "PUT" => app.http.put(url),
        _ => app.http.delete(url),
    }
    .header("X-Client-ID", "shop");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bot_settings_are_read_by_members_and_changed_by_owners() {
    let (app, owner, agent, other) = setup().await;
    let (status, body) = call(&app, "GET", "/api/bot/config", Some(&agent), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bot_name"], "Shop");

    let change = json!({"bot_name": "Shopbot", "match_threshold": 0.55, "allowed_origins": ["https://shop.example.com"]});
    assert_eq!(
        call(&app, "PUT", "/api/bot/config", None, Some(change.clone()))
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            &app,
            "PUT",
            "/api/bot/config",
            Some(&agent),
            Some(change.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &app,
            "PUT",
            "/api/bot/config",
            Some(&other),
            Some(change.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&app, "GET", "/api/bot/config", Some(&other), None)
            .await
            .0,
        403
    );
    let (status, body) = call(&app, "PUT", "/api/bot/config", Some(&owner), Some(change)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bot_name"], "Shopbot");
    assert_eq!(body["allowed_origins"][0], "https://shop.example.com");
    // The widget sees the new name at once.
    let widget: Value = app
        .get("/api/widget/config")
        .header("X-Client-ID", "shop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(widget["bot_name"], "Shopbot");

    for bad in [
        json!({"match_threshold": 1.5}),
        json!({"bot_name": ""}),
        json!({"allowed_origins": ["not a url"]}),
        json!({"allowed_origins": ["https://shop.example.com/path"]}),
        json!({"theme": "red"}),
        json!({"colour": "red"}),
    ] {
        let (status, body) = call(
            &app,
            "PUT",
            "/api/bot/config",
            Some(&owner),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
    let (_, body) = call(&app, "GET", "/api/bot/config", Some(&owner), None).await;
    assert_eq!(
        body["match_threshold"]
            .as_f64()
            .map(|t| (t * 100.0).round()),
        Some(55.0)
    );
}

#[tokio::test]
async fn faqs_crud_is_answered_by_the_bot_at_once() {
    let (app, owner, agent, other) = setup().await;
    let faq = json!({"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."});
    assert_eq!(
        call(&app, "POST", "/api/faqs", Some(&agent), Some(faq.clone()))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, "POST", "/api/faqs", Some(&other), Some(faq.clone()))
            .await
            .0,
        403
    );
    let (status, created) = call(&app, "POST", "/api/faqs", Some(&owner), Some(faq)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();

    let (_, reply) = app
        .chat("shop", json!({"message": "do you ship abroad"}))
        .await;
    assert_eq!(reply["reply"], "Yes, to 40 countries.", "{reply}");

    let (status, listed) = call(&app, "GET", "/api/faqs", Some(&agent), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        call(&app, "GET", &format!("/api/faqs/{id}"), Some(&agent), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/faqs/999999", Some(&agent), None)
            .await
            .0,
        404
    );

    let changed = json!({"question": "Do you ship abroad?", "answer": "Only within Europe."});
    let (status, _) = call(
        &app,
        "PUT",
        &format!("/api/faqs/{id}"),
        Some(&owner),
        Some(changed),
    )
    .await;
    assert_eq!(status, 200);
    let (_, reply) = app
        .chat("shop", json!({"message": "do you ship abroad"}))
        .await;
    assert_eq!(
        reply["reply"], "Only within Europe.",
        "the change is answered at once"
    );

    let (status, body) = call(
        &app,
        "POST",
        "/api/faqs",
        Some(&owner),
        Some(json!({"question": "", "answer": "x"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(
        &app,
        "POST",
        "/api/faqs",
        Some(&owner),
        Some(json!({"question": "q", "answer": "a", "x": 1})),
    )
    .await;
    assert_eq!(status, 400);

    // Import: one bad row refuses the whole file.
    let csv = "question,answer\nHours?,9 to 5\n,no question\n";
    let response = app
        .http
        .post(format!("{}/api/faqs/import", app.addr))
        .header("X-Client-ID", "shop")
        .bearer_auth(&owner)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{body}"
    );
    let response = app
        .http
        .post(format!("{}/api/faqs/import", app.addr))
        .header("X-Client-ID", "shop")
        .bearer_auth(&owner)
        .body("question,answer\nHours?,9 to 5\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, listed) = call(&app, "GET", "/api/faqs", Some(&owner), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/faqs/{id}"),
            Some(&agent),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/faqs/{id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/faqs/{id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        404
    );
    let (_, reply) = app
        .chat("shop", json!({"message": "do you ship abroad"}))
        .await;
    assert_eq!(
        reply["matched"], false,
        "a deleted FAQ is not answered: {reply}"
    );
}

#[tokio::test]
async fn operators_manage_tenants_and_domains_others_get_403() {
    let (app, owner, _agent, _other) = setup().await;
    let op = operator(&app).await;

    assert_eq!(call(&app, "GET", "/api/tenants", None, None).await.0, 401);
    assert_eq!(
        call(&app, "GET", "/api/tenants", Some(&owner), None)
            .await
            .0,
        403
    );
    let new = json!({"schema": "newco", "name": "New Co", "domain": "chat.newco.test"});
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/tenants",
            Some(&owner),
            Some(new.clone())
        )
        .await
        .0,
        403
    );
    let (status, created) = call(&app, "POST", "/api/tenants", Some(&op), Some(new.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        call(&app, "POST", "/api/tenants", Some(&op), Some(new))
            .await
            .0,
        409
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/tenants",
        Some(&op),
        Some(json!({"schema": "Bad;", "name": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    // The new tenant routes by its domain at once.
    let widget = app
        .get("/api/widget/config")
        .header("Host", "chat.newco.test")
        .send()
        .await
        .unwrap();
    assert_eq!(widget.status(), 200);

    let (status, listed) = call(&app, "GET", "/api/tenants", Some(&op), None).await;
    assert_eq!(status, 200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["schema"] == "newco")
    );
    let domain = json!({"domain": "www.newco.test", "tenant": "newco", "primary": true});
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/domains",
            Some(&op),
            Some(domain.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(&app, "POST", "/api/domains", Some(&op), Some(domain))
            .await
            .0,
        409
    );
    let (_, domains) = call(&app, "GET", "/api/domains", Some(&op), None).await;
    assert!(
        domains
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["domain"] == "www.newco.test" && d["is_primary"] == true)
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            "/api/domains",
            Some(&op),
            Some(json!({"domain": "www.newco.test"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            "/api/domains",
            Some(&op),
            Some(json!({"domain": "www.newco.test"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, "DELETE", "/api/tenants/newco", Some(&owner), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, "DELETE", "/api/tenants/newco", Some(&op), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "DELETE", "/api/tenants/newco", Some(&op), None)
            .await
            .0,
        404
    );
    let gone = app
        .get("/api/widget/config")
        .header("X-Client-ID", "newco")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "deleted: 404 at once in this process");
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let (app, owner, _agent, _other) = setup().await;
    let big = "x".repeat(70 * 1024);
    let (status, body) = app.chat("shop", json!({"message": big})).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let response = app
        .http
        .post(format!("{}/api/faqs/import", app.addr))
        .header("X-Client-ID", "shop")
        .bearer_auth(&owner)
        .body(format!("question,answer\n{big},a\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn operators_manage_users_and_memberships() {
    let (app, owner, _agent, _other) = setup().await;
    let op = operator(&app).await;

    let new =
        json!({"email": "new@shop.test", "password": PASSWORD, "tenant": "shop", "role": "agent"});
    assert_eq!(
        call(&app, "POST", "/api/users", Some(&owner), Some(new.clone()))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, "POST", "/api/users", Some(&op), Some(new.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        call(&app, "POST", "/api/users", Some(&op), Some(new))
            .await
            .0,
        409
    );
    let half = json!({"email": "x@shop.test", "password": PASSWORD, "tenant": "shop"});
    assert_eq!(
        call(&app, "POST", "/api/users", Some(&op), Some(half))
            .await
            .0,
        400
    );
    let (_, listed) = call(&app, "GET", "/api/users", Some(&op), None).await;
    let new_user = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "new@shop.test")
        .unwrap();
    assert_eq!(
        new_user["memberships"],
        json!([{"tenant": "shop", "role": "agent"}])
    );

    // Promote to owner: the new user may now change the bot.
    let promote = json!({"email": "new@shop.test", "tenant": "shop", "role": "owner"});
    assert_eq!(
        call(&app, "POST", "/api/memberships", Some(&op), Some(promote))
            .await
            .0,
        204
    );
    let token = sign_in(&app, "new@shop.test").await;
    let (status, _) = call(
        &app,
        "PUT",
        "/api/bot/config",
        Some(&token),
        Some(json!({"greeting": "Hello!"})),
    )
    .await;
    assert_eq!(status, 200);
    let bad_role = json!({"email": "new@shop.test", "tenant": "shop", "role": "king"});
    assert_eq!(
        call(&app, "POST", "/api/memberships", Some(&op), Some(bad_role))
            .await
            .0,
        400
    );
    let nobody = json!({"email": "nobody@shop.test", "tenant": "shop", "role": "agent"});
    assert_eq!(
        call(&app, "POST", "/api/memberships", Some(&op), Some(nobody))
            .await
            .0,
        404
    );

    let remove = json!({"email": "new@shop.test", "tenant": "shop"});
    assert_eq!(
        call(
            &app,
            "DELETE",
            "/api/memberships",
            Some(&op),
            Some(remove.clone())
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, "DELETE", "/api/memberships", Some(&op), Some(remove))
            .await
            .0,
        404
    );
    let (status, _) = call(&app, "GET", "/api/bot/config", Some(&token), None).await;
    assert_eq!(status, 403, "no longer a member");
}
