//! Change events between processes: whoever changes tenants, domains or a
//! tenant's settings sends a NOTIFY inside the same transaction; every
//! process LISTENs and drops what it cached. The CLI, the console and every
//! server replica share one database and so see each other's changes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use crate::db::Statements;

use crate::db::tls::PgTarget;

use crate::tenancy::SchemaName;

pub const CHANNEL: &str = "chatter_events";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeEvent {
    /// Tenants or domains changed: routing caches start over.
    Tenancy,
    /// A tenant's bot settings changed.
    BotConfig(SchemaName),
    /// A tenant's FAQs changed.
    Faqs(SchemaName),
    /// A tenant's plan or subscription changed.
    Billing(SchemaName),
}

impl ChangeEvent {
    pub fn payload(&self) -> String {
        match self {
            Self::Tenancy => "tenancy".into(),
            Self::BotConfig(s) => format!("config:{s}"),
            Self::Faqs(s) => format!("faqs:{s}"),
            Self::Billing(s) => format!("billing:{s}"),
        }
    }

    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':') {
            None if payload == "tenancy" => Some(Self::Tenancy),
            Some(("config", s)) => SchemaName::parse(s).ok().map(Self::BotConfig),
            Some(("faqs", s)) => SchemaName::parse(s).ok().map(Self::Faqs),
            Some(("billing", s)) => SchemaName::parse(s).ok().map(Self::Billing),
            _ => None,
        }
    }

    /// Queues the event in the caller's transaction: delivered on commit,
    /// dropped on rollback.
    pub async fn notify(&self, client: &impl Statements) -> Result<(), tokio_postgres::Error> {
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.payload()])
            .await
            .map(|_| ())
    }
}

/// What the listener tells its subscriber: an event, or that events may
/// have been missed (connection lost), so everything cached must go.
#[derive(Debug, Clone)]
pub enum Signal {
    Event(ChangeEvent),
    Resync,
}

pub type Subscriber = Arc<dyn Fn(Signal) + Send + Sync>;

/// Listens on its own connection (LISTEN needs a session, so not a pooled
/// one) until `shutdown` fires, reconnecting with a back-off.
pub fn spawn_listener(
    target: PgTarget,
    subscriber: Subscriber,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let session_subscriber = Arc::clone(&subscriber);
    tokio::spawn(keep_listening(
        move || {
            let target = target.clone();
            let subscriber = Arc::clone(&session_subscriber);
            async move { listen_once(&target, &subscriber).await }
        },
        subscriber,
        tokio::time::sleep,
        shutdown,
    ))
}

/// The wait before reconnecting: doubles after each session that never got
/// to listen (the database is down: do not hammer it), and starts over
/// after one that did. Without the reset, a listener that had lost its
/// connection a few times over the process's life waited the longest
/// back-off after every later blip, and served stale caches meanwhile
/// (issue 16, item 13).
#[derive(Debug)]
struct Backoff {
    first: Duration,
    longest: Duration,
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const LONGEST: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self {
            first: Self::FIRST,
            longest: Self::LONGEST,
            next: Self::FIRST,
        }
    }

    /// The wait after a session; `listened`: it got as far as LISTEN.
    fn after(&mut self, listened: bool) -> Duration {
        if listened {
            self.next = self.first;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.longest);
        wait
    }
}

/// Runs listening sessions one after another until `shutdown` fires.
/// `session` resolves when its connection is lost, saying whether it got
/// to listen; `sleep` waits (tests pass one that records the waits).
async fn keep_listening<S, SF, W, WF>(
    mut session: S,
    subscriber: Subscriber,
    mut sleep: W,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    S: FnMut() -> SF,
    SF: std::future::Future<Output = (bool, Result<(), tokio_postgres::Error>)>,
    W: FnMut(Duration) -> WF,
    WF: std::future::Future<Output = ()>,
{
    let mut backoff = Backoff::new();
    loop {
        let listened = tokio::select! {
            (listened, result) = session() => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "change listener lost its connection; reconnecting");
                }
                listened
            }
            _ = shutdown.changed() => return,
        };
        // Anything may have changed while we were not listening.
        subscriber(Signal::Resync);
        tokio::select! {
            _ = sleep(backoff.after(listened)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One session: connects, listens, and passes events on until the
/// connection is lost. Says whether it got as far as listening.
async fn listen_once(
    target: &PgTarget,
    subscriber: &Subscriber,
) -> (bool, Result<(), tokio_postgres::Error>) {
    // Its own session (LISTEN), with the pool's TLS.
    let (client, mut connection) = match target.connect().await {
        Ok(pair) => pair,
        Err(e) => return (false, Err(e)),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok(n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        driver.abort();
        return (false, Err(e));
    }
    // Events sent before LISTEN took effect were missed.
    subscriber(Signal::Resync);
    let result = loop {
        match rx.recv().await {
            Some(Ok(payload)) => match ChangeEvent::parse(&payload) {
                Some(event) => subscriber(Signal::Event(event)),
                None => tracing::warn!(%payload, "ignoring an unknown change event"),
            },
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    driver.abort();
    drop(client);
    (true, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let acme = SchemaName::parse("acme").unwrap();
        for event in [
            ChangeEvent::Tenancy,
            ChangeEvent::BotConfig(acme.clone()),
            ChangeEvent::Faqs(acme.clone()),
            ChangeEvent::Billing(acme),
        ] {
            assert_eq!(ChangeEvent::parse(&event.payload()), Some(event));
        }
        assert_eq!(ChangeEvent::parse("config:Bad;"), None);
        assert_eq!(ChangeEvent::parse("nonsense"), None);
    }

    /// Sessions that never listen back off up to the longest wait; one that
    /// listened starts the back-off over.
    #[tokio::test]
    async fn the_back_off_starts_over_after_a_session_that_listened() {
        use std::sync::Mutex;
        // Six failed connects, one session that listened, one more failure,
        // then the test stops the loop.
        let script = Arc::new(Mutex::new(vec![
            false, false, false, false, false, false, true, false,
        ]));
        let waits = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let stop = Arc::new(stop);
        let session = {
            let script = Arc::clone(&script);
            let stop = Arc::clone(&stop);
            move || {
                let next = {
                    let mut script = script.lock().unwrap();
                    (!script.is_empty()).then(|| script.remove(0))
                };
                let stop = Arc::clone(&stop);
                async move {
                    match next {
                        Some(listened) => (listened, Ok(())),
                        None => {
                            let _ = stop.send(true);
                            std::future::pending().await
                        }
                    }
                }
            }
        };
        let sleep = {
            let waits = Arc::clone(&waits);
            move |wait: Duration| {
                waits.lock().unwrap().push(wait);
                std::future::ready(())
            }
        };
        let subscriber: Subscriber = Arc::new(|_| {});
        keep_listening(session, subscriber, sleep, shutdown).await;
        let ms: Vec<u128> = waits
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(ms, [100, 200, 400, 800, 1_600, 3_200, 100, 200]);
    }
}
