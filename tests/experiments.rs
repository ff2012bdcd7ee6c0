//! `lamed experiments` run as a user runs it: against a real `lamed serve`
//! (`--server`) and against a local data directory, with tracking answering
//! what each lifecycle move implies.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use util::{track, Server};

/// Where the CLI acts: the flags that name a server or a data directory.
struct Cli {
    /// `--server URL --api-key KEY`, or `--data-dir DIR`.
    target: Vec<String>,
    /// Working directory and HOME, so no config file of the machine is read.
    home: PathBuf,
}

/// What one run printed, and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and answers stdout.
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        self.stdout
    }

    /// Asserts exit code 1 and answers stderr.
    fn failed(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(self.stdout.is_empty(), "nothing on stdout: {}", self.stdout);
        self.stderr
    }
}

impl Cli {
    fn server(server: &Server, home: &Path) -> Cli {
        Cli {
            target: vec![
                "--server".into(),
                format!("http://{}", server.addr),
                "--api-key".into(),
                server.api_key.clone(),
            ],
            home: home.to_owned(),
        }
    }

    fn local(data_dir: &Path, home: &Path) -> Cli {
        Cli {
            target: vec!["--data-dir".into(), data_dir.display().to_string()],
            home: home.to_owned(),
        }
    }

    /// `lamed experiments ARGS --namespace shop TARGET`.
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(util::lamed_bin())
            .arg("experiments")
            .args(args)
            .args(["--namespace", "shop"])
            .args(&self.target)
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("RUST_LOG", "warn")
            .env_remove("LAMED_SERVER")
            .env_remove("LAMED_API_KEY")
            .env_remove("LAMED_REDIS_URL")
            .env_remove("LAMED_DATA_DIR")
            .env_remove("LAMED_CONFIG")
            .output()
            .expect("run lamed experiments");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The record `show --json` prints.
    fn show(&self, name: &str) -> Value {
        serde_json::from_str(&self.run(&["show", name, "--json"]).ok())
            .expect("show --json is JSON")
    }

    /// The names `list --json ARGS` prints.
    fn names(&self, args: &[&str]) -> Vec<String> {
        let listed: Value =
            serde_json::from_str(&self.run(&[&["list", "--json"], args].concat()).ok())
                .expect("list --json is JSON");
        listed
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| r["name"].as_str().expect("a name").to_owned())
            .collect()
    }
}

/// What `GET /track` answers for one participation in "button color".
async fn track_answer(server: &Server, uuid: &str) -> Value {
    let answer = server
        .get(&track("shop", "button color", "red", "participate", uuid))
        .await;
    assert_eq!(answer.status, 200);
    answer.json().expect("track answers JSON")
}

/// Create registers (then redefines), list shows a table and JSON, and
/// malformed input is named with exit code 1.
fn create_and_list(cli: &Cli) {
    let out = cli
        .run(&[
            "create",
            "button color",
            "--variants",
            "red,blue:3",
            "--goals",
            "checkout",
            "--description",
            "blue converts better",
        ])
        .ok();
    assert!(
        out.starts_with("registered experiment 'button color' in namespace 'shop' (running)"),
        "{out}"
    );
    let out = cli
        .run(&[
            "create",
            "headline",
            "--variants",
            "long,short",
            "--control",
            "short",
        ])
        .ok();
    assert!(out.starts_with("registered"), "{out}");
    let out = cli
        .run(&["create", "headline", "--variants", "long,short,medium"])
        .ok();
    assert!(out.starts_with("redefined experiment 'headline'"), "{out}");

    let table = cli.run(&["list"]).ok();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("name"), "{table}");
    for column in ["status", "variants", "created", "stopped", "winner"] {
        assert!(header.contains(column), "{header}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("button color"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("running") && row.contains("red, blue:3"),
        "{row}"
    );
    let record = cli.show("button color");
    assert_eq!(record["variants"][1]["weight"], 3);
    assert_eq!(record["control"], "red");
    assert_eq!(record["description"], "blue converts better");
    assert_eq!(cli.show("headline")["control"], "long", "PUT redefines");
    let text = cli.run(&["show", "button color"]).ok();
    assert!(
        text.contains("status:") && text.contains("checkout"),
        "{text}"
    );

    let err = cli
        .run(&["create", "x", "--variants", "red,blue:heavy"])
        .failed();
    assert_eq!(
        err.trim(),
        "lamed: bad variant list 'red,blue:heavy': weight 'heavy' of variant 'blue' is not a whole number"
    );
    let err = cli.run(&["create", "x", "--variants", "red"]).failed();
    assert!(err.contains("at least two variants"), "{err}");
    let err = cli.run(&["show", "nope"]).failed();
    assert_eq!(
        err.trim(),
        "lamed: experiment 'nope' is not registered in namespace 'shop'"
    );
    let err = cli.run(&["pause", "nope"]).failed();
    assert!(err.contains("'nope' is not registered"), "{err}");
    let err = cli.run(&["list", "--status", "draft"]).failed();
    assert!(err.contains("status 'draft'"), "{err}");
}

/// Stop with a winner, a resume the lifecycle forbids, archive: list hides
/// it by default and `--status all` shows it.
fn stop_and_archive(cli: &Cli) {
    let err = cli
        .run(&["stop", "button color", "--winner", "green"])
        .failed();
    assert!(err.contains("'green' is not a variant"), "{err}");
    let out = cli
        .run(&[
            "stop",
            "button color",
            "--winner",
            "blue",
            "--note",
            "clear",
        ])
        .ok();
    assert_eq!(
        out.trim(),
        "experiment 'button color' is stopped, winner blue"
    );
    let err = cli.run(&["resume", "button color"]).failed();
    assert_eq!(
        err.trim(),
        "lamed: cannot resume experiment 'button color': experiment is stopped, it cannot become running"
    );
    let record = cli.show("button color");
    assert_eq!(record["status"], "stopped");
    assert_eq!(record["decision"]["winner"], "blue");
    assert_eq!(record["decision"]["note"], "clear");
    let row = cli.run(&["list", "--status", "stopped"]).ok();
    assert!(
        row.lines()
            .any(|l| l.starts_with("button color") && l.trim_end().ends_with("blue")),
        "{row}"
    );

    let out = cli.run(&["archive", "button color"]).ok();
    assert_eq!(out.trim(), "experiment 'button color' is archived");
    assert_eq!(cli.names(&[]), ["headline"]);
    let table = cli.run(&["list"]).ok();
    assert!(!table.contains("button color"), "{table}");
    let mut all = cli.names(&["--status", "all"]);
    all.sort();
    assert_eq!(all, ["button color", "headline"]);
    assert_eq!(cli.names(&["--status", "archived"]), ["button color"]);

    let out = cli.run(&["stop", "headline", "--no-winner"]).ok();
    assert_eq!(out.trim(), "experiment 'headline' is stopped, no winner");
    assert_eq!(cli.show("headline")["decision"]["winner"], Value::Null);
}

/// Through a running server: every subcommand, and tracking ignores a
/// paused experiment until it is resumed.
#[tokio::test]
async fn experiments_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let cli = Cli::server(&server, dir.path());
    create_and_list(&cli);

    assert_eq!(track_answer(&server, "u1").await, serde_json::json!({}));
    let out = cli.run(&["pause", "button color"]).ok();
    assert_eq!(out.trim(), "experiment 'button color' is paused");
    assert_eq!(
        track_answer(&server, "u2").await,
        serde_json::json!({"ignored": "paused"})
    );
    let err = cli.run(&["pause", "button color"]).failed();
    assert!(
        err.contains("cannot pause experiment 'button color': experiment is paused"),
        "{err}"
    );
    cli.run(&["resume", "button color"]).ok();
    assert_eq!(track_answer(&server, "u3").await, serde_json::json!({}));

    stop_and_archive(&cli);
    assert_eq!(
        track_answer(&server, "u4").await,
        serde_json::json!({"ignored": "archived"})
    );

    let wrong = Cli {
        target: vec![
            "--server".into(),
            format!("http://{}", server.addr),
            "--api-key".into(),
            "wrong-key-wrong-key".into(),
        ],
        home: dir.path().to_owned(),
    };
    let err = wrong.run(&["list"]).failed();
    assert!(err.contains("invalid API key"), "{err}");
}

/// On a local data directory: the same moves, written by the CLI and
/// obeyed by the server started on it; while that server runs, changes
/// are refused with a pointer to --server, and reads still work.
#[tokio::test]
async fn experiments_on_a_local_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli = Cli::local(&data, dir.path());
    create_and_list(&cli);
    cli.run(&["pause", "button color"]).ok();

    let mut server = Server::start(&data, &[]);
    assert_eq!(
        track_answer(&server, "u1").await,
        serde_json::json!({"ignored": "paused"})
    );
    let err = cli.run(&["resume", "button color"]).failed();
    assert!(
        err.contains("a server is running on this data directory") && err.contains("--server URL"),
        "{err}"
    );
    assert_eq!(cli.show("button color")["status"], "paused", "reads work");
    let (code, _, stderr) = util::run_lamed(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "a second server on the data directory");
    assert!(
        stderr.contains("another lamed process is writing to data directory"),
        "{stderr}"
    );
    assert!(server.terminate().success());

    cli.run(&["resume", "button color"]).ok();
    let mut server = Server::start(&data, &[]);
    assert_eq!(track_answer(&server, "u2").await, serde_json::json!({}));
    assert!(server.terminate().success());

    stop_and_archive(&cli);
    let server = Server::start(&data, &[]);
    assert_eq!(
        track_answer(&server, "u3").await,
        serde_json::json!({"ignored": "archived"})
    );
}

/// A stand-in for a server whose record changes between the CLI's read
/// and its edit: `GET` answers the record at ETag `"1"`, `PATCH` answers
/// 412 with version 2. Sends each request's head on `heads`.
async fn moving_server(heads: tokio::sync::mpsc::UnboundedSender<String>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut read = Vec::new();
            let mut buffer = [0; 4096];
            let (head, body_start) = loop {
                let n = socket.read(&mut buffer).await.unwrap();
                assert!(n > 0, "request ended early");
                read.extend_from_slice(&buffer[..n]);
                if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                    break (String::from_utf8_lossy(&read[..end]).into_owned(), end + 4);
                }
            };
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while read.len() < body_start + length {
                let n = socket.read(&mut buffer).await.unwrap();
                read.extend_from_slice(&buffer[..n]);
            }
            let (status, etag, body) = if head.starts_with("GET ") {
                (
                    "200 OK",
                    "\"1\"",
                    r#"{"name": "hero", "status": "running"}"#,
                )
            } else {
                (
                    "412 Precondition Failed",
                    "\"2\"",
                    r#"{"error": "experiment 'hero' changed since it was read (it is at version 2): read it again and retry", "current_version": 2}"#,
                )
            };
            heads.send(head).unwrap();
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\netag: {etag}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    addr
}

/// A record that changed between the CLI's read and its `PATCH`: the CLI
/// sent the ETag it read as `If-Match`, and names the 412 as a change made
/// meanwhile, to re-read and retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_changed_meanwhile_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (heads_tx, mut heads) = tokio::sync::mpsc::unbounded_channel();
    let addr = moving_server(heads_tx).await;
    let cli = Cli {
        target: vec![
            "--server".into(),
            format!("http://{addr}"),
            "--api-key".into(),
            "moving-server-key-0123".into(),
        ],
        home: dir.path().to_owned(),
    };
    let run = tokio::task::spawn_blocking(move || cli.run(&["pause", "hero"]));
    let err = run.await.unwrap().failed();
    assert!(
        err.contains(
            "cannot pause experiment 'hero': it changed meanwhile (now at version 2): \
             run the command again to re-read it and retry"
        ),
        "{err}"
    );
    let get = heads.recv().await.unwrap();
    assert!(
        get.starts_with("GET /api/experiments/hero?namespace=shop "),
        "{get}"
    );
    let patch = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(patch.starts_with("patch "), "{patch}");
    assert!(patch.contains("\r\nif-match: \"1\""), "{patch}");
}
