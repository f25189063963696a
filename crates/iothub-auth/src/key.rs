//! Shared access keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::KeyError;

/// A decoded shared access key (a policy key or a device key).
///
/// The bytes are only used to sign; `Debug` prints `SharedAccessKey(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedAccessKey(Vec<u8>);

impl SharedAccessKey {
    /// Decodes a key from its base64 text, as found in connection strings.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(bytes))
    }

    /// The key as base64 text (for example to put it back into a connection string).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// Length of the decoded key in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty key cannot be constructed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// HMAC-SHA256 of `data` under this key.
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        self.mac(data).finalize().into_bytes().into()
    }

    /// Checks in constant time that `signature` is the HMAC-SHA256 of `data` under this key.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        self.mac(data).verify_slice(signature).is_ok()
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(data);
        mac
    }
}

impl std::fmt::Debug for SharedAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedAccessKey(<redacted>)")
    }
}
