//! An HTTP/1.1 load generator for `GET /track`: builds a workload with a
//! known truth (unique events plus re-sent duplicates), sends it over
//! keep-alive connections, and checks the server's counts against the truth.
//! Used by the `lamed-load` binary and by lamed's tests; a workspace member
//! of its own, so that what `lamed` users build holds only the product.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Write as _;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use lamed_client::{alephbet_encode, path_segment, request, Answer, USER_AGENT};

use lamed_core::model::{Event, PARTICIPATE};

/// The `GET /track` path and query AlephBet would send for `event`.
pub fn track_path(path: &str, event: &Event) -> String {
    let mut query = format!(
        "{path}?experiment={}&uuid={}&variant={}&event={}&namespace={}",
        alephbet_encode(&event.experiment),
        alephbet_encode(&event.uuid),
        alephbet_encode(&event.variant),
        alephbet_encode(&event.event),
        alephbet_encode(&event.namespace),
    );
    if let Some(value) = event.value {
        query.push_str(&format!("&value={value}"));
    }
    query
}

/// Counter identity within a namespace: (experiment, event, variant).
pub type CounterId = (String, String, String);

/// A list of events to send, and the counts a correct server ends with.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The namespace every event is in.
    pub namespace: String,
    /// Events in sending order; duplicates are copies of earlier events.
    pub events: Vec<Event>,
    /// Unique events per counter.
    pub truth: BTreeMap<CounterId, u64>,
}

/// The shape of a generated workload.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// The namespace.
    pub namespace: String,
    /// Events to send, duplicates included.
    pub total: usize,
    /// Share of `total` that re-sends an already generated event.
    pub duplicate_fraction: f64,
    /// Experiments to spread events over.
    pub experiments: usize,
    /// Variants per experiment.
    pub variants: usize,
    /// Goals per experiment (besides `participate`).
    pub goals: usize,
    /// Seed of the generator, so a run can be repeated.
    pub seed: u64,
}

impl WorkloadSpec {
    /// The workload used by `lamed-load` and the tests: 4 experiments of 3
    /// variants and 2 goals each.
    pub fn standard(namespace: &str, total: usize, duplicate_fraction: f64, seed: u64) -> Self {
        WorkloadSpec {
            namespace: namespace.to_owned(),
            total,
            duplicate_fraction,
            experiments: 4,
            variants: 3,
            goals: 2,
            seed,
        }
    }
}

impl Workload {
    /// Generates a workload: unique events with random uuids, with
    /// duplicates placed close to their originals (so many race in
    /// parallel) and some far away.
    pub fn generate(spec: &WorkloadSpec) -> Workload {
        let mut rng = SplitMix64(spec.seed);
        let mut events: Vec<Event> = Vec::with_capacity(spec.total);
        let mut truth = BTreeMap::new();
        for _ in 0..spec.total {
            let duplicate = !events.is_empty() && rng.unit() < spec.duplicate_fraction;
            if duplicate {
                // Half re-send a recent event (likely in flight), half any.
                let back = if rng.unit() < 0.5 {
                    1 + rng.below(64.min(events.len()))
                } else {
                    1 + rng.below(events.len())
                };
                events.push(events[events.len() - back].clone());
                continue;
            }
            let experiment = format!("load experiment {}", rng.below(spec.experiments.max(1)));
            let variant = format!("variant {}", rng.below(spec.variants.max(1)));
            let event = if spec.goals == 0 || rng.unit() < 0.6 {
                PARTICIPATE.to_owned()
            } else {
                format!("goal {}", rng.below(spec.goals))
            };
            let uuid = format!("{:016x}{:016x}", rng.next(), rng.next());
            *truth
                .entry((experiment.clone(), event.clone(), variant.clone()))
                .or_default() += 1;
            events.push(Event {
                segment: Default::default(),
                namespace: spec.namespace.clone(),
                experiment,
                variant,
                event,
                uuid,
                value: None,
            });
        }
        Workload {
            namespace: spec.namespace.clone(),
            events,
            truth,
        }
    }

    /// The request paths for these events.
    pub fn paths(&self, path: &str) -> Vec<String> {
        self.events.iter().map(|e| track_path(path, e)).collect()
    }

    /// Per counter, the distinct events the server answered 200 (given the
    /// status of each request, in workload order): after a fault, each
    /// counter must hold at least these, since a 200 means stored.
    pub fn acknowledged(&self, statuses: &[u16]) -> BTreeMap<CounterId, HashSet<[u8; 16]>> {
        let mut acknowledged: BTreeMap<CounterId, HashSet<[u8; 16]>> = BTreeMap::new();
        for (event, status) in self.events.iter().zip(statuses) {
            if *status == 200 {
                acknowledged
                    .entry((
                        event.experiment.clone(),
                        event.event.clone(),
                        event.variant.clone(),
                    ))
                    .or_default()
                    .insert(event.dedupe_key());
            }
        }
        acknowledged
    }

    /// Differences between the server's counts and the truth, as readable
    /// lines; empty when they agree exactly.
    pub fn mismatches(&self, counts: &BTreeMap<CounterId, u64>) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, want) in &self.truth {
            let got = counts.get(id).copied().unwrap_or(0);
            if got != *want {
                problems.push(format!("{id:?}: counted {got}, truth {want}"));
            }
        }
        for (id, got) in counts {
            if *got > 0 && !self.truth.contains_key(id) {
                problems.push(format!("{id:?}: counted {got}, truth 0"));
            }
        }
        problems
    }
}

/// Reads counters out of a Lamed `/experiments` response (trials become
/// `participate` counters).
pub fn counts_from_results(body: &serde_json::Value) -> anyhow::Result<BTreeMap<CounterId, u64>> {
    let mut counts = BTreeMap::new();
    let entries = body.as_array().context("results are not an array")?;
    for entry in entries.iter().skip(1) {
        let experiment = entry["experiment"].as_str().context("no experiment name")?;
        for goal in entry["goals"].as_array().context("no goals array")? {
            let goal_name = goal["goal"].as_str().context("no goal name")?;
            for result in goal["results"].as_array().context("no results array")? {
                let label = result["label"].as_str().context("no label")?;
                let get = |field: &str| result[field].as_u64().context("count is not a number");
                counts.insert(
                    (
                        experiment.to_owned(),
                        goal_name.to_owned(),
                        label.to_owned(),
                    ),
                    get("successes")?,
                );
                counts.insert(
                    (
                        experiment.to_owned(),
                        PARTICIPATE.to_owned(),
                        label.to_owned(),
                    ),
                    get("trials")?,
                );
            }
        }
    }
    // Absent counters show as 0 in the shape; drop them for comparison.
    counts.retain(|_, count| *count > 0);
    Ok(counts)
}

/// What a load run observed.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Status per request, in workload order; 0 = no HTTP answer.
    pub statuses: Vec<u16>,
    /// Latency of every answered request.
    pub latencies: Vec<Duration>,
    /// Latency of every request answered 200: under overload, what an
    /// accepted event waited, apart from the quick 503s.
    pub accepted_latencies: Vec<Duration>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Requests given up unanswered at their deadline (see
    /// [`run_paced`]'s `timeout`), counted in `statuses` as 0.
    pub timed_out: usize,
}

impl LoadReport {
    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1) of answered requests.
    pub fn latency_quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }

    /// The latency at quantile `q` (0..=1) of requests answered 200.
    pub fn accepted_latency_quantile(&self, q: f64) -> Duration {
        quantile(&self.accepted_latencies, q)
    }

    /// The latency at quantile `q` (0..=1) of every request, those given
    /// up counted as waiting `timeout` (what a visitor saw, at least).
    pub fn latency_quantile_with_timeouts(&self, q: f64, timeout: Duration) -> Duration {
        let mut all = self.latencies.clone();
        all.extend(std::iter::repeat_n(timeout, self.timed_out));
        quantile(&all, q)
    }

    /// Requests answered with `status`.
    pub fn count(&self, status: u16) -> usize {
        self.statuses.iter().filter(|s| **s == status).count()
    }
}

/// The value at quantile `q` (0..=1) of `latencies`; zero when empty.
fn quantile(latencies: &[Duration], q: f64) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

/// Refuses any address that is not loopback: load never leaves the machine.
pub fn require_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("refusing to send load to {addr}: only 127.0.0.1 and ::1 are allowed");
    }
    Ok(())
}

/// Sends `GET` for every path over `connections` keep-alive connections,
/// each as soon as a connection is free (a closed loop). Failed
/// connections are re-opened; requests that get no answer are recorded
/// with status 0.
pub async fn run(addr: SocketAddr, paths: Arc<Vec<String>>, connections: usize) -> LoadReport {
    run_paced(addr, paths, connections, None, None).await
}

/// As [`run`], but with `rate` (requests per second) the `i`-th request is
/// due `i / rate` seconds after the start (an open loop, as a site's
/// visitors are), and its latency counts from when it was due: a server
/// that falls behind shows it in the latencies instead of slowing the
/// offered load down.
///
/// With `timeout`, a request not sent within that long of when it was due
/// (no connection was free) is not sent, and one sent but unanswered that
/// long after it was sent is given up, as a visitor who leaves (its
/// connection is closed, and re-opened for the next). Both count as
/// status 0, and in [`LoadReport::timed_out`].
pub async fn run_paced(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    connections: usize,
    rate: Option<f64>,
    timeout: Option<Duration>,
) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let due =
        move |index: usize| rate.map(|rate| started + Duration::from_secs_f64(index as f64 / rate));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let (paths, next) = (Arc::clone(&paths), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut connection: Option<LoadConnection> = None;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(index) else { break };
                let sent = match due(index) {
                    Some(due) => {
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                // Overdue by the whole timeout: every connection was busy
                // (the generator could not offer it in time); not sent.
                if timeout.is_some_and(|timeout| sent.elapsed() >= timeout) {
                    results.push((index, TIMED_OUT, sent.elapsed()));
                    continue;
                }
                // A visitor's request gets the whole timeout once sent: a
                // late start (no free connection, an artifact of keeping
                // few connections) must not leave it a deadline of a few
                // milliseconds, which would only close connections.
                let deadline = timeout.map(|timeout| Instant::now() + timeout);
                if connection.is_none() {
                    connection = LoadConnection::open(addr).await.ok();
                }
                let status = match connection.as_mut() {
                    Some(c) => {
                        let answer = match deadline {
                            Some(deadline) => {
                                tokio::time::timeout_at(deadline.into(), c.get(path)).await
                            }
                            None => Ok(c.get(path).await),
                        };
                        match answer {
                            Ok(Ok(status)) => status,
                            Ok(Err(_)) => {
                                connection = None;
                                0
                            }
                            Err(_elapsed) => {
                                connection = None;
                                TIMED_OUT
                            }
                        }
                    }
                    None => 0,
                };
                results.push((index, status, sent.elapsed()));
            }
            results
        }));
    }
    let mut statuses = vec![0u16; paths.len()];
    let mut latencies = Vec::with_capacity(paths.len());
    let mut accepted_latencies = Vec::with_capacity(paths.len());
    let mut timed_out = 0;
    for worker in workers {
        // A worker only ends by running out of paths; a panic is a bug here.
        for (index, status, latency) in worker.await.expect("load worker panicked") {
            if status == TIMED_OUT {
                timed_out += 1;
                continue;
            }
            statuses[index] = status;
            if status != 0 {
                latencies.push(latency);
            }
            if status == 200 {
                accepted_latencies.push(latency);
            }
        }
    }
    LoadReport {
        statuses,
        latencies,
        accepted_latencies,
        elapsed: started.elapsed(),
        timed_out,
    }
}

/// A worker's mark of a request given up at its deadline (no HTTP status
/// is this large).
const TIMED_OUT: u16 = u16::MAX;

/// One keep-alive connection of the load generator, driven directly on its
/// socket: the generator shares the machine's cores with the server it
/// measures, so each request should cost it as little as possible (a
/// general client's connection task and channels cost about as much as the
/// server's own work for an empty answer).
struct LoadConnection {
    stream: TcpStream,
    host: String,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

impl LoadConnection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        Ok(LoadConnection {
            stream,
            host: addr.to_string(),
            request: Vec::with_capacity(512),
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `GET path` and reads the whole answer; returns its status.
    async fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        self.request.clear();
        write!(
            self.request,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n\r\n",
            self.host
        )?;
        self.stream.write_all(&self.request).await?;
        self.buffer.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&self.buffer)? {
                let status = response.code.context("no status")?;
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .context("answer without content-length")
                    .and_then(|h| Ok(std::str::from_utf8(h.value)?.trim().parse()?))?;
                while self.buffer.len() < head + length {
                    self.read_more().await?;
                }
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }
}

/// Reads a namespace's counts from a running server: `/experiments`, and
/// for an experiment without a goal counted yet, whose participations that
/// shape cannot show (it lists trials per goal), its report's participants.
///
/// # Errors
///
/// When a request fails or an answer is not Lamed's shape.
pub async fn fetch_counts(
    addr: SocketAddr,
    namespace: &str,
    api_key: &str,
) -> anyhow::Result<BTreeMap<CounterId, u64>> {
    let namespace = alephbet_encode(namespace);
    let get = |path: String| async move {
        let answer = request(addr, "GET", &path, &[("x-api-key", api_key)], b"").await?;
        if answer.status != 200 {
            bail!(
                "GET {path} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        answer.json()
    };
    let results = get(format!("/experiments?namespace={namespace}")).await?;
    let mut counts = counts_from_results(&results)?;
    let without_goals = results
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .filter(|entry| {
            entry["goals"]
                .as_array()
                .is_some_and(|goals| goals.is_empty())
        });
    for entry in without_goals {
        let experiment = entry["experiment"].as_str().context("no experiment name")?;
        let report = get(format!(
            "/api/experiments/{}/report?namespace={namespace}",
            path_segment(experiment)
        ))
        .await?;
        for variant in report["variants"]
            .as_array()
            .context("no variants in the report")?
        {
            let label = variant["label"].as_str().context("no variant label")?;
            let participants = variant["participants"]
                .as_u64()
                .context("participants is not a number")?;
            if participants > 0 {
                counts.insert(
                    (
                        experiment.to_owned(),
                        PARTICIPATE.to_owned(),
                        label.to_owned(),
                    ),
                    participants,
                );
            }
        }
    }
    Ok(counts)
}

/// SplitMix64: a tiny, fast, seedable generator for test workloads (not
/// for anything secret).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Matches what AlephBet puts on the wire.
    #[test]
    fn encodes_like_alephbet() {
        assert_eq!(
            alephbet_encode("buy now! (a+b)&c:d"),
            "buy+now!+(a%2Bb)%26c%3Ad"
        );
        assert_eq!(alephbet_encode("כן"), "%D7%9B%D7%9F");
    }

    /// The truth counts unique events only.
    #[test]
    fn workload_truth_counts_uniques() {
        let spec = WorkloadSpec {
            namespace: "ns".into(),
            total: 10_000,
            duplicate_fraction: 0.25,
            experiments: 3,
            variants: 2,
            goals: 2,
            seed: 7,
        };
        let workload = Workload::generate(&spec);
        let unique: std::collections::HashSet<_> =
            workload.events.iter().map(|e| e.dedupe_key()).collect();
        assert_eq!(workload.truth.values().sum::<u64>(), unique.len() as u64);
        let duplicates = workload.events.len() - unique.len();
        assert!((2000..3000).contains(&duplicates), "{duplicates}");
    }
}
