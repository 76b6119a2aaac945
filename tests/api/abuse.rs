//! Issue 16: one client must never take the service down.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;

/// Reads until the server closes the socket (or `limit` passes); returns
/// how long that took, or None when it stayed open.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_header_client_is_cut_off_within_the_header_timeout() {
    let app = spawn_app_with(|s| s.server.header_read_timeout_secs = 1).await;
    let addr = app.addr.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    // One byte of the headers every 300 ms: never done within the timeout.
    let slow = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let started = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow).await;
    let closed = time_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the slow client still holds its socket");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off only after {:?}",
        started.elapsed()
    );

    // An idle kept-alive connection is closed too.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let closed = time_until_closed(&mut idle, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "an idle kept-alive socket stays open");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_health_still_answers() {
    let app = spawn_app_with(|s| s.server.max_connections = 20).await;
    let addr = app.addr.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The ones over the cap are closed at once.
    let mut closed = 0;
    for stream in idle.iter_mut().skip(20) {
        if time_until_closed(stream, Duration::from_secs(2))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 20);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = app.get("/healthz").send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_slow_request_answers_408_at_the_request_timeout() {
    let app = spawn_app_with(|s| s.server.request_timeout_secs = 1).await;
    let addr = app.addr.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    // Headers promise a body that never comes.
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    let started = Instant::now();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn csv_export_defuses_formulas_in_visitor_text() {
    let (app, _owner, agent, _other) = crate::client_api::setup().await;
    for text in [
        "=HYPERLINK(\"http://evil\")",
        "+1+2",
        "-3",
        "@SUM(A1)",
        "plain",
    ] {
        let (status, _) = app
            .chat("shop", serde_json::json!({ "message": text }))
            .await;
        assert_eq!(status, 200);
    }
    let csv = app
        .http
        .get(format!("{}/api/conversations/export.csv", app.addr))
        .header("X-Client-ID", "shop")
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let texts: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[4].to_string())
        .collect();
    for text in &texts {
        assert!(
            !text.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "a formula cell: {text:?}"
        );
    }
    assert!(
        texts.contains(&"'=HYPERLINK(\"http://evil\")".to_string()),
        "{texts:?}"
    );
    assert!(texts.contains(&"plain".to_string()));
}

#[tokio::test]
async fn an_overlong_origin_is_refused_not_stored_or_echoed() {
    let app = crate::helpers::spawn_app().await;
    app.create_tenant("shop", "Shop", None).await;
    let origin = format!("https://{}.example.com", "a".repeat(200_000));
    let response = app
        .post("/api/chat")
        .header("X-Client-ID", "shop")
        .header("Origin", &origin)
        .json(&serde_json::json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(response.text().await.unwrap().len() < 1_000);
    let client = app.pool.get().await.unwrap();
    let longest: Option<i32> = client
        .query_one("SELECT max(length(origin)) FROM shop.conversations", &[])
        .await
        .unwrap()
        .get(0);
    assert!(longest.unwrap_or(0) <= 2_048);
}

/// Holds an ACCESS EXCLUSIVE lock on `table` until the returned sender is
/// dropped or sent to, on a connection of its own.
async fn lock_table(url: &str, table: &str) -> tokio::sync::oneshot::Sender<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = rx.await;
        let _ = client.batch_execute("ROLLBACK").await;
    });
    tx
}

#[tokio::test]
async fn one_tenants_locked_table_leaves_another_tenants_chats_at_200() {
    let app = spawn_app_with(|s| {
        s.database.lock_timeout_ms = 300;
        s.database.pool_size = 4;
    })
    .await;
    app.create_tenant("locked", "Locked", None).await;
    app.create_tenant("free", "Free", None).await;
    app.import_faqs("free", &[("When are you open?", "Nine to five.")])
        .await;
    // Warm both tenants (index, bot settings) before the lock.
    for tenant in ["locked", "free"] {
        let (status, _) = app.chat(tenant, serde_json::json!({"message": "hi"})).await;
        assert_eq!(status, 200);
    }
    let release = lock_table(&app.db.url, "locked.conversations").await;
    let stuck: Vec<_> = (0..8)
        .map(|_| {
            let http = app.http.clone();
            let url = format!("{}/api/chat", app.addr);
            tokio::spawn(async move {
                http.post(url)
                    .header("X-Client-ID", "locked")
                    .json(&serde_json::json!({"message": "hello"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (status, _) = app
            .chat("free", serde_json::json!({"message": "when are you open"}))
            .await;
        statuses.push(status);
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for request in stuck {
        let status = request.await.unwrap().unwrap();
        assert!(status == 503 || status == 200, "{status}");
    }
    drop(release);
}

#[tokio::test]
async fn a_terminated_database_session_answers_503_with_retry_after() {
    let app = spawn_app_with(|s| s.database.lock_timeout_ms = 0).await;
    app.create_tenant("shop", "Shop", None).await;
    let (status, _) = app.chat("shop", serde_json::json!({"message": "hi"})).await;
    assert_eq!(status, 200);
    let release = lock_table(&app.db.url, "shop.conversations").await;
    let request = {
        let http = app.http.clone();
        let url = format!("{}/api/chat", app.addr);
        tokio::spawn(async move {
            http.post(url)
                .header("X-Client-ID", "shop")
                .json(&serde_json::json!({"message": "hello"}))
                .send()
                .await
                .unwrap()
        })
    };
    // Terminate the backend waiting for the lock (SQLSTATE 57P01).
    let admin = app.pool.get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if killed > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the chat never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = request.await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    drop(release);
}

#[tokio::test]
async fn pages_carry_security_headers_and_json_is_nosniff() {
    let app = crate::helpers::spawn_app().await;
    for path in ["/", "/api/docs"] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers.contains_key("referrer-policy"), "{path}");
    }
    let response = app.get("/api/auth/user").send().await.unwrap();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

/// Sends raw request bytes; returns the status line's code.
async fn raw_status(addr: &str, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = vec![0u8; 64];
    let n = stream.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]).to_string();
    text.split(' ')
        .nth(1)
        .unwrap_or_default()
        .parse()
        .unwrap_or(0)
}

#[tokio::test]
async fn two_hosts_or_client_ids_and_tricky_hosts_are_refused() {
    let app = spawn_app_with(|s| s.server.allowed_hosts.push(".test".into())).await;
    app.create_tenant("shop", "Shop", None).await;
    let addr = app.addr.trim_start_matches("http://").to_string();
    let ok = raw_status(
        &addr,
        b"GET /api/widget/config HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-ID: shop\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ok, 200);
    let two_hosts = raw_status(
        &addr,
        b"GET /api/widget/config HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.test\r\nX-Client-ID: shop\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(two_hosts, 400);
    let two_ids = raw_status(
        &addr,
        b"GET /api/widget/config HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-ID: shop\r\nX-Client-ID: other\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(two_ids, 400);
    for host in [
        "acme.test@beta.test".to_string(),
        format!("{}.acme.test", "a".repeat(5_000)),
    ] {
        let status = raw_status(
            &addr,
            format!("GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status, 400, "{host:.40}");
    }
    let status = raw_status(
        &addr,
        b"GET /readyz HTTP/1.1\r\nHost: www.acme.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
}

/// This process's resident memory in KiB (the server under test runs in it).
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_password_changes_get_429s_and_memory_stays_bounded() {
    let (app, _owner, agent, _other) = crate::client_api::setup().await;
    let before = rss_kib("self");
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let http = app.http.clone();
            let url = format!("{}/api/auth/password/change", app.addr);
            let agent = agent.clone();
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(agent)
                    .json(&serde_json::json!({
                        "old_password": format!("guess number {i}"),
                        "new_password": "a brand new password",
                    }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let grown_mib = rss_kib("self").saturating_sub(before) / 1024;
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 30, "only {limited} of 40 got 429: {statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 400 | 429 | 503)),
        "{statuses:?}"
    );
    assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
}

/// `chatter serve` as a process of its own, so its memory can be measured
/// apart from the tests'; killed on drop.
struct ServerProcess {
    child: std::process::Child,
    addr: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_process(db: &crate::helpers::TestDb) -> ServerProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatter"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("DEBUG", "True")
        .env("PORT", "0")
        .env("CHATTER_HOST", "127.0.0.1")
        .env("CHATTER_LOG_FORMAT", "json")
        .env("CHATTER_LOG", "warn,chatter=info")
        .env("CHATTER_TRUST_PROXY", "true")
        // No model: these requests never reach it, and nothing downloads.
        .env("CHATTER_MODEL_PATH", "/nonexistent/chatter-model")
        .env("HF_HUB_OFFLINE", "1")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = event["addr"].as_str()
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let mut server = ServerProcess {
        child,
        addr: String::new(),
    };
    server.addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server came up");
    server
}

/// Every request with a unique client-chosen key of 60 KB: Hosts, the
/// forwarded address and the sign-in email.
async fn unique_key_flood(port: &str, from: usize, count: usize) {
    use futures_util::StreamExt;
    let http = reqwest::Client::new();
    futures_util::stream::iter(from..from + count)
        .for_each_concurrent(8, |i| {
            let http = http.clone();
            async move {
                let big = format!("{i:08}{}", "a".repeat(60 * 1024));
                let host = format!("{big}.example.com");
                let _ = http
                    .get(format!("http://127.0.0.1:{port}/readyz"))
                    .header("Host", host)
                    .send()
                    .await;
                let _ = http
                    .post(format!("http://127.0.0.1:{port}/api/auth/login"))
                    .header("X-Forwarded-For", format!("10.0.0.1, {big}"))
                    // Too long to be hashed: the limiters are what is measured.
                    .json(&serde_json::json!({
                        "email": format!("{}@example.com", &big[..50_000]),
                        "password": "p".repeat(2_000),
                    }))
                    .send()
                    .await;
            }
        })
        .await;
}

#[tokio::test]
async fn a_thousand_unique_60_kb_hosts_and_keys_add_under_10_mb() {
    let db = crate::helpers::TestDb::create().await;
    let server = serve_process(&db);
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let pid = server.child.id().to_string();
    // Warm-up: the allocator's arenas, the pool's connections.
    unique_key_flood(&port, 0, 100).await;
    let before = rss_kib(&pid);
    unique_key_flood(&port, 100, 1_000).await;
    let grown_kib = rss_kib(&pid).saturating_sub(before);
    assert!(
        grown_kib < 10 * 1024,
        "RSS grew by {} MiB",
        grown_kib / 1024
    );
}

/// The hashing double, 20 ms a text: inference slow enough to matter.
struct SlowEmbedder(chatter::engine::hashing::HashingEmbedder);

impl chatter::engine::Embedder for SlowEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, chatter::engine::EmbedError> {
        std::thread::sleep(Duration::from_millis(20) * texts.len() as u32);
        self.0.embed(texts)
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn model_id(&self) -> &str {
        self.0.model_id()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_chat_stays_fast_while_another_tenant_runs_yearly_summaries() {
    use chatter::engine::worker::{EmbeddingQueue, WorkerSettings};
    let metrics = std::sync::Arc::new(chatter::metrics::Metrics::new());
    let queue = EmbeddingQueue::start(
        std::sync::Arc::new(SlowEmbedder(Default::default())),
        WorkerSettings {
            max_batch: 32,
            batch_wait: Duration::from_millis(1),
            queue_capacity: 256,
        },
        std::sync::Arc::clone(&metrics),
    )
    .unwrap();
    let engine = std::sync::Arc::new(chatter::engine::Engine::ready(queue));
    let app = crate::helpers::spawn_app_with_metrics(
        |_| {},
        chatter::app::ModelChoice::Given(engine),
        metrics,
    )
    .await;
    app.create_tenant("shop", "Shop", None).await;
    app.create_tenant("calm", "Calm", None).await;
    app.import_faqs("calm", &[("When are you open?", "Nine to five.")])
        .await;
    // 500 distinct unanswered questions at "shop", as visitors could seed them.
    let client = app.pool.get().await.unwrap();
    client
        .batch_execute(
            "WITH c AS (INSERT INTO shop.conversations (session_id) \
               SELECT 'seed-' || g FROM generate_series(1, 500) g RETURNING id, session_id) \
             INSERT INTO shop.messages (conversation_id, role, text, created_at) \
               SELECT id, r.role, 'question number ' || session_id, now() - (r.n || ' ms')::interval \
               FROM c, (VALUES ('visitor', 2), ('bot', 1)) r(role, n) ORDER BY id, r.n DESC",
        )
        .await
        .unwrap();
    use chatter::auth::users::{self, NewUser};
    users::create_user(
        &app.handle,
        NewUser {
            email: "owner@shop.test",
            password: "correct horse battery",
            is_operator: false,
            membership: Some(("shop", chatter::auth::Role::Owner)),
        },
    )
    .await
    .unwrap();
    let token = crate::client_api::sign_in(&app, "owner@shop.test").await;
    // Warm the calm tenant's index first.
    let (status, _) = app
        .chat("calm", serde_json::json!({"message": "open?"}))
        .await;
    assert_eq!(status, 200);

    let summaries: Vec<_> = (0..2)
        .map(|_| {
            let http = app.http.clone();
            let url = format!("{}/api/analytics/summary?days=365", app.addr);
            let token = token.clone();
            tokio::spawn(async move {
                http.get(url)
                    .header("X-Client-ID", "shop")
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = app
            .chat("calm", serde_json::json!({"message": "when are you open"}))
            .await;
        latencies.push(started.elapsed());
        assert_eq!(status, 200);
    }
    for summary in summaries {
        assert_eq!(summary.await.unwrap(), 200);
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(
        p99 < Duration::from_secs(1),
        "chat p99 {p99:?}: {latencies:?}"
    );
}
