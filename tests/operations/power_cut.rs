//! Power cuts on LazyFS: a FUSE file system that keeps what is written in
//! its own cache until `fsync`, and drops that cache on command, as a power
//! cut drops what never reached the disk.
//!
//! Each round mounts the data directory's parent through LazyFS, runs
//! `lamed serve` on it, tracks unique events, and cuts power. Then lamed
//! starts on what reached the disk (the directory itself, not through
//! LazyFS), and every event sent is sent again in batches, whose answers
//! say which events were lost (`counted` now) and which survived
//! (`duplicate`); a clean stop ends the round. Power is cut (one test
//! each):
//! - at a random moment of the load, in the order a real cut happens:
//!   `kill -9` lamed, drop LazyFS's cache, unmount;
//! - during a checkpoint: batches of events with long names (so that a
//!   commit rewrites hundreds of pages) bring the log to its checkpoint
//!   size (16 MiB) within seconds, and LazyFS dies at a moment of that
//!   checkpoint: once the database is synced but before the log restarts,
//!   with every page copied and none synced, and, last, so that the
//!   database then holds data, with a few of the copied pages on disk out
//!   of order (LazyFS's `torn-seq`) in `none` mode, where only the
//!   checkpoint's own sync of the log protects the database;
//! - during `lamed backup` (its file on LazyFS too): LazyFS dies while the
//!   copy is written, at its first sync, just before its rename into place,
//!   or just after.
//!
//! LazyFS dying at an operation is a cut in the right order too: its cache
//! dies with it, and nothing the processes do afterwards reaches the disk;
//! they are killed next. Each round checks, per `--fsync` mode:
//! - `commit`: no event answered 200 is lost;
//! - `second` (the default): every lost event was answered less than 1.5 s
//!   before the cut;
//! - every mode: the store opens, and after the re-sends every counter
//!   holds each event of every round once (nothing counted twice);
//! - backups: no file under the backup's name until the rename (`lamed
//!   restore` says there is no backup), and a whole one after: restore
//!   accepts it, and it counts every event answered before the backup
//!   began, each with its dedupe entry; the copy left under its temporary
//!   name is whole or refused as no lamed backup.
//!
//! Upgrades: a data directory of the oldest layout (the released fixture of
//! `upgrade.rs`, plus 40,000 events remembered one row per event and 20,000
//! memberships under their client ids, both of which the upgrade rewrites)
//! is served from LazyFS, and power is cut at random moments of its upgrade
//! (every other upgrade with `--fsync commit`, so that the cuts find it on
//! disk at each of its steps). Restarted, lamed finishes it: the counts of
//! an uncut upgrade, every event still a duplicate, every membership
//! hashed.
//!
//! LazyFS is found at `$LAMED_LAZYFS` (scripts/test.sh builds it), else at
//! `target/lazyfs/lazyfs/build/lazyfs`. Without FUSE or LazyFS the tests
//! are skipped, saying why; with `$LAMED_LAZYFS` set, a missing binary
//! fails them.

use crate::util;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use util::{loadgen, run_lamed, track, Server};

/// Concurrent senders, each on its own keep-alive connection.
const SENDERS: usize = 8;

/// The namespace of every event.
const NAMESPACE: &str = "powercut";

/// The key of every server of the test.
const API_KEY: &str = "power-cut-test-key-0123456789";

/// A desktop browser: lamed ignores tracking from bots and unknown agents.
const BROWSER: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// The loss `--fsync=second` may cause: its log is synced at most a second
/// after a commit; the rest is the sync's own time and the test's slack.
const SECOND_MODE_BOUND: Duration = Duration::from_millis(1500);

/// Rounds per mode. The default gets the most: its bound is the one with
/// a timing to get wrong.
const ROUNDS: [(&str, usize); 3] = [("commit", 2), ("second", 4), ("none", 2)];

/// One cut per moment of a checkpoint, each in a mode whose promise it
/// checks too. The torn one comes last, so that it tears a database that
/// holds the earlier rounds, in `none` mode, where only the checkpoint's
/// own sync of the log protects it (with SQLite's `synchronous=OFF`, which
/// skips that sync, it counts events twice).
const CHECKPOINT_CUTS: [(&str, Cut); 3] = [
    ("second", Cut::Checkpoint(CheckpointMoment::DatabaseSynced)),
    ("commit", Cut::Checkpoint(CheckpointMoment::PagesUnsynced)),
    ("none", Cut::Checkpoint(CheckpointMoment::TornPages)),
];

/// One cut per moment of a backup.
const BACKUP_CUTS: [(&str, Cut); 4] = [
    ("second", Cut::Backup(BackupMoment::Copying)),
    ("commit", Cut::Backup(BackupMoment::FirstSync)),
    ("second", Cut::Backup(BackupMoment::BeforeRename)),
    ("second", Cut::Backup(BackupMoment::AfterRename)),
];

/// Longest the log may take to reach its checkpoint size under the wide
/// batches (3 to 5 s here, mostly LazyFS's time per write).
const CHECKPOINT_WITHIN: Duration = Duration::from_secs(20);

/// LazyFS's cache: it allocates it whole when it mounts (about 0.6 s per
/// 256 MB here), and a round writes far less (at most 16 MiB of log, its
/// checkpoint, and a backup of a few MB).
const CACHE_SIZE: &str = "256mb";

/// Cuts at random moments of an upgrade.
const UPGRADE_CUTS: usize = 3;

/// Events the older data directory remembers one row per event.
const LEGACY_EVENTS: usize = 40_000;

/// Memberships the older data directory holds under their client ids.
const LEGACY_MEMBERS: usize = 20_000;

/// The LazyFS binary, or why the test cannot run here.
fn lazyfs_binary() -> Result<PathBuf, String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("FUSE is unavailable here (no /dev/fuse)".into());
    }
    if Command::new("fusermount3")
        .arg("-V")
        .output()
        .map_or(true, |out| !out.status.success())
    {
        return Err("fusermount3 is missing (Debian package fuse3)".into());
    }
    if let Some(path) = std::env::var_os("LAMED_LAZYFS") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "LAMED_LAZYFS={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lazyfs/lazyfs/build/lazyfs");
    if built.is_file() {
        return Ok(built);
    }
    Err(format!(
        "LazyFS is not built (no {}): scripts/test.sh builds it, or run \
         bash ../shared/tools/lazyfs/build.sh target/lazyfs",
        built.display()
    ))
}

/// A directory mounted through LazyFS; unmounted, and LazyFS stopped by its
/// PID, when dropped (also when a test fails).
struct LazyMount {
    child: Option<Child>,
    /// What programs see.
    mnt: PathBuf,
    /// LazyFS reads its commands here.
    faults: PathBuf,
    /// LazyFS's "finished::..." notices, read by a thread of their own.
    finished: mpsc::Receiver<String>,
    /// Opened read-write, so that neither side waits for the other to
    /// open it; written to on drop to end the reading thread.
    finished_fifo: File,
    /// LazyFS's log: it says when a fault killed it.
    log: PathBuf,
}

impl LazyMount {
    /// Mounts `root` at `work/mnt` through the LazyFS binary `lazyfs`;
    /// `work` is new for each mount (its FIFOs are this mount's own).
    fn mount(lazyfs: &Path, root: &Path, work: &Path) -> LazyMount {
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let (faults, finished) = (work.join("faults.fifo"), work.join("finished.fifo"));
        for fifo in [&faults, &finished] {
            let made = Command::new("mkfifo").arg(fifo).status().unwrap();
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        let config = work.join("lazyfs.toml");
        std::fs::write(
            &config,
            format!(
                "[faults]\nfifo_path=\"{}\"\nfifo_path_completed=\"{}\"\n\
                 [cache]\napply_eviction=false\n\
                 [cache.simple]\ncustom_size=\"{CACHE_SIZE}\"\nblocks_per_page=1\n\
                 [filesystem]\nlog_all_operations=false\nlogfile=\"{}\"\n",
                faults.display(),
                finished.display(),
                work.join("lazyfs.log").display()
            ),
        )
        .unwrap();
        let finished_fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&finished)
            .unwrap();
        let (notices, finished_rx) = mpsc::channel();
        let reader = finished_fifo.try_clone().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if line == "test::stop" || notices.send(line).is_err() {
                    break;
                }
            }
        });
        let child = Command::new(lazyfs)
            .arg(&mnt)
            .arg("--config-path")
            .arg(&config)
            .args(["-o", "modules=subdir", "-o"])
            .arg(format!("subdir={}", root.display()))
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start LazyFS");
        let mount = LazyMount {
            child: Some(child),
            mnt,
            faults,
            finished: finished_rx,
            finished_fifo,
            log: work.join("lazyfs.log"),
        };
        let started = Instant::now();
        while !is_mount_point(&mount.mnt) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "LazyFS did not mount {} (see {})",
                mount.mnt.display(),
                work.join("lazyfs.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        mount
    }

    /// Drops everything not fsynced, as a power cut does; returns once
    /// LazyFS says it is done.
    fn clear_cache(&self) {
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.faults)
            .unwrap();
        fifo.write_all(b"lazyfs::clear-cache\n").unwrap();
        let notice = self
            .finished
            .recv_timeout(Duration::from_secs(10))
            .expect("LazyFS cleared its cache in time");
        assert_eq!(notice, "finished::clear-cache");
    }

    /// Sends LazyFS a fault to inject (`lazyfs::crash::...`,
    /// `lazyfs::torn-seq::...`): it kills itself, its cache with it, at
    /// the operation named.
    fn arm(&self, fault: &str) {
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.faults)
            .unwrap();
        fifo.write_all(format!("{fault}\n").as_bytes()).unwrap();
    }

    /// Waits, at most `limit`, for LazyFS to die of an armed fault;
    /// returns when it did (the moment of the cut), polled every 2 ms.
    ///
    /// # Panics
    ///
    /// When LazyFS exited and its log does not say a fault killed it.
    async fn crashed(&mut self, limit: Duration) -> Option<Instant> {
        let child = self.child.as_mut()?;
        let started = Instant::now();
        while started.elapsed() < limit {
            if child.try_wait().is_ok_and(|status| status.is_some()) {
                let cut = Instant::now();
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(
                    log.contains("Triggered fault condition"),
                    "LazyFS exited, but not of the armed fault (see {})",
                    self.log.display()
                );
                return Some(cut);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    /// Unmounts and stops LazyFS.
    fn unmount(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let unmounted = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Busy (a failed test's process still inside): detach it.
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
        let exited = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            child.try_wait().is_ok_and(|status| status.is_some())
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        self.unmount();
        let _ = self.finished_fifo.write_all(b"test::stop\n");
    }
}

/// Whether `path` is a mount point, from the kernel's mount table.
fn is_mount_point(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let path = path.to_string_lossy();
    mounts
        .lines()
        .any(|line| line.split(' ').nth(1) == Some(path.as_ref()))
}

/// The events of the test, as `POST /track` takes them: a goal, so that
/// `/experiments` shows its count.
fn event_json(experiment: &str, variant: &str, uuid: &str) -> serde_json::Value {
    serde_json::json!({
        "namespace": NAMESPACE, "experiment": experiment, "variant": variant,
        "event": "done", "uuid": uuid
    })
}

/// One event sent during a round; `answered` is when its 200 arrived.
struct Sent {
    uuid: String,
    experiment: String,
    variant: String,
    answered: Option<Instant>,
}

/// A small seeded generator for the cut moments (SplitMix64), so that a
/// failing seed, printed, can be run again with `LAMED_POWER_CUT_SEED`.
struct Moments(u64);

impl Moments {
    /// From `LAMED_POWER_CUT_SEED`, else the clock; prints the seed.
    fn seeded(test: &str) -> Moments {
        let seed = std::env::var("LAMED_POWER_CUT_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: LAMED_POWER_CUT_SEED={seed}");
        Moments(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// How a round cuts the power.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// At a random moment of the load.
    Random,
    /// At a moment of the store's next checkpoint.
    Checkpoint(CheckpointMoment),
    /// At a moment of a `lamed backup` run during the load.
    Backup(BackupMoment),
}

/// Where in a checkpoint LazyFS dies. SQLite checkpoints by syncing the
/// log, copying its pages into the database file, syncing that, and later
/// writing the log again from its start.
#[derive(Debug, Clone, Copy)]
enum CheckpointMoment {
    /// A few of the pages copied reached the disk, out of order.
    TornPages,
    /// Every page copied, none synced.
    PagesUnsynced,
    /// The database synced, the log not yet restarted.
    DatabaseSynced,
}

impl CheckpointMoment {
    /// The LazyFS command that kills it at this moment of the next
    /// checkpoint of the database at `db` (its path under LazyFS's root):
    /// nothing but checkpoints writes or syncs the database file of a
    /// store in WAL mode.
    fn fault(self, db: &Path, moments: &mut Moments) -> String {
        match self {
            CheckpointMoment::TornPages => {
                // A few of the checkpoint's first 512 writes reach the
                // disk, then LazyFS dies; a checkpoint of 16 MiB of log
                // writes thousands.
                let mut persist: Vec<u64> = (0..6).map(|_| 1 + moments.below(512)).collect();
                persist.sort_unstable();
                persist.dedup();
                let persist: Vec<String> = persist.iter().map(u64::to_string).collect();
                format!(
                    "lazyfs::torn-seq::op=write::file={}::persist={}",
                    db.display(),
                    persist.join(",")
                )
            }
            CheckpointMoment::PagesUnsynced => {
                r"lazyfs::crash::timing=before::op=fsync::from_rgx=lamed\.db$".into()
            }
            CheckpointMoment::DatabaseSynced => {
                r"lazyfs::crash::timing=after::op=fsync::from_rgx=lamed\.db$".into()
            }
        }
    }
}

/// Where in `lamed backup` LazyFS dies. The backup writes a copy under a
/// temporary name (`FILE.partial-PID`), syncs it, renames it to FILE and
/// syncs the directory.
#[derive(Debug, Clone, Copy)]
enum BackupMoment {
    /// The first page of the copy written.
    Copying,
    /// Every page written, at the copy's first sync.
    FirstSync,
    /// The copy synced, not yet renamed.
    BeforeRename,
    /// Renamed into place.
    AfterRename,
}

/// The name of the backup file, in `backups/` beside the data directory.
const BACKUP_FILE: &str = "lamed-backup.db";

impl BackupMoment {
    /// The LazyFS command that kills it at this moment of the backup.
    /// (LazyFS checks a rename's `to_rgx` only, but needs a `from_rgx`.)
    fn fault(self) -> String {
        let copy = r"lamed-backup\.db\.partial-[0-9]+$";
        match self {
            BackupMoment::Copying => {
                format!("lazyfs::crash::timing=after::op=write::from_rgx={copy}")
            }
            BackupMoment::FirstSync => {
                format!("lazyfs::crash::timing=before::op=fsync::from_rgx={copy}")
            }
            BackupMoment::BeforeRename | BackupMoment::AfterRename => format!(
                "lazyfs::crash::timing={}::op=rename::from_rgx=partial::to_rgx=/lamed-backup\\.db$",
                if matches!(self, BackupMoment::BeforeRename) {
                    "before"
                } else {
                    "after"
                }
            ),
        }
    }
}

/// A process of the test (not a server), killed by its PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lamed` with `args`, its output discarded: a process to cut.
fn spawn_lamed(args: &[&OsStr]) -> Running {
    Running(
        Command::new(util::lamed_bin())
            .args(args)
            .env("RUST_LOG", "off")
            .env_remove("LAMED_API_KEY")
            .env_remove("LAMED_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lamed"),
    )
}

/// Tracks from [`SENDERS`] keep-alive connections until `stop` is set or
/// the server dies; returns every event sent, answered or not.
async fn track_until_stopped(
    addr: std::net::SocketAddr,
    round: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Sent> {
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let Ok(mut connection) = lamed::client::connect(addr).await else {
                    return sent;
                };
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let uuid = format!("r{round}-s{sender}-{i}");
                    let experiment = format!("e{}", sender % 4);
                    let request =
                        hyper::Request::get(track(NAMESPACE, &experiment, "a", "done", &uuid))
                            .header("host", addr.to_string())
                            .header("user-agent", BROWSER)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                    let mut event = Sent {
                        uuid,
                        experiment,
                        variant: "a".into(),
                        answered: None,
                    };
                    let answered = match connection.send_request(request).await {
                        Ok(response) => {
                            let status = response.status();
                            response.into_body().collect().await.is_ok() && status == 200
                        }
                        Err(_) => false,
                    };
                    if answered {
                        event.answered = Some(Instant::now());
                    }
                    sent.push(event);
                    if !answered {
                        // The server is gone: the cut.
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.unwrap());
    }
    sent
}

/// Experiments and variants of the wide batches: 2,000 counters.
const WIDE_EXPERIMENTS: usize = 100;
const WIDE_VARIANTS: usize = 20;

/// Events per wide batch.
const WIDE_BATCH: usize = 1000;

/// Sends batches of events over many counters with long names (each
/// counter row near half a page), so that every commit rewrites hundreds
/// of pages, until `stop` is set or the server fails; returns every event
/// sent, answered (its batch answered 200) or not.
async fn track_wide_until_stopped(
    addr: std::net::SocketAddr,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> Vec<Sent> {
    let long = |prefix: char, n: usize| format!("{prefix}{n:03}-{}", "w".repeat(190));
    let mut sent = Vec::new();
    for batch in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let events: Vec<Sent> = (0..WIDE_BATCH)
            .map(|i| {
                let counter = (batch * WIDE_BATCH + i) % (WIDE_EXPERIMENTS * WIDE_VARIANTS);
                Sent {
                    uuid: format!("{prefix}-{batch}-{i}"),
                    experiment: long('x', counter / WIDE_VARIANTS),
                    variant: long('v', counter % WIDE_VARIANTS),
                    answered: None,
                }
            })
            .collect();
        // A value: its sums are one more long row each event rewrites.
        let body: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                let mut event = event_json(&e.experiment, &e.variant, &e.uuid);
                event["value"] = 2.5.into();
                event
            })
            .collect();
        let answer = loadgen::request(
            addr,
            "POST",
            "/track",
            &[
                ("content-type", "application/json"),
                ("user-agent", BROWSER),
            ],
            serde_json::Value::Array(body).to_string().as_bytes(),
        )
        .await;
        let answered = answer.is_ok_and(|answer| answer.status == 200);
        let now = Instant::now();
        sent.extend(events.into_iter().map(|mut event| {
            event.answered = answered.then_some(now);
            event
        }));
        if !answered {
            break;
        }
    }
    sent
}

/// Sends every event again in `POST /track` batches; returns the uuids
/// counted now (lost before) and how many were duplicates.
async fn send_again(server: &Server, events: &[&Sent]) -> (Vec<String>, usize) {
    let mut counted = Vec::new();
    let mut duplicates = 0;
    for chunk in events.chunks(1000) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|sent| event_json(&sent.experiment, &sent.variant, &sent.uuid))
            .collect();
        let answer = server
            .request(
                "POST",
                "/track",
                &[
                    ("content-type", "application/json"),
                    ("user-agent", BROWSER),
                ],
                serde_json::Value::Array(body).to_string().as_bytes(),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let answer = answer.json().unwrap();
        for (sent, result) in chunk.iter().zip(answer["results"].as_array().unwrap()) {
            match result["status"].as_str() {
                Some("counted") => counted.push(sent.uuid.clone()),
                Some("duplicate") => duplicates += 1,
                other => panic!("{}: {other:?}", sent.uuid),
            }
        }
    }
    (counted, duplicates)
}

/// What one series of rounds saw.
#[derive(Default)]
struct Tally {
    answered: usize,
    lost: usize,
    oldest_lost: Duration,
}

/// Runs a power cut per round (its `--fsync` mode and how it cuts) on one
/// data directory, and checks what each cost.
async fn cut_power(lazyfs: &Path, rounds: &[(&str, Cut)], moments: &mut Moments) -> Tally {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("backups")).unwrap();
    let mut tally = Tally::default();
    // Every event sent so far, answered or not.
    let mut all_sent: Vec<Sent> = Vec::new();
    for (round, &(mode, how)) in rounds.iter().enumerate() {
        let server_args = ["--api-key", API_KEY, "--fsync", mode];
        let round_began = Instant::now();
        let mut mount =
            LazyMount::mount(lazyfs, &root, &work.path().join(format!("round-{round}")));
        let data = mount.mnt.join("data");
        // Once LazyFS has died, every write fails: expected, not logged.
        let log = if matches!(how, Cut::Random) {
            "error"
        } else {
            "off"
        };
        let mut server = Server::start_logging("127.0.0.1:0", &data, &server_args, log);
        let stop = Arc::new(AtomicBool::new(false));
        // Checkpoint rounds send wide batches only, from two senders, so
        // that the writer always has the next batch: the log grows fastest.
        let load = if matches!(how, Cut::Checkpoint(_)) {
            let senders: Vec<_> = (0..2)
                .map(|sender| {
                    tokio::spawn(track_wide_until_stopped(
                        server.addr,
                        format!("r{round}-w{sender}"),
                        Arc::clone(&stop),
                    ))
                })
                .collect();
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for sender in senders {
                    sent.extend(sender.await.unwrap());
                }
                sent
            })
        } else {
            tokio::spawn(track_until_stopped(server.addr, round, Arc::clone(&stop)))
        };
        let mut backup_began = None;
        let (cut, what) = match how {
            Cut::Random => {
                let load_for = Duration::from_millis(300 + moments.below(2000));
                tokio::time::sleep(load_for).await;
                // One round in three stops tracking 1.6 s before the cut: a
                // store idle after writes must have synced them.
                let idle_first = moments.below(3) == 0;
                if idle_first {
                    stop.store(true, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1600)).await;
                }
                let cut = Instant::now();
                server.kill();
                mount.clear_cache();
                mount.unmount();
                let idle = if idle_first { " then idle 1.6 s" } else { "" };
                (cut, format!("after {load_for:?} of load{idle}"))
            }
            Cut::Checkpoint(moment) => {
                let fault = moment.fault(&root.join("data/lamed.db"), moments);
                mount.arm(&fault);
                let cut = mount.crashed(CHECKPOINT_WITHIN).await.unwrap_or_else(|| {
                    panic!("no checkpoint ({moment:?}) within {CHECKPOINT_WITHIN:?}")
                });
                server.kill();
                mount.unmount();
                let torn = fault
                    .split_once("persist=")
                    .map(|(_, writes)| format!(", its writes {writes} on disk"))
                    .unwrap_or_default();
                (cut, format!("during a checkpoint ({moment:?}{torn})"))
            }
            Cut::Backup(moment) => {
                tokio::time::sleep(Duration::from_millis(300 + moments.below(700))).await;
                mount.arm(&moment.fault());
                backup_began = Some(Instant::now());
                let file = mount.mnt.join("backups").join(BACKUP_FILE);
                let backup = spawn_lamed(&[
                    OsStr::new("backup"),
                    file.as_os_str(),
                    OsStr::new("--data-dir"),
                    data.as_os_str(),
                ]);
                let cut = mount
                    .crashed(Duration::from_secs(20))
                    .await
                    .unwrap_or_else(|| panic!("lamed backup never reached {moment:?}"));
                drop(backup);
                server.kill();
                mount.unmount();
                (cut, format!("during lamed backup ({moment:?})"))
            }
        };
        stop.store(true, Ordering::Relaxed);
        let sent = load.await.unwrap();
        let answered: usize = sent.iter().filter(|s| s.answered.is_some()).count();
        assert!(answered > 0, "{mode} round {round}: nothing was answered");

        // Power is back: lamed on what reached the disk.
        let server =
            Server::start_logging("127.0.0.1:0", &root.join("data"), &server_args, "error");
        let acknowledged: Vec<&Sent> = sent.iter().filter(|s| s.answered.is_some()).collect();
        let (lost, _) = send_again(&server, &acknowledged).await;
        let answered_at: HashMap<String, Instant> = acknowledged
            .iter()
            .map(|s| (s.uuid.clone(), s.answered.unwrap()))
            .collect();
        let oldest = lost
            .iter()
            .map(|uuid| cut.saturating_duration_since(answered_at[uuid.as_str()]))
            .max()
            .unwrap_or_default();
        eprintln!(
            "power cut {what}, --fsync={mode}, round {round}: {answered} answered 200, \
             {} lost (the oldest answered {oldest:?} before the cut), restarted {:?} after \
             the round began",
            lost.len(),
            round_began.elapsed()
        );
        match mode {
            "commit" => assert!(
                lost.is_empty(),
                "--fsync=commit lost {} events answered 200, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ),
            "second" => assert!(
                oldest < SECOND_MODE_BOUND,
                "--fsync=second lost an event answered {oldest:?} before the cut \
                 ({} lost in all)",
                lost.len()
            ),
            _ => {}
        }
        tally.answered += answered;
        tally.lost += lost.len();
        tally.oldest_lost = tally.oldest_lost.max(oldest);
        if let (Cut::Backup(moment), Some(began)) = (how, backup_began) {
            // Counted before this round: every event of the earlier rounds.
            let before = all_sent.len() as u64
                + sent
                    .iter()
                    .filter(|s| s.answered.is_some_and(|at| at < began))
                    .count() as u64;
            let at_most = (all_sent.len() + sent.len()) as u64;
            check_backup(&root, work.path(), moment, before..=at_most);
        }
        all_sent.extend(sent);

        // Everything sent in every round, answered or not, once more:
        // nothing may count twice, so each counter ends at its events.
        let everything: Vec<&Sent> = all_sent.iter().collect();
        let (counted_now, _) = send_again(&server, &everything).await;
        assert!(
            counted_now
                .iter()
                .all(|uuid| !answered_at.contains_key(uuid.as_str())),
            "an event answered 200 and sent again was counted again"
        );
        let counts = server.counts(NAMESPACE).await;
        let total: u64 = counts.values().sum();
        assert_eq!(
            total,
            all_sent.len() as u64,
            "--fsync={mode}, round {round}: the counters do not hold each event once"
        );
        // A clean stop checkpoints the log: each round's checkpoint then
        // comes after 16 MiB of its own, into a database holding the rest.
        let mut server = server;
        assert!(server.terminate().success(), "lamed did not stop cleanly");
    }
    tally
}

/// What `lamed restore` makes of `file` (into a new directory under
/// `work`): the events it counts and those in its dedupe memory, or why it
/// refused.
fn restore(file: &Path, work: &Path) -> Result<(u64, u64), String> {
    let restored = tempfile::tempdir_in(work).unwrap();
    let (code, stdout, stderr) = run_lamed(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored.path().to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    match code {
        Some(0) => {
            let number_before = |words: &str| -> u64 {
                let (before, _) = stdout.split_once(words).expect(words);
                let digits = before.rsplit(|c: char| !c.is_ascii_digit()).next();
                digits.and_then(|n| n.parse().ok()).expect(words)
            };
            Ok((
                number_before(" events counted"),
                number_before(" events in the dedupe memory"),
            ))
        }
        Some(1) => Err(stderr),
        other => panic!("lamed restore exited {other:?}: {stderr}"),
    }
}

/// After a cut during `lamed backup` at `moment`: before the rename, no
/// backup file (restore says so); after it, a whole one, which restore
/// accepts, counting `counted` events (from every event answered before
/// the backup began to every event sent), each in its dedupe memory. The
/// copy left under its temporary name is refused as no backup, or whole.
fn check_backup(
    root: &Path,
    work: &Path,
    moment: BackupMoment,
    counted: std::ops::RangeInclusive<u64>,
) {
    let whole = |what: &str, (events, remembered): (u64, u64)| {
        assert!(
            counted.contains(&events),
            "{what} counts {events} events, not within {counted:?}"
        );
        assert_eq!(
            events, remembered,
            "{what}: counts and dedupe memory differ"
        );
    };
    let backups = root.join("backups");
    let file = backups.join(BACKUP_FILE);
    let outcome = restore(&file, work);
    if matches!(moment, BackupMoment::AfterRename) {
        let summary = outcome.unwrap_or_else(|why| panic!("a whole backup was refused: {why}"));
        whole("the backup", summary);
    } else {
        assert!(
            !file.exists(),
            "a cut {moment:?} left a file under the backup's name"
        );
        let why = outcome.expect_err("restore of no file");
        assert!(why.contains("no backup at"), "{why}");
    }
    let mut partial = "none".to_owned();
    for entry in std::fs::read_dir(&backups).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&format!("{BACKUP_FILE}.partial-")) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue; // its journal
        }
        partial = match restore(&path, work) {
            Ok(summary) => {
                whole("the copy under the temporary name", summary);
                "whole".into()
            }
            Err(why) => {
                assert!(why.contains("is not a lamed backup"), "{why}");
                "refused (not a lamed backup)".into()
            }
        };
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!(
        "backup cut {moment:?}: {} under the backup's name; its temporary copy: {partial}",
        if file.exists() { "whole" } else { "nothing" }
    );
    // The next round's cut may come before its rename.
    let _ = std::fs::remove_file(&file);
}

/// Makes in `dir` a data directory of the oldest layout a lamed upgrades:
/// the released fixture of `upgrade.rs` (layout 0), its dedupe log turned
/// back into one row per event (table `seen`, before `seen_log`), plus
/// [`LEGACY_EVENTS`] events of [`NAMESPACE`] remembered that way and
/// [`LEGACY_MEMBERS`] memberships under their client ids. Returns those
/// events.
fn legacy_data_dir(dir: &Path) -> Vec<Sent> {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("lamed.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade/data/lamed.db"),
        &db,
    )
    .unwrap();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let events: Vec<Sent> = (0..LEGACY_EVENTS)
        .map(|i| Sent {
            uuid: format!("legacy-{i}"),
            experiment: format!("legacy{}", i % 10),
            variant: ["a", "b"][i % 2].into(),
            answered: None,
        })
        .collect();
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "CREATE TABLE seen (id INTEGER PRIMARY KEY, key BLOB NOT NULL, first_seen INTEGER NOT NULL);",
    )
    .unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO seen (key, first_seen) VALUES (?1, ?2)")
            .unwrap();
        let log: Vec<(i64, Vec<u8>)> = tx
            .prepare("SELECT first_seen, keys FROM seen_log ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (first_seen, keys) in log {
            for key in keys.chunks_exact(16) {
                insert.execute(rusqlite::params![key, first_seen]).unwrap();
            }
        }
        let mut daily: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for (i, event) in events.iter().enumerate() {
            let key = lamed::Event {
                segment: Default::default(),
                namespace: NAMESPACE.into(),
                experiment: event.experiment.clone(),
                variant: event.variant.clone(),
                event: "done".into(),
                uuid: event.uuid.clone(),
                value: None,
            }
            .dedupe_key();
            // One millisecond each, as events arrive: one log row each once
            // converted.
            let first_seen = now_ms - (LEGACY_EVENTS - i) as i64;
            insert
                .execute(rusqlite::params![&key[..], first_seen])
                .unwrap();
            *daily
                .entry((&event.experiment, &event.variant))
                .or_default() += 1;
        }
        let mut count = tx
            .prepare("INSERT INTO daily VALUES (?1, ?2, 'done', ?3, ?4, ?5)")
            .unwrap();
        for ((experiment, variant), n) in daily {
            count
                .execute(rusqlite::params![
                    NAMESPACE,
                    experiment,
                    variant,
                    now_ms / 86_400_000,
                    n
                ])
                .unwrap();
        }
        let mut member = tx
            .prepare("INSERT INTO members VALUES ('sixpack', 'sp-color', ?1, 'green')")
            .unwrap();
        for i in 0..LEGACY_MEMBERS {
            member.execute([format!("legacy-client-{i}")]).unwrap();
        }
    }
    tx.execute_batch("DROP TABLE seen_log;").unwrap();
    tx.commit().unwrap();
    // Closing the last connection folds the log into the file.
    conn.close().unwrap();
    assert!(!dir.join("lamed.db-wal").exists());
    events
}

/// Every namespace's counts, as `/experiments` answers them.
async fn every_count(server: &Server) -> BTreeMap<&'static str, BTreeMap<loadgen::CounterId, u64>> {
    let mut counts = BTreeMap::new();
    for namespace in ["alephbet", "shop", "sixpack", NAMESPACE] {
        counts.insert(namespace, server.counts(namespace).await);
    }
    counts
}

/// The layout of the store at `db` after its upgrade: the version, whether
/// the one-row-per-event log is gone, and the memberships (all, in the
/// `members` table of layouts up to 2 or the log of layout 3, and those
/// still under a client id).
fn upgraded_layout(db: &Path) -> (i64, bool, usize, usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    let query = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
    let has = |table: &str| {
        query(&format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
        )) > 0
    };
    let (mut members, mut plain) = (0, 0);
    if has("members") {
        members += query("SELECT count(*) FROM members");
        plain += query("SELECT count(*) FROM members WHERE member LIKE 'legacy-client-%'");
    }
    if has("member_log") {
        members += query("SELECT coalesce(sum(members), 0) FROM member_log");
    }
    (version, !has("seen"), members as usize, plain as usize)
}

/// How far the upgrade of the store in `data` got on disk, read from a
/// copy in `scratch` (reading the store itself would recover its log
/// before lamed does).
fn layout_after_cut(data: &Path, scratch: &Path) -> String {
    std::fs::create_dir_all(scratch).unwrap();
    for name in ["lamed.db", "lamed.db-wal"] {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), scratch.join(name)).unwrap();
        }
    }
    let (version, converted, _, plain) = upgraded_layout(&scratch.join("lamed.db"));
    let step = |done: bool| if done { "done" } else { "not yet" };
    format!(
        "layout version {version}, memberships hashed: {}, log converted: {}",
        step(plain == 0),
        step(converted)
    )
}

/// Copies the store of `template` into a new `data` directory.
fn fresh_copy(template: &Path, data: &Path) {
    let _ = std::fs::remove_dir_all(data);
    std::fs::create_dir_all(data).unwrap();
    std::fs::copy(template.join("lamed.db"), data.join("lamed.db")).unwrap();
}

/// Power cuts during an upgrade: see the module's comment.
async fn cut_upgrades(lazyfs: &Path, moments: &mut Moments) {
    let work = tempfile::tempdir().unwrap();
    let template = work.path().join("template");
    let events = legacy_data_dir(&template);
    let (root, data) = (work.path().join("root"), work.path().join("root/data"));
    let server_args = ["--api-key", API_KEY, "--uuid-expiry-seconds", "0"];
    let (_, _, members_before, _) = upgraded_layout(&template.join("lamed.db"));
    let commit = ["--fsync", "commit"];

    // Uncut, through LazyFS: the counts every cut upgrade must end with,
    // and how long an upgrade takes there.
    fresh_copy(&template, &data);
    let mount = LazyMount::mount(lazyfs, &root, &work.path().join("uncut"));
    let began = Instant::now();
    let server = Server::start_logging(
        "127.0.0.1:0",
        &mount.mnt.join("data"),
        &[&server_args[..], &commit].concat(),
        "error",
    );
    let upgrade_took = began.elapsed();
    let expected = every_count(&server).await;
    drop(server);
    drop(mount);
    // The layout this lamed writes: what every cut upgrade must reach.
    let (current_layout, ..) = upgraded_layout(&data.join("lamed.db"));
    let legacy_total: u64 = expected[NAMESPACE].values().sum();
    assert_eq!(legacy_total, LEGACY_EVENTS as u64);

    let everything: Vec<&Sent> = events.iter().collect();
    for round in 0..UPGRADE_CUTS {
        fresh_copy(&template, &data);
        let mut mount = LazyMount::mount(lazyfs, &root, &work.path().join(format!("cut-{round}")));
        let at = Duration::from_micros(moments.below(upgrade_took.as_micros() as u64));
        // Every other upgrade syncs each of its commits: the cuts then
        // find it at different steps on disk, not only before its first.
        let mode = ["commit", "second"][round % 2];
        let upgrading = spawn_lamed(&[
            OsStr::new("serve"),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--data-dir"),
            mount.mnt.join("data").as_os_str(),
            OsStr::new("--api-key"),
            OsStr::new(API_KEY),
            OsStr::new("--fsync"),
            OsStr::new(mode),
        ]);
        tokio::time::sleep(at).await;
        drop(upgrading);
        mount.clear_cache();
        mount.unmount();
        let found = layout_after_cut(&data, &work.path().join(format!("found-{round}")));

        let server = Server::start_logging("127.0.0.1:0", &data, &server_args, "error");
        assert_eq!(
            every_count(&server).await,
            expected,
            "cut {at:?} into an upgrade: other counts"
        );
        let (counted, duplicates) = send_again(&server, &everything).await;
        assert!(
            counted.is_empty(),
            "cut {at:?} into an upgrade: {} events forgotten, e.g. {:?}",
            counted.len(),
            &counted[..counted.len().min(5)]
        );
        drop(server);
        let (version, converted, members, plain) = upgraded_layout(&data.join("lamed.db"));
        assert_eq!(
            (version, converted, members, plain),
            (current_layout, true, members_before, 0),
            "cut {at:?} into an upgrade: layout (version, log converted, memberships, unhashed)"
        );
        eprintln!(
            "power cut {at:?} into an upgrade of {upgrade_took:?} (--fsync={mode}; on disk: \
             {found}): counts kept, {duplicates} events still duplicates, {members} \
             memberships hashed"
        );
    }
}

/// The LazyFS binary, or `None` after saying why the test is skipped.
fn lazyfs_or_skip() -> Option<PathBuf> {
    lazyfs_binary()
        .map_err(|why| eprintln!("SKIPPED power-cut test: {why}"))
        .ok()
}

/// Power cuts at random moments in each mode: see the module's comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_lose_at_most_what_each_mode_promises() {
    let Some(lazyfs) = lazyfs_or_skip() else {
        return;
    };
    let mut moments = Moments::seeded("power cuts");
    for (mode, rounds) in ROUNDS {
        let tally = cut_power(&lazyfs, &vec![(mode, Cut::Random); rounds], &mut moments).await;
        eprintln!(
            "power cuts, --fsync={mode}: {rounds} rounds, {} answered 200, {} lost, \
             the oldest lost answered {:?} before its cut",
            tally.answered, tally.lost, tally.oldest_lost
        );
    }
}

/// Power cuts during checkpoints: see the module's comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_during_checkpoints_keep_the_promises() {
    let Some(lazyfs) = lazyfs_or_skip() else {
        return;
    };
    let mut moments = Moments::seeded("power cuts during checkpoints");
    summarise("checkpoints", &CHECKPOINT_CUTS, &lazyfs, &mut moments).await;
}

/// Power cuts during `lamed backup`: see the module's comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_during_backups_leave_no_half_backup() {
    let Some(lazyfs) = lazyfs_or_skip() else {
        return;
    };
    let mut moments = Moments::seeded("power cuts during backups");
    summarise("backups", &BACKUP_CUTS, &lazyfs, &mut moments).await;
}

/// Runs `cuts` on one data directory and prints what they cost.
async fn summarise(what: &str, cuts: &[(&str, Cut)], lazyfs: &Path, moments: &mut Moments) {
    let tally = cut_power(lazyfs, cuts, moments).await;
    eprintln!(
        "power cuts during {what}: {} rounds, {} answered 200, {} lost, \
         the oldest lost answered {:?} before its cut",
        cuts.len(),
        tally.answered,
        tally.lost,
        tally.oldest_lost
    );
}

/// Power cuts during the upgrade of an older data directory: see the
/// module's comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_during_an_upgrade_keep_every_count() {
    let Some(lazyfs) = lazyfs_or_skip() else {
        return;
    };
    cut_upgrades(
        &lazyfs,
        &mut Moments::seeded("power cuts during an upgrade"),
    )
    .await;
}
