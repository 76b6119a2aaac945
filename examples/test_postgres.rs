//! A throwaway PostgreSQL for the test suite, made by the same code that
//! runs `chatter serve`'s embedded default (`chatter::db::embedded`), in a
//! temporary directory of its own.
//!
//! `scripts/test` starts this when no server answers on 127.0.0.1:5432 and
//! `CHATTER_TEST_DATABASE_URL` is not set. It prints one line, a connection
//! URL for the `postgres` database (the form the tests read from
//! `CHATTER_TEST_DATABASE_URL`: they swap the last path segment for a
//! database of their own), then waits. The cluster stops, and the directory
//! goes, when stdin closes (the script ended, however it ended) or on
//! SIGTERM / SIGINT.

use std::io::{Read, Write};
use std::path::Path;

use chatter::db::embedded::EmbeddedPostgres;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // The errors' messages (say, how to install PostgreSQL), not their Debug.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("test_postgres: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Short: the socket path must fit in sun_path.
    let dir = tempfile::Builder::new()
        .prefix("chatter-pg-")
        .tempdir_in("/tmp")?;
    let path = dir.path().to_path_buf();
    let cluster = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&path)).await??;
    let url = admin_url(&cluster.connection_config())?;

    let mut stdout = std::io::stdout();
    writeln!(stdout, "{url}")?;
    stdout.flush()?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = stdin_closed() => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    // Stop the cluster before its directory is removed.
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    drop(dir);
    Ok(())
}

/// Resolves when stdin reaches end of file (or fails: nobody is writing
/// either way). A thread of its own, not tokio's stdin: that one's blocking
/// read would hold up the runtime's shutdown after a SIGTERM.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// `postgres://user@%2Fsocket%2Fdir:port/postgres`: libpq's and
/// tokio-postgres's URL form for a Unix socket (a percent-encoded absolute
/// path as the host), with no `/` in the host so the tests can replace the
/// database name after the last `/`.
fn admin_url(config: &tokio_postgres::Config) -> Result<String, String> {
    let dir = match config.get_hosts() {
        [tokio_postgres::config::Host::Unix(dir)] => dir.clone(),
        other => return Err(format!("expected one Unix socket, got {other:?}")),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    Ok(format!(
        "postgres://{user}@{}:{port}/postgres",
        percent_encode(&dir)
    ))
}

fn percent_encode(path: &Path) -> String {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatter::db::tls::PgTarget;
    use tokio_postgres::config::Host;

    #[test]
    fn the_url_names_the_socket_and_survives_the_tests_database_swap() {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path("/tmp/chatter-pg-a b/run")
            .port(5432)
            .user("postgres");
        let url = admin_url(&config).unwrap();
        assert_eq!(
            url,
            "postgres://postgres@%2Ftmp%2Fchatter-pg-a%20b%2Frun:5432/postgres"
        );
        // What tests/api/helpers.rs does to get a database of its own.
        let (prefix, _) = url.rsplit_once('/').unwrap();
        let own = format!("{prefix}/chatter_test_1");
        // The server's own URL parsing (DATABASE_URL) reads the same socket.
        let target = PgTarget::from_url(&own).unwrap();
        assert_eq!(
            target.config.get_hosts(),
            &[Host::Unix("/tmp/chatter-pg-a b/run".into())]
        );
        assert_eq!(target.config.get_dbname(), Some("chatter_test_1"));
        assert_eq!(target.config.get_ports(), &[5432]);
    }
}
