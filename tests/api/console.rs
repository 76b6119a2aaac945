//! The operator console: the service queries it added, and the real binary
//! driven in tmux (80×24) like an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chatter::conversations::{self, Filter};
use chatter::db::Db;
use chatter::db::migrate;
use chatter::tenancy::SchemaName;
use chatter::tenancy::provision::{self, NewTenant};

use crate::helpers::TestDb;

async fn tenant(pool: &Db, schema: &str, name: &str) -> SchemaName {
    provision::create_tenant(
        pool,
        NewTenant {
            schema,
            name,
            domain: None,
            is_public: false,
        },
    )
    .await
    .unwrap();
    SchemaName::parse(schema).unwrap()
}

/// A conversation of `turns` (visitor text, answered?) whose last message
/// is `minutes_ago` old.
async fn seed_conversation(
    pool: &Db,
    schema: &SchemaName,
    session: &str,
    minutes_ago: i32,
    turns: &[(&str, bool)],
) {
    let tx = pool.tenant(schema).await.unwrap();
    let faq: i64 = tx
        .query_one(
            "INSERT INTO faqs (question, answer) VALUES ('Opening hours?', 'Nine to five.') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let at = "now() - make_interval(mins => $2::int)";
    let id: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO conversations (session_id, origin, started_at, last_message_at) \
                 VALUES ($1, 'https://shop.test', {at}, {at}) RETURNING id"
            ),
            &[&session, &minutes_ago],
        )
        .await
        .unwrap()
        .get(0);
    for (text, answered) in turns {
        tx.execute(
            "INSERT INTO messages (conversation_id, role, text) VALUES ($1, 'visitor', $2)",
            &[&id, text],
        )
        .await
        .unwrap();
        let (reply, faq_id, score) = match answered {
            true => ("Nine to five.", Some(faq), 0.87f32),
            false => ("Sorry, I don't know.", None, 0.21f32),
        };
        tx.execute(
            "INSERT INTO messages (conversation_id, role, text, faq_id, score) VALUES ($1, 'bot', $2, $3, $4)",
            &[&id, &reply, &faq_id, &score],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn latest_conversations_across_tenants_and_make_primary() {
    let db = TestDb::create().await;
    let pool = db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    let acme = tenant(&pool, "acme", "Acme").await;
    let bikes = tenant(&pool, "bikes", "Bikes").await;
    seed_conversation(&pool, &acme, "a-old", 30, &[("When do you open?", true)]).await;
    seed_conversation(&pool, &bikes, "b-new", 5, &[("Do you fix tyres?", false)]).await;
    seed_conversation(&pool, &acme, "a-new", 1, &[("Parking near you?", false)]).await;

    let both = [acme.clone(), bikes.clone()];
    let latest = conversations::latest_across(&pool, &both, &Filter::default(), 10)
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = latest
        .iter()
        .map(|c| {
            (
                c.tenant.as_str(),
                c.conversation.first_message.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("acme", "Parking near you?"),
            ("bikes", "Do you fix tyres?"),
            ("acme", "When do you open?")
        ]
    );
    let limited = conversations::latest_across(&pool, &both, &Filter::default(), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    let unanswered = Filter {
        answered: Some(false),
        q: Some("parking".into()),
        ..Filter::default()
    };
    let found = conversations::latest_across(&pool, &both, &unanswered, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].conversation.session_id, "a-new");
    assert_eq!(
        conversations::count(&pool, &acme, &Filter::default())
            .await
            .unwrap(),
        2
    );

    // A tenant deleted between the list and the query is skipped.
    provision::delete_tenant(&pool, "bikes").await.unwrap();
    let after = conversations::latest_across(&pool, &both, &Filter::default(), 10)
        .await
        .unwrap();
    assert!(after.iter().all(|c| c.tenant == acme), "{after:?}");

    provision::add_domain(&pool, "acme.test", "acme", true)
        .await
        .unwrap();
    provision::add_domain(&pool, "www.acme.test", "acme", false)
        .await
        .unwrap();
    let row = provision::make_primary(&pool, "www.acme.test")
        .await
        .unwrap();
    assert_eq!((row.tenant.as_str(), row.is_primary), ("acme", true));
    let primary: Vec<String> = provision::list_domains(&pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.is_primary)
        .map(|d| d.domain)
        .collect();
    assert_eq!(primary, vec!["www.acme.test"]);
    // add_domain --primary goes through the same switch.
    provision::add_domain(&pool, "shop.acme.test", "acme", true)
        .await
        .unwrap();
    let primary: Vec<String> = provision::list_domains(&pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.is_primary)
        .map(|d| d.domain)
        .collect();
    assert_eq!(primary, vec!["shop.acme.test"]);
    assert!(
        provision::make_primary(&pool, "nowhere.test")
            .await
            .is_err()
    );
}

/// A tmux server of the test's own (its socket in the test's temporary
/// folder, no user configuration), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"]);
        command
    }

    fn run(&self, args: &[&str]) {
        let status = self.command().args(args).status().expect("tmux runs");
        assert!(status.success(), "tmux {args:?} failed");
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "console"])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Usually gone already: the session ended when the console quit.
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn the_console_in_tmux_lists_creates_opens_and_quits() {
    let db = TestDb::create().await;
    let pool = db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    let acme = tenant(&pool, "acme", "Acme Corp").await;
    seed_conversation(
        &pool,
        &acme,
        "s1",
        2,
        &[("When are you open?", true), ("Gift cards?", false)],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let status_file = dir.path().join("status");
    let script = format!(
        "cd {dir} && env -u CHATTER_MODEL_PATH DATABASE_URL={url} CHATTER_DATA_DIR={data} \
         HF_HOME={dir} HF_HUB_OFFLINE=1 {bin} console; echo $? > {status}",
        dir = shell_quote(&dir.path().to_string_lossy()),
        url = shell_quote(&db.url),
        data = shell_quote(&data_dir.to_string_lossy()),
        bin = shell_quote(env!("CARGO_BIN_EXE_chatter")),
        status = shell_quote(&status_file.to_string_lossy()),
    );
    let tmux = Tmux {
        socket: dir.path().join("tmux.sock"),
    };
    tokio::task::spawn_blocking(move || {
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "80",
            "-y",
            "24",
            &script,
        ]);
        // Lists the tenants.
        tmux.wait_for(&["Tenants (1)", "Acme Corp", "acme", "active"]);

        // Creates one through the form.
        tmux.send(&["n"]);
        tmux.wait_for(&["New tenant", "Schema"]);
        tmux.send(&["-l", "zeta_shop"]);
        tmux.send(&["Tab"]);
        tmux.send(&["-l", "Zeta Shop"]);
        tmux.send(&["Enter"]);
        tmux.wait_for(&["created tenant zeta_shop", "Tenants (2)", "Zeta Shop"]);

        // Opens a conversation's transcript.
        tmux.send(&["3"]);
        tmux.wait_for(&["Latest conversations", "When are you open?"]);
        tmux.send(&["Enter"]);
        let transcript = tmux.wait_for(&["acme #", "score 0.87", "FALLBACK, score 0.21"]);
        assert!(transcript.contains("Gift cards?"), "{transcript}");

        // The tenant's page, then its unanswered questions; one becomes a
        // FAQ. (No model here: offline with an empty hub cache, so the
        // questions group by wording, and the screen says so.)
        tmux.send(&["1"]);
        tmux.send(&["Home"]);
        tmux.send(&["Enter"]);
        tmux.wait_for(&["Acme Corp (acme)", "FAQs", "Conversations per day"]);
        tmux.send(&["u"]);
        tmux.wait_for(&["Unanswered in acme", "1x Gift cards?", "no model"]);
        tmux.send(&["a"]);
        tmux.wait_for(&["New FAQ"]);
        tmux.send(&["-l", "Yes, at the till."]);
        tmux.send(&["Enter"]);
        tmux.wait_for(&["FAQ added to acme: Gift cards?"]);

        tmux.send(&["q"]);
        let status = wait_for_file(&status_file);
        assert_eq!(status.trim(), "0", "exit status");
        let log = std::fs::read_to_string(data_dir.join("console.log")).unwrap();
        assert!(log.contains("console closed"), "{log}");
        drop(tmux);
    })
    .await
    .unwrap();

    let tenants = provision::list_tenants(&pool).await.unwrap();
    let zeta = tenants.iter().find(|t| t.schema == "zeta_shop").unwrap();
    assert_eq!(zeta.name, "Zeta Shop");
    let schema = SchemaName::parse("zeta_shop").unwrap();
    // Created and migrated: its tables are there.
    conversations::count(&pool, &schema, &Filter::default())
        .await
        .unwrap();
    let faqs = chatter::faq::list(&pool, &acme).await.unwrap();
    let added = faqs.iter().find(|f| f.question == "Gift cards?").unwrap();
    assert_eq!(added.answer, "Yes, at the till.");
}

/// The tenant page names the worker that holds the tenant on Citus (the
/// same node `chatter tenant list` shows) and no node on one server.
#[tokio::test]
async fn the_tenant_page_shows_the_tenants_node_on_citus() {
    use chatter::console::data::{Request, Response};
    use chatter::console::service::Services;

    let test_db = TestDb::create().await;
    let pool = test_db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    tenant(&pool, "paged", "Paged").await;
    let services = Services {
        db: pool.clone(),
        settings: std::sync::Arc::new(crate::helpers::test_settings(&test_db)),
        engine: crate::helpers::hashing_engine(),
    };
    let (replies, mut answers) = tokio::sync::mpsc::unbounded_channel();
    services.spawn(Request::TenantPage("paged".into()), replies);
    let page = loop {
        match answers.recv().await.expect("an answer") {
            Response::TenantPage(page) => break page.expect("the page"),
            _ => continue,
        }
    };
    let expected = chatter::citus::placements(&pool)
        .await
        .unwrap()
        .map(|p| p.get("paged").cloned().expect("placed"));
    assert_eq!(page.node, expected);
    let on_citus = chatter::db::citus::is_citus(&pool).await.unwrap();
    assert_eq!(page.node.is_some(), on_citus, "{:?}", page.node);
}

/// The tenant page shows the tenant's plan, its billing state and this
/// month's conversations, as the operator API does.
#[tokio::test]
async fn the_tenant_page_shows_plan_state_and_this_months_usage() {
    use chatter::billing::{Billing, month_of};
    use chatter::config::{Limits, PlanSettings, Secret};
    use chatter::console::data::{Request, Response};
    use chatter::console::service::Services;

    let test_db = TestDb::create().await;
    let pool = test_db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    let schema = tenant(&pool, "paged", "Paged").await;
    let mut settings = crate::helpers::test_settings(&test_db);
    settings.billing.key_id = Some(Secret::new("rzp_test_console"));
    settings.billing.key_secret = Some(Secret::new("rzp_secret_console"));
    settings.billing.plans = vec![PlanSettings {
        name: "starter".into(),
        price: "₹999 / month".into(),
        razorpay_plan_id: "plan_Starter001".into(),
        limits: Limits {
            conversations_per_month: Some(2000),
            ..Limits::default()
        },
    }];
    let billing = Billing::new(pool.clone(), settings.billing.clone(), 4);
    billing.grant(&schema, "starter").await.unwrap();
    let month = month_of(billing.now());
    let tx = pool.tenant(&schema).await.unwrap();
    tx.execute(
        "INSERT INTO usage (month, conversations) VALUES ($1, 1712)",
        &[&month],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let services = Services {
        db: pool.clone(),
        settings: std::sync::Arc::new(settings),
        engine: crate::helpers::hashing_engine(),
    };
    let (replies, mut answers) = tokio::sync::mpsc::unbounded_channel();
    services.spawn(Request::TenantPage("paged".into()), replies);
    let page = loop {
        match answers.recv().await.expect("an answer") {
            Response::TenantPage(page) => break page.expect("the page"),
            _ => continue,
        }
    };
    let b = &page.billing;
    assert_eq!(
        (b.billing, b.plan.as_str(), b.state.as_str()),
        (true, "starter", "granted")
    );
    assert_eq!(
        (b.conversations_this_month, b.limits.conversations_per_month),
        (1712, Some(2000))
    );
    assert!(b.usage_warning && b.chat_open);
}
