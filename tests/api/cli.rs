//! The command line, run as a separate process like an operator would.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::helpers::{TestDb, spawn_app};

pub fn chatter(db_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatter"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env_remove("SECRET_KEY")
        .env("DEBUG", "True")
        // A config.toml in the working directory must not leak into tests.
        .current_dir(std::env::temp_dir())
        .output()
        .expect("chatter runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn tenants_and_domains_from_the_command_line() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let on_citus = chatter::db::citus::is_citus(&db.handle(1)).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let out = chatter(
            &url,
            &[
                "tenant",
                "create",
                "acme",
                "--name",
                "Acme Corp",
                "--domain",
                "acme.test",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));

        let out = chatter(&url, &["tenant", "create", "Bad;Name", "--name", "X"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("schema name"), "{}", stderr(&out));

        let out = chatter(&url, &["tenant", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let tenants: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(tenants[0]["schema"], "acme");
        assert_eq!(tenants[0]["name"], "Acme Corp");
        assert_eq!(tenants[0]["domains"][0], "acme.test");
        // On Citus each tenant names its worker node; on one server, no node.
        let node = tenants[0]["node"].as_str().unwrap_or_default().to_string();
        assert_eq!(node.contains(':'), on_citus, "{tenants}");
        assert_eq!(tenants[0].get("node").is_some(), on_citus, "{tenants}");

        let out = chatter(&url, &["tenant", "list"]);
        assert!(
            stdout(&out).contains("acme") && stdout(&out).contains("SCHEMA"),
            "{}",
            stdout(&out)
        );
        assert_eq!(stdout(&out).contains("NODE"), on_citus, "{}", stdout(&out));
        if on_citus {
            assert!(stdout(&out).contains(&node), "{}", stdout(&out));
        }

        let out = chatter(
            &url,
            &[
                "domain",
                "add",
                "www.acme.test",
                "--tenant",
                "acme",
                "--primary",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = chatter(
            &url,
            &["domain", "add", "www.acme.test", "--tenant", "acme"],
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains("already belongs"), "{}", stderr(&out));
        let out = chatter(&url, &["domain", "list", "--json"]);
        let domains: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let primary: Vec<_> = domains
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["is_primary"] == true)
            .map(|d| d["domain"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(primary, vec!["www.acme.test"]);
        let out = chatter(&url, &["domain", "remove", "acme.test"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = chatter(&url, &["domain", "remove", "acme.test"]);
        assert!(!out.status.success());

        let out = chatter(&url, &["tenant", "delete", "acme"]);
        assert!(!out.status.success(), "delete without --yes must refuse");
        assert!(stderr(&out).contains("--yes"));
        let out = chatter(&url, &["tenant", "delete", "acme", "--yes"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = chatter(&url, &["tenant", "list", "--json"]);
        assert_eq!(stdout(&out).trim(), "[]");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn migrate_reports_a_failing_tenant_by_name() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        for schema in ["m_ok", "m_broken"] {
            let out = chatter(&url, &["tenant", "create", schema, "--name", schema]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let out = chatter(&url, &["migrate", "--tenants"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("2 migrated"), "{}", stdout(&out));
    })
    .await
    .unwrap();
    let pool = db.pool(1);
    let client = pool.get().await.unwrap();
    client
        .batch_execute("UPDATE m_broken.refinery_schema_history SET checksum = '1'")
        .await
        .unwrap();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let out = chatter(&url, &["migrate"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("m_broken"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("m_ok"), "{}", stderr(&out));
        let out = chatter(&url, &["migrate", "--tenant", "m_ok"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = chatter(&url, &["migrate", "--shared"]);
        assert!(out.status.success(), "{}", stderr(&out));
    })
    .await
    .unwrap();
}

/// The CLI and the server are different processes: a delete through the
/// CLI reaches the server's cache through LISTEN/NOTIFY.
#[tokio::test]
async fn a_tenant_deleted_by_the_cli_is_404_on_the_server() {
    let app = spawn_app().await;
    app.create_tenant("cli_gone", "CLI Gone", None).await;
    let ok = app
        .get("/api/widget/config")
        .header("X-Client-ID", "cli_gone")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let url = app.db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        chatter(&url, &["tenant", "delete", "cli_gone", "--yes"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = app
            .get("/api/widget/config")
            .header("X-Client-ID", "cli_gone")
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the CLI deleted the tenant"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn serve_refuses_to_start_without_secret_key_in_production() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatter"))
        .arg("serve")
        .env("DEBUG", "False")
        .env_remove("SECRET_KEY")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SECRET_KEY"), "{}", stderr(&out));
}

#[tokio::test]
async fn ask_and_embed_use_the_real_model() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let model = crate::helpers::model_dir();
    let faqs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        faqs.path(),
        "question,answer\nWhat are your opening hours?,9 to 5 on weekdays\nDo you ship abroad?,Yes to 40 countries\n",
    )
    .unwrap();
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "question,answer\nfine?,yes\n,missing question\n",
    )
    .unwrap();
    let faq_path = faqs.path().to_path_buf();
    let bad_path = bad.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let with_model = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_chatter"))
                .args(args)
                .env("DATABASE_URL", &url)
                .env("CHATTER_MODEL_PATH", &model)
                .current_dir(std::env::temp_dir())
                .output()
                .unwrap()
        };
        let out = with_model(&["tenant", "create", "askme", "--name", "Ask Me"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = with_model(&["faq", "import", "askme", bad_path.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
        let out = with_model(&["faq", "import", "askme", faq_path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = with_model(&["faq", "list", "askme", "--json"]);
        let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            2,
            "the bad file added nothing"
        );

        // Checked like the widget's messages, before the model loads.
        let too_long = "why ".repeat(600);
        let out = with_model(&["ask", "askme", too_long.as_str()]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("longer than 2000"),
            "{}",
            stderr(&out)
        );

        let out = with_model(&["ask", "askme", "when do you open?"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["matched"], true, "{answer}");
        assert_eq!(answer["reply"], "9 to 5 on weekdays");

        let out = with_model(&["embed", "hello world", "opening hours"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let lines: Vec<Vec<f32>> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|v| v.len() == 384));
    })
    .await
    .unwrap();
    // `ask` stores nothing.
    let pool = db.pool(1);
    let client = pool.get().await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM askme.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}
