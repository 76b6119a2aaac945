//! Billing (issue 13) against real PostgreSQL and a loopback Razorpay
//! stand-in that checks basic auth and answers with the documented shapes.
//! Webhook and Checkout signatures come from `tests/fixtures/razorpay`,
//! made by openssl (`sign.sh`), not by the code under test.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use chatter::auth::users::{self, NewUser, Role};
use chatter::config::{Limits, PlanSettings, Secret, Settings};
use serde_json::{Value, json};

use crate::client_api::{PASSWORD, call, operator, sign_in};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::smtp_sink::SmtpSink;

const KEY_ID: &str = "rzp_test_chatter";
const KEY_SECRET: &str = "rzp_secret_chatter_test";
const WEBHOOK_SECRET: &str = "whsec_chatter_test";
const SUB: &str = "sub_ChatterTest0001";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/razorpay")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

// --- The Razorpay stand-in -------------------------------------------------

#[derive(Default)]
struct StandIn {
    /// Method, path and body of every authorised call.
    calls: Mutex<Vec<(String, String, Value)>>,
    created: Mutex<u32>,
}

type Shared = Arc<StandIn>;

fn authorised(headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{KEY_SECRET}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn refused() -> (StatusCode, Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(
            json!({"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed",
                    "source": "NA", "step": "NA", "reason": "NA", "metadata": {}}}),
        ),
    )
}

/// A subscription entity as Razorpay documents it.
fn entity(id: &str, plan_id: &str, status: &str, notes: Value) -> Value {
    json!({
        "id": id, "entity": "subscription", "plan_id": plan_id, "customer_id": null,
        "status": status, "current_start": null, "current_end": null, "ended_at": null,
        "quantity": 1, "notes": notes, "charge_at": null, "start_at": null, "end_at": null,
        "auth_attempts": 0, "total_count": 120, "paid_count": 0, "customer_notify": true,
        "created_at": 1767225540, "expire_by": null, "short_url": "https://rzp.io/i/ChatterTest",
        "has_scheduled_changes": false, "change_scheduled_at": null, "source": "api",
        "offer_id": null, "remaining_count": 120
    })
}

async fn create_sub(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return refused();
    }
    if body["plan_id"].as_str().is_none() || body["total_count"].as_u64().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"code": "BAD_REQUEST_ERROR", "description": "plan_id and total_count are required"}}),
            ),
        );
    }
    let n = {
        let mut created = s.created.lock().unwrap();
        *created += 1;
        *created
    };
    s.calls
        .lock()
        .unwrap()
        .push(("POST".into(), "/v1/subscriptions".into(), body.clone()));
    let id = format!("sub_ChatterTest{n:04}");
    let plan = body["plan_id"].as_str().unwrap_or_default();
    (
        StatusCode::OK,
        Json(entity(&id, plan, "created", body["notes"].clone())),
    )
}

async fn update_sub(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return refused();
    }
    s.calls.lock().unwrap().push((
        "PATCH".into(),
        format!("/v1/subscriptions/{id}"),
        body.clone(),
    ));
    let plan = body["plan_id"].as_str().unwrap_or_default();
    (StatusCode::OK, Json(entity(&id, plan, "active", json!({}))))
}

async fn cancel_sub(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return refused();
    }
    s.calls.lock().unwrap().push((
        "POST".into(),
        format!("/v1/subscriptions/{id}/cancel"),
        body,
    ));
    (
        StatusCode::OK,
        Json(entity(&id, "plan_Starter001", "active", json!({}))),
    )
}

async fn list_invoices(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return refused();
    }
    let sub = query.get("subscription_id").cloned().unwrap_or_default();
    s.calls
        .lock()
        .unwrap()
        .push(("GET".into(), "/v1/invoices".into(), json!(query)));
    (
        StatusCode::OK,
        Json(json!({"entity": "collection", "count": 1, "items": [{
            "id": "inv_ChatterTest0001", "entity": "invoice", "type": "invoice",
            "customer_id": "cust_ChatterTest01", "subscription_id": sub,
            "status": "paid", "amount": 99900, "amount_paid": 99900, "amount_due": 0,
            "currency": "INR", "date": 1767225900, "paid_at": 1767225900,
            "billing_start": 1767225600, "billing_end": 1769817600,
            "short_url": "https://rzp.io/i/Invoice0001", "payment_id": "pay_ChatterTest0001"
        }]})),
    )
}

/// The stand-in on a loopback port: its base URL and what it saw.
async fn razorpay_stand_in() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/v1/subscriptions", post(create_sub))
        .route("/v1/subscriptions/{id}", patch(update_sub))
        .route("/v1/subscriptions/{id}/cancel", post(cancel_sub))
        .route("/v1/invoices", get(list_invoices))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), shared)
}

// --- Set-up -----------------------------------------------------------------

fn billing_on(settings: &mut Settings, api_base: &str) {
    let billing = &mut settings.billing;
    billing.api_base = api_base.to_string();
    billing.key_id = Some(Secret::new(KEY_ID));
    billing.key_secret = Some(Secret::new(KEY_SECRET));
    billing.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
    billing.grace_days = 3;
    billing.trial.days = 14;
    billing.trial.faqs = Some(3);
    billing.trial.conversations_per_month = Some(100);
    billing.trial.members = Some(2);
    billing.plans = vec![
        PlanSettings {
            name: "starter".into(),
            price: "₹999 / month".into(),
            razorpay_plan_id: "plan_Starter001".into(),
            limits: Limits {
                faqs: Some(200),
                conversations_per_month: Some(2000),
                members: Some(5),
                remove_branding: false,
            },
        },
        PlanSettings {
            name: "business".into(),
            price: "₹4,999 / month".into(),
            razorpay_plan_id: "plan_Business01".into(),
            limits: Limits {
                remove_branding: true,
                ..Limits::default()
            },
        },
    ];
}

struct Billed {
    app: TestApp,
    owner: String,
    razorpay: Shared,
}

/// Billing on, tenant `shop` (on its trial) with an owner.
async fn billed() -> Billed {
    let (base, razorpay) = razorpay_stand_in().await;
    let app = spawn_app_with(|s| billing_on(s, &base)).await;
    app.create_tenant("shop", "Shop", None).await;
    users::create_user(
        &app.handle,
        NewUser {
            email: "owner@shop.test",
            password: PASSWORD,
            is_operator: false,
            membership: Some(("shop", Role::Owner)),
        },
    )
    .await
    .unwrap();
    let owner = sign_in(&app, "owner@shop.test").await;
    Billed {
        app,
        owner,
        razorpay,
    }
}

impl Billed {
    async fn status(&self) -> Value {
        let (status, body) = call(&self.app, "GET", "/api/billing", Some(&self.owner), None).await;
        assert_eq!(status, 200, "{body}");
        body["status"].clone()
    }

    async fn subscribe(&self, plan: &str) -> Value {
        let (status, body) = call(
            &self.app,
            "POST",
            "/api/billing/subscription",
            Some(&self.owner),
            Some(json!({"plan": plan})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn deliver(&self, name: &str, event_id: &str) -> (u16, Value) {
        self.deliver_raw(
            fixture(&format!("{name}.json")),
            &fixture_text(&format!("{name}.sig")),
            event_id,
        )
        .await
    }

    async fn deliver_raw(&self, body: Vec<u8>, signature: &str, event_id: &str) -> (u16, Value) {
        let response = self
            .app
            .post("/api/billing/razorpay/webhook")
            .header("Content-Type", "application/json")
            .header("X-Razorpay-Signature", signature)
            .header("x-razorpay-event-id", event_id)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn row(&self) -> (String, String) {
        let client = self.app.pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT s.state, s.plan FROM public.subscriptions s \
                 JOIN public.tenants t ON t.id = s.tenant_id WHERE t.schema_name = 'shop'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// The billing clock at `secs` (Unix) plus `plus`.
    fn clock_at(&self, secs: i64, plus: chrono::Duration) {
        let clock = self.app.state.billing.clock();
        let target = chrono::DateTime::from_timestamp(secs, 0).unwrap() + plus;
        clock.advance(target - clock.now());
    }
}

// --- Tests ------------------------------------------------------------------

#[tokio::test]
async fn each_webhook_event_moves_the_state_in_order() {
    let b = billed().await;
    let checkout = b.subscribe("starter").await;
    assert_eq!(checkout["subscription_id"], SUB);
    assert_eq!(checkout["key_id"], KEY_ID);
    {
        let calls = b.razorpay.calls.lock().unwrap();
        let (_, path, body) = &calls[0];
        assert_eq!(path, "/v1/subscriptions");
        assert_eq!(body["plan_id"], "plan_Starter001");
        assert_eq!(body["notes"]["tenant"], "shop");
    }
    assert_eq!(b.row().await.0, "created");
    for (i, (event, state)) in [
        ("authenticated", "authenticated"),
        ("activated", "active"),
        ("charged", "active"),
        ("pending", "pending"),
        ("halted", "halted"),
        ("resumed_after_halt", "active"),
        ("paused", "paused"),
        ("resumed", "active"),
        ("cancelled", "cancelled"),
        ("completed", "completed"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = b.deliver(event, &format!("evt_{i:04}")).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("applied")),
            "{event}: {body}"
        );
        assert_eq!(
            b.row().await,
            (state.to_string(), "starter".to_string()),
            "{event}"
        );
        // The owner sees it at once: this process dropped its cached copy.
        assert_eq!(b.status().await["state"], state, "{event}");
    }
    // Not a subscription event: acknowledged, nothing moves.
    let (status, body) = b.deliver("payment_captured", "evt_pay").await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("ignored")));
    assert_eq!(b.row().await.0, "completed");
}

#[tokio::test]
async fn a_body_altered_by_one_byte_is_400_and_changes_nothing() {
    let b = billed().await;
    b.subscribe("starter").await;
    let mut body = fixture("charged.json");
    let at = body.len() / 2;
    body[at] ^= 0x01;
    let (status, answer) = b
        .deliver_raw(body, &fixture_text("charged.sig"), "evt_tampered")
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_signature");
    // No signature at all, or one made with another secret: the same.
    let (status, _) = b.deliver_raw(fixture("charged.json"), "", "evt_none").await;
    assert_eq!(status, 400);
    let (status, _) = b
        .deliver_raw(
            fixture("charged.json"),
            &fixture_text("activated.sig"),
            "evt_other",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(b.row().await.0, "created");
    // Nothing was recorded either: the genuine delivery still applies.
    let (status, body) = b.deliver("charged", "evt_tampered").await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    assert_eq!(b.row().await.0, "active");
}

#[tokio::test]
async fn the_same_event_twice_is_applied_once() {
    let b = billed().await;
    b.subscribe("starter").await;
    let (_, first) = b.deliver("halted", "evt_same").await;
    assert_eq!(first["outcome"], "applied");
    let (status, again) = b.deliver("halted", "evt_same").await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("duplicate"))
    );
    let client = b.app.pool.get().await.unwrap();
    let events: i64 = client
        .query_one(
            "SELECT count(*) FROM public.billing_events WHERE event_id = 'evt_same'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
    assert_eq!(b.row().await.0, "halted");
}

#[tokio::test]
async fn a_late_pending_never_undoes_a_later_charged() {
    let b = billed().await;
    b.subscribe("starter").await;
    let (_, body) = b.deliver("charged", "evt_charged").await;
    assert_eq!(body["outcome"], "applied");
    let (status, body) = b.deliver("late_pending", "evt_late").await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("stale")),
        "{body}"
    );
    assert_eq!(b.row().await.0, "active");
}

#[tokio::test]
async fn a_checkout_signature_for_another_subscription_is_refused() {
    let b = billed().await;
    b.subscribe("starter").await;
    let pay = "pay_ChatterTest0001";
    // Signed for someone else's subscription, sent with ours: refused.
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/billing/checkout",
        Some(&b.owner),
        Some(
            json!({"razorpay_payment_id": pay, "razorpay_subscription_id": SUB,
                    "razorpay_signature": fixture_text("checkout_other.sig")}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_signature")),
        "{body}"
    );
    // And naming the other subscription with its own valid signature: refused too.
    let (status, _) = call(
        &b.app,
        "POST",
        "/api/billing/checkout",
        Some(&b.owner),
        Some(
            json!({"razorpay_payment_id": pay, "razorpay_subscription_id": "sub_SomeoneElse0009",
                    "razorpay_signature": fixture_text("checkout_other.sig")}),
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(b.row().await.0, "created");
    // Ours, signed for ours: active at once.
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/billing/checkout",
        Some(&b.owner),
        Some(
            json!({"razorpay_payment_id": pay, "razorpay_subscription_id": SUB,
                    "razorpay_signature": fixture_text("checkout.sig")}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "active");
    assert_eq!(body["plan"], "starter");
    assert_eq!(body["limits"]["faqs"], 200);
}

/// Chat for a new visitor: status and body.
async fn new_visitor(app: &TestApp) -> (u16, Value) {
    app.chat("shop", json!({"message": "What are your opening hours?"}))
        .await
}

/// The month's count made `count`, as a server before the meter's rows
/// were split (tenant V9) left it: on row 0, no shares handed out.
async fn set_usage(app: &TestApp, month: chrono::NaiveDate, count: i32) {
    let client = app.pool.get().await.unwrap();
    client
        .execute("DELETE FROM shop.usage WHERE month = $1", &[&month])
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO shop.usage (month, conversations) VALUES ($1, $2)",
            &[&month, &count],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_month_limit_holds_at_99_and_100_percent_and_rolls_over() {
    let b = billed().await;
    b.app
        .import_faqs("shop", &[("What are your opening hours?", "9 to 5.")])
        .await;
    // The owner's own words for a closed chat.
    let (status, _) = call(
        &b.app,
        "PUT",
        "/api/bot/config",
        Some(&b.owner),
        Some(json!({"unavailable_reply": "Our assistant is resting this month. Email hello@shop.test!"})),
    )
    .await;
    assert_eq!(status, 200);
    let month = chatter::billing::month_of(b.app.state.billing.now());
    // 99 of 100: one more conversation is allowed.
    set_usage(&b.app, month, 99).await;
    let (status, first) = new_visitor(&b.app).await;
    assert_eq!(status, 200, "{first}");
    let session = first["session_id"].as_str().unwrap().to_string();
    let status_now = b.status().await;
    assert_eq!(status_now["conversations_this_month"], 100);
    assert_eq!(status_now["usage_warning"], true);
    // 100 of 100: a new visitor is told, in the owner's words.
    let (status, body) = new_visitor(&b.app).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "chat_unavailable");
    assert_eq!(
        body["error"]["message"],
        "Our assistant is resting this month. Email hello@shop.test!"
    );
    // A visitor with a session that is not (or no longer) stored is a new conversation too.
    let (status, _) = b
        .app
        .chat(
            "shop",
            json!({"message": "hours?", "session_id": "0".repeat(32)}),
        )
        .await;
    assert_eq!(status, 403);
    // Nothing else breaks: the conversation under way goes on, FAQs and the
    // dashboard's reads answer.
    let (status, body) = b
        .app
        .chat(
            "shop",
            json!({"message": "And on Sunday?", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&b.app, "GET", "/api/faqs", Some(&b.owner), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&b.app, "GET", "/api/conversations", Some(&b.owner), None).await;
    assert_eq!(status, 200);
    assert_eq!(b.status().await["conversations_this_month"], 100);
    // On a paid plan (the trial would end before the month does), its
    // month used up too:
    let op = operator(&b.app).await;
    let (status, _) = call(
        &b.app,
        "PUT",
        "/api/tenants/shop/billing",
        Some(&op),
        Some(json!({"plan": "starter"})),
    )
    .await;
    assert_eq!(status, 200);
    set_usage(&b.app, month, 2000).await;
    assert_eq!(new_visitor(&b.app).await.0, 403);
    // The month rolls over: new visitors are welcome again, counted afresh.
    let clock = b.app.state.billing.clock();
    let next = (month + chrono::Months::new(1))
        .and_hms_opt(0, 1, 0)
        .unwrap()
        .and_utc();
    clock.advance(next - clock.now());
    let (status, body) = new_visitor(&b.app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.status().await["conversations_this_month"], 1);
}

#[tokio::test]
async fn faq_and_member_limits_refuse_naming_the_limit() {
    let b = billed().await;
    let faq = |q: &str| json!({"question": q, "answer": "Yes."});
    for q in ["One?", "Two?", "Three?"] {
        let (status, body) = call(&b.app, "POST", "/api/faqs", Some(&b.owner), Some(faq(q))).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/faqs",
        Some(&b.owner),
        Some(faq("Four?")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "plan_limit");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 FAQs") && message.contains("trial"),
        "{message}"
    );
    // Members: the owner is one of two.
    let op = operator(&b.app).await;
    let member = |email: &str| json!({"email": email, "password": PASSWORD, "tenant": "shop", "role": "agent"});
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/users",
        Some(&op),
        Some(member("a1@shop.test")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/users",
        Some(&op),
        Some(member("a2@shop.test")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("plan_limit")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 members")
    );
    // An operator's grant lifts the limits at once.
    let (status, body) = call(
        &b.app,
        "PUT",
        "/api/tenants/shop/billing",
        Some(&op),
        Some(json!({"plan": "business"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["plan"].as_str(), body["state"].as_str()),
        (Some("business"), Some("granted"))
    );
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/faqs",
        Some(&b.owner),
        Some(faq("Four?")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(&b.app, "GET", "/api/tenants/shop/billing", Some(&op), None).await;
    assert_eq!(
        (status, body["plan"].as_str()),
        (200, Some("business")),
        "{body}"
    );
    let (status, _) = call(
        &b.app,
        "PUT",
        "/api/tenants/shop/billing",
        Some(&op),
        Some(json!({"plan": "platinum"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &b.app,
        "GET",
        "/api/tenants/shop/billing",
        Some(&b.owner),
        None,
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_expired_trial_answers_through_grace_then_paying_restores_at_once() {
    let b = billed().await;
    b.app.import_faqs("shop", &[("Hours?", "9 to 5.")]).await;
    let clock = b.app.state.billing.clock();
    clock.advance(chrono::Duration::days(14) + chrono::Duration::hours(1));
    let status = b.status().await;
    assert_eq!(
        (status["state"].as_str(), status["in_grace"].as_bool()),
        (Some("trial"), Some(true))
    );
    assert_eq!(new_visitor(&b.app).await.0, 200);
    clock.advance(chrono::Duration::days(3));
    let status = b.status().await;
    assert_eq!(
        (status["chat_open"].as_bool(), status["in_grace"].as_bool()),
        (Some(false), Some(false))
    );
    let (code, body) = new_visitor(&b.app).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("chat_unavailable")),
        "{body}"
    );
    // The widget learns it before the visitor types.
    let config: Value = b
        .app
        .get("/api/widget/config")
        .header("X-Client-ID", "shop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["chat_open"], false);
    assert_eq!(
        config["unavailable_reply"].as_str(),
        body["error"]["message"].as_str()
    );
    // The dashboard still works; paying restores chat at once.
    b.subscribe("starter").await;
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/billing/checkout",
        Some(&b.owner),
        Some(
            json!({"razorpay_payment_id": "pay_ChatterTest0001", "razorpay_subscription_id": SUB,
                    "razorpay_signature": fixture_text("checkout.sig")}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["chat_open"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(new_visitor(&b.app).await.0, 200);
    let config: Value = b
        .app
        .get("/api/widget/config")
        .header("X-Client-ID", "shop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (config["chat_open"].as_bool(), &config["unavailable_reply"]),
        (Some(true), &Value::Null)
    );
}

#[tokio::test]
async fn a_halted_subscription_answers_for_the_grace_days() {
    let b = billed().await;
    b.app.import_faqs("shop", &[("Hours?", "9 to 5.")]).await;
    b.subscribe("starter").await;
    b.deliver("charged", "evt_1").await;
    b.deliver("halted", "evt_2").await;
    let halted_at = 1767225600 + 2592200;
    b.clock_at(halted_at, chrono::Duration::days(2));
    assert_eq!(b.status().await["in_grace"], true);
    assert_eq!(new_visitor(&b.app).await.0, 200);
    b.clock_at(
        halted_at,
        chrono::Duration::days(3) + chrono::Duration::minutes(1),
    );
    assert_eq!(new_visitor(&b.app).await.0, 403);
    // Razorpay charges again: restored by the webhook at once.
    let (_, body) = b.deliver("resumed_after_halt", "evt_3").await;
    assert_eq!(body["outcome"], "applied");
    assert_eq!(new_visitor(&b.app).await.0, 200);
}

#[tokio::test]
async fn owners_change_plan_cancel_at_cycle_end_and_read_invoices() {
    let b = billed().await;
    // Nothing to change before subscribing.
    let (status, _) = call(
        &b.app,
        "POST",
        "/api/billing/plan",
        Some(&b.owner),
        Some(json!({"plan": "business"})),
    )
    .await;
    assert_eq!(status, 409);
    b.subscribe("starter").await;
    b.deliver("charged", "evt_1").await;
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/billing/plan",
        Some(&b.owner),
        Some(json!({"plan": "business"})),
    )
    .await;
    assert_eq!(
        (status, body["plan"].as_str()),
        (200, Some("business")),
        "{body}"
    );
    let (status, body) = call(&b.app, "POST", "/api/billing/cancel", Some(&b.owner), None).await;
    assert_eq!(
        (status, body["cancel_at_cycle_end"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = call(&b.app, "GET", "/api/billing/invoices", Some(&b.owner), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["id"], "inv_ChatterTest0001");
    assert_eq!(body[0]["amount"], 99900);
    let calls = b.razorpay.calls.lock().unwrap().clone();
    let paths: Vec<(&str, &str)> = calls
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", "/v1/subscriptions"),
            ("PATCH", "/v1/subscriptions/sub_ChatterTest0001"),
            ("POST", "/v1/subscriptions/sub_ChatterTest0001/cancel"),
            ("GET", "/v1/invoices"),
        ]
    );
    assert_eq!(calls[1].2["plan_id"], "plan_Business01");
    assert_eq!(calls[2].2["cancel_at_cycle_end"], 1);
    assert_eq!(calls[3].2["subscription_id"], SUB);
    // An unknown plan is named.
    let (status, body) = call(
        &b.app,
        "POST",
        "/api/billing/plan",
        Some(&b.owner),
        Some(json!({"plan": "gold"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("gold"));
}

#[tokio::test]
async fn wrong_razorpay_keys_are_refused_by_the_stand_in() {
    let (base, _) = razorpay_stand_in().await;
    let app = spawn_app_with(|s| {
        billing_on(s, &base);
        s.billing.key_secret = Some(Secret::new("not-the-secret"));
    })
    .await;
    app.create_tenant("shop", "Shop", None).await;
    let op = operator(&app).await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/billing/subscription",
        Some(&op),
        Some(json!({"plan": "starter"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("payment_provider")),
        "{body}"
    );
    assert!(!body.to_string().contains("not-the-secret"));
}

#[tokio::test]
async fn self_hosted_without_keys_is_unlimited() {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    app.import_faqs("shop", &[("Hours?", "9 to 5.")]).await;
    users::create_user(
        &app.handle,
        NewUser {
            email: "owner@shop.test",
            password: PASSWORD,
            is_operator: false,
            membership: Some(("shop", Role::Owner)),
        },
    )
    .await
    .unwrap();
    let owner = sign_in(&app, "owner@shop.test").await;
    // Far past any trial, any month: still answering.
    app.state
        .billing
        .clock()
        .advance(chrono::Duration::days(400));
    for _ in 0..3 {
        assert_eq!(new_visitor(&app).await.0, 200);
    }
    // Never metered: no counter row for every new conversation to wait on.
    let metered: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM shop.usage", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(metered, 0, "an unbilled tenant is not metered");
    for i in 0..60 {
        let (status, body) = call(
            &app,
            "POST",
            "/api/faqs",
            Some(&owner),
            Some(json!({"question": format!("Q{i}?"), "answer": "A."})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = call(&app, "GET", "/api/billing", Some(&owner), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"]["billing"], false);
    assert_eq!(body["plans"], json!([]));
    let (status, body) = call(
        &app,
        "POST",
        "/api/billing/subscription",
        Some(&owner),
        Some(json!({"plan": "starter"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("billing_off"))
    );
    let response = app
        .post("/api/billing/razorpay/webhook")
        .header("X-Razorpay-Signature", fixture_text("charged.sig"))
        .header("x-razorpay-event-id", "evt_1")
        .body(fixture("charged.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn operators_grant_a_plan_from_the_command_line_and_servers_hear_it() {
    let b = billed().await;
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut config,
        b"[[billing.plans]]\nname = \"starter\"\nprice = \"1\"\nrazorpay_plan_id = \"plan_Starter001\"\nfaqs = 200\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatter"))
            .arg("--config")
            .arg(config.path())
            .args(args)
            .env("DATABASE_URL", &b.app.db.url)
            .env("DEBUG", "True")
            .env("RAZORPAY_KEY_ID", KEY_ID)
            .env("RAZORPAY_KEY_SECRET", KEY_SECRET)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };
    // Cached by the server before the grant.
    assert_eq!(b.status().await["plan"], "trial");
    let out = run(&["billing", "grant", "shop", "--plan", "starter"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "shop is on starter (granted)"
    );
    let out = run(&["billing", "show", "shop"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (shown["plan"].as_str(), shown["limits"]["faqs"].as_u64()),
        (Some("starter"), Some(200))
    );
    let out = run(&["billing", "grant", "shop", "--plan", "gold"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("gold"));
    // The server dropped its cached standing on the NOTIFY.
    for _ in 0..100 {
        if b.status().await["plan"] == "starter" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server never heard of the grant");
}

/// Runs `tries` at once while the test holds `table` in SHARE mode (reads
/// go on, writes wait), so every try has counted before any has written;
/// releases it once all of them wait on a lock. Returns each try's answer.
async fn at_once<F>(app: &TestApp, table: &str, tries: Vec<F>) -> Vec<(u16, Value)>
where
    F: std::future::Future<Output = (u16, Value)> + Send + 'static,
{
    let n = tries.len() as i64;
    let mut holder = app.pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute(&format!("LOCK TABLE {table} IN SHARE MODE"))
        .await
        .unwrap();
    let running: Vec<_> = tries.into_iter().map(tokio::spawn).collect();
    let watcher = app.pool.get().await.unwrap();
    // Well inside the server's lock_timeout (2 s).
    for _ in 0..100 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tx.commit().await.unwrap();
    let mut answers = Vec::new();
    for task in running {
        answers.push(task.await.unwrap());
    }
    answers
}

fn one_through(answers: &[(u16, Value)], created: u16) {
    let through = answers.iter().filter(|(s, _)| *s == created).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 403 && b["error"]["code"] == "plan_limit")
        .count();
    assert_eq!(
        (through, refused),
        (1, answers.len() - 1),
        "exactly one add passes the limit: {answers:?}"
    );
}

#[tokio::test]
async fn concurrent_adds_at_the_limit_let_exactly_one_through() {
    let b = billed().await;
    let app = Arc::new(b.app);
    // FAQs: the trial allows 3; two are there.
    for q in ["One?", "Two?"] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/faqs",
            Some(&b.owner),
            Some(json!({"question": q, "answer": "Yes."})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let tries = (0..6)
        .map(|i| {
            let (app, owner) = (Arc::clone(&app), b.owner.clone());
            async move {
                let faq = json!({"question": format!("Race {i}?"), "answer": "Yes."});
                call(&app, "POST", "/api/faqs", Some(&owner), Some(faq)).await
            }
        })
        .collect();
    one_through(&at_once(&app, "shop.faqs", tries).await, 201);
    let client = app.pool.get().await.unwrap();
    let faqs: i64 = client
        .query_one("SELECT count(*) FROM shop.faqs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(faqs, 3);

    // Members: the trial allows 2; the owner is one. Six people with
    // accounts are added at once.
    for i in 0..6 {
        users::create_user(
            &app.handle,
            NewUser {
                email: &format!("agent{i}@shop.test"),
                password: PASSWORD,
                is_operator: false,
                membership: None,
            },
        )
        .await
        .unwrap();
    }
    let tries = (0..6)
        .map(|i| {
            let (app, owner) = (Arc::clone(&app), b.owner.clone());
            async move {
                let member = json!({"email": format!("agent{i}@shop.test"), "role": "agent"});
                call(&app, "POST", "/api/members", Some(&owner), Some(member)).await
            }
        })
        .collect();
    one_through(&at_once(&app, "public.memberships", tries).await, 201);
    let members: i64 = client
        .query_one(
            "SELECT count(*) FROM public.memberships m JOIN public.tenants t ON t.id = m.tenant_id \
             WHERE t.schema_name = 'shop'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(members, 2);
}

fn mail_to(settings: &mut Settings, sink: &SmtpSink) {
    settings.server.public_url = Some("https://chat.example.com".into());
    settings.smtp.host = Some("127.0.0.1".into());
    settings.smtp.port = sink.port;
    settings.smtp.tls = chatter::config::SmtpTls::None;
    settings.smtp.from = Some("Chatter <no-reply@chat.example.com>".into());
}

#[tokio::test]
async fn owners_are_mailed_once_when_the_month_passes_80_percent() {
    let mut sink = SmtpSink::start().await;
    let (base, _) = razorpay_stand_in().await;
    let app = spawn_app_with(|s| {
        billing_on(s, &base);
        mail_to(s, &sink);
    })
    .await;
    app.create_tenant("shop", "Shop", None).await;
    for (email, role) in [
        ("owner@shop.test", Role::Owner),
        ("agent@shop.test", Role::Agent),
    ] {
        users::create_user(
            &app.handle,
            NewUser {
                email,
                password: PASSWORD,
                is_operator: false,
                membership: Some(("shop", role)),
            },
        )
        .await
        .unwrap();
    }
    app.import_faqs("shop", &[("What are your opening hours?", "9 to 5.")])
        .await;
    let quiet = std::time::Duration::from_millis(700);
    // The trial allows 100 a month: the 79th conversation is 79%.
    let month = chatter::billing::month_of(app.state.billing.now());
    set_usage(&app, month, 78).await;
    assert_eq!(new_visitor(&app).await.0, 200);
    assert!(sink.nothing_within(quiet).await, "no notice at 79%");
    // The 80th: one mail, to the owner only.
    assert_eq!(new_visitor(&app).await.0, 200);
    let mail = sink.next(std::time::Duration::from_secs(20)).await;
    assert_eq!(mail.to, ["owner@shop.test"]);
    let subject = mail.header("Subject").unwrap();
    assert!(subject.contains("80%"), "{subject}");
    let text = mail.text();
    assert!(text.contains("80 of the 100"), "{text}");
    assert_eq!(mail.link(), "https://chat.example.com/app/#/billing");
    // The next new conversation: no second mail.
    assert_eq!(new_visitor(&app).await.0, 200);
    assert!(sink.nothing_within(quiet).await, "one notice a month");
    let warned: Option<chrono::DateTime<chrono::Utc>> = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT warned_at FROM shop.usage WHERE month = $1 AND shard = 0",
            &[&month],
        )
        .await
        .unwrap()
        .get(0);
    assert!(warned.is_some(), "the notice is recorded");
    // Another server (or this one restarted) knows nothing in memory: the
    // record keeps it from mailing again.
    let mut settings = Settings::default();
    billing_on(&mut settings, &base);
    mail_to(&mut settings, &sink);
    let mailer = chatter::mail::Mailer::from_settings(&settings.smtp).unwrap();
    let other = Arc::new(
        chatter::billing::Billing::new(app.handle.clone(), settings.billing.clone(), 8)
            .with_notices(mailer, settings.public_url()),
    );
    let shop = chatter::db::SchemaName::parse("shop").unwrap();
    let meter = chatter::billing::usage::Meter {
        month,
        limit: Some(100),
        warn_at: Some(80),
    };
    other.metered(&shop, meter, 82);
    assert!(sink.nothing_within(quiet).await, "not mailed twice");
}

async fn widget_branding(app: &TestApp) -> Value {
    let config: Value = app
        .get("/api/widget/config")
        .header("X-Client-ID", "shop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    config["branding"].clone()
}

#[tokio::test]
async fn powered_by_chatter_comes_off_only_on_a_plan_that_allows_it() {
    let b = billed().await;
    let hide = || Some(json!({"show_branding": false}));
    assert_eq!(widget_branding(&b.app).await, true);
    // The trial keeps the mark: refused, and nothing changes.
    let (status, body) = call(&b.app, "PUT", "/api/bot/config", Some(&b.owner), hide()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("plan_limit")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Powered by Chatter")
    );
    let (_, config) = call(&b.app, "GET", "/api/bot/config", Some(&b.owner), None).await;
    assert_eq!(config["show_branding"], true);
    // Turning it on (or leaving it) is always allowed.
    let (status, _) = call(
        &b.app,
        "PUT",
        "/api/bot/config",
        Some(&b.owner),
        Some(json!({"show_branding": true})),
    )
    .await;
    assert_eq!(status, 200);
    // On a plan that allows it: off, and the widget hides it.
    let op = operator(&b.app).await;
    let grant = |plan: &str| Some(json!({ "plan": plan }));
    let (status, _) = call(
        &b.app,
        "PUT",
        "/api/tenants/shop/billing",
        Some(&op),
        grant("business"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(&b.app, "PUT", "/api/bot/config", Some(&b.owner), hide()).await;
    assert_eq!(
        (status, body["show_branding"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert_eq!(widget_branding(&b.app).await, false);
    // Back on a plan that keeps it: the mark shows again, whatever the setting.
    let (status, _) = call(
        &b.app,
        "PUT",
        "/api/tenants/shop/billing",
        Some(&op),
        grant("starter"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(widget_branding(&b.app).await, true);
}

#[tokio::test]
async fn self_hosted_owners_may_hide_powered_by_chatter() {
    let app = spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    users::create_user(
        &app.handle,
        NewUser {
            email: "owner@shop.test",
            password: PASSWORD,
            is_operator: false,
            membership: Some(("shop", Role::Owner)),
        },
    )
    .await
    .unwrap();
    let owner = sign_in(&app, "owner@shop.test").await;
    assert_eq!(widget_branding(&app).await, true);
    let (status, body) = call(
        &app,
        "PUT",
        "/api/bot/config",
        Some(&owner),
        Some(json!({"show_branding": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(widget_branding(&app).await, false);
}

#[tokio::test]
async fn calls_that_reach_razorpay_are_limited_per_tenant() {
    let (base, razorpay) = razorpay_stand_in().await;
    let app = spawn_app_with(|s| {
        billing_on(s, &base);
        s.billing.razorpay_calls_per_minute = 3;
    })
    .await;
    let mut owners = Vec::new();
    for shop in ["shop", "other"] {
        app.create_tenant(shop, shop, None).await;
        let email = format!("owner@{shop}.test");
        users::create_user(
            &app.handle,
            NewUser {
                email: &email,
                password: PASSWORD,
                is_operator: false,
                membership: Some((shop, Role::Owner)),
            },
        )
        .await
        .unwrap();
        owners.push(sign_in(&app, &email).await);
    }
    let shop = owners[0].as_str();
    let (status, body) = call(
        &app,
        "POST",
        "/api/billing/subscription",
        Some(shop),
        Some(json!({"plan": "starter"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        let (status, _) = call(&app, "GET", "/api/billing/invoices", Some(shop), None).await;
        assert_eq!(status, 200);
    }
    // The fourth call in the minute: refused before Razorpay is asked,
    // whichever route it is.
    let calls_before = razorpay.calls.lock().unwrap().len();
    for (method, path, body) in [
        ("GET", "/api/billing/invoices", None),
        (
            "POST",
            "/api/billing/plan",
            Some(json!({"plan": "business"})),
        ),
        ("POST", "/api/billing/cancel", None),
        (
            "POST",
            "/api/billing/subscription",
            Some(json!({"plan": "starter"})),
        ),
    ] {
        let mut request = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.addr))
            .header("X-Client-ID", "shop")
            .bearer_auth(shop);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 429, "{method} {path}");
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
    }
    assert_eq!(razorpay.calls.lock().unwrap().len(), calls_before);
    // Another tenant has its own calls.
    let response = app
        .get("/api/billing/invoices")
        .header("X-Client-ID", "other")
        .bearer_auth(&owners[1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn dashboard_csp(app: &TestApp) -> String {
    let page = app.get("/app/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_dashboard_allows_razorpay_checkout_only_with_billing_on() {
    let b = billed().await;
    let csp = dashboard_csp(&b.app).await;
    assert!(
        csp.contains("script-src 'self' https://checkout.razorpay.com https://cdn.razorpay.com;"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-src 'self' https://checkout.razorpay.com https://api.razorpay.com;"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    // What the Billing page opens Checkout with.
    let checkout = b.subscribe("starter").await;
    assert_eq!(
        checkout["script_url"],
        "https://checkout.razorpay.com/v1/checkout.js"
    );
    assert_eq!(checkout["short_url"], "https://rzp.io/i/ChatterTest");
    // Without billing: nothing from elsewhere.
    let app = spawn_app().await;
    let csp = dashboard_csp(&app).await;
    assert!(!csp.contains("razorpay"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
}
