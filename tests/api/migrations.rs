use chatter::db::migrate;
use chatter::tenancy::SchemaName;
use chatter::tenancy::provision::{self, NewTenant};

use crate::helpers::TestDb;

#[tokio::test]
async fn each_tenant_schema_keeps_its_own_history_and_failures_are_named() {
    let db = TestDb::create().await;
    let pool = db.handle(4);
    assert!(migrate::migrate_shared(&pool).await.unwrap() >= 1);
    assert_eq!(
        migrate::migrate_shared(&pool).await.unwrap(),
        0,
        "shared migrations run once"
    );
    for schema in ["t_one", "t_two", "t_three"] {
        provision::create_tenant(
            &pool,
            NewTenant {
                schema,
                name: schema,
                domain: None,
                is_public: false,
            },
        )
        .await
        .unwrap();
    }
    let client = pool.shared().await.unwrap();
    for schema in ["t_one", "t_two", "t_three"] {
        let versions: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM \"{schema}\".refinery_schema_history"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(versions >= 1, "{schema} has no history of its own");
    }
    // Corrupt one tenant's history: that tenant fails, by name; the others migrate.
    client
        .execute(
            "UPDATE t_two.refinery_schema_history SET checksum = '1'",
            &[],
        )
        .await
        .unwrap();
    let outcomes = provision::migrate_all(&pool, 2).await.unwrap();
    assert_eq!(outcomes.len(), 3);
    for outcome in outcomes {
        match outcome.schema.as_str() {
            "t_two" => assert!(outcome.result.is_err()),
            _ => assert_eq!(outcome.result.unwrap(), 0),
        }
    }
    let schema = SchemaName::parse("t_one").unwrap();
    assert_eq!(migrate::migrate_tenant(&pool, &schema).await.unwrap(), 0);
    assert!(migrate::latest_tenant_version() >= 1);
}

#[tokio::test]
async fn a_failing_migration_is_named_with_the_servers_message() {
    let db = TestDb::create().await;
    let pool = db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    provision::create_tenant(
        &pool,
        NewTenant {
            schema: "t_fail",
            name: "t_fail",
            domain: None,
            is_public: false,
        },
    )
    .await
    .unwrap();
    // Forget that V2 and later ran: running V2 again meets its own index.
    pool.shared()
        .await
        .unwrap()
        .execute(
            "DELETE FROM t_fail.refinery_schema_history WHERE version >= 2",
            &[],
        )
        .await
        .unwrap();
    let schema = SchemaName::parse("t_fail").unwrap();
    let err = migrate::migrate_tenant(&pool, &schema)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("V2__message_search"), "{err}");
    assert!(
        err.contains("relation \"messages_text_search\" already exists"),
        "{err}"
    );
    assert!(!err.contains("db error"), "{err}");
}
