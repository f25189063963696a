//! The message a service sends to a device: [`Message`] and the acknowledgement it asks for,
//! [`Ack`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message as AmqpMessage, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, OrderedMap, SimpleValue, Symbol, Timestamp};
use iothub_core::limits::{MAX_ID_LEN, is_valid_id};

/// The feedback a message asks for (`iothub-ack`): IoT Hub's vocabulary from `iothub-core`.
/// Feedback arrives on the feedback receiver ([`crate::C2dClient::feedback_receiver`]);
/// parsing a value that is not `none`, `positive`, `negative` or `full` gives
/// [`iothub_core::UnknownValue`].
pub use iothub_core::Ack;

/// A cloud-to-device message: a body of bytes plus IoT Hub's system properties and any
/// application properties.
///
/// - `message_id` defaults to a new UUID (as the official SDKs do), so feedback can be
///   matched to the message: read it back with [`Message::message_id`].
/// - The body travels as one AMQP data section; IoT Hub accepts at most 64 KB.
/// - Without [`with_expiry_time`](Message::with_expiry_time) the hub applies its default time to
///   live (one hour unless the hub is configured otherwise).
///
/// ```
/// use iothub_c2d::{Ack, Message};
/// let msg = Message::new(br#"{"cmd":"reboot"}"#.to_vec())
///     .with_content_type("application/json")
///     .with_content_encoding("utf-8")
///     .with_ack(Ack::Full)
///     .with_property("priority", "high");
/// assert_eq!(msg.message_id().len(), 36); // a UUID unless set
/// assert_eq!(msg.ack(), Ack::Full);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    body: Vec<u8>,
    message_id: String,
    correlation_id: Option<String>,
    user_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    expiry: Option<SystemTime>,
    ack: Ack,
    properties: BTreeMap<String, String>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("message_id", &self.message_id)
            .field("correlation_id", &self.correlation_id)
            .field("content_type", &self.content_type)
            .field("ack", &self.ack)
            .field("body_len", &self.body.len())
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Message {
    /// A message with `body` and a new UUID as its message id.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Message {
            body: body.into(),
            message_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: None,
            user_id: None,
            content_type: None,
            content_encoding: None,
            expiry: None,
            ack: Ack::None,
            properties: BTreeMap::new(),
        }
    }

    /// Sets the message id (AMQP `message-id`; default: a new UUID).
    #[must_use]
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = id.into();
        self
    }

    /// Sets the correlation id (AMQP `correlation-id`).
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the user id (AMQP `user-id`, sent as its UTF-8 bytes).
    #[must_use]
    pub fn with_user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Sets the content type (AMQP `content-type`), e.g. `application/json`.
    #[must_use]
    pub fn with_content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    /// Sets the content encoding (AMQP `content-encoding`), e.g. `utf-8`.
    #[must_use]
    pub fn with_content_encoding(mut self, value: impl Into<String>) -> Self {
        self.content_encoding = Some(value.into());
        self
    }

    /// Sets the absolute expiry time (AMQP `absolute-expiry-time`, millisecond precision).
    #[must_use]
    pub fn with_expiry_time(mut self, at: SystemTime) -> Self {
        self.expiry = Some(at);
        self
    }

    /// Sets the feedback the message asks for (application property `iothub-ack`; default
    /// [`Ack::None`], in which case the property is not sent).
    #[must_use]
    pub fn with_ack(mut self, ack: Ack) -> Self {
        self.ack = ack;
        self
    }

    /// Adds an application property (a string, as IoT Hub delivers them to devices).
    /// `iothub-ack` cannot be set here: use [`with_ack`](Self::with_ack).
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// The message id.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The content type, if set.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The absolute expiry time, if set.
    pub fn expiry_time(&self) -> Option<SystemTime> {
        self.expiry
    }

    /// The requested acknowledgement.
    pub fn ack(&self) -> Ack {
        self.ack
    }

    /// The application properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The AMQP message for `to` (`/devices/{id}/messages/devicebound`).
    pub(crate) fn to_amqp(&self, to: String) -> Result<AmqpMessage<Data>, crate::Error> {
        for (name, id) in [
            ("message id", Some(self.message_id.as_str())),
            ("correlation id", self.correlation_id.as_deref()),
        ] {
            if let Some(id) = id
                && !is_valid_id(id)
            {
                return Err(crate::Error::InvalidMessage(format!(
                    "the {name} must be 1 to {MAX_ID_LEN} ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ ' (IoT Hub's message format)"
                )));
            }
        }
        if self.properties.contains_key("iothub-ack") {
            return Err(crate::Error::InvalidMessage(
                "set the acknowledgement with Message::with_ack, not as the 'iothub-ack' property"
                    .into(),
            ));
        }
        let expiry = match self.expiry {
            Some(at) => {
                let ms = at
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| {
                        crate::Error::InvalidMessage("the expiry time is before 1970".into())
                    })?
                    .as_millis();
                Some(Timestamp::from_milliseconds(i64::try_from(ms).map_err(
                    |_| crate::Error::InvalidMessage("the expiry time is too far away".into()),
                )?))
            }
            None => None,
        };
        let properties = Properties {
            message_id: Some(MessageId::String(self.message_id.clone())),
            to: Some(to),
            correlation_id: self.correlation_id.clone().map(MessageId::String),
            user_id: self
                .user_id
                .as_ref()
                .map(|u| Binary::from(u.as_bytes().to_vec())),
            content_type: self.content_type.clone().map(Symbol::from),
            content_encoding: self.content_encoding.clone().map(Symbol::from),
            absolute_expiry_time: expiry,
            ..Default::default()
        };
        let mut app = OrderedMap::new();
        if self.ack != Ack::None {
            app.insert(
                "iothub-ack".to_owned(),
                SimpleValue::String(self.ack.as_str().to_owned()),
            );
        }
        for (k, v) in &self.properties {
            app.insert(k.clone(), SimpleValue::String(v.clone()));
        }
        let builder = AmqpMessage::builder().properties(properties);
        let builder = if app.is_empty() {
            builder
        } else {
            builder.application_properties(ApplicationProperties(app))
        };
        Ok(builder.data(Binary::from(self.body.clone())).build())
    }
}

/// `/devices/{id}/messages/devicebound` (or the module form), ids percent-encoded.
///
/// # Errors
/// [`crate::Error::InvalidMessage`] when an id breaks IoT Hub's id rule.
pub(crate) fn checked_devicebound_address(
    device_id: &str,
    module_id: Option<&str>,
) -> Result<String, crate::Error> {
    for (name, id) in [("device id", Some(device_id)), ("module id", module_id)] {
        if let Some(id) = id
            && !is_valid_id(id)
        {
            return Err(crate::Error::InvalidMessage(format!(
                "the {name} '{}' must be 1 to {MAX_ID_LEN} ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ ' (IoT Hub's identity rules)",
                id.escape_default()
            )));
        }
    }
    Ok(devicebound_address(device_id, module_id))
}

fn devicebound_address(device_id: &str, module_id: Option<&str>) -> String {
    let device = iothub_auth::sas::encode(device_id);
    match module_id {
        Some(module) => format!(
            "/devices/{device}/modules/{}/messages/devicebound",
            iothub_auth::sas::encode(module)
        ),
        None => format!("/devices/{device}/messages/devicebound"),
    }
}
