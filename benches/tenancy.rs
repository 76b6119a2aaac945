//! Tenancy figures: `tenant create` latency and `migrate --tenants` over
//! many up-to-date tenants. Needs the local PostgreSQL
//! (CHATTER_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
//!
//! `cargo bench --bench tenancy` creates a scratch database, times 100
//! sequential creates (median, p90), fills it to BENCH_TENANTS tenants
//! (default 1,000; 4 at a time), times migrating them all, and drops the
//! database unless BENCH_KEEP_DB=1 (bench/http.sh keeps it to load the
//! server with that many tenants).

use std::time::{Duration, Instant};

use chatter::config::DatabaseSettings;
use chatter::db::Db;
use chatter::db::migrate;
use chatter::db::tls::PgTarget;
use chatter::tenancy::TenancyError;
use chatter::tenancy::provision::{self, NewTenant};
use futures_util::StreamExt;
use tokio_postgres::NoTls;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Tenant number `i`, named as bench/random_tenant.lua expects.
async fn create(pool: &Db, i: usize) -> Result<(), TenancyError> {
    let schema = format!("tenant_{i}");
    let new = NewTenant {
        schema: &schema,
        name: &schema,
        domain: None,
        is_public: false,
    };
    provision::create_tenant(pool, new).await.map(|_| ())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let admin = std::env::var("CHATTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let total: usize = std::env::var("BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let keep = std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1");
    let name = format!("chatter_bench_{}", std::process::id());
    let (client, conn) = tokio_postgres::connect(&admin, NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (prefix, _) = admin
        .rsplit_once('/')
        .ok_or("database URL without a path")?;
    let url = format!("{prefix}/{name}");
    let settings = DatabaseSettings {
        pool_size: 8,
        ..DatabaseSettings::default()
    };
    let pool = Db::connect(PgTarget::from_url(&url)?, &settings)?;
    migrate::migrate_shared(&pool).await?;

    let mut times = Vec::new();
    for i in 0..100 {
        let started = Instant::now();
        create(&pool, i).await?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "tenant create (100 sequential): median {:.1} ms, p90 {:.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3
    );

    let started = Instant::now();
    let created: Vec<_> = futures_util::stream::iter(100..total)
        .map(|i| {
            let pool = pool.clone();
            async move { create(&pool, i).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for result in created {
        result?;
    }
    println!(
        "filled to {total} tenants in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let outcomes = provision::migrate_all(&pool, settings.migrate_parallelism).await?;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    println!(
        "migrate --tenants over {} up-to-date tenants: {:.2} s ({failed} failed)",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );

    drop(pool);
    if keep {
        println!("kept database: {url}");
    } else {
        client
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await?;
    }
    Ok(())
}
