//! The report of one experiment: per goal, the statistics of [`lamed_stats`]
//! against a control variant, a plain-language [`verdict`], and the daily
//! series behind the charts. Pure: it works on counters already read from a
//! store.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::adaptive::{self, AdaptiveReport, WeightPeriod};
use lamed_core::model::{Counter, DailyCounter, PARTICIPATE};
use lamed_core::registry::{ExperimentRecord, Status};
use lamed_core::segments::Dimension;
use lamed_core::value::ValueTotals;
use lamed_stats::{
    self, Correction, GoalAnalysis, Interval, MeanAnalysis, Options, SrmCheck, ValueSums,
    VariantCounts,
};
use lamed_store::{Store, StoreError};

pub mod segments;
pub mod verdict;

pub use lamed_core::clock::civil_date;

/// Variant names taken as the control when the request names none, in
/// this order of preference; otherwise the first variant by name.
const CONTROL_NAMES: [&str; 5] = ["control", "original", "baseline", "default", "a"];

/// What the report was asked for.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// The control variant; chosen automatically when `None`.
    pub control: Option<String>,
    /// Only this goal; all goals when `None`.
    pub goal: Option<String>,
    /// Expected traffic split per variant for the sample-ratio check;
    /// equal when `None`.
    pub weights: Option<BTreeMap<String, f64>>,
    /// A sample-ratio check made elsewhere, in the order of the counted
    /// variants' names, used instead of one against `weights`: an adaptive
    /// experiment's, against each period's own weights.
    pub srm: Option<SrmCheck>,
    /// Break the results down by this segment dimension too.
    pub by: Option<Dimension>,
    /// How the breakdown's p-values are corrected.
    pub correction: Correction,
}

/// Why a report cannot be made; each names what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// The experiment has no counters.
    #[error("experiment '{0}' not found")]
    UnknownExperiment(String),
    /// The control is not a variant of the experiment.
    #[error("control '{control}' is not a variant of this experiment; valid variants: {valid}")]
    UnknownControl {
        /// What was asked.
        control: String,
        /// The variants, comma-separated.
        valid: String,
    },
    /// The goal is not a goal of the experiment.
    #[error("goal '{goal}' is not a goal of this experiment; valid goals: {valid}")]
    UnknownGoal {
        /// What was asked.
        goal: String,
        /// The goals, comma-separated.
        valid: String,
    },
    /// The weights do not fit the variants.
    #[error("weights: {0}")]
    BadWeights(String),
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// The namespace.
    pub namespace: String,
    /// The experiment.
    pub experiment: String,
    /// The control variant.
    pub control: String,
    /// Variants by name, with their participants.
    pub variants: Vec<VariantParticipants>,
    /// Do participants match the expected split? Flagged below p = 0.001.
    pub srm: Option<SrmCheck>,
    /// One entry per goal.
    pub goals: Vec<GoalReport>,
    /// Counts per UTC day, for charts.
    pub daily: DailySeries,
    /// The experiment's registry record: status and decision.
    #[serde(default)]
    pub record: Option<ExperimentRecord>,
    /// An adaptive experiment's periods: its weights, the split checked
    /// against them, and its goal's estimates stratified by period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveReport>,
    /// Members the experiment remembers (Sixpack's clients and their
    /// conversions), kept until it is deleted: what it costs the store.
    #[serde(default)]
    pub memberships: u64,
    /// The breakdown by the dimension asked for (`by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<segments::SegmentBreakdown>,
}

/// One variant's participants.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantParticipants {
    /// The variant.
    pub label: String,
    /// Unique participants.
    pub participants: u64,
}

/// One goal's analysis.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GoalReport {
    /// The goal.
    pub goal: String,
    /// One sentence for people who do not read p-values.
    pub verdict: String,
    /// The statistics; `None` when the goal cannot be read as a conversion
    /// rate (see `note`).
    pub analysis: Option<GoalAnalysis>,
    /// Why there is no analysis, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Cumulative conversion rate per variant per day, with its interval.
    pub cumulative: Vec<CumulativeSeries>,
    /// The goal's values (revenue...), when any of its conversions carried
    /// one: means per participant and per conversion, and the tests of
    /// the mean per participant against the control. A conversion without
    /// a value counts as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<MeanAnalysis>,
    /// Why there is no analysis of the values, when they could not be
    /// analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_note: Option<String>,
}

/// Days and, per (event, variant), the count of each day.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DailySeries {
    /// UTC days as `YYYY-MM-DD`, consecutive, first to last day with data.
    pub days: Vec<String>,
    /// One series per event and variant, aligned with `days`.
    pub series: Vec<DaySeries>,
}

/// Counts of one event and variant per day.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DaySeries {
    /// `participate` or a goal.
    pub event: String,
    /// The variant.
    pub variant: String,
    /// Count per day, aligned with [`DailySeries::days`].
    pub counts: Vec<u64>,
}

/// Cumulative conversion of one variant for one goal, per day.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CumulativeSeries {
    /// The variant.
    pub variant: String,
    /// Conversion rate up to each day (`None` before any participant).
    pub rate: Vec<Option<f64>>,
    /// Its Wilson interval.
    pub interval: Vec<Option<Interval>>,
}

/// Builds the report of `experiment` from its counters (of the whole
/// namespace or just this experiment) and its daily counters.
///
/// # Errors
///
/// An unknown experiment, control, goal, or weights that do not fit.
pub fn build(
    namespace: &str,
    experiment: &str,
    counters: &[Counter],
    daily: &[DailyCounter],
    request: &ReportRequest,
) -> Result<Report, ReportError> {
    let mut participants: BTreeMap<&str, u64> = BTreeMap::new();
    let mut goals: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut goal_values: BTreeMap<&str, BTreeMap<&str, ValueTotals>> = BTreeMap::new();
    for counter in counters.iter().filter(|c| c.experiment == experiment) {
        participants.entry(&counter.variant).or_default();
        if counter.event == PARTICIPATE {
            participants.insert(&counter.variant, counter.count);
        } else {
            goals
                .entry(&counter.event)
                .or_default()
                .insert(&counter.variant, counter.count);
            if let Some(values) = counter.values {
                goal_values
                    .entry(&counter.event)
                    .or_default()
                    .insert(&counter.variant, values);
            }
        }
    }
    if participants.is_empty() {
        return Err(ReportError::UnknownExperiment(experiment.to_owned()));
    }
    let labels: Vec<&str> = participants.keys().copied().collect();
    let control = choose_control(&labels, request.control.as_deref())?;
    let control_index = labels.iter().position(|l| *l == control).unwrap_or(0);
    let weights = weights_in_order(&labels, request.weights.as_ref())?;
    if let Some(goal) = &request.goal {
        if !goals.contains_key(goal.as_str()) {
            return Err(ReportError::UnknownGoal {
                goal: goal.clone(),
                valid: join(goals.keys().copied()),
            });
        }
    }
    let options = Options::default();
    let srm = match &request.srm {
        Some(check) if check.expected.len() == labels.len() => Some(check.clone()),
        _ => lamed_stats::sample_ratio_mismatch(
            &labels
                .iter()
                .map(|l| VariantCounts::new(*l, participants[l], 0))
                .collect::<Vec<_>>(),
            weights.as_deref(),
            options.srm_alpha,
        )
        .map_err(|err| ReportError::BadWeights(err.to_string()))?,
    };

    let daily_series = daily_series(daily);
    let goal_reports = goals
        .iter()
        .filter(|(goal, _)| request.goal.as_deref().is_none_or(|g| g == **goal))
        .map(|(goal, successes)| {
            let counts: Vec<VariantCounts> = labels
                .iter()
                .map(|l| {
                    VariantCounts::new(*l, participants[l], successes.get(l).copied().unwrap_or(0))
                })
                .collect();
            let mut report = goal_report(
                goal,
                &counts,
                control_index,
                srm.as_ref(),
                &options,
                &daily_series,
            );
            if let Some(values) = goal_values.get(goal) {
                let sums: Vec<ValueSums> = counts
                    .iter()
                    .map(|c| {
                        let totals = values.get(c.label.as_str()).copied().unwrap_or_default();
                        ValueSums::new(
                            c.label.clone(),
                            c.trials,
                            c.successes,
                            totals.sum,
                            totals.sum_of_squares,
                        )
                    })
                    .collect();
                match lamed_stats::analyze_means(&sums, control_index, &options) {
                    Ok(analysis) => report.values = Some(analysis),
                    Err(err) => report.values_note = Some(err.to_string()),
                }
            }
            report
        })
        .collect();
    Ok(Report {
        namespace: namespace.to_owned(),
        experiment: experiment.to_owned(),
        control: control.to_owned(),
        variants: labels
            .iter()
            .map(|l| VariantParticipants {
                label: (*l).to_owned(),
                participants: participants[l],
            })
            .collect(),
        srm,
        goals: goal_reports,
        daily: daily_series,
        record: None,
        adaptive: None,
        memberships: 0,
        segments: None,
    })
}

/// Why [`load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The report cannot be made.
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl ReportRequest {
    /// The owner's registered control and weights, for what the request
    /// leaves out; only for `counted` variants (those with counts), which
    /// are the ones the statistics read: a registered variant nobody saw
    /// yet cannot be the control or take a share.
    pub fn with_record(
        mut self,
        record: Option<&ExperimentRecord>,
        counted: &BTreeSet<&str>,
    ) -> Self {
        let Some(record) = record else {
            return self;
        };
        if self.control.is_none() {
            self.control = record
                .control
                .clone()
                .filter(|control| counted.contains(control.as_str()));
        }
        if self.weights.is_none() {
            self.weights = record.weights().map(|mut weights| {
                weights.retain(|variant, _| counted.contains(variant.as_str()));
                weights
            });
        }
        self
    }
}

/// One experiment's report from a store: its counters, days and registry
/// record. The statistics take milliseconds of CPU, so they run off the
/// async workers that serve tracking.
///
/// # Errors
///
/// A store failure, or what [`build`] refuses.
pub async fn load(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    request: &ReportRequest,
) -> Result<Report, LoadError> {
    let counters = store.experiment_counters(namespace, experiment).await?;
    let daily = store.daily_counters(namespace, experiment).await?;
    let record = store.record(namespace, experiment).await?;
    let counted: BTreeSet<&str> = counters.iter().map(|c| c.variant.as_str()).collect();
    let mut request = request.clone().with_record(record.as_ref(), &counted);
    let adaptive = match record
        .as_ref()
        .and_then(|r| Some((r, r.adaptive.as_ref()?)))
    {
        Some((record, adaptive)) => {
            let history: Vec<WeightPeriod> = store
                .weight_history(namespace, experiment)
                .await?
                .iter()
                .filter_map(|(_, stored)| adaptive::parse_period(stored).ok())
                .collect();
            let report =
                adaptive::report(record, adaptive, &history, &counters, &Options::default());
            if request.srm.is_none() {
                let labels: Vec<&str> = counted.iter().copied().collect();
                request.srm = report.srm_in_order(&labels);
            }
            Some(report)
        }
        None => None,
    };
    let (by, correction, split) = (request.by, request.correction, request.weights.clone());
    let (owned_namespace, owned_experiment) = (namespace.to_owned(), experiment.to_owned());
    let mut report = tokio::task::spawn_blocking(move || {
        build(
            &owned_namespace,
            &owned_experiment,
            &counters,
            &daily,
            &request,
        )
    })
    .await
    .map_err(|err| StoreError::unavailable(format!("report task failed: {err}")))??;
    report.record = record;
    report.adaptive = adaptive;
    report.memberships = store.member_count(namespace, experiment).await?;
    if let Some(dimension) = by {
        let counters = store.segment_counters(namespace, experiment).await?;
        let labels: Vec<&str> = report.variants.iter().map(|v| v.label.as_str()).collect();
        let control = labels
            .iter()
            .position(|l| *l == report.control)
            .unwrap_or(0);
        let goals: Vec<&str> = report.goals.iter().map(|g| g.goal.as_str()).collect();
        let weights = weights_in_order(&labels, split.as_ref())?;
        report.segments = Some(segments::breakdown(
            dimension,
            &counters,
            &labels,
            control,
            &goals,
            weights.as_deref(),
            correction,
        ));
    }
    Ok(report)
}

/// The experiments a namespace's reports cover by default: all but the
/// archived ones.
///
/// # Errors
///
/// A store failure.
pub async fn listed(store: &dyn Store, namespace: &str) -> Result<Vec<String>, StoreError> {
    let archived: Vec<String> = store
        .records(namespace)
        .await?
        .into_iter()
        .filter(|r| r.status == Status::Archived)
        .map(|r| r.name)
        .collect();
    let mut names = store.experiments(namespace).await?;
    names.retain(|name| !archived.contains(name));
    Ok(names)
}

/// One goal's analysis; `srm` is the experiment's sample-ratio check,
/// which is the same for every goal because it reads only participants.
fn goal_report(
    goal: &str,
    counts: &[VariantCounts],
    control: usize,
    srm: Option<&SrmCheck>,
    options: &Options,
    daily: &DailySeries,
) -> GoalReport {
    let cumulative = cumulative_series(goal, counts, daily, options.confidence);
    if let Some(over) = counts.iter().find(|c| c.successes > c.trials) {
        return GoalReport {
            goal: goal.to_owned(),
            verdict: verdict::events_not_conversions(goal),
            analysis: None,
            note: Some(format!(
                "variant '{}' has {} completions for {} participants, so this goal is \
                 not a once-per-visitor conversion (a goal with unique: false?); \
                 compare its totals instead",
                over.label, over.successes, over.trials
            )),
            cumulative,
            values: None,
            values_note: None,
        };
    }
    match lamed_stats::analyze_with_srm(counts, control, srm.cloned(), options) {
        Ok(analysis) => GoalReport {
            goal: goal.to_owned(),
            verdict: verdict::for_analysis(goal, &analysis),
            analysis: Some(analysis),
            note: None,
            cumulative,
            values: None,
            values_note: None,
        },
        Err(err) => GoalReport {
            goal: goal.to_owned(),
            verdict: verdict::cannot_be_analysed(goal),
            analysis: None,
            note: Some(err.to_string()),
            cumulative,
            values: None,
            values_note: None,
        },
    }
}

/// The requested control, or the first of [`CONTROL_NAMES`] present
/// (case-insensitive), or the first variant by name.
fn choose_control<'a>(labels: &[&'a str], asked: Option<&str>) -> Result<&'a str, ReportError> {
    if let Some(asked) = asked {
        return labels
            .iter()
            .find(|l| **l == asked)
            .copied()
            .ok_or_else(|| ReportError::UnknownControl {
                control: asked.to_owned(),
                valid: join(labels.iter().copied()),
            });
    }
    let by_name = CONTROL_NAMES
        .iter()
        .find_map(|name| labels.iter().find(|l| l.eq_ignore_ascii_case(name)));
    Ok(by_name.or(labels.first()).copied().unwrap_or_default())
}

fn weights_in_order(
    labels: &[&str],
    weights: Option<&BTreeMap<String, f64>>,
) -> Result<Option<Vec<f64>>, ReportError> {
    let Some(weights) = weights else {
        return Ok(None);
    };
    if let Some(unknown) = weights.keys().find(|k| !labels.contains(&k.as_str())) {
        return Err(ReportError::BadWeights(format!(
            "'{unknown}' is not a variant; valid variants: {}",
            join(labels.iter().copied())
        )));
    }
    labels
        .iter()
        .map(|l| {
            weights
                .get(*l)
                .copied()
                .ok_or_else(|| ReportError::BadWeights(format!("no weight for variant '{l}'")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Lays daily counters on a consecutive range of days.
fn daily_series(daily: &[DailyCounter]) -> DailySeries {
    let (Some(first), Some(last)) = (
        daily.iter().map(|d| d.day).min(),
        daily.iter().map(|d| d.day).max(),
    ) else {
        return DailySeries::default();
    };
    let span = (last - first + 1) as usize;
    let mut series: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for d in daily {
        series
            .entry((&d.event, &d.variant))
            .or_insert_with(|| vec![0; span])[(d.day - first) as usize] += d.count;
    }
    DailySeries {
        days: (first..=last).map(civil_date).collect(),
        series: series
            .into_iter()
            .map(|((event, variant), counts)| DaySeries {
                event: event.to_owned(),
                variant: variant.to_owned(),
                counts,
            })
            .collect(),
    }
}

fn cumulative_series(
    goal: &str,
    counts: &[VariantCounts],
    daily: &DailySeries,
    confidence: f64,
) -> Vec<CumulativeSeries> {
    let find = |event: &str, variant: &str| {
        daily
            .series
            .iter()
            .find(|s| s.event == event && s.variant == variant)
            .map(|s| s.counts.as_slice())
    };
    let z = lamed_stats::z_critical(confidence);
    counts
        .iter()
        .map(|variant| {
            let trials = find(PARTICIPATE, &variant.label);
            let successes = find(goal, &variant.label);
            let (mut n, mut k) = (0u64, 0u64);
            let (mut rate, mut interval) = (Vec::new(), Vec::new());
            for day in 0..daily.days.len() {
                n += trials.map_or(0, |t| t[day]);
                k += successes.map_or(0, |s| s[day]);
                let point = VariantCounts::new(variant.label.as_str(), n, k.min(n));
                rate.push(point.rate());
                interval.push(lamed_stats::wilson_interval_z(&point, z));
            }
            CumulativeSeries {
                variant: variant.label.clone(),
                rate,
                interval,
            }
        })
        .collect()
}

/// Parses an expected split such as `red:80,blue:20` (any positive units).
///
/// # Errors
///
/// [`ReportError::BadWeights`] naming the part that is not `label:number`.
pub fn parse_weights(text: &str) -> Result<BTreeMap<String, f64>, ReportError> {
    text.split(',')
        .map(|pair| {
            let (label, weight) = pair.rsplit_once(':').ok_or_else(|| {
                ReportError::BadWeights(format!("must look like red:80,blue:20; got '{pair}'"))
            })?;
            let weight = weight
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w > 0.0)
                .ok_or_else(|| {
                    ReportError::BadWeights(format!("'{weight}' is not a positive number"))
                })?;
            Ok((label.to_owned(), weight))
        })
        .collect()
}

fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The registered control and weights fill in only for variants with
    /// counts; what the request names wins.
    #[test]
    fn registered_control_and_weights_follow_counted_variants() {
        let mut record = ExperimentRecord::automatic("n", "e", 0);
        record
            .redefine(
                serde_json::from_str::<lamed_core::registry::Definition>(
                    r#"{"variants": ["red", {"name": "blue", "weight": 3}]}"#,
                )
                .unwrap()
                .validated()
                .unwrap(),
            )
            .unwrap();
        let only_blue = BTreeSet::from(["blue"]);
        let request = ReportRequest::default().with_record(Some(&record), &only_blue);
        assert_eq!(request.control, None, "red has no counts yet");
        assert_eq!(
            request.weights,
            Some(BTreeMap::from([("blue".into(), 3.0)]))
        );
        let both = BTreeSet::from(["blue", "red"]);
        let request = ReportRequest::default().with_record(Some(&record), &both);
        assert_eq!(request.control.as_deref(), Some("red"));
        let asked = ReportRequest {
            control: Some("blue".into()),
            ..ReportRequest::default()
        };
        assert_eq!(
            asked.with_record(Some(&record), &both).control.as_deref(),
            Some("blue")
        );
    }

    /// A counter of experiment `e` without values (also the alert
    /// evaluation's tests').
    pub(crate) fn counter(event: &str, variant: &str, count: u64) -> Counter {
        Counter {
            experiment: "e".into(),
            event: event.into(),
            variant: variant.into(),
            count,
            values: None,
        }
    }

    fn seeded() -> Vec<Counter> {
        vec![
            counter(PARTICIPATE, "red", 1000),
            counter(PARTICIPATE, "blue", 1000),
            counter("buy", "red", 100),
            counter("buy", "blue", 150),
            counter("views", "red", 5000),
        ]
    }

    /// Day numbers become calendar dates (leap years included).
    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_417), "2025-11-25");
    }

    /// The control is chosen by name, else the first variant; a bad one is
    /// refused naming the valid ones.
    #[test]
    fn control_choice() {
        assert_eq!(choose_control(&["a", "b"], None).unwrap(), "a");
        assert_eq!(choose_control(&["b", "Control"], None).unwrap(), "Control");
        assert_eq!(choose_control(&["blue", "red"], None).unwrap(), "blue");
        let err = choose_control(&["blue", "red"], Some("green")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "control 'green' is not a variant of this experiment; valid variants: blue, red"
        );
    }

    /// A goal with more completions than participants gets a note instead
    /// of meaningless statistics; the others are analysed against control.
    #[test]
    fn report_per_goal() {
        let request = ReportRequest {
            control: Some("red".into()),
            ..ReportRequest::default()
        };
        let report = build("ns", "e", &seeded(), &[], &request).unwrap();
        assert_eq!(report.control, "red");
        let buy = &report.goals[0];
        assert_eq!(buy.goal, "buy");
        let analysis = buy.analysis.as_ref().unwrap();
        assert_eq!(analysis.variants[analysis.control].label, "red");
        assert!(report.srm.is_some());
        assert_eq!(analysis.srm, report.srm, "one sample-ratio check for all");
        assert!(buy.verdict.contains("blue"), "{}", buy.verdict);
        let views = &report.goals[1];
        assert!(views.analysis.is_none());
        assert!(views.note.as_ref().unwrap().contains("unique: false"));
    }

    /// Unknown experiment, goal and weights are refused with their names.
    #[test]
    fn refusals() {
        let none = ReportRequest::default();
        assert_eq!(
            build("ns", "x", &seeded(), &[], &none).unwrap_err(),
            ReportError::UnknownExperiment("x".into())
        );
        let goal = ReportRequest {
            goal: Some("nope".into()),
            ..none.clone()
        };
        assert!(build("ns", "e", &seeded(), &[], &goal)
            .unwrap_err()
            .to_string()
            .ends_with("valid goals: buy, views"));
        let weights = ReportRequest {
            weights: Some([("red".to_owned(), 1.0)].into()),
            ..none
        };
        assert!(build("ns", "e", &seeded(), &[], &weights)
            .unwrap_err()
            .to_string()
            .contains("no weight for variant 'blue'"));
    }

    /// Daily counters fill a consecutive day range; cumulative rates follow.
    #[test]
    fn daily_and_cumulative() {
        let day = |event: &str, variant: &str, day: i64, count: u64| DailyCounter {
            event: event.into(),
            variant: variant.into(),
            day,
            count,
        };
        let daily = vec![
            day(PARTICIPATE, "red", 100, 10),
            day("buy", "red", 100, 1),
            day(PARTICIPATE, "red", 102, 10),
            day("buy", "red", 102, 3),
        ];
        let counters = vec![counter(PARTICIPATE, "red", 20), counter("buy", "red", 4)];
        let report = build("ns", "e", &counters, &daily, &ReportRequest::default()).unwrap();
        assert_eq!(
            report.daily.days,
            vec!["1970-04-11", "1970-04-12", "1970-04-13"]
        );
        assert_eq!(report.daily.series[1].counts, vec![10, 0, 10]);
        let cumulative = &report.goals[0].cumulative[0];
        assert_eq!(cumulative.rate, vec![Some(0.1), Some(0.1), Some(0.2)]);
    }
}
