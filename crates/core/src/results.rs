//! Builds the exact JSON shape Lamed's `/experiments` answers with, from
//! counters: a meta element, then one element per experiment with, per goal,
//! the successes and trials of every variant.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{Counter, PARTICIPATE};

/// One element of the response array.
#[derive(Debug, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ResultsEntry {
    /// The first element: `{"meta": {"scope": ...}}`.
    Meta {
        /// Echo of the request.
        meta: Meta,
    },
    /// One experiment.
    Experiment(ExperimentResults),
}

/// Echo of the request's scope.
#[derive(Debug, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Meta {
    /// The `scope` query value as given, or null.
    pub scope: Option<String>,
}

/// One experiment's goals.
#[derive(Debug, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ExperimentResults {
    /// The experiment name.
    pub experiment: String,
    /// One entry per goal (never `participate`).
    pub goals: Vec<GoalResults>,
}

/// One goal's counts per variant.
#[derive(Debug, Serialize, PartialEq, schemars::JsonSchema)]
pub struct GoalResults {
    /// The goal name.
    pub goal: String,
    /// One entry per variant of the experiment.
    pub results: Vec<VariantResult>,
}

/// One variant's counts for one goal.
#[derive(Debug, Serialize, PartialEq, schemars::JsonSchema)]
pub struct VariantResult {
    /// The variant name.
    pub label: String,
    /// Unique completions of the goal.
    pub successes: u64,
    /// Unique participants.
    pub trials: u64,
}

/// The experiments to answer for: the comma-separated `scope` (in its
/// order, including names with no data, as Lamed does) or every experiment
/// of the namespace.
pub fn scoped_experiments(scope: Option<&str>, all: &[String]) -> Vec<String> {
    match scope {
        Some(scope) if !scope.is_empty() => {
            let mut seen = BTreeSet::new();
            scope
                .split(',')
                .filter(|name| seen.insert(*name))
                .map(str::to_owned)
                .collect()
        }
        _ => all.to_vec(),
    }
}

/// The whole response for the given experiments.
pub fn experiments_response(
    scope: Option<String>,
    experiments: &[String],
    counters: &[Counter],
) -> Vec<ResultsEntry> {
    let mut entries = vec![ResultsEntry::Meta {
        meta: Meta { scope },
    }];
    for experiment in experiments {
        let mine = counters.iter().filter(|c| &c.experiment == experiment);
        entries.push(ResultsEntry::Experiment(ExperimentResults {
            experiment: experiment.clone(),
            goals: goal_results(mine),
        }));
    }
    entries
}

/// Per goal, every variant seen in the experiment with its successes and
/// trials (0 where a counter is absent), goals and variants sorted by name.
fn goal_results<'a>(counters: impl Iterator<Item = &'a Counter>) -> Vec<GoalResults> {
    let mut variants = BTreeSet::new();
    let mut counts: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for counter in counters {
        variants.insert(counter.variant.as_str());
        counts
            .entry(counter.event.as_str())
            .or_default()
            .insert(counter.variant.as_str(), counter.count);
    }
    let trials = counts.get(PARTICIPATE).cloned().unwrap_or_default();
    counts
        .iter()
        .filter(|(goal, _)| **goal != PARTICIPATE)
        .map(|(goal, successes)| GoalResults {
            goal: (*goal).to_owned(),
            results: variants
                .iter()
                .map(|variant| VariantResult {
                    label: (*variant).to_owned(),
                    successes: successes.get(variant).copied().unwrap_or(0),
                    trials: trials.get(variant).copied().unwrap_or(0),
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counter(experiment: &str, event: &str, variant: &str, count: u64) -> Counter {
        Counter {
            experiment: experiment.into(),
            event: event.into(),
            variant: variant.into(),
            count,
            values: None,
        }
    }

    /// The shape matches WIRE.md byte for byte in structure.
    #[test]
    fn lamed_shape() {
        let counters = vec![
            counter("button color", "participate", "red", 402),
            counter("button color", "participate", "blue", 398),
            counter("button color", "checkout", "red", 31),
            counter("button color", "checkout", "blue", 45),
            counter("fresh", "participate", "a", 1),
        ];
        let all = vec!["button color".to_owned(), "fresh".to_owned()];
        let body = serde_json::to_value(experiments_response(None, &all, &counters)).unwrap();
        assert_eq!(
            body,
            json!([
                {"meta": {"scope": null}},
                {"experiment": "button color", "goals": [
                    {"goal": "checkout", "results": [
                        {"label": "blue", "successes": 45, "trials": 398},
                        {"label": "red", "successes": 31, "trials": 402}]}]},
                {"experiment": "fresh", "goals": []}
            ])
        );
    }

    /// A variant with a goal but no participants still shows, with 0 trials.
    #[test]
    fn missing_counters_are_zero() {
        let counters = vec![
            counter("e", "buy", "a", 2),
            counter("e", "participate", "b", 3),
        ];
        let body = serde_json::to_value(experiments_response(
            Some("e".into()),
            &["e".into()],
            &counters,
        ))
        .unwrap();
        assert_eq!(
            body[1]["goals"][0]["results"],
            json!([{"label": "a", "successes": 2, "trials": 0}, {"label": "b", "successes": 0, "trials": 3}])
        );
        assert_eq!(body[0]["meta"]["scope"], "e");
    }

    /// Scope keeps its order, drops repeats and falls back to all when empty.
    #[test]
    fn scope_selection() {
        let all = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(scoped_experiments(Some("b,x,b"), &all), vec!["b", "x"]);
        assert_eq!(scoped_experiments(Some(""), &all), all);
        assert_eq!(scoped_experiments(None, &all), all);
    }
}
