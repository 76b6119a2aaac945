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
