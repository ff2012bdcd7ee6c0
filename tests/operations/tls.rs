//! `lamed serve --tls-cert --tls-key` refuses, before binding, what cannot
//! serve HTTPS, and the CLI's `--server https://...` verifies what it
//! serves (the browser test of HTTPS is `e2e/tests/tls.test.mjs`).

use crate::util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use util::run_lamed;

/// A self-signed certificate and its key for 127.0.0.1, made by openssl,
/// as a client can trust it: the address in its subjectAltName, not a CA.
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
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
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

/// `lamed experiments create` and `lamed report` with `--server
/// https://127.0.0.1:PORT --ca-cert cert.pem` work against `lamed serve
/// --tls-cert` on a self-signed certificate (an event tracked over HTTPS
/// is in the report); without `--ca-cert` the same server is refused,
/// exit 1, with rustls's reason and what to do; a `--ca-cert` file that
/// holds no certificate is named.
#[tokio::test]
async fn the_cli_reaches_https_with_the_ca_cert_only() {
    const KEY: &str = "tls-cli-key-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = util::Server::start(
        &dir.path().join("data"),
        &["--tls-cert", cert, "--tls-key", key, "--api-key", KEY],
    );
    let url = format!("https://{}", server.addr);
    assert!(server.banner.contains(&url), "{}", server.banner);
    let lamed = |args: &[&str]| run_lamed(args, Duration::from_secs(20));
    let remote = ["--namespace", "tls", "--server", &url, "--api-key", KEY];

    let create = [
        "experiments",
        "create",
        "hero",
        "--variants",
        "red,blue",
        "--goals",
        "buy",
    ];
    let (code, stdout, stderr) = lamed(&[&create[..], &remote, &["--ca-cert", cert]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("registered experiment 'hero'"), "{stdout}");
    let api = lamed::client::Api::new(&url, Some(KEY), Some(Path::new(cert)))
        .await
        .unwrap();
    api.get("/track?namespace=tls&experiment=hero&variant=red&event=participate&uuid=u1")
        .await
        .unwrap();
    let report = ["report", "hero", "--json", "--ca-cert", cert];
    let (code, stdout, stderr) = lamed(&[&report[..], &remote].concat());
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["experiment"], "hero", "{stdout}");
    let red = &json["variants"][0];
    assert_eq!(
        (&red["label"], &red["participants"]),
        (&"red".into(), &1.into()),
        "{stdout}"
    );

    let (code, stdout, stderr) = lamed(&[&["report"][..], &remote].concat());
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer")
            && stderr.contains("--ca-cert FILE")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(stdout, "");

    let (code, _, stderr) = lamed(&[&["report", "--ca-cert", key][..], &remote].concat());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
}
