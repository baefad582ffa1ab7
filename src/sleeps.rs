//! Tokio sleeps kept for reuse by one connection: its header-read timeout and its request
//! timeout each keep one registered `Sleep` from request to request instead of building,
//! registering and cancelling a new one every time.
//!
//! A tokio `Sleep` reset to a later deadline while it is still registered costs one atomic
//! compare-exchange (the timer wheel keeps the entry at its first deadline and moves it on
//! when that comes); a new one takes the driver's lock twice, to insert it into the wheel and
//! to remove it on drop. Each connection's keep-alive loop arms both timeouts once per request
//! with ever later deadlines, which is exactly the cheap case (BENCHMARKS.md, "bareapi against
//! the bare-hyper floor").
//!
//! The slots belong to one connection, so a kept sleep is only ever reused on the runtime that
//! made it.

use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use tokio::time::{Instant, Sleep};

/// One kept sleep, or none. Lock-free: taking swaps the pointer out, putting back compares
/// and swaps it in (when two HTTP/2 streams race, the loser's sleep is dropped instead).
pub struct SleepSlot(AtomicPtr<Sleep>);

impl SleepSlot {
    pub const fn new() -> Self {
        SleepSlot(AtomicPtr::new(ptr::null_mut()))
    }

    /// A sleep until `deadline`: the kept one moved there, or a new one (registered with the
    /// timer wheel only when first polled).
    pub fn take(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        let kept = self.0.swap(ptr::null_mut(), Ordering::Acquire);
        if kept.is_null() {
            return Box::pin(tokio::time::sleep_until(deadline));
        }
        // SAFETY: a non-null pointer in the slot comes from `Box::into_raw` in `put`, and the
        // swap above made this call its only owner. The `Sleep` was pinned in that box and has
        // not moved since, so pinning it again keeps the pin guarantee.
        let mut sleep = unsafe { Pin::new_unchecked(Box::from_raw(kept)) };
        sleep.as_mut().reset(deadline);
        sleep
    }

    /// Keeps `sleep` for the next [`SleepSlot::take`]; drops it if the slot is already full.
    pub fn put(&self, sleep: Pin<Box<Sleep>>) {
        // SAFETY: the box becomes a raw pointer without moving the `Sleep` inside it; the
        // pointer is only ever turned back into a pinned box (`take`, `free`).
        let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(sleep) });
        if self.0.compare_exchange(ptr::null_mut(), raw, Ordering::Release, Ordering::Relaxed).is_err() {
            // SAFETY: `raw` was never published, so this is still its only owner.
            unsafe { free(raw) };
        }
    }
}

impl Default for SleepSlot {
    fn default() -> Self {
        SleepSlot::new()
    }
}

impl Drop for SleepSlot {
    fn drop(&mut self) {
        let kept = *self.0.get_mut();
        if !kept.is_null() {
            // SAFETY: `&mut self`: nobody else can take it.
            unsafe { free(kept) };
        }
    }
}

impl std::fmt::Debug for SleepSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.load(Ordering::Relaxed).is_null() { "SleepSlot(empty)" } else { "SleepSlot(kept)" })
    }
}

/// Drops a sleep owned through a raw pointer from `put`.
///
/// # Safety
/// `raw` comes from `Box::into_raw` of a pinned box, and the caller is its only owner.
unsafe fn free(raw: *mut Sleep) {
    // SAFETY: as the caller promises.
    drop(unsafe { Pin::new_unchecked(Box::from_raw(raw)) });
}

/// The sleeps one connection reuses.
#[derive(Debug, Default)]
pub struct ConnSleeps {
    /// hyper's header-read timeout (HTTP/1).
    pub header: SleepSlot,
    /// The service's request timeout.
    pub request: SleepSlot,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A kept sleep fires at its new deadline, not its old one, and a full slot drops the extra.
    #[tokio::test]
    async fn a_kept_sleep_follows_its_new_deadline() {
        let slot = SleepSlot::new();
        let start = Instant::now();
        let mut first = slot.take(start + 10 * MS);
        assert!(futures::poll!(first.as_mut()).is_pending(), "registered with the wheel");
        slot.put(first);
        let mut second = slot.take(start + 50 * MS);
        second.as_mut().await;
        assert!(Instant::now() >= start + 50 * MS, "fired at {:?}", Instant::now() - start);
        slot.put(second);
        // An earlier deadline than the kept one's works too (re-registered).
        let now = Instant::now();
        let mut third = slot.take(now + 5 * MS);
        third.as_mut().await;
        assert!(Instant::now() >= now + 5 * MS && Instant::now() < now + 50 * MS);
        slot.put(third);
        slot.put(Box::pin(tokio::time::sleep(MS)));
        assert!(format!("{slot:?}").contains("kept"));
    }

    /// A sleep taken back before its kept deadline has passed still waits the whole new span:
    /// the wheel's first deadline passing does not wake it early.
    #[tokio::test]
    async fn the_old_deadline_passing_does_not_fire_the_new_one() {
        let slot = SleepSlot::new();
        let start = Instant::now();
        let mut s = slot.take(start + 20 * MS);
        assert!(futures::poll!(s.as_mut()).is_pending());
        slot.put(s);
        let mut s = slot.take(start + 100 * MS);
        tokio::time::sleep(30 * MS).await;
        assert!(futures::poll!(s.as_mut()).is_pending(), "still waiting after the kept deadline passed");
        s.as_mut().await;
        assert!(Instant::now() >= start + 100 * MS);
    }
}
