//! `sslmode` against throwaway PostgreSQL servers started here, with a
//! certificate made the way Citus makes its own (X.509 version 1, issued to
//! itself, valid for zero seconds: `enable_ssl.c`), with TLS off, and with
//! TLS that cannot be agreed on. libpq connects in every case its `sslmode`
//! allows; so must we.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use chatter::config::Settings;
use chatter::db::Db;
use chatter::db::tls::PgTarget;

/// A PostgreSQL server of its own in a temporary directory, on a free port
/// of 127.0.0.1, stopped and removed on drop.
struct Throwaway {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// `program args`, as the postgres user when we are root (initdb and the
/// server refuse to run as root).
fn run(program: &Path, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd.args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate made like Citus's automatic one (`enable_ssl.c`: RSA 2048,
/// no version set, serial 1, CN citus-auto-ssl, notBefore = notAfter = now,
/// SHA-256), in `dir`.
fn citus_like_certificate(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-subj",
        "/CN=citus-auto-ssl",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-signkey",
        "server.key",
        "-days",
        "0",
        "-set_serial",
        "1",
        "-sha256",
        "-out",
        "server.crt",
    ]);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.join("server.crt"))
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "not a version 1 certificate"
    );
}

impl Throwaway {
    /// Starts a server with `conf` appended to its postgresql.conf; `None`
    /// when PostgreSQL's programs are not installed.
    fn start(conf: &str) -> Option<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir().expect("tempdir");
        citus_like_certificate(dir.path());
        if is_root() {
            let pg = nix::unistd::User::from_name("postgres")
                .expect("users")
                .expect("a postgres user");
            for path in [dir.path().to_path_buf(), dir.path().join("server.key")] {
                nix::unistd::chown(&path, Some(pg.uid), Some(pg.gid)).expect("chown");
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 path");
        run(
            &bin.join("initdb"),
            &["-D", data, "-U", "postgres", "--auth=trust", "-N"],
        );
        let base = dir.path().display();
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = \
             '{base}'\nfsync = off\nssl_cert_file = '{base}/server.crt'\nssl_key_file = \
             '{base}/server.key'\n{conf}\n"
        );
        let conf_path = dir.path().join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf_path, text).expect("postgresql.conf");
        let log = dir.path().join("server.log");
        run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
        Some(Self { dir, bin, port })
    }

    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    /// Whether the session `query`'s URL opens is encrypted, or the error.
    async fn encrypted(&self, query: &str) -> Result<bool, String> {
        let target = PgTarget::from_url(&self.url(query)).map_err(|e| e.to_string())?;
        let db = Db::connect(target, &Settings::default().database).map_err(|e| e.to_string())?;
        let client = db.shared().await.map_err(|e| format!("{e:?}"))?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new(if is_root() { "runuser" } else { "true" })
            .args(if is_root() {
                &["-u", "postgres", "--"][..]
            } else {
                &[][..]
            })
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

#[tokio::test]
async fn a_citus_like_self_signed_certificate_is_accepted_by_prefer_and_require() {
    let Some(server) = Throwaway::start("ssl = on") else {
        eprintln!("PostgreSQL is not installed: nothing to test against");
        return;
    };
    assert_eq!(server.encrypted("").await, Ok(true), "the default, prefer");
    assert_eq!(server.encrypted("sslmode=prefer").await, Ok(true));
    assert_eq!(server.encrypted("sslmode=require").await, Ok(true));
    assert_eq!(server.encrypted("sslmode=disable").await, Ok(false));
    // Verification still means verification: nobody vouches for it.
    let refused = server.encrypted("sslmode=verify-ca").await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn the_same_certificate_over_tls_1_2() {
    let Some(server) = Throwaway::start("ssl = on\nssl_max_protocol_version = 'TLSv1.2'") else {
        return;
    };
    assert_eq!(server.encrypted("sslmode=require").await, Ok(true));
    assert_eq!(server.encrypted("").await, Ok(true));
}

#[tokio::test]
async fn a_server_without_tls_is_reached_by_prefer_and_refused_by_require() {
    let Some(server) = Throwaway::start("ssl = off") else {
        return;
    };
    assert_eq!(server.encrypted("").await, Ok(false));
    assert_eq!(server.encrypted("sslmode=disable").await, Ok(false));
    let refused = server.encrypted("sslmode=require").await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn prefer_falls_back_to_plain_when_tls_cannot_be_agreed_on() {
    // TLS 1.2 with only a cipher rustls does not offer (no forward
    // secrecy): the server says yes to TLS, then the handshake fails.
    let Some(server) = Throwaway::start(
        "ssl = on\nssl_max_protocol_version = 'TLSv1.2'\nssl_ciphers = 'AES128-SHA'",
    ) else {
        return;
    };
    let refused = server.encrypted("sslmode=require").await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(server.encrypted("sslmode=prefer").await, Ok(false));
    assert_eq!(server.encrypted("").await, Ok(false));
}
