//! Record versions as HTTP entity tags: a record is answered with its
//! version as a strong `ETag` (`"7"`), and an edit's `If-Match` names the
//! versions it read ([`Expected`]).

use axum::http::header::IF_MATCH;
use axum::http::{HeaderMap, HeaderValue};

use lamed_service::registry::Expected;

/// The `ETag` of a record at `version`: the number, quoted (strong).
pub fn etag(version: u64) -> HeaderValue {
    // Digits and quotes only.
    HeaderValue::from_str(&format!("\"{version}\"")).expect("a valid header value")
}

/// What the request's `If-Match` headers expect: [`Expected::Current`]
/// without one, [`Expected::Exists`] for `*`, else the versions its entity
/// tags name. A weak tag (`W/"7"`) or one that is no version of ours
/// (`"abc"`) is well formed but matches nothing (`If-Match` compares
/// strongly), so it leads to 412, not 400.
///
/// # Errors
///
/// A value that is not `*` or a list of entity tags (`7` without its
/// quotes, say) is malformed (a 400).
pub fn if_match(headers: &HeaderMap) -> Result<Expected, MalformedIfMatch> {
    let mut values = headers.get_all(IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return Ok(Expected::Current);
    }
    let mut versions = Vec::new();
    for value in values {
        let malformed = || MalformedIfMatch(String::from_utf8_lossy(value.as_bytes()).into_owned());
        let text = value.to_str().map_err(|_| malformed())?;
        if text.trim() == "*" {
            return Ok(Expected::Exists);
        }
        let tags = entity_tags(text).ok_or_else(malformed)?;
        versions.extend(
            tags.into_iter()
                .filter(|tag| !tag.weak)
                .filter_map(|tag| tag.opaque.parse::<u64>().ok()),
        );
    }
    Ok(Expected::OneOf(versions))
}

/// An `If-Match` value that is neither `*` nor a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("If-Match must be * or ETags as GET answers them, such as \"7\" with its quotes; got {0}")]
pub struct MalformedIfMatch(pub String);

/// One entity tag of a list.
struct EntityTag<'a> {
    weak: bool,
    /// Between the quotes.
    opaque: &'a str,
}

/// The entity tags of a comma-separated list (RFC 9110 §8.8.3: `W/` for a
/// weak one, then `"`, characters other than `"` and controls, `"`);
/// `None` when the list is malformed or empty.
fn entity_tags(list: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inner = quoted.strip_prefix('"')?;
        let end = inner.find('"')?;
        let opaque = &inner[..end];
        if opaque.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return None;
        }
        tags.push(EntityTag { weak, opaque });
        rest = inner[end + 1..].trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
    (!tags.is_empty()).then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(values: &[&str]) -> Result<Expected, String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(IF_MATCH, HeaderValue::from_str(value).unwrap());
        }
        if_match(&headers).map_err(|err| err.to_string())
    }

    /// Versions are quoted numbers, and read back as such.
    #[test]
    fn etags_are_quoted_versions() {
        assert_eq!(etag(7), "\"7\"");
        assert_eq!(expected(&["\"7\""]), Ok(Expected::OneOf(vec![7])));
    }

    /// No header expects nothing, `*` a record, a list any of its
    /// versions (over several headers too); weak and foreign tags match
    /// nothing.
    #[test]
    fn if_match_lists_the_versions_read() {
        assert_eq!(expected(&[]), Ok(Expected::Current));
        assert_eq!(expected(&[" * "]), Ok(Expected::Exists));
        assert_eq!(
            expected(&["\"3\", \"5\"", "\"9\""]),
            Ok(Expected::OneOf(vec![3, 5, 9]))
        );
        assert_eq!(
            expected(&["W/\"3\", \"abc\",\"\""]),
            Ok(Expected::OneOf(vec![]))
        );
        assert_eq!(expected(&["\"a,b\", \"4\""]), Ok(Expected::OneOf(vec![4])));
    }

    /// Anything else is malformed, and the message shows the form.
    #[test]
    fn malformed_if_match_is_named() {
        for bad in ["7", "\"7", "\"7\" \"8\"", "", " , ", "w/\"7\"", "\"7\"x"] {
            let err = expected(&[bad]).unwrap_err();
            assert!(err.contains("such as \"7\""), "{bad}: {err}");
        }
    }
}
