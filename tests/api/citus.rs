//! `chatter doctor` and the Citus helpers: on plain PostgreSQL they see no
//! Citus and change nothing; against a Citus coordinator
//! (`scripts/test-citus`) every tenant is distributed as it is created.

use chatter::citus;
use chatter::db::migrate;
use chatter::tenancy::provision::{self, NewTenant};

use crate::helpers::TestDb;

async fn tenant(db: &chatter::db::Db, schema: &str) {
    provision::create_tenant(
        db,
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

#[tokio::test]
async fn doctor_names_a_tenant_behind_on_migrations() {
    let test_db = TestDb::create().await;
    let db = test_db.handle(2);
    migrate::migrate_shared(&db).await.unwrap();
    tenant(&db, "doc_ok").await;
    tenant(&db, "doc_behind").await;
    let client = db.shared().await.unwrap();
    client
        .execute(
            "DELETE FROM doc_behind.refinery_schema_history WHERE version = $1",
            &[&migrate::latest_tenant_version()],
        )
        .await
        .unwrap();
    // The one before the latest: migration numbers are assigned ahead, so
    // they may skip (V6 exists before V5 is merged).
    let behind: i32 = client
        .query_one(
            "SELECT max(version) FROM doc_behind.refinery_schema_history",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let (checkups, general) = citus::doctor(&db).await.unwrap();
    assert!(general.is_empty(), "{general:?}");
    let on_citus = chatter::db::citus::is_citus(&db).await.unwrap();
    for checkup in &checkups {
        assert_eq!(checkup.distributed, on_citus.then_some(true), "{checkup:?}");
        match checkup.schema.as_str() {
            "doc_ok" => assert!(checkup.problems.is_empty(), "{checkup:?}"),
            "doc_behind" => {
                assert_eq!(checkup.version, Some(behind));
                assert!(
                    checkup.problems[0].contains(&format!("at migration {behind}")),
                    "{checkup:?}"
                );
            }
            other => panic!("unexpected tenant {other}"),
        }
    }
    assert_eq!(checkups.len(), 2);
    assert!(matches!(
        citus::run_doctor(&db).await,
        Err(citus::CitusError::Unhealthy(1))
    ));
}

#[tokio::test]
async fn placements_are_shown_only_on_citus() {
    let test_db = TestDb::create().await;
    let db = test_db.handle(2);
    migrate::migrate_shared(&db).await.unwrap();
    tenant(&db, "placed").await;
    match citus::placements(&db).await.unwrap() {
        None => {
            assert!(!chatter::db::citus::is_citus(&db).await.unwrap());
            // Nothing to distribute or move off Citus: said plainly.
            assert!(matches!(
                citus::distribute_existing(&db).await,
                Err(citus::CitusError::NotCitus)
            ));
            assert!(matches!(
                citus::move_tenant(&db, "placed", "127.0.0.1:9701").await,
                Err(citus::CitusError::NotCitus)
            ));
        }
        Some(placements) => {
            let node = placements.get("placed").expect("the tenant is placed");
            assert!(node.contains(':'), "{node}");
            assert!(citus::distribute_existing(&db).await.unwrap().is_empty());
            // Public tables are reference tables.
            let (_, general) = citus::doctor(&db).await.unwrap();
            assert!(general.is_empty(), "{general:?}");
        }
    }
}
