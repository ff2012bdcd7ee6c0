//! Built-in HTTPS for `lamed serve`: rustls (through tokio-rustls) with a
//! certificate that is reloaded, without dropping a connection, when its
//! files change or on SIGHUP, so that certbot's renewals just work.
//!
//! Why this shape: each handshake runs in its connection's task (see
//! [`crate::connections`], which caps the handshakes in progress and times
//! them out), so plain and TLS serving share one accept loop and its
//! graceful shutdown, and a slow handshake never holds up the next accept.
//! The certificate is chosen per handshake by [`ReloadingCert`]: a reload
//! swaps it for new handshakes, while open connections keep the session
//! they have.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are checked for a change.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

pub use lamed_config::config::TlsFiles;

/// The certificate of new handshakes; swapped by a reload.
#[derive(Debug)]
struct ReloadingCert {
    /// std RwLock: held only to clone or replace the `Arc`, never across
    /// an `.await`.
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().expect("certificate lock poisoned"),
        ))
    }
}

/// A loaded certificate and what reloads it.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<ReloadingCert>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate and key, checking that they belong together.
    ///
    /// # Errors
    ///
    /// When a file cannot be read, holds no certificate or key, or the key
    /// is not the certificate's.
    pub fn load(files: TlsFiles) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_certified_key(&files, &provider)?;
        let resolver = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(key)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files,
            provider,
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Starts watching the certificate's files (every [`POLL_EVERY`], and
    /// on SIGHUP), and hands over what handshakes.
    ///
    /// # Errors
    ///
    /// When SIGHUP cannot be listened for.
    pub fn start(self) -> anyhow::Result<Serving> {
        let reloads = self.watch()?;
        Ok(Serving {
            acceptor: self.acceptor,
            reloads,
        })
    }

    /// Starts the task that reloads the certificate when its files change
    /// or on SIGHUP. A certificate that does not load is logged, and the
    /// one in use kept.
    fn watch(&self) -> anyhow::Result<JoinHandle<()>> {
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let (files, provider, resolver) = (
            self.files.clone(),
            Arc::clone(&self.provider),
            Arc::clone(&self.resolver),
        );
        Ok(tokio::spawn(async move {
            let mut seen = stamp(&files);
            let mut poll = tokio::time::interval(POLL_EVERY);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let asked = tokio::select! {
                    _ = poll.tick() => false,
                    _ = hangup.recv() => true,
                };
                #[cfg(not(unix))]
                let asked = {
                    poll.tick().await;
                    false
                };
                let now = stamp(&files);
                if !asked && now == seen {
                    continue;
                }
                // A file written between two polls is read again at the
                // next change (its size or time changes when it is done).
                seen = now;
                match load_certified_key(&files, &provider) {
                    Ok(key) => {
                        *resolver.current.write().expect("certificate lock poisoned") =
                            Arc::new(key);
                        tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                    }
                    Err(err) => tracing::error!(
                        cause = format!("{err:#}"),
                        "the new TLS certificate does not load; still serving the previous one"
                    ),
                }
            }
        }))
    }
}

/// What handshakes TLS connections, while the certificate is watched.
pub struct Serving {
    /// Handshakes with the current certificate.
    pub acceptor: TlsAcceptor,
    /// The reloading task, stopped when serving ends.
    reloads: JoinHandle<()>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").finish_non_exhaustive()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.reloads.abort();
    }
}

/// Reads the certificate chain and key, and checks they belong together.
fn load_certified_key(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert_pem = read(&files.cert, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read the certificate {}", files.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", files.cert.display());
    }
    let key_pem = read(&files.key, "private key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("no private key in {}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the key {} does not go with the certificate {}",
            files.key.display(),
            files.cert.display()
        )
    })
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the TLS {what} {}", path.display()))
}

/// What says a file changed: its modification time and size (following
/// symbolic links, as certbot's `live/` files are), or nothing if missing.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(files: &TlsFiles) -> [Stamp; 2] {
    [&files.cert, &files.key].map(|path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file, a file without PEM and a key of another certificate
    /// are each refused, naming the file.
    #[test]
    fn bad_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let err = Tls::load(files.clone()).expect_err("missing");
        assert!(
            format!("{err:#}").contains("cannot read the TLS certificate"),
            "{err:#}"
        );
        std::fs::write(&files.cert, "not pem").unwrap();
        std::fs::write(&files.key, "not pem").unwrap();
        let err = Tls::load(files.clone()).expect_err("no pem");
        assert!(format!("{err:#}").contains("no certificate in"), "{err:#}");
    }
}
