//! The names events and records carry (namespaces, experiments, variants,
//! goals, uuids), their limits and the rules every name must follow.

use crate::value::InvalidValue;

/// The namespace AlephBet uses when the client names none.
pub const DEFAULT_NAMESPACE: &str = "alephbet";

/// The pseudo-goal that marks a participant (a "trial").
pub const PARTICIPATE: &str = "participate";

/// Longest namespace accepted, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 64;

/// Longest experiment, variant or event name accepted, in bytes.
///
/// Generous for human-written names ("checkout button colour, winter sale")
/// while keeping one counter row small.
pub const MAX_NAME_BYTES: usize = 200;

/// Longest uuid accepted, in bytes: v4 uuids have 36, sha1 hex ids 40.
pub const MAX_UUID_BYTES: usize = 128;

/// A field of a request that breaks one of the rules above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    /// The parameter was not given.
    #[error("parameter '{0}' is missing")]
    Missing(&'static str),
    /// The parameter was given but empty.
    #[error("parameter '{0}' must not be empty")]
    Empty(&'static str),
    /// The parameter is longer than its limit.
    #[error("parameter '{field}' is longer than {max} bytes")]
    TooLong {
        /// Which parameter.
        field: &'static str,
        /// Its limit in bytes.
        max: usize,
    },
    /// The parameter holds a control character (newline, NUL, ...).
    #[error("parameter '{0}' must not contain control characters")]
    ControlCharacter(&'static str),
    /// The parameter's percent-decoded bytes are not UTF-8.
    #[error("parameter '{0}' is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// The parameter appears more than once.
    #[error("parameter '{0}' is given more than once")]
    Repeated(&'static str),
    /// A JSON field that must be a string is something else.
    #[error("parameter '{0}' must be a string")]
    NotAString(&'static str),
    /// A batch entry that is not a JSON object.
    #[error("each event must be a JSON object")]
    NotAnObject,
    /// The `value` parameter is not a value that can be kept exactly.
    #[error("parameter 'value' {0}")]
    Value(InvalidValue),
    /// A value sent with a participation, which has none.
    #[error("parameter 'value' is only for goals, not for event 'participate'")]
    ValueOnParticipation,
}

impl InvalidField {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidField::Missing(_) => "missing_parameter",
            InvalidField::Empty(_) => "empty_parameter",
            InvalidField::TooLong { .. } => "too_long",
            InvalidField::ControlCharacter(_) => "control_character",
            InvalidField::InvalidUtf8(_) => "invalid_utf8",
            InvalidField::Repeated(_) => "repeated_parameter",
            InvalidField::NotAString(_) => "not_a_string",
            InvalidField::NotAnObject => "not_an_object",
            InvalidField::Value(_) => "invalid_value",
            InvalidField::ValueOnParticipation => "value_on_participation",
        }
    }
}

/// [`check_field`]'s "no control character" as a JSON Schema pattern
/// (ECMA-262), for the OpenAPI document: `char::is_control` is Unicode's
/// `Cc`, U+0000 to U+001F and U+007F to U+009F.
pub const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// Checks one name against the common rules: present, not empty, at most
/// `max` bytes, no control characters.
pub fn check_field(field: &'static str, value: &str, max: usize) -> Result<(), InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::Empty(field));
    }
    if value.len() > max {
        return Err(InvalidField::TooLong { field, max });
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidField::ControlCharacter(field));
    }
    Ok(())
}

/// A blake3 hasher fed a tuple of names: each part is length-prefixed, so
/// that no two different tuples hash the same input (names may contain any
/// separator). The one identity hash of events, hash tags and seeds.
pub fn parts_hasher(parts: &[&[u8]]) -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
}

/// The hash of [`parts_hasher`].
pub fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    *parts_hasher(parts).finalize().as_bytes()
}
