//! Times the report of an experiment with 10 variants × 10 goals and a year
//! of daily data: `report::build` alone, and `GET /api/experiments/{name}/report`
//! over loopback HTTP against the real router and embedded store.
//!
//!     cargo run --release --example report_bench

use std::sync::Arc;
use std::time::{Duration, Instant};

use lamed::bots::BotFilter;
use lamed::model::Caps;
use lamed::report::{self, ReportRequest};
use lamed::server::{self, AppState, RouterOptions};
use lamed::store::{EmbeddedOptions, EmbeddedStore, Store};

const VARIANTS: usize = 10;
const GOALS: usize = 10;
const DAYS: i64 = 365;
const RUNS: usize = 101;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = EmbeddedOptions {
        data_dir: dir.path().to_owned(),
        uuid_expiry_seconds: 86_400,
        fsync: lamed::store::Durability::default(),
        caps: Caps::default(),
        clock: Default::default(),
    };
    // Create the schema, then seed counters and a year of days directly.
    EmbeddedStore::open(options.clone())?.close().await?;
    seed(&dir.path().join("lamed.db"))?;
    let store = Arc::new(EmbeddedStore::open(options)?);

    let counters = store.counters("bench").await?;
    let daily = store.daily_counters("bench", "big experiment").await?;
    let build = time(|| {
        let report = report::build(
            "bench",
            "big experiment",
            &counters,
            &daily,
            &ReportRequest::default(),
        );
        assert!(report.is_ok());
    });

    let key = "benchmark-key-0123456789";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(store, key, 1000, Arc::new(BotFilter::disabled()));
    tokio::spawn(async move {
        server::run(
            listener,
            state,
            &RouterOptions::default(),
            &server::ConnectionLimits::default(),
            std::future::pending(),
        )
        .await
    });
    let path = "/api/experiments/big%20experiment/report?namespace=bench";
    let mut http = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let answer = lamed::client::request(addr, "GET", path, &[("x-api-key", key)], b"").await?;
        http.push(started.elapsed());
        assert_eq!(answer.status, 200);
        bytes = answer.body.len();
    }
    println!(
        "report of {VARIANTS} variants x {GOALS} goals x {DAYS} days ({} daily rows):",
        daily.len()
    );
    println!(
        "  report::build alone: median {:.2} ms over {RUNS} runs",
        median(build)
    );
    println!(
        "  GET report over HTTP: median {:.2} ms, p90 {:.2} ms over {RUNS} runs ({} KB of JSON)",
        median(http.clone()),
        quantile(http, 0.9),
        bytes / 1024
    );
    Ok(())
}

fn seed(path: &std::path::Path) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    let first_day = 20_000;
    for v in 0..VARIANTS {
        let variant = format!("variant {v}");
        for g in 0..=GOALS {
            let event = if g == 0 {
                "participate".to_owned()
            } else {
                format!("goal {g}")
            };
            let per_day: i64 = if g == 0 {
                1_000
            } else {
                30 + (v * 3 + g) as i64
            };
            tx.execute(
                "INSERT INTO counters VALUES ('bench', 'big experiment', ?1, ?2, ?3)",
                rusqlite::params![event, variant, per_day * DAYS],
            )?;
            for day in 0..DAYS {
                tx.execute(
                    "INSERT INTO daily VALUES ('bench', 'big experiment', ?1, ?2, ?3, ?4)",
                    rusqlite::params![event, variant, first_day + day, per_day],
                )?;
            }
        }
    }
    tx.commit()
}

fn time(mut f: impl FnMut()) -> Vec<Duration> {
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

fn median(samples: Vec<Duration>) -> f64 {
    quantile(samples, 0.5)
}

fn quantile(mut samples: Vec<Duration>, q: f64) -> f64 {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
}
