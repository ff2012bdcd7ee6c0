//! Tracking events, the caps on what they may create, and their outcomes.

use serde::{Deserialize, Serialize};

// The names and their rules sit below the registry, which this module's
// caps and outcomes name; re-exported here, where events are.
pub use crate::names::{
    check_field, InvalidField, DEFAULT_NAMESPACE, MAX_NAMESPACE_BYTES, MAX_NAME_BYTES,
    MAX_UUID_BYTES, NO_CONTROL_PATTERN, PARTICIPATE,
};
use crate::registry::{RegistrationMode, Status};
use crate::segments::Segment;
use crate::value::{Value, ValueTotals};

/// One event as AlephBet sends it: "in experiment E, variant V, event G happened".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Groups experiments, so that several sites can share one server.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The experiment name.
    pub experiment: String,
    /// The variant the visitor saw.
    pub variant: String,
    /// `participate` or the name of a goal.
    pub event: String,
    /// Deduplication id chosen by the client: the same uuid is counted once.
    pub uuid: String,
    /// A goal's numeric value (revenue, items...), when the sender gives
    /// one. Not part of the event's identity: a re-sent conversion adds its
    /// first value only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The segment of the request that sent it (device, browser,
    /// country): counted with the event, never part of its identity or of
    /// the wire ([`Segment::NONE`] for a `POST` batch or with segments
    /// off).
    #[serde(skip)]
    pub segment: Segment,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

impl Event {
    /// True when this event marks a participant rather than a goal completion.
    pub fn is_participation(&self) -> bool {
        self.event == PARTICIPATE
    }

    /// Checks every field against the documented limits.
    ///
    /// # Errors
    ///
    /// The first field that breaks a rule, named in the error.
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_field("namespace", &self.namespace, MAX_NAMESPACE_BYTES)?;
        check_field("experiment", &self.experiment, MAX_NAME_BYTES)?;
        check_field("variant", &self.variant, MAX_NAME_BYTES)?;
        check_field("event", &self.event, MAX_NAME_BYTES)?;
        check_field("uuid", &self.uuid, MAX_UUID_BYTES)?;
        if self.value.is_some() && self.is_participation() {
            return Err(InvalidField::ValueOnParticipation);
        }
        Ok(())
    }

    /// The identity used for deduplication: a 128-bit hash of
    /// `(namespace, experiment, event, variant, uuid)`.
    ///
    /// Fields are length-prefixed so that no two different tuples can be
    /// written the same way (names may contain any separator).
    pub fn dedupe_key(&self) -> [u8; 16] {
        let hash = crate::names::hash_parts(&[
            self.namespace.as_bytes(),
            self.experiment.as_bytes(),
            self.event.as_bytes(),
            self.variant.as_bytes(),
            self.uuid.as_bytes(),
        ]);
        let mut key = [0u8; 16];
        key.copy_from_slice(&hash[..16]);
        key
    }
}

/// What the public tracking endpoint may create: whether it may register
/// experiments at all, and how many distinct names, so that nobody can grow
/// the store without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caps {
    /// Whether tracking registers unknown experiments (open) or ignores
    /// them (required).
    pub registration: RegistrationMode,
    /// Distinct namespaces in the whole store.
    pub max_namespaces: usize,
    /// Distinct experiments in one namespace.
    pub max_experiments_per_namespace: usize,
    /// Distinct variants in one experiment.
    pub max_variants_per_experiment: usize,
    /// Distinct goals (events other than `participate`) in one experiment.
    pub max_goals_per_experiment: usize,
}

impl Caps {
    /// The defaults, usable in constants.
    pub const DEFAULT: Caps = Caps {
        registration: RegistrationMode::Open,
        max_namespaces: 100,
        max_experiments_per_namespace: 200,
        max_variants_per_experiment: 20,
        max_goals_per_experiment: 50,
    };
}

impl Default for Caps {
    fn default() -> Self {
        Caps::DEFAULT
    }
}

/// Which cap an event would have broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapExceeded {
    /// Too many namespaces.
    #[error("namespace '{namespace}' would exceed the limit of {limit} namespaces")]
    Namespaces {
        /// The new namespace.
        namespace: String,
        /// The cap.
        limit: usize,
    },
    /// Too many experiments in the namespace.
    #[error("experiment '{experiment}' would exceed the limit of {limit} experiments in namespace '{namespace}'")]
    Experiments {
        /// The namespace.
        namespace: String,
        /// The new experiment.
        experiment: String,
        /// The cap.
        limit: usize,
    },
    /// Too many variants in the experiment.
    #[error("variant '{variant}' would exceed the limit of {limit} variants in experiment '{experiment}'")]
    Variants {
        /// The experiment.
        experiment: String,
        /// The new variant.
        variant: String,
        /// The cap.
        limit: usize,
    },
    /// Too many goals in the experiment.
    #[error("goal '{goal}' would exceed the limit of {limit} goals in experiment '{experiment}'")]
    Goals {
        /// The experiment.
        experiment: String,
        /// The new goal.
        goal: String,
        /// The cap.
        limit: usize,
    },
}

impl CapExceeded {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CapExceeded::Namespaces { .. } => "namespaces_cap",
            CapExceeded::Experiments { .. } => "experiments_cap",
            CapExceeded::Variants { .. } => "variants_cap",
            CapExceeded::Goals { .. } => "goals_cap",
        }
    }
}

/// What the store did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackOutcome {
    /// New within the window: counted once.
    Counted,
    /// Seen within the window: not counted again.
    Duplicate,
    /// Well-formed but deliberately not counted. The client is answered
    /// 200 and told why, so that it drops the event instead of re-sending it
    /// forever.
    Ignored(Ignored),
}

/// Why a well-formed event is not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// The experiment, variant or goal is not registered, in required mode.
    Unregistered,
    /// Counting it would create more names than a cap allows.
    Cap(CapExceeded),
    /// The experiment is paused, stopped or archived.
    Inactive(Status),
    /// The visitor is a crawler or comes from an ignored network.
    Bot,
}

impl Ignored {
    /// The reason as clients and metrics see it.
    pub fn reason(&self) -> &'static str {
        match self {
            Ignored::Unregistered => "unregistered",
            Ignored::Cap(_) => "cap",
            Ignored::Inactive(status) => status.as_str(),
            Ignored::Bot => "bot",
        }
    }

    /// A short hint for whoever reads the answer by hand, where the
    /// reason alone puzzles: a first test with curl is ignored as a bot.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Ignored::Bot => Some(
                "not counted: the User-Agent is a crawler's or a script's (curl's is), or the \
                 address is in ignored_networks; to send a test event, send a browser's \
                 User-Agent (curl -A 'Mozilla/5.0 ...', as lamed serve's banner shows)",
            ),
            _ => None,
        }
    }

    /// Every reason, for metrics that start at zero.
    pub const REASONS: [&'static str; 6] = [
        "unregistered",
        "cap",
        "paused",
        "stopped",
        "archived",
        "bot",
    ];
}

/// One counter: how many unique events of one kind a variant received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counter {
    /// The experiment name.
    pub experiment: String,
    /// `participate` or a goal name.
    pub event: String,
    /// The variant name.
    pub variant: String,
    /// Unique events counted.
    pub count: u64,
    /// The sum and sum of squares of the counted events' values; `None`
    /// when none of them carried a value.
    #[serde(skip)]
    pub values: Option<ValueTotals>,
}

/// One counter for one UTC day, for trend charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyCounter {
    /// `participate` or a goal name.
    pub event: String,
    /// The variant name.
    pub variant: String,
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// Unique events counted that day.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            segment: Default::default(),
            namespace: "ns".into(),
            experiment: "button color".into(),
            variant: "red".into(),
            event: PARTICIPATE.into(),
            uuid: "u1".into(),
            value: None,
        }
    }

    /// Moving text between fields gives another identity.
    #[test]
    fn dedupe_key_separates_fields() {
        let a = Event {
            segment: Default::default(),
            experiment: "a:b".into(),
            variant: "c".into(),
            ..event()
        };
        let b = Event {
            segment: Default::default(),
            experiment: "a".into(),
            variant: "b:c".into(),
            ..event()
        };
        assert_ne!(a.dedupe_key(), b.dedupe_key());
        assert_eq!(a.dedupe_key(), a.clone().dedupe_key());
    }

    /// Each rule is named in the error.
    #[test]
    fn validation_names_field_and_rule() {
        assert!(event().validate().is_ok());
        let e = Event {
            segment: Default::default(),
            variant: "".into(),
            ..event()
        };
        assert_eq!(e.validate(), Err(InvalidField::Empty("variant")));
        let e = Event {
            segment: Default::default(),
            uuid: "x".repeat(MAX_UUID_BYTES + 1),
            ..event()
        };
        assert_eq!(
            e.validate().unwrap_err().to_string(),
            "parameter 'uuid' is longer than 128 bytes"
        );
        let e = Event {
            segment: Default::default(),
            experiment: "a\nb".into(),
            ..event()
        };
        assert_eq!(
            e.validate(),
            Err(InvalidField::ControlCharacter("experiment"))
        );
        let e = Event {
            segment: Default::default(),
            experiment: "כפתור 🎉".into(),
            ..event()
        };
        assert!(e.validate().is_ok());
    }
}
