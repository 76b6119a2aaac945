//! `/api/members`: owners list, add, change and remove the tenant's
//! members; agents and other tenants' owners are refused; the last owner
//! can be neither removed nor demoted.

use chatter::auth::users::{self, NewUser};
use serde_json::json;

use crate::client_api::{PASSWORD, call, setup};

#[tokio::test]
async fn owners_manage_members_and_the_last_owner_stays() {
    let (app, owner, agent, other) = setup().await;
    users::create_user(
        &app.handle,
        NewUser {
            email: "new@shop.test",
            password: PASSWORD,
            is_operator: false,
            membership: None,
        },
    )
    .await
    .unwrap();

    let (status, list) = call(&app, "GET", "/api/members", Some(&owner), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list,
        json!([{"email": "owner@shop.test", "role": "owner"}, {"email": "agent@shop.test", "role": "agent"}])
    );
    // Agents, and owners of another tenant, are refused every route.
    for token in [&agent, &other] {
        for (method, path, body) in [
            ("GET", "/api/members", None),
            (
                "POST",
                "/api/members",
                Some(json!({"email": "new@shop.test", "role": "owner"})),
            ),
            (
                "PUT",
                "/api/members/agent@shop.test",
                Some(json!({"role": "owner"})),
            ),
            ("DELETE", "/api/members/owner@shop.test", None),
        ] {
            let (status, body) = call(&app, method, path, Some(token), body).await;
            assert_eq!(status, 403, "{method} {path}: {body}");
        }
    }
    assert_eq!(call(&app, "GET", "/api/members", None, None).await.0, 401);

    // Bad input is named; unknown people are 404; a member twice is 409.
    for (body, named) in [
        (json!({"email": "new@shop.test", "role": "admin"}), "role"),
        (json!({"email": "not an email", "role": "agent"}), "email"),
    ] {
        let (status, res) = call(&app, "POST", "/api/members", Some(&owner), Some(body)).await;
        assert_eq!(status, 400, "{res}");
        assert!(
            res["error"]["message"].as_str().unwrap().contains(named),
            "{res}"
        );
    }
    let (status, _) = call(
        &app,
        "POST",
        "/api/members",
        Some(&owner),
        Some(json!({"email": "nobody@shop.test", "role": "agent"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, added) = call(
        &app,
        "POST",
        "/api/members",
        Some(&owner),
        Some(json!({"email": " New@Shop.test ", "role": "agent"})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added, json!({"email": "new@shop.test", "role": "agent"}));
    let (status, _) = call(
        &app,
        "POST",
        "/api/members",
        Some(&owner),
        Some(json!({"email": "new@shop.test", "role": "owner"})),
    )
    .await;
    assert_eq!(status, 409);
    // The new agent reads the bot but cannot write.
    let newcomer = crate::client_api::sign_in(&app, "new@shop.test").await;
    assert_eq!(
        call(&app, "GET", "/api/faqs", Some(&newcomer), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/members", Some(&newcomer), None)
            .await
            .0,
        403
    );

    // The only owner can be neither demoted nor removed.
    for (method, body) in [("PUT", Some(json!({"role": "agent"}))), ("DELETE", None)] {
        let (status, res) = call(
            &app,
            method,
            "/api/members/owner@shop.test",
            Some(&owner),
            body,
        )
        .await;
        assert_eq!(status, 409, "{method}: {res}");
        assert!(
            res["error"]["message"].as_str().unwrap().contains("owner"),
            "{res}"
        );
    }
    // Promote the newcomer: now the first owner may step down, at once.
    let (status, _) = call(
        &app,
        "PUT",
        "/api/members/new@shop.test",
        Some(&owner),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&app, "GET", "/api/members", Some(&newcomer), None)
            .await
            .0,
        200
    );
    let (status, _) = call(
        &app,
        "PUT",
        "/api/members/owner@shop.test",
        Some(&owner),
        Some(json!({"role": "agent"})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&app, "GET", "/api/members", Some(&owner), None)
            .await
            .0,
        403,
        "demoted"
    );
    // The newcomer, the only owner now, removes the agent; not a member: 404.
    let (status, _) = call(
        &app,
        "DELETE",
        "/api/members/agent@shop.test",
        Some(&newcomer),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&app, "GET", "/api/faqs", Some(&agent), None).await.0,
        403,
        "removed"
    );
    let (status, _) = call(
        &app,
        "DELETE",
        "/api/members/agent@shop.test",
        Some(&newcomer),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        "DELETE",
        "/api/members/new@shop.test",
        Some(&newcomer),
        None,
    )
    .await;
    assert_eq!(status, 409, "the last owner stays");
    let (_, list) = call(&app, "GET", "/api/members", Some(&newcomer), None).await;
    assert_eq!(
        list,
        json!([{"email": "new@shop.test", "role": "owner"}, {"email": "owner@shop.test", "role": "agent"}])
    );
    // Another tenant's members are untouched.
    assert_eq!(
        call(&app, "GET", "/api/bot/config", Some(&other), None)
            .await
            .0,
        403
    );
}

/// Two owners demoting each other at once: one succeeds, the other is
/// refused; the tenant keeps an owner.
#[tokio::test]
async fn two_owners_stepping_down_at_once_leave_one() {
    let (app, owner, agent, _other) = setup().await;
    let (status, _) = call(
        &app,
        "PUT",
        "/api/members/agent@shop.test",
        Some(&owner),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 204);
    let (a, b) = tokio::join!(
        call(
            &app,
            "PUT",
            "/api/members/owner@shop.test",
            Some(&owner),
            Some(json!({"role": "agent"}))
        ),
        call(
            &app,
            "DELETE",
            "/api/members/agent@shop.test",
            Some(&agent),
            None
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [204, 409], "{a:?} {b:?}");
    let client = app.pool.get().await.unwrap();
    let owners: i64 = client
        .query_one(
            "SELECT count(*) FROM public.memberships m JOIN public.tenants t ON t.id = m.tenant_id \
             WHERE t.schema_name = 'shop' AND m.role = 'owner'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owners, 1);
}
