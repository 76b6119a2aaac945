//! `chatter eval` on a tiny data set (tests/fixtures/eval_tiny.json), with
//! the real model and no database, as an owner or the quality bench runs it.

use std::process::{Command, Output};

use crate::helpers::model_dir;

fn eval(args: &[&str]) -> Output {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eval_tiny.json");
    Command::new(env!("CARGO_BIN_EXE_chatter"))
        .arg("eval")
        .arg(fixture)
        .args(args)
        .env("CHATTER_MODEL_PATH", model_dir())
        .env("DEBUG", "True")
        // No database: a wrong URL must not matter.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("chatter runs")
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
