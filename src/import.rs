//! `lamed import`: copies the counters of an original Lamed or Gimel
//! deployment out of its Redis into the configured store.
//!
//! The source layout (WIRE.md §6): `<ns>:experiments` (set of names),
//! `<ns>:counter_keys` (set of counter keys) and
//! `<ns>:counters:<experiment>:<event>:<variant>`, an integer string
//! (Lamed, exact) or a HyperLogLog (Gimel, approximate, read with PFCOUNT).
//! Each count is set as the counter's imported base
//! ([`Store::import_counter`]), so a second run changes nothing.
//! `--sixpack` reads Sixpack's layout instead (`crate::import_sixpack`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;

use crate::cli::ImportArgs;
use crate::config::Config;
use crate::model::{check_field, MAX_NAMESPACE_BYTES, MAX_NAME_BYTES};
use crate::progress::Bar;
use crate::store;
use crate::store::redis::RedisSettings;

/// Counters read per pipeline from the source.
const CHUNK: usize = 500;

/// Keys a SCAN call examines (its `COUNT`).
const SCAN_COUNT: u64 = 1000;

/// One counter found in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCounter {
    /// Experiment name (may contain ':').
    pub experiment: String,
    /// `participate` or a goal.
    pub event: String,
    /// Variant name.
    pub variant: String,
    /// Unique events counted.
    pub count: u64,
    /// True for a Gimel HyperLogLog: PFCOUNT is within about 1% of the truth.
    pub approximate: bool,
}

/// What an import did, per namespace.
#[derive(Debug, Default, Clone)]
struct Tally {
    counters: usize,
    approximate: usize,
    events: u64,
    changed: usize,
    unchanged: usize,
    skipped: usize,
}

/// Runs `lamed import`.
///
/// # Errors
///
/// When the source or target cannot be reached, or a write fails.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let source = RedisSettings::from_urls(&args.redis).context("invalid --redis")?;
    if source.cluster {
        bail!("--redis takes one node: Lamed and Gimel used a single Redis");
    }
    let node = &source.nodes[0];
    let mut conn = connect(&node.url())
        .await
        .with_context(|| format!("cannot read the source redis at {}", node.redacted()))?;
    let target = if args.dry_run {
        None
    } else {
        let config = Config::load(args.overrides())?;
        let store = store::open(&config.store_options())
            .await
            .context("cannot open the target store")?;
        Some((store, config))
    };

    if let Some(prefix) = &args.sixpack {
        let namespace = match &target {
            Some((_, config)) => config.sixpack_namespace.clone(),
            None => crate::settings::DEFAULT_SIXPACK_NAMESPACE.to_owned(),
        };
        let store = target.as_ref().map(|(store, _)| store);
        crate::import_sixpack::import(
            &mut conn,
            prefix,
            &namespace,
            store,
            &mut std::io::stdout().lock(),
        )
        .await?;
        if let Some((store, _)) = target {
            store
                .close()
                .await
                .context("cannot close the target store")?;
        }
        return Ok(());
    }
    let target = target.map(|(store, _)| store);
    let namespaces = match &args.namespace {
        Some(ns) => vec![ns.clone()],
        None => discover_namespaces(&mut conn).await?,
    };
    if namespaces.is_empty() {
        eprintln!(
            "lamed: import: no Lamed or Gimel namespace found at {}",
            node.redacted()
        );
    }
    let mut stdout = std::io::stdout().lock();
    let mut total = Tally::default();
    for namespace in &namespaces {
        if let Err(err) = check_field("namespace", namespace, MAX_NAMESPACE_BYTES) {
            eprintln!("lamed: import: skipping namespace {namespace:?}: {err}");
            continue;
        }
        let counters = read_namespace(&mut conn, namespace).await?;
        let mut tally = Tally::default();
        let mut bar = (!args.dry_run).then(|| {
            Bar::new(
                format!("import: {namespace}: counters written"),
                counters.len() as u64,
                "counters",
            )
        });
        for counter in &counters {
            if let Some(bar) = &mut bar {
                bar.inc(1);
            }
            let valid = [
                ("experiment", &counter.experiment),
                ("event", &counter.event),
                ("variant", &counter.variant),
            ]
            .into_iter()
            .try_for_each(|(field, value)| check_field(field, value, MAX_NAME_BYTES));
            if let Err(err) = valid {
                let line = format!(
                    "lamed: import: skipping {namespace}:{}:{}:{}: {err}",
                    counter.experiment, counter.event, counter.variant
                );
                match &bar {
                    Some(bar) => bar.note(&line),
                    None => eprintln!("{line}"),
                }
                tally.skipped += 1;
                continue;
            }
            tally.counters += 1;
            tally.approximate += usize::from(counter.approximate);
            tally.events += counter.count;
            match &target {
                None => writeln!(
                    stdout,
                    "would import {namespace} / {} / {} / {} = {}{}",
                    counter.experiment,
                    counter.event,
                    counter.variant,
                    counter.count,
                    if counter.approximate {
                        " (approximate)"
                    } else {
                        ""
                    }
                )?,
                Some(store) => {
                    let previous = store
                        .import_counter(
                            namespace,
                            &counter.experiment,
                            &counter.event,
                            &counter.variant,
                            counter.count,
                        )
                        .await
                        .with_context(|| format!("cannot import into namespace {namespace}"))?;
                    if previous == Some(counter.count) {
                        tally.unchanged += 1;
                    } else {
                        tally.changed += 1;
                    }
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish();
        }
        writeln!(stdout, "{}", summary(namespace, &tally, args.dry_run))?;
        total.counters += tally.counters;
        total.approximate += tally.approximate;
        total.events += tally.events;
        total.changed += tally.changed;
        total.unchanged += tally.unchanged;
        total.skipped += tally.skipped;
    }
    writeln!(stdout, "{}", summary("(all)", &total, args.dry_run))?;
    if let Some(store) = target {
        store
            .close()
            .await
            .context("cannot close the target store")?;
    }
    Ok(())
}

fn summary(namespace: &str, t: &Tally, dry_run: bool) -> String {
    let approx = if t.approximate > 0 {
        format!(
            ", {} approximate (Gimel HyperLogLog, about 1% error)",
            t.approximate
        )
    } else {
        String::new()
    };
    let action = if dry_run {
        "dry run, nothing written".to_owned()
    } else {
        format!("{} changed, {} unchanged", t.changed, t.unchanged)
    };
    format!(
        "namespace {namespace}: {} counters, {} events{approx}; {action}; {} skipped",
        t.counters, t.events, t.skipped
    )
}

async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .context("no answer within 5 s")??;
    Ok(conn)
}

/// Every key matching `pattern`, by SCAN (never KEYS: it blocks Redis),
/// with progress through the keys of the database (`what` names the scan).
///
/// A SCAN call examines about `COUNT` keys whatever `MATCH` keeps, so the
/// keys examined are estimated at `SCAN_COUNT` a call out of `DBSIZE`.
async fn scan(
    conn: &mut MultiplexedConnection,
    pattern: &str,
    what: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let total: u64 = redis::cmd("DBSIZE")
        .query_async(conn)
        .await
        .context("DBSIZE failed")?;
    let mut bar = Bar::new(format!("import: {what}: keys scanned"), total, "keys");
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await
            .context("SCAN failed")?;
        keys.extend(batch);
        if next == 0 {
            bar.finish();
            return Ok(keys);
        }
        bar.inc_estimated(SCAN_COUNT);
        cursor = next;
    }
}

/// Namespaces: every `<ns>:experiments` key that is a set.
async fn discover_namespaces(conn: &mut MultiplexedConnection) -> anyhow::Result<Vec<String>> {
    let mut namespaces = BTreeSet::new();
    for key in scan(conn, "*:experiments", "namespaces").await? {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(conn).await?;
        if kind != "set" {
            continue;
        }
        if let Some(ns) = String::from_utf8_lossy(&key).strip_suffix(":experiments") {
            namespaces.insert(ns.to_owned());
        }
    }
    Ok(namespaces.into_iter().collect())
}

/// Escapes glob characters so a namespace matches itself only in SCAN.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads every counter of one namespace.
async fn read_namespace(
    conn: &mut MultiplexedConnection,
    namespace: &str,
) -> anyhow::Result<Vec<SourceCounter>> {
    let experiments: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{namespace}:experiments"))
        .query_async(conn)
        .await
        .context("cannot read the experiment list")?;
    let listed: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg(format!("{namespace}:counter_keys"))
        .query_async(conn)
        .await
        .context("cannot read the counter key list")?;
    // The list and a scan, in case the list lost a key.
    let prefix = format!("{namespace}:counters:");
    let mut keys: BTreeSet<Vec<u8>> = listed.into_iter().collect();
    keys.extend(scan(conn, &format!("{}*", glob_escape(&prefix)), namespace).await?);
    let keys: Vec<Vec<u8>> = keys.into_iter().collect();

    let mut counters = Vec::new();
    let mut bar = Bar::new(
        format!("import: {namespace}: counters read"),
        keys.len() as u64,
        "counters",
    );
    for chunk in keys.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for key in chunk {
            pipe.cmd("GET").arg(key);
        }
        let values: Vec<redis::RedisResult<Option<Vec<u8>>>> = pipe.query_async(conn).await?;
        for (key, value) in chunk.iter().zip(values) {
            let name = String::from_utf8_lossy(key).into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                bar.note(&format!(
                    "lamed: import: skipping {name}: not a counter of {namespace}"
                ));
                continue;
            };
            let Some((experiment, event, variant)) = split_counter(rest, &experiments) else {
                bar.note(&format!(
                    "lamed: import: skipping {name}: not <experiment>:<event>:<variant>"
                ));
                continue;
            };
            let (count, approximate) = match value {
                Ok(Some(bytes)) if bytes.starts_with(b"HYLL") => {
                    let count: u64 = redis::cmd("PFCOUNT").arg(key).query_async(conn).await?;
                    (count, true)
                }
                Ok(Some(bytes)) => match std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    Some(count) => (count, false),
                    None => {
                        bar.note(&format!("lamed: import: skipping {name}: not a count"));
                        continue;
                    }
                },
                // Listed but gone (deleted), or not a string: nothing to import.
                Ok(None) => continue,
                Err(err) => {
                    bar.note(&format!("lamed: import: skipping {name}: {err}"));
                    continue;
                }
            };
            counters.push(SourceCounter {
                experiment,
                event,
                variant,
                count,
                approximate,
            });
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    // Sorted, so a dry run reads well and runs are comparable.
    let sorted: BTreeMap<_, _> = counters
        .into_iter()
        .map(|c| {
            (
                (c.experiment.clone(), c.event.clone(), c.variant.clone()),
                c,
            )
        })
        .collect();
    Ok(sorted.into_values().collect())
}

/// Splits `<experiment>:<event>:<variant>`. Names may contain ':', so the
/// experiment is the longest listed name the key starts with; failing
/// that, the key is split from the right (variant last, event before it).
pub fn split_counter(rest: &str, experiments: &[String]) -> Option<(String, String, String)> {
    let listed = experiments
        .iter()
        .filter(|e| {
            rest.len() > e.len() + 1
                && rest.starts_with(e.as_str())
                && rest.as_bytes()[e.len()] == b':'
        })
        .max_by_key(|e| e.len());
    let (experiment, tail) = match listed {
        Some(e) => (e.clone(), &rest[e.len() + 1..]),
        None => {
            let (head, variant) = rest.rsplit_once(':')?;
            let (experiment, event) = head.rsplit_once(':')?;
            return Some((experiment.to_owned(), event.to_owned(), variant.to_owned()));
        }
    };
    let (event, variant) = tail.rsplit_once(':')?;
    Some((experiment, event.to_owned(), variant.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counter keys split from the right, with listed experiment names
    /// (which may contain ':') taking precedence.
    #[test]
    fn splits_counter_keys() {
        let split = |rest: &str, listed: &[&str]| {
            let listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            split_counter(rest, &listed)
        };
        let own = |a: &str, b: &str, c: &str| Some((a.to_owned(), b.to_owned(), c.to_owned()));
        assert_eq!(
            split("exp:participate:red", &[]),
            own("exp", "participate", "red")
        );
        assert_eq!(split("a:b:buy:red", &[]), own("a:b", "buy", "red"));
        assert_eq!(
            split("a:b:buy:now:red", &["a:b"]),
            own("a:b", "buy:now", "red")
        );
        assert_eq!(split("nocolons", &[]), None);
        assert_eq!(split("a:b", &[]), None);
    }

    /// Glob characters in a namespace match themselves only.
    #[test]
    fn escapes_globs() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
