//! Entity tags: the [`ETag`] type a client passes around, and the pure functions that quote
//! an ETag for a header, read an `If-Match` value and compare it with the stored ETag.
//!
//! IoT Hub puts an ETag on every device, module, twin and configuration (a weak ETag in the
//! sense of RFC 7232). A conditional write sends it back in `If-Match`, in double quotes as
//! the official SDKs do (`If-Match: "AAAAAAAAAAE="`), or `"*"` for any version; bulk entries
//! carry it bare in `eTag` / `twinETag`.
//!
//! ```
//! use iothub_core::etag;
//!
//! assert_eq!(etag::quoted("MQ=="), "\"MQ==\"");
//! assert_eq!(etag::normalize("W/\"MQ==\""), "MQ==");
//! assert_eq!(etag::parse_if_match(" \"MQ==\" "), Some("MQ=="));
//! assert!(etag::matches("MQ==", "MQ=="));
//! assert!(etag::matches("*", "MQ=="));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An entity tag: the version stamp IoT Hub puts on a device, module, twin or
/// configuration, used for optimistic concurrency (`If-Match`) and in the `*IfMatchETag`
/// bulk modes.
///
/// Its own type, so that an ETag and a key (both strings on the wire) cannot be swapped in a
/// call: take the one the resource came with (`&device.etag`), build one with
/// [`ETag::new`] or `"…".parse()`, or say "any version" with [`ETag::any()`]. Nothing turns
/// a missing value into "any" implicitly.
///
/// In a header it is sent quoted ([`header_value`](ETag::header_value)); a value that
/// already starts and ends with `"` is sent unchanged. In JSON (`serde`) it is the bare
/// value.
///
/// ```
/// # use iothub_core::ETag;
/// assert_eq!(ETag::new("MQ==").header_value(), "\"MQ==\"");
/// assert_eq!(ETag::any().header_value(), "\"*\"");
/// assert!("*".parse::<ETag>().unwrap().is_any());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ETag(String);

impl ETag {
    /// Matches any version (`If-Match: "*"`): an unconditional write.
    pub fn any() -> Self {
        ETag("*".to_owned())
    }

    /// A specific ETag value, as IoT Hub returned it (quoted or not).
    pub fn new(etag: impl Into<String>) -> Self {
        ETag(etag.into())
    }

    /// True for [`ETag::any()`] (the value `*`).
    pub fn is_any(&self) -> bool {
        self.0 == "*"
    }

    /// The `If-Match` header value: the ETag in double quotes (see [`quoted`]).
    pub fn header_value(&self) -> String {
        quoted(&self.0)
    }

    /// The ETag as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ETag {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ETag::new(s))
    }
}

impl From<&ETag> for ETag {
    fn from(etag: &ETag) -> Self {
        etag.clone()
    }
}

/// `etag` in double quotes, for an `If-Match` header. A value that already starts and ends
/// with `"` (and is longer than one character) is returned unchanged.
pub fn quoted(etag: &str) -> String {
    if etag.len() > 1 && etag.starts_with('"') && etag.ends_with('"') {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// The bare value of an `If-Match` or `eTag` value: surrounding whitespace, a weak `W/`
/// prefix and one pair of double quotes removed. Lenient: anything else is returned as it
/// is (trimmed). See [`parse_if_match`] for the strict reading.
pub fn normalize(raw: &str) -> &str {
    let t = raw.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t)
}

/// Reads one `If-Match` value strictly: `*`, or an ETag, optionally weak (`W/`) and quoted,
/// with spaces and tabs around it. The bare value must be non-empty visible ASCII without
/// `"` or `,` (so a list of ETags is refused). `None` when the value is not one ETag.
pub fn parse_if_match(raw: &str) -> Option<&str> {
    let t = raw.trim_matches(|c| c == ' ' || c == '\t');
    if t == "*" {
        return Some(t);
    }
    let t = t.strip_prefix("W/").unwrap_or(t);
    let inner = match t.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => t,
    };
    let valid = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != ',');
    valid.then_some(inner)
}

/// Whether an `If-Match` value, already reduced to its bare form ([`normalize`] or
/// [`parse_if_match`]), allows a write to a resource whose ETag is `current`: it is `*` or
/// equal to `current`. The comparison is exact (ETags are case-sensitive).
pub fn matches(if_match: &str, current: &str) -> bool {
    if_match == "*" || if_match == current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ETag::any().header_value(), "\"*\"");
        assert_eq!(ETag::new("*").header_value(), "\"*\"");
        assert!(ETag::new("*").is_any());
        assert!(!ETag::new("\"*\"").is_any());
        assert_eq!(ETag::new("MQ==").header_value(), "\"MQ==\"");
        assert_eq!(ETag::new("\"MQ==\"").header_value(), "\"MQ==\"");
        assert_eq!(ETag::new("\"").header_value(), "\"\"\"");
        assert_eq!(ETag::new("\"\"").header_value(), "\"\"");
        assert_eq!(ETag::new("").header_value(), "\"\"");
        assert_eq!(ETag::new("\"MQ==").header_value(), "\"\"MQ==\"");
        assert_eq!(quoted("W/\"MQ==\""), "\"W/\"MQ==\"\"");
    }

    #[test]
    fn etag_type() {
        let etag: ETag = "MQ==".parse().unwrap();
        assert_eq!(etag.as_str(), "MQ==");
        assert_eq!(etag.to_string(), "MQ==");
        assert_eq!(ETag::from(&etag), etag);
        assert_eq!(
            serde_json::to_value(&etag).unwrap(),
            serde_json::json!("MQ==")
        );
        assert_eq!(
            serde_json::from_value::<ETag>(serde_json::json!("Mg==")).unwrap(),
            ETag::new("Mg==")
        );
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize("\"MQ==\""), "MQ==");
        assert_eq!(normalize("W/\"MQ==\""), "MQ==");
        assert_eq!(normalize("  \"MQ==\" "), "MQ==");
        assert_eq!(normalize("MQ=="), "MQ==");
        assert_eq!(normalize("*"), "*");
        assert_eq!(normalize("\"*\""), "*");
        assert_eq!(normalize("\"\""), "");
        // One quote alone is not a pair.
        assert_eq!(normalize("\""), "\"");
        assert_eq!(normalize("\"MQ=="), "\"MQ==");
    }

    #[test]
    fn strict_if_match() {
        assert_eq!(parse_if_match("*"), Some("*"));
        assert_eq!(parse_if_match(" \t*\t"), Some("*"));
        assert_eq!(parse_if_match("\"MQ==\""), Some("MQ=="));
        assert_eq!(parse_if_match("W/\"MQ==\""), Some("MQ=="));
        assert_eq!(parse_if_match("MQ=="), Some("MQ=="));
        assert_eq!(parse_if_match("\"\""), None);
        assert_eq!(parse_if_match(""), None);
        assert_eq!(parse_if_match("\"MQ=="), None);
        assert_eq!(parse_if_match("\"a\", \"b\""), None);
        assert_eq!(parse_if_match("a b"), None);
        assert_eq!(parse_if_match("\"é\""), None);
    }

    #[test]
    fn matching() {
        assert!(matches("*", "x"));
        assert!(matches("MQ==", "MQ=="));
        assert!(!matches("MQ==", "Mg=="));
        assert!(!matches("mq==", "MQ=="));
        assert!(!matches("", "MQ=="));
        assert!(matches(normalize("W/\"MQ==\""), "MQ=="));
    }
}
