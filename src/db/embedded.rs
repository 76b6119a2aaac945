//! The embedded default: a private PostgreSQL cluster under the data
//! directory, made and run with the machine's own `initdb` and `pg_ctl`,
//! reachable only through a Unix socket in that directory.
//!
//! The process that starts the cluster owns it and stops it when dropped
//! (normal exit, SIGTERM, or an error during start-up). A process that finds
//! it already running (the CLI beside a running server) joins without owning.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::unistd::{Gid, Uid, User, chown};

/// The superuser `initdb` creates; trust auth on a private socket.
const SUPERUSER: &str = "postgres";
const DATABASE: &str = "chatter";
const PORT: u16 = 5432;
/// sun_path holds 108 bytes, including the socket file name and a NUL.
const MAX_SOCKET_DIR_LEN: usize = 107 - ".s.PGSQL.5432".len() - 1;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no DATABASE_URL is set and PostgreSQL's programs (initdb, pg_ctl) were not found on PATH \
         or in /usr/lib/postgresql/*/bin. Either install PostgreSQL (Debian/Ubuntu: `apt-get \
         install postgresql`; macOS: `brew install postgresql`), or set DATABASE_URL to an \
         existing database"
    )]
    ProgramsNotFound,
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data directory {0} is too long a path for PostgreSQL's socket; set CHATTER_DATA_DIR \
         to a shorter path"
    )]
    PathTooLong(PathBuf),
    #[error("{program} failed: {detail}")]
    Program { program: String, detail: String },
    #[error("cannot connect to the embedded database: {0}")]
    Connect(#[from] tokio_postgres::Error),
}

/// Where the programs live.
#[derive(Debug, Clone)]
pub struct Programs {
    bin_dir: PathBuf,
}

impl Programs {
    /// Looks on `path_var` (the PATH), then in each `roots` entry's
    /// `*/bin` (newest version first).
    pub fn find(path_var: Option<OsString>, roots: &[&Path]) -> Result<Self, EmbeddedError> {
        let on_path = path_var
            .iter()
            .flat_map(std::env::split_paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
        if let Some(bin_dir) = on_path {
            return Ok(Self { bin_dir });
        }
        let mut versions: Vec<(u32, PathBuf)> = roots
            .iter()
            .filter_map(|root| fs::read_dir(root).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin_dir = entry.path().join("bin");
                (bin_dir.join("initdb").is_file() && bin_dir.join("pg_ctl").is_file())
                    .then_some((version, bin_dir))
            })
            .collect();
        versions.sort();
        versions
            .pop()
            .map(|(_, bin_dir)| Self { bin_dir })
            .ok_or(EmbeddedError::ProgramsNotFound)
    }

    fn command(&self, name: &str) -> Command {
        Command::new(self.bin_dir.join(name))
    }
}

/// A running cluster; stopped on drop if this process started it.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    programs: Programs,
    cluster_dir: PathBuf,
    socket_dir: PathBuf,
    run_as: Option<(Uid, Gid)>,
    owned: bool,
}

impl EmbeddedPostgres {
    /// Initialises the cluster on first use, then starts it (or joins it
    /// when it already runs). Blocking: call from `spawn_blocking`.
    pub fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let programs = Programs::find(
            std::env::var_os("PATH"),
            &[
                Path::new("/usr/lib/postgresql"),
                Path::new("/usr/local/pgsql"),
            ],
        )?;
        let data_dir = absolute(data_dir)?;
        let cluster_dir = data_dir.join("postgres");
        let socket_dir = data_dir.join("run");
        if socket_dir.as_os_str().len() > MAX_SOCKET_DIR_LEN {
            return Err(EmbeddedError::PathTooLong(data_dir));
        }
        // initdb and postgres refuse to run as root.
        let run_as = if Uid::effective().is_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        // As root, the data directory is handed to that user too: it must
        // be able to reach the cluster inside, whatever mode it was made with.
        make_dir(&data_dir, 0o755, run_as)?;
        make_dir(&cluster_dir, 0o700, run_as)?;
        make_dir(&socket_dir, 0o700, run_as)?;

        let mut cluster = Self {
            programs,
            cluster_dir,
            socket_dir,
            run_as,
            owned: false,
        };
        if !cluster.cluster_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if cluster.is_running() {
            tracing::info!(dir = %cluster.cluster_dir.display(), "joining the running embedded PostgreSQL");
        } else {
            cluster.pg_ctl_start()?;
            cluster.owned = true;
            tracing::info!(dir = %cluster.cluster_dir.display(), "started the embedded PostgreSQL");
        }
        Ok(cluster)
    }

    /// Connection settings: the private socket, the superuser, our database.
    pub fn connection_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(PORT)
            .user(SUPERUSER)
            .dbname(DATABASE)
            .application_name("chatter");
        config
    }

    /// Creates the `chatter` database if the cluster is new.
    pub async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let mut config = self.connection_config();
        config.dbname("postgres");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE \"{DATABASE}\""))
                .await?;
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let mut cmd = self.programs.command("initdb");
        cmd.arg("-D").arg(&self.cluster_dir).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]);
        self.run(cmd, "initdb")
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port={PORT}",
            self.socket_dir.display()
        );
        let mut cmd = self.programs.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(&self.cluster_dir)
            .args(["-w", "-t", "60", "-l"])
            .arg(self.cluster_dir.join("server.log"))
            .arg("-o")
            .arg(options);
        self.run(cmd, "pg_ctl start")
    }

    fn is_running(&self) -> bool {
        let mut cmd = self.programs.command("pg_ctl");
        cmd.arg("status").arg("-D").arg(&self.cluster_dir);
        self.output(cmd)
            .map(|out| out.status.success())
            .unwrap_or(false)
    }

    /// Fast shutdown: running queries are cancelled, clients disconnected.
    pub fn stop(&mut self) {
        if !self.owned {
            return;
        }
        self.owned = false;
        let mut cmd = self.programs.command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.cluster_dir)
            .args(["-m", "fast", "-w", "-t", "60"]);
        match self.run(cmd, "pg_ctl stop") {
            Ok(()) => tracing::info!("stopped the embedded PostgreSQL"),
            Err(e) => tracing::error!(error = %e, "could not stop the embedded PostgreSQL"),
        }
    }

    fn output(&self, mut cmd: Command) -> std::io::Result<Output> {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
            // The programs look at HOME; root's is not theirs to read.
            cmd.env("HOME", &self.cluster_dir);
        }
        cmd.current_dir(&self.cluster_dir).output()
    }

    fn run(&self, cmd: Command, what: &str) -> Result<(), EmbeddedError> {
        let out = self.output(cmd).map_err(|e| EmbeddedError::Program {
            program: what.to_string(),
            detail: e.to_string(),
        })?;
        if out.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        if what == "pg_ctl start"
            && let Ok(log) = fs::read_to_string(self.cluster_dir.join("server.log"))
        {
            let mut tail: Vec<&str> = log.lines().rev().take(5).collect();
            tail.reverse();
            detail = format!("{detail}; server log: {}", tail.join(" | "));
        }
        Err(EmbeddedError::Program {
            program: what.to_string(),
            detail,
        })
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `postgres` when the machine has that user (a PostgreSQL install makes
/// one), else `nobody`.
fn unprivileged_user() -> Result<(Uid, Gid), EmbeddedError> {
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            return Ok((user.uid, user.gid));
        }
    }
    Err(EmbeddedError::Program {
        program: "initdb".into(),
        detail: "running as root and no unprivileged user (postgres or nobody) exists to run \
                 PostgreSQL as; run chatter as an ordinary user"
            .into(),
    })
}

fn absolute(path: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(path).map_err(|source| EmbeddedError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

fn make_dir(path: &Path, mode: u32, owner: Option<(Uid, Gid)>) -> Result<(), EmbeddedError> {
    let wrap = |source| EmbeddedError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    if !path.exists() {
        fs::create_dir_all(path).map_err(wrap)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(wrap)?;
    }
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid)).map_err(|e| wrap(std::io::Error::from(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_name_both_fixes() {
        let err = Programs::find(
            Some(OsString::from("/nonexistent")),
            &[Path::new("/nonexistent")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("install PostgreSQL"), "{err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn finds_versioned_install_dirs_newest_first() {
        let root = tempfile::tempdir().unwrap();
        for version in ["13", "16", "9"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        let found = Programs::find(None, &[root.path()]).unwrap();
        assert_eq!(found.bin_dir, root.path().join("16").join("bin"));
    }
}
