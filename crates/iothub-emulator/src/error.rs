//! IoT Hub error codes and the HTTP error responses built from them.
//!
//! Every failed request is answered in the shape IoT Hub uses for its registry API:
//!
//! ```text
//! HTTP/1.1 404 Not Found
//! iothub-errorcode: DeviceNotFound
//! content-type: application/json; charset=utf-8
//!
//! {"Message":"ErrorCode:DeviceNotFound;Device 'dev1' is not registered on IoT hub 'emulator'.",
//!  "ExceptionMessage":"Tracking ID:5f1c...-G:0-TimeStamp:01/02/2024 03:04:05"}
//! ```
//!
//! The types here carry no HTTP or AMQP types: `routes` turns an [`ApiError`] into an HTTP
//! response (in one place, `routes/response.rs`) and the AMQP endpoint into a link or
//! disposition error. Domain code reports bad input with [`Invalid`] and the registry layer
//! with `RegistryError`; both map onto an [`ErrorCode`] here.

use chrono::Utc;

/// IoT Hub's error codes: the vocabulary shared with the clients (`iothub-core`), with
/// the names, numbers and statuses Microsoft publishes.
pub use iothub_core::ErrorCode;

/// The HTTP status `code` is answered with (500 for a code without a number, which the
/// emulator never produces).
pub fn http_status(code: &ErrorCode) -> u16 {
    code.status().unwrap_or(500)
}

/// How the error body is laid out.
#[derive(Debug, Clone)]
enum Shape {
    /// `{"Message":"ErrorCode:<Name>;<detail>","ExceptionMessage":"Tracking ID:..."}`.
    Standard,
    /// Direct-method failures: the `Message` string holds a nested JSON object
    /// `{"errorCode":404103,"trackingId":..,"message":..,"info":{..},"timestampUtc":..}`.
    Nested { info: serde_json::Value },
}

/// An error answered to a client, in IoT Hub's shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
    shape: Shape,
}

impl ApiError {
    /// An error with `code` and a human-readable `message` (never containing secrets).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            shape: Shape::Standard,
        }
    }

    /// 400 ArgumentInvalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ArgumentInvalid, message)
    }

    /// 400 IotHubFormatError (malformed body).
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::IotHubFormatError, message)
    }

    /// 401 IotHubUnauthorizedAccess.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::IotHubUnauthorizedAccess, message)
    }

    /// 404 DeviceNotOnline in the nested shape IoT Hub uses for direct methods.
    pub fn device_not_online(connect_timeout_secs: u64) -> Self {
        let timeout = hms(connect_timeout_secs);
        ApiError {
            code: ErrorCode::DeviceNotOnline,
            message: "The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103".to_owned(),
            retry_after: None,
            shape: Shape::Nested { info: serde_json::json!({ "timeout": timeout }) },
        }
    }

    /// 504 GatewayTimeout in the nested shape IoT Hub uses for direct methods: the device
    /// did not answer within `responseTimeoutInSeconds`.
    pub fn gateway_timeout(response_timeout_secs: u64) -> Self {
        ApiError {
            code: ErrorCode::GatewayTimeout,
            message: "Timed out waiting for the response from device. To learn more, see https://aka.ms/iothub504101".to_owned(),
            retry_after: None,
            shape: Shape::Nested { info: serde_json::json!({ "timeout": hms(response_timeout_secs) }) },
        }
    }

    /// 500 ServerError. The cause is logged here and never sent to the client.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error while handling a request");
        Self::new(
            ErrorCode::ServerError,
            "The emulator failed to process the request; see its log.",
        )
    }

    /// Adds a `Retry-After` header (seconds).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The error code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// Seconds for a `Retry-After` header, when the client should wait.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The JSON body IoT Hub would send for this error.
    pub fn body(&self) -> serde_json::Value {
        let now = Utc::now();
        let tracking_id = uuid::Uuid::new_v4().simple().to_string();
        let exception = format!(
            "Tracking ID:{tracking_id}-G:0-TimeStamp:{}",
            now.format("%m/%d/%Y %H:%M:%S")
        );
        match &self.shape {
            Shape::Standard => serde_json::json!({
                "Message": format!("ErrorCode:{};{}", self.code.name(), self.message),
                "ExceptionMessage": exception,
            }),
            Shape::Nested { info } => {
                let inner = serde_json::json!({
                    "errorCode": self.code.number(),
                    "trackingId": format!("{tracking_id}-G:0-TimeStamp:{}", now.format("%m/%d/%Y %H:%M:%S")),
                    "message": self.message,
                    "info": info,
                    "timestampUtc": crate::clock::format_time(now),
                });
                serde_json::json!({
                    "Message": inner.to_string(),
                    "ExceptionMessage": exception,
                })
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// A JSON decoding error as a message that shows no value from the input: serde quotes the
/// offending string (`invalid type: string "…", expected …`), which could be a key, so every
/// double-quoted part is replaced by `"…"`. Field and variant names (in backquotes) and the
/// position stay.
pub fn json_problem(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            } else {
                out.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// Bad input found by a domain rule (ids, keys, identities, twin documents): IoT Hub's code
/// (`ArgumentInvalid` or `IotHubFormatError`, sometimes a more specific one) and a message
/// naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    code: ErrorCode,
    message: String,
}

impl Invalid {
    /// 400 `ArgumentInvalid`: a value breaks a rule.
    pub fn argument(message: impl Into<String>) -> Self {
        Invalid {
            code: ErrorCode::ArgumentInvalid,
            message: message.into(),
        }
    }

    /// 400 `IotHubFormatError`: the document has the wrong shape.
    pub fn format(message: impl Into<String>) -> Self {
        Invalid {
            code: ErrorCode::IotHubFormatError,
            message: message.into(),
        }
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code.clone()
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(e.code, e.message)
    }
}

/// Seconds as IoT Hub's `hh:mm:ss` timeout text.
fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(http_status(&ErrorCode::DeviceNotFound), 404);
        assert_eq!(http_status(&ErrorCode::TooManyDevices), 413);
        assert_eq!(http_status(&ErrorCode::ThrottlingException), 429);
        assert_eq!(http_status(&ErrorCode::IotHubUnauthorizedAccess), 401);
        assert_eq!(http_status(&ErrorCode::GenericMethodNotAllowed), 405);
        assert_eq!(
            http_status(&ErrorCode::SystemModuleModifyUnauthorizedAccess),
            401
        );
        assert_eq!(http_status(&ErrorCode::InvalidDeviceScope), 400);
    }

    #[test]
    fn standard_body_shape() {
        let body = ApiError::new(ErrorCode::DeviceNotFound, "Device 'x' not found.").body();
        assert_eq!(
            body["Message"],
            "ErrorCode:DeviceNotFound;Device 'x' not found."
        );
        let exception = body["ExceptionMessage"].as_str().unwrap_or_default();
        let rest = exception.strip_prefix("Tracking ID:").unwrap_or_default();
        assert_eq!(rest.find("-G:0-TimeStamp:"), Some(32));
        assert!(rest[..32].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn json_problems_show_no_input_values() {
        let err = serde_json::from_str::<std::collections::BTreeMap<String, u8>>(
            r#"{"primaryKey": "SECRETKEY"}"#,
        )
        .err();
        let text = err.as_ref().map(json_problem).unwrap_or_default();
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert!(text.contains("invalid type: string \"…\""), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn nested_body_shape() {
        let body = ApiError::device_not_online(65).body();
        let inner: serde_json::Value =
            serde_json::from_str(body["Message"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(inner["errorCode"], 404103);
        assert_eq!(inner["info"]["timeout"], "00:01:05");
    }
}
