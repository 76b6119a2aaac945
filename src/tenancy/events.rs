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
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                result = listen_once(&target, &subscriber) => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "change listener lost its connection; reconnecting");
                    }
                }
                _ = shutdown.changed() => return,
            }
            // Anything may have changed while we were not listening.
            subscriber(Signal::Resync);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

async fn listen_once(
    target: &PgTarget,
    subscriber: &Subscriber,
) -> Result<(), tokio_postgres::Error> {
    // Its own session (LISTEN), with the pool's TLS.
    let (client, mut connection) = target.connect().await?;
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
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
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
    result
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
}
