//! Messages a device sends and receives: [`Telemetry`], [`C2dMessage`].

use iothub_core::mqtt::{self as topics, Topic};
use serde_json::Value;

/// A device-to-cloud message. The system properties that are set, then the application
/// properties, go into the topic's property bag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// The body.
    pub body: Vec<u8>,
    /// Application properties, in order.
    pub properties: Vec<(String, String)>,
    /// Message id (`$.mid`).
    pub message_id: Option<String>,
    /// Content type (`$.ct`), e.g. `application/json`; IoT Hub routing queries on the body
    /// need it.
    pub content_type: Option<String>,
    /// Content encoding (`$.ce`), e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Correlation id (`$.cid`).
    pub correlation_id: Option<String>,
}

impl Telemetry {
    /// A message with `body` and no properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Telemetry {
            body: body.into(),
            ..Telemetry::default()
        }
    }

    /// A JSON body, with content type `application/json` and content encoding `utf-8`.
    pub fn json(body: &Value) -> Self {
        Telemetry {
            body: body.to_string().into_bytes(),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            ..Telemetry::default()
        }
    }

    /// Adds an application property.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// Sets the message id.
    #[must_use]
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The encoded property bag of the telemetry topic.
    pub(crate) fn property_bag(&self) -> String {
        let system = [
            (topics::PROP_MESSAGE_ID, &self.message_id),
            (topics::PROP_CORRELATION_ID, &self.correlation_id),
            (topics::PROP_CONTENT_TYPE, &self.content_type),
            (topics::PROP_CONTENT_ENCODING, &self.content_encoding),
        ];
        let pairs: Vec<(&str, &str)> = system
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .chain(
                self.properties
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .collect();
        topics::encode_property_bag(&pairs)
    }
}

/// A cloud-to-device message as the device received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dMessage {
    /// The body.
    pub body: Vec<u8>,
    /// Message id (`$.mid`).
    pub message_id: Option<String>,
    /// Correlation id (`$.cid`).
    pub correlation_id: Option<String>,
    /// Every property of the topic's property bag, decoded, in topic order: the system
    /// properties (`$.mid`, `$.to`, `$.ct`, `$.exp`, …, and `iothub-ack`) and the application
    /// properties.
    pub properties: Vec<(String, String)>,
    /// The topic it arrived on, as sent.
    pub topic: String,
    /// The MQTT packet id (to acknowledge it).
    pub(crate) packet_id: u16,
    /// The connection it arrived on (to acknowledge it there only).
    pub(crate) connection: u64,
}

impl C2dMessage {
    /// Decodes a cloud-to-device PUBLISH, or `None` when `topic` is not one.
    pub(crate) fn decode(
        topic: &str,
        body: &[u8],
        packet_id: u16,
        connection: u64,
    ) -> Option<C2dMessage> {
        let Some(Topic::CloudToDevice { properties, .. }) = Topic::parse(topic) else {
            return None;
        };
        let properties = topics::decode_property_bag(&properties);
        let find = |name: &str| {
            properties
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Some(C2dMessage {
            body: body.to_vec(),
            message_id: find(topics::PROP_MESSAGE_ID),
            correlation_id: find(topics::PROP_CORRELATION_ID),
            topic: topic.to_owned(),
            packet_id,
            connection,
            properties,
        })
    }

    /// The value of property `name` (`$.ct`, `iothub-ack`, an application property), if
    /// present.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The application properties: those that are not system properties (`$.…` and
    /// `iothub-…`).
    pub fn application_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .filter(|(k, _)| !k.starts_with("$.") && !k.starts_with("iothub-"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_property_bags() {
        let t = Telemetry::json(&serde_json::json!({"t": 1}))
            .with_message_id("m 1")
            .with_property("$weird", "a&b");
        let bag = t.property_bag();
        assert_eq!(
            bag,
            "%24.mid=m%201&%24.ct=application%2Fjson&%24.ce=utf-8&%24weird=a%26b"
        );
        assert_eq!(Telemetry::new("x").property_bag(), "");
        assert_eq!(
            topics::telemetry_topic("d", None, &bag),
            format!("devices/d/messages/events/{bag}")
        );
    }

    #[test]
    fn c2d_topics_are_decoded() {
        let topic = "devices/d1/messages/devicebound/%24.mid=42&%24.cid=c%201&%24.to=%2Fdevices%2Fd1%2Fmessages%2FdeviceBound&$.ct=text%2Fplain&iothub-ack=full&color=blue%20green";
        let m = C2dMessage::decode(topic, b"hi", 7, 3).expect("a C2D topic");
        assert_eq!(m.body, b"hi");
        assert_eq!(m.message_id.as_deref(), Some("42"));
        assert_eq!(m.correlation_id.as_deref(), Some("c 1"));
        assert_eq!(m.property("$.to"), Some("/devices/d1/messages/deviceBound"));
        assert_eq!(m.property("$.ct"), Some("text/plain"));
        assert_eq!(m.property("iothub-ack"), Some("full"));
        assert_eq!(
            m.application_properties().collect::<Vec<_>>(),
            vec![("color", "blue green")]
        );
        assert_eq!((m.packet_id, m.connection, m.topic.as_str()), (7, 3, topic));

        let bare = C2dMessage::decode("devices/d1/messages/devicebound/", b"", 1, 1).expect("C2D");
        assert!(bare.properties.is_empty() && bare.message_id.is_none());
        assert!(C2dMessage::decode("devices/d1/messages/events/a=b", b"", 1, 1).is_none());
        assert!(C2dMessage::decode("$iothub/methods/POST/m/?$rid=1", b"", 1, 1).is_none());
    }
}
