//! `lamed import --sixpack`: moves a Sixpack deployment out of its Redis
//! (the layout of Sixpack's `models.py` and `db.py`) into the Sixpack
//! namespace, so that its clients carry on where they were.
//!
//! Per experiment `E` (listed in the set `P:e`, `P` the prefix, `sixpack`
//! by default): its alternatives (list `P:e:E:alternatives`, control
//! first), its hash `P:e:E` (`created_at`, `description`, `archived`,
//! `paused`), its winner (`P:e:E:winner`), its KPIs (set `P:e:E:kpis`), its
//! clients (sorted set `P:e:E:users`: client id → sequential id) and
//! bitmaps indexed by sequential id: participants per alternative
//! (`P:p:E:A:all`), clients left out by the traffic fraction
//! (`P:e:E:excluded`) and converters per KPI (`P:c:E:A:users:all`, with a
//! KPI `P:c:E/K:A:users:all`).
//!
//! The counts become imported bases ([`Store::import_counter`]), each client
//! a membership (its alternative, or left out) and each conversion one
//! (per KPI), so a migrated client is neither counted again nor converts
//! twice. The experiment gets a record: its alternatives, KPIs and
//! description, paused, archived, or stopped with Sixpack's winner. A
//! second run changes nothing.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;

use crate::progress::Bar;
use crate::registry::{Decision, ExperimentRecord, GoalSpec, Status};
use crate::sixpack::{
    self, conversion_member, parse_created_at, participant_member, valid_name, NameKind,
    DEFAULT_GOAL, EXCLUDED,
};
use crate::store::{DynStore, Precondition, PutOutcome, StoreExt};

/// One Sixpack experiment as read from its Redis.
#[derive(Debug)]
struct SourceExperiment {
    name: String,
    alternatives: Vec<String>,
    meta: HashMap<String, String>,
    winner: Option<String>,
    /// `None` for conversions without KPI, then each KPI.
    goals: Vec<Option<String>>,
    /// Client id and sequential id.
    users: Vec<(String, u64)>,
    /// Participant bitmap per alternative.
    participants: Vec<Vec<u8>>,
    excluded: Vec<u8>,
    /// Per goal, the converter bitmap per alternative.
    conversions: Vec<Vec<Vec<u8>>>,
}

/// An experiment's list of alternatives, hash, winner, KPIs and clients.
type ExperimentKeys = (
    Vec<String>,
    HashMap<String, String>,
    Option<String>,
    Vec<String>,
    Vec<(String, u64)>,
);

/// Whether bit `n` of a Redis bitmap is set (`GETBIT`: the first bit is the
/// most significant of the first byte).
fn bit(bitmap: &[u8], n: u64) -> bool {
    usize::try_from(n / 8)
        .ok()
        .and_then(|byte| bitmap.get(byte))
        .is_some_and(|byte| byte & (0x80 >> (n % 8)) != 0)
}

/// The set bits of a bitmap (`BITCOUNT`).
fn ones(bitmap: &[u8]) -> u64 {
    bitmap.iter().map(|byte| u64::from(byte.count_ones())).sum()
}

/// Imports every experiment under `prefix` into `namespace` of `target`
/// (with no target, prints what it would import).
///
/// # Errors
///
/// When the source cannot be read or the target refuses a write.
pub async fn import(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    namespace: &str,
    target: Option<&DynStore>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:e"))
        .query_async(conn)
        .await
        .context("cannot list Sixpack's experiments")?;
    names.sort();
    let (mut clients, mut counted) = (0usize, 0usize);
    let listed = names.len();
    for (index, name) in names.into_iter().enumerate() {
        if !valid_name(NameKind::Experiment, &name) {
            eprintln!(
                "lamed: import: skipping Sixpack experiment {name:?}: invalid experiment name"
            );
            continue;
        }
        let source = read(conn, prefix, &name).await?;
        if source.alternatives.len() < 2
            || !source
                .alternatives
                .iter()
                .all(|a| valid_name(NameKind::Alternative, a))
        {
            eprintln!("lamed: import: skipping Sixpack experiment {name:?}: its alternatives are not valid");
            continue;
        }
        clients += source.users.len();
        counted += 1;
        match target {
            None => {
                for (alternative, bitmap) in source.alternatives.iter().zip(&source.participants) {
                    writeln!(
                        out,
                        "would import {namespace} / {name} / {alternative}: {} participants",
                        ones(bitmap)
                    )?;
                }
            }
            Some(store) => {
                let what = format!("import: sixpack: {name} ({}/{listed})", index + 1);
                write(store, namespace, &source, &what).await?;
            }
        }
    }
    let action = if target.is_some() {
        "imported"
    } else {
        "would import"
    };
    writeln!(
        out,
        "sixpack: {action} {counted} experiments, {clients} clients into namespace {namespace}"
    )?;
    Ok(())
}

async fn read(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    name: &str,
) -> anyhow::Result<SourceExperiment> {
    let key = format!("{prefix}:e:{name}");
    let (alternatives, meta, winner, kpis, users): ExperimentKeys = redis::pipe()
        .cmd("LRANGE")
        .arg(format!("{key}:alternatives"))
        .arg(0)
        .arg(-1)
        .cmd("HGETALL")
        .arg(&key)
        .cmd("GET")
        .arg(format!("{key}:winner"))
        .cmd("SMEMBERS")
        .arg(format!("{key}:kpis"))
        .cmd("ZRANGE")
        .arg(format!("{key}:users"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .with_context(|| format!("cannot read Sixpack experiment {name}"))?;
    let mut kpis: Vec<String> = kpis
        .into_iter()
        .filter(|kpi| valid_name(NameKind::Kpi, kpi))
        .collect();
    kpis.sort();
    let goals: Vec<Option<String>> = std::iter::once(None)
        .chain(kpis.into_iter().map(Some))
        .collect();
    let mut participants = Vec::new();
    for alternative in &alternatives {
        participants.push(bitmap(conn, format!("{prefix}:p:{name}:{alternative}:all")).await?);
    }
    let excluded = bitmap(conn, format!("{key}:excluded")).await?;
    let mut conversions = Vec::new();
    for goal in &goals {
        let kpi_key = match goal {
            Some(kpi) => format!("{name}/{kpi}"),
            None => name.to_owned(),
        };
        let mut per_alternative = Vec::new();
        for alternative in &alternatives {
            per_alternative.push(
                bitmap(
                    conn,
                    format!("{prefix}:c:{kpi_key}:{alternative}:users:all"),
                )
                .await?,
            );
        }
        conversions.push(per_alternative);
    }
    Ok(SourceExperiment {
        name: name.to_owned(),
        alternatives,
        meta,
        winner,
        goals,
        users,
        participants,
        excluded,
        conversions,
    })
}

/// A bitmap's bytes; empty when the key is missing.
async fn bitmap(conn: &mut MultiplexedConnection, key: String) -> anyhow::Result<Vec<u8>> {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(conn)
        .await
        .with_context(|| format!("cannot read {key}"))?;
    Ok(bytes.unwrap_or_default())
}

/// Writes one experiment: record, imported counts, memberships (with
/// progress through its clients, `what` naming the experiment).
async fn write(
    store: &DynStore,
    namespace: &str,
    source: &SourceExperiment,
    what: &str,
) -> anyhow::Result<()> {
    let name = &source.name;
    let fail = || format!("cannot import Sixpack experiment {name} into namespace {namespace}");
    let goal_name = |goal: &Option<String>| goal.clone().unwrap_or_else(|| DEFAULT_GOAL.to_owned());
    let now_ms = crate::clock::Clock::System.now_ms();
    let created_ms = source
        .meta
        .get("created_at")
        .and_then(|text| parse_created_at(text))
        .unwrap_or(now_ms);
    let definition = sixpack::definition(
        &source.alternatives,
        source.meta.get("description").cloned().unwrap_or_default(),
        source
            .goals
            .iter()
            .map(|goal| GoalSpec {
                name: goal_name(goal),
                unique: true,
            })
            .collect(),
    );
    let previous = store.record(namespace, name).await.with_context(fail)?;
    // Written over what was read, so a concurrent edit is not undone.
    let precondition = previous
        .as_ref()
        .map_or(Precondition::Absent, |r| Precondition::Version(r.version));
    let mut record = ExperimentRecord::register(previous, namespace, name, definition, created_ms)
        .with_context(fail)?;
    record.created_ms = created_ms;
    let winner = source
        .winner
        .clone()
        .filter(|w| source.alternatives.contains(w));
    if source.meta.contains_key("archived") {
        record.status = Status::Archived;
        record.archived_ms.get_or_insert(now_ms);
    } else if winner.is_some() {
        record.status = Status::Stopped;
        record.stopped_ms.get_or_insert(now_ms);
    } else if source.meta.contains_key("paused") {
        record.status = Status::Paused;
        record.paused_ms.get_or_insert(now_ms);
    }
    if winner.is_some() && record.decision.is_none() {
        record.decision = Some(Decision {
            winner,
            note: "imported from Sixpack".to_owned(),
            decided_ms: now_ms,
        });
    }
    let written = store
        .put_record(record, precondition)
        .await
        .with_context(fail)?;
    if let PutOutcome::Conflict { .. } = written {
        bail!(
            "{}: its record changed during the import; run the import again",
            fail()
        );
    }

    for (alternative, bitmap) in source.alternatives.iter().zip(&source.participants) {
        store
            .import_counter(
                namespace,
                name,
                crate::model::PARTICIPATE,
                alternative,
                ones(bitmap),
            )
            .await
            .with_context(fail)?;
    }
    for (goal, bitmaps) in source.goals.iter().zip(&source.conversions) {
        for (alternative, bitmap) in source.alternatives.iter().zip(bitmaps) {
            store
                .import_counter(namespace, name, &goal_name(goal), alternative, ones(bitmap))
                .await
                .with_context(fail)?;
        }
    }
    let mut bar = Bar::new(
        format!("{what}: clients written"),
        source.users.len() as u64,
        "clients",
    );
    for (client, seq) in &source.users {
        bar.inc(1);
        let held = if bit(&source.excluded, *seq) {
            Some(EXCLUDED)
        } else {
            source
                .alternatives
                .iter()
                .zip(&source.participants)
                .find(|(_, bitmap)| bit(bitmap, *seq))
                .map(|(alternative, _)| alternative.as_str())
        };
        let Some(held) = held else { continue };
        store
            .join(namespace, name, &participant_member(client), held)
            .await
            .with_context(fail)?;
        for (goal, bitmaps) in source.goals.iter().zip(&source.conversions) {
            if let Some((alternative, _)) = source
                .alternatives
                .iter()
                .zip(bitmaps)
                .find(|(_, bitmap)| bit(bitmap, *seq))
            {
                let member = conversion_member(client, &goal_name(goal));
                store
                    .join(namespace, name, &member, alternative)
                    .await
                    .with_context(fail)?;
            }
        }
    }
    bar.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits are read as Redis's GETBIT and BITCOUNT read them.
    #[test]
    fn bitmaps_read_as_redis() {
        let bitmap = [0b1010_0000, 0b0000_0001];
        assert!(bit(&bitmap, 0) && !bit(&bitmap, 1) && bit(&bitmap, 2));
        assert!(bit(&bitmap, 15) && !bit(&bitmap, 14) && !bit(&bitmap, 16));
        assert_eq!(ones(&bitmap), 3);
    }
}
