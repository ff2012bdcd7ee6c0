//! `lamed experiments`: register experiments and move them through their
//! life, on the local store or through a running server's API. The rules
//! are the registry's ([`crate::registry`]); this file says where the
//! records are and prints them.

use std::io::Write;

use anyhow::{bail, Context};
use serde_json::json;

use crate::adaptive::Adaptive;
use crate::cli::{ExperimentsAction, ExperimentsArgs, Target};
use crate::client::{self, alephbet_encode, Api};
use crate::clock::Clock;
use crate::config::Config;
use crate::registry::{
    Change, Definition, ExperimentRecord, GoalSpec, RegistryError, Status, VariantSpec,
};
use crate::report::civil_date;
use crate::snippet::{adaptive_snippet, SNIPPET_END, SNIPPET_START};
use crate::store::{DataDirInUse, DynStore, EmbeddedStore};
use lamed_service::registry::{self as edits, EditError};

/// Runs one `lamed experiments` subcommand.
///
/// # Errors
///
/// A bad variant list, an unknown experiment, a move the lifecycle
/// forbids; an unreachable server or store, or a server running on the
/// local data directory.
pub async fn run(args: ExperimentsArgs) -> anyhow::Result<()> {
    let action = args.action;
    let target = action.target().clone();
    let writes = !matches!(
        action,
        ExperimentsAction::List(_) | ExperimentsAction::Show(_)
    );
    let registry = Registry::open(&target, writes).await?;
    let result = act(&registry, &target.namespace, action).await;
    let closed = registry.close().await;
    result.and(closed)
}

async fn act(registry: &Registry, ns: &str, action: ExperimentsAction) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match action {
        ExperimentsAction::Create(args) => {
            let definition = Definition {
                description: args.description,
                variants: parse_variants(&args.variants)?,
                control: args.control,
                goals: args
                    .goals
                    .as_deref()
                    .map(parse_goals)
                    .transpose()?
                    .unwrap_or_default(),
                adaptive: args.adaptive.map(Adaptive::on),
            };
            let (record, created) = registry.put(ns, &args.name, definition).await?;
            let done = if created { "registered" } else { "redefined" };
            writeln!(
                out,
                "{done} experiment '{}' in namespace '{ns}' ({}): variants {}; goals {}",
                record.name,
                record.status.as_str(),
                variant_list(&record),
                goal_list(&record),
            )?;
            if record.adaptive.is_some() {
                let base = match &args.target.remote.server {
                    Some(server) => server.clone(),
                    None => {
                        let config = Config::load(args.target.store.overrides())?;
                        config.base_url(config.listen)
                    }
                };
                writeln!(
                    out,
                    "\n{SNIPPET_START}\n{}\n{SNIPPET_END}",
                    adaptive_snippet(&base, &record)
                )?;
            }
        }
        ExperimentsAction::List(args) => {
            let records = registry.list(ns, args.status.as_deref()).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
            } else if records.is_empty() {
                writeln!(out, "no experiments in namespace '{ns}'")?;
            } else {
                write!(out, "{}", table(&records))?;
            }
        }
        ExperimentsAction::Show(args) => {
            let record = registry.get(ns, &args.name).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
            } else {
                write!(out, "{}", details(&record))?;
            }
        }
        ExperimentsAction::Pause(args) => {
            moved(
                &mut out,
                &registry.change(ns, &args.name, Change::Pause).await?,
            )?;
        }
        ExperimentsAction::Resume(args) => {
            moved(
                &mut out,
                &registry.change(ns, &args.name, Change::Resume).await?,
            )?;
        }
        ExperimentsAction::Stop(args) => {
            let change = Change::Stop {
                winner: args.winner.filter(|_| !args.no_winner),
                note: args.note,
            };
            moved(&mut out, &registry.change(ns, &args.name, change).await?)?;
        }
        ExperimentsAction::Archive(args) => {
            moved(
                &mut out,
                &registry.change(ns, &args.name, Change::Archive).await?,
            )?;
        }
    }
    Ok(())
}

/// One line saying where an experiment now is.
fn moved(out: &mut impl Write, record: &ExperimentRecord) -> anyhow::Result<()> {
    let decision = match (&record.status, &record.decision) {
        (Status::Stopped, Some(decision)) => format!(", {}", winner(decision.winner.as_deref())),
        _ => String::new(),
    };
    writeln!(
        out,
        "experiment '{}' is {}{decision}",
        record.name,
        record.status.as_str()
    )?;
    Ok(())
}

fn winner(name: Option<&str>) -> String {
    name.map_or_else(|| "no winner".to_owned(), |name| format!("winner {name}"))
}

/// Where the records are: the local store, or a running server.
enum Registry {
    /// The store of the configuration, opened for writing only when the
    /// command writes (so `list` and `show` work beside a running server).
    Local(DynStore),
    /// A running lamed's registry API.
    Remote(Api),
}

impl Registry {
    async fn open(target: &Target, writes: bool) -> anyhow::Result<Registry> {
        if let Some(server) = &target.remote.server {
            let remote = &target.remote;
            let api =
                Api::new(server, remote.api_key.as_deref(), remote.ca_cert.as_deref()).await?;
            return Ok(Registry::Remote(api));
        }
        let config = Config::load(target.store.overrides())?;
        if config.redis.is_none() && config.dynamodb_table.is_none() && !writes {
            let store = EmbeddedStore::open_read_only(&config.data_dir)?;
            return Ok(Registry::Local(std::sync::Arc::new(store)));
        }
        match crate::store::open(&config.store_options()).await {
            Ok(store) => Ok(Registry::Local(store)),
            Err(err) if DataDirInUse::is_cause_of(&err) => bail!(
                "a server is running on this data directory ({}): use --server URL",
                config.data_dir.display()
            ),
            Err(err) => Err(err.into()),
        }
    }

    /// Lets the local store finish its writes.
    async fn close(&self) -> anyhow::Result<()> {
        if let Registry::Local(store) = self {
            store.close().await?;
        }
        Ok(())
    }

    /// Registers or redefines; true when registered just now.
    async fn put(
        &self,
        ns: &str,
        name: &str,
        definition: Definition,
    ) -> anyhow::Result<(ExperimentRecord, bool)> {
        match self {
            Registry::Local(store) => {
                let registered =
                    edits::put(&**store, ns, name, definition, Clock::System.now_ms()).await?;
                Ok((registered.record, registered.created))
            }
            Registry::Remote(api) => {
                let (status, body) = api
                    .send(
                        "PUT",
                        &path(ns, name),
                        Some(&serde_json::to_value(&definition)?),
                    )
                    .await?;
                Ok((record_from(body)?, status == 201))
            }
        }
    }

    async fn get(&self, ns: &str, name: &str) -> anyhow::Result<ExperimentRecord> {
        match self {
            Registry::Local(store) => Ok(edits::show(&**store, ns, name).await?),
            Registry::Remote(api) => record_from(api.get(&path(ns, name)).await?),
        }
    }

    /// The records whose status `statuses` names (the list API's filter).
    async fn list(
        &self,
        ns: &str,
        statuses: Option<&str>,
    ) -> anyhow::Result<Vec<ExperimentRecord>> {
        match self {
            Registry::Local(store) => Ok(edits::list(&**store, ns, statuses).await?),
            Registry::Remote(api) => {
                let mut query = format!("/api/experiments?namespace={}", alephbet_encode(ns));
                if let Some(statuses) = statuses {
                    query.push_str(&format!("&status={}", alephbet_encode(statuses)));
                }
                Ok(serde_json::from_value(api.get(&query).await?)
                    .context("the server answered records this lamed cannot read")?)
            }
        }
    }

    async fn change(
        &self,
        ns: &str,
        name: &str,
        change: Change,
    ) -> anyhow::Result<ExperimentRecord> {
        let refused = || format!("cannot {} experiment '{name}'", verb(&change));
        match self {
            Registry::Local(store) => {
                let patch = edits::Patch::change(&change);
                match edits::change(&**store, ns, name, patch, Clock::System.now_ms()).await {
                    // An unknown experiment is named as it is, as the server does.
                    Err(EditError::Registry(err @ RegistryError::NotRegistered { .. })) => {
                        Err(err.into())
                    }
                    other => other.with_context(refused),
                }
            }
            Registry::Remote(api) => {
                let mut patch = json!({ "status": change.target() });
                if let Change::Stop { winner, note } = &change {
                    patch["winner"] = json!(winner);
                    patch["note"] = json!(note);
                }
                // Read first: an unknown experiment is named by the server
                // as it is, and the change applies only to the version read.
                let read = api.call("GET", &path(ns, name), &[], None).await?;
                let if_match: Vec<(&str, &str)> = read
                    .etag
                    .iter()
                    .map(|tag| ("if-match", tag.as_str()))
                    .collect();
                match api
                    .call("PATCH", &path(ns, name), &if_match, Some(&patch))
                    .await
                {
                    Ok(reply) => record_from(reply.json),
                    Err(err) => match err.downcast_ref::<client::Refused>() {
                        Some(moved) if moved.status == 412 => {
                            let now = moved.body["current_version"]
                                .as_u64()
                                .map_or_else(String::new, |v| format!(" (now at version {v})"));
                            Err(anyhow::anyhow!(
                                "it changed meanwhile{now}: run the command again to re-read it and retry"
                            ))
                            .with_context(refused)
                        }
                        _ => Err(err).with_context(refused),
                    },
                }
            }
        }
    }
}

/// The API path of one experiment's record.
fn path(ns: &str, name: &str) -> String {
    format!(
        "/api/experiments/{}?namespace={}",
        client::path_segment(name),
        alephbet_encode(ns)
    )
}

fn record_from(body: serde_json::Value) -> anyhow::Result<ExperimentRecord> {
    serde_json::from_value(body).context("the server answered a record this lamed cannot read")
}

/// The command word of a move, for messages.
fn verb(change: &Change) -> &'static str {
    match change {
        Change::Pause => "pause",
        Change::Resume => "resume",
        Change::Stop { .. } => "stop",
        Change::Archive => "archive",
    }
}

/// Parses `a,b:3,c`: variants in order, each with an optional weight
/// (default 1). The registry then checks the rules (two variants at least,
/// no duplicates, weights in range).
///
/// # Errors
///
/// An empty name or a weight that is not a whole number, named.
pub fn parse_variants(list: &str) -> anyhow::Result<Vec<VariantSpec>> {
    let bad = || format!("bad variant list '{list}'");
    list.split(',')
        .map(|item| {
            let item = item.trim();
            let (name, weight) = match item.rsplit_once(':') {
                Some((name, weight)) => {
                    let weight = weight.trim().parse::<u32>().map_err(|_| {
                        anyhow::anyhow!(
                            "weight '{weight}' of variant '{}' is not a whole number",
                            name.trim()
                        )
                    });
                    (name.trim(), weight.with_context(bad)?)
                }
                None => (item, 1),
            };
            if name.is_empty() {
                return Err(anyhow::anyhow!("a variant has no name")).with_context(bad);
            }
            Ok(VariantSpec {
                name: name.to_owned(),
                weight,
            })
        })
        .collect()
}

/// Parses `buy,share`: goals counted once per visitor.
///
/// # Errors
///
/// An empty name.
pub fn parse_goals(list: &str) -> anyhow::Result<Vec<GoalSpec>> {
    list.split(',')
        .map(|name| match name.trim() {
            "" => bail!("bad goal list '{list}': a goal has no name"),
            name => Ok(GoalSpec {
                name: name.to_owned(),
                unique: true,
            }),
        })
        .collect()
}

/// `red, blue:3`: weights shown when not 1.
fn variant_list(record: &ExperimentRecord) -> String {
    if record.variants.is_empty() {
        return "(not registered)".to_owned();
    }
    let names: Vec<String> = record
        .variants
        .iter()
        .map(|v| match v.weight {
            1 => v.name.clone(),
            weight => format!("{}:{weight}", v.name),
        })
        .collect();
    names.join(", ")
}

fn goal_list(record: &ExperimentRecord) -> String {
    if record.goals.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<String> = record
        .goals
        .iter()
        .map(|g| {
            if g.unique {
                g.name.clone()
            } else {
                format!("{} (every time)", g.name)
            }
        })
        .collect();
    names.join(", ")
}

const MS_PER_DAY: i64 = 86_400_000;

/// `YYYY-MM-DD` of a Unix-millisecond time, UTC.
fn date(ms: i64) -> String {
    civil_date(ms.div_euclid(MS_PER_DAY))
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix-millisecond time.
fn time(ms: i64) -> String {
    let minutes = ms.rem_euclid(MS_PER_DAY) / 60_000;
    format!("{} {:02}:{:02} UTC", date(ms), minutes / 60, minutes % 60)
}

/// The list as an aligned table.
fn table(records: &[ExperimentRecord]) -> String {
    let mut rows =
        vec![["name", "status", "variants", "created", "stopped", "winner"].map(str::to_owned)];
    for r in records {
        rows.push([
            r.name.clone(),
            r.status.as_str().to_owned(),
            variant_list(r),
            date(r.created_ms),
            r.stopped_ms.map_or_else(|| "-".to_owned(), date),
            r.decision.as_ref().map_or_else(
                || "-".to_owned(),
                |d| d.winner.clone().unwrap_or_else(|| "(none)".to_owned()),
            ),
        ]);
    }
    let widths = super::column_widths(&rows);
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One record, field by field.
fn details(r: &ExperimentRecord) -> String {
    let mut lines = vec![
        (
            "status",
            format!(
                "{}{}",
                r.status.as_str(),
                if r.automatic {
                    " (created by tracking)"
                } else {
                    ""
                }
            ),
        ),
        ("variants", variant_list(r)),
        (
            "control",
            r.control.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("goals", goal_list(r)),
        ("created", time(r.created_ms)),
    ];
    if !r.description.is_empty() {
        lines.insert(0, ("description", r.description.clone()));
    }
    for (label, at) in [
        ("started", r.started_ms),
        ("paused", r.paused_ms),
        ("stopped", r.stopped_ms),
        ("archived", r.archived_ms),
    ] {
        if let Some(at) = at {
            lines.push((label, time(at)));
        }
    }
    if let Some(decision) = &r.decision {
        let note = if decision.note.is_empty() {
            String::new()
        } else {
            format!(": {}", decision.note)
        };
        lines.push((
            "decision",
            format!("{}{note}", winner(decision.winner.as_deref())),
        ));
    }
    let mut out = format!("{}  (namespace {})\n", r.name, r.namespace);
    for (label, value) in lines {
        out.push_str(&format!("  {:<12} {value}\n", format!("{label}:")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names in order, weights after a colon, each problem named.
    #[test]
    fn variant_lists() {
        let variants = parse_variants("red, blue:3").unwrap();
        assert_eq!(
            variants,
            vec![
                VariantSpec {
                    name: "red".into(),
                    weight: 1
                },
                VariantSpec {
                    name: "blue".into(),
                    weight: 3
                },
            ]
        );
        let err = format!("{:#}", parse_variants("red,blue:x").unwrap_err());
        assert_eq!(
            err,
            "bad variant list 'red,blue:x': weight 'x' of variant 'blue' is not a whole number"
        );
        let err = format!("{:#}", parse_variants("red,,blue").unwrap_err());
        assert!(err.contains("has no name"), "{err}");
        assert!(parse_goals("buy,").is_err());
        assert_eq!(parse_goals("buy, share").unwrap()[1].name, "share");
    }

    /// UTC dates and times of Unix milliseconds.
    #[test]
    fn times() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(date(-1), "1969-12-31");
    }
}
