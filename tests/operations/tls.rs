//! `lamed serve --tls-cert --tls-key` refuses, before binding, what cannot
//! serve HTTPS (the browser test of HTTPS is `e2e/tests/tls.test.mjs`).

use crate::util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use util::run_lamed;

/// A self-signed certificate and its key for 127.0.0.1, made by openssl.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success());
    (cert, key)
}

/// Runs `lamed serve` with `tls` arguments; it must exit 1 at once.
fn refused(dir: &Path, tls: &[&Path]) -> String {
    let data = dir.join("data");
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir"];
    args.push(data.to_str().unwrap());
    for (flag, path) in ["--tls-cert", "--tls-key"].iter().zip(tls) {
        args.extend([*flag, path.to_str().unwrap()]);
    }
    let (code, stdout, stderr) = run_lamed(&args, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        !stdout.contains("listening"),
        "bound before refusing: {stdout}"
    );
    stderr
}

/// A certificate without a key, and a key that belongs to another
/// certificate, each stop the start with exit 1 and a message naming it.
#[test]
fn a_certificate_that_cannot_serve_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = certificate(dir.path(), "one");
    let (_, other_key) = certificate(dir.path(), "two");
    let stderr = refused(dir.path(), &[&cert]);
    assert!(
        stderr.contains("tls_cert and tls_key go together"),
        "{stderr}"
    );
    let stderr = refused(dir.path(), &[&cert, &other_key]);
    assert!(
        stderr.contains("does not go with the certificate"),
        "{stderr}"
    );
    let stderr = refused(dir.path(), &[&cert, &dir.path().join("missing.key")]);
    assert!(
        stderr.contains("cannot read the TLS private key"),
        "{stderr}"
    );
}
