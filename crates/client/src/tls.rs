//! HTTPS for lamed's clients (`lamed report --server`, `lamed experiments
//! --server`, the alerts' webhooks): one place that makes a TLS client
//! verifying certificates against the system's trusted roots, plus, when
//! asked, a private CA or a self-signed certificate. rustls with its
//! `ring` provider, as `lamed serve --tls-cert` uses.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// A TLS client trusting the system's roots only, made once per process
/// (reading the system's store takes milliseconds; webhooks connect often).
///
/// # Errors
///
/// When the system has no trusted root certificate (a minimal container
/// without `ca-certificates`).
pub fn system_connector() -> Result<TlsConnector, String> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| connector(None).map_err(|e| format!("{e:#}")))
        .clone()
}

/// A TLS client trusting the system's roots and, with `ca_cert`, every
/// certificate of that PEM file too: a private CA, or a self-signed
/// server certificate (which must then name the host in its
/// subjectAltName and not be a CA itself, as rustls requires of a
/// server's certificate).
///
/// # Errors
///
/// When `ca_cert` cannot be read or holds no PEM certificate, or when no
/// root at all is trusted.
pub fn connector(ca_cert: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let shown = path.display();
        let pem = std::fs::read(path).with_context(|| format!("cannot read --ca-cert {shown}"))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--ca-cert {shown} is not PEM"))?;
        if certs.is_empty() {
            bail!("--ca-cert {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("--ca-cert {shown}: a certificate that does not parse"))?;
        }
    }
    if roots.is_empty() {
        bail!("no trusted root certificate found on this system (install ca-certificates, or pass --ca-cert FILE)");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("tls")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name a server's certificate must carry: a DNS name or an IP
/// address (`[::1]`'s brackets removed).
///
/// # Errors
///
/// When `host` is neither.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).with_context(|| format!("invalid host name {host}"))
}

/// Why a TLS handshake failed, in words (`io` is tokio-rustls's error),
/// with what to do when the certificate is not trusted.
pub fn handshake_error(io: &std::io::Error) -> String {
    let certificate = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(why) => Some(why),
            _ => None,
        });
    let hint = match certificate {
        Some(rustls::CertificateError::UnknownIssuer) => {
            " (signed by a private CA, or self-signed? trust it with --ca-cert FILE)"
        }
        // rustls-webpki's refusal of a CA certificate as the server's own.
        Some(why) if format!("{why:?}").contains("CaUsedAsEndEntity") => {
            " (the server's certificate is a CA's: a self-signed one needs basicConstraints CA:FALSE)"
        }
        _ => "",
    };
    format!("TLS handshake: {io}{hint}")
}
