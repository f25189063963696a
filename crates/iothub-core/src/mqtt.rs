//! IoT Hub's MQTT vocabulary: the topics devices and the hub exchange, and the property bag
//! that carries message properties inside a topic name.
//!
//! Source: Microsoft's "Communicate with an IoT hub using the MQTT protocol"
//! (iot-hub-mqtt-support), checked against what the official device SDKs send.
//!
//! | purpose | direction | topic |
//! |---|---|---|
//! | telemetry | device → hub | `devices/{id}/messages/events/{bag}`, `devices/{id}/modules/{mid}/messages/events/{bag}` |
//! | cloud-to-device | hub → device | `devices/{id}/messages/devicebound/{bag}` (subscribe `devices/{id}/messages/devicebound/#`) |
//! | method request | hub → device | `$iothub/methods/POST/{name}/?$rid={rid}` (subscribe `$iothub/methods/POST/#`) |
//! | method response | device → hub | `$iothub/methods/res/{status}/?$rid={rid}` |
//! | twin request | device → hub | `$iothub/twin/GET/?$rid={rid}`, `$iothub/twin/PATCH/properties/reported/?$rid={rid}` |
//! | twin response | hub → device | `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]` (subscribe `$iothub/twin/res/#`) |
//! | desired change | hub → device | `$iothub/twin/PATCH/properties/desired/?$version={v}` (subscribe `$iothub/twin/PATCH/properties/desired/#`) |
//!
//! ```
//! use iothub_core::mqtt::{self, Topic};
//!
//! let bag = mqtt::encode_property_bag(&[("$.mid", "m 1"), ("temp", "21")]);
//! assert_eq!(bag, "%24.mid=m%201&temp=21");
//! let topic = mqtt::telemetry_topic("d1", None, &bag);
//! assert_eq!(
//!     Topic::parse(&topic),
//!     Some(Topic::Telemetry { device_id: "d1".into(), module_id: None, properties: bag.clone() })
//! );
//! assert_eq!(
//!     mqtt::decode_property_bag(&bag),
//!     vec![("$.mid".to_owned(), "m 1".to_owned()), ("temp".to_owned(), "21".to_owned())]
//! );
//! ```

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Message id (`$.mid`).
pub const PROP_MESSAGE_ID: &str = "$.mid";
/// Correlation id (`$.cid`).
pub const PROP_CORRELATION_ID: &str = "$.cid";
/// User id (`$.uid`).
pub const PROP_USER_ID: &str = "$.uid";
/// Destination (`$.to`).
pub const PROP_TO: &str = "$.to";
/// Absolute expiry time (`$.exp`).
pub const PROP_EXPIRY: &str = "$.exp";
/// Content type (`$.ct`).
pub const PROP_CONTENT_TYPE: &str = "$.ct";
/// Content encoding (`$.ce`).
pub const PROP_CONTENT_ENCODING: &str = "$.ce";
/// Output name of a module's message (`$.on`).
pub const PROP_OUTPUT_NAME: &str = "$.on";
/// Requested feedback of a cloud-to-device message (`iothub-ack`).
pub const PROP_ACK: &str = "iothub-ack";
/// Request id in twin and method topics (`$rid`).
pub const PARAM_REQUEST_ID: &str = "$rid";
/// Version in twin topics (`$version`).
pub const PARAM_VERSION: &str = "$version";

/// Subscription for method requests.
pub const METHODS_SUBSCRIPTION: &str = "$iothub/methods/POST/#";
/// Subscription for twin responses.
pub const TWIN_RESPONSES_SUBSCRIPTION: &str = "$iothub/twin/res/#";
/// Subscription for desired-property changes.
pub const DESIRED_SUBSCRIPTION: &str = "$iothub/twin/PATCH/properties/desired/#";

/// Characters left as they are in a property bag: letters, digits and `-._~` (RFC 3986's
/// unreserved set), so `$` is sent as `%24`, as IoT Hub sends it.
const BAG_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes `key=value` pairs joined by `&`, both sides percent-encoded.
pub fn encode_property_bag<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k.as_ref(), BAG_ESCAPE),
                utf8_percent_encode(v.as_ref(), BAG_ESCAPE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes a property bag: pairs split on `&`, keys and values percent-decoded (`+` is a
/// plus, not a space); a pair without `=` has an empty value; empty pairs are skipped; bytes
/// that do not decode to UTF-8 are replaced.
pub fn decode_property_bag(bag: &str) -> Vec<(String, String)> {
    bag.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// The telemetry topic of a device or module with an encoded property bag.
pub fn telemetry_topic(device_id: &str, module_id: Option<&str>, bag: &str) -> String {
    match module_id {
        Some(m) => format!("devices/{device_id}/modules/{m}/messages/events/{bag}"),
        None => format!("devices/{device_id}/messages/events/{bag}"),
    }
}

/// The subscription for a device's cloud-to-device messages.
pub fn c2d_subscription(device_id: &str) -> String {
    format!("devices/{device_id}/messages/devicebound/#")
}

/// The topic of a cloud-to-device message with an encoded property bag.
pub fn c2d_topic(device_id: &str, bag: &str) -> String {
    format!("devices/{device_id}/messages/devicebound/{bag}")
}

/// The topic of a method request.
pub fn method_request_topic(method: &str, request_id: &str) -> String {
    format!("$iothub/methods/POST/{method}/?$rid={request_id}")
}

/// The topic of a device's method response.
pub fn method_response_topic(status: i64, request_id: &str) -> String {
    format!("$iothub/methods/res/{status}/?$rid={request_id}")
}

/// The topic of a twin GET request.
pub fn twin_get_topic(request_id: &str) -> String {
    format!("$iothub/twin/GET/?$rid={request_id}")
}

/// The topic of a reported-properties update.
pub fn twin_reported_topic(request_id: &str) -> String {
    format!("$iothub/twin/PATCH/properties/reported/?$rid={request_id}")
}

/// The topic of a twin response; `version` is the reported version after an update.
pub fn twin_response_topic(status: u16, request_id: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("$iothub/twin/res/{status}/?$rid={request_id}&$version={v}"),
        None => format!("$iothub/twin/res/{status}/?$rid={request_id}"),
    }
}

/// The topic of a desired-property change.
pub fn desired_topic(version: u64) -> String {
    format!("$iothub/twin/PATCH/properties/desired/?$version={version}")
}

/// A topic of IoT Hub's MQTT surface, parsed. Ids and names are as they appear in the topic;
/// property bags are left encoded (see [`decode_property_bag`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Telemetry from a device or module.
    Telemetry {
        /// Device id.
        device_id: String,
        /// Module id.
        module_id: Option<String>,
        /// The encoded property bag (may be empty).
        properties: String,
    },
    /// A cloud-to-device message.
    CloudToDevice {
        /// Device id.
        device_id: String,
        /// The encoded property bag.
        properties: String,
    },
    /// A method request from the hub.
    MethodRequest {
        /// Method name.
        method: String,
        /// `$rid`.
        request_id: String,
    },
    /// A device's method response.
    MethodResponse {
        /// The status the device chose.
        status: i64,
        /// `$rid`.
        request_id: String,
    },
    /// A twin GET request.
    TwinGet {
        /// `$rid`.
        request_id: String,
    },
    /// A reported-properties update.
    TwinReported {
        /// `$rid`.
        request_id: String,
    },
    /// A twin response from the hub.
    TwinResponse {
        /// Status.
        status: u16,
        /// `$rid`.
        request_id: String,
        /// `$version`, when present.
        version: Option<u64>,
    },
    /// A desired-property change from the hub.
    DesiredPatch {
        /// `$version`.
        version: Option<u64>,
    },
}

/// The value of `name` in a `?a=b&c=d` query (the part after `?`, or the whole string).
fn param(query: &str, name: &str) -> Option<String> {
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    decode_property_bag(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

impl Topic {
    /// Parses a topic name, or `None` when it is not one of IoT Hub's.
    pub fn parse(topic: &str) -> Option<Topic> {
        if let Some(rest) = topic.strip_prefix("$iothub/") {
            return Self::parse_iothub(rest);
        }
        let rest = topic.strip_prefix("devices/")?;
        let (device_id, rest) = rest.split_once('/')?;
        if device_id.is_empty() {
            return None;
        }
        let device_id = device_id.to_owned();
        if let Some(bag) = rest.strip_prefix("messages/events") {
            return Some(Topic::Telemetry {
                device_id,
                module_id: None,
                properties: bag.trim_start_matches('/').to_owned(),
            });
        }
        if let Some(bag) = rest.strip_prefix("messages/devicebound") {
            return Some(Topic::CloudToDevice {
                device_id,
                properties: bag.trim_start_matches('/').to_owned(),
            });
        }
        let rest = rest.strip_prefix("modules/")?;
        let (module_id, rest) = rest.split_once('/')?;
        let bag = rest.strip_prefix("messages/events")?;
        if module_id.is_empty() {
            return None;
        }
        Some(Topic::Telemetry {
            device_id,
            module_id: Some(module_id.to_owned()),
            properties: bag.trim_start_matches('/').to_owned(),
        })
    }

    fn parse_iothub(rest: &str) -> Option<Topic> {
        if let Some(rest) = rest.strip_prefix("methods/POST/") {
            let (method, query) = rest.split_once('/')?;
            return Some(Topic::MethodRequest {
                method: method.to_owned(),
                request_id: param(query, PARAM_REQUEST_ID)?,
            });
        }
        if let Some(rest) = rest.strip_prefix("methods/res/") {
            let (status, query) = rest.split_once('/')?;
            return Some(Topic::MethodResponse {
                status: status.parse().ok()?,
                request_id: param(query, PARAM_REQUEST_ID)?,
            });
        }
        if let Some(query) = rest.strip_prefix("twin/GET/") {
            return Some(Topic::TwinGet {
                request_id: param(query, PARAM_REQUEST_ID)?,
            });
        }
        if let Some(query) = rest.strip_prefix("twin/PATCH/properties/reported/") {
            return Some(Topic::TwinReported {
                request_id: param(query, PARAM_REQUEST_ID)?,
            });
        }
        if let Some(query) = rest.strip_prefix("twin/PATCH/properties/desired/") {
            return Some(Topic::DesiredPatch {
                version: param(query, PARAM_VERSION).and_then(|v| v.parse().ok()),
            });
        }
        if let Some(rest) = rest.strip_prefix("twin/res/") {
            let (status, query) = rest.split_once('/')?;
            return Some(Topic::TwinResponse {
                status: status.parse().ok()?,
                request_id: param(query, PARAM_REQUEST_ID)?,
                version: param(query, PARAM_VERSION).and_then(|v| v.parse().ok()),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let cases = [
            (
                method_request_topic("reboot", "7"),
                Topic::MethodRequest {
                    method: "reboot".into(),
                    request_id: "7".into(),
                },
            ),
            (
                method_response_topic(-3, "7"),
                Topic::MethodResponse {
                    status: -3,
                    request_id: "7".into(),
                },
            ),
            (
                twin_get_topic("a1"),
                Topic::TwinGet {
                    request_id: "a1".into(),
                },
            ),
            (
                twin_reported_topic("a2"),
                Topic::TwinReported {
                    request_id: "a2".into(),
                },
            ),
            (
                twin_response_topic(204, "a2", Some(5)),
                Topic::TwinResponse {
                    status: 204,
                    request_id: "a2".into(),
                    version: Some(5),
                },
            ),
            (desired_topic(9), Topic::DesiredPatch { version: Some(9) }),
            (
                telemetry_topic("d", Some("m"), "a=b"),
                Topic::Telemetry {
                    device_id: "d".into(),
                    module_id: Some("m".into()),
                    properties: "a=b".into(),
                },
            ),
            (
                c2d_topic("d", "%24.mid=1"),
                Topic::CloudToDevice {
                    device_id: "d".into(),
                    properties: "%24.mid=1".into(),
                },
            ),
        ];
        for (text, topic) in cases {
            assert_eq!(Topic::parse(&text), Some(topic), "{text}");
        }
    }

    #[test]
    fn telemetry_topics_with_and_without_a_bag() {
        for text in ["devices/d/messages/events", "devices/d/messages/events/"] {
            assert_eq!(
                Topic::parse(text),
                Some(Topic::Telemetry {
                    device_id: "d".into(),
                    module_id: None,
                    properties: String::new()
                })
            );
        }
        assert_eq!(Topic::parse("devices//messages/events/"), None);
        assert_eq!(Topic::parse("devices/d/other"), None);
        assert_eq!(Topic::parse("#"), None);
        assert_eq!(Topic::parse("$iothub/twin/GET/"), None, "no $rid");
    }

    #[test]
    fn property_bags_accept_both_spellings_of_dollar() {
        assert_eq!(
            decode_property_bag("$.ct=application%2Fjson&%24.ce=utf-8&flag"),
            vec![
                ("$.ct".into(), "application/json".into()),
                ("$.ce".into(), "utf-8".into()),
                ("flag".into(), String::new())
            ]
        );
        let pairs = [("k&=", "v w+é")];
        assert_eq!(
            decode_property_bag(&encode_property_bag(&pairs)),
            vec![("k&=".to_owned(), "v w+é".to_owned())]
        );
    }
}
