//! `LISTEN gatehouse_policy`: wakes the reload loop as soon as any process applies a change.
//!
//! Notifications are an accelerator, not the guarantee: one sent while the listener is
//! reconnecting is lost, and the reload loop's polling still bounds staleness. Each (re)connect
//! therefore also wakes the loop once, so a change missed during an outage is read at once.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::CHANNEL;

/// The first retry after the connection drops; doubled on each failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long establishing the listener's connection may take at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The background listener of one store; stopped when the store is dropped.
#[derive(Debug)]
pub(super) struct Listener {
    changes: watch::Receiver<i64>,
    task: AbortHandle,
}

impl Listener {
    /// Starts listening in the current tokio runtime; `None` outside one.
    pub(super) fn spawn(options: PgConnectOptions, acquire_timeout: Duration) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, changes) = watch::channel(0);
        let options = options.application_name("gatehouse-listener");
        let connect_timeout = acquire_timeout.max(CONNECT_TIMEOUT);
        let task = runtime
            .spawn(run(options, connect_timeout, sender))
            .abort_handle();
        Some(Self { changes, task })
    }

    /// A receiver that sees every notified generation (and a wake-up after each reconnect).
    pub(super) fn subscribe(&self) -> watch::Receiver<i64> {
        self.changes.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens until every receiver is gone, reconnecting with exponential backoff.
async fn run(options: PgConnectOptions, connect_timeout: Duration, sender: watch::Sender<i64>) {
    let mut backoff = MIN_BACKOFF;
    let mut healthy = true;
    loop {
        match subscribe(&options, connect_timeout).await {
            Ok(mut listener) => {
                if !healthy {
                    tracing::info!(channel = CHANNEL, "policy change listener reconnected");
                }
                healthy = true;
                backoff = MIN_BACKOFF;
                // Whatever changed while nobody listened is read by one reload now.
                sender.send_modify(|_| {});
                let error = receive(&mut listener, &sender).await;
                if sender.is_closed() {
                    return;
                }
                tracing::warn!(
                    channel = CHANNEL,
                    error = error.as_deref().unwrap_or("connection closed"),
                    "policy change listener lost its connection"
                );
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(
                        channel = CHANNEL,
                        error = %error,
                        retry_ms = backoff.as_millis() as u64,
                        "policy change listener cannot connect"
                    );
                }
                healthy = false;
            }
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A listener on its own single-connection pool, subscribed to [`CHANNEL`].
async fn subscribe(
    options: &PgConnectOptions,
    connect_timeout: Duration,
) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(connect_timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnecting is ours to do (with backoff), not the listener's.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forwards notifications until the connection is lost; returns why, when there was an error.
async fn receive(listener: &mut PgListener, sender: &watch::Sender<i64>) -> Option<String> {
    loop {
        let notification = tokio::select! {
            received = listener.try_recv() => received,
            _ = sender.closed() => return None,
        };
        match notification {
            Ok(Some(notification)) => match notification.payload().parse::<i64>() {
                Ok(generation) => {
                    sender.send_replace(generation);
                }
                // Not one of ours: still a reason to look.
                Err(_) => sender.send_modify(|_| {}),
            },
            Ok(None) => return None,
            Err(error) => return Some(error.to_string()),
        }
    }
}
