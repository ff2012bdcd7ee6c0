//! The systemd unit (`packaging/lamed.service`): `systemd-analyze verify`
//! accepts it, its sandbox scores as exposed as little as `systemd-analyze
//! security` allows for a network server, its variables are settings, and
//! `lamed serve` runs with the key file the unit hands it.

use crate::util;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the unit says the binary is installed; the checks point it at
/// the binary under test (verify refuses an ExecStart that does not exist).
const INSTALLED: &str = "/usr/local/bin/lamed";

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/lamed.service");
    std::fs::read_to_string(path).expect("packaging/lamed.service readable")
}

/// The `systemd-analyze` to use, or `None` (with the reason printed) on a
/// machine without systemd's tools.
fn systemd_analyze() -> Option<PathBuf> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: no systemd-analyze on this machine (install Debian's systemd); \
             packaging/lamed.service was not verified"
        );
    }
    found
}

/// The unit, with ExecStart on the binary under test, in a directory of
/// its own.
fn unit_under_test(dir: &Path) -> PathBuf {
    let text = unit_text();
    assert!(
        text.contains(&format!("ExecStart={INSTALLED} serve")),
        "the unit starts {INSTALLED}"
    );
    let path = dir.join("lamed.service");
    std::fs::write(&path, text.replace(INSTALLED, util::lamed_bin())).unwrap();
    path
}

/// `systemd-analyze verify` passes with nothing to say (an unknown or
/// misspelt setting is only a warning there, so the output must be empty).
#[test]
fn unit_verifies() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    // --man=no: the Documentation= page is not installed on a build machine.
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");
}

/// `systemd-analyze security` (systemd 250 and later, offline) rates the
/// sandbox at most 2.0 of 10 ("OK"; a unit without sandboxing is 9.6).
#[test]
fn unit_sandbox_is_tight() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let version = Command::new(&analyze)
        .arg("--version")
        .output()
        .expect("run systemd-analyze --version");
    let version: u32 = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if version < 250 {
        eprintln!("SKIPPED: systemd {version} has no offline `systemd-analyze security`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let out = Command::new(&analyze)
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Overall exposure level"), "{said}");
}

/// Every `LAMED_*` variable the unit sets is a setting's variable.
#[test]
fn unit_variables_are_settings() {
    let known: Vec<String> = lamed::settings::infos()
        .into_iter()
        .map(|info| info.env)
        .collect();
    let set: Vec<String> = unit_text()
        .lines()
        .filter_map(|line| line.strip_prefix("Environment="))
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    assert!(set.contains(&"LAMED_API_KEY_FILE".to_owned()), "{set:?}");
    for name in &set {
        assert!(known.contains(name), "{name} is not a setting: {known:?}");
    }
}

/// `lamed serve --api-key-file` (the unit's LAMED_API_KEY_FILE) serves
/// with the file's key and says where it came from, never the key.
#[tokio::test]
async fn serve_takes_the_key_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api_key");
    std::fs::write(&key_file, "credential-key-0123456789\n").unwrap();
    let data = dir.path().join("data");
    let server = util::Server::start(&data, &["--api-key-file", key_file.to_str().unwrap()]);
    assert!(
        server.banner.contains(&format!(
            "API key:         read from {}",
            key_file.display()
        )),
        "{}",
        server.banner
    );
    assert!(!server.banner.contains("credential-key-0123456789"));
    assert_eq!(server.api_key, "credential-key-0123456789");
    assert_eq!(server.get_with_key("/experiments").await.status, 200);
    let wrong = server
        .request(
            "GET",
            "/experiments",
            &[("x-api-key", "another-key-0123456789")],
            b"",
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert!(!data.join("api_key").exists(), "no key generated");
}

/// `packaging/config.json` (the Debian package's `/etc/lamed/config.json`)
/// loads with no unknown key, and every value it sets is that setting's
/// default: installing it changes nothing until it is edited.
#[test]
fn packaged_config_holds_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.json");
    let overrides = lamed::config::Overrides {
        config: Some(path.clone()),
        ..Default::default()
    };
    let config = lamed::Config::load(overrides).expect("packaging/config.json loads");
    assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
    let text = std::fs::read_to_string(&path).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let defaults = lamed::settings::defaults();
    let set: Vec<_> = file
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| !key.starts_with('_'))
        .collect();
    assert!(!set.is_empty());
    for (key, value) in set {
        assert_eq!(Some(value), defaults.get(key), "{key}");
    }
}
