//! The `lamed` command line: help, usage errors and configuration errors
//! exit non-zero with a message, before any socket is bound.

mod util;

use std::process::Command;

fn lamed(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    Command::new(util::lamed_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("LAMED_API_KEY")
        .output()
        .expect("run lamed")
}

/// `--help` explains the commands and every serve option.
#[test]
fn help_explains_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = lamed(&["--help"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");
    let out = lamed(&["serve", "--help"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--listen",
        "--data-dir",
        "--api-key",
        "--uuid-expiry-seconds",
        "--fsync",
        "--config",
        "--log-format",
        "--max-variants",
        "LAMED_LISTEN",
    ] {
        assert!(text.contains(option), "serve --help lacks {option}");
    }
}

/// A bad flag is a usage error: exit 2 with a message.
#[test]
fn bad_flag_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = lamed(&["serve", "--listen", "not-an-address"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

/// An invalid config.json stops the start with a message naming the file
/// and the problem, exit 1.
#[test]
fn bad_config_exits_1_with_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        "{\"uuid_expiry_seconds\": \"soon\"}",
    )
    .unwrap();
    let out = lamed(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "d"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("lamed: invalid config file config.json"),
        "{err}"
    );
    assert!(
        err.contains("uuid_expiry_seconds") || err.contains("line 1"),
        "{err}"
    );
    let out = lamed(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "d",
            "--config",
            "missing.json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file missing.json"));
    let out = lamed(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "d",
            "--api-key",
            "short",
            "--config",
            "/dev/null",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
}

/// Output into a pipe whose reader has gone (`lamed ... | head`) ends
/// quietly: exit 0, nothing on stderr (neither "Broken pipe" nor a panic).
#[test]
fn broken_pipes_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &[
            "dashboard",
            "--url",
            "http://127.0.0.1:1/dashboard",
            "--no-browser",
        ][..],
        &["man", "pages"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(util::lamed_bin())
            .args(args)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.code(), stderr.as_ref()),
            (Some(0), ""),
            "{args:?}"
        );
    }
}

/// A port already in use is a clear error.
#[test]
fn busy_port_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = lamed(&["serve", "--listen", &addr, "--data-dir", "d"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on {addr}")));
}

/// `--log-format json` writes one JSON object per log line on stderr.
#[test]
fn json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(util::lamed_bin())
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "d",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lamed");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let log: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(log["fields"]["message"], "serving");
}

/// The first line `lamed serve` prints ("lamed is listening on URL"), run
/// in `dir` with these extra arguments and variables; the server is then
/// stopped by its PID.
fn listening_line(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut child = Command::new(util::lamed_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "d"])
        .args(args)
        .env_remove("LAMED_API_KEY")
        .env_remove("LAMED_PUBLIC_URL")
        .envs(vars.iter().copied())
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start lamed");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line.trim().to_owned()
}

/// A setting comes from the flag, else its LAMED_ variable, else
/// config.json, else its default: `public_url`, as the banner shows it.
#[test]
fn flag_then_variable_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let default = listening_line(dir.path(), &[], &[]);
    assert!(
        default.starts_with("lamed is listening on http://127.0.0.1:"),
        "{default}"
    );
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"public_url": "http://file.example/"}"#,
    )
    .unwrap();
    let file = listening_line(dir.path(), &[], &[]);
    assert_eq!(file, "lamed is listening on http://file.example");
    let env = [("LAMED_PUBLIC_URL", "http://variable.example")];
    let variable = listening_line(dir.path(), &[], &env);
    assert_eq!(variable, "lamed is listening on http://variable.example");
    let flag = listening_line(dir.path(), &["--public-url", "http://flag.example"], &env);
    assert_eq!(flag, "lamed is listening on http://flag.example");
}
