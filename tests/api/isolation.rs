//! Tenant data never crosses schemas, whatever the pool does.

use std::sync::Arc;

use chatter::db::Db;
use chatter::db::migrate;
use chatter::tenancy::SchemaName;
use chatter::tenancy::provision::{self, NewTenant};
use futures_util::StreamExt;
use tokio_postgres::error::SqlState;

use crate::helpers::TestDb;

async fn two_tenants(db: &TestDb) -> Db {
    let pool = db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    for (schema, name) in [("alpha", "Alpha"), ("beta", "Beta")] {
        provision::create_tenant(
            &pool,
            NewTenant {
                schema,
                name,
                domain: None,
                is_public: false,
            },
        )
        .await
        .unwrap();
        let schema = SchemaName::parse(schema).unwrap();
        let tx = pool.tenant(&schema).await.unwrap();
        for i in 0..3 {
            tx.execute(
                "INSERT INTO faqs (question, answer) VALUES ($1, $2)",
                &[
                    &format!("{name} question {i}"),
                    &format!("{name} answer {i}"),
                ],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    pool
}

/// 2,000 interleaved requests for two tenants over a pool of 2 connections.
#[tokio::test]
async fn concurrent_requests_over_a_tiny_pool_see_only_their_tenant() {
    let db = TestDb::create().await;
    let pool = Arc::new(two_tenants(&db).await);
    let alpha = SchemaName::parse("alpha").unwrap();
    let beta = SchemaName::parse("beta").unwrap();
    let requests = (0..2000).map(|i| {
        let pool = Arc::clone(&pool);
        let (schema, prefix) = if i % 2 == 0 {
            (alpha.clone(), "Alpha")
        } else {
            (beta.clone(), "Beta")
        };
        async move {
            let tx = pool.tenant(&schema).await.unwrap();
            // Every third request fails mid-way and rolls back: that must not leak either.
            if i % 3 == 0 {
                let _ = tx.execute("SELECT * FROM no_such_table", &[]).await;
                tx.rollback().await.unwrap();
                return (prefix, vec![]);
            }
            let rows = tx
                .query("SELECT question FROM faqs ORDER BY id", &[])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            (
                prefix,
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>(),
            )
        }
    });
    let results: Vec<_> = futures_util::stream::iter(requests)
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(results.len(), 2000);
    for (prefix, questions) in results {
        assert!(
            questions.iter().all(|q| q.starts_with(prefix)),
            "{prefix}: {questions:?}"
        );
    }
    let client = pool.shared().await.unwrap();
    let path: String = client
        .query_one("SHOW search_path", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        path, "\"$user\", public",
        "a pooled connection kept a tenant's search_path"
    );
}

#[tokio::test]
async fn a_savepoint_rollback_keeps_the_tenant_schema() {
    let db = TestDb::create().await;
    let pool = two_tenants(&db).await;
    let alpha = SchemaName::parse("alpha").unwrap();
    let mut tx = pool.tenant(&alpha).await.unwrap();
    {
        let sp = tx.savepoint("nested").await.unwrap();
        // The door has no way to set the path; SQL still can, and a
        // savepoint's rollback must undo it.
        sp.execute("SELECT set_config('search_path', 'beta', true)", &[])
            .await
            .unwrap();
        let _ = sp.execute("SELECT * FROM no_such_table", &[]).await;
        sp.rollback().await.unwrap();
    }
    let question: String = tx
        .query_one("SELECT question FROM faqs ORDER BY id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(question.starts_with("Alpha"), "{question}");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_table_missing_from_the_tenant_schema_is_an_error_not_public() {
    let db = TestDb::create().await;
    let pool = two_tenants(&db).await;
    let client = db.pool(1).get().await.unwrap();
    client
        .batch_execute("CREATE TABLE public.only_shared (secret text); INSERT INTO public.only_shared VALUES ('x')")
        .await
        .unwrap();
    drop(client);
    let tx = pool
        .tenant(&SchemaName::parse("alpha").unwrap())
        .await
        .unwrap();
    let err = tx
        .query("SELECT secret FROM only_shared", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
}

#[tokio::test]
async fn bad_schema_names_are_refused_before_any_ddl() {
    let db = TestDb::create().await;
    let pool = db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    let count_schemas = || async {
        let client = pool.shared().await.unwrap();
        client
            .query_one("SELECT count(*) FROM pg_namespace", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = count_schemas().await;
    let too_long = format!("a{}", "b".repeat(63));
    for bad in [
        "Acme",
        "acme\"; DROP SCHEMA public CASCADE; --",
        "acme;",
        "public",
        "pg_evil",
        "information_schema",
        too_long.as_str(),
        "ab",
    ] {
        let err = provision::create_tenant(
            &pool,
            NewTenant {
                schema: bad,
                name: "X",
                domain: None,
                is_public: false,
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("schema name"), "{bad}: {err}");
    }
    assert_eq!(count_schemas().await, before);
    assert!(provision::list_tenants(&pool).await.unwrap().is_empty());
}

#[tokio::test]
async fn tenant_create_is_all_or_nothing() {
    let db = TestDb::create().await;
    let pool = db.handle(2);
    migrate::migrate_shared(&pool).await.unwrap();
    provision::create_tenant(
        &pool,
        NewTenant {
            schema: "first",
            name: "First",
            domain: Some("shared.test"),
            is_public: false,
        },
    )
    .await
    .unwrap();
    // The domain is taken: neither the tenant row nor its schema may remain.
    let err = provision::create_tenant(
        &pool,
        NewTenant {
            schema: "second",
            name: "Second",
            domain: Some("shared.test"),
            is_public: false,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("shared.test"), "{err}");
    let client = pool.shared().await.unwrap();
    let schema_exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = 'second'", &[])
        .await
        .unwrap()
        .is_some();
    assert!(!schema_exists);
    let tenants = provision::list_tenants(&pool).await.unwrap();
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.schema.as_str())
            .collect::<Vec<_>>(),
        vec!["first"]
    );
    // A second create of the same tenant is a conflict, not a crash.
    let err = provision::create_tenant(
        &pool,
        NewTenant {
            schema: "first",
            name: "First",
            domain: None,
            is_public: false,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

/// A tenant transaction dropped mid-way (a cancelled request) is rolled
/// back before its connection serves anyone else: nothing it wrote stays,
/// and the next user finds the default search_path.
#[tokio::test]
async fn a_tenant_transaction_dropped_unfinished_leaves_nothing_behind() {
    let db = TestDb::create().await;
    let handle = two_tenants(&db).await;
    let one = {
        let mut settings = chatter::config::Settings::default().database;
        settings.pool_size = 1;
        Db::connect(
            chatter::db::tls::PgTarget::from_url(&db.url).unwrap(),
            &settings,
        )
        .unwrap()
    };
    drop(handle);
    let alpha = SchemaName::parse("alpha").unwrap();
    let tx = one.tenant(&alpha).await.unwrap();
    tx.execute(
        "INSERT INTO faqs (question, answer) VALUES ('left behind?', 'no')",
        &[],
    )
    .await
    .unwrap();
    drop(tx);
    // The pool's one connection: the same session the dropped transaction used.
    let client = one.shared().await.unwrap();
    let path: String = client
        .query_one("SHOW search_path", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(path, "\"$user\", public");
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM alpha.faqs WHERE question = 'left behind?'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
