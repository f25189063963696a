//! IoT Hub's error codes.

use std::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, )*) => {
        /// An IoT Hub error code: its name and its six-digit number.
        ///
        /// The name is what IoT Hub sends in the `iothub-errorcode` header and in the
        /// `ErrorCode:<Name>;` prefix of an error message; the number is what it sends in
        /// `errorCode` fields (direct-method failures, bulk results) and in its logs. The
        /// first three digits of the number are the HTTP status of the answer, so
        /// DeviceNotFound, 404001, comes with `404 Not Found`.
        ///
        /// Names and numbers are those of Microsoft's "Troubleshoot Azure IoT Hub error
        /// codes" guide (learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes), and for
        /// the few codes that guide leaves out, of the `ErrorCode` enum of Microsoft's .NET
        /// service SDK. Every code here has its own number, so [`from_number`] and
        /// [`from_name`] are both one-to-one. A code this crate does not know is kept as
        /// [`Unknown`](ErrorCode::Unknown) with whatever was received.
        ///
        /// `Display` prints the name and the number: `DeviceNotFound (404001)`.
        ///
        /// [`from_number`]: ErrorCode::from_number
        /// [`from_name`]: ErrorCode::from_name
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
            /// A code this crate does not know, with whatever IoT Hub sent.
            Unknown {
                /// The name, if one was sent.
                name: Option<String>,
                /// The number, if one was sent.
                number: Option<u32>,
            },
        }

        impl ErrorCode {
            /// Every code this crate knows, in number order.
            pub const KNOWN: &'static [ErrorCode] = &[ $( ErrorCode::$name, )* ];

            /// The code's name, for example `DeviceNotFound` (`"Unknown"` for an unknown code
            /// that came without a name).
            pub fn name(&self) -> &str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                    ErrorCode::Unknown { name, .. } => name.as_deref().unwrap_or("Unknown"),
                }
            }

            /// The six-digit number, for example `404001` (for an unknown code, the number
            /// that was sent, if any).
            pub fn number(&self) -> Option<u32> {
                match self {
                    $( ErrorCode::$name => Some($num), )*
                    ErrorCode::Unknown { number, .. } => *number,
                }
            }

            /// The code with this name, ignoring ASCII case, or
            /// [`Unknown`](ErrorCode::Unknown) holding the name.
            pub fn from_name(name: &str) -> Self {
                $( if name.eq_ignore_ascii_case(stringify!($name)) { return ErrorCode::$name; } )*
                ErrorCode::Unknown { name: Some(name.to_owned()), number: None }
            }

            /// The code with this number, or [`Unknown`](ErrorCode::Unknown) holding the
            /// number.
            pub fn from_number(number: u32) -> Self {
                match number {
                    $( $num => ErrorCode::$name, )*
                    _ => ErrorCode::Unknown { name: None, number: Some(number) },
                }
            }
        }
    };
}

error_codes! {
    /// 400000: the request is invalid in a way no more specific code describes.
    GenericBadRequest = 400000,
    /// 400001: the `api-version` is missing or not supported.
    InvalidProtocolVersion = 400001,
    /// 400002: the service found an unexpected number of devices.
    DeviceInvalidResultCount = 400002,
    /// 400003: the operation is not valid in the current state.
    InvalidOperation = 400003,
    /// 400004: a value in the request is invalid.
    ArgumentInvalid = 400004,
    /// 400005: a required value is missing.
    ArgumentNull = 400005,
    /// 400006: the request body is not valid JSON or has the wrong shape.
    IotHubFormatError = 400006,
    /// 400008: an import/export job's blob container cannot be used with the access it
    /// was given (for example a SAS without write permission on the output container).
    BlobContainerValidationError = 400008,
    /// 400011: the same device appears more than once in a bulk request.
    DeviceDefinedMultipleTimes = 400011,
    /// 400012: the request body could not be deserialized.
    DeserializationError = 400012,
    /// 400013: a bulk registry operation failed for some of its entries.
    BulkRegistryOperationFailure = 400013,
    /// 400028: a `deviceScope` or `parentScopes` entry is not the scope of an IoT Edge device
    /// that can be the parent.
    InvalidDeviceScope = 400028,
    /// 400035: the `policyKey` of a key regeneration is not `primary`, `secondary` or
    /// `both`.
    InvalidPolicyKey = 400035,
    /// 400036: a bulk key regeneration failed for some of its identities.
    BulkRegenerateDeviceKeyOperationFailure = 400036,
    /// 400301: a module cannot be registered under a module.
    CannotRegisterModuleToModule = 400301,
    /// 400401: a configuration's target condition is not a valid condition.
    InvalidConfigurationTargetCondition = 400401,
    /// 400402: a configuration's content is not valid.
    InvalidConfigurationContent = 400402,
    /// 400403: a configuration's content cannot be changed once created.
    CannotModifyImmutableConfigurationContent = 400403,
    /// 400404: a configuration's custom metric query is not valid.
    InvalidConfigurationCustomMetricsQuery = 400404,
    /// 401000: the request is not authorized.
    GenericUnauthorized = 401000,
    /// 401001: the hub does not exist.
    IotHubNotFound = 401001,
    /// 401002: the credential is not valid or lacks the rights for the operation.
    IotHubUnauthorizedAccess = 401002,
    /// 401003: the authorization token could not be validated (expired, or not for this
    /// resource).
    IotHubUnauthorized = 401003,
    /// 401100: the operation would change an IoT Edge system module (`$edgeAgent`,
    /// `$edgeHub`) in a way only IoT Hub may, such as writing its twin directly; system
    /// modules are changed through deployments.
    SystemModuleModifyUnauthorizedAccess = 401100,
    /// 403000: the request is forbidden.
    GenericForbidden = 403000,
    /// 403001: the hub is suspended.
    IotHubSuspended = 403001,
    /// 403002: the hub's daily message quota is used up.
    IotHubQuotaExceeded = 403002,
    /// 403003: the hub's job quota is used up.
    JobQuotaExceeded = 403003,
    /// 403004: the device's cloud-to-device queue is full (50 messages, see
    /// [`limits::MAX_C2D_QUEUE_DEPTH`](crate::limits::MAX_C2D_QUEUE_DEPTH)).
    DeviceMaximumQueueDepthExceeded = 403004,
    /// 403005: too many CBS tokens on one AMQP connection.
    IotHubMaxCbsTokenExceeded = 403005,
    /// 403010: the operation is not available in the hub's tier (for example a twin or
    /// direct-method call on a basic-tier hub).
    OperationNotAvailableInCurrentTier = 403010,
    /// 404000: the resource or route does not exist.
    GenericNotFound = 404000,
    /// 404001: the device is not registered.
    DeviceNotFound = 404001,
    /// 404002: the job does not exist.
    JobNotFound = 404002,
    /// 404010: the module is not registered on the device.
    ModuleNotFound = 404010,
    /// 404103: the device (or module) is not connected, or has not subscribed to direct
    /// methods, so the method could not be invoked.
    DeviceNotOnline = 404103,
    /// 404301: the configuration does not exist.
    ConfigurationNotFound = 404301,
    /// 405000: the resource exists but not for this HTTP method.
    GenericMethodNotAllowed = 405000,
    /// 409000: the request conflicts with the current state.
    GenericConflict = 409000,
    /// 409001: a device with this id already exists.
    DeviceAlreadyExists = 409001,
    /// 409301: a module with this id already exists on the device.
    ModuleAlreadyExistsOnDevice = 409301,
    /// 409401: a configuration with this id already exists.
    ConfigurationAlreadyExists = 409401,
    /// 409402: configuration content is already being applied to the device.
    ApplyConfigurationAlreadyInProgressOnDevice = 409402,
    /// 412000: a precondition of the request failed.
    GenericPreconditionFailed = 412000,
    /// 412001: the `If-Match` ETag does not match the stored one.
    PreconditionFailed = 412001,
    /// 412002: the lock on a cloud-to-device message was lost (the device completed it
    /// after its lock expired).
    DeviceMessageLockLost = 412002,
    /// 413000: the request is too large.
    GenericRequestEntityTooLarge = 413000,
    /// 413001: the message or body is too large (a cloud-to-device message over 64 KB,
    /// see [`limits::MAX_C2D_MESSAGE_BYTES`](crate::limits::MAX_C2D_MESSAGE_BYTES)).
    MessageTooLarge = 413001,
    /// 413002: a bulk request holds more than 100 entries (see
    /// [`limits::MAX_BULK_DEVICES`](crate::limits::MAX_BULK_DEVICES)).
    TooManyDevices = 413002,
    /// 413003: the device already has the most modules it may have.
    TooManyModulesOnDevice = 413003,
    /// 413101: the hub already holds the most configurations it may hold (see
    /// [`limits::MAX_CONFIGURATIONS`](crate::limits::MAX_CONFIGURATIONS)).
    ConfigurationCountLimitExceeded = 413101,
    /// 429000: too many requests.
    GenericTooManyRequests = 429000,
    /// 429001: the request was throttled.
    ThrottlingException = 429001,
    /// 429002: the backlog of throttled requests is full.
    ThrottleBacklogLimitExceeded = 429002,
    /// 429003: the request waited too long in the backlog of throttled requests.
    ThrottlingBacklogTimeout = 429003,
    /// 429004: too many jobs are active.
    ThrottlingMaxActiveJobCountExceeded = 429004,
    /// 429005: the per-device throttling limit was reached.
    DeviceThrottlingLimitExceeded = 429005,
    /// 500001: IoT Hub failed internally.
    ServerError = 500001,
    /// 500002: the job was cancelled.
    JobCancelled = 500002,
    /// 503000: the service is unavailable.
    GenericServiceUnavailable = 503000,
    /// 503001: the service is unavailable; retry later.
    ServiceUnavailable = 503001,
    /// 503003: a partition of the hub could not be found.
    PartitionNotFound = 503003,
    /// 504101: IoT Hub could not confirm that a direct method finished before timing out.
    GatewayTimeout = 504101,
}

impl ErrorCode {
    /// The HTTP status IoT Hub answers this code with: the first three digits of the
    /// number (`404` for DeviceNotFound, 404001). `None` when the number is unknown.
    pub fn status(&self) -> Option<u16> {
        self.number()
            .map(|n| n / 1000)
            .and_then(|s| u16::try_from(s).ok())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "{} ({n})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_numbers_round_trip() {
        for code in ErrorCode::KNOWN {
            let number = code.number().expect("known codes have numbers");
            assert_eq!(&ErrorCode::from_number(number), code);
            assert_eq!(&ErrorCode::from_name(code.name()), code);
            assert_eq!(
                &ErrorCode::from_name(&code.name().to_ascii_uppercase()),
                code
            );
            assert_eq!(code.status(), Some((number / 1000) as u16));
            assert!((100_000..600_000).contains(&number), "{code}");
            assert_eq!(code.to_string(), format!("{} ({number})", code.name()));
        }
    }

    #[test]
    fn numbers_and_names_are_unique_and_sorted() {
        let numbers: Vec<u32> = ErrorCode::KNOWN
            .iter()
            .filter_map(ErrorCode::number)
            .collect();
        assert_eq!(numbers.len(), ErrorCode::KNOWN.len());
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        let names: HashSet<String> = ErrorCode::KNOWN
            .iter()
            .map(|c| c.name().to_ascii_lowercase())
            .collect();
        assert_eq!(names.len(), ErrorCode::KNOWN.len());
    }

    #[test]
    fn unknown_codes_keep_what_was_sent() {
        let by_name = ErrorCode::from_name("Teapot");
        assert_eq!(
            by_name,
            ErrorCode::Unknown {
                name: Some("Teapot".into()),
                number: None
            }
        );
        assert_eq!(by_name.name(), "Teapot");
        assert_eq!(by_name.number(), None);
        assert_eq!(by_name.status(), None);
        assert_eq!(by_name.to_string(), "Teapot");

        let by_number = ErrorCode::from_number(418123);
        assert_eq!(by_number.name(), "Unknown");
        assert_eq!(by_number.number(), Some(418123));
        assert_eq!(by_number.status(), Some(418));
        assert_eq!(by_number.to_string(), "Unknown (418123)");
    }

    #[test]
    fn well_known_codes() {
        for (code, number) in [
            (ErrorCode::DeviceNotFound, 404001),
            (ErrorCode::ModuleNotFound, 404010),
            (ErrorCode::DeviceNotOnline, 404103),
            (ErrorCode::DeviceMaximumQueueDepthExceeded, 403004),
            (ErrorCode::MessageTooLarge, 413001),
            (ErrorCode::TooManyDevices, 413002),
            (ErrorCode::ThrottlingException, 429001),
            (ErrorCode::PreconditionFailed, 412001),
            (ErrorCode::SystemModuleModifyUnauthorizedAccess, 401100),
        ] {
            assert_eq!(code.number(), Some(number), "{code}");
        }
        assert_eq!(ErrorCode::DeviceNotOnline.status(), Some(404));
        assert_eq!(
            ErrorCode::SystemModuleModifyUnauthorizedAccess.status(),
            Some(401)
        );
    }

    /// Every code the emulator answers with, with the status it answers it with.
    #[test]
    fn covers_the_emulator_codes() {
        for (name, status) in [
            ("GenericBadRequest", 400),
            ("InvalidProtocolVersion", 400),
            ("InvalidOperation", 400),
            ("ArgumentInvalid", 400),
            ("ArgumentNull", 400),
            ("IotHubFormatError", 400),
            ("DeviceDefinedMultipleTimes", 400),
            ("BulkRegistryOperationFailure", 400),
            ("CannotRegisterModuleToModule", 400),
            ("InvalidPolicyKey", 400),
            ("InvalidConfigurationTargetCondition", 400),
            ("InvalidConfigurationCustomMetricsQuery", 400),
            ("IotHubUnauthorizedAccess", 401),
            ("DeviceMaximumQueueDepthExceeded", 403),
            ("GenericNotFound", 404),
            ("DeviceNotFound", 404),
            ("ModuleNotFound", 404),
            ("DeviceNotOnline", 404),
            ("ConfigurationNotFound", 404),
            ("GenericMethodNotAllowed", 405),
            ("DeviceAlreadyExists", 409),
            ("ModuleAlreadyExistsOnDevice", 409),
            ("ConfigurationAlreadyExists", 409),
            ("PreconditionFailed", 412),
            ("MessageTooLarge", 413),
            ("TooManyDevices", 413),
            ("ConfigurationCountLimitExceeded", 413),
            ("ThrottlingException", 429),
            ("ServerError", 500),
            ("ServiceUnavailable", 503),
        ] {
            let code = ErrorCode::from_name(name);
            assert_eq!(code.name(), name, "{name} is not known");
            assert!(ErrorCode::KNOWN.contains(&code), "{name}");
            assert_eq!(code.status(), Some(status), "{name}");
        }
    }
}
