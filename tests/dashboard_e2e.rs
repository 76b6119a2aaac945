//! The client dashboard end to end: the real `chatter serve` (real model, a
//! fresh database), a client's site on another origin carrying the widget,
//! and Debian's Chromium driven by `tests/e2e/dashboard.mjs`
//! (playwright-core): an owner signs in, adds and tries a FAQ, finds the
//! visitor's conversation, turns an unanswered question into a FAQ that the
//! widget then answers; an agent sees but cannot change; a signed-out
//! browser is sent to sign in; a business signs itself up and lands on its
//! own dashboard, confirms its address and resets its password through the
//! links mailed to a local SMTP sink; axe-core finds no serious or critical
//! problem on any page. `SCREENSHOTS=docs` (passed through to node) saves a
//! picture of every page.
//!
//! Needs what `tests/widget_e2e.rs` needs (PostgreSQL, the test model,
//! `/usr/bin/chromium`, node and `npm ci` in `tests/e2e`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use tokio_postgres::NoTls;

#[path = "support/e2e.rs"]
mod e2e;
use e2e::{Server, TestDb, chatter, run};
#[path = "support/smtp_sink.rs"]
mod smtp_sink;
use smtp_sink::SmtpSink;

const TENANT: &str = "acme_outdoor";
const PASSWORD: &str = "correct horse battery";
const HOURS: &str = "We are open 9 to 5, Monday to Friday.";

fn create_user(db: &TestDb, work: &Path, email: &str, role: &str) {
    let mut command = chatter(db, work);
    command
        .args(["user", "create", email, "--tenant", TENANT, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client's page carrying the one-line snippet.
fn client_page(chatter: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Acme Outdoor</title></head><body><h1>Acme Outdoor</h1>\
         <script src=\"{chatter}/static/widget.js\" data-client-id=\"{TENANT}\" async></script>\
         </body></html>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_runs_the_bot_from_the_dashboard() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e2e = root.join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir()
            && e2e.join("node_modules/axe-core").is_dir(),
        "playwright-core or axe-core is not installed: run `npm ci` in tests/e2e"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install -y chromium"
    );
    let db = TestDb::create("chatter_dash").await;
    let work = tempfile::tempdir().unwrap();

    // The client's site is another site: localhost, not 127.0.0.1.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_origin = format!("http://localhost:{}", site.local_addr().unwrap().port());

    let faqs = work.path().join("faqs.json");
    std::fs::write(
        &faqs,
        serde_json::json!([
            {"question": "What are your opening hours?", "answer": HOURS},
            {"question": "Do you ship abroad?", "answer": "Yes, we ship to 40 countries."},
            {"question": "How do I return an item?", "answer": "Send it back within 30 days."}
        ])
        .to_string(),
    )
    .unwrap();
    let mut create = chatter(&db, work.path());
    create.args(["tenant", "create", TENANT, "--name", "Acme Outdoor"]);
    run(create);
    let mut import = chatter(&db, work.path());
    import.args(["faq", "import", TENANT]).arg(&faqs);
    run(import);
    create_user(&db, work.path(), "owner@acme.test", "owner");
    create_user(&db, work.path(), "agent@acme.test", "agent");
    {
        let mut config = tokio_postgres::Config::from_str(&db.url).unwrap();
        config.dbname(&db.name);
        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .execute(
                &format!(
                    "UPDATE {TENANT}.bot_config SET bot_name = 'Acme helper', \
                     greeting = 'Hi! Ask me about opening hours, shipping or returns.', \
                     theme = '{{\"color\": \"#0f766e\", \"position\": \"right\"}}', \
                     allowed_origins = ARRAY[$1]"
                ),
                &[&site_origin],
            )
            .await
            .unwrap();
    }

    // Mail goes to a sink of the test's own; the browser test reads each
    // message's link from the client's site (`/mail`, below), as a person
    // would from their mailbox.
    let sink = SmtpSink::start().await;
    let sink_port = sink.port.to_string();
    let sink = std::sync::Arc::new(tokio::sync::Mutex::new(sink));
    let mut serve = chatter(&db, work.path());
    serve
        .env("CHATTER_SMTP_HOST", "127.0.0.1")
        .env("CHATTER_SMTP_PORT", &sink_port)
        .env("CHATTER_SMTP_TLS", "none")
        .env("CHATTER_SMTP_FROM", "Chatter <no-reply@chatter.test>")
        .env("CHATTER_PUBLIC_URL", "https://chatter.test")
        .arg("serve")
        .env("PORT", "0")
        .env("CHATTER_HOST", "127.0.0.1")
        .env("CHATTER_LOG_FORMAT", "json")
        .env("CHATTER_SIGNUP_ENABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = serve.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = event["addr"].as_str()
            {
                let _ = addr_tx.send(addr.to_string());
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server came up");
    let port = addr.rsplit(':').next().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = client_page(&base);
    let app = Router::new()
        .route("/", get(move || async move { Html(html) }))
        .route(
            "/mail",
            get(move || async move {
                let mail = sink.lock().await.next(Duration::from_secs(60)).await;
                format!("{}\n{}", mail.to.join(","), mail.link())
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(site, app).await;
    });

    let mut node = tokio::process::Command::new("node");
    node.arg("dashboard.mjs")
        .current_dir(&e2e)
        .env("CHATTER_URL", &base)
        .env("SITE_PAGE", format!("{site_origin}/"))
        .env("OWNER", "owner@acme.test")
        .env("AGENT", "agent@acme.test")
        .env("PASSWORD", PASSWORD)
        .env("HOURS_ANSWER", HOURS)
        .env("MAIL_URL", format!("{site_origin}/mail"))
        .kill_on_drop(true);
    if let Some(dir) = std::env::var_os("SCREENSHOTS") {
        node.env("SCREENSHOTS", root.join(PathBuf::from(dir)));
    }
    let out = tokio::time::timeout(Duration::from_secs(300), node.output())
        .await
        .expect("the browser test finished in time")
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the browser did is in the database: the owner's FAQ, the one
    // made from the unanswered group, and nothing the agent tried.
    let mut config = tokio_postgres::Config::from_str(&db.url).unwrap();
    config.dbname(&db.name);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let questions: Vec<String> = client
        .query(
            &format!("SELECT question FROM {TENANT}.faqs ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        questions.iter().any(|q| q.contains("gift card")),
        "{questions:?}"
    );
    assert!(
        questions.iter().any(|q| q.contains("kayak")),
        "{questions:?}"
    );
    assert!(
        !questions.iter().any(|q| q.contains("agent")),
        "{questions:?}"
    );
    // The business that signed up in the browser: its tenant and its owner.
    let owner: String = client
        .query_one(
            "SELECT u.email FROM public.memberships m JOIN public.users u ON u.id = m.user_id \
             JOIN public.tenants t ON t.id = m.tenant_id \
             WHERE t.schema_name = 'bolt_bikes' AND m.role = 'owner'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "owner@bolt.test");
}

const KEY_ID: &str = "rzp_test_checkout";
const KEY_SECRET: &str = "rzp_secret_checkout_e2e";

/// Razorpay as the Billing page meets it, on a loopback origin of its own:
/// `POST /v1/subscriptions` (basic auth of the keys, the documented
/// entity) and Checkout's script. The script keeps Razorpay's interface
/// (`new Razorpay(options).open()` calls `options.handler`) and signs the
/// payment in the browser with WebCrypto, HMAC-SHA256 of
/// `payment_id|subscription_id` with the key secret, as Razorpay does:
/// nothing of the server's own signature code.
fn razorpay_stand_in() -> Router {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;

    let subscriptions = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let create = move |headers: HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| {
        let subscriptions = std::sync::Arc::clone(&subscriptions);
        async move {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{KEY_SECRET}"))
            );
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                != Some(expected.as_str())
            {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({
                        "error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}
                    })),
                );
            }
            let n = subscriptions.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({
                    "id": format!("sub_CheckoutE2e{n:04}"), "entity": "subscription",
                    "plan_id": body["plan_id"], "status": "created", "quantity": 1,
                    "notes": body["notes"], "total_count": body["total_count"], "paid_count": 0,
                    "customer_notify": true, "created_at": 1767225540,
                    "short_url": "https://rzp.io/i/CheckoutE2e", "source": "api"
                })),
            )
        }
    };
    let script = format!(
        r#"window.Razorpay = function (options) {{
  this.on = function () {{}};
  this.open = async function () {{
    window.__checkoutOpened = {{ key: options.key, subscription_id: options.subscription_id }};
    var payment = "pay_CheckoutE2e0001";
    var bytes = function (s) {{ return new TextEncoder().encode(s); }};
    var key = await crypto.subtle.importKey("raw", bytes("{KEY_SECRET}"),
      {{ name: "HMAC", hash: "SHA-256" }}, false, ["sign"]);
    var mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes(payment + "|" + options.subscription_id)));
    var hex = Array.from(mac, function (b) {{ return b.toString(16).padStart(2, "0"); }}).join("");
    options.handler({{ razorpay_payment_id: payment, razorpay_subscription_id: options.subscription_id,
      razorpay_signature: hex }});
  }};
}};
"#
    );
    Router::new()
        .route("/v1/subscriptions", post(create))
        .route(
            "/v1/checkout.js",
            get(move || {
                let script = script.clone();
                async move { ([(header::CONTENT_TYPE, "application/javascript")], script) }
            }),
        )
}

/// An owner on the trial subscribes on the Billing page: Checkout's script
/// (from its setting, allowed by the dashboard's CSP only with billing on)
/// opens with the new subscription, its handler posts the payment's
/// signature, the server checks it, and the plan is active at once. When
/// the script cannot load, Razorpay's hosted page is offered instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_pays_through_razorpay_checkout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e2e = root.join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/e2e"
    );
    let db = TestDb::create("chatter_checkout").await;
    let work = tempfile::tempdir().unwrap();
    let mut create = chatter(&db, work.path());
    create.args(["tenant", "create", TENANT, "--name", "Acme Outdoor"]);
    run(create);
    create_user(&db, work.path(), "owner@acme.test", "owner");

    let razorpay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let razorpay_base = format!("http://127.0.0.1:{}", razorpay.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(razorpay, razorpay_stand_in()).await;
    });
    let config = work.path().join("billing.toml");
    std::fs::write(
        &config,
        "[[billing.plans]]\nname = \"starter\"\nprice = \"₹999 / month\"\n\
         razorpay_plan_id = \"plan_Starter001\"\nconversations_per_month = 2000\n",
    )
    .unwrap();
    let script_url = format!("{razorpay_base}/v1/checkout.js");
    let mut serve = chatter(&db, work.path());
    serve
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RAZORPAY_KEY_ID", KEY_ID)
        .env("RAZORPAY_KEY_SECRET", KEY_SECRET)
        .env("CHATTER_RAZORPAY_API_BASE", &razorpay_base)
        .env("CHATTER_RAZORPAY_CHECKOUT_SCRIPT_URL", &script_url)
        .env("PORT", "0")
        .env("CHATTER_HOST", "127.0.0.1")
        .env("CHATTER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = serve.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = event["addr"].as_str()
            {
                let _ = addr_tx.send(addr.to_string());
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server came up");
    let port = addr.rsplit(':').next().unwrap();
    let base = format!("http://127.0.0.1:{port}");

    let mut node = tokio::process::Command::new("node");
    node.arg("checkout.mjs")
        .current_dir(&e2e)
        .env("CHATTER_URL", &base)
        .env("OWNER", "owner@acme.test")
        .env("PASSWORD", PASSWORD)
        .env("SCRIPT_URL", &script_url)
        .env("SHORT_URL", "https://rzp.io/i/CheckoutE2e")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), node.output())
        .await
        .expect("the browser test finished in time")
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The server recorded the payment Checkout reported: the second
    // subscription (the first was left to the hosted page) is active.
    let mut config = tokio_postgres::Config::from_str(&db.url).unwrap();
    config.dbname(&db.name);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT s.state, s.plan, s.razorpay_subscription_id FROM public.subscriptions s \
             JOIN public.tenants t ON t.id = s.tenant_id WHERE t.schema_name = $1",
            &[&TENANT],
        )
        .await
        .unwrap();
    let (state, plan, id): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (state.as_str(), plan.as_str(), id.as_str()),
        ("active", "starter", "sub_CheckoutE2e0002")
    );
}
