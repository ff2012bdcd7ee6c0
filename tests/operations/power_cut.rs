//! Power cuts under load, on LazyFS: a FUSE file system that keeps what is
//! written in its own cache until `fsync`, and drops that cache on command,
//! as a power cut drops what never reached the disk.
//!
//! Each round mounts the data directory's parent through LazyFS, runs
//! `lamed serve` on it, tracks unique events from several keep-alive
//! connections, and cuts power at a random moment, in the order a real cut
//! happens: `kill -9` lamed, drop LazyFS's cache, unmount. Then lamed
//! starts on what reached the disk (the directory itself, not through
//! LazyFS), and every event sent is sent again in batches, whose answers
//! say which events were lost (`counted` now) and which survived
//! (`duplicate`). Per `--fsync` mode:
//! - `commit`: no event answered 200 is lost;
//! - `second` (the default): every lost event was answered less than 1.5 s
//!   before the cut;
//! - every mode: the store opens, and after the re-sends every counter
//!   holds each event once (nothing counted twice).
//!
//! LazyFS is found at `$LAMED_LAZYFS` (scripts/test.sh builds it), else at
//! `target/lazyfs/lazyfs/build/lazyfs`. Without FUSE or LazyFS the test is
//! skipped, saying why; with `$LAMED_LAZYFS` set, a missing binary fails it.

use crate::util;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use util::{track, Server};

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
                 [cache.simple]\ncustom_size=\"1gb\"\nblocks_per_page=1\n\
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

/// One event sent during a round (a goal, so that `/experiments` shows its
/// count); `answered` is when its 200 arrived.
struct Sent {
    uuid: String,
    experiment: String,
    answered: Option<Instant>,
}

/// A small seeded generator for the cut moments (SplitMix64), so that a
/// failing seed, printed, can be run again with `LAMED_POWER_CUT_SEED`.
struct Moments(u64);

impl Moments {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
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

/// Sends every event again in `POST /track` batches; returns the uuids
/// counted now (lost before) and how many were duplicates.
async fn send_again(server: &Server, events: &[&Sent]) -> (Vec<String>, usize) {
    let mut counted = Vec::new();
    let mut duplicates = 0;
    for chunk in events.chunks(1000) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|sent| {
                serde_json::json!({
                    "namespace": NAMESPACE, "experiment": sent.experiment, "variant": "a",
                    "event": "done", "uuid": sent.uuid
                })
            })
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

/// What one mode's rounds saw.
#[derive(Default)]
struct Tally {
    answered: usize,
    lost: usize,
    oldest_lost: Duration,
}

/// Runs `rounds` power cuts with `--fsync=mode` on one data directory, and
/// checks what each cost.
async fn cut_power(lazyfs: &Path, mode: &str, rounds: usize, moments: &mut Moments) -> Tally {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let server_args = ["--api-key", API_KEY, "--fsync", mode];
    let mut tally = Tally::default();
    // Every event sent so far, answered or not, by uuid.
    let mut all_sent: Vec<Sent> = Vec::new();
    for round in 0..rounds {
        let mut mount =
            LazyMount::mount(lazyfs, &root, &work.path().join(format!("round-{round}")));
        let mut server = Server::start_logging(
            "127.0.0.1:0",
            &mount.mnt.join("data"),
            &server_args,
            "error",
        );
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(track_until_stopped(server.addr, round, Arc::clone(&stop)));
        let load_for = Duration::from_millis(300 + moments.below(2000));
        tokio::time::sleep(load_for).await;
        // One round in three stops tracking 1.6 s before the cut: a store
        // idle after writes must have synced them.
        let idle_first = moments.below(3) == 0;
        if idle_first {
            stop.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1600)).await;
        }
        let cut = Instant::now();
        server.kill();
        mount.clear_cache();
        mount.unmount();
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
        let ages: Vec<Duration> = lost
            .iter()
            .map(|uuid| cut.saturating_duration_since(answered_at[uuid.as_str()]))
            .collect();
        let oldest = ages.iter().max().copied().unwrap_or_default();
        eprintln!(
            "power cut, --fsync={mode}, round {round}: {answered} answered 200 in {load_for:?}{}, \
             {} lost (the oldest answered {oldest:?} before the cut)",
            if idle_first { " then idle 1.6 s" } else { "" },
            lost.len()
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
        drop(server);
    }
    tally
}

/// Power cuts at random moments in each mode: see the module's comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_lose_at_most_what_each_mode_promises() {
    let lazyfs = match lazyfs_binary() {
        Ok(path) => path,
        Err(why) => {
            eprintln!("SKIPPED power-cut test: {why}");
            return;
        }
    };
    let seed = std::env::var("LAMED_POWER_CUT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("power cut moments: LAMED_POWER_CUT_SEED={seed}");
    let mut moments = Moments(seed);
    for (mode, rounds) in ROUNDS {
        let tally = cut_power(&lazyfs, mode, rounds, &mut moments).await;
        eprintln!(
            "power cuts, --fsync={mode}: {rounds} rounds, {} answered 200, {} lost, \
             the oldest lost answered {:?} before its cut",
            tally.answered, tally.lost, tally.oldest_lost
        );
    }
}
