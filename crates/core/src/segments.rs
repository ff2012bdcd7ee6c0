//! Segments (issue 26): the dimensions an event is counted in besides its
//! variant (device, browser, country), the values it carries, the cap on
//! distinct values, and the counters stores keep per value.
//!
//! A counted event adds one to its counter and, in the same store
//! operation, one to the counter of each of its segment values; a
//! duplicate or an ignored event adds nothing anywhere. Only these
//! aggregate counters are stored: the User-Agent and the address a value
//! came from are dropped once it is known.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::value::ValueTotals;

/// Most distinct values one dimension of one experiment holds, counting
/// [`OTHER`]: once an experiment has seen `MAX_VALUES_PER_DIMENSION - 1`
/// named values of a dimension, any further value counts as [`OTHER`], so
/// that anonymous traffic cannot grow the store.
pub const MAX_VALUES_PER_DIMENSION: usize = 20;

/// The value that stands for every value past the cap (and for an
/// unrecognised browser or device).
pub const OTHER: &str = "other";

/// Longest value kept (a browser family is a few words): a longer one
/// counts as [`OTHER`].
pub const MAX_VALUE_BYTES: usize = 64;

/// A dimension results can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// desktop, mobile, tablet, other.
    Device,
    /// The browser's family, as uap-core names it (Chrome, Mobile Safari...).
    Browser,
    /// ISO 3166 country code.
    Country,
}

impl Dimension {
    /// Every dimension, in the order segments list them.
    pub const ALL: [Dimension; 3] = [Dimension::Device, Dimension::Browser, Dimension::Country];

    /// Its name in settings, keys and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Device => "device",
            Dimension::Browser => "browser",
            Dimension::Country => "country",
        }
    }

    /// Its position in [`Dimension::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no dimension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown segment dimension '{0}': expected device, browser or country")]
pub struct UnknownDimension(pub String);

impl FromStr for Dimension {
    type Err = UnknownDimension;

    fn from_str(name: &str) -> Result<Self, UnknownDimension> {
        match name.trim() {
            "device" => Ok(Dimension::Device),
            "browser" => Ok(Dimension::Browser),
            "country" => Ok(Dimension::Country),
            other => Err(UnknownDimension(other.to_owned())),
        }
    }
}

/// The segment values of one event: one value per recorded dimension, or
/// none (segments off, a `POST` batch, no country source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// Values by [`Dimension::index`].
    values: [Option<String>; 3],
}

impl Segment {
    /// No value in any dimension: what events carry with segments off.
    pub const NONE: Segment = Segment {
        values: [None, None, None],
    };

    /// Sets the value of `dimension`; a blank or over-long one, or one with
    /// a control character (stores use them as separators), becomes
    /// [`OTHER`].
    pub fn set(&mut self, dimension: Dimension, value: &str) {
        let value = if value.trim().is_empty()
            || value.len() > MAX_VALUE_BYTES
            || value.chars().any(char::is_control)
        {
            OTHER
        } else {
            value
        };
        self.values[dimension.index()] = Some(value.to_owned());
    }

    /// With `dimension` set to `value` (see [`Segment::set`]).
    pub fn with(mut self, dimension: Dimension, value: &str) -> Segment {
        self.set(dimension, value);
        self
    }

    /// The value of `dimension`, when recorded.
    pub fn get(&self, dimension: Dimension) -> Option<&str> {
        self.values[dimension.index()].as_deref()
    }

    /// True when no dimension has a value.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// The recorded values, in [`Dimension::ALL`] order.
    pub fn values(&self) -> impl Iterator<Item = (Dimension, &str)> {
        Dimension::ALL
            .into_iter()
            .filter_map(|dimension| self.get(dimension).map(|value| (dimension, value)))
    }
}

/// The value a store records for `value` of a dimension that holds
/// `held` distinct values already (`has` tells whether `value` is one of
/// them): the value itself while under the cap, else [`OTHER`].
pub fn capped(value: &str, has: bool, held: usize) -> &str {
    if has || value == OTHER {
        return value;
    }
    // OTHER always has its place: named values fill the rest.
    if held >= MAX_VALUES_PER_DIMENSION - 1 {
        OTHER
    } else {
        value
    }
}

/// How many values of a dimension count against the cap: the named ones
/// among `values` ([`OTHER`] has its own place).
pub fn named_count<'a>(values: impl IntoIterator<Item = &'a str>) -> usize {
    values.into_iter().filter(|value| *value != OTHER).count()
}

/// One segment counter: the unique events of one kind a variant received
/// from one value of one dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentCounter {
    /// The dimension.
    pub dimension: Dimension,
    /// Its value (or [`OTHER`]).
    pub value: String,
    /// `participate` or a goal name.
    pub event: String,
    /// The variant name.
    pub variant: String,
    /// Unique events counted.
    pub count: u64,
    /// The sum and sum of squares of their values; `None` when none
    /// carried one.
    #[serde(skip)]
    pub values: Option<ValueTotals>,
}

impl SegmentCounter {
    /// What counters sort by: dimension, value, event, variant.
    pub fn key(&self) -> (Dimension, &str, &str, &str) {
        (self.dimension, &self.value, &self.event, &self.variant)
    }
}

/// Sorts counters by [`SegmentCounter::key`], as stores answer them.
pub fn sort_counters(counters: &mut [SegmentCounter]) {
    counters.sort_by(|a, b| a.key().cmp(&b.key()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nineteenth named value is kept, the twentieth becomes "other";
    /// values already held and "other" itself are always kept.
    #[test]
    fn values_past_the_cap_count_as_other() {
        assert_eq!(capped("Chrome", false, 18), "Chrome");
        assert_eq!(capped("Chrome", false, 19), OTHER);
        assert_eq!(capped("Chrome", true, 19), "Chrome");
        assert_eq!(capped(OTHER, false, 19), OTHER);
        assert_eq!(named_count(["a", OTHER, "b"]), 2);
    }

    /// Blank and over-long values are recorded as "other"; dimensions parse
    /// from their names and an unknown one is named in the error.
    #[test]
    fn values_and_dimensions_are_checked() {
        let segment = Segment::NONE
            .with(Dimension::Device, " ")
            .with(Dimension::Browser, &"x".repeat(MAX_VALUE_BYTES + 1));
        assert_eq!(segment.get(Dimension::Device), Some(OTHER));
        assert_eq!(segment.get(Dimension::Browser), Some(OTHER));
        assert_eq!(segment.get(Dimension::Country), None);
        assert_eq!("country".parse(), Ok(Dimension::Country));
        let err = "os".parse::<Dimension>().expect_err("unknown");
        assert!(err.to_string().contains("'os'"), "{err}");
    }
}
