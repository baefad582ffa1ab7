//! TLS for direct deployment (`--tls-cert`, `--tls-key`): loading a PEM certificate chain and
//! its private key into a rustls [`ServerConfig`], with every problem a start-up can meet
//! (missing, unreadable or empty file, no key, a key that is not the certificate's, an expired
//! or not yet valid certificate) named in the error.
//!
//! The configuration offers TLS 1.3 and 1.2, ALPN `h2` then `http/1.1` (HTTP/2 is served over
//! TLS whether or not `--http2` is set), and session resumption: stateless tickets (TLS 1.2
//! and 1.3) from one ticketer the workers share, so a session resumes on any worker, beside
//! rustls's in-memory session cache. The crypto provider is `ring`, or `aws-lc-rs` when built
//! with the `aws-lc` feature ([`PROVIDER`]), for loadtest/tls.sh to compare the two.
//!
//! Workers hold the configuration through an [`ArcSwap`] so that a reload can replace it for
//! new connections while the open ones keep theirs. [`Reloader`] does that on SIGHUP: it
//! reads and checks the files as start-up does and swaps the new configuration in, which every
//! worker sees at its next handshake; files that fail a check leave the old one serving, and
//! the reason is logged. The ticket key and the session cache carry over a reload, so clients
//! keep resuming their sessions.

use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// The crypto provider's name, as logged at start.
#[cfg(not(feature = "aws-lc"))]
pub const PROVIDER: &str = "ring";
#[cfg(feature = "aws-lc")]
pub const PROVIDER: &str = "aws-lc-rs";
#[cfg(feature = "aws-lc")]
use rustls::crypto::aws_lc_rs as provider;
#[cfg(not(feature = "aws-lc"))]
use rustls::crypto::ring as provider;

/// What the workers share: the configuration new connections are handshaken with.
pub type SharedTlsConfig = Arc<ArcSwap<ServerConfig>>;

/// ALPN protocols offered, in the server's order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Sessions rustls's in-memory cache remembers (stateful resumption, for clients that do not
/// take tickets). rustls's default; each entry is a few hundred bytes.
const SESSION_CACHE_ENTRIES: usize = 256;

/// What session resumption keeps across reloads: the ticket key (rotated by rustls every few
/// hours) and the in-memory session cache.
#[derive(Clone)]
pub struct Resumption {
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    cache: Arc<dyn rustls::server::StoresServerSessions>,
}

impl Resumption {
    pub fn new() -> Result<Resumption, String> {
        Ok(Resumption {
            ticketer: provider::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?,
            cache: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
        })
    }
}

/// Loads `files` into a server configuration resuming sessions with `resumption`; the error
/// names the file and the problem.
pub fn load(files: &TlsFiles, resumption: &Resumption) -> Result<ServerConfig, String> {
    load_at(files, resumption, SystemTime::now())
}

fn load_at(files: &TlsFiles, resumption: &Resumption, now: SystemTime) -> Result<ServerConfig, String> {
    let cert_pem = read(&files.cert, "certificate")?;
    let key_pem = read(&files.key, "private key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS certificate {}: not valid PEM: {e}", files.cert.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("TLS certificate {}: no PEM certificate in it", files.cert.display()));
    };
    check_validity(leaf, now).map_err(|e| format!("TLS certificate {}: {e}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            format!("TLS private key {}: no PEM private key in it", files.key.display())
        }
        e => format!("TLS private key {}: not a valid PEM private key: {e}", files.key.display()),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "TLS private key {} does not match the certificate in {}",
                files.key.display(),
                files.cert.display()
            ),
            e => format!("TLS certificate {} with key {}: {e}", files.cert.display(), files.key.display()),
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.session_storage = Arc::clone(&resumption.cache);
    // Stateless session tickets, their key rotated by rustls every few hours.
    config.ticketer = Arc::clone(&resumption.ticketer);
    Ok(config)
}

/// Reloads the certificate and key on SIGHUP (see the module doc), counting the outcomes.
pub struct Reloader {
    files: TlsFiles,
    resumption: Resumption,
    config: SharedTlsConfig,
    /// Reloads done, and refused (the old configuration kept).
    counts: Arc<ReloadCounts>,
}

/// Reloads by outcome, for `bareapi_tls_reloads_total{result}`.
#[derive(Default)]
pub struct ReloadCounts {
    ok: AtomicU64,
    error: AtomicU64,
}

impl ReloadCounts {
    /// Every series: the `result` label's value and its count.
    pub fn series(&self) -> Vec<(&'static str, u64)> {
        vec![("ok", self.ok.load(Ordering::Relaxed)), ("error", self.error.load(Ordering::Relaxed))]
    }
}

impl Reloader {
    /// Loads `files` for the first time (a start-up error names the file and the problem).
    pub fn start(files: TlsFiles) -> Result<Reloader, String> {
        let resumption = Resumption::new()?;
        let config = load(&files, &resumption)?;
        Ok(Reloader { files, resumption, config: Arc::new(ArcSwap::from_pointee(config)), counts: Arc::default() })
    }

    /// The configuration the workers handshake with.
    pub fn config(&self) -> &SharedTlsConfig {
        &self.config
    }

    pub fn counts(&self) -> Arc<ReloadCounts> {
        Arc::clone(&self.counts)
    }

    /// Reads the files again: swaps the new configuration in, or keeps the old one and says why.
    pub fn reload(&self) {
        match load(&self.files, &self.resumption) {
            Ok(config) => {
                self.config.store(Arc::new(config));
                self.counts.ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.files.cert.display(), key = %self.files.key.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                self.counts.error.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = e.as_str(), "TLS certificate not reloaded; still serving the previous one");
            }
        }
    }

    /// Reloads on every signal `hangups` receives; never returns.
    pub async fn on_sighup(&self, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            self.reload();
        }
        // The signal driver is gone: only at process exit.
        std::future::pending().await
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("TLS {what} {}: cannot read it: {e}", path.display()))
}

/// Refuses a certificate outside its validity period: rustls serves one anyway, and every
/// client would then refuse it.
fn check_validity(leaf: &CertificateDer<'_>, now: SystemTime) -> Result<(), String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let validity = cert.validity();
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now > validity.not_after.timestamp() {
        return Err(format!("expired on {}", validity.not_after));
    }
    if now < validity.not_before.timestamp() {
        return Err(format!("not valid before {}", validity.not_before));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// What the integration tests cannot reach through the binary: a certificate not valid
    /// yet (start-up reads the real clock).
    #[test]
    fn validity_is_checked_against_the_clock() {
        let dir = std::env::temp_dir().join(format!("bareapi-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let files =
            TlsFiles { cert: write(&dir, "c.pem", &cert.pem()), key: write(&dir, "k.pem", &key.serialize_pem()) };
        let resumption = Resumption::new().unwrap();
        let config = load(&files, &resumption).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(config.ticketer.enabled(), "session tickets on");
        // rcgen's certificates are valid from 1975 on.
        let err = load_at(&files, &resumption, UNIX_EPOCH + std::time::Duration::from_secs(86_400)).unwrap_err();
        assert!(err.contains("not valid before"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
