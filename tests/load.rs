//! Exactness under load and across crashes, over real HTTP against the
//! real binary.

mod util;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use lamed_load::{self as loadgen, CounterId, Workload, WorkloadSpec};
use util::Server;

/// Per counter, the identities of the events the server answered 200.
fn acknowledged_by_counter(
    workload: &Workload,
    statuses: &[u16],
    into: &mut BTreeMap<CounterId, HashSet<[u8; 16]>>,
) {
    for (event, status) in workload.events.iter().zip(statuses) {
        if *status == 200 {
            into.entry((
                event.experiment.clone(),
                event.event.clone(),
                event.variant.clone(),
            ))
            .or_default()
            .insert(event.dedupe_key());
        }
    }
}

fn workload(namespace: &str, total: usize, seed: u64) -> Workload {
    Workload::generate(&WorkloadSpec::standard(namespace, total, 0.25, seed))
}

/// 100,000 events from 64 concurrent connections, a quarter of them
/// duplicates (some racing in parallel), give exactly the true counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_load_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let workload = workload("concurrency", 100_000, 42);
    let duplicates = workload.events.len() as u64 - workload.truth.values().sum::<u64>();
    assert!(duplicates > 20_000, "{duplicates}");
    let report = loadgen::run(server.addr, Arc::new(workload.paths("/track")), 64).await;
    assert_eq!(report.count(200), 100_000);
    let mismatches = workload.mismatches(&server.counts("concurrency").await);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// The server is killed with SIGKILL while a load runs, at several points.
/// After each restart, every counter holds at least the events acknowledged
/// with 200 (nothing acknowledged is lost) and at most the truth; after
/// the client-style re-send of every event, every count equals the truth
/// (nothing is counted twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let namespace = "crash";
    let workload = workload(namespace, 30_000, 9);
    let paths = Arc::new(workload.paths("/track"));
    let mut server = Server::start(&data, &[]);
    let listen = server.addr.to_string();
    let mut acknowledged = BTreeMap::new();

    for (round, kill_after) in [150u64, 400, 700].into_iter().enumerate() {
        let addr = server.addr;
        let load = tokio::spawn(loadgen::run(addr, Arc::clone(&paths), 32));
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        server.kill();
        let report = load.await.unwrap();
        let answered = report.count(200);
        assert!(
            answered > 0,
            "round {round}: nothing was answered before the kill"
        );
        assert!(
            answered < paths.len(),
            "round {round}: the kill came after the load"
        );
        acknowledged_by_counter(&workload, &report.statuses, &mut acknowledged);
        server = Server::start_on(&listen, &data, &[]);
        let counts = server.counts(namespace).await;
        for (id, uuids) in &acknowledged {
            let got = counts.get(id).copied().unwrap_or(0);
            assert!(
                got >= uuids.len() as u64,
                "round {round}: {id:?} lost acknowledged events: {got} < {}",
                uuids.len()
            );
            assert!(
                got <= workload.truth[id],
                "round {round}: {id:?} over-counted: {got}"
            );
        }
    }
    // The retry queue: every event is sent again, twice over.
    for _ in 0..2 {
        let report = loadgen::run(server.addr, Arc::clone(&paths), 32).await;
        assert_eq!(report.count(200), paths.len());
    }
    let mismatches = workload.mismatches(&server.counts(namespace).await);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// SIGTERM during a load: the server stops accepting, finishes what is in
/// flight, commits, and exits 0; every event answered 200 is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let workload = workload("graceful", 20_000, 3);
    let mut server = Server::start(&data, &[]);
    let load = tokio::spawn(loadgen::run(
        server.addr,
        Arc::new(workload.paths("/track")),
        32,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let report = load.await.unwrap();
    assert!(report.count(200) > 0 && report.count(200) < workload.events.len());
    let mut acknowledged = BTreeMap::new();
    acknowledged_by_counter(&workload, &report.statuses, &mut acknowledged);
    let server = Server::start(&data, &[]);
    let counts = server.counts("graceful").await;
    for (id, uuids) in &acknowledged {
        assert!(
            counts.get(id).copied().unwrap_or(0) >= uuids.len() as u64,
            "{id:?} lost events"
        );
    }
}
