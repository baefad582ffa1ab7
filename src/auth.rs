//! Authentication: password hashing (argon2id, off the async workers), session tokens (32
//! random bytes, stored only as their SHA-256) and reading the bearer token of a request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::request::Parts;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::db::sessions::TokenHash;
use crate::error::AppError;

/// Random bytes in a session token.
pub const TOKEN_BYTES: usize = 32;

/// Hashes that may run at once: one per core. argon2id with the default parameters takes
/// 19 MiB and most of a core for tens of milliseconds; more hashes than cores only queue in the
/// blocking pool while holding their memory, so requests wait for a permit instead.
pub fn hash_permits() -> usize {
    static PERMITS: OnceLock<usize> = OnceLock::new();
    *PERMITS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn hashing_permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(hash_permits()))
}

/// Hashes running now, process-wide (a gauge in `/metrics`).
static HASHES_RUNNING: AtomicI64 = AtomicI64::new(0);

pub fn hashes_running() -> i64 {
    HASHES_RUNNING.load(Ordering::Relaxed)
}

/// Counts one hash in [`HASHES_RUNNING`] for as long as it lives, however the hash ends.
struct Running;

impl Running {
    fn start() -> Running {
        HASHES_RUNNING.fetch_add(1, Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        HASHES_RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `work` on the blocking pool, at most [`hash_permits`] at a time. The permit moves into
/// the blocking closure: a request dropped mid-hash (its client went away) stops waiting, but
/// the hash it started runs to its end, and so must keep its permit until then.
async fn off_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let permit =
        hashing_permits().acquire().await.map_err(|_| AppError::Internal("hashing semaphore closed".into()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // Declared after the permit, so dropped before it: the gauge never counts more hashes
        // than there are permits.
        let _running = Running::start();
        work()
    })
    .await
    .map_err(|e| AppError::Internal(format!("hashing task: {e}")))
}

/// The argon2id PHC string of `password`, with a random salt.
pub async fn hash_password(password: String) -> Result<String, AppError> {
    off_worker(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await?
        .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
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

/// Verifies `password` against `stored` (or, when there is no account, against a dummy hash,
/// and answers false). The comparison inside argon2 is constant-time.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, AppError> {
    off_worker(move || {
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
                let hash = hash_password("correct horse".into()).await.unwrap();
                assert!(hash.starts_with("$argon2id$"));
                assert!(verify_password("correct horse".into(), Some(hash.clone())).await.unwrap());
                assert!(!verify_password("wrong horse".into(), Some(hash)).await.unwrap());
                assert!(!verify_password("correct horse".into(), None).await.unwrap());
                assert!(!verify_password("x".into(), Some("not a phc string".into())).await.unwrap());
            });
        });
    }
}
