//! Sixpack's rules, without I/O: its name rules, its deterministic
//! assignment, the traffic fraction (made deterministic here), the ids
//! under which a participation and a conversion are counted once, and its
//! JSON answers. The service (`lamed_service::sixpack`) applies them.
//!
//! Facts from Sixpack's `models.py`, `server.py` and `utils.py`
//! (sixpack/sixpack): README "Sixpack API" says what differs.

use serde::Serialize;
use sha1_smol::Sha1;

use crate::model::MAX_NAME_BYTES;
use crate::registry::{Definition, GoalSpec, VariantSpec};

/// The namespace of Sixpack's experiments unless `sixpack_namespace`
/// says otherwise.
pub const DEFAULT_NAMESPACE: &str = "sixpack";

/// The goal a conversion without `kpi` counts as. KPI names cannot hold
/// spaces or parentheses, so no KPI is counted as it.
pub const DEFAULT_GOAL: &str = "(no kpi)";

/// The membership value of a client the traffic fraction left out (no
/// alternative name is empty).
pub const EXCLUDED: &str = "";

/// Where Sixpack's experiments live and how many alternatives one may
/// have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SixpackConfig {
    /// The namespace of every Sixpack experiment (`sixpack_namespace`).
    pub namespace: String,
    /// Most alternatives per experiment: the variants cap, so that a
    /// public request cannot register more names than tracking could.
    pub max_alternatives: usize,
}

impl Default for SixpackConfig {
    fn default() -> Self {
        SixpackConfig {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            max_alternatives: crate::model::Caps::default().max_variants_per_experiment,
        }
    }
}

/// Which name a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// An experiment: the clients' rule, `^[a-z0-9][a-z0-9\-_ ]*$`
    /// (Sixpack's server checks none, its clients this one).
    Experiment,
    /// An alternative: the server's rule, `^[a-z0-9][a-z0-9\-_]*$`.
    Alternative,
    /// A KPI: the server's rule, as for alternatives.
    Kpi,
}

impl NameKind {
    /// Sixpack's message for a name that breaks the rule.
    pub const fn message(self) -> &'static str {
        match self {
            NameKind::Experiment => "invalid experiment name",
            NameKind::Alternative => "invalid alternative name",
            NameKind::Kpi => "invalid kpi name",
        }
    }
}

/// Whether `name` follows the rule of its kind (ASCII letters in either
/// case, as Sixpack's `re.I`), within Lamed's length limit.
pub fn valid_name(kind: NameKind, name: &str) -> bool {
    let inner = |c: char| {
        c.is_ascii_alphanumeric()
            || c == '-'
            || c == '_'
            || (c == ' ' && kind == NameKind::Experiment)
    };
    let mut chars = name.chars();
    name.len() <= MAX_NAME_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(inner)
}

/// The first 28 bits of `sha1(text)`: `int(sha1(text).digest().to_string()[:7], 16)`.
fn hash28(text: &str) -> u32 {
    let digest = Sha1::from(text).digest().bytes();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> 4
}

/// Sixpack's choice for a client: `alternatives[hash % len]` with the hash
/// of `"{experiment}.{client_id}"` (`models.py` `_uniform_choice`), so a
/// client keeps its alternative when it moves from Sixpack to Lamed.
///
/// # Panics
///
/// When `alternatives` is empty (callers require two or more).
pub fn choose<'a>(experiment: &str, client_id: &str, alternatives: &'a [String]) -> &'a str {
    let hash = hash28(&format!("{experiment}.{client_id}")) as usize;
    &alternatives[hash % alternatives.len()]
}

/// A Sixpack experiment as a registry definition: its alternatives in the
/// client's order with equal weights (Sixpack splits evenly), the first as
/// the control (as Sixpack's is).
pub fn definition(
    alternatives: &[String],
    description: String,
    goals: Vec<GoalSpec>,
) -> Definition {
    Definition {
        description,
        variants: alternatives
            .iter()
            .map(|name| VariantSpec {
                name: name.clone(),
                weight: 1,
            })
            .collect(),
        control: alternatives.first().cloned(),
        goals,
        adaptive: None,
    }
}

/// Whether a client is inside the traffic fraction. Sixpack draws a random
/// number per new client; here the draw is a hash of
/// `"traffic.{experiment}.{client_id}"` (another salt than the choice, so
/// the two are independent), so every instance and every retry agrees.
pub fn in_traffic(experiment: &str, client_id: &str, fraction: f64) -> bool {
    let draw =
        f64::from(hash28(&format!("traffic.{experiment}.{client_id}"))) / f64::from(1u32 << 28);
    draw < fraction
}

/// A traffic fraction as Sixpack takes it: a number with `0 < f <= 1`.
///
/// # Errors
///
/// Sixpack's message, for anything else.
pub fn parse_traffic_fraction(text: &str) -> Result<f64, &'static str> {
    match text.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err("invalid traffic fraction range"),
    }
}

/// Sixpack's booleans (`utils.to_bool`): `y`, `true`, `yes` in any case.
pub fn to_bool(text: &str) -> bool {
    ["y", "true", "yes"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word))
}

/// The uuid a client's participation is counted under: the same on every
/// retry and every instance, so the dedupe window absorbs re-sends.
pub fn participation_uuid(experiment: &str, client_id: &str) -> String {
    Sha1::from(format!("sixpack.{experiment}.{client_id}"))
        .digest()
        .to_string()
}

/// The uuid a client's conversion on a goal is counted under.
pub fn conversion_uuid(experiment: &str, goal: &str, client_id: &str) -> String {
    Sha1::from(format!("sixpack.{experiment}.{goal}.{client_id}"))
        .digest()
        .to_string()
}

/// The membership of a client's participation: a hash of its id, so that
/// no client id (often a user id or an e-mail address) is stored.
pub fn participant_member(client_id: &str) -> String {
    member_hash(&[b"sixpack participant", client_id.as_bytes()])
}

/// The membership of a client's conversion on a goal: a hash of its id and
/// the goal, apart from every participation's.
pub fn conversion_member(client_id: &str, goal: &str) -> String {
    member_hash(&[b"sixpack conversion", client_id.as_bytes(), goal.as_bytes()])
}

/// The membership a store written before memberships were hashed kept
/// verbatim (`client` for a participation, `client \x1f goal` for a
/// conversion), as it is kept now: what the layout upgrade writes.
pub fn hashed_legacy_member(raw: &str) -> String {
    match raw.split_once('\x1f') {
        Some((client_id, goal)) => conversion_member(client_id, goal),
        None => participant_member(raw),
    }
}

/// 32 hex digits of the parts' identity hash: 128 bits, so two members of
/// one experiment never collide in practice.
fn member_hash(parts: &[&[u8]]) -> String {
    crate::names::hash_parts(parts)[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `callback` may name a JSONP function: Sixpack's
/// `^\w[\w'\-\.]*$` (ASCII `\w`, as Python 2's `re` without `UNICODE`).
pub fn valid_callback(callback: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = callback.chars();
    chars.next().is_some_and(word) && chars.all(|c| word(c) || matches!(c, '\'' | '-' | '.'))
}

/// `{"name": ..}`, as Sixpack nests alternatives and experiments.
#[derive(Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Named<T> {
    /// The name.
    pub name: T,
}

/// The answer to `/participate`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Participation {
    /// Always `ok`.
    pub status: &'static str,
    /// The alternative to show.
    pub alternative: Named<String>,
    /// The experiment.
    pub experiment: Named<String>,
    /// The client, echoed.
    pub client_id: String,
    /// Lamed's addition: why nothing was recorded (`bot`, `paused`,
    /// `stopped`, `archived`, `cap`, `unregistered`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<&'static str>,
}

/// `{"value": null, "kpi": ..}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConversionValue {
    /// Sixpack never sends a value.
    pub value: Option<f64>,
    /// The KPI, `null` without one.
    pub kpi: Option<String>,
}

/// The answer to `/convert`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Conversion {
    /// Always `ok`.
    pub status: &'static str,
    /// The client's alternative.
    pub alternative: Named<String>,
    /// The experiment.
    pub experiment: Named<String>,
    /// The conversion.
    pub conversion: ConversionValue,
    /// The client, echoed.
    pub client_id: String,
    /// Lamed's addition: why the conversion was not counted (a cap);
    /// absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<&'static str>,
}

/// The answer to `GET /experiments/{name}`: Sixpack's slim experiment
/// (`objectify_by_period('day', slim=True)`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ExperimentDetails {
    /// Always `ok`.
    pub status: &'static str,
    /// The experiment.
    pub name: String,
    /// Its alternatives, control first.
    pub alternatives: Vec<String>,
    /// When it was created, `YYYY-MM-DD HH:MM` (UTC).
    pub created_at: String,
    /// Not stored: each participation brings its own (always `null`).
    pub traffic_fraction: Option<f64>,
    /// Not counted (always `null`).
    pub excluded_clients: Option<u64>,
    /// Participants of every alternative.
    pub total_participants: u64,
    /// Conversions without KPI (Sixpack's default KPI).
    pub total_conversions: u64,
    /// Its description, `null` when empty.
    pub description: Option<String>,
    /// The winner of a stopped experiment, else empty.
    pub winner: String,
    /// Archived.
    pub is_archived: bool,
    /// Paused.
    pub is_paused: bool,
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix millisecond, Sixpack's `created_at`.
pub fn created_at(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000);
    let (days, minute_of_day) = (minutes.div_euclid(1_440), minutes.rem_euclid(1_440));
    format!(
        "{} {:02}:{:02}",
        crate::clock::civil_date(days),
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// The Unix millisecond of Sixpack's `created_at` (`YYYY-MM-DD HH:MM`,
/// anything after the minutes ignored), read as UTC; `None` when it is not
/// a date.
pub fn parse_created_at(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute) = (number(11..13)?, number(14..16)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil, the
    // inverse of `clock::civil_date`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names follow Sixpack's rules: a letter or digit first, then letters,
    /// digits, `-` and `_`; spaces only in experiment names.
    #[test]
    fn names() {
        for ok in ["a", "Red", "0-x_y", "button_color"] {
            assert!(valid_name(NameKind::Alternative, ok), "{ok}");
            assert!(valid_name(NameKind::Kpi, ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "a b", "a.b", "ä", " a", "a:b"] {
            assert!(!valid_name(NameKind::Alternative, bad), "{bad}");
        }
        assert!(valid_name(NameKind::Experiment, "button color"));
        assert!(!valid_name(NameKind::Experiment, " button"));
        assert!(!valid_name(
            NameKind::Experiment,
            &"a".repeat(MAX_NAME_BYTES + 1)
        ));
    }

    /// The choice is the first seven hex digits of the SHA-1, modulo the
    /// count.
    #[test]
    fn choice_follows_the_first_seven_hex_digits() {
        assert_eq!(
            Sha1::from("exp.client").digest().to_string()[..7].to_owned(),
            format!("{:07x}", hash28("exp.client"))
        );
        let alternatives: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        let expected =
            u32::from_str_radix(&Sha1::from("exp.client").digest().to_string()[..7], 16).unwrap();
        assert_eq!(
            choose("exp", "client", &alternatives),
            alternatives[expected as usize % 7]
        );
    }

    /// About the fraction of clients asked for is inside, and a client
    /// inside a fraction stays inside every larger one.
    #[test]
    fn traffic_fraction_is_a_stable_share() {
        let inside = (0..10_000)
            .filter(|i| in_traffic("e", &i.to_string(), 0.3))
            .count();
        assert!((2_800..3_200).contains(&inside), "{inside}");
        for i in 0..1_000 {
            let id = i.to_string();
            if in_traffic("e", &id, 0.2) {
                assert!(in_traffic("e", &id, 0.5));
            }
            assert!(in_traffic("e", &id, 1.0));
        }
        assert_eq!(parse_traffic_fraction("0.5"), Ok(0.5));
        assert_eq!(parse_traffic_fraction("1"), Ok(1.0));
        for bad in ["0", "-1", "1.5", "x", "", "NaN"] {
            assert!(parse_traffic_fraction(bad).is_err(), "{bad}");
        }
    }

    /// JSONP callbacks follow Sixpack's pattern.
    #[test]
    fn callbacks() {
        for ok in ["cb", "jQuery123_456", "a.b", "sixpack.callbacks.x'-1", "_"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in ["", ".a", "a(b)", "a b", "alert();x", "é"] {
            assert!(!valid_callback(bad), "{bad}");
        }
        assert!(to_bool("YES") && to_bool("y") && to_bool("true"));
        assert!(!to_bool("1") && !to_bool("false") && !to_bool(""));
    }

    /// Creation times read as Sixpack writes them, in UTC.
    #[test]
    fn creation_times() {
        assert_eq!(created_at(0), "1970-01-01 00:00");
        assert_eq!(
            created_at(951_782_400_000 + 13 * 3_600_000 + 7 * 60_000 + 59_999),
            "2000-02-29 13:07"
        );
    }

    /// The counting ids are fixed per client, and differ per experiment
    /// and goal.
    #[test]
    fn counting_ids() {
        assert_eq!(participation_uuid("e", "c"), participation_uuid("e", "c"));
        assert_ne!(participation_uuid("e", "c"), participation_uuid("f", "c"));
        assert_ne!(
            conversion_uuid("e", "k", "c"),
            conversion_uuid("e", "l", "c")
        );
        assert_eq!(participation_uuid("e", "c").len(), 40);
        assert_ne!(conversion_member("c", "k"), participant_member("c"));
    }

    /// Memberships hold no client id: a fixed-width hash per client and
    /// goal; a verbatim membership of an older store hashes to the same.
    #[test]
    fn memberships_are_hashed() {
        let member = participant_member("alice@example.com");
        assert_eq!(member.len(), 32);
        assert!(!member.contains("alice"));
        assert_ne!(member, participant_member("bob@example.com"));
        assert_ne!(conversion_member("c", "k"), conversion_member("c", "l"));
        assert_eq!(hashed_legacy_member("alice@example.com"), member);
        assert_eq!(hashed_legacy_member("c\x1fk"), conversion_member("c", "k"));
    }
}
