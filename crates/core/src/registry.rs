//! The registry: experiments as objects their owners control. Each
//! experiment has a record (its variants and intended weights, its
//! control, its goals, a description) and a lifecycle: running, paused,
//! stopped with a decision, archived. Tracking counts only for running
//! experiments, and in [`RegistrationMode::Required`] only for what was
//! registered.
//!
//! This module holds the rules; the stores keep the records
//! (`lamed_store::Store::put_record`) and apply the status while
//! counting, atomically with the count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::adaptive::Adaptive;
use crate::names::{check_field, InvalidField, MAX_NAME_BYTES, PARTICIPATE};

/// Longest description and decision note, in bytes.
pub const MAX_NOTE_BYTES: usize = 2_000;

/// The version of a record's first write. Records stored before records
/// had versions read as this one: each was written at least once.
pub const FIRST_VERSION: u64 = 1;

/// Who may create experiments.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Lamed's drop-in behaviour: the first event of an unknown experiment
    /// registers it as running, with the variants and goals it names,
    /// within the caps.
    #[default]
    Open,
    /// Only registered experiments, variants and goals count; anything
    /// else is ignored, so anonymous requests cannot create names.
    Required,
}

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Counting.
    Running,
    /// Counting nothing new until resumed.
    Paused,
    /// Over, with a decision; its counts stay as they were at the stop.
    Stopped,
    /// Put away: counts nothing and leaves the default lists.
    Archived,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 4] = [
        Status::Running,
        Status::Paused,
        Status::Stopped,
        Status::Archived,
    ];

    /// The word used on the wire, in stores and in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Archived => "archived",
        }
    }

    /// The status a stored word names.
    pub fn parse(word: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// Whether the lifecycle allows a move from this status to `to`: pause
    /// and resume, stop a live experiment, archive anything not archived.
    /// The one statement of the rule; the dashboard reads it from
    /// `GET /api/lifecycle`.
    pub const fn can_become(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::Running, Status::Paused)
                | (Status::Paused, Status::Running)
                | (Status::Running | Status::Paused, Status::Stopped)
                | (
                    Status::Running | Status::Paused | Status::Stopped,
                    Status::Archived
                )
        )
    }

    /// Whether lists show it when no status is asked for: archived
    /// experiments leave the default lists.
    pub const fn listed_by_default(self) -> bool {
        !matches!(self, Status::Archived)
    }
}

/// A variant and the share of traffic it is meant to get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantSpec {
    /// The variant's name, as the client sends it.
    pub name: String,
    /// Its intended weight, relative to the others (AlephBet's `weight`).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A goal and how it is counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GoalSpec {
    /// The goal's name, as the client sends it.
    pub name: String,
    /// Counted once per visitor (AlephBet's default) or every time (the
    /// client then sends a fresh uuid each time).
    #[serde(default = "default_unique")]
    pub unique: bool,
}

fn default_unique() -> bool {
    true
}

/// How an experiment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Decision {
    /// The winning variant, or none when no variant won.
    pub winner: Option<String>,
    /// Why, in the owner's words.
    #[serde(default)]
    pub note: String,
    /// When it was decided, in Unix milliseconds.
    pub decided_ms: i64,
}

/// One experiment's registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExperimentRecord {
    /// The namespace it belongs to.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What it tests, or its hypothesis.
    #[serde(default)]
    pub description: String,
    /// Registered variants, in the order AlephBet lists them.
    #[serde(default)]
    pub variants: Vec<VariantSpec>,
    /// The variant the others are compared with.
    #[serde(default)]
    pub control: Option<String>,
    /// Registered goals.
    #[serde(default)]
    pub goals: Vec<GoalSpec>,
    /// Where it is in its life.
    pub status: Status,
    /// True when tracking created it (open mode) rather than its owner.
    #[serde(default)]
    pub automatic: bool,
    /// When it was registered, in Unix milliseconds.
    pub created_ms: i64,
    /// When it last started or resumed counting.
    #[serde(default)]
    pub started_ms: Option<i64>,
    /// When it was last paused.
    #[serde(default)]
    pub paused_ms: Option<i64>,
    /// When it was stopped.
    #[serde(default)]
    pub stopped_ms: Option<i64>,
    /// When it was archived.
    #[serde(default)]
    pub archived_ms: Option<i64>,
    /// The winner or no winner, once stopped.
    #[serde(default)]
    pub decision: Option<Decision>,
    /// Adaptive weights on one goal, when the owner asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<Adaptive>,
    /// Raised by the store on every write of the record, from
    /// [`FIRST_VERSION`]; an edit names the version it read so that the
    /// store refuses it when another write came between (HTTP's `ETag`
    /// and `If-Match`). The store sets it: what a writer puts here is
    /// ignored.
    #[serde(default = "first_version")]
    pub version: u64,
}

fn first_version() -> u64 {
    FIRST_VERSION
}

impl ExperimentRecord {
    /// The record tracking writes for an experiment it creates in open mode.
    pub fn automatic(namespace: &str, name: &str, now_ms: i64) -> Self {
        ExperimentRecord {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            variants: Vec::new(),
            control: None,
            goals: Vec::new(),
            status: Status::Running,
            automatic: true,
            created_ms: now_ms,
            started_ms: Some(now_ms),
            paused_ms: None,
            stopped_ms: None,
            archived_ms: None,
            decision: None,
            adaptive: None,
            version: FIRST_VERSION,
        }
    }

    /// True when counting is on.
    pub fn counts(&self) -> bool {
        self.status == Status::Running
    }

    /// Replaces what the owner defines (description, variants, control,
    /// goals), keeping the status, its times and the decision.
    ///
    /// # Errors
    ///
    /// When a variant or goal of the record is missing from the new
    /// definition: counts carry it, so it can be added, never removed.
    pub fn redefine(&mut self, definition: Definition) -> Result<(), RegistryError> {
        let missing = self
            .variants
            .iter()
            .map(|v| &v.name)
            .find(|name| !definition.variants.iter().any(|v| &v.name == *name))
            .or_else(|| {
                self.goals
                    .iter()
                    .map(|g| &g.name)
                    .find(|name| !definition.goals.iter().any(|g| &g.name == *name))
            });
        if let Some(name) = missing {
            return Err(RegistryError::Removed(name.clone()));
        }
        self.description = definition.description;
        self.variants = definition.variants;
        self.control = definition.control;
        self.goals = definition.goals;
        self.adaptive = definition.adaptive;
        self.automatic = false;
        Ok(())
    }

    /// Registers `definition` as a new experiment, or redefines `previous`
    /// (keeping its status, times and decision): what `PUT` and `lamed
    /// experiments create` do.
    ///
    /// # Errors
    ///
    /// The definition breaks a rule ([`Definition::validated`]) or leaves
    /// out a registered variant or goal.
    pub fn register(
        previous: Option<ExperimentRecord>,
        namespace: &str,
        name: &str,
        definition: Definition,
        now_ms: i64,
    ) -> Result<ExperimentRecord, RegistryError> {
        let definition = definition.validated()?;
        let mut record = previous.unwrap_or_else(|| {
            let mut fresh = ExperimentRecord::automatic(namespace, name, now_ms);
            fresh.automatic = false;
            fresh
        });
        record.redefine(definition)?;
        Ok(record)
    }

    /// What the owner defined, to change one part of it.
    pub fn definition(&self) -> Definition {
        Definition {
            description: self.description.clone(),
            variants: self.variants.clone(),
            control: self.control.clone(),
            goals: self.goals.clone(),
            adaptive: self.adaptive.clone(),
        }
    }

    /// Moves the experiment to `change`'s status.
    ///
    /// # Errors
    ///
    /// When the move is not allowed from the current status (a stopped
    /// experiment cannot resume), or the winner is not a known variant.
    pub fn apply(&mut self, change: Change, now_ms: i64) -> Result<(), RegistryError> {
        let (from, to) = (self.status, change.target());
        if !from.can_become(to) {
            return Err(RegistryError::Transition { from, to });
        }
        match change {
            Change::Pause => {
                self.status = Status::Paused;
                self.paused_ms = Some(now_ms);
            }
            Change::Resume => {
                self.status = Status::Running;
                self.started_ms = Some(now_ms);
            }
            Change::Stop { winner, note } => {
                if let Some(winner) = &winner {
                    if !self.variants.is_empty() && !self.variants.iter().any(|v| &v.name == winner)
                    {
                        return Err(RegistryError::Invalid(format!(
                            "winner '{winner}' is not a variant of experiment '{}'",
                            self.name
                        )));
                    }
                    check_field("winner", winner, MAX_NAME_BYTES)?;
                }
                if note.len() > MAX_NOTE_BYTES {
                    return Err(RegistryError::Invalid(format!(
                        "note is longer than {MAX_NOTE_BYTES} bytes"
                    )));
                }
                self.status = Status::Stopped;
                self.stopped_ms = Some(now_ms);
                self.decision = Some(Decision {
                    winner,
                    note,
                    decided_ms: now_ms,
                });
            }
            Change::Archive => {
                self.status = Status::Archived;
                self.archived_ms = Some(now_ms);
            }
        }
        Ok(())
    }

    /// The intended weight of each registered variant, when the owner gave
    /// any: for the sample-ratio check.
    pub fn weights(&self) -> Option<BTreeMap<String, f64>> {
        (!self.variants.is_empty()).then(|| {
            self.variants
                .iter()
                .map(|v| (v.name.clone(), f64::from(v.weight)))
                .collect()
        })
    }
}

/// What an owner defines about an experiment (`PUT`, `lamed experiments
/// create`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// What it tests.
    #[serde(default)]
    pub description: String,
    /// Variants, in AlephBet's order: names, or `{"name", "weight"}`.
    #[serde(deserialize_with = "named::variants")]
    #[schemars(with = "Vec<named::Named<VariantSpec>>", length(min = 2))]
    pub variants: Vec<VariantSpec>,
    /// The control; the first variant when not given.
    #[serde(default)]
    pub control: Option<String>,
    /// Goals: names, or `{"name", "unique"}`.
    #[serde(default, deserialize_with = "named::goals")]
    #[schemars(with = "Vec<named::Named<GoalSpec>>")]
    pub goals: Vec<GoalSpec>,
    /// Adaptive weights on one of the goals: `{"goal", "period_seconds",
    /// "floor", "burn_in"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<Adaptive>,
}

impl Definition {
    /// Checks the definition and fills in the control.
    ///
    /// # Errors
    ///
    /// The first rule broken, named.
    pub fn validated(mut self) -> Result<Definition, RegistryError> {
        check_field("description", &self.description, MAX_NOTE_BYTES).or_else(|err| match err {
            // Descriptions may be empty and span lines.
            InvalidField::Empty(_) | InvalidField::ControlCharacter(_) => Ok(()),
            other => Err(other),
        })?;
        if self.variants.len() < 2 {
            return Err(RegistryError::Invalid(
                "an experiment needs at least two variants".into(),
            ));
        }
        for variant in &self.variants {
            check_field("variant", &variant.name, MAX_NAME_BYTES)?;
            if variant.weight == 0 || variant.weight > 1_000_000 {
                return Err(RegistryError::Invalid(format!(
                    "variant '{}': weight must be between 1 and 1000000",
                    variant.name
                )));
            }
        }
        if let Some(name) = duplicate(self.variants.iter().map(|v| v.name.as_str())) {
            return Err(RegistryError::Invalid(format!(
                "variant '{name}' is listed twice"
            )));
        }
        for goal in &self.goals {
            check_field("goal", &goal.name, MAX_NAME_BYTES)?;
            if goal.name == PARTICIPATE {
                return Err(RegistryError::Invalid(format!(
                    "'{PARTICIPATE}' is not a goal: every experiment counts its participants"
                )));
            }
        }
        if let Some(name) = duplicate(self.goals.iter().map(|g| g.name.as_str())) {
            return Err(RegistryError::Invalid(format!(
                "goal '{name}' is listed twice"
            )));
        }
        let control = self
            .control
            .take()
            .unwrap_or_else(|| self.variants[0].name.clone());
        if !self.variants.iter().any(|v| v.name == control) {
            return Err(RegistryError::Invalid(format!(
                "control '{control}' is not one of the variants"
            )));
        }
        self.control = Some(control);
        if let Some(adaptive) = &self.adaptive {
            let goals: Vec<&str> = self.goals.iter().map(|g| g.name.as_str()).collect();
            adaptive
                .check(self.variants.len(), &goals)
                .map_err(RegistryError::Invalid)?;
        }
        Ok(self)
    }
}

fn duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

/// A move in an experiment's life (`PATCH`, `lamed experiments
/// pause|resume|stop|archive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Running → paused.
    Pause,
    /// Paused → running.
    Resume,
    /// Running or paused → stopped, with the decision.
    Stop {
        /// The winning variant, if any.
        winner: Option<String>,
        /// Why.
        note: String,
    },
    /// Anything → archived.
    Archive,
}

impl Change {
    /// The move that leads to `status`; `winner` and `note` are the
    /// decision when `status` is stopped.
    pub fn toward(status: Status, winner: Option<String>, note: String) -> Change {
        match status {
            Status::Running => Change::Resume,
            Status::Paused => Change::Pause,
            Status::Stopped => Change::Stop { winner, note },
            Status::Archived => Change::Archive,
        }
    }

    /// The status this move leads to.
    pub fn target(&self) -> Status {
        match self {
            Change::Resume => Status::Running,
            Change::Pause => Status::Paused,
            Change::Stop { .. } => Status::Stopped,
            Change::Archive => Status::Archived,
        }
    }
}

/// The statuses a filter asks for (`status=` of the list API, `lamed
/// experiments list --status`): a comma-separated list of statuses, or
/// `all`; by default (none or empty) every status but archived.
///
/// # Errors
///
/// A word that is no status, named.
pub fn status_filter(given: Option<&str>) -> Result<Vec<Status>, RegistryError> {
    match given.map(str::trim) {
        None | Some("") => Ok(Status::ALL
            .into_iter()
            .filter(|s| s.listed_by_default())
            .collect()),
        Some("all") => Ok(Status::ALL.to_vec()),
        Some(list) => list
            .split(',')
            .map(|word| {
                Status::parse(word.trim()).ok_or_else(|| {
                    RegistryError::Invalid(format!(
                        "status '{word}' is not one of running, paused, stopped, archived, all"
                    ))
                })
            })
            .collect(),
    }
}

/// Why a registry request cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The lifecycle does not allow this move.
    #[error("experiment is {}, it cannot become {}", .from.as_str(), .to.as_str())]
    Transition {
        /// The current status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// A field breaks a naming rule.
    #[error(transparent)]
    Field(#[from] InvalidField),
    /// The definition or change is inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// No record of this experiment.
    #[error("experiment '{name}' is not registered in namespace '{namespace}'")]
    NotRegistered {
        /// The namespace looked in.
        namespace: String,
        /// The experiment asked for.
        name: String,
    },
    /// A new definition leaves out a registered variant or goal.
    #[error("'{0}' is registered and cannot be removed (counts carry it); delete the experiment to start over")]
    Removed(String),
}

/// Variants and goals may be written as bare names or as objects.
mod named {
    use serde::{Deserialize, Deserializer};

    use super::{GoalSpec, VariantSpec};

    /// A variant or goal as a definition gives it: its name alone, or
    /// the whole object.
    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(untagged)]
    pub(super) enum Named<T> {
        Name(String),
        Spec(T),
    }

    pub(super) fn variants<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<VariantSpec>, D::Error> {
        let items = Vec::<Named<VariantSpec>>::deserialize(d)?;
        Ok(items
            .into_iter()
            .map(|item| match item {
                Named::Name(name) => VariantSpec { name, weight: 1 },
                Named::Spec(spec) => spec,
            })
            .collect())
    }

    pub(super) fn goals<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<GoalSpec>, D::Error> {
        let items = Vec::<Named<GoalSpec>>::deserialize(d)?;
        Ok(items
            .into_iter()
            .map(|item| match item {
                Named::Name(name) => GoalSpec { name, unique: true },
                Named::Spec(spec) => spec,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(json: &str) -> Definition {
        serde_json::from_str::<Definition>(json)
            .unwrap()
            .validated()
            .unwrap()
    }

    fn record() -> ExperimentRecord {
        let mut record = ExperimentRecord::automatic("ns", "button", 1_000);
        record
            .redefine(definition(
                r#"{"variants": ["red", {"name": "blue", "weight": 3}], "goals": ["buy"]}"#,
            ))
            .unwrap();
        record
    }

    /// Variants and goals can be added, not removed.
    #[test]
    fn redefinitions_only_add() {
        let mut r = record();
        r.redefine(definition(
            r#"{"variants": ["red", "blue", "green"], "goals": ["buy", "share"]}"#,
        ))
        .unwrap();
        assert_eq!(r.variants.len(), 3);
        let err = r
            .redefine(definition(r#"{"variants": ["red", "blue", "green"]}"#))
            .unwrap_err();
        assert!(err.to_string().contains("'buy'"), "{err}");
    }

    /// Bare names and objects mean the same; the control defaults to the
    /// first variant.
    #[test]
    fn definitions_accept_names_or_objects() {
        let r = record();
        assert_eq!(r.control.as_deref(), Some("red"));
        assert_eq!(r.variants[1].weight, 3);
        assert!(r.goals[0].unique);
        assert!(!r.automatic);
        assert_eq!(
            r.weights().unwrap(),
            BTreeMap::from([("red".into(), 1.0), ("blue".into(), 3.0)])
        );
    }

    /// Each broken rule is named.
    #[test]
    fn definitions_name_what_is_wrong() {
        let invalid = |json: &str| {
            serde_json::from_str::<Definition>(json)
                .map_err(|e| e.to_string())
                .and_then(|d| d.validated().map_err(|e| e.to_string()))
                .unwrap_err()
        };
        assert!(invalid(r#"{"variants": ["a"]}"#).contains("at least two"));
        assert!(invalid(r#"{"variants": ["a", "a"]}"#).contains("listed twice"));
        assert!(invalid(r#"{"variants": ["a", "b"], "control": "c"}"#).contains("control 'c'"));
        assert!(
            invalid(r#"{"variants": ["a", "b"], "goals": ["participate"]}"#).contains("not a goal")
        );
        assert!(invalid(r#"{"variants": ["a", {"name": "b", "weight": 0}]}"#).contains("weight"));
        assert!(invalid(r#"{"variants": ["a", ""]}"#).contains("'variant'"));
        assert!(invalid(r#"{"variants": ["a", "b"], "colour": 1}"#).contains("colour"));
    }

    /// The lifecycle: pause and resume, stop with a winner, archive; a
    /// stopped experiment never runs again.
    #[test]
    fn lifecycle_moves() {
        let mut r = record();
        r.apply(Change::Pause, 2_000).unwrap();
        assert_eq!((r.status, r.paused_ms), (Status::Paused, Some(2_000)));
        assert!(!r.counts());
        assert_eq!(
            r.apply(Change::Pause, 2_500).unwrap_err().to_string(),
            "experiment is paused, it cannot become paused"
        );
        r.apply(Change::Resume, 3_000).unwrap();
        assert_eq!((r.status, r.started_ms), (Status::Running, Some(3_000)));
        let stop = |winner: &str| Change::Stop {
            winner: Some(winner.into()),
            note: "clear win".into(),
        };
        assert!(r
            .apply(stop("green"), 4_000)
            .unwrap_err()
            .to_string()
            .contains("green"));
        r.apply(stop("blue"), 4_000).unwrap();
        assert_eq!(r.decision.as_ref().unwrap().winner.as_deref(), Some("blue"));
        assert_eq!(r.stopped_ms, Some(4_000));
        assert!(matches!(
            r.apply(Change::Resume, 5_000),
            Err(RegistryError::Transition { .. })
        ));
        r.apply(Change::Archive, 6_000).unwrap();
        assert_eq!(r.status, Status::Archived);
        assert!(r.apply(Change::Archive, 7_000).is_err());
    }

    /// The filter's default leaves archived out; `all` and lists say what
    /// they name; an unknown word is named.
    #[test]
    fn status_filters() {
        assert_eq!(status_filter(None).unwrap().len(), 3);
        assert!(!status_filter(Some("")).unwrap().contains(&Status::Archived));
        assert_eq!(status_filter(Some("all")).unwrap(), Status::ALL.to_vec());
        assert_eq!(
            status_filter(Some("paused, stopped")).unwrap(),
            vec![Status::Paused, Status::Stopped]
        );
        assert!(status_filter(Some("running,draft"))
            .unwrap_err()
            .to_string()
            .contains("'draft'"));
    }

    /// Each move leads where `toward` says it does.
    #[test]
    fn changes_and_statuses_correspond() {
        for status in Status::ALL {
            assert_eq!(Change::toward(status, None, String::new()).target(), status);
        }
    }

    /// A registration starts running and owned; a redefinition keeps the
    /// status and creation time.
    #[test]
    fn registering_and_redefining() {
        let fresh = ExperimentRecord::register(
            None,
            "ns",
            "b",
            definition(r#"{"variants": ["x", "y"]}"#),
            5,
        )
        .unwrap();
        assert_eq!(
            (fresh.status, fresh.created_ms, fresh.automatic),
            (Status::Running, 5, false)
        );
        let mut paused = fresh.clone();
        paused.apply(Change::Pause, 6).unwrap();
        let again = ExperimentRecord::register(
            Some(paused),
            "ns",
            "b",
            definition(r#"{"variants": ["x", "y", "z"], "description": "more"}"#),
            7,
        )
        .unwrap();
        assert_eq!((again.status, again.created_ms), (Status::Paused, 5));
        assert_eq!(again.variants.len(), 3);
        let unchecked: Definition = serde_json::from_str(r#"{"variants": ["x"]}"#).unwrap();
        assert!(ExperimentRecord::register(None, "ns", "b", unchecked, 5).is_err());
    }

    /// A record stored before records had versions reads as written once;
    /// the version round-trips.
    #[test]
    fn records_without_a_version_read_as_the_first() {
        let mut json = serde_json::to_value(record()).unwrap();
        json.as_object_mut().unwrap().remove("version");
        let old: ExperimentRecord = serde_json::from_value(json).unwrap();
        assert_eq!(old.version, FIRST_VERSION);
        let mut written = record();
        written.version = 7;
        let again: ExperimentRecord =
            serde_json::from_str(&serde_json::to_string(&written).unwrap()).unwrap();
        assert_eq!(again, written);
    }

    #[test]
    fn status_words_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("draft"), None);
    }
}
