//! Errors: [`Error`], with IoT Hub's error code ([`ErrorCode`]) where the hub gave one.

use std::fmt;
use std::time::Duration;

use fe2o3_amqp::types::definitions::{self, AmqpError, ErrorCondition, LinkError};
use iothub_core::ErrorCode as Code;

/// An IoT Hub error code as the hub reports it: a name and, for the codes the hub
/// publishes, a six-digit number whose first three digits are the HTTP-style status.
///
/// Over AMQP the hub reports a rejection as an AMQP error condition with a description that
/// starts `ErrorCode:<Name>;`. The name is taken from there when present, and otherwise
/// from the condition (`amqp:not-found` → DeviceNotFound, `amqp:resource-limit-exceeded` →
/// DeviceMaximumQueueDepthExceeded, `amqp:link:message-size-exceeded` → MessageTooLarge,
/// `amqp:unauthorized-access` → IotHubUnauthorizedAccess, `com.microsoft:*throttl*` →
/// ThrottlingException), as the official service SDKs map them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    name: String,
}

impl ErrorCode {
    /// The code with this name.
    pub fn new(name: impl Into<String>) -> Self {
        ErrorCode { name: name.into() }
    }

    /// The code's name, e.g. `DeviceNotFound`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The six-digit number IoT Hub publishes for this code, if known.
    pub fn number(&self) -> Option<u32> {
        self.known().number()
    }

    /// The code in `iothub-core`'s table (`Unknown` for a name it does not list).
    fn known(&self) -> Code {
        Code::from_name(&self.name)
    }

    fn is(&self, code: &Code) -> bool {
        self.known() == *code
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "{} ({n})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The hub's answer when it refused a message or a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    /// IoT Hub's error code.
    pub code: ErrorCode,
    /// The AMQP error condition (e.g. `amqp:not-found`), or the HTTP status for REST calls.
    pub condition: String,
    /// The hub's description (never contains secrets).
    pub description: String,
    /// The hub's tracking id, to quote when asking for support.
    pub tracking_id: Option<String>,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)?;
        if let Some(id) = &self.tracking_id {
            write!(f, " (tracking id {id})")?;
        }
        Ok(())
    }
}

/// What can go wrong with cloud-to-device messaging.
///
/// Use the `is_*` checks rather than matching variants when the cause matters: they also
/// cover a code that arrives through a different variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid (nothing was sent).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The message cannot be sent as given (nothing was sent).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The credential could not produce a token.
    #[error("cannot produce a token for the hub")]
    Credential(#[source] iothub_auth::AuthError),
    /// No connection could be opened (after the retry policy's attempts).
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// Where the client tried to connect.
        endpoint: String,
        /// The last cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The hub refused the token put on `$cbs`.
    #[error("the hub refused the token (status {status}): {description}")]
    Unauthorized {
        /// The `status-code` of the put-token reply.
        status: i32,
        /// The `status-description` of the reply.
        description: String,
    },
    /// The hub rejected the message or request.
    #[error("the hub rejected the request: {0}")]
    Hub(HubError),
    /// The hub released or modified the message instead of accepting it; it was not
    /// enqueued.
    #[error("the hub did not accept the message ({0})")]
    NotAccepted(String),
    /// The connection failed after the message was handed to it and before the hub settled
    /// it: the message may or may not have been enqueued. It is not resent automatically.
    #[error(
        "the connection failed before the hub settled the message; it may or may not have been enqueued"
    )]
    OutcomeUnknown(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The operation did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection or link failed.
    #[error("the AMQP connection failed")]
    Amqp(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A REST call (queue purge) failed without an IoT Hub error body.
    #[error("the REST request failed")]
    Rest(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A feedback message could not be decoded.
    #[error("a feedback message could not be decoded")]
    Feedback(#[source] serde_json::Error),
}

impl Error {
    /// IoT Hub's error code, when the hub gave one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Hub(e) => Some(&e.code),
            _ => None,
        }
    }

    fn has_code(&self, code: &Code) -> bool {
        self.code().is_some_and(|c| c.is(code))
    }

    /// The device (or module) is not registered: DeviceNotFound (404001) or ModuleNotFound
    /// (404010).
    pub fn is_device_not_found(&self) -> bool {
        self.has_code(&Code::DeviceNotFound) || self.has_code(&Code::ModuleNotFound)
    }

    /// The device's queue is full: DeviceMaximumQueueDepthExceeded (403004). IoT Hub keeps
    /// at most 50 messages per device; purge, let messages expire, or wait for the device.
    pub fn is_queue_full(&self) -> bool {
        self.has_code(&Code::DeviceMaximumQueueDepthExceeded)
    }

    /// The message is over IoT Hub's 64 KB limit: MessageTooLarge (413001).
    pub fn is_message_too_large(&self) -> bool {
        self.has_code(&Code::MessageTooLarge)
    }

    /// The hub throttled the request (429xxx); retry later.
    pub fn is_throttled(&self) -> bool {
        self.code()
            .is_some_and(|c| c.known().status() == Some(429) || c.name().contains("Throttl"))
    }

    /// The token was refused, or the hub refused the operation for lack of rights.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Unauthorized { .. }) || self.has_code(&Code::IotHubUnauthorizedAccess)
    }

    /// The operation timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// Whether the message may have been enqueued although this error was returned.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown(_) | Error::Timeout(_))
    }

    /// Worth retrying: throttling, timeouts, connection failures and server errors.
    pub fn is_transient(&self) -> bool {
        self.is_throttled()
            || matches!(
                self,
                Error::Timeout(_)
                    | Error::Connect { .. }
                    | Error::Amqp(_)
                    | Error::OutcomeUnknown(_)
            )
            || self
                .code()
                .and_then(|c| c.known().status())
                .is_some_and(|status| status >= 500)
    }

    pub(crate) fn amqp(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Amqp(Box::new(e))
    }
}

/// Reads IoT Hub's error out of an AMQP error.
pub(crate) fn from_amqp_error(error: &definitions::Error) -> HubError {
    let condition = condition_text(&error.condition);
    let description = error.description.clone().unwrap_or_default();
    let (named, text) = match description
        .strip_prefix("ErrorCode:")
        .and_then(|rest| rest.split_once(';'))
    {
        Some((name, text)) if !name.is_empty() => (Some(name.to_owned()), text.to_owned()),
        _ => (None, description.clone()),
    };
    let name = named.unwrap_or_else(|| {
        let code = match &error.condition {
            ErrorCondition::AmqpError(AmqpError::NotFound) => Code::DeviceNotFound,
            ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded) => {
                Code::DeviceMaximumQueueDepthExceeded
            }
            ErrorCondition::LinkError(LinkError::MessageSizeExceeded) => Code::MessageTooLarge,
            ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess) => {
                Code::IotHubUnauthorizedAccess
            }
            ErrorCondition::AmqpError(AmqpError::InternalError) => Code::ServerError,
            ErrorCondition::Custom(s) if s.as_str().contains("throttl") => {
                Code::ThrottlingException
            }
            ErrorCondition::Custom(s) if s.as_str().contains("argument") => Code::ArgumentInvalid,
            _ => return "Unknown".to_owned(),
        };
        code.name().to_owned()
    });
    let tracking_id = error.info.as_ref().and_then(|info| {
        info.iter().find_map(|(k, v)| {
            (k.as_str() == "com.microsoft:tracking-id").then(|| match v {
                fe2o3_amqp::types::primitives::Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            })
        })
    });
    HubError {
        code: ErrorCode::new(name),
        condition,
        description: text,
        tracking_id,
    }
}

/// An AMQP error condition as its symbol (`amqp:not-found`, `amqp:link:stolen`, …).
pub fn condition_text(condition: &ErrorCondition) -> String {
    use fe2o3_amqp::types::primitives::Symbol;
    match condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e).to_string(),
        ErrorCondition::LinkError(e) => Symbol::from(e).to_string(),
        ErrorCondition::ConnectionError(e) => Symbol::from(e).to_string(),
        ErrorCondition::SessionError(e) => Symbol::from(e).to_string(),
        ErrorCondition::Custom(s) => s.to_string(),
        #[allow(unreachable_patterns)]
        _ => format!("{condition:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::primitives::Symbol;

    fn hub(name: &str) -> Error {
        Error::Hub(HubError {
            code: ErrorCode::new(name),
            condition: String::new(),
            description: String::new(),
            tracking_id: None,
        })
    }

    #[test]
    fn numbers_come_from_the_shared_table() {
        for (name, number) in [
            ("DeviceNotFound", Some(404001)),
            ("ModuleNotFound", Some(404010)),
            ("DeviceMaximumQueueDepthExceeded", Some(403004)),
            ("MessageTooLarge", Some(413001)),
            ("ThrottlingException", Some(429001)),
            ("ThrottleBacklogLimitExceeded", Some(429002)),
            ("IotHubUnauthorizedAccess", Some(401002)),
            ("ServerError", Some(500001)),
            ("Unknown", None),
            ("SomethingNew", None),
        ] {
            assert_eq!(ErrorCode::new(name).number(), number, "{name}");
        }
        assert_eq!(
            ErrorCode::new("DeviceNotFound").to_string(),
            "DeviceNotFound (404001)"
        );
        assert_eq!(ErrorCode::new("SomethingNew").to_string(), "SomethingNew");
    }

    #[test]
    fn checks_by_code() {
        assert!(hub("DeviceNotFound").is_device_not_found());
        assert!(hub("ModuleNotFound").is_device_not_found());
        assert!(!hub("DeviceNotOnline").is_device_not_found());
        assert!(hub("DeviceMaximumQueueDepthExceeded").is_queue_full());
        assert!(hub("MessageTooLarge").is_message_too_large());
        assert!(hub("IotHubUnauthorizedAccess").is_unauthorized());
        for throttled in [
            "ThrottlingException",
            "GenericTooManyRequests",
            "DeviceThrottlingLimitExceeded",
            "SomeNewThrottlingCode",
        ] {
            let e = hub(throttled);
            assert!(e.is_throttled(), "{throttled}");
            assert!(e.is_transient(), "{throttled}");
        }
        assert!(hub("ServerError").is_transient());
        assert!(hub("ServiceUnavailable").is_transient());
        assert!(!hub("DeviceNotFound").is_transient());
        assert!(!hub("Unknown").is_transient());
    }

    #[test]
    fn amqp_conditions_map_to_codes() {
        let from = |condition: ErrorCondition, description: Option<&str>| {
            from_amqp_error(&definitions::Error::new(
                condition,
                description.map(str::to_owned),
                None,
            ))
        };
        let e = from(ErrorCondition::AmqpError(AmqpError::NotFound), None);
        assert_eq!(e.code.name(), "DeviceNotFound");
        let e = from(
            ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded),
            None,
        );
        assert_eq!(e.code.number(), Some(403004));
        let e = from(
            ErrorCondition::LinkError(LinkError::MessageSizeExceeded),
            None,
        );
        assert_eq!(e.code.name(), "MessageTooLarge");
        let e = from(
            ErrorCondition::Custom(Symbol::from("com.microsoft:device-throttled")),
            None,
        );
        assert_eq!(e.code.number(), Some(429001));
        let e = from(ErrorCondition::AmqpError(AmqpError::NotAllowed), None);
        assert_eq!(e.code.name(), "Unknown");
        // The name in the description wins over the condition.
        let e = from(
            ErrorCondition::AmqpError(AmqpError::NotFound),
            Some("ErrorCode:ModuleNotFound;no such module"),
        );
        assert_eq!(e.code.name(), "ModuleNotFound");
        assert_eq!(e.description, "no such module");
    }
}
