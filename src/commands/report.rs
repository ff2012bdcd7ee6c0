//! `lamed report`: the dashboard's analysis in the terminal, as aligned
//! tables with verdicts, or JSON; read from the local store or from a
//! running server's API.

use std::io::{IsTerminal, Write};

use crate::adaptive::AdaptiveReport;
use crate::cli::ReportArgs;
use crate::client;
use crate::client::alephbet_encode;
use crate::config::Config;
use crate::report::segments::SegmentBreakdown;
use crate::report::{self, Report, ReportRequest};
use crate::stats::{GoalAnalysis, Interval, MeanAnalysis, StratifiedAnalysis};
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
        by: args.by,
        correction: args.correction,
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
    // A Redis or DynamoDB store (configured in the file) is read where it
    // is; the embedded one read-only, so a running server is not disturbed.
    let store: crate::store::DynStore = if config.redis.is_some() || config.dynamodb_table.is_some()
    {
        crate::store::open(&config.store_options()).await?
    } else {
        std::sync::Arc::new(EmbeddedStore::open_read_only(&config.data_dir)?)
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
    let api = client::Api::new(
        server,
        args.remote.api_key.as_deref(),
        args.remote.ca_cert.as_deref(),
    )
    .await?;
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
    if let Some(dimension) = request.by {
        query.push_str(&format!(
            "&by={dimension}&correction={}",
            report::segments::correction_name(request.correction)
        ));
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
        if let Some(values) = &goal.values {
            out.push_str(&format!(
                "\n    values of {} (per participant: non-buyers count 0)\n",
                goal.goal
            ));
            out.push_str(&values_table(values));
        } else if let Some(note) = &goal.values_note {
            out.push_str(&format!("    values: {note}\n"));
        }
    }
    if let Some(adaptive) = &report.adaptive {
        out.push_str(&adaptive_lines(adaptive));
    }
    if let Some(breakdown) = &report.segments {
        out.push_str(&segment_lines(report, breakdown));
    }
    out.push('\n');
    out
}

/// The breakdown by one dimension: per value and goal, a row per variant
/// (participants, conversions, rate, uplift, raw and corrected p-values).
fn segment_lines(report: &Report, breakdown: &SegmentBreakdown) -> String {
    let mut out = format!(
        "\n  by {} ({}; p-values corrected with {} across {} tests)\n",
        breakdown.dimension, breakdown.note, breakdown.correction, breakdown.tests
    );
    for value in &breakdown.values {
        let srm = match &value.srm {
            Some(srm) if srm.mismatch => {
                format!(", SAMPLE RATIO MISMATCH (p = {:.2e})", srm.test.p_value)
            }
            _ => String::new(),
        };
        let untested = if value.tested {
            ""
        } else {
            ", too few participants for tests"
        };
        out.push_str(&format!("\n    {}{untested}{srm}\n", value.value));
        for goal in &value.goals {
            out.push_str(&format!(
                "      {:<14} {:>12} {:>11} {:>8} {:>9} {:>9} {:>9}\n",
                goal.goal, "participants", "conversions", "rate", "uplift", "p", "adjusted"
            ));
            for variant in &goal.variants {
                let marker = if variant.label == report.control {
                    "*"
                } else {
                    " "
                };
                out.push_str(&format!(
                    "      {marker}{:<13} {:>12} {:>11} {:>8} {:>9} {:>9} {:>9}\n",
                    variant.label,
                    variant.participants,
                    variant.conversions,
                    pct(variant.rate),
                    variant
                        .uplift
                        .map_or("-".to_owned(), |u| format!("{:+.1}%", u.estimate * 100.0)),
                    variant
                        .p_value
                        .map_or("-".to_owned(), |p| format!("{p:.4}")),
                    variant
                        .adjusted_p_value
                        .map_or("-".to_owned(), |p| format!("{p:.4}")),
                ));
            }
        }
    }
    out
}

/// Percent with two decimals, or `-`.
fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |x| format!("{:.2}%", x * 100.0))
}

/// An amount with two decimals, or `-`.
fn amount(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |x| format!("{x:.2}"))
}

/// `lower .. upper` in `format`, or `-`.
fn range(interval: Option<&Interval>, format: impl Fn(Option<f64>) -> String) -> String {
    interval.map_or("-".into(), |i| {
        format!("{} .. {}", format(Some(i.lower)), format(Some(i.upper)))
    })
}

/// A goal's values: sums and means per variant, and the Welch test of the
/// mean per participant against the control.
fn values_table(analysis: &MeanAnalysis) -> String {
    let mut rows = vec![[
        "variant",
        "sum",
        "per participant",
        "95% interval",
        "per conversion",
        "difference",
        "95% interval",
        "lift",
        "p (Holm)",
    ]
    .map(str::to_owned)];
    for v in &analysis.variants {
        let c = v.comparison.as_ref();
        rows.push([
            if v.is_control {
                format!("{} (control)", v.label)
            } else {
                v.label.clone()
            },
            amount(Some(v.sum)),
            amount(v.per_participant.map(|m| m.mean)),
            range(v.per_participant.and_then(|m| m.interval).as_ref(), amount),
            amount(v.per_conversion.map(|m| m.mean)),
            amount(c.and_then(|c| c.difference)),
            range(c.and_then(|c| c.welch).map(|w| w.interval).as_ref(), amount),
            pct(c.and_then(|c| c.lift).map(|l| l.estimate)),
            c.and_then(|c| c.adjusted_p_value)
                .map_or("-".into(), |p| format!("{p:.4}")),
        ]);
    }
    aligned(&rows)
}

/// An adaptive experiment's weights and its goal stratified by period.
fn adaptive_lines(adaptive: &AdaptiveReport) -> String {
    let mut out = format!(
        "\n  adaptive on {} ({} periods stored, {} strata)\n",
        adaptive.adaptive.goal, adaptive.periods, adaptive.strata
    );
    if let Some(latest) = &adaptive.latest {
        let weights: Vec<String> = latest
            .variants
            .iter()
            .zip(&latest.weights)
            .map(|(v, w)| format!("{v} {w}%"))
            .collect();
        let phase = if latest.burn_in { " (burn-in)" } else { "" };
        out.push_str(&format!(
            "    latest weights: {}{phase}\n",
            weights.join(", ")
        ));
    }
    if let Some(srm) = adaptive.srm.as_ref().filter(|s| s.mismatch) {
        out.push_str(&format!(
            "    SAMPLE RATIO MISMATCH against each period's weights (p = {:.2e})\n",
            srm.test.p_value
        ));
    }
    let stratified =
        |label: &str, analysis: &StratifiedAnalysis, format: fn(Option<f64>) -> String| {
            let mut rows = vec![[
                label,
                "estimate",
                "95% interval",
                "difference",
                "95% interval",
            ]
            .map(str::to_owned)];
            for v in &analysis.variants {
                let c = v.comparison.as_ref();
                rows.push([
                    v.label.clone(),
                    format(v.estimate.map(|e| e.estimate)),
                    range(v.estimate.and_then(|e| e.interval).as_ref(), format),
                    format(c.map(|c| c.difference)),
                    range(c.and_then(|c| c.interval).as_ref(), format),
                ]);
            }
            aligned(&rows)
        };
    if let Some(rates) = &adaptive.rates {
        out.push_str(&stratified("rate, by period", rates, pct));
    }
    if let Some(means) = &adaptive.means {
        out.push_str(&stratified("value, by period", means, amount));
    }
    if let Some(note) = &adaptive.note {
        out.push_str(&format!("    {note}\n"));
    }
    out
}

fn table(analysis: &GoalAnalysis) -> String {
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
            range(v.interval.as_ref(), pct),
            uplift.map_or("-".into(), |u| pct(Some(u.estimate))),
            range(uplift.and_then(|u| u.interval.as_ref()), pct),
            c.and_then(|c| c.adjusted_p_value)
                .map_or("-".into(), |p| format!("{p:.4}")),
            c.map_or("-".into(), |c| pct(Some(c.chance_to_beat_control))),
            pct(Some(v.chance_to_be_best)),
        ]);
    }
    aligned(&rows)
}

/// Rows as columns aligned under their headers: the first left-aligned,
/// the others right-aligned.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let widths = super::column_widths(rows);
    let mut out = String::new();
    for row in rows {
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
