//! `send_c2d_message`: cloud-to-device messages through `iothub-c2d` (feature `c2d`, on by
//! default).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_c2d::{Ack, Message};

use crate::RegistryManager;
use crate::error::{Error, Result};

/// A cloud-to-device send (`send_c2d_message`), ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct SendC2dMessageRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    body: Vec<u8>,
    properties: BTreeMap<String, String>,
}

impl SendC2dMessageRequest<'_> {
    /// Sends the message (same as `.await`); returns when the hub has enqueued it.
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::send_c2d_message`].
    pub async fn send(self) -> Result<()> {
        let message = to_message(self.body, self.properties)?;
        self.rm
            .c2d()?
            .send(self.device_id, message)
            .await
            .map_err(Error::C2d)
    }
}

crate::operation::into_future!(SendC2dMessageRequest => ());

/// Builds the message from Python-style properties: the system keys become AMQP
/// properties, everything else an application property.
fn to_message(body: Vec<u8>, properties: BTreeMap<String, String>) -> Result<Message> {
    let mut message = Message::new(body);
    for (key, value) in properties {
        message = match key.as_str() {
            "messageId" => message.with_message_id(value),
            "correlationId" => message.with_correlation_id(value),
            "userId" => message.with_user_id(value),
            "contentType" => message.with_content_type(value),
            "contentEncoding" => message.with_content_encoding(value),
            "expiryTimeUtc" => message.with_expiry_time(parse_expiry(&value)?),
            "ack" | "iothub-ack" => {
                message.with_ack(value.parse::<Ack>().map_err(|_| Error::InvalidRequest {
                    message: format!(
                        "ack '{}' is not one of none, positive, negative, full",
                        value.escape_default()
                    ),
                })?)
            }
            _ => message.with_property(key, value),
        };
    }
    Ok(message)
}

/// `expiryTimeUtc`: milliseconds since the Unix epoch (what the Python SDK passes through to
/// AMQP) or an RFC 3339 time.
fn parse_expiry(value: &str) -> Result<SystemTime> {
    if let Ok(ms) = value.trim().parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(SystemTime::from)
        .map_err(|_| Error::InvalidRequest {
            message: format!(
                "expiryTimeUtc '{}' is neither milliseconds since 1970 nor an RFC 3339 time",
                value.escape_default()
            ),
        })
}

impl RegistryManager {
    /// Sends a cloud-to-device message to a device's queue over AMQP (Python
    /// `send_c2d_message(device_id, message, properties)`). In `properties`, the system keys
    /// `messageId` (default: a new UUID), `correlationId`, `userId`, `contentType`,
    /// `contentEncoding`, `expiryTimeUtc` (milliseconds since 1970, or RFC 3339) and `ack`
    /// (`none`/`positive`/`negative`/`full`, sent as `iothub-ack`) become AMQP properties;
    /// every other key is an application property. The AMQP connection is opened on the first
    /// send and shared by later ones; for feedback, purge and pipelined sends use
    /// [`iothub_c2d::C2dClient`] (see [`c2d_client`](Self::c2d_client)).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`] (device not registered), [`Error::is_queue_full`] (50 messages
    /// already queued, 403004), [`Error::is_message_too_large`] (over 64 KB),
    /// [`Error::is_throttled`], [`Error::is_unauthorized`], [`Error::is_timeout`];
    /// [`Error::InvalidRequest`] for a bad `ack` or `expiryTimeUtc` (nothing sent);
    /// [`Error::C2d`] carries the C2D client's error.
    pub fn send_c2d_message<K, V>(
        &self,
        device_id: impl Into<String>,
        message: impl Into<Vec<u8>>,
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> SendC2dMessageRequest<'_>
    where
        K: Into<String>,
        V: Into<String>,
    {
        SendC2dMessageRequest {
            rm: self,
            device_id: device_id.into(),
            body: message.into(),
            properties: properties
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The cloud-to-device client this registry manager sends with: same hub, credential and
    /// root certificates.
    ///
    /// # Errors
    ///
    /// [`Error::C2d`] when the client could not be configured (for example an invalid root
    /// certificate).
    pub fn c2d_client(&self) -> Result<iothub_c2d::C2dClient> {
        self.c2d()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_properties_map_to_amqp() {
        let props = [
            ("messageId", "m1"),
            ("correlationId", "c1"),
            ("contentType", "application/json"),
            ("ack", "full"),
            ("expiryTimeUtc", "1700000000000"),
            ("color", "red"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let m = to_message(b"x".to_vec(), props).expect("message");
        assert_eq!(m.message_id(), "m1");
        assert_eq!(m.correlation_id(), Some("c1"));
        assert_eq!(m.content_type(), Some("application/json"));
        assert_eq!(m.ack(), Ack::Full);
        assert_eq!(
            m.expiry_time(),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000))
        );
        assert_eq!(m.properties().get("color").map(String::as_str), Some("red"));
        assert!(!m.properties().contains_key("ack"));
    }

    #[test]
    fn bad_system_values_are_refused() {
        for (k, v) in [("ack", "sometimes"), ("expiryTimeUtc", "tomorrow")] {
            let props = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            let err = to_message(Vec::new(), props).expect_err("refused");
            assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
        }
        let props = BTreeMap::from([(
            "expiryTimeUtc".to_owned(),
            "2030-01-01T00:00:00Z".to_owned(),
        )]);
        assert!(to_message(Vec::new(), props).is_ok());
    }
}
