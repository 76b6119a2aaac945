//! The dashboard's FAQ tools: "Try a question" answers without storing
//! anything, and an import preview names every bad row without writing.

use serde_json::json;

use crate::client_api::{call, setup};

#[tokio::test]
async fn trying_a_question_answers_with_the_nearest_faqs_and_stores_nothing() {
    let (app, owner, agent, other) = setup().await;
    app.import_faqs(
        "shop",
        &[
            ("What are your opening hours?", "9 to 5."),
            ("Do you ship abroad?", "Yes."),
            ("How do I return an item?", "Within 30 days."),
            ("Do you sell gift cards?", "Yes, from 10 euros."),
        ],
    )
    .await;
    let ask = json!({"message": "What are your opening hours?"});
    let (status, body) = call(
        &app,
        "POST",
        "/api/faqs/try",
        Some(&agent),
        Some(ask.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], true);
    assert_eq!(body["reply"], "9 to 5.");
    let nearest = body["nearest"].as_array().unwrap();
    assert_eq!(nearest.len(), 3);
    assert_eq!(nearest[0]["question"], "What are your opening hours?");
    assert!(nearest[0]["score"].as_f64().unwrap() >= nearest[1]["score"].as_f64().unwrap());
    assert!(body["threshold"].as_f64().is_some());
    // Owners too; strangers and other tenants' owners not.
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/faqs/try",
            Some(&owner),
            Some(ask.clone())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, "POST", "/api/faqs/try", None, Some(ask.clone()))
            .await
            .0,
        401
    );
    assert_eq!(
        call(&app, "POST", "/api/faqs/try", Some(&other), Some(ask))
            .await
            .0,
        403
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/faqs/try",
        Some(&owner),
        Some(json!({"message": "  "})),
    )
    .await;
    assert_eq!(status, 400);
    // Nothing was stored.
    let client = app.pool.get().await.unwrap();
    let messages: i64 = client
        .query_one("SELECT count(*) FROM shop.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(messages, 0);
}

#[tokio::test]
async fn an_import_preview_names_each_bad_row_and_writes_nothing() {
    let (app, owner, agent, _other) = setup().await;
    let csv = "question,answer,alternatives\nDo you deliver?,Yes.,Do you bring it|Home delivery?\n,No question\nOpen on Sunday?,\n";
    let preview = |token: &str| {
        app.http
            .post(format!("{}/api/faqs/import/preview", app.addr))
            .header("X-Client-ID", "shop")
            .header("Content-Type", "text/csv")
            .bearer_auth(token)
            .body(csv)
            .send()
    };
    let response = preview(&owner).await.unwrap();
    assert_eq!(response.status(), 200);
    let rows: serde_json::Value = response.json().await.unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["label"], "line 2");
    assert_eq!(
        rows[0]["faq"]["alternatives"],
        json!(["Do you bring it", "Home delivery?"])
    );
    assert!(rows[0]["error"].is_null());
    assert_eq!(rows[1]["label"], "line 3");
    assert!(rows[1]["faq"].is_null());
    assert!(
        rows[1]["error"].as_str().unwrap().contains("question"),
        "{}",
        rows[1]
    );
    assert_eq!(rows[2]["label"], "line 4");
    assert!(
        rows[2]["error"].as_str().unwrap().contains("answer"),
        "{}",
        rows[2]
    );
    // Agents may not import, so may not preview either.
    assert_eq!(preview(&agent).await.unwrap().status(), 403);
    let (_, list) = call(&app, "GET", "/api/faqs", Some(&owner), None).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "a preview writes nothing"
    );
}

/// Each try costs an inference: a member gets the chat's fair use, then 429.
#[tokio::test]
async fn tries_are_limited_like_a_visitors_questions() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.chat.visitor_burst = 3;
        s.chat.visitor_messages_per_minute = 1;
    })
    .await;
    app.create_tenant("shop", "Shop", None).await;
    app.import_faqs("shop", &[("What are your opening hours?", "9 to 5.")])
        .await;
    chatter::auth::users::create_user(
        &app.handle,
        chatter::auth::users::NewUser {
            email: "agent@shop.test",
            password: crate::client_api::PASSWORD,
            is_operator: false,
            membership: Some(("shop", chatter::auth::Role::Agent)),
        },
    )
    .await
    .unwrap();
    let agent = crate::client_api::sign_in(&app, "agent@shop.test").await;
    let ask = json!({"message": "opening hours?"});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _) = call(
            &app,
            "POST",
            "/api/faqs/try",
            Some(&agent),
            Some(ask.clone()),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    app.stop().await;
}

/// Each of the nearest FAQs names the phrasing that came closest: the
/// question, one of the alternatives, or the answer.
#[tokio::test]
async fn a_try_names_the_phrasing_that_matched() {
    let (app, owner, agent, _other) = setup().await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/faqs",
        Some(&owner),
        Some(json!({
            "question": "What are your opening hours?",
            "answer": "Nine to five on weekdays.",
            "alternatives": ["when does the shop open", "are you open on sunday"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (message, kind, text) in [
        (
            "are you open on sunday",
            "alternative",
            "are you open on sunday",
        ),
        (
            "What are your opening hours?",
            "question",
            "What are your opening hours?",
        ),
        (
            "Nine to five on weekdays.",
            "answer",
            "Nine to five on weekdays.",
        ),
    ] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/faqs/try",
            Some(&agent),
            Some(json!({"message": message})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let best = &body["nearest"][0];
        assert_eq!(best["matched_kind"], kind, "{message}: {body}");
        assert_eq!(best["matched_text"], text, "{message}: {body}");
    }
}

/// "This question belongs to FAQ X": any member files a visitor's question
/// under a FAQ; it becomes a phrasing the bot matches at once, and only an
/// owner takes it off again.
#[tokio::test]
async fn a_member_files_a_question_under_a_faq_and_the_owner_can_take_it_back() {
    let (app, owner, agent, other) = setup().await;
    app.import_faqs(
        "shop",
        &[
            ("What are your opening hours?", "9 to 5."),
            ("Do you ship abroad?", "Yes."),
        ],
    )
    .await;
    let (_, listed) = call(&app, "GET", "/api/faqs", Some(&owner), None).await;
    let hours = listed[0]["id"].as_i64().unwrap();
    let path = format!("/api/faqs/{hours}/phrasings");
    let question = "Is the shop staffed at weekends?";
    let (_, before) = app.chat("shop", json!({"message": question})).await;
    assert_ne!(before["reply"], "9 to 5.", "{before}");

    let filed = json!({"text": format!("  {question} ")});
    let (status, body) = call(&app, "POST", &path, Some(&agent), Some(filed.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], true);
    assert_eq!(body["faq"]["alternatives"], json!([question]));
    let (_, after) = app.chat("shop", json!({"message": question})).await;
    assert_eq!(after["reply"], "9 to 5.", "{after}");
    assert_eq!(after["faq_id"], hours);

    // Filed twice (any case): nothing more.
    let (status, body) = call(
        &app,
        "POST",
        &path,
        Some(&owner),
        Some(json!({"text": question.to_uppercase()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], false);
    assert_eq!(body["faq"]["alternatives"], json!([question]));

    for (token, body, expected) in [
        (None, filed.clone(), 401),
        (Some(other.as_str()), filed.clone(), 403),
        (Some(agent.as_str()), json!({"text": " "}), 400),
        (Some(agent.as_str()), json!({"text": "x".repeat(2001)}), 400),
        (Some(agent.as_str()), json!({"question": "x"}), 400),
    ] {
        let (status, answer) = call(&app, "POST", &path, token, Some(body)).await;
        assert_eq!(status, expected, "{answer}");
    }
    let (status, _) = call(
        &app,
        "POST",
        "/api/faqs/999999/phrasings",
        Some(&agent),
        Some(filed.clone()),
    )
    .await;
    assert_eq!(status, 404);

    // Only owners take a phrasing off.
    let (status, _) = call(&app, "DELETE", &path, Some(&agent), Some(filed.clone())).await;
    assert_eq!(status, 403);
    let (status, body) = call(
        &app,
        "DELETE",
        &path,
        Some(&owner),
        Some(json!({"text": question.to_lowercase()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alternatives"], json!([]));
    let (_, again) = app.chat("shop", json!({"message": question})).await;
    assert_ne!(again["reply"], "9 to 5.", "{again}");

    // A FAQ full of phrasings says so.
    for i in 0..20 {
        let (status, _) = call(
            &app,
            "POST",
            &path,
            Some(&agent),
            Some(json!({"text": format!("wording {i}")})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, body) = call(&app, "POST", &path, Some(&agent), Some(filed)).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("20 alternative"), "{body}");
}

/// The doctor names the phrasing written under the wrong FAQ and the pair
/// it confuses; strangers get nothing.
#[tokio::test]
async fn faq_health_names_confused_pairs_and_the_phrasings_that_pull() {
    let (app, owner, agent, other) = setup().await;
    let schema = chatter::tenancy::SchemaName::parse("shop").unwrap();
    chatter::faq::import(
        &app.handle,
        &schema,
        &[
            chatter::faq::NewFaq {
                question: "What are your opening hours?".into(),
                answer: "9 to 5.".into(),
                // Written under the wrong FAQ: it is the shipping question.
                alternatives: vec!["When are you open?".into(), "Do you ship abroad?".into()],
            },
            chatter::faq::NewFaq {
                question: "Do you ship abroad?".into(),
                answer: "Yes.".into(),
                alternatives: vec!["Can you deliver overseas?".into()],
            },
            chatter::faq::NewFaq {
                question: "Is there parking?".into(),
                answer: "Behind the shop.".into(),
                alternatives: vec![],
            },
        ],
        None,
    )
    .await
    .unwrap();
    let (status, body) = call(&app, "GET", "/api/faqs/health", Some(&agent), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["faqs"], 3);
    let pulls = body["pulls"].as_array().unwrap();
    assert!(
        pulls.iter().any(|p| p["phrasing"] == "Do you ship abroad?"
            && p["faq"]["question"] == "What are your opening hours?"
            && p["toward"]["question"] == "Do you ship abroad?"),
        "{body}"
    );
    let pair = &body["pairs"][0];
    let names = [pair["a"]["question"].clone(), pair["b"]["question"].clone()];
    assert!(
        names.contains(&json!("What are your opening hours?"))
            && names.contains(&json!("Do you ship abroad?")),
        "{body}"
    );
    assert!(pair["pulls"].as_u64().unwrap() >= 1, "{body}");
    assert!(!pair["examples"].as_array().unwrap().is_empty(), "{body}");

    assert_eq!(
        call(&app, "GET", "/api/faqs/health", Some(&owner), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/faqs/health", None, None).await.0,
        401
    );
    assert_eq!(
        call(&app, "GET", "/api/faqs/health", Some(&other), None)
            .await
            .0,
        403
    );
}
