//! Authentication: password hashing (argon2id, off the async workers), session tokens (32
//! random bytes, stored only as their SHA-256) and reading the bearer token of a request.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Instant;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::request::Parts;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::abuse::{self, Reason};
use crate::db::sessions::TokenHash;
use crate::error::AppError;

/// Random bytes in a session token.
pub const TOKEN_BYTES: usize = 32;

/// Password hashing off the async workers: at most `concurrency` hashes at once (one per core
/// by default: argon2id with the default parameters takes 19 MiB and most of a core for tens of
/// milliseconds, and more hashes than cores only queue while holding their memory), and at most
/// `queue` requests waiting for a slot. Past that a hash is refused at once
/// ([`AppError::HashingBusy`], 503 + `Retry-After`) rather than queued behind seconds of work.
///
/// The hashes run on threads of their own, one per slot, at a lower scheduling priority than
/// the workers (`--hash-nice`): a flood of logins then takes only the CPU that serving requests
/// leaves, instead of half of each worker's core (measured in BENCHMARKS.md, "Abuse limits
/// under load"). Under no load a hash runs at full speed all the same.
pub struct Hashing {
    permits: Arc<Semaphore>,
    /// Jobs for the hashing threads (never more than `concurrency` at once: each holds a permit).
    jobs: mpsc::Sender<Job>,
    concurrency: usize,
    queue: usize,
    /// Requests waiting for a slot now.
    waiting: AtomicUsize,
    /// Hashes running now.
    running: AtomicI64,
    /// Hashes started since start-up.
    started_total: AtomicU64,
    /// When a refusal was last logged, in seconds since `started` (one line a second at most).
    logged_at: AtomicU64,
    started: Instant,
}

/// One password hash, run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Starts `n` hashing threads at niceness `nice` that run jobs from the returned sender, and
/// end when it is dropped.
fn hashing_threads(n: usize, nice: i32) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = Arc::clone(&rx);
        let spawned = std::thread::Builder::new().name(format!("bareapi-hash-{i}")).spawn(move || {
            lower_priority(nice);
            loop {
                // The lock is held only to take a job, never while one runs.
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(poisoned) => poisoned.into_inner().recv(),
                };
                let Ok(job) = job else { return };
                // A panicking hash answers its request with a 500 (its result sender is
                // dropped) and leaves the thread serving the next.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "starting a password-hashing thread");
        }
    }
    tx
}

/// Sets the calling thread's niceness (Linux keeps it per thread); raising it needs no
/// privilege. A failure is logged and hashing goes on at normal priority.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority have no memory-safety preconditions.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), nice, "lowering the hashing thread's priority");
        }
    }
}

impl Hashing {
    /// `concurrency` hashing threads at niceness `nice` (0..=19) and a queue of `queue`.
    pub fn new(concurrency: usize, queue: usize, nice: i32) -> Arc<Hashing> {
        let concurrency = concurrency.max(1);
        Arc::new(Hashing {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs: hashing_threads(concurrency, nice),
            concurrency,
            queue,
            waiting: AtomicUsize::new(0),
            running: AtomicI64::new(0),
            started_total: AtomicU64::new(0),
            logged_at: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        })
    }

    /// Hashes that may run at once (a gauge in `/metrics`).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Hashes running now (a gauge in `/metrics`).
    pub fn running(&self) -> i64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Hashes started since start-up (a counter in `/metrics`).
    pub fn started_total(&self) -> u64 {
        self.started_total.load(Ordering::Relaxed)
    }

    /// Requests waiting for a hashing slot now (a gauge in `/metrics`).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The argon2id PHC string of `password`, with a random salt.
    pub async fn hash_password(self: &Arc<Self>, password: String) -> Result<String, AppError> {
        self.off_worker(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await?
            .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
    }

    /// Verifies `password` against `stored` (or, when there is no account, against a dummy hash,
    /// and answers false). The comparison inside argon2 is constant-time.
    pub async fn verify_password(self: &Arc<Self>, password: String, stored: Option<String>) -> Result<bool, AppError> {
        self.off_worker(move || {
            let exists = stored.is_some();
            let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
            let ok = match PasswordHash::new(&phc) {
                Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(e) => {
                    tracing::error!(error = %e, "a stored password hash does not parse");
                    false
                }
            };
            ok && exists
        })
        .await
    }

    /// A hashing slot: at once when one is free, else after waiting in the bounded queue; when
    /// the queue is full, [`AppError::HashingBusy`] at once.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, AppError> {
        let closed = || AppError::Internal("hashing semaphore closed".into());
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {}
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.refused();
            return Err(AppError::HashingBusy);
        }
        // Leaves the queue however the wait ends: a slot, or the request dropped.
        let _waiting = Waiting(&self.waiting);
        Arc::clone(&self.permits).acquire_owned().await.map_err(|_| closed())
    }

    /// Counts a refusal; logs one line a second at most.
    fn refused(&self) {
        abuse::count(Reason::HashQueueFull);
        let now = self.started.elapsed().as_secs();
        let last = self.logged_at.load(Ordering::Relaxed);
        if (last == u64::MAX || now > last)
            && self.logged_at.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                running = self.running(),
                waiting = self.waiting(),
                "password hashing queue full: login, signup and credential changes answer 503"
            );
        }
    }

    /// Runs `work` on a hashing thread in a hashing slot. The slot moves into the job: a
    /// request dropped mid-hash (its client went away) stops waiting, but the hash it started
    /// runs to its end, and so must keep its slot until then.
    async fn off_worker<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = self.slot().await?;
        let this = Arc::clone(self);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = {
                let _permit = permit;
                // Declared after the permit, so dropped before it: the gauge never counts more
                // hashes than there are permits.
                let _running = Running::start(&this);
                work()
            };
            // Sent once the slot is free and the gauge down: whoever gets the answer sees both.
            let _ = tx.send(result);
        });
        self.jobs.send(job).map_err(|_| AppError::Internal("the password-hashing threads have ended".into()))?;
        rx.await.map_err(|_| AppError::Internal("a password hash panicked".into()))
    }
}

/// One request in the hashing queue.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one hash in [`Hashing::running`] for as long as it lives, however the hash ends.
struct Running<'a>(&'a Hashing);

impl<'a> Running<'a> {
    fn start(hashing: &'a Hashing) -> Running<'a> {
        hashing.running.fetch_add(1, Ordering::Relaxed);
        hashing.started_total.fetch_add(1, Ordering::Relaxed);
        Running(hashing)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hash of a password nobody has, verified when the email is unknown so that a login takes
/// about as long whether or not the account exists.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"bareapi: no account has this password")
            .map(|h| h.to_string())
            .expect("hashing a constant password")
    })
}

/// A new session token: what the client gets, and what is stored.
pub struct NewToken {
    pub token: String,
    pub hash: TokenHash,
}

pub fn new_token() -> Result<NewToken, AppError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(format!("random token: {e}")))?;
    Ok(NewToken { token: URL_SAFE_NO_PAD.encode(bytes), hash: hash_token(&bytes) })
}

fn hash_token(bytes: &[u8]) -> TokenHash {
    Sha256::digest(bytes).into()
}

/// The stored hash of the request's `Authorization: Bearer` token. 401 without one; 401 with
/// `invalid_token` for one that cannot be ours (wrong scheme payload or length).
pub fn bearer_token_hash(parts: &Parts) -> Result<TokenHash, AppError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Err(AppError::Unauthorized { invalid_token: false });
    };
    let invalid = AppError::Unauthorized { invalid_token: true };
    let value = value.to_str().map_err(|_| AppError::Unauthorized { invalid_token: true })?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AppError::Unauthorized { invalid_token: true })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AppError::Unauthorized { invalid_token: false });
    }
    let token = token.trim();
    // 32 bytes are 43 base64url characters; anything else is not a token of ours.
    if token.len() != 43 {
        return Err(invalid);
    }
    let mut bytes = [0u8; TOKEN_BYTES + 2];
    match URL_SAFE_NO_PAD.decode_slice(token, &mut bytes) {
        Ok(TOKEN_BYTES) => Ok(hash_token(&bytes[..TOKEN_BYTES])),
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with(auth: Option<&str>) -> Parts {
        let mut b = http::Request::builder();
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_round_trip_through_the_bearer_header() {
        let t = new_token().unwrap();
        assert_eq!(t.token.len(), 43);
        let hash = bearer_token_hash(&parts_with(Some(&format!("Bearer {}", t.token)))).unwrap();
        assert_eq!(hash, t.hash);
        let hash = bearer_token_hash(&parts_with(Some(&format!("bearer  {} ", t.token)))).unwrap();
        assert_eq!(hash, t.hash);
        assert_ne!(new_token().unwrap().token, t.token);
    }

    #[test]
    fn missing_and_malformed_tokens_are_refused() {
        assert!(matches!(bearer_token_hash(&parts_with(None)), Err(AppError::Unauthorized { invalid_token: false })));
        assert!(matches!(
            bearer_token_hash(&parts_with(Some("Basic dXNlcjpwdw=="))),
            Err(AppError::Unauthorized { invalid_token: false })
        ));
        for bad in ["Bearer", "Bearer short", "Bearer ###########################################"] {
            assert!(
                matches!(
                    bearer_token_hash(&parts_with(Some(bad))),
                    Err(AppError::Unauthorized { invalid_token: true })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        futures::executor::block_on(async {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let h = Hashing::new(1, 4, 0);
                let hash = h.hash_password("correct horse".into()).await.unwrap();
                assert!(hash.starts_with("$argon2id$"));
                assert!(h.verify_password("correct horse".into(), Some(hash.clone())).await.unwrap());
                assert!(!h.verify_password("wrong horse".into(), Some(hash)).await.unwrap());
                assert!(!h.verify_password("correct horse".into(), None).await.unwrap());
                assert!(!h.verify_password("x".into(), Some("not a phc string".into())).await.unwrap());
                assert_eq!((h.running(), h.waiting(), h.started_total()), (0, 0, 5));
            });
        });
    }

    /// With every slot busy and the queue full, a hash is refused at once; a waiter that gives
    /// up leaves the queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once() {
        let h = Hashing::new(1, 1, 0);
        let hold = h.slot().await.unwrap();
        let waiter = {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.slot().await.map(drop) })
        };
        while h.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        assert!(matches!(h.hash_password("correct horse".into()).await, Err(AppError::HashingBusy)));
        assert!(started.elapsed() < std::time::Duration::from_millis(100), "refused without waiting");
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(h.waiting(), 0, "an abandoned wait leaves the queue");
        drop(hold);
        let zero_queue = Hashing::new(1, 0, 0);
        let _busy = zero_queue.slot().await.unwrap();
        assert!(matches!(zero_queue.slot().await, Err(AppError::HashingBusy)));
    }
}
