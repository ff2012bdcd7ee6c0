//! Connection floods against the real `lamed serve`: 10,000 idle and
//! half-sent connections neither stop a visitor from being served nor
//! take the server's memory; at `max_connections` new connections wait in
//! the kernel's backlog until `header_timeout_ms` frees a slot.

mod util;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use util::Server;

/// What a desktop Chrome sends: not a bot, so its events count.
const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

/// The flood.
const IDLE_CONNECTIONS: usize = 10_000;

/// Every tenth connection of the flood sends the start of a request head
/// and stops there (slowloris), so hyper holds a read buffer for it.
const HALF_SENT_EVERY: usize = 10;

/// How much the server's resident memory may grow while it holds the
/// flood: 8 KiB a connection on average, 80 MiB in all (measured, debug
/// build: 4.5 KiB, from about 1.5 KiB for a connection that sent nothing,
/// whose hyper buffers are not made yet, and about 30 KiB for a half-sent
/// one, which has them).
const FLOOD_RSS_BOUND_KIB: u64 = (IDLE_CONNECTIONS as u64) * 8;

/// Opens `count` connections to `addr`, many at a time; every
/// `half_sent_every`-th sends an unfinished request head.
async fn open_connections(
    addr: SocketAddr,
    count: usize,
    half_sent_every: usize,
) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    let mut pending = JoinSet::new();
    for i in 0..count {
        if pending.len() >= 256 {
            streams.push(pending.join_next().await.unwrap().unwrap());
        }
        pending.spawn(async move {
            let mut stream = TcpStream::connect(addr)
                .await
                .unwrap_or_else(|err| panic!("connection {i} refused: {err}"));
            if half_sent_every > 0 && i % half_sent_every == 0 {
                stream
                    .write_all(b"GET /track?experiment=slow HTTP/1.1\r\nhost: x\r\n")
                    .await
                    .unwrap();
            }
            stream
        });
    }
    while let Some(stream) = pending.join_next().await {
        streams.push(stream.unwrap());
    }
    streams
}

/// A metric's value on `/metrics` (the first line starting with `name`).
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{metrics}"))
}

/// A visitor's event, tracked as AlephBet's browser sends it.
async fn visit(server: &Server, uuid: &str) -> util::Answer {
    let path = util::track("flood", "hero", "red", "participate", uuid);
    server
        .request("GET", &path, &[("user-agent", BROWSER)], b"")
        .await
}

/// With the default limits, 10,000 idle connections (a tenth of them
/// stuck halfway through a request head) are all accepted and held, a
/// visitor is still served and counted at once, and the server's memory
/// grows by less than 8 KiB a connection.
#[tokio::test]
async fn ten_thousand_idle_connections_neither_block_a_visitor_nor_take_memory() {
    let files = lamed::server::connections::raise_open_file_limit().unwrap_or(0);
    assert!(
        files >= IDLE_CONNECTIONS as u64 + 500,
        "this test opens {IDLE_CONNECTIONS} connections but may open only {files} files: raise the hard open-file limit (ulimit -Hn)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let warm = visit(&server, "warm-up").await;
    assert_eq!(warm.status, 200, "{warm:?}");
    let idle_rss = server.rss_kib();

    let started = Instant::now();
    let flood = open_connections(server.addr, IDLE_CONNECTIONS, HALF_SENT_EVERY).await;
    let opened_in = started.elapsed();

    // Accepted by lamed, not only queued in the kernel: /metrics counts
    // them (and its own connection).
    let mut open = 0.0;
    for _ in 0..300 {
        let metrics = server.get_with_key("/metrics").await;
        open = metric(
            &String::from_utf8_lossy(&metrics.body),
            "lamed_connections_open",
        );
        if open > IDLE_CONNECTIONS as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(open > IDLE_CONNECTIONS as f64, "{open} connections open");

    let asked = Instant::now();
    let answer = visit(&server, "visitor-1").await;
    let answered_in = asked.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(&answer.body[..], b"{}");
    assert!(answered_in < Duration::from_secs(1), "{answered_in:?}");
    let flood_rss = server.rss_kib();
    let metrics = server.get_with_key("/metrics").await;
    let counted = metric(
        &String::from_utf8_lossy(&metrics.body),
        "lamed_events_counted_total",
    );
    assert_eq!(counted, 2.0, "the warm-up and the visitor's event");

    let grown = flood_rss.saturating_sub(idle_rss);
    eprintln!(
        "{IDLE_CONNECTIONS} connections opened in {opened_in:?}; visitor answered in {answered_in:?}; \
         RSS {idle_rss} KiB idle, {flood_rss} KiB with the flood (+{:.2} KiB a connection)",
        grown as f64 / IDLE_CONNECTIONS as f64
    );
    assert!(
        grown <= FLOOD_RSS_BOUND_KIB,
        "RSS grew by {grown} KiB for {IDLE_CONNECTIONS} connections (bound {FLOOD_RSS_BOUND_KIB} KiB)"
    );
    drop(flood);
}

/// At `max_connections`, lamed stops accepting: a new visitor's
/// connection is not closed but waits in the kernel's backlog, and its
/// request is answered once the idle connections holding the slots are
/// closed by `header_timeout_ms`. The wait and the timeouts are counted.
#[tokio::test]
async fn at_the_connection_cap_visitors_wait_for_idle_connections_to_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-connections", "100", "--header-timeout-ms", "1000"],
    );
    let idle = open_connections(server.addr, 100, 0).await;
    let asked = Instant::now();
    let answer = visit(&server, "visitor-1").await;
    let waited = asked.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        waited >= Duration::from_millis(500),
        "answered after {waited:?}, though every slot was held"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    // Each idle connection is closed by the header timeout (the last
    // ones a moment after the first freed a slot).
    let mut timed_out = 0.0;
    let mut metrics = String::new();
    for _ in 0..40 {
        let answer = server.get_with_key("/metrics").await;
        metrics = String::from_utf8_lossy(&answer.body).into_owned();
        timed_out = metric(
            &metrics,
            "lamed_connections_timed_out_total{stage=\"request_head\"}",
        );
        if timed_out >= 100.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(timed_out >= 100.0, "{timed_out} timed out");
    let waits = metric(
        &metrics,
        "lamed_connection_limit_waits_total{limit=\"connections\"}",
    );
    assert!(waits >= 1.0, "{waits} waits");
    assert_eq!(metric(&metrics, "lamed_events_counted_total"), 1.0);
    drop(idle);
}
