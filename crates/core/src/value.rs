//! Numeric goal values (revenue, items, seconds): the decimal text they
//! arrive as, the exact micro-units they are kept in, their limits, and the
//! limbs every store adds them in.
//!
//! # Why limbs
//!
//! A counter's sum of squares over 10⁹ events needs more than 64 bits, but
//! SQLite integers and Redis's `HINCRBY`/`BITFIELD` stop at 64, and Lua
//! numbers are doubles. So each value is split into base-10⁹ digits
//! ("limbs"): two for the value, three for its square, after a first limb
//! of 1 that counts the valued events. A store adds each limb into its own
//! 64-bit integer, never carrying, and a reader joins them in i128. Every
//! added limb is below 10⁹, so a limb cannot overflow before
//! [`MAX_VALUED_EVENTS`] valued events in one counter.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// Decimal places kept: values are integers of 10⁻⁶ units.
pub const DECIMALS: u32 = 6;

/// Micro-units per unit: defined by the statistics below this crate,
/// which turn the exact sums into means.
pub use lamed_stats::means::MICROS_PER_UNIT;
const _: () = assert!(10u64.pow(DECIMALS) == MICROS_PER_UNIT);

/// Largest value accepted, in units: a purchase of ten million. Its square
/// in micro-units (10²⁶) times 10⁹ events still fits in i128.
pub const MAX_UNITS: u64 = 10_000_000;

/// Valued events one counter can add before a limb could overflow an i64:
/// `i64::MAX / 10⁹`, about 9.2 billion.
pub const MAX_VALUED_EVENTS: u64 = i64::MAX as u64 / LIMB_BASE as u64;

/// The base of the limbs.
const LIMB_BASE: i64 = 1_000_000_000;

/// How many limbs a counter keeps: the count of valued events, two for
/// the sum, three for the sum of squares.
pub const LIMBS: usize = 6;

/// One event's value, in micro-units; between 0 and [`MAX_UNITS`] units.
///
/// Serialized as its decimal text; deserialized from a JSON number or a
/// decimal string (see [`Decimal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(try_from = "Decimal")]
pub struct Value(u64);

impl Value {
    /// The value of `micros` micro-units, if within the limits.
    pub fn from_micros(micros: u64) -> Option<Value> {
        (micros <= MAX_UNITS * MICROS_PER_UNIT).then_some(Value(micros))
    }

    /// The value in micro-units.
    pub fn micros(self) -> u64 {
        self.0
    }

    /// Reads a decimal number such as `12`, `12.5` or `0.000001`.
    ///
    /// # Errors
    ///
    /// When the text is not a plain non-negative decimal number, has more
    /// than [`DECIMALS`] decimal places, or exceeds [`MAX_UNITS`].
    pub fn parse(text: &str) -> Result<Value, InvalidValue> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(InvalidValue::Negative);
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(InvalidValue::NotANumber);
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > DECIMALS as usize {
            return Err(InvalidValue::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        let units: u64 = match whole {
            "" => 0,
            // More than 19 digits cannot be a u64, and is far too large.
            w if w.len() > 19 => return Err(InvalidValue::TooLarge),
            w => w.parse().map_err(|_| InvalidValue::TooLarge)?,
        };
        if units > MAX_UNITS {
            return Err(InvalidValue::TooLarge);
        }
        let scale = 10u64.pow(DECIMALS - fraction.len() as u32);
        let micros_of_fraction = match fraction {
            "" => 0,
            f => f.parse::<u64>().map_err(|_| InvalidValue::NotANumber)? * scale,
        };
        Value::from_micros(units * MICROS_PER_UNIT + micros_of_fraction)
            .ok_or(InvalidValue::TooLarge)
    }

    /// A JSON number, as serde reads it: its shortest decimal form names
    /// the same value as the text the sender wrote whenever that text has
    /// at most 15 significant digits, which every accepted value has.
    ///
    /// # Errors
    ///
    /// As [`Value::parse`].
    pub fn from_f64(number: f64) -> Result<Value, InvalidValue> {
        if !number.is_finite() {
            return Err(InvalidValue::NotANumber);
        }
        // Rust's Display for f64 never uses an exponent.
        Value::parse(&number.to_string())
    }

    /// The limbs this value adds to a counter: 1 (one more valued event),
    /// its two base-10⁹ digits, then the three of its square.
    pub fn limbs(self) -> [i64; LIMBS] {
        let v = self.0 as u128;
        let square = v * v;
        let base = LIMB_BASE as u128;
        let digit = |n: u128, i: u32| (n / base.pow(i) % base) as i64;
        [
            1,
            digit(v, 0),
            digit(v, 1),
            digit(square, 0),
            digit(square, 1),
            digit(square, 2),
        ]
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (units, micros) = (self.0 / MICROS_PER_UNIT, self.0 % MICROS_PER_UNIT);
        if micros == 0 {
            write!(f, "{units}")
        } else {
            let fraction = format!("{micros:06}");
            write!(f, "{units}.{}", fraction.trim_end_matches('0'))
        }
    }
}

/// As the decimal text it was read from: exact, whatever the reader.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A value as it is sent, before its limits are checked: a JSON number,
/// or decimal text (a query string's, or a JSON string). A [`Value`]
/// deserializes from it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, expecting = "a decimal number")]
pub enum Decimal {
    /// A whole, non-negative JSON number, kept exactly.
    Whole(u64),
    /// Any other JSON number: its shortest decimal form is read (see
    /// [`Value::from_f64`]).
    Number(f64),
    /// Decimal text such as `12.50`.
    Text(String),
}

impl TryFrom<Decimal> for Value {
    type Error = InvalidValue;

    fn try_from(sent: Decimal) -> Result<Value, InvalidValue> {
        match sent {
            Decimal::Whole(number) => Value::parse(&number.to_string()),
            Decimal::Number(number) => Value::from_f64(number),
            Decimal::Text(text) => Value::parse(&text),
        }
    }
}

/// Why a value was refused; the message completes "parameter 'value' ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    /// Not a plain decimal number (letters, exponents, several dots...).
    #[error("must be a decimal number such as 12.50")]
    NotANumber,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// More decimal places than are kept.
    #[error("has more than {DECIMALS} decimal places")]
    TooPrecise,
    /// Above the largest value.
    #[error("must be at most {MAX_UNITS}")]
    TooLarge,
}

/// How many of a counter's events carried a value, and the exact sum and
/// sum of squares of those values, in micro-units (squares in 10⁻¹² square
/// units).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ValueTotals {
    /// Counted events that carried a value.
    pub valued: u64,
    /// Sum of the values.
    pub sum: i128,
    /// Sum of their squares.
    pub sum_of_squares: i128,
}

impl ValueTotals {
    /// Joins the limbs a store added up (see the module documentation);
    /// `None` when no valued event was added.
    pub fn from_limbs(limbs: [i64; LIMBS]) -> Option<ValueTotals> {
        let base = LIMB_BASE as i128;
        let [n, s0, s1, q0, q1, q2] = limbs.map(i128::from);
        (n > 0).then(|| ValueTotals {
            valued: n as u64,
            sum: s0 + s1 * base,
            sum_of_squares: q0 + q1 * base + q2 * base * base,
        })
    }

    /// The totals of both sets of events.
    pub fn plus(self, other: ValueTotals) -> ValueTotals {
        ValueTotals {
            valued: self.valued + other.valued,
            sum: self.sum + other.sum,
            sum_of_squares: self.sum_of_squares + other.sum_of_squares,
        }
    }

    /// The totals of the events counted since `earlier` was read.
    pub fn minus(self, earlier: ValueTotals) -> ValueTotals {
        ValueTotals {
            valued: self.valued.saturating_sub(earlier.valued),
            sum: self.sum - earlier.sum,
            sum_of_squares: self.sum_of_squares - earlier.sum_of_squares,
        }
    }

    /// Adds one value.
    pub fn add(&mut self, value: Value) {
        self.valued += 1;
        let v = value.micros() as i128;
        self.sum += v;
        self.sum_of_squares += v * v;
    }
}

/// Adds one value's limbs into a counter's limbs.
pub fn add_limbs(into: &mut [i64; LIMBS], value: Value) {
    for (total, limb) in into.iter_mut().zip(value.limbs()) {
        *total += limb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decimal text becomes exact micro-units, and prints back the same.
    #[test]
    fn parses_decimal_text_exactly() {
        for (text, micros, shown) in [
            ("12", 12_000_000, "12"),
            ("12.5", 12_500_000, "12.5"),
            ("0.000001", 1, "0.000001"),
            ("19.990000", 19_990_000, "19.99"),
            (".5", 500_000, "0.5"),
            ("3.", 3_000_000, "3"),
            ("0", 0, "0"),
            ("10000000", 10_000_000_000_000, "10000000"),
        ] {
            let value = Value::parse(text).unwrap();
            assert_eq!(value.micros(), micros, "{text}");
            assert_eq!(value.to_string(), shown, "{text}");
        }
    }

    /// Each refusal says what is wrong.
    #[test]
    fn refuses_what_it_cannot_keep_exactly() {
        for (text, why) in [
            ("", InvalidValue::NotANumber),
            (".", InvalidValue::NotANumber),
            ("1e3", InvalidValue::NotANumber),
            ("1.2.3", InvalidValue::NotANumber),
            ("NaN", InvalidValue::NotANumber),
            ("+1", InvalidValue::NotANumber),
            ("-1", InvalidValue::Negative),
            ("0.0000001", InvalidValue::TooPrecise),
            ("10000000.000001", InvalidValue::TooLarge),
            ("99999999999999999999999", InvalidValue::TooLarge),
        ] {
            assert_eq!(Value::parse(text), Err(why), "{text}");
        }
    }

    /// JSON numbers keep the digits the sender wrote.
    #[test]
    fn json_numbers_keep_their_digits() {
        assert_eq!(Value::from_f64(19.99).unwrap().micros(), 19_990_000);
        assert_eq!(Value::from_f64(0.1).unwrap().micros(), 100_000);
        assert_eq!(
            Value::from_f64(9_999_999.999_999).unwrap().micros(),
            9_999_999_999_999
        );
        assert_eq!(Value::from_f64(1e-7), Err(InvalidValue::TooPrecise));
        assert_eq!(Value::from_f64(-0.5), Err(InvalidValue::Negative));
    }

    /// A value deserializes from a JSON number or decimal text, and its
    /// limits are the same as [`Value::parse`]'s.
    #[test]
    fn deserializes_from_numbers_and_text() {
        let read = |json: &str| serde_json::from_str::<Value>(json).map_err(|e| e.to_string());
        let micros = |micros| Ok(Value(micros));
        let refused = |why: InvalidValue| Err(why.to_string());
        let cases = [
            ("12", micros(12_000_000)),
            ("12.5", micros(12_500_000)),
            ("\"12.50\"", micros(12_500_000)),
            ("0", micros(0)),
            ("-5", refused(InvalidValue::Negative)),
            ("-0.5", refused(InvalidValue::Negative)),
            ("1e-7", refused(InvalidValue::TooPrecise)),
            ("\"abc\"", refused(InvalidValue::NotANumber)),
            ("18446744073709551615", refused(InvalidValue::TooLarge)),
        ];
        for (json, expected) in cases {
            assert_eq!(read(json), expected, "{json}");
        }
        assert!(read("true").is_err());
        assert!(read("[1]").is_err());
    }

    /// Limbs added without carrying join to the exact sums, even for the
    /// largest values.
    #[test]
    fn limbs_join_to_exact_totals() {
        let values = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            10_000_000_000_000,
            12_345_678,
        ]
        .map(|m| Value::from_micros(m).unwrap());
        let mut limbs = [0i64; LIMBS];
        let mut totals = ValueTotals::default();
        for _ in 0..1000 {
            for value in values {
                add_limbs(&mut limbs, value);
                totals.add(value);
            }
        }
        assert_eq!(ValueTotals::from_limbs(limbs), Some(totals));
        assert_eq!(totals.valued, 6000);
        assert_eq!(ValueTotals::from_limbs([0; LIMBS]), None);
        assert!(value_limbs_stay_below_base());
    }

    fn value_limbs_stay_below_base() -> bool {
        let max = Value::from_micros(MAX_UNITS * MICROS_PER_UNIT).unwrap();
        max.limbs().iter().all(|&l| (0..LIMB_BASE).contains(&l))
    }
}
