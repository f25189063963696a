//! Error types. None of them ever carries key or token material.

/// A connection string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// The connection string is empty.
    #[error("connection string is empty")]
    Empty,
    /// A `;`-separated part has no `=`.
    #[error("connection string part #{index} is not of the form Name=Value")]
    MalformedPart {
        /// 1-based position of the part.
        index: usize,
    },
    /// A required part is absent.
    #[error("connection string has no {0}")]
    Missing(&'static str),
    /// A part is present but empty.
    #[error("connection string part {0} is empty")]
    EmptyValue(String),
    /// The same part appears twice.
    #[error("connection string part {0} appears more than once")]
    Duplicate(String),
    /// The shared access key is not valid base64.
    #[error("connection string part SharedAccessKey is malformed")]
    InvalidKey(#[source] KeyError),
    /// `SharedAccessKeyName` and `DeviceId` both present, or a key with neither.
    #[error("connection string has a SharedAccessKey but neither SharedAccessKeyName nor DeviceId")]
    KeyWithoutOwner,
}

/// A shared access key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not valid base64.
    #[error("key is not valid base64")]
    NotBase64,
    /// The key decodes to an empty byte string.
    #[error("key is empty")]
    Empty,
}

/// An `Authorization` value could not be read as a shared access signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasParseError {
    /// The value does not start with `SharedAccessSignature `.
    #[error("authorization value is not a SharedAccessSignature")]
    NotSas,
    /// A required field (`sr`, `sig` or `se`) is absent.
    #[error("shared access signature has no `{0}` field")]
    Missing(&'static str),
    /// A field appears twice.
    #[error("shared access signature field `{0}` appears more than once")]
    Duplicate(String),
    /// A field is not `name=value`.
    #[error("shared access signature field #{0} is not of the form name=value")]
    MalformedField(usize),
    /// `se` is not a number of seconds.
    #[error("shared access signature expiry `se` is not a unix time in seconds")]
    BadExpiry,
    /// A field value is not valid percent-encoding.
    #[error("shared access signature field `{0}` is not valid percent-encoded UTF-8")]
    BadEncoding(&'static str),
}

/// A credential could not produce an `Authorization` header.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The connection string has no key to sign with (for example a device string without a key).
    #[error("connection string holds no shared access key for a service policy")]
    NoServiceKey,
    /// The Azure AD token credential failed.
    #[cfg(feature = "token-credential")]
    #[error("token credential failed to return a token")]
    TokenCredential(#[source] azure_core::Error),
    /// The system clock is before 1970.
    #[error("system clock is before the unix epoch")]
    Clock,
}
