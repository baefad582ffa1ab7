//! Graceful shutdown: one signal, in two phases, that every worker, accept loop and connection
//! watches.
//!
//! On SIGTERM/SIGINT the server first stops accepting: `/readyz` fails, and each accept loop
//! takes what is already queued on its listener and closes it. Only once every listener is
//! closed (or after [`LISTENER_CLOSE_WAIT`]) does draining begin: every connection is told to
//! finish (the answer in flight, and any later one, says `Connection: close`; idle connections
//! close after a short grace), and each worker waits for its connections up to the drain
//! deadline, then drops whatever is left and closes its pool.
//!
//! The order matters for restarts on the same port: a client told to reconnect must not find
//! this process's listener still open, or its new connection would be reset when it closes.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, watch};

/// How long draining waits for the accept loops to close their listeners. They do so at once
/// unless a worker is stuck; draining must start regardless.
pub const LISTENER_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Where shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    Serving = 0,
    /// Not accepting: listeners are being closed; `/readyz` answers 503.
    Closing = 1,
    /// Connections are finishing.
    Draining = 2,
}

pub struct Shutdown {
    tx: watch::Sender<Phase>,
    phase: AtomicU8,
    listeners_open: AtomicUsize,
    /// Wakes every connection's [`Finishing`] when draining begins.
    finishing: Notify,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: watch::channel(Phase::Serving).0,
            phase: AtomicU8::new(0),
            listeners_open: AtomicUsize::new(0),
            finishing: Notify::new(),
        }
    }
}

impl Shutdown {
    fn enter(&self, phase: Phase) {
        // The phase first: a `Finishing` created after the notification sees it.
        self.phase.fetch_max(phase as u8, Ordering::SeqCst);
        self.tx.send_if_modified(|p| {
            let later = phase > *p;
            if later {
                *p = phase;
            }
            later
        });
        if phase >= Phase::Draining {
            self.finishing.notify_waiters();
        }
    }

    /// Resolves once connections are to finish (see [`Finishing`]).
    pub fn finishing_connections(&self) -> Finishing<'_> {
        Finishing { shutdown: self, notified: self.finishing.notified(), waker: None }
    }

    /// Runs the whole sequence: stop accepting, wait (bounded) for every listener to close,
    /// start draining. Blocks the calling thread; idempotent.
    pub fn begin(&self) {
        self.enter(Phase::Closing);
        let deadline = Instant::now() + LISTENER_CLOSE_WAIT;
        while self.listeners_open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let left = self.listeners_open.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(listeners = left, "listeners still open; draining anyway");
        }
        self.enter(Phase::Draining);
    }

    /// True from the moment shutdown begins (not accepting any more).
    pub fn is_draining(&self) -> bool {
        self.phase.load(Ordering::Relaxed) >= Phase::Closing as u8
    }

    /// True once connections are being finished (every listener closed).
    pub fn is_finishing_connections(&self) -> bool {
        self.phase.load(Ordering::Relaxed) >= Phase::Draining as u8
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }

    /// Counts a listener an accept loop is serving; pair with [`Shutdown::listener_closed`].
    pub fn listener_opened(&self) {
        self.listeners_open.fetch_add(1, Ordering::SeqCst);
    }

    pub fn listener_closed(&self) {
        self.listeners_open.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project! {
    /// Resolves once connections are to finish: what every connection polls beside hyper,
    /// each time its task wakes (every request, every database answer). Polling a
    /// `watch` receiver or a `Notified` again takes their lock to check the waker; this keeps
    /// the waker it registered and, while the task's waker is the same, only reads the phase
    /// (about 350 instructions less per /db request, BENCHMARKS.md).
    pub struct Finishing<'a> {
        shutdown: &'a Shutdown,
        #[pin]
        notified: Notified<'a>,
        // The waker `notified` holds, once it has one.
        waker: Option<Waker>,
    }
}

impl Future for Finishing<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.shutdown.is_finishing_connections() {
            return Poll::Ready(());
        }
        if this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        match this.notified.poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => {
                *this.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Resolves once shutdown has reached `phase` (at once if it already has).
pub async fn reached(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    // An error means the sender is gone, which only happens at process exit: stop too.
    let _ = rx.wait_for(|p| *p >= phase).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_waits_for_the_listeners_to_close() {
        let shutdown = std::sync::Arc::new(Shutdown::default());
        shutdown.listener_opened();
        let rx = shutdown.subscribe();
        let s = std::sync::Arc::clone(&shutdown);
        let t = std::thread::spawn(move || s.begin());
        std::thread::sleep(Duration::from_millis(50));
        assert!(shutdown.is_draining());
        assert!(!shutdown.is_finishing_connections());
        assert_eq!(*rx.borrow(), Phase::Closing);
        shutdown.listener_closed();
        t.join().unwrap();
        assert!(shutdown.is_finishing_connections());
        assert_eq!(*rx.borrow(), Phase::Draining);
    }

    /// A connection's `Finishing` resolves when draining begins, whether it was polled before
    /// (and is polled again meanwhile without registering anew) or created after.
    #[tokio::test]
    async fn finishing_resolves_when_draining_begins() {
        let shutdown = std::sync::Arc::new(Shutdown::default());
        let mut early = Box::pin(shutdown.finishing_connections());
        assert!(futures::poll!(early.as_mut()).is_pending());
        assert!(futures::poll!(early.as_mut()).is_pending(), "polled again with the same waker");
        shutdown.enter(Phase::Closing);
        assert!(futures::poll!(early.as_mut()).is_pending(), "closing is not yet draining");
        let s = std::sync::Arc::clone(&shutdown);
        let drain = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.enter(Phase::Draining);
        });
        let started = Instant::now();
        // (Bounded so that a missing wake fails the test instead of hanging it.)
        let _ = tokio::time::timeout(Duration::from_secs(10), early).await;
        // Woken by the drain itself (20 ms), not found ready by some later poll.
        assert!(started.elapsed() < Duration::from_millis(1_000), "{:?}", started.elapsed());
        drain.await.unwrap();
        let late = shutdown.finishing_connections();
        tokio::time::timeout(Duration::from_millis(100), late).await.expect("created after: at once");
    }

    #[test]
    fn a_stuck_listener_delays_draining_only_so_long() {
        let shutdown = Shutdown::default();
        shutdown.listener_opened();
        let started = Instant::now();
        shutdown.begin();
        assert!(shutdown.is_finishing_connections());
        assert!(started.elapsed() >= LISTENER_CLOSE_WAIT);
    }
}
