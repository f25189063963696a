//! IoT Hub shared access signatures.
//!
//! A token reads `SharedAccessSignature sr=<uri>&sig=<signature>&se=<expiry>&skn=<policy>`:
//! `sr` is the percent-encoded resource URI (a hub host such as `myhub.azure-devices.net`,
//! or `myhub.azure-devices.net/devices/dev1` for a device), `se` the expiry in unix seconds,
//! `skn` the shared access policy (absent for device-scoped tokens), and `sig` the
//! percent-encoded base64 HMAC-SHA256, under the decoded key, of `<encoded sr>\n<se>`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{SasParseError, SharedAccessKey};

const PREFIX: &str = "SharedAccessSignature ";

/// A signed token. `Debug` hides it; call [`SasToken::expose`] to put it on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    value: String,
    expiry: u64,
}

impl SasToken {
    /// The full `SharedAccessSignature …` text.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Expiry in unix seconds (`se`).
    pub fn expiry_unix(&self) -> u64 {
        self.expiry
    }

    /// Expiry as a point in time.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.expiry))
            .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX.into()))
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("value", &"<redacted>")
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// Percent-encodes `text` the way IoT Hub clients encode `sr` and `sig`: every byte except
/// ASCII letters, digits and `-_.~` becomes `%XX` (upper-case hex).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space, as form encoding does); `None` if malformed.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The text that is signed: `<encoded resource uri>\n<expiry>`.
pub fn string_to_sign(encoded_resource_uri: &str, expiry_unix: u64) -> String {
    format!("{encoded_resource_uri}\n{expiry_unix}")
}

/// Signs a token for `resource_uri` (unencoded, e.g. `myhub.azure-devices.net` or
/// `myhub.azure-devices.net/devices/dev1`) that expires at `expiry_unix`.
/// `key_name` is the shared access policy; pass `None` for a device-scoped token.
pub fn generate_sas_token(
    resource_uri: &str,
    key: &SharedAccessKey,
    key_name: Option<&str>,
    expiry_unix: u64,
) -> SasToken {
    let sr = encode(resource_uri);
    let signature = STANDARD.encode(key.sign(string_to_sign(&sr, expiry_unix).as_bytes()));
    let mut value = format!(
        "{PREFIX}sr={sr}&sig={}&se={expiry_unix}",
        encode(&signature)
    );
    if let Some(name) = key_name {
        value.push_str("&skn=");
        value.push_str(&encode(name));
    }
    SasToken {
        value,
        expiry: expiry_unix,
    }
}

/// A token read back from an `Authorization` value, for checking it (as the emulator does).
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedSasToken {
    /// The resource URI, percent-decoded.
    pub resource_uri: String,
    /// `sr` exactly as it appeared in the token.
    pub resource_uri_as_sent: String,
    /// Expiry in unix seconds.
    pub expiry: u64,
    /// The shared access policy name (`skn`), absent for device-scoped tokens.
    pub key_name: Option<String>,
    signature: String,
}

impl ParsedSasToken {
    /// Reads `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`, fields in any order.
    pub fn parse(authorization: &str) -> Result<Self, SasParseError> {
        let text = authorization.trim();
        let body = text
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &text[PREFIX.len()..])
            .ok_or(SasParseError::NotSas)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for (i, field) in body.trim().split('&').enumerate() {
            let (name, value) = field
                .split_once('=')
                .ok_or(SasParseError::MalformedField(i + 1))?;
            let slot = match name {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => continue,
            };
            if slot.is_some() {
                return Err(SasParseError::Duplicate(name.to_owned()));
            }
            *slot = Some(value);
        }
        let sr = sr.ok_or(SasParseError::Missing("sr"))?;
        let sig = sig.ok_or(SasParseError::Missing("sig"))?;
        let se = se.ok_or(SasParseError::Missing("se"))?;
        let expiry = se.parse::<u64>().map_err(|_| SasParseError::BadExpiry)?;
        Ok(Self {
            resource_uri: decode(sr).ok_or(SasParseError::BadEncoding("sr"))?,
            resource_uri_as_sent: sr.to_owned(),
            expiry,
            key_name: skn
                .map(|v| decode(v).ok_or(SasParseError::BadEncoding("skn")))
                .transpose()?,
            signature: decode(sig).ok_or(SasParseError::BadEncoding("sig"))?,
        })
    }

    /// True when `now` is at or past the expiry.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() >= self.expiry)
            .unwrap_or(false)
    }

    /// Checks the signature against `key`, in constant time per candidate.
    ///
    /// Clients differ in what they sign: most sign `sr` as sent (percent-encoded), some
    /// put the raw URI in `sr` and sign that. The signature is accepted if it matches the
    /// string-to-sign built from `sr` as sent, from its decoded form, or from its canonical
    /// re-encoding.
    pub fn verify(&self, key: &SharedAccessKey) -> bool {
        let Ok(signature) = STANDARD.decode(self.signature.as_bytes()) else {
            return false;
        };
        let canonical = encode(&self.resource_uri);
        let candidates = [
            self.resource_uri_as_sent.as_str(),
            self.resource_uri.as_str(),
            canonical.as_str(),
        ];
        let mut ok = false;
        for sr in candidates {
            ok |= key.verify(string_to_sign(sr, self.expiry).as_bytes(), &signature);
        }
        ok
    }
}

impl fmt::Debug for ParsedSasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSasToken")
            .field("resource_uri", &self.resource_uri)
            .field("expiry", &self.expiry)
            .field("key_name", &self.key_name)
            .field("signature", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        assert_eq!(encode("localhost:8443"), "localhost%3A8443");
        assert_eq!(encode("h/devices/d 1"), "h%2Fdevices%2Fd%201");
        assert_eq!(
            decode("localhost%3a8443").as_deref(),
            Some("localhost:8443")
        );
        assert_eq!(decode("a+b").as_deref(), Some("a b"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(
            ParsedSasToken::parse("Bearer x"),
            Err(SasParseError::NotSas)
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sig=a&se=1"),
            Err(SasParseError::Missing("sr"))
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sr=a&sig=b&se=soon"),
            Err(SasParseError::BadExpiry)
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sr=a&sr=b&sig=b&se=1"),
            Err(SasParseError::Duplicate("sr".into()))
        );
        assert_eq!(
            ParsedSasToken::parse("SharedAccessSignature sr"),
            Err(SasParseError::MalformedField(1))
        );
    }
}
