//! `lamed report`: the dashboard's analysis in the terminal, as aligned
//! tables with verdicts, or JSON; read from the local store or from a
//! running server's API.

use std::io::{IsTerminal, Write};

use crate::cli::ReportArgs;
use crate::client;
use crate::client::alephbet_encode;
use crate::config::Config;
use crate::report::{self, Report, ReportRequest};
use crate::stats::GoalAnalysis;
use crate::store::EmbeddedStore;

/// Prints the report of one experiment, or of every experiment of the
/// namespace.
///
/// # Errors
///
/// Unknown experiment, control or goal; an unreachable server or store.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let request = ReportRequest {
        control: args.control.clone(),
        goal: args.goal.clone(),
        weights: args
            .weights
            .as_deref()
            .map(report::parse_weights)
            .transpose()?,
        srm: None,
    };
    let reports = match &args.remote.server {
        Some(server) => from_server(server, &args, &request).await?,
        None => from_store(&args, &request).await?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = match (&args.experiment, reports.as_slice()) {
            (Some(_), [one]) => serde_json::to_string_pretty(one)?,
            _ => serde_json::to_string_pretty(&reports)?,
        };
        writeln!(out, "{json}")?;
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        for report in &reports {
            write!(out, "{}", render(report, colour))?;
        }
        if reports.is_empty() {
            writeln!(out, "no experiments in namespace '{}'", args.namespace)?;
        }
    }
    Ok(())
}

async fn from_store(args: &ReportArgs, request: &ReportRequest) -> anyhow::Result<Vec<Report>> {
    let config = Config::load(args.store.overrides())?;
    // A Redis store (configured in the file) is read where it is; the
    // embedded one read-only, so a running server is not disturbed.
    let store: crate::store::DynStore = match &config.redis {
        Some(_) => crate::store::open(&config).await?,
        None => std::sync::Arc::new(EmbeddedStore::open_read_only(&config.data_dir)?),
    };
    let ns = &args.namespace;
    let experiments = match &args.experiment {
        Some(name) => vec![name.clone()],
        None => report::listed(store.as_ref(), ns).await?,
    };
    let mut reports = Vec::new();
    for experiment in experiments {
        reports.push(report::load(store.as_ref(), ns, &experiment, request).await?);
    }
    Ok(reports)
}

async fn from_server(
    server: &str,
    args: &ReportArgs,
    request: &ReportRequest,
) -> anyhow::Result<Vec<Report>> {
    let api = client::Api::new(server, args.remote.api_key.as_deref()).await?;
    let ns = alephbet_encode(&args.namespace);
    let names = |answer: serde_json::Value, field: &str| -> Vec<String> {
        answer
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e[field].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let experiments: Vec<String> = match &args.experiment {
        Some(name) => vec![name.clone()],
        None => {
            // As from the store: every experiment but the archived ones.
            let archived = names(
                api.get(&format!("/api/experiments?namespace={ns}&status=archived"))
                    .await?,
                "name",
            );
            let mut all = names(
                api.get(&format!("/experiments?namespace={ns}")).await?,
                "experiment",
            );
            all.retain(|name| !archived.contains(name));
            all
        }
    };
    let mut query = format!("namespace={ns}");
    for (name, value) in [
        ("control", &request.control),
        ("goal", &request.goal),
        ("weights", &args.weights),
    ] {
        if let Some(value) = value {
            query.push_str(&format!("&{name}={}", alephbet_encode(value)));
        }
    }
    let mut reports = Vec::new();
    for experiment in experiments {
        let path = format!(
            "/api/experiments/{}/report?{query}",
            client::path_segment(&experiment)
        );
        reports.push(serde_json::from_value(api.get(&path).await?)?);
    }
    Ok(reports)
}

/// The report as text: a header, the SRM warning, then per goal the
/// verdict and an aligned table.
pub fn render(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let mut out = format!(
        "{}  (namespace {}, control {})\n",
        paint("1", &report.experiment),
        report.namespace,
        report.control
    );
    let participants: Vec<String> = report
        .variants
        .iter()
        .map(|v| format!("{} {}", v.label, v.participants))
        .collect();
    out.push_str(&format!("  participants: {}\n", participants.join(", ")));
    if let Some(srm) = report.srm.as_ref().filter(|s| s.mismatch) {
        out.push_str(&paint(
            "31",
            &format!(
                "  SAMPLE RATIO MISMATCH: participants do not match the expected split (p = {:.2e})\n",
                srm.test.p_value
            ),
        ));
        out.push('\n');
    }
    if report.goals.is_empty() {
        out.push_str("  no goal completed yet\n");
    }
    for goal in &report.goals {
        out.push_str(&format!("\n  {}\n", paint("1", &goal.verdict)));
        match &goal.analysis {
            Some(analysis) => out.push_str(&table(analysis)),
            None => out.push_str(&format!("  {}\n", goal.note.as_deref().unwrap_or(""))),
        }
    }
    out.push('\n');
    out
}

fn table(analysis: &GoalAnalysis) -> String {
    let pct = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{:.2}%", x * 100.0));
    let mut rows = vec![[
        "variant",
        "participants",
        "conversions",
        "rate",
        "95% interval",
        "uplift",
        "95% interval",
        "p (Holm)",
        "P(beat control)",
        "P(best)",
    ]
    .map(str::to_owned)];
    for v in &analysis.variants {
        let c = v.comparison.as_ref();
        let uplift = c.and_then(|c| c.uplift.as_ref());
        rows.push([
            if v.is_control {
                format!("{} (control)", v.label)
            } else {
                v.label.clone()
            },
            v.trials.to_string(),
            v.successes.to_string(),
            pct(v.rate),
            v.interval.as_ref().map_or("-".into(), |i| {
                format!("{} .. {}", pct(Some(i.lower)), pct(Some(i.upper)))
            }),
            uplift.map_or("-".into(), |u| pct(Some(u.estimate))),
            uplift
                .and_then(|u| u.interval.as_ref())
                .map_or("-".into(), |i| {
                    format!("{} .. {}", pct(Some(i.lower)), pct(Some(i.upper)))
                }),
            c.and_then(|c| c.adjusted_p_value)
                .map_or("-".into(), |p| format!("{p:.4}")),
            c.map_or("-".into(), |c| pct(Some(c.chance_to_beat_control))),
            pct(Some(v.chance_to_be_best)),
        ]);
    }
    let widths = super::column_widths(&rows);
    let mut out = String::new();
    for row in &rows {
        out.push_str("   ");
        for (col, cell) in row.iter().enumerate() {
            let pad = widths[col] - cell.chars().count();
            if col == 0 {
                out.push_str(&format!(" {cell}{}", " ".repeat(pad)));
            } else {
                out.push_str(&format!("  {}{cell}", " ".repeat(pad)));
            }
        }
        out.push('\n');
    }
    out
}
