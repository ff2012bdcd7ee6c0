//! Test helpers: run the real `lamed` binary on a free loopback port with a
//! temporary data directory, and stop it by PID when the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub use lamed_load::{self as loadgen, Answer};

#[cfg(feature = "aws")]
pub mod aws;
pub mod receiver;

/// A running `lamed serve`, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The API key it uses: the one passed with `--api-key`, else the one it
    /// generated or found in its data directory (the banner prints a key
    /// only when generated just now).
    pub api_key: String,
    /// Everything it printed on stdout before serving.
    pub banner: String,
    /// Its data directory (kept by the caller's TempDir).
    pub data_dir: PathBuf,
}

/// The `lamed` binary built for these tests.
pub fn lamed_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lamed")
}

impl Server {
    /// Starts `lamed serve` on `127.0.0.1:0` with `data_dir` and extra args.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", data_dir, args)
    }

    /// Starts `lamed serve` on `listen` (to restart on the same port).
    pub fn start_on(listen: &str, data_dir: &Path, args: &[&str]) -> Server {
        Self::start_logging(listen, data_dir, args, "warn")
    }

    /// Starts `lamed serve` with `RUST_LOG` set to `log` (`off` for tests
    /// that provoke thousands of 503s on purpose).
    pub fn start_logging(listen: &str, data_dir: &Path, args: &[&str], log: &str) -> Server {
        Self::start_with_env(listen, data_dir, args, log, &[])
    }

    /// Starts `lamed serve` with `envs` added to its environment (the AWS
    /// SDK's endpoint and test credentials).
    pub fn start_with_env(
        listen: &str,
        data_dir: &Path,
        args: &[&str],
        log: &str,
        envs: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(lamed_bin())
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", log)
            .env_remove("LAMED_API_KEY")
            .env_remove("LAMED_REDIS_URL")
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lamed");
        let stdout = child.stdout.take().expect("stdout piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:0".parse().expect("valid address"),
            api_key: String::new(),
            banner: String::new(),
            data_dir: data_dir.to_owned(),
        };
        loop {
            let line = lines_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("lamed printed its banner in time");
            server.banner.push_str(&line);
            server.banner.push('\n');
            let listening = line.strip_prefix("lamed is listening on ");
            if let Some(url) = listening.and_then(|url| {
                url.strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
            }) {
                server.addr = url.trim().parse().expect("address in banner");
            }
            if line == lamed::snippet::SNIPPET_END {
                break;
            }
        }
        server.api_key = api_key_in_use(data_dir, args);
        server
    }

    /// Its process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Its resident memory now, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status readable");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// SIGKILL: the crash case.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        child.wait().expect("wait for lamed")
    }

    /// Any request, on a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        loadgen::request(self.addr, method, path, headers, body)
            .await
            .unwrap_or_else(|err| panic!("{method} {path} failed: {err:#}"))
    }

    /// `GET path` without headers.
    pub async fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[], b"").await
    }

    /// `GET path` with the API key.
    pub async fn get_with_key(&self, path: &str) -> Answer {
        self.request("GET", path, &[("x-api-key", &self.api_key)], b"")
            .await
    }

    /// The namespace's counts as (experiment, event, variant) → count.
    pub async fn counts(
        &self,
        namespace: &str,
    ) -> std::collections::BTreeMap<loadgen::CounterId, u64> {
        loadgen::fetch_counts(self.addr, namespace, &self.api_key)
            .await
            .expect("counts readable")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The key a server started with `args` uses: from `--api-key` or
/// `--api-key-file`, else from the `--config` file, else the one it
/// generated in `data_dir`.
fn api_key_in_use(data_dir: &Path, args: &[&str]) -> String {
    let flag_value = |flag: &str| {
        args.iter()
            .position(|arg| *arg == flag)
            .map(|at| args[at + 1])
    };
    if let Some(key) = flag_value("--api-key") {
        return key.to_owned();
    }
    if let Some(path) = flag_value("--api-key-file") {
        let text = std::fs::read_to_string(path).expect("API key file readable");
        return text.lines().next().unwrap_or_default().trim().to_owned();
    }
    let from_file = flag_value("--config").and_then(|config| {
        let text = std::fs::read_to_string(config).expect("config file readable");
        let config: serde_json::Value = serde_json::from_str(&text).expect("config file is JSON");
        config["api_key"].as_str().map(str::to_owned)
    });
    from_file.unwrap_or_else(|| {
        std::fs::read_to_string(data_dir.join("api_key"))
            .expect("lamed keeps its generated key in the data directory")
            .trim()
            .to_owned()
    })
}

/// A GET /track path for one event in namespace `ns`.
pub fn track(ns: &str, experiment: &str, variant: &str, event: &str, uuid: &str) -> String {
    loadgen::track_path(
        "/track",
        &lamed::Event {
            segment: Default::default(),
            namespace: ns.into(),
            experiment: experiment.into(),
            variant: variant.into(),
            event: event.into(),
            uuid: uuid.into(),
            value: None,
        },
    )
}

/// The `bin` directory of the test venv of `scripts/aws-test-env.sh`
/// (moto_server, and a python with sixpack-client), installed into
/// target/venv on first use.
pub fn test_venv_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/aws-test-env.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/aws-test-env.sh");
        assert!(output.status.success(), "scripts/aws-test-env.sh failed");
        let moto = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        moto.parent().expect("the venv's bin directory").to_owned()
    })
}

/// Private `redis-server` processes and clusters (shared with the unit
/// tests of the Redis store).
#[cfg(feature = "redis")]
#[allow(unused_imports)]
pub use lamed::store::redis::testing as redis_server;

/// Runs `lamed` with `args` to completion (at most `limit`), returning its
/// exit code, stdout and stderr; a run past the limit is killed and fails
/// the test.
pub fn run_lamed(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(lamed_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LAMED_API_KEY")
        .env_remove("LAMED_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lamed");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait for lamed").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lamed {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("lamed output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Rounds of re-sending before a test gives up on the server recovering.
const MAX_RESEND_ROUNDS: usize = 30;

/// The client's retry queue: sends again every event whose last answer was
/// not 200, over `connections`, until every event has had a 200. Returns
/// how many rounds it took.
pub async fn resend_until_stored(
    server: &Server,
    paths: &[String],
    statuses: &[u16],
    connections: usize,
) -> usize {
    let mut pending: Vec<&String> = paths
        .iter()
        .zip(statuses)
        .filter(|(_, status)| **status != 200)
        .map(|(path, _)| path)
        .collect();
    for round in 1..=MAX_RESEND_ROUNDS {
        if pending.is_empty() {
            return round - 1;
        }
        let batch: Vec<String> = pending.iter().map(|p| (*p).clone()).collect();
        let report = loadgen::run(server.addr, Arc::new(batch), connections).await;
        pending = pending
            .into_iter()
            .zip(&report.statuses)
            .filter(|(_, status)| **status != 200)
            .map(|(path, _)| path)
            .collect();
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!(
        "{} events still without a 200 after {MAX_RESEND_ROUNDS} re-send rounds",
        pending.len()
    );
}
