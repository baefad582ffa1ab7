//! Graceful shutdown: one signal that every worker, accept loop and connection watches.
//!
//! On SIGTERM/SIGINT the server starts draining: `/readyz` fails, accept loops stop and drop
//! their listeners, every connection is told to finish (hyper answers the request in flight
//! with `Connection: close` and closes idle connections), and each worker waits for its
//! connections up to the drain deadline, then drops whatever is left and closes its pool.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

pub struct Shutdown {
    tx: watch::Sender<bool>,
    draining: AtomicBool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { tx: watch::channel(false).0, draining: AtomicBool::new(false) }
    }
}

impl Shutdown {
    /// Starts draining; idempotent.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// Resolves once shutdown has begun (at once if it already has).
pub async fn begun(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens at process exit: stop too.
    let _ = rx.wait_for(|draining| *draining).await;
}
