//! Test helpers for the AWS path: a private `moto_server` and a private
//! `redis-server`, each on a free loopback port and stopped by PID when
//! dropped (also when the test fails), and the `lamed` binary run against
//! them with static test credentials.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The test region.
pub const REGION: &str = "us-east-1";

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} in 30 s");
}

/// A running process killed by PID on drop.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private moto_server, started as every test starts it
/// (`lamed_store::dynamodb::testing`).
pub struct Moto {
    _server: lamed_store::dynamodb::testing::Moto,
    /// Its URL, for `--endpoint-url`.
    pub url: String,
}

impl Moto {
    /// Starts moto_server on a free port and waits until it listens.
    pub fn start() -> Moto {
        let server = lamed_store::dynamodb::testing::Moto::start();
        Moto {
            url: server.url.clone(),
            _server: server,
        }
    }

    /// SDK configuration for checking what deploy built.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        lamed_store::dynamodb::sdk::defaults()
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "testing", "testing", None, None, "static",
            ))
            .load()
            .await
    }
}

/// A private redis-server (no persistence).
pub struct Redis {
    _child: Owned,
    /// Its port.
    pub port: u16,
}

impl Redis {
    /// Starts redis-server on a free port and waits until it listens.
    pub fn start() -> Redis {
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (install redis-server)");
        wait_for_port(port, "redis-server", &mut child);
        Redis {
            _child: Owned(child),
            port,
        }
    }
}

/// A 64-bit little-endian ELF header for `machine` (0x3e x86_64, 0xb7
/// arm64) that declares no sections, so there is nothing to strip.
pub fn elf_header(machine: u16) -> [u8; 64] {
    let mut bytes = [0u8; 64];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 2; // 64-bit
    bytes[5] = 1; // little-endian
    bytes[6] = 1; // ELF version 1
    bytes[18..20].copy_from_slice(&machine.to_le_bytes());
    bytes[20] = 1; // ELF version 1
    bytes[52] = 64; // header size
    bytes
}

/// A fake Linux executable for `--bootstrap`: an ELF header for the
/// architecture and some padding. Lambda in moto never runs it; the real
/// binary's runtime path is tested in tests/lambda.rs.
pub fn fake_bootstrap(dir: &Path, machine: u16) -> PathBuf {
    let mut bytes = vec![0u8; 4096];
    bytes[..64].copy_from_slice(&elf_header(machine));
    let path = dir.join(format!("bootstrap-{machine:x}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A real executable with debug info (`rustc -g`) for this machine, as
/// `dir/name`.
pub fn debug_executable(dir: &Path, name: &str) -> PathBuf {
    let source = dir.join(format!("{name}.rs"));
    std::fs::write(&source, "fn main() { println!(\"hello\"); }").unwrap();
    let path = dir.join(name);
    let status = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .arg("-g")
        .arg("-o")
        .arg(&path)
        .arg(&source)
        .status()
        .expect("run rustc");
    assert!(status.success(), "rustc -g failed");
    path
}

/// The SHA-256 of a file, base64, as Lambda reports `CodeSha256`
/// (computed by the test venv's Python, as moto does).
pub fn code_sha256(path: &Path) -> String {
    let output = Command::new(super::test_venv_bin().join("python"))
        .args([
            "-c",
            "import base64, hashlib, sys; \
             print(base64.b64encode(hashlib.sha256(open(sys.argv[1], 'rb').read()).digest()).decode())",
        ])
        .arg(path)
        .output()
        .expect("run python");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `lamed` with an environment that holds nothing of the machine's AWS
/// setup: no profile files, no instance metadata, only what `envs` adds.
pub fn lamed(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lamed"));
    command
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMED_CONFIG",
        "LAMED_API_KEY",
        "EDITOR",
        "VISUAL",
    ] {
        command.env_remove(name);
    }
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("run lamed")
}

/// The static test credentials.
pub const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];
