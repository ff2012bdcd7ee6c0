//! Faults injected into real processes during a load: a frozen Redis
//! (SIGSTOP), a crashed Redis restarted from its append-only file, a full
//! disk under the embedded store, and an overload. Each test then does what
//! AlephBet does (re-send every event that did not get a 200, until each
//! has) and requires every count to equal the truth exactly. Re-sending
//! only the events without a 200 is what makes "a 200 means stored"
//! checkable: a 200 for an event that was not stored leaves its counter
//! short, and a 503 for an event that was stored must not count it twice.

mod util;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lamed_load::{self as loadgen, CounterId, LoadReport, Workload, WorkloadSpec};
use util::{resend_until_stored, Server};

const API_KEY: &str = "faults-test-key-0123456789";

fn workload(namespace: &str, total: usize, seed: u64) -> Workload {
    Workload::generate(&WorkloadSpec::standard(namespace, total, 0.25, seed))
}

/// `lamed serve` with a fixed key and no log (faults provoke thousands of
/// 503s, each logged otherwise).
fn serve(data_dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--api-key", API_KEY];
    args.extend_from_slice(extra);
    Server::start_logging("127.0.0.1:0", data_dir, &args, "off")
}

/// Every request was answered 200 (stored) or 503 (nothing promised, send
/// again): no other status, and no request left without an answer.
fn assert_only_200_or_503(report: &LoadReport, fault: &str) {
    let other = report.statuses.len() - report.count(200) - report.count(503);
    let mut seen: Vec<u16> = report.statuses.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        other, 0,
        "{fault}: {other} requests got neither 200 nor 503 (statuses seen: {seen:?})"
    );
}

/// The namespace's counts; a read answered 503 (the overload test's short
/// request timeout) is tried again, as any client would.
async fn counts(server: &Server, namespace: &str) -> BTreeMap<CounterId, u64> {
    let mut last_error = None;
    for _ in 0..50 {
        match loadgen::fetch_counts(server.addr, namespace, API_KEY).await {
            Ok(counts) => return counts,
            Err(err) => last_error = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("counts unreadable: {last_error:?}");
}

/// Checks that every counter holds at least the events answered 200, then
/// re-sends what was not, then requires the exact truth.
async fn assert_exact_after_resend(
    server: &Server,
    workload: &Workload,
    paths: &[String],
    report: &LoadReport,
    fault: &str,
) {
    let before = counts(server, &workload.namespace).await;
    let acknowledged = workload.acknowledged(&report.statuses);
    for (id, uuids) in &acknowledged {
        let stored = before.get(id).copied().unwrap_or(0);
        assert!(
            stored >= uuids.len() as u64,
            "{fault}: {id:?} holds {stored} but {} of its events were answered 200",
            uuids.len()
        );
    }
    let acknowledged_total: usize = acknowledged.values().map(HashSet::len).sum();
    let stored_total: u64 = before.values().sum();
    let rounds = resend_until_stored(server, paths, &report.statuses, 16).await;
    eprintln!(
        "{fault}: {} answers 200, {} answers 503; {} unique events stored though \
         not answered 200; {rounds} re-send rounds",
        report.count(200),
        report.count(503),
        stored_total - acknowledged_total as u64,
    );
    let mismatches = workload.mismatches(&counts(server, &workload.namespace).await);
    assert!(
        mismatches.is_empty(),
        "{fault}: after {} answers 200 and {} 503, and {rounds} re-send rounds: {mismatches:#?}",
        report.count(200),
        report.count(503)
    );
}

#[cfg(feature = "redis")]
mod redis_faults {
    use super::*;
    use util::redis_server::{RedisCluster, RedisServer};

    fn serve_on(redis: &RedisServer, dir: &Path) -> Server {
        serve(&dir.join("data"), &["--redis", &redis.url()])
    }

    /// Freezes `frozen` (SIGSTOP) for 1.5 s during a load of `namespace`
    /// on `server`, thaws it (SIGCONT), then checks the answers and, after
    /// the re-send, the counts. With `probe`, an event tracked during the
    /// freeze must be answered 503 (it is not when its slot lives on a
    /// cluster node that is not frozen).
    async fn freeze_during_load(
        server: &Server,
        frozen: &RedisServer,
        namespace: &str,
        seed: u64,
        probe: bool,
    ) {
        let workload = workload(namespace, 12_000, seed);
        let paths = Arc::new(workload.paths("/track"));
        let fault = format!("SIGSTOP ({namespace})");

        let load = tokio::spawn(loadgen::run(server.addr, Arc::clone(&paths), 32));
        tokio::time::sleep(Duration::from_millis(300)).await;
        frozen.signal("STOP");
        if probe {
            let probe = util::track(namespace, "probe", "a", "participate", "frozen-probe");
            let answer = server.get(&probe).await;
            assert_eq!(
                answer.status, 503,
                "{fault}: tracking while Redis is frozen"
            );
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        frozen.signal("CONT");
        let report = tokio::time::timeout(Duration::from_secs(30), load)
            .await
            .expect("the load ends once Redis thaws")
            .unwrap();

        assert_only_200_or_503(&report, &fault);
        assert!(
            report.count(503) > 0,
            "{fault}: the freeze came after the load"
        );
        assert!(
            report.count(200) > 0,
            "{fault}: nothing answered before the freeze"
        );
        assert_exact_after_resend(server, &workload, &paths, &report, &fault).await;
    }

    /// Redis freezes (SIGSTOP) for 1.5 s during a load: its sockets stay
    /// open but nothing answers. Requests get 503 within the store deadline
    /// (never a 200 for what Redis did not run, never a hang); commands
    /// sent before the freeze run when it thaws (SIGCONT), after their
    /// requests were answered 503, and the re-send must not count them
    /// twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_frozen_with_sigstop() {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let server = serve_on(&redis, dir.path());
        freeze_during_load(&server, &redis, "frozen", 21, true).await;
    }

    /// The same freeze on one master of a three-master Redis Cluster (its
    /// own cluster: a frozen node must not disturb other tests).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster_master_frozen_with_sigstop() {
        let cluster = tokio::task::block_in_place(RedisCluster::start);
        let dir = tempfile::tempdir().unwrap();
        let server = serve(&dir.path().join("data"), &["--redis", &cluster.urls()]);
        freeze_during_load(&server, &cluster.nodes[0], "frozen-cluster", 25, false).await;
    }

    /// Redis is killed with SIGKILL during a load and restarted from its
    /// append-only file (fsync always) on the same port 0.5 s later, while
    /// the load goes on: lamed reconnects by itself, every event answered
    /// 200 survived the crash (only the others are re-sent), and nothing
    /// is counted twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_killed_and_restarted_from_its_aof() {
        let mut redis = RedisServer::start_durable();
        let dir = tempfile::tempdir().unwrap();
        let server = serve_on(&redis, dir.path());
        let workload = workload("crashed", 12_000, 22);
        let paths = Arc::new(workload.paths("/track"));

        let load = tokio::spawn(loadgen::run(server.addr, Arc::clone(&paths), 32));
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Blocks until Redis has replayed its AOF and answers PING.
        tokio::task::block_in_place(|| redis.restart());
        let report = load.await.unwrap();

        assert_only_200_or_503(&report, "SIGKILL");
        assert!(report.count(503) > 0, "the crash came after the load");
        assert!(report.count(200) > 0, "nothing answered before the crash");
        assert_exact_after_resend(&server, &workload, &paths, &report, "SIGKILL").await;
    }
}

/// A small tmpfs mounted for one test, unmounted when dropped (after the
/// server using it, which is declared later and so dropped first).
struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. `"24m"`) at `dir`; `None` when this
    /// machine does not let us (not root, no mount namespace rights).
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).ok()?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !output.status.success() {
            eprintln!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return None;
        }
        Some(Mount {
            dir: dir.to_owned(),
        })
    }

    /// Writes zeros to `name` until the file system is full; returns how
    /// many bytes fitted.
    fn fill(&self, name: &str) -> u64 {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.dir.join(name)).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
                Err(err) => panic!("filling the disk: {err}"),
            }
        }
        // Smaller pieces fill what the last chunk did not.
        while let Ok(n @ 1..) = file.write(&chunk[..512]) {
            written += n as u64;
        }
        written
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The embedded store's disk fills up during a load: tracking answers 503
/// (never 200 for an event SQLite could not commit; the writer rolls back
/// and puts its dedupe index back), and once space is freed the re-send of
/// every event without a 200 gives the exact counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&dir.path().join("disk"), "24m") else {
        eprintln!("SKIPPED embedded_disk_full: no tmpfs to fill");
        return;
    };
    let server = serve(&mount.dir.join("data"), &[]);
    let workload = workload("diskfull", 15_000, 23);
    let paths = Arc::new(workload.paths("/track"));

    let load = tokio::spawn(loadgen::run(server.addr, Arc::clone(&paths), 32));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filled = tokio::task::block_in_place(|| mount.fill("filler"));
    assert!(filled > 0, "the disk was full before the test filled it");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::remove_file(mount.dir.join("filler")).expect("free the disk");
    let report = load.await.unwrap();

    assert_only_200_or_503(&report, "disk full");
    assert!(
        report.count(503) > 0,
        "the full disk refused nothing ({} answers 200)",
        report.count(200)
    );
    assert!(
        report.count(200) > 0,
        "nothing answered before the disk filled"
    );
    assert_exact_after_resend(&server, &workload, &paths, &report, "disk full").await;
}

/// 256 connections at once against the embedded store, with a request
/// timeout of 3 ms, so that many requests are answered 503 while their
/// events still sit in the writer's queue and are committed afterwards:
/// no status but 200 or 503, and the re-send counts none of them twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_overload() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), &["--request-timeout-ms", "3"]);
    let workload = workload("overload", 20_000, 24);
    let paths = Arc::new(workload.paths("/track"));

    let report = loadgen::run(server.addr, Arc::clone(&paths), 256).await;

    assert_only_200_or_503(&report, "overload");
    assert!(report.count(200) > 0, "nothing was answered 200");
    assert!(report.count(503) > 0, "the overload timed nothing out");
    assert_exact_after_resend(&server, &workload, &paths, &report, "overload").await;
}
