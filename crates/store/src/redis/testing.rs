//! Private `redis-server` processes for tests: a standalone server or a
//! three-master cluster on free loopback ports, each in its own temporary
//! directory, stopped by PID when dropped (also when a test panics).
//!
//! Uses only std; the integration tests reach it through feature
//! `conformance`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "lamed-{label}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// One `redis-server` process, killed (by PID) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Extra arguments it was started with (to restart it alike).
    args: Vec<String>,
    /// Its working directory (AOF, RDB, nodes.conf).
    dir: TempDir,
}

impl RedisServer {
    /// A standalone server without persistence.
    pub fn start() -> RedisServer {
        Self::start_with(&["--appendonly", "no"])
    }

    /// A standalone server that fsyncs every write to its append-only file,
    /// so that a kill -9 loses nothing it acknowledged.
    pub fn start_durable() -> RedisServer {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// A server without persistence whose memory is capped (100 MB) under
    /// the eviction `policy` (`maxmemory-policy`), as managed Redis runs.
    pub fn start_with_policy(policy: &str) -> RedisServer {
        Self::start_with(&[
            "--appendonly",
            "no",
            "--maxmemory",
            "100mb",
            "--maxmemory-policy",
            policy,
        ])
    }

    /// A server without persistence under `noeviction` whose memory is
    /// capped at `maxmemory` (e.g. `"4mb"`): small enough for a test to
    /// fill it with one big key, so that Redis refuses writes with OOM.
    pub fn start_noeviction(maxmemory: &str) -> RedisServer {
        Self::start_with(&[
            "--appendonly",
            "no",
            "--maxmemory",
            maxmemory,
            "--maxmemory-policy",
            "noeviction",
        ])
    }

    /// A server with extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            args: args.iter().map(|s| s.to_string()).collect(),
            dir: TempDir::new("redis"),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = command(self.port, "PING") {
                // LOADING while the AOF is replayed; NOAUTH counts as up.
                if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (after [`kill`]).
    ///
    /// [`kill`]: RedisServer::kill
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs one inline command and returns the raw reply.
    pub fn cmd(&self, line: &str) -> String {
        command(self.port, line).expect("redis command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGSTOP or SIGCONT (or any signal `kill` knows) for a server's process.
/// A stopped server keeps its sockets open but answers nothing, like a
/// Redis stuck in a long fork or a frozen VM; dropping it still kills it.
impl RedisServer {
    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (e.g. `"STOP"`, `"CONT"`) to its process by PID.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }
}

/// Sends one inline command (no quoting: arguments without spaces) and
/// reads what arrives within a moment.
pub fn command(port: u16, line: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut buf = [0u8; 65536];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A Redis Cluster of three masters and no replicas.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them with
    /// `redis-cli --cluster create`, then waits until every node reports
    /// the cluster ok.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",
                    &bus,
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.nodes.iter().all(|n| {
            command(n.port, "CLUSTER INFO").is_ok_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// One cluster shared by the tests of this process that run at the
    /// same time (so a suite does not start three servers per test): the
    /// first caller starts it, every caller holds it through the `Arc`, and
    /// when the last holder drops it the nodes are stopped by PID like any
    /// [`RedisServer`]. A static only keeps a `Weak`, which never keeps the
    /// cluster alive, so it is stopped even though statics never drop;
    /// when tests run one at a time, each starts its own. Tests sharing it
    /// use distinct key prefixes.
    pub fn shared() -> Arc<RedisCluster> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        // Held while starting, so concurrent first callers share one
        // cluster; a start that panicked poisons nothing worth keeping.
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(RedisCluster::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    /// The nodes' URLs, comma-separated (as `--redis` takes them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
