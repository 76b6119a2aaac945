//! The billing meter's rows (issue 13, tenant V9): a month's count split
//! over a few rows, each counting within a share of the limit, so that
//! two transactions of one busy tenant do not queue on one row lock, and
//! the limit stays exact under any concurrency.

use chatter::billing::usage::{self, Meter};
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
async fn count_in(tx: &TenantsTx, meter: Meter, many: i32, row: i16) -> Option<i32> {
    let counted = usage::count(tx, &[(&alpha(), meter, many)], row)
        .await
        .unwrap();
    counted[0]
}

/// Counts `many` on `row` in a transaction of its own, committed.
async fn count_committed(db: &Db, meter: Meter, many: i32, row: i16) -> Option<i32> {
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

#[tokio::test]
async fn two_transactions_count_one_tenants_month_on_their_own_rows_without_waiting() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    let limited = meter(Some(1_000));
    // The first count of the month hands the shares out.
    assert_eq!(count_committed(&app.handle, limited, 1, 0).await, Some(1));

    // One transaction counts on row 0 and holds it until its COMMIT;
    // another counts on row 1 meanwhile. On one row it would wait for the
    // first one's COMMIT (here: fail at the lock timeout).
    let first = app.handle.tenants().await.unwrap();
    assert_eq!(count_in(&first, limited, 3, 0).await, Some(4));
    let second = impatient(&app.handle).await;
    let counted = usage::count(&second, &[(&alpha(), limited, 2)], 1)
        .await
        .expect("the second transaction did not wait for the first");
    // It sees what is committed, and its own.
    assert_eq!(counted, [Some(3)]);
    second.commit().await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(month_total(&app).await, 6);

    // The same with no limit (a plan without one).
    let unlimited = meter(None);
    let first = app.handle.tenants().await.unwrap();
    assert_eq!(count_in(&first, unlimited, 1, 2).await, Some(7));
    let second = impatient(&app.handle).await;
    assert!(
        usage::count(&second, &[(&alpha(), unlimited, 1)], 3)
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
) -> (TenantsTx, tokio::task::JoinHandle<Option<i32>>) {
    assert_eq!(count_committed(&app.handle, ten, 1, 0).await, Some(1));
    let first = app.handle.tenants().await.unwrap();
    assert_eq!(count_in(&first, ten, 5, 0).await, Some(6));
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
    assert_eq!(second.await.unwrap(), None);
    assert_eq!(month_total(&app).await, 6);
    // The 4 left fit on any row, one past them on none.
    for row in 1..4 {
        assert_eq!(
            count_committed(&app.handle, ten, 1, row).await,
            Some(6 + i32::from(row))
        );
    }
    assert_eq!(count_committed(&app.handle, ten, 1, 0).await, Some(10));
    for row in 0..4 {
        assert_eq!(count_committed(&app.handle, ten, 1, row).await, None);
    }
    assert_eq!(month_total(&app).await, 10);

    // Another month; the first rolls back: the 5 fit.
    let january = Meter {
        month: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        limit: Some(10),
    };
    let (first, second) = five_and_five_waiting(&app, january).await;
    drop(first);
    assert_eq!(second.await.unwrap(), Some(6));
}

/// Shares handed out against one limit do not hold for another: a plan
/// changed in the month is counted against its own limit at once.
#[tokio::test]
async fn a_changed_limit_is_counted_against_exactly() {
    let app = spawn_app().await;
    app.create_tenant("alpha", "alpha", None).await;
    for row in 0..4 {
        assert_eq!(
            count_committed(&app.handle, meter(Some(100)), 3, row).await,
            Some(3 * (i32::from(row) + 1))
        );
    }
    // Down to 10 with 12 counted: nothing more, on any row.
    for row in 0..4 {
        assert_eq!(
            count_committed(&app.handle, meter(Some(10)), 1, row).await,
            None
        );
    }
    // Up to 20: exactly 8 more.
    let mut counted = Vec::new();
    for i in 0..10 {
        counted.push(count_committed(&app.handle, meter(Some(20)), 1, i % 4).await);
    }
    let want: Vec<Option<i32>> = (13..=20).map(Some).chain([None, None]).collect();
    assert_eq!(counted, want);
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
