//! How many statements a `Db` keeps in flight on its connections at once.
//!
//! Requests that read many rows (`/queries`, `/updates`) send their statements pipelined. Deep
//! pipelines batch the traffic with PostgreSQL (fewer round trips and system calls per
//! statement on both sides), but every statement in flight holds memory: its tokio-postgres
//! future and response channel. Left unbounded, 1 000 requests of 20 statements would put
//! 20 000 in flight. A [`StatementBudget`] caps the total: at the benchmark's 64 clients every
//! request still sends its 20 statements at once, and past the cap a request sends ten at a
//! time, so no request waits on another's.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The budget's limit per connection: a request takes what is left under it, and a batch of
/// `world::BATCH` even when nothing is (so the total may pass it under load). Chosen against
/// a tighter limit by throughput, CPU per request and peak RSS (BENCHMARKS.md, "Behind the
/// defaults").
pub const STATEMENTS_PER_CONNECTION: usize = 512;

/// A shared count of statements in flight, against a limit.
#[derive(Debug)]
pub struct StatementBudget {
    in_flight: AtomicUsize,
    limit: usize,
}

/// Places for a batch of statements in the budget, given back when dropped (answered, failed,
/// or dropped with their request).
#[derive(Debug)]
pub struct Permits<'a> {
    in_flight: &'a AtomicUsize,
    count: usize,
}

impl Permits<'_> {
    /// Statements these permits let through.
    pub fn count(&self) -> usize {
        self.count
    }
}

impl Drop for Permits<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.count, Ordering::Relaxed);
    }
}

impl StatementBudget {
    /// A budget for `connections` connections.
    pub fn for_connections(connections: usize) -> Self {
        StatementBudget { in_flight: AtomicUsize::new(0), limit: STATEMENTS_PER_CONNECTION * connections.max(1) }
    }

    /// Places for up to `wanted` statements: as many as the limit leaves room for, but never
    /// fewer than `floor` (or `wanted`, if smaller), so a request under load still sends a
    /// batch at a time instead of waiting for others.
    pub fn take(&self, wanted: usize, floor: usize) -> Permits<'_> {
        let before = self.in_flight.fetch_add(wanted, Ordering::Relaxed);
        let room = self.limit.saturating_sub(before);
        let count = room.max(floor).min(wanted);
        self.in_flight.fetch_sub(wanted - count, Ordering::Relaxed);
        Permits { in_flight: &self.in_flight, count }
    }

    /// Statements in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_get_what_the_limit_leaves_but_never_less_than_the_floor() {
        let budget = StatementBudget::for_connections(1);
        let limit = budget.limit();
        let all = budget.take(20, 10);
        assert_eq!(all.count(), 20, "a quiet budget lets a whole batch through");
        let rest = budget.take(limit, 10);
        assert_eq!(rest.count(), limit - 20, "only what is left of the limit");
        assert_eq!(budget.in_flight(), limit);
        let floor = budget.take(20, 10);
        assert_eq!(floor.count(), 10, "a full budget still lets the floor through");
        assert_eq!(budget.take(3, 10).count(), 3, "the floor never exceeds what is wanted");
        assert_eq!(budget.in_flight(), limit + 10, "dropped permits (the 3 above) come back at once");
        drop((all, rest, floor));
        assert_eq!(budget.in_flight(), 0);
    }

    #[test]
    fn no_connections_still_means_a_budget() {
        assert_eq!(StatementBudget::for_connections(0).limit(), STATEMENTS_PER_CONNECTION);
    }
}
