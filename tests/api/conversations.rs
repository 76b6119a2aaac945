//! Reading conversations back: list, search, filters, transcript, erasure,
//! CSV export; members only, erasure for owners.

use serde_json::json;

use crate::client_api::{call, setup};

#[tokio::test]
async fn members_list_search_read_export_and_owners_erase() {
    let (app, owner, agent, other) = setup().await;
    app.import_faqs(
        "shop",
        &[("What are your opening hours?", "9 to 5 on weekdays.")],
    )
    .await;
    // Two conversations: one answered, one with a fallback.
    let (_, first) = app
        .chat("shop", json!({"message": "what are your opening hours"}))
        .await;
    let (_, second) = app
        .chat("shop", json!({"message": "do you sell bicycles"}))
        .await;
    app.chat(
        "shop",
        json!({"session_id": second["session_id"], "message": "or tandem bicycles"}),
    )
    .await;

    assert_eq!(
        call(&app, "GET", "/api/conversations", None, None).await.0,
        401
    );
    assert_eq!(
        call(&app, "GET", "/api/conversations", Some(&other), None)
            .await
            .0,
        403
    );
    let (status, page) = call(&app, "GET", "/api/conversations", Some(&agent), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 2);
    let latest = &page["conversations"][0];
    assert_eq!(latest["session_id"], second["session_id"], "latest first");
    assert_eq!(latest["messages"], 4);
    assert_eq!(latest["first_message"], "do you sell bicycles");
    assert_eq!(latest["answered"], false);

    let (_, found) = call(
        &app,
        "GET",
        "/api/conversations?q=tandem",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(found["total"], 1);
    assert_eq!(
        found["conversations"][0]["session_id"],
        second["session_id"]
    );
    let (_, answered) = call(
        &app,
        "GET",
        "/api/conversations?answered=true",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(answered["total"], 1);
    assert_eq!(
        answered["conversations"][0]["session_id"],
        first["session_id"]
    );
    let (_, none) = call(
        &app,
        "GET",
        "/api/conversations?from=2000-01-01&to=2000-12-31",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(none["total"], 0);
    let today = chrono::Utc::now().date_naive();
    let (_, all) = call(
        &app,
        "GET",
        &format!("/api/conversations?from={today}&to={today}&page=1"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(all["total"], 2);
    let (_, empty) = call(&app, "GET", "/api/conversations?page=2", Some(&agent), None).await;
    assert_eq!(empty["conversations"].as_array().unwrap().len(), 0);
    for bad in ["?from=yesterday", "?answered=maybe", "?page=x", "?sort=asc"] {
        let (status, body) = call(
            &app,
            "GET",
            &format!("/api/conversations{bad}"),
            Some(&agent),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad} → {body}");
    }

    let id = latest["id"].as_i64().unwrap();
    let (status, transcript) = call(
        &app,
        "GET",
        &format!("/api/conversations/{id}"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let roles: Vec<_> = transcript["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["visitor", "bot", "visitor", "bot"]);
    assert_eq!(
        call(&app, "GET", "/api/conversations/999999", Some(&agent), None)
            .await
            .0,
        404
    );

    let response = app
        .http
        .get(format!("{}/api/conversations/export.csv", app.addr))
        .header("X-Client-ID", "shop")
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    assert!(csv.contains("tandem bicycles"));

    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/conversations/{id}"),
            Some(&agent),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/conversations/{id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/conversations/{id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        404
    );
    let client = app.pool.get().await.unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM shop.messages WHERE text LIKE '%bicycles%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "erasure removes the messages too");
}

/// The 👎 filter: conversations where a visitor marked an answer not
/// helpful, or none; each listed conversation counts its thumbs down.
#[tokio::test]
async fn conversations_filter_by_a_thumbs_down() {
    let (app, _owner, agent, _other) = setup().await;
    app.import_faqs(
        "shop",
        &[("What are your opening hours?", "9 to 5 on weekdays.")],
    )
    .await;
    let (_, liked) = app
        .chat("shop", json!({"message": "what are your opening hours"}))
        .await;
    let (_, disliked) = app
        .chat("shop", json!({"message": "opening hours please"}))
        .await;
    app.chat("shop", json!({"message": "no feedback here"}))
        .await;
    for (reply, helpful) in [(&liked, true), (&disliked, false)] {
        let response = app
            .post("/api/chat/feedback")
            .header("X-Client-ID", "shop")
            .json(&json!({"session_id": reply["session_id"], "message_id": reply["message_id"], "helpful": helpful}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    let (status, down) = call(
        &app,
        "GET",
        "/api/conversations?thumbs_down=true",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 200, "{down}");
    assert_eq!(down["total"], 1, "{down}");
    assert_eq!(
        down["conversations"][0]["session_id"],
        disliked["session_id"]
    );
    assert_eq!(down["conversations"][0]["thumbs_down"], 1);
    let (_, rest) = call(
        &app,
        "GET",
        "/api/conversations?thumbs_down=false&answered=true",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(rest["total"], 1, "{rest}");
    assert_eq!(rest["conversations"][0]["session_id"], liked["session_id"]);
    assert_eq!(rest["conversations"][0]["thumbs_down"], 0);
    let (_, all) = call(&app, "GET", "/api/conversations", Some(&agent), None).await;
    assert_eq!(all["total"], 3);
    let (status, _) = call(
        &app,
        "GET",
        "/api/conversations?thumbs_down=sure",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(status, 400);
}
