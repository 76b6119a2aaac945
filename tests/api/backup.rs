//! Backup and offboarding: a tenant exported, imported under another
//! schema, and compared row by row; refusals that change nothing; the
//! same through the real binary.

use chatter::backup::{self, BackupError, TenantArchive};
use chatter::faq::{self, NewFaq};
use chatter::tenancy::{SchemaName, TenancyError};
use deadpool_postgres::Pool;
use serde_json::json;

use crate::cli::chatter;
use crate::helpers::{TestApp, TestDb, spawn_app};

const TABLES: [&str; 5] = [
    "bot_config",
    "faqs",
    "conversations",
    "messages",
    "feedback",
];

/// Every row of `table` in `schema`, every column (ids included), in one
/// order for equal contents (not every table has an `id`).
async fn rows(pool: &Pool, schema: &str, table: &str) -> Vec<serde_json::Value> {
    let client = pool.get().await.unwrap();
    // An unanswered question's kept vector is not archived: it is made
    // again when the Unanswered page first groups the question.
    let row = match table {
        "messages" => "to_jsonb(t) - 'embedding' - 'embedding_model'",
        _ => "to_jsonb(t)",
    };
    client
        .query(
            &format!("SELECT {row} FROM {schema}.{table} t ORDER BY {row}::text"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn count(pool: &Pool, sql: &str) -> i64 {
    let client = pool.get().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

fn schema(name: &str) -> SchemaName {
    SchemaName::parse(name).unwrap()
}

/// A tenant with settings off the defaults, FAQs with a gap in their ids,
/// vectors (built by chatting through the hashing engine), one FAQ not yet
/// embedded, and conversations whose bot messages point at FAQs.
async fn app_with_a_lived_in_tenant() -> TestApp {
    let app = spawn_app().await;
    app.create_tenant("orig", "Original Co", Some("orig.test"))
        .await;
    let client = app.pool.get().await.unwrap();
    client
        .batch_execute(
            "UPDATE orig.bot_config SET bot_name = 'Orbit', greeting = 'Welcome aboard', \
                    fallback_reply = 'No idea, sorry', match_threshold = 0.45, caution = 0.8, \
                    unavailable_reply = 'Closed for the month, sorry', \
                    theme = '{\"color\": \"#ff0000\", \"position\": \"left\"}', \
                    allowed_origins = '{https://orig.test,https://www.orig.test}'",
        )
        .await
        .unwrap();
    let new = |q: &str, a: &str, alts: &[&str]| NewFaq {
        question: q.into(),
        answer: a.into(),
        alternatives: alts.iter().map(|s| s.to_string()).collect(),
    };
    faq::import(
        &app.handle,
        &schema("orig"),
        &[
            new(
                "What are your opening hours?",
                "9 to 5, Monday to Friday.",
                &["When are you open?", "Opening times"],
            ),
            new("Is there parking?", "No.", &[]),
            new(
                "How do I return an item?",
                "Send it back within 30 days.",
                &["Refunds?"],
            ),
        ],
        None,
    )
    .await
    .unwrap();
    client
        .batch_execute("DELETE FROM orig.faqs WHERE question = 'Is there parking?'")
        .await
        .unwrap();

    let (status, body) = app
        .chat("orig", json!({"message": "What are your opening hours?"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], true, "{body}");
    let session = body["session_id"].as_str().unwrap().to_string();
    app.chat("orig", json!({"session_id": session, "message": "zzz qqq"}))
        .await;
    let (status, _) = app
        .chat("orig", json!({"message": "How do I return an item?"}))
        .await;
    assert_eq!(status, 200);
    // Added after the index was built: no vector yet.
    client
        .batch_execute(
            "INSERT INTO orig.faqs (question, answer) VALUES ('Do you ship abroad?', 'Yes.')",
        )
        .await
        .unwrap();
    // A visitor's thumbs on the first answer (looked up first: Citus 13
    // mis-plans INSERT ... SELECT into a schema-sharded table).
    let first_answer: i64 = client
        .query_one(
            "SELECT id FROM orig.messages WHERE role = 'bot' ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO orig.feedback (message_id, helpful) VALUES ($1, true)",
            &[&first_answer],
        )
        .await
        .unwrap();

    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM orig.faqs WHERE embedding IS NOT NULL"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM orig.messages WHERE faq_id IS NOT NULL"
        )
        .await,
        2
    );
    app
}

#[tokio::test]
async fn backup_round_trips_a_tenant_row_for_row() {
    let app = app_with_a_lived_in_tenant().await;
    let first = backup::export(&app.handle, &schema("orig")).await.unwrap();
    assert_eq!(first.domains, vec!["orig.test"]);
    assert_eq!(first.faqs.len(), 3);
    assert_eq!(first.conversations.len(), 2);
    assert_eq!(first.message_count(), 6);

    // Through the file format, as the CLI does.
    let bytes = serde_json::to_vec(&first).unwrap();
    let archive = TenantArchive::from_json(&bytes).unwrap();
    let imported = backup::import(&app.handle, &archive, Some("copy"))
        .await
        .unwrap();
    assert_eq!(imported.as_str(), "copy");

    for table in TABLES {
        let (orig, copy) = (
            rows(&app.pool, "orig", table).await,
            rows(&app.pool, "copy", table).await,
        );
        assert!(!orig.is_empty(), "{table} has rows to compare");
        assert_eq!(orig, copy, "{table} differs");
    }
    let tenant = |schema: &str| {
        format!(
            "SELECT count(*) FROM public.tenants WHERE schema_name = '{schema}' \
             AND name = 'Original Co' AND is_active AND NOT is_public"
        )
    };
    assert_eq!(count(&app.pool, &tenant("copy")).await, 1);
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM public.domains d JOIN public.tenants t ON t.id = d.tenant_id \
             WHERE t.schema_name = 'copy'"
        )
        .await,
        0,
        "domains are not re-attached"
    );

    // Re-exported: the same, but for the schema and the domains left behind.
    let second = backup::export(&app.handle, &schema("copy")).await.unwrap();
    assert_eq!(second.schema, "copy");
    assert!(second.domains.is_empty());
    let mut normalized = second.clone();
    normalized.schema = first.schema.clone();
    normalized.domains = first.domains.clone();
    assert_eq!(normalized, first);
    assert_eq!(serde_json::to_vec(&normalized).unwrap(), bytes);

    // The sequences moved past the restored ids.
    let client = app.pool.get().await.unwrap();
    let next: i64 = client
        .query_one(
            "INSERT INTO copy.faqs (question, answer) VALUES ('New?', 'Yes.') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, first.faqs.iter().map(|f| f.id).max().unwrap() + 1);

    // The server sees the new tenant (change events) and answers from it.
    let (status, body) = app
        .chat("copy", json!({"message": "When are you open?"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "9 to 5, Monday to Friday.");
    let last: i64 = client
        .query_one("SELECT max(id) FROM copy.messages", &[])
        .await
        .unwrap()
        .get(0);
    let restored_max = first
        .conversations
        .iter()
        .flat_map(|c| &c.messages)
        .map(|m| m.id)
        .max()
        .unwrap();
    assert_eq!(last, restored_max + 2);
}

#[tokio::test]
async fn backup_refuses_an_existing_schema_and_changes_nothing() {
    let app = app_with_a_lived_in_tenant().await;
    let archive = backup::export(&app.handle, &schema("orig")).await.unwrap();
    let before: Vec<Vec<serde_json::Value>> = {
        let mut all = Vec::new();
        for table in TABLES {
            all.push(rows(&app.pool, "orig", table).await);
        }
        all
    };
    let tenants = "SELECT count(*) FROM public.tenants";
    let tenants_before = count(&app.pool, tenants).await;

    // Into itself (no --as): the tenant exists.
    let err = backup::import(&app.handle, &archive, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::Tenancy(TenancyError::TenantExists(ref s)) if s == "orig"),
        "{err}"
    );
    // Into a schema that is no tenant's but exists.
    let client = app.pool.get().await.unwrap();
    client.batch_execute("CREATE SCHEMA stray").await.unwrap();
    let err = backup::import(&app.handle, &archive, Some("stray"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    assert_eq!(count(&app.pool, tenants).await, tenants_before);
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'stray'"
        )
        .await,
        0
    );
    for (table, before) in TABLES.iter().zip(before) {
        assert_eq!(rows(&app.pool, "orig", table).await, before, "{table}");
    }

    let err = backup::export(&app.handle, &schema("nobody"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no tenant"), "{err}");
}

#[tokio::test]
async fn backup_names_a_truncated_file_or_another_version() {
    let app = app_with_a_lived_in_tenant().await;
    let archive = backup::export(&app.handle, &schema("orig")).await.unwrap();
    let bytes = serde_json::to_vec(&archive).unwrap();
    let err = TenantArchive::from_json(&bytes[..bytes.len() - 20]).unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    let mut newer = serde_json::to_value(&archive).unwrap();
    newer["version"] = json!(99);
    let err = TenantArchive::from_json(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
    assert!(err.to_string().contains("format version 99"), "{err}");
}

/// Archives of version 2 predate the caution setting: they restore with
/// the default one; the current version carries it.
#[tokio::test]
async fn an_archive_without_caution_restores_the_default_one() {
    let app = app_with_a_lived_in_tenant().await;
    let archive = backup::export(&app.handle, &schema("orig")).await.unwrap();
    assert_eq!(archive.version, 3);
    assert_eq!(archive.bot_config.caution, 0.8);
    let mut older = serde_json::to_value(&archive).unwrap();
    older["version"] = json!(2);
    older["bot_config"]
        .as_object_mut()
        .unwrap()
        .remove("caution")
        .unwrap();
    let older = TenantArchive::from_json(&serde_json::to_vec(&older).unwrap()).unwrap();
    backup::import(&app.handle, &older, Some("older"))
        .await
        .unwrap();
    let restored = chatter::bot_config::get(&app.handle, &schema("older"))
        .await
        .unwrap();
    assert_eq!(restored.caution, chatter::bot_config::DEFAULT_CAUTION);
    assert_eq!(restored.match_threshold, 0.45);
}

#[tokio::test]
async fn backup_through_the_command_line() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cli_orig.json");
    let faqs = dir.path().join("faqs.csv");
    std::fs::write(
        &faqs,
        "question,answer,alternatives\nHours?,9 to 5,When are you open?|Opening times\nWhere?,Here,\n",
    )
    .unwrap();
    let url = db.url.clone();
    let faqs2 = faqs.clone();
    tokio::task::spawn_blocking(move || {
        let out = chatter(
            &url,
            &[
                "tenant", "create", "cli_orig", "--name", "CLI Orig", "--domain", "cli.test",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = chatter(
            &url,
            &["faq", "import", "cli_orig", faqs2.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    })
    .await
    .unwrap();

    // A conversation, and a vector, written as the server would.
    let pool = db.pool(2);
    pool.get()
        .await
        .unwrap()
        .batch_execute(
            "UPDATE cli_orig.faqs SET embedding = '{0.25,-1.5,3e-7}', model_id = 'test/model' \
             WHERE question = 'Hours?'; \
             INSERT INTO cli_orig.conversations (session_id, origin) \
               VALUES ('0123456789abcdef0123456789abcdef', 'https://cli.test'); \
             INSERT INTO cli_orig.messages (conversation_id, role, text, faq_id, score) VALUES \
               (1, 'visitor', 'hours?', NULL, NULL), (1, 'bot', '9 to 5', 1, 0.8125);",
        )
        .await
        .unwrap();

    let url = db.url.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let out = chatter(&url, &["tenant", "export", "cli_orig"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::write(&file, &out.stdout).unwrap();
        let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

        let out = chatter(
            &url,
            &[
                "tenant",
                "import",
                file.to_str().unwrap(),
                "--as",
                "cli_copy",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(said.contains("imported tenant cli_copy"), "{said}");
        assert!(
            said.contains("NOT re-attached") && said.contains("cli.test"),
            "{said}"
        );

        // Again: the schema exists now.
        let out = chatter(
            &url,
            &[
                "tenant",
                "import",
                file.to_str().unwrap(),
                "--as",
                "cli_copy",
            ],
        );
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("already exists"),
            "{}",
            text(&out.stderr)
        );

        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        let out = chatter(
            &url,
            &["tenant", "import", file.to_str().unwrap(), "--as", "cli_x"],
        );
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("not valid JSON"),
            "{}",
            text(&out.stderr)
        );

        let out = chatter(&url, &["tenant", "export", "nobody"]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("no tenant"),
            "{}",
            text(&out.stderr)
        );

        let out = chatter(&url, &["tenant", "export", "cli_copy"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (first, second)
    })
    .await
    .unwrap();

    assert_eq!(second["schema"], "cli_copy");
    assert_eq!(second["domains"], json!([]));
    let mut normalized = second.clone();
    normalized["schema"] = first["schema"].clone();
    normalized["domains"] = first["domains"].clone();
    assert_eq!(normalized, first);
    assert_eq!(first["faqs"][0]["embedding"], json!([0.25, -1.5, 3e-7]));
    assert_eq!(first["conversations"][0]["messages"][1]["faq_id"], 1);
    for table in TABLES {
        assert_eq!(
            rows(&pool, "cli_orig", table).await,
            rows(&pool, "cli_copy", table).await,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM public.tenants WHERE schema_name = 'cli_x'"
        )
        .await,
        0
    );
}

/// `tenant import` checks a file as the API checks what it is sent, names
/// every problem by its place, and imports nothing (issue 16, item 12:
/// these all went in, and a broken link failed as a bare "db error").
#[tokio::test]
async fn tenant_import_refuses_what_the_api_would_and_says_where() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.json");
    let good = json!({
        "format": "chatter-tenant", "version": 2, "schema": "imp", "name": "Imp",
        "domains": [],
        "bot_config": {
            "bot_name": "  Imp bot ", "greeting": "Hi", "fallback_reply": "Sorry",
            "match_threshold": 0.5, "theme": {"color": "#000"},
            "allowed_origins": ["HTTPS://Shop.Example.com"],
            "updated_at": "2024-05-01T10:00:00Z"
        },
        "faqs": [{"id": 1, "question": " Hours? ", "answer": "9 to 5", "alternatives": [],
                  "embedding": null, "model_id": null,
                  "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T10:00:00Z"}],
        "conversations": [{
            "id": 1, "session_id": "0123456789abcdef0123456789abcdef", "origin": null,
            "started_at": "2024-05-01T10:00:00Z", "last_message_at": "2024-05-01T10:00:00Z",
            "messages": [
                {"id": 1, "role": "visitor", "text": "hours?", "faq_id": null, "score": null,
                 "created_at": "2024-05-01T10:00:00Z", "feedback": null},
                {"id": 2, "role": "bot", "text": "9 to 5", "faq_id": 1, "score": 0.9,
                 "created_at": "2024-05-01T10:00:00Z", "feedback": null}
            ]
        }]
    });
    let mut bad = good.clone();
    bad["bot_config"]["allowed_origins"] = json!(["javascript:alert(1)"]);
    let mut hostile = bad.clone();
    hostile["faqs"][0]["alternatives"] = json!(vec!["another way to ask"; 500]);
    hostile["conversations"][0]["session_id"] = json!("not-hex-at-all");
    hostile["conversations"][0]["messages"][0]["role"] = json!("admin");
    hostile["conversations"][0]["messages"][1]["faq_id"] = json!(77);
    hostile["conversations"][0]["messages"][1]["text"] = json!("x".repeat(20_000));
    let mut theme = good.clone();
    theme["bot_config"]["theme"] = json!([1, 2, 3]);

    let url = db.url.clone();
    let path = file.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let mut outcomes = Vec::new();
        for archive in [bad, hostile, theme, good] {
            std::fs::write(&path, serde_json::to_vec(&archive).unwrap()).unwrap();
            let out = chatter(&url, &["tenant", "import", path.to_str().unwrap()]);
            outcomes.push((out.status.success(), text(&out.stderr)));
        }
        outcomes
    })
    .await
    .unwrap();

    let (ok, said) = &outcomes[0];
    assert!(!ok);
    assert!(
        said.contains("bot_config") && said.contains("javascript:alert(1)"),
        "{said}"
    );
    let (ok, said) = &outcomes[1];
    assert!(!ok);
    for expected in [
        "faqs[0] (id 1): more than 20 alternative phrasings",
        "conversations[0] (id 1): session_id must be 32 lowercase hex digits",
        "messages[0] (id 1): role must be \"visitor\" or \"bot\", not \"admin\"",
        "messages[1] (id 2): a bot message must be 1 to 10000 characters",
        "messages[1] (id 2): faq_id 77 is not an FAQ of this file",
    ] {
        assert!(said.contains(expected), "{expected:?} not in {said}");
    }
    assert!(!said.contains("db error"), "{said}");
    let (ok, said) = &outcomes[2];
    assert!(!ok);
    assert!(said.contains("theme must be a JSON object"), "{said}");
    let (ok, said) = &outcomes[3];
    assert!(ok, "{said}");

    // Nothing of the refused files went in; the good one, normalised as
    // the API would have stored it.
    let pool = db.pool(2);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM public.tenants WHERE schema_name = 'imp'"
        )
        .await,
        1
    );
    let client = pool.get().await.unwrap();
    let row = client
        .query_one("SELECT bot_name, allowed_origins FROM imp.bot_config", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Imp bot");
    assert_eq!(
        row.get::<_, Vec<String>>(1),
        vec!["https://shop.example.com".to_string()]
    );
    let question: String = client
        .query_one("SELECT question FROM imp.faqs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(question, "Hours?");
}

/// VmHWM (peak RSS) of a running process, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A 40 MB archive is read without holding the file whole or as a JSON
/// tree (issue 16, item 12: an 80 MB file peaked at 305 MB, 3.8 times its
/// size). Its last message is refused, so the check ends before any row is
/// written and the peak is the parse's.
#[tokio::test]
async fn a_large_archive_is_parsed_within_its_size_plus_a_margin() {
    use std::io::Write as _;
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.json");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let ts = "2024-05-01T10:00:00Z";
    write!(
        file,
        "{}",
        &serde_json::to_string(&json!({
            "format": "chatter-tenant", "version": 2, "schema": "large", "name": "Large",
            "domains": [],
            "bot_config": {"bot_name": "L", "greeting": "Hi", "fallback_reply": "Sorry",
                "match_threshold": 0.4, "theme": {}, "allowed_origins": [], "updated_at": ts},
            "faqs": []
        }))
        .unwrap()
        .trim_end_matches('}')
    )
    .unwrap();
    write!(file, ",\"conversations\":[").unwrap();
    let (mut written, mut id) = (0usize, 0i64);
    let target = 40_000_000;
    while written < target {
        id += 1;
        let last = written + 1_000 >= target;
        let messages: Vec<_> = (0..6)
            .map(|m| {
                json!({"id": id * 10 + m,
                       "role": if last && m == 5 { "admin" } else if m % 2 == 0 { "visitor" } else { "bot" },
                       "text": "a question about the opening hours of the shop and its delivery",
                       "faq_id": null, "score": null, "created_at": ts, "feedback": null})
            })
            .collect();
        let conversation = serde_json::to_string(&json!({
            "id": id, "session_id": format!("{id:032x}"), "origin": null,
            "started_at": ts, "last_message_at": ts, "messages": messages
        }))
        .unwrap();
        if id > 1 {
            file.write_all(b",").unwrap();
        }
        file.write_all(conversation.as_bytes()).unwrap();
        written += conversation.len() + 1;
    }
    file.write_all(b"]}").unwrap();
    file.flush().unwrap();
    drop(file);
    let file_kib = std::fs::metadata(&path).unwrap().len() / 1024;

    let url = db.url.clone();
    let (peak, success, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatter"))
            .args(["tenant", "import", path.to_str().unwrap()])
            .env("DATABASE_URL", &url)
            .env_remove("SECRET_KEY")
            .env("DEBUG", "True")
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut peak = 0;
        // VmHWM only grows: the last reading before the exit is the peak.
        while child.try_wait().unwrap().is_none() {
            peak = peak.max(peak_kib(child.id()).unwrap_or(0));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let out = child.wait_with_output().unwrap();
        (peak, out.status.success(), text(&out.stderr))
    })
    .await
    .unwrap();
    eprintln!("peak RSS {peak} KiB for a {file_kib} KiB archive");
    assert!(!success);
    assert!(stderr.contains("role must be"), "{stderr}");
    assert!(
        peak < file_kib + 64 * 1024,
        "peak RSS {peak} KiB for a {file_kib} KiB file"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}
