//! `lamed-load`: sends a generated AlephBet workload to a running server
//! over keep-alive connections, reports throughput and latency, and (given
//! the API key) checks that the counts equal the truth.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::Parser;
use lamed_load::{self as loadgen, Workload, WorkloadSpec};

/// Load generator for lamed's GET /track (loopback only).
#[derive(Debug, Parser)]
#[command(name = "lamed-load")]
struct Args {
    /// Server address (127.0.0.1 or ::1 only)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Path to send to: /track, /event, or /_bench/empty for the baseline
    #[arg(long, default_value = "/track")]
    path: String,
    /// Requests to send, duplicates included
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Concurrent keep-alive connections
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Share of requests that re-send an earlier event
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// Namespace to use [default: a fresh one per run]
    #[arg(long)]
    namespace: Option<String>,
    /// API key: when given, the counts are checked against the truth
    #[arg(long, env = "LAMED_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Seed of the workload generator
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests per second, paced (an open loop); latencies count from when
    /// each request was due [default: as fast as the connections go]
    #[arg(long)]
    rate: Option<f64>,
    /// Give a request up (a visitor who leaves) when it could not be sent
    /// within this many milliseconds of when it was due, or was sent and
    /// is unanswered this long after
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Afterwards, re-send every request not answered 200 (as AlephBet
    /// does), over 32 connections, until each is (at most 20 rounds); with
    /// --api-key, lost events are looked for before, exactness after
    #[arg(long)]
    resend: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("lamed-load: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    loadgen::require_loopback(args.addr)?;
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        bail!("--rate must be a positive number of requests per second");
    }
    if !(0.0..1.0).contains(&args.duplicates) {
        bail!("--duplicates must be in [0, 1)");
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let namespace = args.namespace.unwrap_or_else(|| format!("load-{stamp}"));
    let workload = Workload::generate(&WorkloadSpec::standard(
        &namespace,
        args.events,
        args.duplicates,
        args.seed,
    ));
    let paths = Arc::new(workload.paths(&args.path));
    let timeout = args.timeout_ms.map(std::time::Duration::from_millis);
    if args.resend {
        eprintln!("lamed-load: sending the load");
    }
    let report = loadgen::run_paced(
        args.addr,
        Arc::clone(&paths),
        args.connections,
        args.rate,
        timeout,
    )
    .await;
    let ok = report.count(200);
    let checked = args
        .api_key
        .as_deref()
        .filter(|_| args.path != "/_bench/empty");
    // Events answered 200 but not counted (lost): before any re-send,
    // which would count them again and hide the loss.
    let lost = match checked {
        Some(key) => {
            let counts = loadgen::fetch_counts(args.addr, &workload.namespace, key).await?;
            let lost: u64 = workload
                .acknowledged(&report.statuses)
                .iter()
                .map(|(id, events)| {
                    (events.len() as u64).saturating_sub(counts.get(id).copied().unwrap_or(0))
                })
                .sum();
            Some(lost)
        }
        None => None,
    };
    if args.resend {
        // What a script measuring the server waits for (bench/overload-pinned.sh).
        eprintln!("lamed-load: the load is sent; re-sending what was not answered 200");
    }
    let mut statuses = report.statuses.clone();
    let mut resend_rounds = 0;
    while args.resend && resend_rounds < 20 && statuses.iter().any(|s| *s != 200) {
        resend_rounds += 1;
        let unanswered: Vec<usize> = (0..statuses.len())
            .filter(|i| statuses[*i] != 200)
            .collect();
        let again = Arc::new(unanswered.iter().map(|i| paths[*i].clone()).collect());
        let resent = loadgen::run(args.addr, again, 32).await;
        for (i, status) in unanswered.into_iter().zip(resent.statuses) {
            statuses[i] = status;
        }
    }
    let all_ok = statuses.iter().filter(|s| **s == 200).count();
    // Exactness, and counts above the truth (counted twice), at the end.
    let (mismatches, doubled) = match checked {
        Some(key) => {
            let counts = loadgen::fetch_counts(args.addr, &workload.namespace, key).await?;
            let doubled: u64 = counts
                .iter()
                .map(|(id, got)| got.saturating_sub(workload.truth.get(id).copied().unwrap_or(0)))
                .sum();
            (Some(workload.mismatches(&counts)), Some(doubled))
        }
        None => (None, None),
    };
    let (p50, p99) = (report.latency_quantile(0.5), report.latency_quantile(0.99));
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "path": args.path, "requests": args.events, "ok": ok,
                "connections": args.connections, "seconds": report.elapsed.as_secs_f64(),
                "requests_per_second": report.throughput(),
                "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3,
                "answered_503": report.count(503),
                "p99_accepted_ms": report.accepted_latency_quantile(0.99).as_secs_f64() * 1e3,
                "p50_accepted_ms": report.accepted_latency_quantile(0.5).as_secs_f64() * 1e3,
                "timed_out": report.timed_out,
                "p99_all_ms": timeout.map(|t| report.latency_quantile_with_timeouts(0.99, t).as_secs_f64() * 1e3),
                "p50_all_ms": timeout.map(|t| report.latency_quantile_with_timeouts(0.5, t).as_secs_f64() * 1e3),
                "no_answer": report.count(0) - report.timed_out,
                "rate": args.rate,
                "counts_exact": mismatches.as_ref().map(Vec::is_empty),
                "acknowledged_lost": lost, "counted_above_truth": doubled,
                "resend_rounds": resend_rounds, "ok_after_resends": all_ok,
            })
        );
    } else {
        println!(
            "{} {} requests over {} connections in {:.2}s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} answered 200",
            args.path,
            args.events,
            args.connections,
            report.elapsed.as_secs_f64(),
            report.throughput(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            ok
        );
        match &mismatches {
            Some(m) if m.is_empty() => println!(
                "counts exact: {} counters match the truth",
                workload.truth.len()
            ),
            Some(m) => m.iter().for_each(|line| println!("MISMATCH {line}")),
            None => {}
        }
    }
    Ok(all_ok == args.events
        && mismatches.is_none_or(|m| m.is_empty())
        && lost.is_none_or(|lost| lost == 0))
}
