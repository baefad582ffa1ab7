//! hyper's timer for HTTP/1 connections: like hyper-util's `TokioTimer`, but a sleep joins
//! tokio's timer only when it is first polled, and then reuses the one its connection keeps
//! (`crate::sleeps`).
//!
//! hyper arms its header-read timeout before parsing every request head and drops it once the
//! head is parsed. A pipelined request's head is already in the read buffer, so its timeout is
//! never polled: here that costs nothing until a head is really awaited (an idle keep-alive
//! connection between requests, a slow client). A new tokio sleep for each awaited head was
//! registered with the timer wheel and removed again each time, and since its deadline was the
//! wheel's earliest, registering it also woke the runtime's driver (an eventfd write, then an
//! extra turn of the event loop: 2.76 parks per /db request against the floor's 2.00). The
//! connection's kept sleep is moved to each later deadline instead, without touching the wheel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::sleeps::ConnSleeps;

/// The [`hyper::rt::Timer`] of one HTTP/1 connection (each worker's builders hold one too, for
/// any connection not given its own).
#[derive(Debug, Clone, Default)]
pub struct ConnTimer(Arc<ConnSleeps>);

impl ConnTimer {
    pub fn new(sleeps: Arc<ConnSleeps>) -> Self {
        ConnTimer(sleeps)
    }
}

impl hyper::rt::Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LazySleep { deadline, sleep: None, sleeps: Arc::clone(&self.0) })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<LazySleep>() {
            Some(lazy) => lazy.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A deadline, and the connection's tokio sleep behind it once somebody waits for it; the
/// sleep goes back to the connection when this is dropped.
struct LazySleep {
    deadline: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    sleeps: Arc<ConnSleeps>,
}

impl LazySleep {
    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(sleep) = self.sleep.as_mut() {
            sleep.as_mut().reset(deadline.into());
        }
    }
}

impl Future for LazySleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let sleep = this.sleep.get_or_insert_with(|| this.sleeps.header.take(this.deadline.into()));
        sleep.as_mut().poll(cx)
    }
}

impl Drop for LazySleep {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            self.sleeps.header.put(sleep);
        }
    }
}

impl hyper::rt::Sleep for LazySleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    const MS: Duration = Duration::from_millis(1);

    /// A lazy sleep fires at its deadline once awaited, and a reset moves that deadline, whether
    /// it came before the first poll or after it.
    #[tokio::test]
    async fn lazy_sleeps_fire_at_their_deadline_and_follow_resets() {
        let timer = ConnTimer::default();
        let start = Instant::now();
        timer.sleep(40 * MS).await;
        assert_between(start.elapsed(), 40 * MS);

        let start = Instant::now();
        let mut sleep = timer.sleep(10_000 * MS);
        timer.reset(&mut sleep, start + 30 * MS);
        sleep.as_mut().await;
        assert_between(start.elapsed(), 30 * MS);

        let start = Instant::now();
        let mut sleep = timer.sleep(10_000 * MS);
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        timer.reset(&mut sleep, start + 50 * MS);
        sleep.as_mut().await;
        assert_between(start.elapsed(), 50 * MS);
        drop(sleep);

        // The next sleep reuses the one just dropped, and still waits its own whole span.
        let start = Instant::now();
        let mut sleep = timer.sleep(60 * MS);
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        drop(sleep);
        assert!(format!("{:?}", timer.0.header).contains("kept"), "dropped sleeps go back to the connection");
        timer.sleep(80 * MS).await;
        assert_between(start.elapsed(), 80 * MS);
    }

    /// Not before the deadline; after it by no more than a loaded machine's scheduling delay.
    fn assert_between(elapsed: Duration, deadline: Duration) {
        assert!(elapsed >= deadline && elapsed < deadline + 2_000 * MS, "{elapsed:?} for {deadline:?}");
    }
}
