//! The accept loop: what `axum::serve` did, plus the timers and the cap it
//! lacks. `axum::serve` sets no header-read timeout and keeps idle sockets
//! forever, so one client sending headers at a byte a second, or holding a
//! thousand idle sockets, could run the process out of file descriptors
//! (issue 16, item 1). Here every connection is HTTP/1.1 (as before: axum's
//! `http2` feature is off) with hyper's header-read timer, which also closes
//! a kept-alive socket that sends nothing for that long; each request has a
//! deadline (408); and connections beyond `max_connections` are closed as
//! soon as they are accepted, so the descriptors left are the database's.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Layer, ServiceExt};
use tower_http::timeout::TimeoutLayer;

/// The limits `serve` applies to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers, and longest a
    /// kept-alive connection may sit idle before the next request.
    pub header_read_timeout: Duration,
    /// Longest a request may take until its response starts (408 after).
    pub request_timeout: Duration,
    /// Open connections at most; more are closed on accept.
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn from_settings(server: &crate::config::ServerSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(server.request_timeout_secs.max(1)),
            max_connections: server.max_connections.max(1),
        }
    }
}

/// Serves `app` on `listener` until `signal` resolves, then stops accepting
/// and waits for the open connections' requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Around the whole router once: `Router::layer` would wrap every route
    // again, one more boxed level to clone and call on every request.
    let app = TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout)
        .layer(app);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(signal);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning (as
                    // axum::serve does); the connections open will close.
                    tracing::error!(error = %e, "accept error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%remote, "too many open connections; closing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::trace!(error = %e, %remote, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
