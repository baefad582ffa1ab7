//! Abuse resistance of the users API: failed logins counted per account (by email, whether or
//! not an account has it), and logins and signups rate-limited per client address (token
//! buckets). A refusal is a 429 with `Retry-After`, decided before any password work.
//!
//! State lives in quick_cache caches of a fixed capacity (`--rate-limit-keys` each): a flood of
//! distinct emails or addresses evicts old entries instead of growing memory, and quick_cache's
//! S3-FIFO eviction keeps keys seen more than once (an account under attack, a busy address)
//! ahead of a flood of one-off keys. Entries expire by time without a sweeper: each holds the
//! instants it was last touched, and one whose window or bucket has run out reads as new.
//! Every refusal is counted in `/metrics` by reason, and logged once per key per window.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use sha2::{Digest, Sha256};

use crate::config::{AbuseSettings, RateSettings};
use crate::error::AppError;

/// Why a request was refused, for the `bareapi_throttled_requests_total` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Too many failed logins for one email.
    LoginFailures,
    /// Too many logins from one client address.
    LoginRate,
    /// Too many signups from one client address.
    SignupRate,
    /// The password-hashing queue is full (503).
    HashQueueFull,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Reason::LoginFailures, Reason::LoginRate, Reason::SignupRate, Reason::HashQueueFull];

    pub fn label(self) -> &'static str {
        match self {
            Reason::LoginFailures => "login_failures",
            Reason::LoginRate => "login_rate",
            Reason::SignupRate => "signup_rate",
            Reason::HashQueueFull => "hash_queue_full",
        }
    }
}

static THROTTLED: [AtomicU64; 4] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one refused request.
pub fn count(reason: Reason) {
    THROTTLED[reason as usize].fetch_add(1, Ordering::Relaxed);
}

/// Requests refused for `reason` since start.
pub fn throttled(reason: Reason) -> u64 {
    THROTTLED[reason as usize].load(Ordering::Relaxed)
}

/// Whole seconds until `d` has passed, at least 1 (a `Retry-After` value).
fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.as_secs() == 0))
}

/// The key of an email: the first 16 bytes of the SHA-256 of its lower-cased form, so the
/// cache holds no address and every spelling of one email is one key.
pub type EmailKey = [u8; 16];

pub fn email_key(email: &str) -> EmailKey {
    let digest = Sha256::digest(email.to_lowercase().as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The key of a client address: an IPv4 address, or the /64 of an IPv6 one (one subscriber
/// usually has a whole /64, so a per-address limit on IPv6 would limit nothing).
pub fn address_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64 << 64) | 1,
    }
}

/// Failed logins of one email within its window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
    logged: bool,
}

/// Failed logins per email: past `max` within `window` (counted from the first of them), logins
/// for that email are refused until the window ends; a successful login clears the count.
pub struct FailedLogins {
    cache: Cache<EmailKey, Failures>,
    max: u32,
    window: Duration,
}

impl FailedLogins {
    pub fn new(capacity: usize, max: u32, window: Duration) -> Self {
        FailedLogins { cache: Cache::new(capacity), max, window }
    }

    /// Counts a login attempt for `key` before its password is checked (so that concurrent
    /// attempts cannot pass the limit together), or refuses it when `max` attempts failed in the
    /// window. A success then calls [`FailedLogins::succeeded`], an attempt that never checked
    /// the password [`FailedLogins::not_attempted`].
    pub fn attempt(&self, key: &EmailKey, now: Instant) -> Result<(), AppError> {
        let (max, window) = (self.max, self.window);
        let outcome = self.cache.entry(key, None, |_, f| {
            if now.saturating_duration_since(f.since) >= window {
                *f = Failures { since: now, count: 1, logged: false };
                return EntryAction::Retain(None);
            }
            if f.count >= max {
                let first = !f.logged;
                f.logged = true;
                return EntryAction::Retain(Some((window - now.saturating_duration_since(f.since), first)));
            }
            f.count += 1;
            EntryAction::Retain(None)
        });
        let refused = match outcome {
            EntryResult::Retained(refused) => refused,
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                let _ = guard.insert(Failures { since: now, count: 1, logged: false });
                None
            }
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        match refused {
            None => Ok(()),
            Some((left, first)) => {
                count(Reason::LoginFailures);
                if first {
                    tracing::warn!(
                        account = %hex(key),
                        failures = max,
                        retry_after_s = retry_secs(left),
                        "login throttled: too many failed logins for one email"
                    );
                }
                Err(AppError::TooManyRequests {
                    retry_after: retry_secs(left),
                    detail: "Too many failed logins for this account; retry later.",
                })
            }
        }
    }

    /// The password was right: the count starts again.
    pub fn succeeded(&self, key: &EmailKey) {
        self.cache.remove(key);
    }

    /// The attempt counted by [`FailedLogins::attempt`] never checked a password (the server
    /// was too busy): it does not count.
    pub fn not_attempted(&self, key: &EmailKey) {
        self.cache.entry(key, None, |_, f| {
            f.count = f.count.saturating_sub(1);
            EntryAction::Retain(())
        });
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// One client address's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When its last refusal was logged.
    logged: Option<Instant>,
}

/// Token buckets per client address: `burst` requests at once, refilled at `per_minute`.
pub struct AddressLimiter {
    cache: Cache<u128, Bucket>,
    burst: f64,
    /// Tokens per second.
    rate: f64,
    reason: Reason,
}

impl AddressLimiter {
    pub fn new(capacity: usize, settings: RateSettings, reason: Reason) -> Self {
        AddressLimiter {
            cache: Cache::new(capacity),
            burst: f64::from(settings.burst),
            rate: f64::from(settings.per_minute) / 60.0,
            reason,
        }
    }

    /// Takes a token for `ip`, or refuses with the time until the next one.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), AppError> {
        let key = address_key(ip);
        let (burst, rate) = (self.burst, self.rate);
        // A full refill: also how long one refusal is logged for (its window).
        let refill = Duration::from_secs_f64(burst / rate);
        let outcome = self.cache.entry(&key, None, |_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(burst);
            b.at = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return EntryAction::Retain(None);
            }
            let first = b.logged.is_none_or(|at| now.saturating_duration_since(at) >= refill);
            if first {
                b.logged = Some(now);
            }
            EntryAction::Retain(Some((Duration::from_secs_f64((1.0 - b.tokens) / rate), first)))
        });
        let refused = match outcome {
            EntryResult::Retained(refused) => refused,
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                let _ = guard.insert(Bucket { tokens: burst - 1.0, at: now, logged: None });
                None
            }
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        match refused {
            None => Ok(()),
            Some((wait, first)) => {
                count(self.reason);
                if first {
                    tracing::warn!(
                        client = %ip,
                        limit = self.reason.label(),
                        retry_after_s = retry_secs(wait),
                        "throttled: too many requests from one client address"
                    );
                }
                let detail = match self.reason {
                    Reason::SignupRate => "Too many signups from this address; retry later.",
                    _ => "Too many logins from this address; retry later.",
                };
                Err(AppError::TooManyRequests { retry_after: retry_secs(wait), detail })
            }
        }
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

fn hex(key: &EmailKey) -> String {
    key[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The limiters of the process, shared by every worker.
pub struct Limits {
    pub failed_logins: FailedLogins,
    pub logins: AddressLimiter,
    pub signups: AddressLimiter,
    refusal_delay: Duration,
}

impl Limits {
    pub fn new(s: &AbuseSettings) -> Self {
        Limits {
            failed_logins: FailedLogins::new(s.limiter_keys, s.login_failures_max, s.login_failures_window),
            logins: AddressLimiter::new(s.limiter_keys, s.login_rate, Reason::LoginRate),
            signups: AddressLimiter::new(s.limiter_keys, s.signup_rate, Reason::SignupRate),
            refusal_delay: s.refusal_delay,
        }
    }

    /// Holds an abuse refusal (429, or 503 for a full hashing queue) for `--refusal-delay-ms`
    /// before it is answered; any other outcome passes at once. A client retrying at once then
    /// makes one attempt per connection per delay, so a flood of refused attempts costs the
    /// server a timer each instead of as many answers a second as it can write.
    pub async fn hold_refusal<T>(&self, outcome: Result<T, AppError>) -> Result<T, AppError> {
        if matches!(outcome, Err(AppError::TooManyRequests { .. } | AppError::HashingBusy))
            && !self.refusal_delay.is_zero()
        {
            tokio::time::sleep(self.refusal_delay).await;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(r: Result<(), AppError>) -> u64 {
        match r {
            Err(AppError::TooManyRequests { retry_after, .. }) => retry_after,
            other => panic!("expected 429, got {other:?}"),
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_secs(Duration::from_secs(900)), 900);
    }

    #[test]
    fn failed_logins_refuse_past_the_limit_until_the_window_ends_or_a_success() {
        let f = FailedLogins::new(100, 3, Duration::from_secs(60));
        let t0 = Instant::now();
        let key = email_key("Someone@Example.com");
        assert_eq!(key, email_key("someone@example.com"), "one key per email whatever its case");
        for _ in 0..3 {
            f.attempt(&key, t0).unwrap();
        }
        assert_eq!(retry_after(f.attempt(&key, t0 + Duration::from_secs(10))), 50);
        // Another email is not affected.
        f.attempt(&email_key("other@example.com"), t0).unwrap();
        // The window ends: a new one starts.
        f.attempt(&key, t0 + Duration::from_secs(60)).unwrap();
        f.attempt(&key, t0 + Duration::from_secs(61)).unwrap();
        f.attempt(&key, t0 + Duration::from_secs(61)).unwrap();
        assert!(f.attempt(&key, t0 + Duration::from_secs(62)).is_err());
        // A success clears it.
        f.succeeded(&key);
        f.attempt(&key, t0 + Duration::from_secs(62)).unwrap();
        // An attempt that never checked a password is given back.
        f.attempt(&key, t0 + Duration::from_secs(62)).unwrap();
        f.not_attempted(&key);
        // One counted so far: two more are allowed, the next refused.
        f.attempt(&key, t0 + Duration::from_secs(62)).unwrap();
        f.attempt(&key, t0 + Duration::from_secs(62)).unwrap();
        assert!(f.attempt(&key, t0 + Duration::from_secs(62)).is_err());
    }

    #[test]
    fn buckets_allow_the_burst_then_the_rate() {
        let l = AddressLimiter::new(100, RateSettings { per_minute: 60, burst: 3 }, Reason::LoginRate);
        let t0 = Instant::now();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..3 {
            l.check(ip, t0).unwrap();
        }
        assert_eq!(retry_after(l.check(ip, t0)), 1);
        assert!(l.check("203.0.113.10".parse().unwrap(), t0).is_ok(), "another address has its own bucket");
        // One token a second.
        l.check(ip, t0 + Duration::from_millis(1000)).unwrap();
        assert!(l.check(ip, t0 + Duration::from_millis(1100)).is_err());
        // Idle long enough: the whole burst again, never more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            l.check(ip, later).unwrap();
        }
        assert!(l.check(ip, later).is_err());
        // A slow rate tells a long wait.
        let slow = AddressLimiter::new(100, RateSettings { per_minute: 2, burst: 1 }, Reason::SignupRate);
        slow.check(ip, t0).unwrap();
        assert_eq!(retry_after(slow.check(ip, t0)), 30);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let l = AddressLimiter::new(100, RateSettings { per_minute: 1, burst: 1 }, Reason::SignupRate);
        let t0 = Instant::now();
        l.check("2001:db8:1:2::1".parse().unwrap(), t0).unwrap();
        assert!(l.check("2001:db8:1:2:ffff::9".parse().unwrap(), t0).is_err());
        assert!(l.check("2001:db8:1:3::1".parse().unwrap(), t0).is_ok());
        // An IPv4-mapped address is the IPv4 client, and no IPv6 /64 collides with an IPv4 key.
        l.check("198.51.100.1".parse().unwrap(), t0).unwrap();
        assert!(l.check("::ffff:198.51.100.1".parse().unwrap(), t0).is_err());
        assert!(l.check("::".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_capacity() {
        let capacity = 1_000;
        let f = FailedLogins::new(capacity, 5, Duration::from_secs(60));
        let l = AddressLimiter::new(capacity, RateSettings { per_minute: 10, burst: 5 }, Reason::LoginRate);
        let t0 = Instant::now();
        for i in 0..200_000u32 {
            f.attempt(&email_key(&format!("user{i}@example.com")), t0).unwrap();
            l.check(IpAddr::from(i.to_be_bytes()), t0).unwrap();
            assert!(f.len() <= capacity && l.len() <= capacity, "at {i}: {} and {}", f.len(), l.len());
        }
        assert!(f.len() > capacity / 2, "the cache is used ({})", f.len());
        assert!(l.len() > capacity / 2, "the cache is used ({})", l.len());
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let before = throttled(Reason::SignupRate);
        let l = AddressLimiter::new(10, RateSettings { per_minute: 1, burst: 1 }, Reason::SignupRate);
        let ip: IpAddr = "192.0.2.200".parse().unwrap();
        let t0 = Instant::now();
        l.check(ip, t0).unwrap();
        assert!(l.check(ip, t0).is_err());
        assert!(l.check(ip, t0).is_err());
        assert!(throttled(Reason::SignupRate) >= before + 2);
    }
}
