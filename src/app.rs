//! `Application`: everything `chatter serve` does, in a form tests can run.
//! `build` prepares the database, binds its own listener (port 0 in tests)
//! and returns; `run` serves until the shutdown future resolves, then lets
//! requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{ConfigError, Settings};
use crate::db::migrate::{self, MigrateError};
use crate::db::{Database, DbError};
use crate::engine::{Engine, loader};
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::tenancy::events::{self, Signal};
use crate::tenancy::{TenancyError, provision};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cannot create the public tenant: {0}")]
    Bootstrap(#[from] TenancyError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the server stopped with an error: {0}")]
    Serve(std::io::Error),
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    database: Database,
    listener_shutdown: tokio::sync::watch::Sender<bool>,
    change_listener: tokio::task::JoinHandle<()>,
}

/// Where the server's model comes from.
pub enum ModelChoice {
    /// Load it in the background as the settings say (local folder, hub
    /// cache or download); chat answers 503 until it is ready.
    FromSettings,
    /// An engine the caller controls (tests: a ready test double, or one
    /// left loading).
    Given(Arc<Engine>),
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, ModelChoice::FromSettings, Arc::default()).await
    }

    /// `metrics` is the registry `/metrics` shows; a `Given` engine's worker
    /// should record into the same one (tests pass both).
    pub async fn build_with(
        settings: Settings,
        model: ModelChoice,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StartupError> {
        settings.validate_for_serving()?;
        // From here on, an error drops `database`, which stops an embedded
        // cluster this process started.
        let database = Database::open(&settings.database).await?;
        prepare_database(&database, &settings).await?;

        let engine = match model {
            ModelChoice::Given(engine) => engine,
            ModelChoice::FromSettings => {
                let engine = Arc::new(Engine::loading());
                loader::spawn_loading(
                    Arc::clone(&engine),
                    settings.model.clone(),
                    Arc::clone(&metrics),
                    loader::progress(),
                );
                engine
            }
        };
        crate::auth::password::limit_concurrency(settings.auth.max_concurrent_hashes);
        crate::auth::password::prepare();
        let mailer = crate::mail::Mailer::from_settings(&settings.smtp)?;
        let state = AppState::new(database.db().clone(), settings, engine, metrics, mailer);
        let (listener_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let subscriber_state = state.clone();
        let change_listener = events::spawn_listener(
            database.target.clone(),
            Arc::new(move |signal: Signal| subscriber_state.apply(&signal)),
            shutdown_rx,
        );

        let addr = format!(
            "{}:{}",
            state.settings.server.host, state.settings.server.port
        );
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            state,
            database,
            listener_shutdown,
            change_listener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then stops accepting, waits for
    /// requests in flight (at most `shutdown_timeout_secs`), and stops the
    /// embedded database if it started one.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Self {
            listener,
            state,
            database,
            listener_shutdown,
            change_listener,
        } = self;
        let grace = Duration::from_secs(state.settings.server.shutdown_timeout_secs);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            let _ = stopping_tx.send(());
        };
        let limits = crate::serve::ConnectionLimits::from_settings(&state.settings.server);
        let app = crate::http::router(state);
        let server = crate::serve::serve(listener, app, limits, signal);
        let server = async move { server.await.map_err(StartupError::Serve) };
        tokio::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            _ = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "requests still in flight after the grace period; stopping anyway");
                Ok(())
            }
        };
        let _ = listener_shutdown.send(true);
        let _ = change_listener.await;
        database.close().await;
        result
    }
}

/// What every start does before serving: shared migrations, the public
/// tenant, then every tenant schema. A tenant whose migration fails is
/// logged by name and the others still serve.
pub async fn prepare_database(
    database: &Database,
    settings: &Settings,
) -> Result<(), StartupError> {
    let db = database.db();
    let applied = migrate::migrate_shared(db).await?;
    if applied > 0 {
        tracing::info!(applied, "applied shared migrations");
    }
    provision::bootstrap_public_tenant(db, &settings.tenancy).await?;
    let outcomes = provision::migrate_all(db, settings.database.migrate_parallelism).await?;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(0) => {}
            Ok(applied) => tracing::info!(schema = %outcome.schema, applied, "migrated tenant"),
            Err(e) => {
                tracing::error!(schema = %outcome.schema, error = %e, "tenant migration failed")
            }
        }
    }
    Ok(())
}
