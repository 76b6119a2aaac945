//! The connection pool. Every wait is bounded: an exhausted pool answers
//! "busy" (503) after `wait_timeout_ms` instead of queueing forever.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Timeouts,
};

use crate::config::DatabaseSettings;
use crate::db::Db;
use crate::db::embedded::{EmbeddedError, EmbeddedPostgres};
use crate::db::tls::{Connector, PgTarget};
use crate::error_kind::{Class, Classify, Kind};
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("the database is busy: no connection became free in time")]
    Busy,
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("database error: {}", describe_postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A step of a tenant or Citus operation failed: which statement, and
    /// the server's own words (on Citus often a worker's).
    #[error("{what} failed: {}", describe_postgres(.source))]
    Statement {
        what: String,
        source: tokio_postgres::Error,
    },
    /// The COMMIT of a group of writes (`chat::writer`) failed in a way
    /// that leaves its outcome unknown (the connection broke): the caller
    /// may not assume either way, and nothing is written again for it.
    #[error("the database did not confirm the commit: {0}")]
    CommitUnknown(String),
    /// A statement that always returns a row returned none.
    #[error("the database returned no row for: {0}")]
    NoRow(&'static str),
}

/// `.during("statement")` on a PostgreSQL result: the error names what was
/// being done, for the operations an operator runs by hand (tenant create,
/// delete, move; distributing; reference tables) where "database error"
/// alone does not say which of a dozen statements failed.
pub trait During<T> {
    fn during(self, what: impl std::fmt::Display) -> Result<T, DbError>;
}

impl<T> During<T> for Result<T, tokio_postgres::Error> {
    fn during(self, what: impl std::fmt::Display) -> Result<T, DbError> {
        self.map_err(|source| DbError::Statement {
            what: what.to_string(),
            source,
        })
    }
}

/// A PostgreSQL error as the server worded it (tokio-postgres's own Display
/// says only "db error"): severity, message, and detail, hint and context
/// when there are some.
pub fn describe_postgres(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut text = format!("{}: {}", db.severity(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" (DETAIL: {detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!(" (HINT: {hint})"));
    }
    if let Some(context) = db.where_() {
        text.push_str(&format!(" (CONTEXT: {})", context.replace('\n', "; ")));
    }
    text
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Timeout(_) => DbError::Busy,
            PoolError::Backend(e) => DbError::Postgres(e),
            other => DbError::Unreachable(other.to_string()),
        }
    }
}

impl DbError {
    /// The SQLSTATE of a PostgreSQL error, if this is one.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            DbError::Postgres(e) | DbError::Statement { source: e, .. } => e.code(),
            _ => None,
        }
    }
}

/// The database went away or gave up on this one request, and the same
/// request may well work in a moment: 503 with `Retry-After`, so the widget
/// retries (issue 16). A terminated or crashed backend (57P01-57P03), a
/// connection failure (class 08) or a closed connection, too many
/// connections, a lock or statement timeout, a deadlock or serialization
/// failure.
fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    e.code().is_some_and(|state| {
        let code = state.code();
        code.starts_with("08")
            || matches!(
                code,
                "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "53300" | "40001" | "40P01"
            )
    })
}

impl Classify for DbError {
    fn kind(&self) -> Kind {
        match self {
            DbError::Busy | DbError::Unreachable(_) | DbError::CommitUnknown(_) => {
                Kind::new(Class::Unavailable, "unavailable")
            }
            DbError::BadUrl(_) | DbError::Embedded(_) | DbError::NoRow(_) => Kind::internal(),
            // PostgreSQL refuses text with a NUL character (JSON's `\u0000`),
            // however it reached a query: the client's input, not our fault.
            DbError::Postgres(e) | DbError::Statement { source: e, .. } if is_transient(e) => {
                Kind::new(Class::Unavailable, "unavailable")
            }
            DbError::Postgres(e) | DbError::Statement { source: e, .. } => match e.code() {
                Some(
                    &SqlState::CHARACTER_NOT_IN_REPERTOIRE | &SqlState::UNTRANSLATABLE_CHARACTER,
                ) => Kind::bad_input().saying("text may not contain NUL (\\u0000) characters"),
                _ => Kind::internal(),
            },
        }
    }
}

/// The pool (behind `Db`, the door), the settings it was made from (for
/// connections outside the pool, such as LISTEN), and the embedded cluster
/// when there is one; the cluster stops when the last `Database` handle
/// holding it is dropped.
pub struct Database {
    db: Db,
    pub target: PgTarget,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to `url`, or starts (or joins) the embedded cluster.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let (target, embedded) = match &settings.url {
            Some(url) => (PgTarget::from_url(url.expose())?, None),
            None => {
                let data_dir = settings.data_dir.clone();
                let cluster =
                    tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&data_dir))
                        .await
                        .map_err(|e| DbError::Unreachable(e.to_string()))??;
                let config = cluster.connection_config();
                cluster.ensure_database().await?;
                (PgTarget::plain(config)?, Some(cluster))
            }
        };
        let db = Db::connect(target.clone(), settings)?;
        Ok(Self {
            db,
            target,
            embedded,
        })
    }

    /// The door to the data: what everything else is given.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stops the embedded cluster now if this process started it.
    pub async fn close(mut self) {
        self.db.close();
        if let Some(cluster) = self.embedded.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
    }
}

impl Db {
    /// A pool of its own on `target`.
    pub fn connect(target: PgTarget, settings: &DatabaseSettings) -> Result<Self, DbError> {
        build_pool(target, settings).map(Db::from_pool)
    }
}

/// Every pooled session gets `statement_timeout` and `lock_timeout` (as
/// startup options, so no `SET` runs and recycling keeps nothing else): a
/// locked table of one tenant then costs its requests a short wait and a
/// 503, instead of holding every pooled connection while other tenants'
/// requests time out (issue 16). 0 leaves PostgreSQL's default (none).
fn with_timeouts(config: &mut tokio_postgres::Config, settings: &DatabaseSettings) {
    let mut options = config.get_options().unwrap_or_default().to_string();
    for (name, ms) in [
        ("statement_timeout", settings.statement_timeout_ms),
        ("lock_timeout", settings.lock_timeout_ms),
    ] {
        if ms > 0 {
            options.push_str(&format!(" -c {name}={ms}"));
        }
    }
    let options = options.trim();
    if !options.is_empty() {
        config.options(options);
    }
}

fn build_pool(target: PgTarget, settings: &DatabaseSettings) -> Result<Pool, DbError> {
    // The pool's sessions start with the timeouts (startup options), with
    // or without TLS (the connector falls back to plain for `prefer`).
    let mut target = target;
    with_timeouts(&mut target.config, settings);
    let manager = Manager::from_connect(
        target.config.clone(),
        Connector(target),
        // Fast: nothing we do leaves session state behind (tenant SQL only
        // uses SET LOCAL), so no per-checkout DISCARD is needed.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(Duration::from_millis(settings.wait_timeout_ms)),
            create: Some(Duration::from_millis(settings.create_timeout_ms)),
            recycle: Some(Duration::from_millis(settings.recycle_timeout_ms)),
        })
        .build()
        .map_err(|e| DbError::Unreachable(e.to_string()))
}
