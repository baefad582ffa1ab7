//! hyper's timer for HTTP/1 connections: like hyper-util's `TokioTimer`, but a sleep joins
//! tokio's timer only when it is first polled.
//!
//! hyper arms its header-read timeout before parsing every request head and drops it once the
//! head is parsed. A pipelined request's head is already in the read buffer, so its timeout is
//! never polled; `TokioTimer` would still build a tokio `Sleep` for it (a runtime-handle lookup
//! and reference count) and tear it down again. Here that costs nothing until a head is really
//! awaited (an idle keep-alive connection, a slow client), and then exactly what it did before.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

/// The [`hyper::rt::Timer`] of the HTTP/1 connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct LazyTimer;

impl hyper::rt::Timer for LazyTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LazySleep { deadline, sleep: None })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<LazySleep>() {
            Some(lazy) => lazy.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

pin_project! {
    /// A deadline, and the tokio sleep behind it once somebody waits for it.
    struct LazySleep {
        deadline: Instant,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl LazySleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let mut this = self.project();
        *this.deadline = deadline;
        if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            sleep.reset(deadline.into());
        }
    }
}

impl Future for LazySleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until((*this.deadline).into())));
        }
        this.sleep.as_pin_mut().expect("set just above").poll(cx)
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
        let timer = LazyTimer;
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
    }

    /// Not before the deadline; after it by no more than a loaded machine's scheduling delay.
    fn assert_between(elapsed: Duration, deadline: Duration) {
        assert!(elapsed >= deadline && elapsed < deadline + 2_000 * MS, "{elapsed:?} for {deadline:?}");
    }
}
