//! The billing meter's rows (issue 13, tenant V9): a month's count split
//! over a few rows, each counting within a share of the limit, so that
//! two transactions of one busy tenant do not queue on one row lock, and
//! the limit stays exact under any concurrency.

use chatter::billing::usage::{self, Counted, Meter};
use chatter::chat::{Exchange, ExchangeWriter};
use chatter::db::{Db, SchemaName, TenantsTx};

use crate::helpers::{TestApp, spawn_app};

fn alpha() -> SchemaName {
    SchemaName::parse("alpha").unwrap()
}

fn meter(limit: Option<u32>) -> Meter {
    Meter {
        month: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        limit,
        warn_at: None,
    }
}

async fn month_total(app: &TestApp) -> i64 {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT coalesce(sum(conversations), 0)::bigint FROM alpha.usage WHERE month = '2026-12-01'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Counts `many` for alpha on `row` in `tx`.
async fn count_in(tx: &TenantsTx, meter: Meter, many: i32, row: i16) -> Counted {
    usage::count(tx, &alpha(), meter, many, row).await.unwrap()
}

/// Counts `many` on `row` in a transaction of its own, committed.
async fn count_committed(db: &Db, meter: Meter, many: i32, row: i16) -> Counted {
    let tx = db.tenants().await.unwrap();
    let counted = count_in(&tx, meter, many, row).await;
    tx.commit().await.unwrap();
    counted
}

/// A transaction that gives up on a row lock it cannot get within 5 s,
/// instead of waiting for ever: the proof that it did not queue.
async fn impatient(db: &Db) -> TenantsTx {
    let tx = db.tenants().await.unwrap();
    tx.query_typed_in(&alpha(), "SET LOCAL lock_timeout = '5s'", &[])
        .await
        .unwrap();
    tx
}

/// An app with the tenant alpha, one conversation counted this month
/// against a limit of 1,000: the first count hands the shares out.
async fn alpha_with_shares() -> (TestApp, Meter) {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    let limited = meter(Some(1_000));
    assert_eq!(
        count_committed(&app.handle, limited, 1, 0).await,
        Counted::Yes(Some(1))
    );
    (app, limited)
}

#[tokio::test]
async fn two_transactions_count_one_tenants_month_on_their_own_rows_without_waiting() {
    let (app, limited) = alpha_with_shares().await;

    // One transaction counts on row 0 and holds it until its COMMIT;
    // another counts on row 1 meanwhile. On one row it would wait for the
    // first one's COMMIT (here: fail at the lock timeout).
    let first = app.handle.tenants().await.unwrap();
    // Within the row's share: the month's count is not seen.
    assert_eq!(count_in(&first, limited, 3, 0).await, Counted::Yes(None));
    let second = impatient(&app.handle).await;
    let counted = usage::count(&second, &alpha(), limited, 2, 1)
        .await
        .expect("the second transaction did not wait for the first");
    assert_eq!(counted, Counted::Yes(None));
    second.commit().await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(month_total(&app).await, 6);

    // The same with no limit (a plan without one).
    let unlimited = meter(None);
    let first = app.handle.tenants().await.unwrap();
    assert_eq!(count_in(&first, unlimited, 1, 2).await, Counted::Yes(None));
    let second = impatient(&app.handle).await;
    assert!(
        usage::count(&second, &alpha(), unlimited, 1, 3)
            .await
            .is_ok()
    );
    second.commit().await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(month_total(&app).await, 8);
}

/// 5 counted on row 0 in a transaction left open, and 5 asked on row 1
/// meanwhile, against a limit of 10 with 1 counted: past row 1's share,
/// so the second count locks the whole month and waits for the first.
/// Returns the first transaction and the second count, still waiting.
async fn five_and_five_waiting(
    app: &TestApp,
    ten: Meter,
) -> (TenantsTx, tokio::task::JoinHandle<Counted>) {
    assert_eq!(
        count_committed(&app.handle, ten, 1, 0).await,
        Counted::Yes(Some(1))
    );
    let first = app.handle.tenants().await.unwrap();
    assert_eq!(count_in(&first, ten, 5, 0).await, Counted::Yes(Some(6)));
    let db = app.handle.clone();
    let second = tokio::spawn(async move { count_committed(&db, ten, 5, 1).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second count waits");
    (first, second)
}

/// A count beyond its row's share locks the whole month: it waits for
/// the transactions counting on other rows, and decides on what they
/// committed, not on what they might.
#[tokio::test]
async fn a_count_past_its_share_waits_for_the_month_and_decides_on_what_committed() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;

    // The first commits: 5 more do not fit.
    let ten = meter(Some(10));
    let (first, second) = five_and_five_waiting(&app, ten).await;
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Counted::Full);
    assert_eq!(month_total(&app).await, 6);
    // The 4 left fit, one on each row's share; one past them on none.
    for row in 0..4 {
        assert_eq!(
            count_committed(&app.handle, ten, 1, row).await,
            Counted::Yes(None)
        );
    }
    for row in 0..4 {
        assert_eq!(
            count_committed(&app.handle, ten, 1, row).await,
            Counted::Full
        );
    }
    assert_eq!(month_total(&app).await, 10);

    // Another month; the first rolls back: the 5 fit.
    let january = Meter {
        month: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        limit: Some(10),
        warn_at: None,
    };
    let (first, second) = five_and_five_waiting(&app, january).await;
    drop(first);
    assert_eq!(second.await.unwrap(), Counted::Yes(Some(6)));
}

/// Shares handed out against one limit do not hold for another: a plan
/// changed in the month is counted against its own limit at once.
#[tokio::test]
async fn a_changed_limit_is_counted_against_exactly() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    // The month's first count hands the shares out and sees the count;
    // the others count within their rows' shares.
    let mut counted = Vec::new();
    for row in 0..4 {
        counted.push(count_committed(&app.handle, meter(Some(100)), 3, row).await);
    }
    assert_eq!(
        counted,
        [
            Counted::Yes(Some(3)),
            Counted::Yes(None),
            Counted::Yes(None),
            Counted::Yes(None)
        ]
    );
    // Down to 10 with 12 counted: nothing more, on any row.
    for row in 0..4 {
        assert_eq!(
            count_committed(&app.handle, meter(Some(10)), 1, row).await,
            Counted::Full
        );
    }
    // Up to 20: exactly 8 more.
    let mut counted = Vec::new();
    for i in 0..10 {
        let row = i16::try_from(i % 4).unwrap();
        counted.push(count_committed(&app.handle, meter(Some(20)), 1, row).await);
    }
    let (yes, full) = (Counted::Yes, Counted::Full);
    assert_eq!(
        counted,
        [
            yes(Some(13)),
            yes(None),
            yes(None),
            yes(None),
            yes(None),
            yes(Some(18)),
            yes(Some(19)),
            yes(Some(20)),
            full,
            full
        ]
    );
    assert_eq!(month_total(&app).await, 20);
}

/// Four servers' writers (each with two rows, the same numbers) and their
/// exchanges stored alone, all at once against one limit: exactly the
/// limit is stored and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_at_once_store_exactly_the_limit() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    let writers: Vec<ExchangeWriter> = (0..4)
        .map(|_| ExchangeWriter::new(app.handle.clone(), 8))
        .collect();
    let limited = meter(Some(57));
    let stores = (0..240).map(|i| {
        let writer = &writers[i % writers.len()];
        let exchange = Exchange {
            schema: alpha(),
            session_id: None,
            origin: None,
            message: format!("question {i}"),
            embedding: None,
            embedding_model: None,
            reply: "the answer".into(),
            faq_id: None,
            score: 0.5,
            meter: Some(limited),
        };
        writer.store(exchange)
    });
    let stored = futures_util::future::join_all(stores).await;
    let kept = stored.iter().filter(|s| matches!(s, Ok(Some(_)))).count();
    let full = stored.iter().filter(|s| matches!(s, Ok(None))).count();
    assert_eq!((kept, full), (57, 240 - 57), "{stored:?}");
    assert_eq!(month_total(&app).await, 57);
    let client = app.pool.get().await.unwrap();
    let conversations: i64 = client
        .query_one("SELECT count(*) FROM alpha.conversations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(conversations, 57);
}

/// The count that reaches the owners' warning always locks the month, so
/// it is seen exactly (the 80% notice), whichever row it lands on.
#[tokio::test]
async fn the_count_that_reaches_the_warning_is_seen_exactly() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    let warned = Meter {
        warn_at: Some(8),
        ..meter(Some(10))
    };
    let mut seen = Vec::new();
    for i in 0..10 {
        let row = i16::try_from(i % 4).unwrap();
        match count_committed(&app.handle, warned, 1, row).await {
            Counted::Yes(Some(count)) => seen.push(count),
            Counted::Yes(None) => {}
            Counted::Full => panic!("count {} refused", i + 1),
        }
    }
    assert!(seen.contains(&8), "{seen:?}");
    assert!(seen.iter().all(|&c| (1..=10).contains(&c)), "{seen:?}");
    assert_eq!(
        count_committed(&app.handle, warned, 1, 0).await,
        Counted::Full
    );
    assert_eq!(month_total(&app).await, 10);
}

/// How many statements naming `what` this transaction's connection holds
/// prepared, and how often they ran.
async fn prepared(tx: &TenantsTx, what: &str) -> (i64, i64) {
    let pattern = format!("%{what}%");
    let row = tx
        .query_typed_in(
            &alpha(),
            "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0)::bigint \
             FROM pg_catalog.pg_prepared_statements WHERE statement LIKE $1",
            &[(&pattern, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .unwrap();
    (row[0].get(0), row[0].get(1))
}

/// The count runs on every group of a billed tenant: PostgreSQL parses and
/// plans it once per connection, not on every group.
#[tokio::test]
async fn the_count_is_prepared_once_per_connection_and_tenant() {
    let (app, limited) = alpha_with_shares().await;
    let tx = app.handle.tenants().await.unwrap();
    let before = prepared(&tx, "alpha\".usage").await;
    for _ in 0..3 {
        let counted = usage::count_within_shares(&tx, &[(&alpha(), limited, 1)], 0)
            .await
            .unwrap();
        assert_eq!(counted, [true]);
    }
    let after = prepared(&tx, "alpha\".usage").await;
    // One statement for the limited count, whether or not an earlier
    // transaction on this connection prepared it, run three more times.
    assert_eq!(after.0, 1, "{before:?} {after:?}");
    assert_eq!(after.1 - before.1, 3, "{before:?} {after:?}");
    tx.commit().await.unwrap();
    assert_eq!(month_total(&app).await, 4);
}

/// Prepared statements are kept per connection up to a bound, then all
/// dropped: a backend's memory does not grow with the tenants it served.
#[tokio::test]
async fn a_connection_keeps_a_bounded_number_of_prepared_statements() {
    let app = spawn_app().await;
    let tx = app.handle.tenants().await.unwrap();
    let bound = chatter::db::door::PREPARED_PER_CONNECTION;
    // A statement per (made-up) tenant; none of them needs its schema.
    for i in 0..bound + 10 {
        let schema = SchemaName::parse(&format!("tenant_{i}")).unwrap();
        let statement = tx
            .prepared_in(
                &schema,
                "SELECT $1::int AS {tenant}",
                &[tokio_postgres::types::Type::INT4],
            )
            .await
            .unwrap();
        let rows = tx.query_statement(&statement, &[&7_i32]).await.unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 7);
    }
    // Dropping a statement closes it on the connection; the next statement
    // makes sure those closes went through.
    let held: i64 = tx
        .query_typed_in(
            &alpha(),
            "SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE statement LIKE 'SELECT $1::int AS %'",
            &[],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(
        (1..=i64::try_from(bound).unwrap()).contains(&held),
        "{held} prepared, bound {bound}"
    );
}
