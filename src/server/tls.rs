//! TLS for direct deployment (`--tls-cert`, `--tls-key`): loading a PEM certificate chain and
//! its private key into a rustls [`ServerConfig`], with every problem a start-up can meet
//! (missing, unreadable or empty file, no key, a key that is not the certificate's, an expired
//! or not yet valid certificate) named in the error.
//!
//! The configuration offers TLS 1.3 and 1.2, ALPN `h2` then `http/1.1` (HTTP/2 is served over
//! TLS whether or not `--http2` is set), and session resumption: stateless tickets (TLS 1.2
//! and 1.3) from one ticketer the workers share, so a session resumes on any worker, beside
//! rustls's in-memory session cache. The crypto provider is `ring`: `aws-lc-rs` needs cmake
//! (absent here) to build; a measurement comparing the two is still to be made.
//!
//! Workers hold the configuration through an [`ArcSwap`] so that a reload can replace it for
//! new connections while the open ones keep theirs.

use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// What the workers share: the configuration new connections are handshaken with.
pub type SharedTlsConfig = Arc<ArcSwap<ServerConfig>>;

/// ALPN protocols offered, in the server's order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Sessions rustls's in-memory cache remembers (stateful resumption, for clients that do not
/// take tickets). rustls's default; each entry is a few hundred bytes.
const SESSION_CACHE_ENTRIES: usize = 256;

/// Loads `files` into a server configuration; the error names the file and the problem.
pub fn load(files: &TlsFiles) -> Result<ServerConfig, String> {
    load_at(files, SystemTime::now())
}

fn load_at(files: &TlsFiles, now: SystemTime) -> Result<ServerConfig, String> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
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
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    // Stateless session tickets, their key rotated by rustls every few hours.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    Ok(config)
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
        let config = load(&files).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(config.ticketer.enabled(), "session tickets on");
        // rcgen's certificates are valid from 1975 on.
        let err = load_at(&files, UNIX_EPOCH + std::time::Duration::from_secs(86_400)).unwrap_err();
        assert!(err.contains("not valid before"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
