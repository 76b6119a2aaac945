//! The embedded default: `chatter serve` without DATABASE_URL runs its own
//! PostgreSQL cluster and stops it again on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Processes whose command line names `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// A failed assertion must not leave the server (and its cluster) running.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn serve_without_database_url_runs_and_stops_its_own_postgres() {
    let data = tempfile::Builder::new()
        .prefix("chatter-emb")
        .tempdir_in("/tmp")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatter"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("CHATTER_DATA_DIR", data.path())
        .env("DEBUG", "True")
        .env("PORT", "0")
        .env("CHATTER_HOST", "127.0.0.1")
        .env("CHATTER_LOG_FORMAT", "json")
        .env("CHATTER_MODEL_PATH", crate::helpers::model_dir())
        .current_dir(data.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut child = KillOnDrop(Some(child));
    // Read the log until the server says where it listens.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = event["addr"].as_str()
            {
                let _ = port_tx.send(addr.to_string());
            }
        }
    });
    let addr = port_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server came up");
    let port = addr.rsplit(':').next().unwrap();
    assert!(data.path().join("postgres").join("PG_VERSION").exists());
    assert!(
        !processes_using(data.path()).is_empty(),
        "no postgres of its own is running"
    );
    // Ready once the model has loaded too.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {}",
            response.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The public tenant exists in the embedded database.
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/widget/config"))
        .header("X-Client-ID", "public_tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut child = child.0.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let left = processes_using(data.path());
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!data.path().join("postgres").join("postmaster.pid").exists());
}
