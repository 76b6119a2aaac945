//! The learned matcher through HTTP (issue 14), with the real model: the
//! three outcomes, retraining when FAQs change, and learning from a pick
//! among clarify choices.

use std::time::Duration;

use chatter::app::ModelChoice;
use chatter::bot_config::{self, BotConfigUpdate};
use chatter::faq::{self, NewFaq};
use chatter::tenancy::SchemaName;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with_model};
use crate::real_model::{eval_set, real_engine};

/// The evaluation FAQs, each with its paraphrases but the first as extra
/// alternatives: data enough for a learned matcher.
async fn app_with_matcher(tenant: &str, caution: f32) -> TestApp {
    let app = spawn_app_with_model(|_| {}, ModelChoice::Given(real_engine().await)).await;
    app.create_tenant(tenant, tenant, None).await;
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
    let schema = SchemaName::parse(tenant).unwrap();
    faq::import(&app.handle, &schema, &faqs, None)
        .await
        .unwrap();
    bot_config::update(
        &app.handle,
        &schema,
        BotConfigUpdate {
            caution: Some(caution),
            ..BotConfigUpdate::default()
        },
    )
    .await
    .unwrap();
    // The head trained and stored now, as the first questions would have
    // it trained in the background.
    assert!(
        app.state
            .answerer
            .index(&schema)
            .await
            .unwrap()
            .has_matcher()
    );
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_clarify_and_fallback_are_the_three_outcomes() {
    let app = app_with_matcher("careful", 0.5).await;
    let eval = eval_set();

    let (status, body) = app
        .chat("careful", json!({"message": eval.faqs[0].question}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "answer", "{body}");
    assert_eq!(body["matched"], true);
    assert_eq!(body["reply"], eval.faqs[0].answer.as_str());
    assert!(body["confidence"].as_f64().unwrap() >= 0.5, "{body}");
    assert_eq!(body["choices"], json!([]));

    let (_, body) = app
        .chat("careful", json!({"message": eval.off_topic[0]}))
        .await;
    assert_eq!(body["outcome"], "fallback", "{body}");
    assert_eq!(body["matched"], false);
    assert_eq!(body["choices"], json!([]));

    // The most cautious bot answers nothing outright: it asks.
    let schema = SchemaName::parse("careful").unwrap();
    bot_config::update(
        &app.handle,
        &schema,
        BotConfigUpdate {
            caution: Some(1.0),
            ..BotConfigUpdate::default()
        },
    )
    .await
    .unwrap();
    let p = &eval.paraphrases[0];
    let body = until(&app, "careful", &p.question, |b| b["outcome"] == "clarify").await;
    assert_eq!(body["matched"], false);
    let choices = body["choices"].as_array().unwrap();
    assert!((2..=3).contains(&choices.len()), "{body}");
    let questions: Vec<&str> = choices
        .iter()
        .map(|c| c["question"].as_str().unwrap())
        .collect();
    assert!(
        questions.contains(&eval.faqs[p.faq].question.as_str()),
        "{body}"
    );
    // Older clients read the questions from `suggestions`.
    assert_eq!(
        body["suggestions"].as_array().unwrap().len(),
        choices.len(),
        "{body}"
    );
    app.stop().await;
}

/// Asks until `done` holds for the answer (change events arrive
/// asynchronously), at most 15 s.
async fn until(
    app: &TestApp,
    tenant: &str,
    message: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut body = serde_json::Value::Null;
    for _ in 0..60 {
        let (status, b) = app.chat(tenant, json!({"message": message})).await;
        assert_eq!(status, 200, "{b}");
        body = b;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("never got there; last answer {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_server_retrains_when_faqs_change() {
    let app = app_with_matcher("changing", 0.5).await;
    let schema = SchemaName::parse("changing").unwrap();
    let question = "Can I bring my dog into the store?";
    let (_, before) = app.chat("changing", json!({"message": question})).await;
    assert!(
        before["confidence"].is_number(),
        "a matcher ranks: {before}"
    );
    assert_ne!(before["reply"], "Dogs on a leash are welcome.");

    let created = faq::create(
        &app.handle,
        &schema,
        NewFaq {
            question: "Are dogs allowed in your shops?".into(),
            answer: "Dogs on a leash are welcome.".into(),
            alternatives: vec![
                "Can I bring my dog into the store?".into(),
                "Are pets allowed inside?".into(),
            ],
        },
        None,
    )
    .await
    .unwrap();
    // Answered by the nearest phrasing at once, then by the head trained
    // on the new FAQs in the background: no restart.
    let body = until(&app, "changing", question, |b| {
        b["reply"] == "Dogs on a leash are welcome." && b["confidence"].is_number()
    })
    .await;
    assert_eq!(body["faq_id"], created.id);
    assert_eq!(body["outcome"], "answer");

    // An edit is picked up too: the new answer, without a restart.
    faq::update(
        &app.handle,
        &schema,
        created.id,
        NewFaq {
            question: "Are dogs allowed in your shops?".into(),
            answer: "Only guide dogs, sorry.".into(),
            alternatives: vec![
                "Can I bring my dog into the store?".into(),
                "Are pets allowed inside?".into(),
            ],
        },
    )
    .await
    .unwrap();
    until(&app, "changing", question, |b| {
        b["reply"] == "Only guide dogs, sorry."
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clarify_pick_answers_and_becomes_a_phrasing() {
    let app = app_with_matcher("learning", 1.0).await;
    let schema = SchemaName::parse("learning").unwrap();
    let eval = eval_set();
    let p = &eval.paraphrases[0];
    let (_, body) = app.chat("learning", json!({"message": p.question})).await;
    assert_eq!(body["outcome"], "clarify", "{body}");
    let pick = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["question"] == eval.faqs[p.faq].question.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the right FAQ is offered: {body}"));
    let faq_id = pick["faq_id"].as_i64().unwrap();

    let (status, answer) = app
        .chat(
            "learning",
            json!({"session_id": body["session_id"], "message": p.question, "faq_id": faq_id}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "answer");
    assert_eq!(answer["reply"], eval.faqs[p.faq].answer.as_str());
    assert_eq!(answer["session_id"], body["session_id"]);

    let learned = faq::get(&app.handle, &schema, faq_id).await.unwrap();
    assert!(
        learned.alternatives.contains(&p.question),
        "{:?}",
        learned.alternatives
    );

    // A pick of a FAQ that has nothing to do with the question answers
    // with it but teaches it nothing.
    let far = faq::list(&app.handle, &schema)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.question.contains("warranty"))
        .unwrap();
    let (status, answer) = app
        .chat(
            "learning",
            json!({"message": "what time do you close on sunday", "faq_id": far.id}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["faq_id"], far.id);
    let after = faq::get(&app.handle, &schema, far.id).await.unwrap();
    assert_eq!(after.alternatives, far.alternatives);

    let (status, _) = app
        .chat(
            "learning",
            json!({"message": p.question, "faq_id": 999_999}),
        )
        .await;
    assert_eq!(status, 400, "an unknown FAQ");
    app.stop().await;
}
