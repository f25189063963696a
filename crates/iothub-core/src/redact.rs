//! `Debug` output that shows whether a secret is set without showing it.
//!
//! ```
//! use iothub_core::redact::Redacted;
//!
//! struct Keys {
//!     primary: Option<String>,
//!     secondary: Option<String>,
//! }
//!
//! impl std::fmt::Debug for Keys {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.debug_struct("Keys")
//!             .field("primary", &Redacted(&self.primary))
//!             .field("secondary", &Redacted(&self.secondary))
//!             .finish()
//!     }
//! }
//!
//! let keys = Keys { primary: Some("c2VjcmV0".into()), secondary: None };
//! assert_eq!(
//!     format!("{keys:?}"),
//!     r#"Keys { primary: Some("<redacted>"), secondary: None }"#
//! );
//! ```

use std::fmt;

/// What [`Redacted`] prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Wraps an optional secret for `Debug`: `Some("<redacted>")` when it is set, `None` when it
/// is not, whatever the value.
#[derive(Clone, Copy)]
pub struct Redacted<'a, T>(pub &'a Option<T>);

impl<T> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_ref().map(|_| REDACTED).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_presence_only() {
        let set = Some("secret".to_owned());
        let unset: Option<String> = None;
        assert_eq!(format!("{:?}", Redacted(&set)), r#"Some("<redacted>")"#);
        assert_eq!(format!("{:?}", Redacted(&unset)), "None");
        assert_eq!(
            format!("{:#?}", Redacted(&set)),
            format!("{:#?}", Some(REDACTED))
        );
    }
}
