//! The widget end to end, as a visitor meets it: the real `chatter serve`
//! (real model, a fresh database), a client's page on another origin
//! carrying the one-line snippet, and Debian's Chromium driven by
//! `tests/e2e/widget.mjs` (playwright-core). A second page, on an origin
//! the tenant does not allow, must get no answer and a clear message.
//! `SCREENSHOT=docs/widget.png` (passed through to node) saves a picture of
//! the open widget after its first answer.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (or `CHATTER_TEST_DATABASE_URL`),
//! the test model (`CHATTER_TEST_MODEL_DIR`, as `scripts/test` sets up),
//! `/usr/bin/chromium`, node, and `npm ci` in `tests/e2e` (`.ci/run` and
//! `scripts/test` see to the last three).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
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

const TENANT: &str = "acme_outdoor";
const ANSWER: &str = "We are open 9 to 5, Monday to Friday.";
const SHIPPING: &str = "Yes, we ship to 40 countries.";
const RETURNS: &str = "Send it back within 30 days for a full refund.";
/// A second tenant whose bot asks before it answers (caution 1): every
/// question gets "did you mean" choices, one of which the visitor clicks.
const CAREFUL: &str = "acme_careful";

/// A client's page: the one-line snippet, and styles that would break a
/// widget that did not live in its own Shadow DOM.
fn client_page(chatter: &str, title: &str, tenant: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font:20px Georgia,serif;margin:24px;background:#f4efe6}}\
         button,input{{all:unset;font-size:40px!important;color:red!important}}</style></head>\
         <body><h1>{title}</h1><p>Tents, boots and backpacks since 1987.</p>\
         <script src=\"{chatter}/static/widget.js\" data-client-id=\"{tenant}\" async></script>\
         </body></html>"
    )
}

async fn serve_page(listener: tokio::net::TcpListener, html: String) {
    let app = Router::new().route("/", get(move || async move { Html(html) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_asks_on_a_client_site_and_a_reload_keeps_the_conversation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e2e = root.join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/e2e (scripts/test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install -y chromium"
    );
    let db = TestDb::create("chatter_e2e").await;
    let work = tempfile::tempdir().unwrap();

    // Two client pages on two origins; the tenant allows only the first.
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let denied = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let careful = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_origin = format!("http://127.0.0.1:{}", allowed.local_addr().unwrap().port());
    let careful_origin = format!("http://127.0.0.1:{}", careful.local_addr().unwrap().port());
    let denied_origin = format!("http://127.0.0.1:{}", denied.local_addr().unwrap().port());

    let faqs = work.path().join("faqs.json");
    std::fs::write(
        &faqs,
        serde_json::json!([
            {"question": "What are your opening hours?", "answer": ANSWER},
            {"question": "Do you ship abroad?", "answer": SHIPPING},
            {"question": "How do I return an item?", "answer": RETURNS}
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
    // Enough phrasings for a learned matcher (question, two alternatives
    // and the answer: four texts a FAQ).
    let careful_faqs = work.path().join("careful.json");
    std::fs::write(
        &careful_faqs,
        serde_json::json!([
            {"question": "What are your opening hours?", "answer": ANSWER,
             "alternatives": ["When are you open?", "What time do you close?"]},
            {"question": "Do you ship abroad?", "answer": SHIPPING,
             "alternatives": ["Can you send my order overseas?", "Which countries do you deliver to?"]},
            {"question": "How do I return an item?", "answer": RETURNS,
             "alternatives": ["Can I get a refund?", "How do returns work?"]}
        ])
        .to_string(),
    )
    .unwrap();
    let mut create = chatter(&db, work.path());
    create.args(["tenant", "create", CAREFUL, "--name", "Acme Careful"]);
    run(create);
    let mut import = chatter(&db, work.path());
    import.args(["faq", "import", CAREFUL]).arg(&careful_faqs);
    run(import);
    // `chatter ask` trains the careful bot's matcher and stores it, so the
    // server's first question is ranked by it (a server trains in the
    // background and answers by the nearest phrasing meanwhile).
    let mut ask = chatter(&db, work.path());
    ask.args(["ask", CAREFUL, "When are you open?"]);
    run(ask);
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
                &[&allowed_origin],
            )
            .await
            .unwrap();
        client
            .execute(
                &format!(
                    // Self-hosted, so unlimited: its owner may hide "Powered by Chatter".
                    "UPDATE {CAREFUL}.bot_config SET caution = 1, show_branding = false, \
                     allowed_origins = ARRAY[$1]"
                ),
                &[&careful_origin],
            )
            .await
            .unwrap();
    }

    let mut serve = chatter(&db, work.path());
    serve
        .arg("serve")
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
    let deadline = Instant::now() + Duration::from_secs(120);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    serve_page(allowed, client_page(&base, "Acme Outdoor", TENANT)).await;
    serve_page(denied, client_page(&base, "Not Acme", TENANT)).await;
    serve_page(careful, client_page(&base, "Acme Careful", CAREFUL)).await;

    let mut node = tokio::process::Command::new("node");
    node.arg("widget.mjs")
        .current_dir(&e2e)
        .env("CHATTER_URL", &base)
        .env("ALLOWED_PAGE", format!("{allowed_origin}/"))
        .env("DENIED_PAGE", format!("{denied_origin}/"))
        .env("CAREFUL_PAGE", format!("{careful_origin}/"))
        .env("EXPECTED_ANSWER", ANSWER)
        .env("SHIPPING_ANSWER", SHIPPING)
        .env("RETURNS_ANSWER", RETURNS)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), node.output())
        .await
        .expect("the browser test finished in time")
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the browser did is in the database: two conversations (the
    // second visitor's typed before the config arrived), both from the
    // allowed origin only, with the first visitor's thumbs up.
    let mut config = tokio_postgres::Config::from_str(&db.url).unwrap();
    config.dbname(&db.name);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let origins: Vec<Option<String>> = client
        .query(&format!("SELECT origin FROM {TENANT}.conversations"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        origins,
        vec![Some(allowed_origin.clone()), Some(allowed_origin)]
    );
    let thumbs: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {TENANT}.feedback WHERE helpful"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(thumbs, 1);
    // The clicked choice taught the careful bot the visitor's wording.
    let learned: Vec<String> = client
        .query_one(
            &format!(
                "SELECT alternatives FROM {CAREFUL}.faqs WHERE question = 'What are your opening hours?'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        learned
            .iter()
            .any(|a| a == "Are you open on Saturday mornings?"),
        "{learned:?}"
    );
}
