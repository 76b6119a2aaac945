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

/// Every CLI command migrates the shared schema first, so parallel
/// commands wait for each other's migration lock: a wait longer than
/// `lock_timeout` is no failure (found by bench/citus.sh creating tenants
/// 8 processes at a time on Citus).
#[tokio::test]
async fn a_shared_migration_waits_for_another_past_the_lock_timeout() {
    let test_db = crate::helpers::TestDb::create().await;
    let mut settings = chatter::config::Settings::default().database;
    settings.lock_timeout_ms = 100;
    let db = chatter::db::Db::connect(
        chatter::db::tls::PgTarget::from_url(&test_db.url).unwrap(),
        &settings,
    )
    .unwrap();
    let (other, connection) = tokio_postgres::connect(&test_db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The shared migration lock (chatter::db::SHARED_MIGRATION_LOCK).
    other
        .execute("SELECT pg_advisory_lock($1)", &[&0x6368_6174_7465_7201_i64])
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        other
            .execute(
                "SELECT pg_advisory_unlock($1)",
                &[&0x6368_6174_7465_7201_i64],
            )
            .await
            .unwrap();
        other
    });
    chatter::db::migrate::migrate_shared(&db).await.unwrap();
    drop(release.await.unwrap());
}
