//! `chatter eval` on a tiny data set (tests/fixtures/eval_tiny.json), with
//! the real model and no database, as the quality bench runs it; and
//! `chatter eval SCHEMA FILE` against a live tenant, as an owner runs it.

use std::process::{Command, Output};

use chatter::db::migrate;
use chatter::faq::{self, NewFaq};
use chatter::tenancy::SchemaName;
use chatter::tenancy::provision::{self, NewTenant};

use crate::helpers::{TestDb, model_dir};
use crate::real_model::eval_set;

fn eval_command(args: &[&str]) -> Command {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eval_tiny.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatter"));
    command
        .arg("eval")
        .arg(fixture)
        .args(args)
        .env("CHATTER_MODEL_PATH", model_dir())
        .env("DEBUG", "True")
        // No database: a wrong URL must not matter.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .current_dir(std::env::temp_dir());
    command
}

fn eval(args: &[&str]) -> Output {
    eval_command(args).output().expect("chatter runs")
}

/// `chatter eval ... | head -1`: a reader that stops early ends the
/// command as it ends `cat` (SIGPIPE), not with a panic.
#[tokio::test]
async fn a_reader_that_stops_early_ends_the_command_quietly() {
    let out = tokio::task::spawn_blocking(|| {
        let mut child = eval_command(&["--k", "4"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("chatter runs");
        // The read end closed before the report is printed.
        drop(child.stdout.take());
        child.wait_with_output().expect("chatter ends")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

#[tokio::test]
async fn eval_counts_every_question_once_at_each_caution_level() {
    let out = tokio::task::spawn_blocking(|| eval(&["--k", "4", "--caution", "0.5,1", "--json"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &reports[0];
    assert_eq!(reports.as_array().unwrap().len(), 1);
    assert_eq!((r["k"].as_u64(), r["faqs"].as_u64()), (Some(4), Some(4)));
    assert_eq!(r["in_scope_questions"], 8);
    assert_eq!(r["out_of_scope_questions"], 3);
    assert_eq!(
        r["learned_matcher"], true,
        "question, 3 alternatives, answer"
    );
    let total = |t: &serde_json::Value| -> u64 {
        [
            "right",
            "wrong",
            "clarify_right",
            "clarify_other",
            "fallback",
        ]
        .iter()
        .map(|k| t[k].as_u64().unwrap())
        .sum()
    };
    for level in r["levels"].as_array().unwrap() {
        assert_eq!(total(&level["in_scope"]), 8, "{level}");
        assert_eq!(total(&level["out_of_scope"]), 3, "{level}");
    }
    let (usual, careful) = (&r["levels"][0], &r["levels"][1]);
    assert_eq!(usual["caution"], 0.5);
    // Easy paraphrases: most are ranked first, and answered or offered.
    assert!(r["top1"].as_f64().unwrap() >= 75.0, "{r}");
    assert!(
        r["top3"].as_f64().unwrap() >= r["top1"].as_f64().unwrap(),
        "{r}"
    );
    let resolved = usual["in_scope"]["right"].as_u64().unwrap()
        + usual["in_scope"]["clarify_right"].as_u64().unwrap();
    assert!(resolved >= 6, "{usual}");
    // The most cautious bot answers nothing outright: it asks.
    assert_eq!(careful["in_scope"]["right"], 0, "{careful}");
    assert_eq!(careful["in_scope"]["wrong"], 0, "{careful}");

    // The same as a table.
    let out = tokio::task::spawn_blocking(|| eval(&["--k", "4", "--seed", "1,2"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("K = 4, seed 1") && text.contains("K = 4, seed 2"),
        "{text}"
    );
    assert!(
        text.contains("top-1") && text.contains("resolved"),
        "{text}"
    );
}

#[tokio::test]
async fn eval_names_what_is_wrong_before_loading_the_model() {
    let out = tokio::task::spawn_blocking(|| eval(&["--caution", "2"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--caution"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokio::task::spawn_blocking(|| eval(&["--k", "6"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "K above the texts a label has: all of them"
    );
    let out = tokio::task::spawn_blocking(|| eval(&["--heldout", "--k", "21"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("K must be"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- `chatter eval SCHEMA FILE`: a live tenant ---

const TENANT: &str = "eval_live";

/// A tenant with the evaluation FAQs, each with its paraphrases but the
/// first as alternatives (data enough for a learned matcher), and the
/// first paraphrase of each as a labelled question; off-topic questions
/// labelled none. Returns the database and the CSV file's text.
async fn live_tenant() -> (TestDb, String) {
    let db = TestDb::create().await;
    let handle = db.handle(2);
    migrate::migrate_shared(&handle).await.unwrap();
    provision::create_tenant(
        &handle,
        NewTenant {
            schema: TENANT,
            name: "Eval live",
            domain: None,
            is_public: false,
        },
    )
    .await
    .unwrap();
    let eval = eval_set();
    let faqs: Vec<NewFaq> = eval
        .faqs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.clone();
            f.alternatives.extend(
                eval.paraphrases
                    .iter()
                    .filter(|p| p.faq == i)
                    .skip(1)
                    .map(|p| p.question.clone()),
            );
            f.alternatives.push(format!("{} (please)", f.question));
            f
        })
        .collect();
    let schema = SchemaName::parse(TENANT).unwrap();
    faq::import(&handle, &schema, &faqs, None).await.unwrap();
    let ids: Vec<i64> = faq::list(&handle, &schema)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    let mut csv = String::from("question,expected\n");
    for (i, id) in ids.iter().enumerate() {
        if let Some(p) = eval.paraphrases.iter().find(|p| p.faq == i) {
            csv.push_str(&format!("\"{}\",{id}\n", p.question.replace('"', "\"\"")));
        }
    }
    for q in &eval.off_topic {
        csv.push_str(&format!("\"{}\",none\n", q.replace('"', "\"\"")));
    }
    (db, csv)
}

fn eval_live(db_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatter"))
        .arg("eval")
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("CHATTER_MODEL_PATH", model_dir())
        .env("DEBUG", "True")
        .env_remove("SECRET_KEY")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("chatter runs")
}

async fn count(db: &TestDb, table: &str) -> i64 {
    let client = db.pool(1).get().await.unwrap();
    client
        .query_one(&format!("SELECT count(*) FROM {TENANT}.{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn eval_asks_a_live_tenant_with_its_matcher_and_stores_no_conversation() {
    let (db, csv) = live_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("questions.csv");
    std::fs::write(&file, &csv).unwrap();
    let in_scope = csv.lines().filter(|l| !l.ends_with(",none")).count() - 1;
    let url = db.url.clone();
    let path = file.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || eval_live(&url, &[TENANT, &path, "--json"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], TENANT);
    assert_eq!(r["faqs"], 20);
    assert_eq!(r["learned_matcher"], true, "{r}");
    assert_eq!(r["caution"], 0.5, "the tenant's own caution");
    let total = |t: &serde_json::Value| -> u64 {
        [
            "right",
            "wrong",
            "clarify_right",
            "clarify_other",
            "fallback",
        ]
        .iter()
        .map(|k| t[k].as_u64().unwrap())
        .sum()
    };
    assert_eq!(total(&r["in_scope"]) as usize, in_scope, "{r}");
    assert_eq!(total(&r["out_of_scope"]), 12, "{r}");
    // Held-out paraphrases of easy FAQs: most answered or offered right.
    assert!(r["resolved_percent"].as_f64().unwrap() >= 75.0, "{r}");
    assert!(r["out_of_scope"]["wrong"].as_u64().unwrap() <= 3, "{r}");
    assert!(r["confusions"].is_array());
    // Nothing of a conversation was written; the head it trained was kept.
    assert_eq!(count(&db, "conversations").await, 0);
    assert_eq!(count(&db, "messages").await, 0);
    assert_eq!(count(&db, "matcher_weights").await, 1);

    // The same as text, from a JSON file.
    let json: Vec<serde_json::Value> = csv
        .lines()
        .skip(1)
        .take(3)
        .map(|l| {
            let (q, e) = l.rsplit_once(',').unwrap();
            serde_json::json!({"question": q.trim_matches('"'), "expected": e})
        })
        .collect();
    let file = dir.path().join("questions.json");
    std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let url = db.url.clone();
    let path = file.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || eval_live(&url, &[TENANT, &path]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("3 questions with a FAQ") && text.contains("resolved in one step"),
        "{text}"
    );
    assert_eq!(count(&db, "messages").await, 0);
}

#[tokio::test]
async fn eval_of_a_live_tenant_names_the_schema_or_the_line_that_is_wrong() {
    let (db, csv) = live_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = write("good.csv", &csv);
    let unknown_faq = write(
        "unknown.csv",
        "question,expected\nwhen are you open,none\nwhere is my parcel,999999\n",
    );
    let bad_csv = write(
        "bad.csv",
        "question,expected\nok,none\nnot a number,seven\n",
    );
    let bad_json = write(
        "bad.json",
        "[\n  {\"question\": \"ok\", \"expected\": \"none\"},\n  {\"question\": \"no label\"}\n]\n",
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["no_such_tenant".into(), good.clone()],
            "no_such_tenant",
        ),
        (vec![TENANT.into(), unknown_faq], "line 3"),
        (vec![TENANT.into(), bad_csv], "line 3"),
        (vec![TENANT.into(), bad_json], "line 3"),
        (vec![TENANT.into(), good, "--k".into(), "5".into()], "--k"),
    ];
    for (args, says) in cases {
        let url = db.url.clone();
        let shown = args.join(" ");
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            eval_live(&url, &args)
        })
        .await
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{shown}");
        assert!(err.contains(says), "{shown}: {err}");
    }
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        eval_live(&url, &[TENANT, "/nonexistent/questions.csv"])
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
