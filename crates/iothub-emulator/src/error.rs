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

/// The IoT Hub error codes the emulator can answer with.
///
/// Each code has the name IoT Hub puts in `iothub-errorcode` and in the `Message` text, and a
/// six-digit number whose first three digits are the HTTP status. Numbers are the ones IoT Hub
/// publishes; where IoT Hub publishes a name but no number (the `Generic*` and
/// `Configuration*` codes), the emulator uses the status followed by `000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400000: the request is malformed in a way no more specific code describes.
    GenericBadRequest,
    /// 400001: the `api-version` query parameter is missing or not supported.
    InvalidProtocolVersion,
    /// 400003: the operation is not valid in the current state.
    InvalidOperation,
    /// 400004: a value in the request is invalid.
    ArgumentInvalid,
    /// 400005: a required value is missing.
    ArgumentNull,
    /// 400006: the request body is not valid JSON or has the wrong shape.
    IotHubFormatError,
    /// 400011: the same device id appears twice in one bulk request.
    DeviceDefinedMultipleTimes,
    /// 400013: a bulk registry operation failed for some devices.
    BulkRegistryOperationFailure,
    /// 400028: a `deviceScope` or `parentScopes` entry is not the scope of an IoT Edge device
    /// that may be the parent.
    InvalidDeviceScope,
    /// 400301: a module cannot be registered under a module.
    CannotRegisterModuleToModule,
    /// 400000 (no published number): `policyKey` of a key regeneration is not one of
    /// primaryKey, secondaryKey, both.
    InvalidPolicyKey,
    /// 400000 (no published number): a configuration's target condition is not a valid query
    /// condition.
    InvalidConfigurationTargetCondition,
    /// 400000 (no published number): a configuration's custom metric query is not valid.
    InvalidConfigurationCustomMetricsQuery,
    /// 401002: the request has no valid credentials or lacks the rights for the operation.
    IotHubUnauthorizedAccess,
    /// 401100: the IoT Edge system modules (`$edgeAgent`, `$edgeHub`) are managed by the hub;
    /// their identities and desired properties cannot be changed through the registry API.
    SystemModuleModifyUnauthorizedAccess,
    /// 403004: the device's cloud-to-device queue already holds 50 messages.
    DeviceMaximumQueueDepthExceeded,
    /// 404000: the route does not exist.
    GenericNotFound,
    /// 404001: the device is not registered.
    DeviceNotFound,
    /// 404010: the module is not registered on the device.
    ModuleNotFound,
    /// 404103: the device is not connected, so a direct method cannot be invoked.
    DeviceNotOnline,
    /// 404000 (no published number): the configuration does not exist.
    ConfigurationNotFound,
    /// 405000: the route exists but not for this HTTP method.
    GenericMethodNotAllowed,
    /// 409001: a device with this id already exists.
    DeviceAlreadyExists,
    /// 409301: a module with this id already exists on the device.
    ModuleAlreadyExistsOnDevice,
    /// 409000 (no published number): a configuration with this id already exists.
    ConfigurationAlreadyExists,
    /// 412001: the `If-Match` ETag does not match the current one.
    PreconditionFailed,
    /// 413001: the request body is too large.
    MessageTooLarge,
    /// 413002: a bulk request holds more than 100 devices.
    TooManyDevices,
    /// 413000 (no published number): the hub already holds the maximum number of configurations.
    ConfigurationCountLimitExceeded,
    /// 429001: the request was throttled.
    ThrottlingException,
    /// 500001: the emulator failed internally.
    ServerError,
    /// 503001: the emulator is shutting down or otherwise unavailable.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The name IoT Hub uses for this code (the `iothub-errorcode` header value).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::GenericBadRequest => "GenericBadRequest",
            ErrorCode::InvalidProtocolVersion => "InvalidProtocolVersion",
            ErrorCode::InvalidOperation => "InvalidOperation",
            ErrorCode::ArgumentInvalid => "ArgumentInvalid",
            ErrorCode::ArgumentNull => "ArgumentNull",
            ErrorCode::IotHubFormatError => "IotHubFormatError",
            ErrorCode::DeviceDefinedMultipleTimes => "DeviceDefinedMultipleTimes",
            ErrorCode::BulkRegistryOperationFailure => "BulkRegistryOperationFailure",
            ErrorCode::InvalidDeviceScope => "InvalidDeviceScope",
            ErrorCode::CannotRegisterModuleToModule => "CannotRegisterModuleToModule",
            ErrorCode::InvalidPolicyKey => "InvalidPolicyKey",
            ErrorCode::InvalidConfigurationTargetCondition => "InvalidConfigurationTargetCondition",
            ErrorCode::InvalidConfigurationCustomMetricsQuery => {
                "InvalidConfigurationCustomMetricsQuery"
            }
            ErrorCode::IotHubUnauthorizedAccess => "IotHubUnauthorizedAccess",
            ErrorCode::SystemModuleModifyUnauthorizedAccess => {
                "SystemModuleModifyUnauthorizedAccess"
            }
            ErrorCode::DeviceMaximumQueueDepthExceeded => "DeviceMaximumQueueDepthExceeded",
            ErrorCode::GenericNotFound => "GenericNotFound",
            ErrorCode::DeviceNotFound => "DeviceNotFound",
            ErrorCode::ModuleNotFound => "ModuleNotFound",
            ErrorCode::DeviceNotOnline => "DeviceNotOnline",
            ErrorCode::ConfigurationNotFound => "ConfigurationNotFound",
            ErrorCode::GenericMethodNotAllowed => "GenericMethodNotAllowed",
            ErrorCode::DeviceAlreadyExists => "DeviceAlreadyExists",
            ErrorCode::ModuleAlreadyExistsOnDevice => "ModuleAlreadyExistsOnDevice",
            ErrorCode::ConfigurationAlreadyExists => "ConfigurationAlreadyExists",
            ErrorCode::PreconditionFailed => "PreconditionFailed",
            ErrorCode::MessageTooLarge => "MessageTooLarge",
            ErrorCode::TooManyDevices => "TooManyDevices",
            ErrorCode::ConfigurationCountLimitExceeded => "ConfigurationCountLimitExceeded",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::ServerError => "ServerError",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The six-digit numeric code (first three digits are the HTTP status).
    pub const fn code(self) -> u32 {
        match self {
            ErrorCode::GenericBadRequest => 400000,
            ErrorCode::InvalidProtocolVersion => 400001,
            ErrorCode::InvalidOperation => 400003,
            ErrorCode::ArgumentInvalid => 400004,
            ErrorCode::ArgumentNull => 400005,
            ErrorCode::IotHubFormatError => 400006,
            ErrorCode::DeviceDefinedMultipleTimes => 400011,
            ErrorCode::BulkRegistryOperationFailure => 400013,
            ErrorCode::InvalidDeviceScope => 400028,
            ErrorCode::CannotRegisterModuleToModule => 400301,
            ErrorCode::InvalidPolicyKey
            | ErrorCode::InvalidConfigurationTargetCondition
            | ErrorCode::InvalidConfigurationCustomMetricsQuery => 400000,
            ErrorCode::IotHubUnauthorizedAccess => 401002,
            ErrorCode::SystemModuleModifyUnauthorizedAccess => 401100,
            ErrorCode::DeviceMaximumQueueDepthExceeded => 403004,
            ErrorCode::GenericNotFound => 404000,
            ErrorCode::DeviceNotFound => 404001,
            ErrorCode::ModuleNotFound => 404010,
            ErrorCode::DeviceNotOnline => 404103,
            ErrorCode::ConfigurationNotFound => 404000,
            ErrorCode::GenericMethodNotAllowed => 405000,
            ErrorCode::DeviceAlreadyExists => 409001,
            ErrorCode::ModuleAlreadyExistsOnDevice => 409301,
            ErrorCode::ConfigurationAlreadyExists => 409000,
            ErrorCode::PreconditionFailed => 412001,
            ErrorCode::MessageTooLarge => 413001,
            ErrorCode::TooManyDevices => 413002,
            ErrorCode::ConfigurationCountLimitExceeded => 413000,
            ErrorCode::ThrottlingException => 429001,
            ErrorCode::ServerError => 500001,
            ErrorCode::ServiceUnavailable => 503001,
        }
    }

    /// The HTTP status this code is answered with (the first three digits of [`code`](Self::code)).
    pub const fn http_status(self) -> u16 {
        (self.code() / 1000) as u16
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
        let timeout = format!(
            "{:02}:{:02}:{:02}",
            connect_timeout_secs / 3600,
            (connect_timeout_secs / 60) % 60,
            connect_timeout_secs % 60
        );
        ApiError {
            code: ErrorCode::DeviceNotOnline,
            message: "The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103".to_owned(),
            retry_after: None,
            shape: Shape::Nested { info: serde_json::json!({ "timeout": timeout }) },
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
    pub fn code(&self) -> ErrorCode {
        self.code
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
                    "errorCode": self.code.code(),
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
        self.code
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(e.code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(ErrorCode::DeviceNotFound.http_status(), 404);
        assert_eq!(ErrorCode::TooManyDevices.http_status(), 413);
        assert_eq!(ErrorCode::ThrottlingException.http_status(), 429);
        assert_eq!(ErrorCode::IotHubUnauthorizedAccess.http_status(), 401);
        assert_eq!(ErrorCode::GenericMethodNotAllowed.http_status(), 405);
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
    fn nested_body_shape() {
        let body = ApiError::device_not_online(65).body();
        let inner: serde_json::Value =
            serde_json::from_str(body["Message"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(inner["errorCode"], 404103);
        assert_eq!(inner["info"]["timeout"], "00:01:05");
    }
}
