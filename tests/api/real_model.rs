//! Answering with the real all-MiniLM-L6-v2 through HTTP: a realistic FAQ
//! set with paraphrased and off-topic questions, and concurrent chats to
//! several tenants.

use std::sync::Arc;

use chatter::app::ModelChoice;
use chatter::config::ModelSettings;
use chatter::engine::worker::EmbeddingQueue;
use chatter::engine::{Engine, loader};
use chatter::faq::{self, NewFaq};
use chatter::tenancy::SchemaName;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::helpers::{TestApp, model_dir, spawn_app_with_model};

#[derive(Deserialize)]
pub struct Eval {
    pub faqs: Vec<NewFaq>,
    pub paraphrases: Vec<Paraphrase>,
    pub off_topic: Vec<String>,
}

#[derive(Deserialize)]
pub struct Paraphrase {
    pub question: String,
    pub faq: usize,
}

pub fn eval_set() -> Eval {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/faq_eval.json"
    ))
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(json!({
        "faqs": value["faqs"],
        "paraphrases": value["paraphrases"],
        "off_topic": value["off_topic"],
    }))
    .unwrap()
}

/// One real model for the whole test binary.
pub async fn real_engine() -> Arc<Engine> {
    static ENGINE: OnceCell<EmbeddingQueue> = OnceCell::const_new();
    let queue = ENGINE
        .get_or_init(|| async {
            let settings = ModelSettings {
                path: Some(model_dir()),
                threads: 2,
                ..ModelSettings::default()
            };
            let embedder = loader::load(&settings, chatter::engine::model_files::Progress::Silent)
                .await
                .expect("the real model loads");
            // Shared by every test's app: its batches are recorded nowhere.
            EmbeddingQueue::start(embedder, loader::worker_settings(&settings), Arc::default())
                .unwrap()
        })
        .await
        .clone();
    Arc::new(Engine::ready(queue))
}

async fn app_with_eval_set(tenants: &[&str]) -> (TestApp, Eval) {
    let app = spawn_app_with_model(|_| {}, ModelChoice::Given(real_engine().await)).await;
    let eval = eval_set();
    for tenant in tenants {
        app.create_tenant(tenant, tenant, None).await;
        // Each tenant's answers and fallback carry its name, so a reply shows whose it is.
        let faqs: Vec<NewFaq> = eval
            .faqs
            .iter()
            .map(|f| NewFaq {
                answer: format!("[{tenant}] {}", f.answer),
                ..f.clone()
            })
            .collect();
        faq::import(
            &app.handle,
            &SchemaName::parse(tenant).unwrap(),
            &faqs,
            None,
        )
        .await
        .unwrap();
        let client = app.pool.get().await.unwrap();
        client
            .execute(
                &format!("UPDATE \"{tenant}\".bot_config SET fallback_reply = $1"),
                &[&format!("[{tenant}] Sorry, I don't know.")],
            )
            .await
            .unwrap();
    }
    (app, eval)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrases_get_the_right_answer_and_off_topic_falls_back() {
    let (app, eval) = app_with_eval_set(&["outfitters"]).await;
    let mut right = 0;
    let mut misses = Vec::new();
    for p in &eval.paraphrases {
        let (status, body) = app.chat("outfitters", json!({"message": p.question})).await;
        assert_eq!(status, 200, "{body}");
        let expected = format!("[outfitters] {}", eval.faqs[p.faq].answer);
        if body["matched"] == true && body["reply"] == expected {
            right += 1;
        } else {
            misses.push(format!(
                "{:?} → {} ({})",
                p.question, body["reply"], body["score"]
            ));
        }
    }
    let share = right as f64 / eval.paraphrases.len() as f64;
    assert!(
        share >= 0.85,
        "{right}/{} right; misses: {misses:#?}",
        eval.paraphrases.len()
    );
    for question in &eval.off_topic {
        let (_, body) = app.chat("outfitters", json!({"message": question})).await;
        assert_eq!(
            body["matched"], false,
            "{question:?} matched {}",
            body["reply"]
        );
        assert_eq!(body["reply"], "[outfitters] Sorry, I don't know.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_chats_to_four_tenants_answer_from_the_asking_tenant() {
    let tenants = ["north", "south", "east", "west"];
    let (app, eval) = app_with_eval_set(&tenants).await;
    let app = Arc::new(app);
    let eval = Arc::new(eval);
    let chats = (0..64).map(|i| {
        let app = Arc::clone(&app);
        let eval = Arc::clone(&eval);
        let tenant = tenants[i % 4];
        tokio::spawn(async move {
            let question = &eval.paraphrases[i % eval.paraphrases.len()].question;
            let (status, body) = app.chat(tenant, json!({"message": question})).await;
            (tenant, status, body)
        })
    });
    let results = futures_util::future::join_all(chats).await;
    let mut matched = 0;
    for result in results {
        let (tenant, status, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
        let reply = body["reply"].as_str().unwrap();
        assert!(
            reply.starts_with(&format!("[{tenant}] ")),
            "{tenant} got {reply:?}"
        );
        if body["matched"] == true {
            matched += 1;
        }
    }
    assert!(matched >= 48, "only {matched}/64 matched");
}
