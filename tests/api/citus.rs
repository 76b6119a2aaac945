//! `chatter doctor` and the Citus helpers: on plain PostgreSQL they see no
//! Citus and change nothing; against a Citus coordinator
//! (`scripts/test-citus`) every tenant is distributed as it is created.

use chatter::citus;
use chatter::db::migrate;
use chatter::tenancy::provision::{self, NewTenant};

use crate::helpers::{TestDb, spawn_app};

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
                citus::move_tenant(&db, "placed", "127.0.0.1:9701", citus::MoveMode::Auto).await,
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

/// A tenant moved to the other worker while visitors chat with it: every
/// chat is answered and every exchange stored, and the tenant then lives
/// on the new node. The move is online when the node it leaves has
/// `wal_level = logical` (scripts/test-citus sets it up so), else its
/// writes wait for the copy; either way no chat is lost.
#[tokio::test]
async fn chats_go_on_and_are_all_stored_while_the_tenant_moves() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let app = Arc::new(spawn_app().await);
    app.create_tenant("mover", "Mover", None).await;
    app.import_faqs("mover", &[("When do you open?", "At nine.")])
        .await;
    let Some(placements) = citus::placements(&app.handle).await.unwrap() else {
        // One server: nothing to move to, said plainly.
        assert!(matches!(
            citus::move_tenant(&app.handle, "mover", "127.0.0.1:1", citus::MoveMode::Auto).await,
            Err(citus::CitusError::NotCitus)
        ));
        return;
    };
    let from = placements.get("mover").expect("placed").clone();
    let nodes: Vec<String> = app
        .handle
        .shared()
        .await
        .unwrap()
        .query(
            "SELECT node_name || ':' || node_port FROM citus_get_active_worker_nodes()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let to = nodes
        .iter()
        .find(|n| **n != from)
        .expect("another worker")
        .clone();

    let moving = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let started_during_move = Arc::new(AtomicUsize::new(0));
    let mut visitors = Vec::new();
    for v in 0..4 {
        let (app, moving, stop, answered, during) = (
            Arc::clone(&app),
            Arc::clone(&moving),
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&started_during_move),
        );
        visitors.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if moving.load(Ordering::SeqCst) {
                    during.fetch_add(1, Ordering::SeqCst);
                }
                let (status, body) = app
                    .chat(
                        "mover",
                        serde_json::json!({"session_id": format!("visitor-{v}-{i}"), "message": "when do you open"}),
                    )
                    .await;
                match status {
                    200 => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => failures.push((status, body)),
                }
                i += 1;
            }
            failures
        }));
    }
    // Some chats before, during and after the move.
    while answered.load(Ordering::SeqCst) < 8 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    moving.store(true, Ordering::SeqCst);
    let moved = citus::move_tenant(&app.handle, "mover", &to, citus::MoveMode::Auto)
        .await
        .unwrap();
    moving.store(false, Ordering::SeqCst);
    let after_move = answered.load(Ordering::SeqCst);
    while answered.load(Ordering::SeqCst) < after_move + 8 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for visitor in visitors {
        let failures = visitor.await.unwrap();
        assert!(
            failures.is_empty(),
            "chats failed during the move: {failures:?}"
        );
    }

    assert_eq!(
        (moved.from.as_str(), moved.to.as_str()),
        (from.as_str(), to.as_str())
    );
    let level: String = app
        .handle
        .shared()
        .await
        .unwrap()
        .query_one(
            "SELECT result FROM run_command_on_workers('SHOW wal_level') \
             WHERE nodename || ':' || nodeport = $1",
            &[&from],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved.online, level == "logical", "{moved:?}");
    assert_eq!(moved.note.is_some(), !moved.online, "{moved:?}");
    assert!(started_during_move.load(Ordering::SeqCst) > 0);
    let placements = citus::placements(&app.handle).await.unwrap().unwrap();
    assert_eq!(placements.get("mover"), Some(&to));

    // Every answered chat is stored, once.
    let schema = chatter::tenancy::SchemaName::parse("mover").unwrap();
    let tx = app.handle.tenant(&schema).await.unwrap();
    let stored: i64 = tx
        .query_one("SELECT count(*) FROM messages WHERE role = 'visitor'", &[])
        .await
        .unwrap()
        .get(0);
    let answers: i64 = tx
        .query_one("SELECT count(*) FROM messages WHERE role = 'bot'", &[])
        .await
        .unwrap()
        .get(0);
    let answered = i64::try_from(answered.load(Ordering::SeqCst)).unwrap();
    assert_eq!((stored, answers), (answered, answered));

    // Moving it to where it is, or to a node that is not a worker, is refused by name.
    assert!(matches!(
        citus::move_tenant(&app.handle, "mover", &to, citus::MoveMode::Auto).await,
        Err(citus::CitusError::AlreadyThere { .. })
    ));
    assert!(matches!(
        citus::move_tenant(&app.handle, "mover", "127.0.0.1:1", citus::MoveMode::Auto).await,
        Err(citus::CitusError::UnknownNode(_))
    ));
}

/// Every tenant table has a primary key (or a replica identity): logical
/// replication, and so an online `tenant move`, needs one on each. Checked
/// on a freshly migrated tenant, so a new migration cannot forget it.
#[tokio::test]
async fn every_tenant_table_has_a_replica_identity() {
    let test_db = TestDb::create().await;
    let db = test_db.handle(2);
    migrate::migrate_shared(&db).await.unwrap();
    tenant(&db, "ident").await;
    let missing = citus::tables_without_replica_identity(&db, "ident")
        .await
        .unwrap();
    assert!(
        missing.is_empty(),
        "tables without a primary key: {missing:?}"
    );
    // The check sees a table without one.
    db.shared()
        .await
        .unwrap()
        .execute("CREATE TABLE ident.loose (x int)", &[])
        .await
        .unwrap();
    let missing = citus::tables_without_replica_identity(&db, "ident")
        .await
        .unwrap();
    assert_eq!(missing, vec!["loose".to_string()]);
}

/// A tenant operation that fails names the statement that failed and
/// gives the server's own message, not "db error" (here a lock timeout:
/// another session holds the table the step needs).
#[tokio::test]
async fn a_failing_tenant_operation_names_its_statement_and_the_servers_message() {
    let test_db = TestDb::create().await;
    let mut settings = chatter::config::Settings::default().database;
    settings.pool_size = 2;
    settings.lock_timeout_ms = 200;
    let db = chatter::db::Db::connect(
        chatter::db::tls::PgTarget::from_url(&test_db.url).unwrap(),
        &settings,
    )
    .unwrap();
    migrate::migrate_shared(&db).await.unwrap();
    tenant(&db, "held").await;

    let (other, connection) = tokio_postgres::connect(&test_db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    other
        .batch_execute("BEGIN; LOCK TABLE public.tenants IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let error = provision::create_tenant(
        &db,
        NewTenant {
            schema: "blocked",
            name: "Blocked",
            domain: None,
            is_public: false,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("creating tenant blocked: INSERT INTO public.tenants failed")
            && error.contains("lock timeout"),
        "{error}"
    );
    other.batch_execute("ROLLBACK").await.unwrap();

    other
        .batch_execute("BEGIN; LOCK TABLE held.faqs IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let error = provision::delete_tenant(&db, "held")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("deleting tenant held: DROP SCHEMA \"held\" CASCADE failed")
            && error.contains("lock timeout"),
        "{error}"
    );
    other.batch_execute("ROLLBACK").await.unwrap();
    provision::delete_tenant(&db, "held").await.unwrap();
}
