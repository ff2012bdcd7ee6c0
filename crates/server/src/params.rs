//! Strict query-string parsing: unlike a lossy decoder, it refuses invalid
//! UTF-8 and repeated parameters with an error that names the parameter.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::error::ApiError;
use lamed_core::model::InvalidField;

/// The decoded parameters of one query string, in order.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, Result<String, ()>)>,
}

impl QueryParams {
    /// Splits and decodes `a=b&c=d` (`+` means space, as AlephBet sends it).
    ///
    /// # Errors
    ///
    /// When a parameter name is not valid UTF-8 after decoding.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name)
                .map_err(|()| ApiError::BadRequest("a parameter name is not valid UTF-8".into()))?;
            pairs.push((name, decode(value)));
        }
        Ok(QueryParams { pairs })
    }

    /// The value of `name`, if given once.
    ///
    /// # Errors
    ///
    /// When it is given more than once or is not valid UTF-8.
    pub fn optional(&self, name: &'static str) -> Result<Option<&str>, InvalidField> {
        let mut found = self.pairs.iter().filter(|(n, _)| n == name);
        let Some((_, value)) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(InvalidField::Repeated(name));
        }
        value
            .as_deref()
            .map(Some)
            .map_err(|()| InvalidField::InvalidUtf8(name))
    }

    /// Every parameter in order, its value `None` when not valid UTF-8 (to
    /// read them into a derived struct).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref().ok()))
    }

    /// Every value of a repeated parameter, in order (Sixpack's
    /// `alternatives`).
    ///
    /// # Errors
    ///
    /// When a value is not valid UTF-8.
    pub fn all(&self, name: &'static str) -> Result<Vec<&str>, InvalidField> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, value)| {
                value
                    .as_deref()
                    .map_err(|()| InvalidField::InvalidUtf8(name))
            })
            .collect()
    }

    /// Moves the value of `name` out (given once, valid UTF-8), sparing a
    /// copy on the tracking path.
    ///
    /// # Errors
    ///
    /// As [`QueryParams::required`].
    pub fn take(&mut self, name: &'static str) -> Result<String, InvalidField> {
        self.required(name)?;
        let (_, value) = self
            .pairs
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or(InvalidField::Missing(name))?;
        Ok(std::mem::replace(value, Ok(String::new())).unwrap_or_default())
    }

    /// The value of `name`, which must be given.
    ///
    /// # Errors
    ///
    /// As [`QueryParams::optional`], and when it is absent.
    pub fn required(&self, name: &'static str) -> Result<&str, InvalidField> {
        self.optional(name)?.ok_or(InvalidField::Missing(name))
    }
}

fn decode(text: &str) -> Result<String, ()> {
    // Borrow until something must change: this runs five times per event.
    let spaced = if text.contains('+') {
        Cow::Owned(text.replace('+', " "))
    } else {
        Cow::Borrowed(text)
    };
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AlephBet's encoding: encodeURIComponent, then %20 replaced by +.
    #[test]
    fn decodes_alephbet_encoding() {
        let q =
            QueryParams::parse(Some("experiment=button+color&variant=a%2Bb%26c%3A%22&x")).unwrap();
        assert_eq!(q.required("experiment").unwrap(), "button color");
        assert_eq!(q.required("variant").unwrap(), "a+b&c:\"");
        assert_eq!(q.optional("x").unwrap(), Some(""));
        assert_eq!(q.optional("y").unwrap(), None);
    }

    /// Errors name the parameter.
    #[test]
    fn refuses_bad_values() {
        let q = QueryParams::parse(Some("uuid=%FF&a=1&a=2")).unwrap();
        assert_eq!(q.required("uuid"), Err(InvalidField::InvalidUtf8("uuid")));
        assert_eq!(q.required("a"), Err(InvalidField::Repeated("a")));
        assert_eq!(q.required("b"), Err(InvalidField::Missing("b")));
        assert_eq!(q.all("a"), Ok(vec!["1", "2"]));
        assert_eq!(q.all("b"), Ok(vec![]));
        assert_eq!(q.all("uuid"), Err(InvalidField::InvalidUtf8("uuid")));
        assert!(QueryParams::parse(Some("%FF=1")).is_err());
    }
}
