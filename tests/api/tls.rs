//! TLS to PostgreSQL with libpq's `sslmode` meanings, against the test
//! server (Debian's PostgreSQL has `ssl = on` with its snakeoil certificate,
//! issued to `localhost`).

use chatter::config::{Secret, Settings};
use chatter::db::Db;
use chatter::db::tls::PgTarget;

use crate::helpers::admin_url;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// `url` with `query` appended (the admin URL has none of its own).
fn with(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// Whether the session `url` opens is encrypted, or the connection error.
async fn encrypted(url: &str) -> Result<bool, String> {
    let target = PgTarget::from_url(url).map_err(|e| e.to_string())?;
    let db = Db::connect(target, &Settings::default().database).map_err(|e| e.to_string())?;
    session_is_encrypted(&db).await
}

/// Whether a session of `pool` is encrypted, as the server sees it.
async fn session_is_encrypted(db: &Db) -> Result<bool, String> {
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

/// The tests below need the server to offer TLS; say so plainly if not.
async fn server_offers_tls() -> bool {
    let on = encrypted(&with(&admin_url(), "sslmode=require"))
        .await
        .is_ok();
    if !on {
        eprintln!("the test server has ssl = off: TLS tests have nothing to connect to");
    }
    on
}

#[tokio::test]
async fn sslmode_chooses_whether_the_session_is_encrypted() {
    if !server_offers_tls().await {
        return;
    }
    let url = admin_url();
    assert_eq!(encrypted(&with(&url, "sslmode=require")).await, Ok(true));
    assert_eq!(encrypted(&with(&url, "sslmode=disable")).await, Ok(false));
    // libpq's default: encrypt when the server offers it.
    assert_eq!(encrypted(&url).await, Ok(true));
}

#[tokio::test]
async fn verify_modes_check_the_certificate() {
    if !server_offers_tls().await {
        return;
    }
    let url = admin_url();
    // Self-signed: not trusted by the built-in roots.
    let refused = encrypted(&with(&url, "sslmode=verify-full")).await;
    assert!(refused.is_err(), "{refused:?}");
    // Trusted by file: verify-ca accepts it whatever the host is called...
    let ca = with(&url, &format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"));
    assert_eq!(encrypted(&ca).await, Ok(true));
    // ...verify-full also wants the name: issued to localhost, not 127.0.0.1.
    if url.contains("@127.0.0.1:") {
        let full = with(&url, &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"));
        let wrong_name = encrypted(&full).await;
        assert!(wrong_name.is_err(), "{wrong_name:?}");
        let by_name = full.replace("@127.0.0.1:", "@localhost:");
        assert_eq!(encrypted(&by_name).await, Ok(true));
    }
}

#[tokio::test]
async fn the_server_runs_over_tls_end_to_end() {
    if !server_offers_tls().await {
        return;
    }
    // The whole application (pool and change listener) on sslmode=require.
    let app = crate::helpers::spawn_app_with(|settings| {
        let url = settings.database.url.as_ref().unwrap().expose().to_string();
        settings.database.url = Some(Secret::new(with(&url, "sslmode=require")));
    })
    .await;
    assert_eq!(session_is_encrypted(&app.state.db).await, Ok(true));
    // A change made elsewhere reaches the server through its TLS LISTEN:
    // the host it answered "unknown" (and cached) starts to route.
    let status = || async {
        app.get("/api/widget/config")
            .header("Host", "tls.example.com")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status().await, 400);
    app.create_tenant("tls_shop", "TLS shop", Some("tls.example.com"))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status().await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the change never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
