// generated — do not edit.
// Source: openapi/iothub.yaml (sha256 e518942acdb9fd1beda5b96113c0165b8dfd7d2748d56fd202c75310a1cb8633), progenitor 0.15.1.
// Regenerate with `cargo xtask codegen`; change the spec, never this file.

#[allow(unused_imports)]
pub use progenitor_client::{ByteStream, ClientInfo, Error, ResponseValue};
#[allow(unused_imports)]
use progenitor_client::{encode_path, ClientHooks, OperationInfo, RequestBuilderExt};
/// Types used as operation parameters and responses.
#[allow(clippy::all)]
pub mod types {
    ///Credentials an identity uses to connect.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct AuthenticationMechanism {
        #[serde(
            rename = "symmetricKey",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub symmetric_key: ::std::option::Option<crate::SymmetricKey>,
        #[serde(rename = "type", skip_serializing_if = "::std::option::Option::is_none")]
        pub type_: ::std::option::Option<AuthenticationType>,
        #[serde(
            rename = "x509Thumbprint",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub x509_thumbprint: ::std::option::Option<X509Thumbprint>,
    }
    ///How an identity proves who it is when it connects.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum AuthenticationType {
        #[serde(rename = "sas")]
        Sas,
        #[serde(rename = "selfSigned")]
        SelfSigned,
        #[serde(rename = "certificateAuthority")]
        CertificateAuthority,
        #[serde(rename = "none")]
        None,
    }
    impl ::std::fmt::Display for AuthenticationType {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Sas => f.write_str("sas"),
                Self::SelfSigned => f.write_str("selfSigned"),
                Self::CertificateAuthority => f.write_str("certificateAuthority"),
                Self::None => f.write_str("none"),
            }
        }
    }
    impl ::std::str::FromStr for AuthenticationType {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "sas" => Ok(Self::Sas),
                "selfSigned" => Ok(Self::SelfSigned),
                "certificateAuthority" => Ok(Self::CertificateAuthority),
                "none" => Ok(Self::None),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for AuthenticationType {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for AuthenticationType {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///Body of a bulk key regeneration request.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct BulkRegenerateDeviceKey {
        ///The identities whose keys are regenerated.
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub devices: ::std::vec::Vec<RegenerateDeviceKey>,
        #[serde(
            rename = "policyKey",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub policy_key: ::std::option::Option<RegenerateKeyPolicy>,
    }
    ///Result of a bulk key regeneration, the same for 200, 207 and 400.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct BulkRegenerateKeyResult {
        ///One entry for each identity that did not get new keys.
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub errors: ::std::vec::Vec<RegenerateDeviceKeyError>,
        ///Which key was regenerated. Known values: primaryKey, secondaryKey, both, Unknown. Kept open (no enum).
        #[serde(
            rename = "policyKey",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub policy_key: ::std::option::Option<::std::string::String>,
        ///Identities that got new keys, with the keys.
        #[serde(
            rename = "rotatedKeys",
            default,
            skip_serializing_if = "::std::vec::Vec::is_empty"
        )]
        pub rotated_keys: ::std::vec::Vec<crate::RegenerateKeyResult>,
    }
    ///Outcome of a bulk registry request.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct BulkRegistryOperationResult {
        ///One element per failed entry.
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub errors: ::std::vec::Vec<DeviceRegistryOperationError>,
        ///True when every entry succeeded.
        #[serde(
            rename = "isSuccessful",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub is_successful: ::std::option::Option<bool>,
        ///One element per entry that raised a warning.
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub warnings: ::std::vec::Vec<DeviceRegistryOperationWarning>,
    }
    ///A direct method call.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, PartialEq)]
    pub struct CloudToDeviceMethod {
        ///Seconds to wait for an offline device to connect (0 to 300).
        #[serde(
            rename = "connectTimeoutInSeconds",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connect_timeout_in_seconds: ::std::option::Option<i32>,
        ///Name of the method the device or module registered (not empty, not only white space).
        #[serde(rename = "methodName")]
        pub method_name: ::std::string::String,
        ///Argument passed to the method: any JSON value (object, array, string, number, boolean or null), up to 128 KB.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub payload: ::std::option::Option<::serde_json::Value>,
        ///Seconds to wait for the method's answer once delivered (5 to 300).
        #[serde(
            rename = "responseTimeoutInSeconds",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub response_timeout_in_seconds: ::std::option::Option<i32>,
    }
    ///Answer of a direct method.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct CloudToDeviceMethodResult {
        ///Value returned by the method; any JSON value.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub payload: ::std::option::Option<::serde_json::Value>,
        ///Status code chosen by the device or module code.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status: ::std::option::Option<i32>,
    }
    ///An automatic device, module or edge configuration.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct Configuration {
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub content: ::std::option::Option<ConfigurationContent>,
        ///When the configuration was created (ISO 8601).
        #[serde(
            rename = "createdTimeUtc",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub created_time_utc: ::std::option::Option<::std::string::String>,
        ///ETag of the configuration, used with If-Match.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub etag: ::std::option::Option<::std::string::String>,
        ///Configuration id.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub id: ::std::option::Option<::std::string::String>,
        ///Free-form string labels.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub labels: ::std::option::Option<
            ::std::collections::HashMap<::std::string::String, ::std::string::String>,
        >,
        ///When the configuration was last changed (ISO 8601).
        #[serde(
            rename = "lastUpdatedTimeUtc",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub last_updated_time_utc: ::std::option::Option<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub metrics: ::std::option::Option<ConfigurationMetrics>,
        ///Higher wins when several configurations target the same twin; a non-negative integer.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub priority: ::std::option::Option<i32>,
        ///Schema version of the configuration document.
        #[serde(
            rename = "schemaVersion",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub schema_version: ::std::option::Option<::std::string::String>,
        #[serde(
            rename = "systemMetrics",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub system_metrics: ::std::option::Option<ConfigurationMetrics>,
        ///Query over twin tags or reported properties that picks the targets.
        #[serde(
            rename = "targetCondition",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub target_condition: ::std::option::Option<::std::string::String>,
    }
    ///What a configuration applies: desired properties for device twins, for module twins, or an IoT Edge deployment (modulesContent).
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ConfigurationContent {
        ///Device twin paths and values to apply (arbitrary JSON).
        #[serde(
            rename = "deviceContent",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_content: ::std::option::Option<
            ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        >,
        ///Module twin paths and values to apply (arbitrary JSON).
        #[serde(
            rename = "moduleContent",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_content: ::std::option::Option<
            ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        >,
        ///IoT Edge deployment, keyed by module name; each value is an arbitrary JSON object.
        #[serde(
            rename = "modulesContent",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub modules_content: ::std::option::Option<
            ::std::collections::HashMap<
                ::std::string::String,
                ::serde_json::Map<::std::string::String, ::serde_json::Value>,
            >,
        >,
    }
    ///Named metric queries and their latest counts.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ConfigurationMetrics {
        ///Query text for each metric name.
        #[serde(
            default,
            skip_serializing_if = ":: std :: collections :: HashMap::is_empty"
        )]
        pub queries: ::std::collections::HashMap<
            ::std::string::String,
            ::std::string::String,
        >,
        ///Latest count for each metric name.
        #[serde(
            default,
            skip_serializing_if = ":: std :: collections :: HashMap::is_empty"
        )]
        pub results: ::std::collections::HashMap<::std::string::String, i64>,
    }
    ///Queries to check before saving a configuration.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ConfigurationQueriesTestInput {
        ///Metric queries to check, keyed by metric name.
        #[serde(
            rename = "customMetricQueries",
            default,
            skip_serializing_if = ":: std :: collections :: HashMap::is_empty"
        )]
        pub custom_metric_queries: ::std::collections::HashMap<
            ::std::string::String,
            ::std::string::String,
        >,
        ///Target condition to check.
        #[serde(
            rename = "targetCondition",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub target_condition: ::std::option::Option<::std::string::String>,
    }
    ///Problems found by a query check; empty when all is well.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ConfigurationQueriesTestResponse {
        ///Error for each failing metric query, keyed by metric name.
        #[serde(
            rename = "customMetricQueryErrors",
            default,
            skip_serializing_if = ":: std :: collections :: HashMap::is_empty"
        )]
        pub custom_metric_query_errors: ::std::collections::HashMap<
            ::std::string::String,
            ::std::string::String,
        >,
        ///Error in the target condition, if any.
        #[serde(
            rename = "targetConditionError",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub target_condition_error: ::std::option::Option<::std::string::String>,
    }
    ///A device identity in the registry.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct Device {
        ///Key/value pairs kept by the solution back end and not visible to devices (new in 2024-03-31). Values are strings, booleans, integers or arrays.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub attributes: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub authentication: ::std::option::Option<AuthenticationMechanism>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub capabilities: ::std::option::Option<DeviceCapabilities>,
        ///Cloud-to-device messages waiting in the device's queue. Read-only; ignored in requests.
        #[serde(
            rename = "cloudToDeviceMessageCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub cloud_to_device_message_count: ::std::option::Option<i32>,
        ///Connection state as last seen by the service. Known values: Connected, Disconnected. Kept open (no enum) so a new value does not break decoding.
        #[serde(
            rename = "connectionState",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connection_state: ::std::option::Option<::std::string::String>,
        ///When connectionState last changed. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "connectionStateUpdatedTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connection_state_updated_time: ::std::option::Option<::std::string::String>,
        ///Case-sensitive device id.
        #[serde(
            rename = "deviceId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_id: ::std::option::Option<::std::string::String>,
        ///Scope of the device. Generated for edge devices; set on leaf devices to name their parent edge device.
        #[serde(
            rename = "deviceScope",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_scope: ::std::option::Option<::std::string::String>,
        ///Weak ETag of the identity, used with If-Match.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub etag: ::std::option::Option<::std::string::String>,
        ///Service-assigned value that tells apart identities that reused the same id after a delete.
        #[serde(
            rename = "generationId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub generation_id: ::std::option::Option<::std::string::String>,
        ///When the device last connected or exchanged a message. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "lastActivityTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub last_activity_time: ::std::option::Option<::std::string::String>,
        ///Scopes of the parent edge devices, if any.
        #[serde(
            rename = "parentScopes",
            default,
            skip_serializing_if = "::std::vec::Vec::is_empty"
        )]
        pub parent_scopes: ::std::vec::Vec<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status: ::std::option::Option<DeviceStatus>,
        ///Free text (up to 128 characters) explaining the status.
        #[serde(
            rename = "statusReason",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub status_reason: ::std::option::Option<::std::string::String>,
        ///When status last changed. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "statusUpdatedTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub status_updated_time: ::std::option::Option<::std::string::String>,
    }
    ///Optional features switched on for a device.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct DeviceCapabilities {
        ///True for an IoT Edge device.
        #[serde(
            rename = "iotEdge",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub iot_edge: ::std::option::Option<bool>,
    }
    ///Per-device progress of a scheduled job.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct DeviceJobStatistics {
        ///Devices the job targets.
        #[serde(
            rename = "deviceCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_count: ::std::option::Option<i32>,
        ///Devices on which the job failed.
        #[serde(
            rename = "failedCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub failed_count: ::std::option::Option<i32>,
        ///Devices the job has not reached yet.
        #[serde(
            rename = "pendingCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub pending_count: ::std::option::Option<i32>,
        ///Devices on which the job is running.
        #[serde(
            rename = "runningCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub running_count: ::std::option::Option<i32>,
        ///Devices on which the job succeeded.
        #[serde(
            rename = "succeededCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub succeeded_count: ::std::option::Option<i32>,
    }
    ///Why one entry of a bulk request failed.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct DeviceRegistryOperationError {
        ///Device id of the failed entry.
        #[serde(
            rename = "deviceId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_id: ::std::option::Option<::std::string::String>,
        ///Symbolic error name, for example DeviceAlreadyExists. The set is large and grows, so it is kept open (no enum).
        #[serde(
            rename = "errorCode",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub error_code: ::std::option::Option<::std::string::String>,
        ///Human-readable error text.
        #[serde(
            rename = "errorStatus",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub error_status: ::std::option::Option<::std::string::String>,
        ///Module id of the failed entry, if any.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
        ///The operation that failed; null when the entry could not be read far enough to know it.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub operation: ::std::option::Option<::std::string::String>,
    }
    ///A warning raised for one entry of a bulk request.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct DeviceRegistryOperationWarning {
        ///Device id of the entry.
        #[serde(
            rename = "deviceId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_id: ::std::option::Option<::std::string::String>,
        ///Symbolic warning name, for example DeviceRegisteredWithoutTwin. Kept open (no enum).
        #[serde(
            rename = "warningCode",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub warning_code: ::std::option::Option<::std::string::String>,
        ///Human-readable warning text.
        #[serde(
            rename = "warningStatus",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub warning_status: ::std::option::Option<::std::string::String>,
    }
    ///Whether an identity may connect. A disabled identity is refused.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum DeviceStatus {
        #[serde(rename = "enabled")]
        Enabled,
        #[serde(rename = "disabled")]
        Disabled,
    }
    impl ::std::fmt::Display for DeviceStatus {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Enabled => f.write_str("enabled"),
                Self::Disabled => f.write_str("disabled"),
            }
        }
    }
    impl ::std::str::FromStr for DeviceStatus {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "enabled" => Ok(Self::Enabled),
                "disabled" => Ok(Self::Disabled),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for DeviceStatus {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for DeviceStatus {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///IoT Hub's error body. Registry and twin calls send Message (shaped `ErrorCode:<Name>;<detail>`) and ExceptionMessage (holding the tracking id and time). Some calls instead send the fields errorCode, trackingId, timestampUtc and info; their lower-case "message" field is not declared because it would clash with "Message" in generated Rust code (see SOURCE.md). Every field is optional.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ErrorDetails {
        ///Numeric error code whose first three digits are the HTTP status, for example 404103. Sent as a number; declared as any JSON value so a string form still decodes.
        #[serde(
            rename = "errorCode",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub error_code: ::std::option::Option<::serde_json::Value>,
        ///Diagnostic text, usually `Tracking ID:<id>-G:<n>-TimeStamp:<time>`.
        #[serde(
            rename = "ExceptionMessage",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub exception_message: ::std::option::Option<::std::string::String>,
        ///Extra key/value details, if any.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub info: ::std::option::Option<
            ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        >,
        ///Error text, usually `ErrorCode:<Name>;<detail>`; may itself hold a JSON error document.
        #[serde(
            rename = "Message",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub message: ::std::option::Option<::std::string::String>,
        ///When the error happened, as sent by the service (not parsed).
        #[serde(
            rename = "timestampUtc",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub timestamp_utc: ::std::option::Option<::std::string::String>,
        ///Id to quote to support.
        #[serde(
            rename = "trackingId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub tracking_id: ::std::option::Option<::std::string::String>,
    }
    ///One entry of a bulk registry request.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ExportImportDevice {
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub authentication: ::std::option::Option<AuthenticationMechanism>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub capabilities: ::std::option::Option<DeviceCapabilities>,
        ///Scope of the device.
        #[serde(
            rename = "deviceScope",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_scope: ::std::option::Option<::std::string::String>,
        ///Identity ETag checked by the *IfMatchETag identity modes.
        #[serde(rename = "eTag", skip_serializing_if = "::std::option::Option::is_none")]
        pub e_tag: ::std::option::Option<::std::string::String>,
        ///Device id.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub id: ::std::option::Option<::std::string::String>,
        #[serde(
            rename = "importMode",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub import_mode: ::std::option::Option<ImportMode>,
        ///Module id, when the entry targets a module.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
        ///Scopes of the parent edge devices, if any.
        #[serde(
            rename = "parentScopes",
            default,
            skip_serializing_if = "::std::vec::Vec::is_empty"
        )]
        pub parent_scopes: ::std::vec::Vec<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub properties: ::std::option::Option<TwinProperties>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status: ::std::option::Option<DeviceStatus>,
        ///Free text (up to 128 characters) explaining the status.
        #[serde(
            rename = "statusReason",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub status_reason: ::std::option::Option<::std::string::String>,
        ///Twin tags to set, an arbitrary JSON object.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub tags: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        ///Twin ETag checked by updateTwinIfMatchETag.
        #[serde(
            rename = "twinETag",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub twin_e_tag: ::std::option::Option<::std::string::String>,
    }
    ///What a bulk registry entry does and whether it is conditional on an ETag. The *IfMatchETag modes compare eTag (identity) or twinETag (twin) with the stored value.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum ImportMode {
        #[serde(rename = "create")]
        Create,
        #[serde(rename = "update")]
        Update,
        #[serde(rename = "updateIfMatchETag")]
        UpdateIfMatchETag,
        #[serde(rename = "delete")]
        Delete,
        #[serde(rename = "deleteIfMatchETag")]
        DeleteIfMatchETag,
        #[serde(rename = "createOrUpdate")]
        CreateOrUpdate,
        #[serde(rename = "createOrUpdateIfMatchETag")]
        CreateOrUpdateIfMatchETag,
        #[serde(rename = "updateTwin")]
        UpdateTwin,
        #[serde(rename = "updateTwinIfMatchETag")]
        UpdateTwinIfMatchETag,
    }
    impl ::std::fmt::Display for ImportMode {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Create => f.write_str("create"),
                Self::Update => f.write_str("update"),
                Self::UpdateIfMatchETag => f.write_str("updateIfMatchETag"),
                Self::Delete => f.write_str("delete"),
                Self::DeleteIfMatchETag => f.write_str("deleteIfMatchETag"),
                Self::CreateOrUpdate => f.write_str("createOrUpdate"),
                Self::CreateOrUpdateIfMatchETag => {
                    f.write_str("createOrUpdateIfMatchETag")
                }
                Self::UpdateTwin => f.write_str("updateTwin"),
                Self::UpdateTwinIfMatchETag => f.write_str("updateTwinIfMatchETag"),
            }
        }
    }
    impl ::std::str::FromStr for ImportMode {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "create" => Ok(Self::Create),
                "update" => Ok(Self::Update),
                "updateIfMatchETag" => Ok(Self::UpdateIfMatchETag),
                "delete" => Ok(Self::Delete),
                "deleteIfMatchETag" => Ok(Self::DeleteIfMatchETag),
                "createOrUpdate" => Ok(Self::CreateOrUpdate),
                "createOrUpdateIfMatchETag" => Ok(Self::CreateOrUpdateIfMatchETag),
                "updateTwin" => Ok(Self::UpdateTwin),
                "updateTwinIfMatchETag" => Ok(Self::UpdateTwinIfMatchETag),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for ImportMode {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ImportMode {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///An import or export job. jobId, status, progress, startTimeUtc, endTimeUtc and failureReason are set by the service and ignored in a create request.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct JobProperties {
        ///Blob holding the configurations (configurations.txt when not set).
        #[serde(
            rename = "configurationsBlobName",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub configurations_blob_name: ::std::option::Option<::std::string::String>,
        ///When the job ended (ISO 8601).
        #[serde(
            rename = "endTimeUtc",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub end_time_utc: ::std::option::Option<::std::string::String>,
        ///Export only: true exports keys as null; false (the default) exports them.
        #[serde(
            rename = "excludeKeysInExport",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub exclude_keys_in_export: ::std::option::Option<bool>,
        ///Why the job failed, when it did.
        #[serde(
            rename = "failureReason",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub failure_reason: ::std::option::Option<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub identity: ::std::option::Option<ManagedIdentity>,
        ///True to export or import configurations as well (default false).
        #[serde(
            rename = "includeConfigurations",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub include_configurations: ::std::option::Option<bool>,
        #[serde(
            rename = "inputBlobContainerUri",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub input_blob_container_uri: ::std::option::Option<crate::BlobContainerUri>,
        ///Blob to import from (devices.txt when not set).
        #[serde(
            rename = "inputBlobName",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub input_blob_name: ::std::option::Option<::std::string::String>,
        ///Job id, assigned by the service.
        #[serde(
            rename = "jobId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub job_id: ::std::option::Option<::std::string::String>,
        #[serde(
            rename = "outputBlobContainerUri",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub output_blob_container_uri: ::std::option::Option<crate::BlobContainerUri>,
        ///Blob an export writes the identities to (devices.txt when not set); an import writes its errors to importErrors.log in the same container.
        #[serde(
            rename = "outputBlobName",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub output_blob_name: ::std::option::Option<::std::string::String>,
        ///Percentage of the job done, 0 to 100.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub progress: ::std::option::Option<i32>,
        ///When the job started (ISO 8601).
        #[serde(
            rename = "startTimeUtc",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub start_time_utc: ::std::option::Option<::std::string::String>,
        ///Job status. Known values: unknown, enqueued, running, completed, failed, cancelled, scheduled, queued. Kept open (no enum).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status: ::std::option::Option<::std::string::String>,
        ///How the hub reaches the storage account. Known values: keyBased (the SAS in the URIs, the default) and identityBased (the hub's managed identity). Kept open (no enum).
        #[serde(
            rename = "storageAuthenticationType",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub storage_authentication_type: ::std::option::Option<::std::string::String>,
        ///Kind of job: export or import (the service also knows unknown, backup, readDeviceProperties, writeDeviceProperties, updateDeviceConfiguration, rebootDevice, factoryResetDevice, firmwareUpdate, scheduleDeviceMethod, scheduleUpdateTwin, restoreFromBackup and failoverDataCopy). Kept open (no enum).
        #[serde(rename = "type", skip_serializing_if = "::std::option::Option::is_none")]
        pub type_: ::std::option::Option<::std::string::String>,
    }
    ///A page of scheduled jobs: an array of jobs (what the Node, .NET and Azure CLI clients read), or the object form of JobQueryResult (what the Python client reads).
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, PartialEq)]
    #[serde(untagged)]
    pub enum JobQueryPage {
        Array(::std::vec::Vec<JobResponse>),
        JobQueryResult(JobQueryResult),
    }
    impl ::std::convert::From<::std::vec::Vec<JobResponse>> for JobQueryPage {
        fn from(value: ::std::vec::Vec<JobResponse>) -> Self {
            Self::Array(value)
        }
    }
    impl ::std::convert::From<JobQueryResult> for JobQueryPage {
        fn from(value: JobQueryResult) -> Self {
            Self::JobQueryResult(value)
        }
    }
    ///A page of scheduled jobs in the object form the Python client expects; the token for the next page may also be in the x-ms-continuation header.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct JobQueryResult {
        ///Token for the next page; absent on the last page.
        #[serde(
            rename = "continuationToken",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub continuation_token: ::std::option::Option<::std::string::String>,
        ///The jobs of this page.
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub items: ::std::vec::Vec<JobResponse>,
        ///Kind of items (jobResponse). Kept open (no enum).
        #[serde(rename = "type", skip_serializing_if = "::std::option::Option::is_none")]
        pub type_: ::std::option::Option<::std::string::String>,
    }
    ///A scheduled job to create: a twin update (updateTwin) or a direct method (cloudToDeviceMethod) on the devices queryCondition selects.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct JobRequest {
        #[serde(
            rename = "cloudToDeviceMethod",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub cloud_to_device_method: ::std::option::Option<CloudToDeviceMethod>,
        ///Job id, the same as in the path.
        #[serde(
            rename = "jobId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub job_id: ::std::option::Option<::std::string::String>,
        ///How long the job may run before the service stops it, in seconds.
        #[serde(
            rename = "maxExecutionTimeInSeconds",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub max_execution_time_in_seconds: ::std::option::Option<i64>,
        ///WHERE clause of a twin query selecting the devices, for example deviceId IN ['d1', 'd2'] or tags.site = 'b4'.
        #[serde(
            rename = "queryCondition",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub query_condition: ::std::option::Option<::std::string::String>,
        ///When the job starts (ISO 8601, UTC).
        #[serde(
            rename = "startTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub start_time: ::std::option::Option<::std::string::String>,
        #[serde(rename = "type", skip_serializing_if = "::std::option::Option::is_none")]
        pub type_: ::std::option::Option<ScheduledJobType>,
        #[serde(
            rename = "updateTwin",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub update_twin: ::std::option::Option<Twin>,
    }
    ///A scheduled job and its progress.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct JobResponse {
        #[serde(
            rename = "cloudToDeviceMethod",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub cloud_to_device_method: ::std::option::Option<CloudToDeviceMethod>,
        ///When the job was created (ISO 8601).
        #[serde(
            rename = "createdTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub created_time: ::std::option::Option<::std::string::String>,
        #[serde(
            rename = "deviceJobStatistics",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_job_statistics: ::std::option::Option<DeviceJobStatistics>,
        ///When the job ended (ISO 8601).
        #[serde(
            rename = "endTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub end_time: ::std::option::Option<::std::string::String>,
        ///Why the job failed, when it did.
        #[serde(
            rename = "failureReason",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub failure_reason: ::std::option::Option<::std::string::String>,
        ///Job id.
        #[serde(
            rename = "jobId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub job_id: ::std::option::Option<::std::string::String>,
        ///How long the job may run, in seconds.
        #[serde(
            rename = "maxExecutionTimeInSeconds",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub max_execution_time_in_seconds: ::std::option::Option<i64>,
        ///WHERE clause selecting the devices.
        #[serde(
            rename = "queryCondition",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub query_condition: ::std::option::Option<::std::string::String>,
        ///When the job starts or started (ISO 8601).
        #[serde(
            rename = "startTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub start_time: ::std::option::Option<::std::string::String>,
        ///Job status. Known values: unknown, enqueued, running, completed, failed, cancelled, scheduled, queued. Kept open (no enum).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status: ::std::option::Option<::std::string::String>,
        ///Status text from the service.
        #[serde(
            rename = "statusMessage",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub status_message: ::std::option::Option<::std::string::String>,
        ///Kind of job: scheduleUpdateTwin or scheduleDeviceMethod (the service also knows the import/export and legacy types listed on JobProperties.type). Kept open (no enum).
        #[serde(rename = "type", skip_serializing_if = "::std::option::Option::is_none")]
        pub type_: ::std::option::Option<::std::string::String>,
        #[serde(
            rename = "updateTwin",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub update_twin: ::std::option::Option<Twin>,
    }
    ///The managed identity a job uses to reach blob storage.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ManagedIdentity {
        ///Resource id of a user-assigned identity of the hub; without it the hub's system-assigned identity is used.
        #[serde(
            rename = "userAssignedIdentity",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub user_assigned_identity: ::std::option::Option<::std::string::String>,
    }
    ///A module identity on a device.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct Module {
        ///Key/value pairs kept by the solution back end and not visible to devices (new in 2024-03-31). Values are strings, booleans, integers or arrays.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub attributes: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub authentication: ::std::option::Option<AuthenticationMechanism>,
        ///Cloud-to-module messages waiting in the queue. Read-only; ignored in requests.
        #[serde(
            rename = "cloudToDeviceMessageCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub cloud_to_device_message_count: ::std::option::Option<i32>,
        ///Connection state as last seen by the service. Known values: Connected, Disconnected. Kept open (no enum).
        #[serde(
            rename = "connectionState",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connection_state: ::std::option::Option<::std::string::String>,
        ///When connectionState last changed. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "connectionStateUpdatedTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connection_state_updated_time: ::std::option::Option<::std::string::String>,
        ///Id of the device that owns the module.
        #[serde(
            rename = "deviceId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_id: ::std::option::Option<::std::string::String>,
        ///Weak ETag of the module identity, used with If-Match.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub etag: ::std::option::Option<::std::string::String>,
        ///Service-assigned value that tells apart modules that reused the same id after a delete.
        #[serde(
            rename = "generationId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub generation_id: ::std::option::Option<::std::string::String>,
        ///When the module last connected or exchanged a message. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "lastActivityTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub last_activity_time: ::std::option::Option<::std::string::String>,
        ///Who manages the module, for example IotEdge for the edge runtime.
        #[serde(
            rename = "managedBy",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub managed_by: ::std::option::Option<::std::string::String>,
        ///Case-sensitive module id.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
    }
    ///Outcome of a cloud-to-device queue purge.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct PurgeMessageQueueResult {
        ///Device whose queue was purged.
        #[serde(
            rename = "deviceId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_id: ::std::option::Option<::std::string::String>,
        ///Module whose queue was purged, if any.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
        ///How many messages were removed.
        #[serde(
            rename = "totalMessagesPurged",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub total_messages_purged: ::std::option::Option<i32>,
    }
    ///Body of a query request.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, PartialEq)]
    pub struct QuerySpecification {
        ///Query text, for example SELECT * FROM devices.
        pub query: ::std::string::String,
    }
    ///One identity whose keys are regenerated; moduleId selects a module.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, PartialEq)]
    pub struct RegenerateDeviceKey {
        ///Device id.
        pub id: ::std::string::String,
        ///Module id, when the entry targets a module.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
    }
    ///Why the keys of one identity were not regenerated.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct RegenerateDeviceKeyError {
        ///Error code name, for example DeviceNotFound or ModuleNotFound. Kept open (no enum): the list is long and grows.
        #[serde(
            rename = "errorCode",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub error_code: ::std::option::Option<::std::string::String>,
        ///Human-readable detail.
        #[serde(
            rename = "errorStatus",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub error_status: ::std::option::Option<::std::string::String>,
        ///Device id.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub id: ::std::option::Option<::std::string::String>,
        ///Module id, for a module entry.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
    }
    ///Which key of each identity to regenerate (the service also knows the value Unknown, which a client never sends).
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum RegenerateKeyPolicy {
        #[serde(rename = "primaryKey")]
        PrimaryKey,
        #[serde(rename = "secondaryKey")]
        SecondaryKey,
        #[serde(rename = "both")]
        Both,
    }
    impl ::std::fmt::Display for RegenerateKeyPolicy {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::PrimaryKey => f.write_str("primaryKey"),
                Self::SecondaryKey => f.write_str("secondaryKey"),
                Self::Both => f.write_str("both"),
            }
        }
    }
    impl ::std::str::FromStr for RegenerateKeyPolicy {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "primaryKey" => Ok(Self::PrimaryKey),
                "secondaryKey" => Ok(Self::SecondaryKey),
                "both" => Ok(Self::Both),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for RegenerateKeyPolicy {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for RegenerateKeyPolicy {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///Device counts in the identity registry.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct RegistryStatistics {
        ///Devices whose status is disabled.
        #[serde(
            rename = "disabledDeviceCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub disabled_device_count: ::std::option::Option<i64>,
        ///Devices whose status is enabled.
        #[serde(
            rename = "enabledDeviceCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub enabled_device_count: ::std::option::Option<i64>,
        ///All registered devices.
        #[serde(
            rename = "totalDeviceCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub total_device_count: ::std::option::Option<i64>,
    }
    ///Kind of scheduled job a client can create.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum ScheduledJobType {
        #[serde(rename = "scheduleUpdateTwin")]
        ScheduleUpdateTwin,
        #[serde(rename = "scheduleDeviceMethod")]
        ScheduleDeviceMethod,
    }
    impl ::std::fmt::Display for ScheduledJobType {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::ScheduleUpdateTwin => f.write_str("scheduleUpdateTwin"),
                Self::ScheduleDeviceMethod => f.write_str("scheduleDeviceMethod"),
            }
        }
    }
    impl ::std::str::FromStr for ScheduledJobType {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "scheduleUpdateTwin" => Ok(Self::ScheduleUpdateTwin),
                "scheduleDeviceMethod" => Ok(Self::ScheduleDeviceMethod),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for ScheduledJobType {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ScheduledJobType {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///Service-level counts.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct ServiceStatistics {
        ///Devices connected right now.
        #[serde(
            rename = "connectedDeviceCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connected_device_count: ::std::option::Option<i64>,
    }
    ///Twin of a device or module: tags, desired and reported properties, plus read-only copies of identity fields. Also used as the body of twin PATCH and PUT, where only tags and properties.desired count.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct Twin {
        ///Key/value pairs kept by the solution back end and not visible to devices (new in 2024-03-31). Values are strings, booleans, integers or arrays.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub attributes: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        ///Copy of the identity's authentication type. Known values: sas, selfSigned, certificateAuthority, none. Read-only here and kept open (no enum).
        #[serde(
            rename = "authenticationType",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub authentication_type: ::std::option::Option<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub capabilities: ::std::option::Option<DeviceCapabilities>,
        ///Cloud-to-device messages waiting in the queue. Read-only; ignored in requests.
        #[serde(
            rename = "cloudToDeviceMessageCount",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub cloud_to_device_message_count: ::std::option::Option<i32>,
        ///Connection state. Known values: Connected, Disconnected. Kept open (no enum).
        #[serde(
            rename = "connectionState",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub connection_state: ::std::option::Option<::std::string::String>,
        ///ETag of the device identity behind this twin.
        #[serde(
            rename = "deviceEtag",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_etag: ::std::option::Option<::std::string::String>,
        ///Device id.
        #[serde(
            rename = "deviceId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_id: ::std::option::Option<::std::string::String>,
        ///Scope of the device.
        #[serde(
            rename = "deviceScope",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub device_scope: ::std::option::Option<::std::string::String>,
        ///ETag of the twin, used with If-Match on twin updates.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub etag: ::std::option::Option<::std::string::String>,
        ///When the device last connected or exchanged a message. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "lastActivityTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub last_activity_time: ::std::option::Option<::std::string::String>,
        ///Digital twin model id announced by a Plug and Play device, if any.
        #[serde(
            rename = "modelId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub model_id: ::std::option::Option<::std::string::String>,
        ///Module id, present on module twins.
        #[serde(
            rename = "moduleId",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub module_id: ::std::option::Option<::std::string::String>,
        ///Scopes of the parent edge devices, if any.
        #[serde(
            rename = "parentScopes",
            default,
            skip_serializing_if = "::std::vec::Vec::is_empty"
        )]
        pub parent_scopes: ::std::vec::Vec<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub properties: ::std::option::Option<TwinProperties>,
        ///Copy of the identity status. Known values: enabled, disabled. Read-only here and kept open (no enum).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status: ::std::option::Option<::std::string::String>,
        ///Reason for the current status, if any.
        #[serde(
            rename = "statusReason",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub status_reason: ::std::option::Option<::std::string::String>,
        ///When the status last changed. ISO 8601; a never-set value is 0001-01-01T00:00:00, possibly without a UTC offset.
        #[serde(
            rename = "statusUpdateTime",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub status_update_time: ::std::option::Option<::std::string::String>,
        ///Back-end-only metadata, an arbitrary JSON object not visible to devices.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub tags: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        ///Version of the twin (tags and desired properties).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub version: ::std::option::Option<i64>,
        #[serde(
            rename = "x509Thumbprint",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub x509_thumbprint: ::std::option::Option<X509Thumbprint>,
    }
    ///Desired and reported property documents of a twin.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct TwinProperties {
        ///Properties set by the back end. Arbitrary JSON object; the service adds $metadata and $version entries.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub desired: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        ///Properties set by the device or module. Arbitrary JSON object; the service adds $metadata and $version entries.
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub reported: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
    }
    ///Pair of X.509 client certificate thumbprints.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default, PartialEq)]
    pub struct X509Thumbprint {
        ///Thumbprint of the primary certificate.
        #[serde(
            rename = "primaryThumbprint",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub primary_thumbprint: ::std::option::Option<::std::string::String>,
        ///Thumbprint of the secondary certificate.
        #[serde(
            rename = "secondaryThumbprint",
            skip_serializing_if = "::std::option::Option::is_none"
        )]
        pub secondary_thumbprint: ::std::option::Option<::std::string::String>,
    }
    /// Error types.
    pub mod error {
        /// Error from a `TryFrom` or `FromStr` implementation.
        pub struct ConversionError(::std::borrow::Cow<'static, str>);
        impl ::std::error::Error for ConversionError {}
        impl ::std::fmt::Display for ConversionError {
            fn fmt(
                &self,
                f: &mut ::std::fmt::Formatter<'_>,
            ) -> Result<(), ::std::fmt::Error> {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }
        impl ::std::fmt::Debug for ConversionError {
            fn fmt(
                &self,
                f: &mut ::std::fmt::Formatter<'_>,
            ) -> Result<(), ::std::fmt::Error> {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }
        impl From<&'static str> for ConversionError {
            fn from(value: &'static str) -> Self {
                Self(value.into())
            }
        }
        impl From<String> for ConversionError {
            fn from(value: String) -> Self {
                Self(value.into())
            }
        }
    }
}
#[derive(Clone, Debug)]
/// Client for Azure IoT Hub service REST API (iothub-rs)
///
/// Service-side data-plane operations of Azure IoT Hub: device and module identities, twins, direct methods, queries, bulk registry updates, statistics, cloud-to-device queue purge, configurations, IoT Edge configuration content, bulk key regeneration, import/export jobs and scheduled jobs. Every request must carry the query parameter api-version=2024-03-31, which the client adds on its own.
///
/// Version: 2024-03-31
pub struct Client {
    pub(crate) baseurl: String,
    pub(crate) client: reqwest::Client,
    pub(crate) inner: crate::ClientState,
}
impl Client {
    /// Create a new client.
    ///
    /// `baseurl` is the base URL provided to the internal
    /// `reqwest::Client`, and should include a scheme and hostname,
    /// as well as port and a path stem if applicable.
    pub fn new(baseurl: &str, inner: crate::ClientState) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let client = {
            let dur = ::std::time::Duration::from_secs(15u64);
            reqwest::ClientBuilder::new().connect_timeout(dur).timeout(dur)
        };
        #[cfg(target_arch = "wasm32")]
        let client = reqwest::ClientBuilder::new();
        Self::new_with_client(baseurl, client.build().unwrap(), inner)
    }
    /// Construct a new client with an existing `reqwest::Client`,
    /// allowing more control over its configuration.
    ///
    /// `baseurl` is the base URL provided to the internal
    /// `reqwest::Client`, and should include a scheme and hostname,
    /// as well as port and a path stem if applicable.
    pub fn new_with_client(
        baseurl: &str,
        client: reqwest::Client,
        inner: crate::ClientState,
    ) -> Self {
        Self {
            baseurl: baseurl.to_string(),
            client,
            inner,
        }
    }
}
impl ClientInfo<crate::ClientState> for Client {
    fn api_version() -> &'static str {
        "2024-03-31"
    }
    fn baseurl(&self) -> &str {
        self.baseurl.as_str()
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn inner(&self) -> &crate::ClientState {
        &self.inner
    }
}
impl ClientHooks<crate::ClientState> for &Client {}
#[allow(clippy::all)]
impl Client {
    /// List device identities
    ///
    /// Returns device identities from the registry. The service caps the list (at most 1000 entries); use a query or an export job to see every device.
    ///
    /// Sends a `GET` request to `/devices`
    ///
    /// Arguments:
    /// - `top`: Upper bound on how many devices to return (1 to 1000).
    pub async fn devices_get_devices<'a>(
        &'a self,
        top: Option<::std::num::NonZeroU32>,
    ) -> Result<
        ResponseValue<::std::vec::Vec<types::Device>>,
        Error<types::ErrorDetails>,
    > {
        let url = format!("{}/devices", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .query(&progenitor_client::QueryParam::new("top", &top))
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_get_devices",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Create, update or delete many identities in one request
    ///
    /// Applies a list of registry operations, each selected by its importMode. The service accepts at most 100 entries per request. A partial or total failure is reported with status 400 and the same result body as success.
    ///
    /// Sends a `POST` request to `/devices`
    ///
    /// Arguments:
    /// - `body`: The registry operations to apply.
    pub async fn bulk_registry_update_registry<'a>(
        &'a self,
        body: &'a ::std::vec::Vec<types::ExportImportDevice>,
    ) -> Result<
        ResponseValue<types::BulkRegistryOperationResult>,
        Error<types::BulkRegistryOperationResult>,
    > {
        let url = format!("{}/devices", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "bulk_registry_update_registry",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Run an IoT Hub query and return one page of twins
    ///
    /// Runs a query written in the IoT Hub query language. Results are paged: when more results exist the response carries an x-ms-continuation header whose value is sent back, with the same query, to fetch the next page.
    ///
    /// Sends a `POST` request to `/devices/query`
    ///
    /// Arguments:
    /// - `x_ms_continuation`: Continuation token returned by the previous page.
    /// - `x_ms_max_item_count`: Requested page size; the service may pick another value.
    /// - `body`: The query to run.
    pub async fn query_get_twins<'a>(
        &'a self,
        x_ms_continuation: Option<&'a str>,
        x_ms_max_item_count: Option<&'a str>,
        body: &'a types::QuerySpecification,
    ) -> Result<
        ResponseValue<::std::vec::Vec<crate::QueryResultItem>>,
        Error<types::ErrorDetails>,
    > {
        let url = format!("{}/devices/query", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(3usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = x_ms_continuation {
            header_map.append("x-ms-continuation", value.to_string().try_into()?);
        }
        if let Some(value) = x_ms_max_item_count {
            header_map.append("x-ms-max-item-count", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "query_get_twins",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Have the service generate new symmetric keys for many identities
    ///
    /// Replaces the primary key, the secondary key or both of each listed device or module identity with a key generated by the service, and returns the new keys. Status 200 when every entry succeeded, 207 when some failed and 400 when all failed; all three carry the same result body, with one entry in errors per failed identity.
    ///
    /// Sends a `POST` request to `/devices/keys/regenerate`
    ///
    /// Arguments:
    /// - `body`: Which key to regenerate, and for which identities.
    pub async fn service_bulk_regenerate_device_key<'a>(
        &'a self,
        body: &'a types::BulkRegenerateDeviceKey,
    ) -> Result<
        ResponseValue<types::BulkRegenerateKeyResult>,
        Error<types::BulkRegenerateKeyResult>,
    > {
        let url = format!("{}/devices/keys/regenerate", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "service_bulk_regenerate_device_key",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            207u16 => ResponseValue::from_response(response).await,
            400u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get a device identity
    ///
    /// Sends a `GET` request to `/devices/{id}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    pub async fn devices_get_identity<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<types::Device>, Error<types::ErrorDetails>> {
        let url = format!("{}/devices/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_get_identity",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Create a device identity, or replace an existing one
    ///
    /// Without If-Match the device is created. To update, send If-Match with the device's ETag (quoted) or "*" to update unconditionally.
    ///
    /// Sends a `PUT` request to `/devices/{id}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `if_match`: Quoted ETag the stored device must match, or "*".
    /// - `body`: The device identity to store.
    pub async fn devices_create_or_update_identity<'a>(
        &'a self,
        id: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Device,
    ) -> Result<ResponseValue<types::Device>, Error<types::ErrorDetails>> {
        let url = format!("{}/devices/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .put(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_create_or_update_identity",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Delete a device identity
    ///
    /// Sends a `DELETE` request to `/devices/{id}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `if_match`: Quoted ETag the stored device must match, or "*".
    pub async fn devices_delete_identity<'a>(
        &'a self,
        id: &'a str,
        if_match: Option<&'a str>,
    ) -> Result<ResponseValue<()>, Error<types::ErrorDetails>> {
        let url = format!("{}/devices/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .delete(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_delete_identity",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            204u16 => Ok(ResponseValue::empty(response)),
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Remove every pending cloud-to-device message for a device
    ///
    /// Sends a `DELETE` request to `/devices/{id}/commands`
    ///
    /// Arguments:
    /// - `id`: Device id.
    pub async fn cloud_to_device_messages_purge_cloud_to_device_message_queue<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<
        ResponseValue<types::PurgeMessageQueueResult>,
        Error<types::ErrorDetails>,
    > {
        let url = format!(
            "{}/devices/{}/commands", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .delete(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "cloud_to_device_messages_purge_cloud_to_device_message_queue",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Apply an IoT Edge deployment (modulesContent) to one edge device
    ///
    /// Writes the desired properties of each module named in modulesContent to that module's twin on the edge device. The device must be an IoT Edge device and modulesContent is required. Answered with 204 (the 2021-04-12 clients expect it) or 200, neither with a body the client reads.
    ///
    /// Sends a `POST` request to `/devices/{id}/applyConfigurationContent`
    ///
    /// Arguments:
    /// - `id`: Id of the IoT Edge device.
    /// - `body`: The content to apply; only modulesContent counts.
    pub async fn configuration_apply_on_edge_device<'a>(
        &'a self,
        id: &'a str,
        body: &'a types::ConfigurationContent,
    ) -> Result<ResponseValue<()>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/devices/{}/applyConfigurationContent", self.baseurl, encode_path(& id
            .to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "configuration_apply_on_edge_device",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => Ok(ResponseValue::empty(response)),
            204u16 => Ok(ResponseValue::empty(response)),
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// List the module identities of a device
    ///
    /// Sends a `GET` request to `/devices/{id}/modules`
    ///
    /// Arguments:
    /// - `id`: Device id.
    pub async fn modules_get_modules_on_device<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<
        ResponseValue<::std::vec::Vec<types::Module>>,
        Error<types::ErrorDetails>,
    > {
        let url = format!(
            "{}/devices/{}/modules", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_get_modules_on_device",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get a module identity
    ///
    /// Sends a `GET` request to `/devices/{id}/modules/{mid}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    pub async fn modules_get_identity<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
    ) -> Result<ResponseValue<types::Module>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/devices/{}/modules/{}", self.baseurl, encode_path(& id.to_string()),
            encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_get_identity",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Create a module identity, or replace an existing one
    ///
    /// Without If-Match the module is created. To update, send If-Match with the module's ETag (quoted) or "*".
    ///
    /// Sends a `PUT` request to `/devices/{id}/modules/{mid}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    /// - `if_match`: Quoted ETag the stored module must match, or "*".
    /// - `body`: The module identity to store.
    pub async fn modules_create_or_update_identity<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Module,
    ) -> Result<ResponseValue<types::Module>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/devices/{}/modules/{}", self.baseurl, encode_path(& id.to_string()),
            encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .put(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_create_or_update_identity",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            201u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Delete a module identity
    ///
    /// Sends a `DELETE` request to `/devices/{id}/modules/{mid}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    /// - `if_match`: Quoted ETag the stored module must match, or "*".
    pub async fn modules_delete_identity<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
        if_match: Option<&'a str>,
    ) -> Result<ResponseValue<()>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/devices/{}/modules/{}", self.baseurl, encode_path(& id.to_string()),
            encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .delete(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_delete_identity",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            204u16 => Ok(ResponseValue::empty(response)),
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get a device twin
    ///
    /// Sends a `GET` request to `/twins/{id}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    pub async fn devices_get_twin<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<types::Twin>, Error<types::ErrorDetails>> {
        let url = format!("{}/twins/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_get_twin",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Replace a device twin's tags and desired properties
    ///
    /// Sends a `PUT` request to `/twins/{id}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `if_match`: Quoted twin ETag that must match, or "*".
    /// - `body`: The new tags and desired properties.
    pub async fn devices_replace_twin<'a>(
        &'a self,
        id: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Twin,
    ) -> Result<ResponseValue<types::Twin>, Error<types::ErrorDetails>> {
        let url = format!("{}/twins/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .put(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_replace_twin",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Merge a patch into a device twin's tags and desired properties
    ///
    /// JSON merge semantics: keys in the patch overwrite stored keys and a null value removes a key.
    ///
    /// Sends a `PATCH` request to `/twins/{id}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `if_match`: Quoted twin ETag that must match, or "*".
    /// - `body`: The twin patch (tags and/or properties.desired).
    pub async fn devices_update_twin<'a>(
        &'a self,
        id: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Twin,
    ) -> Result<ResponseValue<types::Twin>, Error<types::ErrorDetails>> {
        let url = format!("{}/twins/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .patch(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_update_twin",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Invoke a direct method on a device and wait for its answer
    ///
    /// Sends a `POST` request to `/twins/{id}/methods`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `body`: Method name, payload and timeouts.
    pub async fn devices_invoke_method<'a>(
        &'a self,
        id: &'a str,
        body: &'a types::CloudToDeviceMethod,
    ) -> Result<
        ResponseValue<types::CloudToDeviceMethodResult>,
        Error<types::ErrorDetails>,
    > {
        let url = format!(
            "{}/twins/{}/methods", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "devices_invoke_method",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get a module twin
    ///
    /// Sends a `GET` request to `/twins/{id}/modules/{mid}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    pub async fn modules_get_twin<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
    ) -> Result<ResponseValue<types::Twin>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/twins/{}/modules/{}", self.baseurl, encode_path(& id.to_string()),
            encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_get_twin",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Replace a module twin's tags and desired properties
    ///
    /// Sends a `PUT` request to `/twins/{id}/modules/{mid}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    /// - `if_match`: Quoted twin ETag that must match, or "*".
    /// - `body`: The new tags and desired properties.
    pub async fn modules_replace_twin<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Twin,
    ) -> Result<ResponseValue<types::Twin>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/twins/{}/modules/{}", self.baseurl, encode_path(& id.to_string()),
            encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .put(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_replace_twin",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Merge a patch into a module twin's tags and desired properties
    ///
    /// Sends a `PATCH` request to `/twins/{id}/modules/{mid}`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    /// - `if_match`: Quoted twin ETag that must match, or "*".
    /// - `body`: The twin patch (tags and/or properties.desired).
    pub async fn modules_update_twin<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Twin,
    ) -> Result<ResponseValue<types::Twin>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/twins/{}/modules/{}", self.baseurl, encode_path(& id.to_string()),
            encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .patch(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_update_twin",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Invoke a direct method on a module and wait for its answer
    ///
    /// Sends a `POST` request to `/twins/{id}/modules/{mid}/methods`
    ///
    /// Arguments:
    /// - `id`: Device id.
    /// - `mid`: Module id.
    /// - `body`: Method name, payload and timeouts.
    pub async fn modules_invoke_method<'a>(
        &'a self,
        id: &'a str,
        mid: &'a str,
        body: &'a types::CloudToDeviceMethod,
    ) -> Result<
        ResponseValue<types::CloudToDeviceMethodResult>,
        Error<types::ErrorDetails>,
    > {
        let url = format!(
            "{}/twins/{}/modules/{}/methods", self.baseurl, encode_path(& id
            .to_string()), encode_path(& mid.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "modules_invoke_method",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get identity registry counts
    ///
    /// Sends a `GET` request to `/statistics/devices`
    ///
    pub async fn statistics_get_device_statistics<'a>(
        &'a self,
    ) -> Result<ResponseValue<types::RegistryStatistics>, Error<types::ErrorDetails>> {
        let url = format!("{}/statistics/devices", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "statistics_get_device_statistics",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get service-level counts such as connected devices
    ///
    /// Sends a `GET` request to `/statistics/service`
    ///
    pub async fn statistics_get_service_statistics<'a>(
        &'a self,
    ) -> Result<ResponseValue<types::ServiceStatistics>, Error<types::ErrorDetails>> {
        let url = format!("{}/statistics/service", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "statistics_get_service_statistics",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// List configurations
    ///
    /// Sends a `GET` request to `/configurations`
    ///
    /// Arguments:
    /// - `top`: Upper bound on how many configurations to return; the service returns at most 20 whatever the value.
    pub async fn configuration_get_configurations<'a>(
        &'a self,
        top: Option<::std::num::NonZeroU32>,
    ) -> Result<
        ResponseValue<::std::vec::Vec<types::Configuration>>,
        Error<types::ErrorDetails>,
    > {
        let url = format!("{}/configurations", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .query(&progenitor_client::QueryParam::new("top", &top))
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "configuration_get_configurations",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Check a target condition and metric queries without saving anything
    ///
    /// Sends a `POST` request to `/configurations/testQueries`
    ///
    /// Arguments:
    /// - `body`: The queries to check.
    pub async fn configuration_test_queries<'a>(
        &'a self,
        body: &'a types::ConfigurationQueriesTestInput,
    ) -> Result<
        ResponseValue<types::ConfigurationQueriesTestResponse>,
        Error<types::ErrorDetails>,
    > {
        let url = format!("{}/configurations/testQueries", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "configuration_test_queries",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get a configuration
    ///
    /// Sends a `GET` request to `/configurations/{id}`
    ///
    /// Arguments:
    /// - `id`: Configuration id.
    pub async fn configuration_get<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<types::Configuration>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/configurations/{}", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "configuration_get",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Create a configuration, or update an existing one
    ///
    /// Sends a `PUT` request to `/configurations/{id}`
    ///
    /// Arguments:
    /// - `id`: Configuration id.
    /// - `if_match`: Quoted ETag the stored configuration must match, or "*".
    /// - `body`: The configuration to store.
    pub async fn configuration_create_or_update<'a>(
        &'a self,
        id: &'a str,
        if_match: Option<&'a str>,
        body: &'a types::Configuration,
    ) -> Result<ResponseValue<types::Configuration>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/configurations/{}", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .put(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "configuration_create_or_update",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            201u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Delete a configuration
    ///
    /// Sends a `DELETE` request to `/configurations/{id}`
    ///
    /// Arguments:
    /// - `id`: Configuration id.
    /// - `if_match`: Quoted ETag the stored configuration must match, or "*".
    pub async fn configuration_delete<'a>(
        &'a self,
        id: &'a str,
        if_match: Option<&'a str>,
    ) -> Result<ResponseValue<()>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/configurations/{}", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = if_match {
            header_map.append("If-Match", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .delete(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "configuration_delete",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            204u16 => Ok(ResponseValue::empty(response)),
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Start an import or export of the identity registry through blob storage
    ///
    /// Starts an import job (type import: reads devices.txt, or inputBlobName, from the input container) or an export job (type export: writes every identity to outputBlobName, devices.txt by default, in the output container). Container URIs carry a SAS token unless storageAuthenticationType is identityBased. One import or export job runs at a time per hub. The answer is the job as queued, with the jobId the service assigned.
    ///
    /// Sends a `POST` request to `/jobs/create`
    ///
    /// Arguments:
    /// - `body`: The job to start.
    pub async fn jobs_create_import_export_job<'a>(
        &'a self,
        body: &'a types::JobProperties,
    ) -> Result<ResponseValue<types::JobProperties>, Error<types::ErrorDetails>> {
        let url = format!("{}/jobs/create", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_create_import_export_job",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// List the import and export jobs of the hub
    ///
    /// Returns the hub's import and export jobs, running and finished; the service keeps finished jobs for a limited time (30 days).
    ///
    /// Sends a `GET` request to `/jobs`
    ///
    pub async fn jobs_get_import_export_jobs<'a>(
        &'a self,
    ) -> Result<
        ResponseValue<::std::vec::Vec<types::JobProperties>>,
        Error<types::ErrorDetails>,
    > {
        let url = format!("{}/jobs", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_get_import_export_jobs",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get an import or export job, with its status and progress
    ///
    /// Sends a `GET` request to `/jobs/{id}`
    ///
    /// Arguments:
    /// - `id`: Job id.
    pub async fn jobs_get_import_export_job<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<types::JobProperties>, Error<types::ErrorDetails>> {
        let url = format!("{}/jobs/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_get_import_export_job",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Cancel an import or export job
    ///
    /// Answered with 204, or 200 with a body that no official client reads (the Python client decodes it as an untyped object); both are declared without a body, so the client ignores it. Read the job afterwards to see its status.
    ///
    /// Sends a `DELETE` request to `/jobs/{id}`
    ///
    /// Arguments:
    /// - `id`: Job id.
    pub async fn jobs_cancel_import_export_job<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<()>, Error<types::ErrorDetails>> {
        let url = format!("{}/jobs/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .delete(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_cancel_import_export_job",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => Ok(ResponseValue::empty(response)),
            204u16 => Ok(ResponseValue::empty(response)),
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// List scheduled jobs, optionally by type and status, one page at a time
    ///
    /// Returns one page of scheduled jobs. Paging works as for twin queries: when more jobs exist the response carries an x-ms-continuation header whose value is sent back, in the request header of the same name, for the next page. The Node, .NET and Azure CLI clients read the body as an array of jobs; the Python client decodes it as an object with items and continuationToken. Both shapes are declared.
    ///
    /// Sends a `GET` request to `/jobs/v2/query`
    ///
    /// Arguments:
    /// - `job_status`: Only jobs in this status, for example queued, scheduled, running, completed, failed or cancelled.
    /// - `job_type`: Only jobs of this type, for example scheduleUpdateTwin or scheduleDeviceMethod.
    /// - `x_ms_continuation`: Continuation token returned by the previous page.
    /// - `x_ms_max_item_count`: Requested page size; the service may pick another value.
    pub async fn jobs_query_scheduled_jobs<'a>(
        &'a self,
        job_status: Option<&'a str>,
        job_type: Option<&'a str>,
        x_ms_continuation: Option<&'a str>,
        x_ms_max_item_count: Option<&'a str>,
    ) -> Result<ResponseValue<types::JobQueryPage>, Error<types::ErrorDetails>> {
        let url = format!("{}/jobs/v2/query", self.baseurl,);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(3usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        if let Some(value) = x_ms_continuation {
            header_map.append("x-ms-continuation", value.to_string().try_into()?);
        }
        if let Some(value) = x_ms_max_item_count {
            header_map.append("x-ms-max-item-count", value.to_string().try_into()?);
        }
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .query(&progenitor_client::QueryParam::new("jobStatus", &job_status))
            .query(&progenitor_client::QueryParam::new("jobType", &job_type))
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_query_scheduled_jobs",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Get a scheduled job, with its status and device counts
    ///
    /// Sends a `GET` request to `/jobs/v2/{id}`
    ///
    /// Arguments:
    /// - `id`: Job id.
    pub async fn jobs_get_scheduled_job<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<types::JobResponse>, Error<types::ErrorDetails>> {
        let url = format!("{}/jobs/v2/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .get(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_get_scheduled_job",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Schedule a twin update or a direct method on the devices a query condition selects
    ///
    /// Creates the job named in the path. The body's type is scheduleUpdateTwin (with updateTwin, whose etag must be "*") or scheduleDeviceMethod (with cloudToDeviceMethod); queryCondition is the WHERE clause of a twin query; the job starts at startTime and is stopped after maxExecutionTimeInSeconds.
    ///
    /// Sends a `PUT` request to `/jobs/v2/{id}`
    ///
    /// Arguments:
    /// - `id`: Job id, also sent as jobId in the body.
    /// - `body`: The job to schedule.
    pub async fn jobs_create_scheduled_job<'a>(
        &'a self,
        id: &'a str,
        body: &'a types::JobRequest,
    ) -> Result<ResponseValue<types::JobResponse>, Error<types::ErrorDetails>> {
        let url = format!("{}/jobs/v2/{}", self.baseurl, encode_path(& id.to_string()),);
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .put(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .json(&body)
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_create_scheduled_job",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
    /// Cancel a scheduled job
    ///
    /// Sent without a body. Devices the job already reached keep what it did to them.
    ///
    /// Sends a `POST` request to `/jobs/v2/{id}/cancel`
    ///
    /// Arguments:
    /// - `id`: Job id.
    pub async fn jobs_cancel_scheduled_job<'a>(
        &'a self,
        id: &'a str,
    ) -> Result<ResponseValue<types::JobResponse>, Error<types::ErrorDetails>> {
        let url = format!(
            "{}/jobs/v2/{}/cancel", self.baseurl, encode_path(& id.to_string()),
        );
        let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
        header_map
            .append(
                ::reqwest::header::HeaderName::from_static("api-version"),
                ::reqwest::header::HeaderValue::from_static(Self::api_version()),
            );
        #[allow(unused_mut)]
        let mut request = self
            .client
            .post(url)
            .header(
                ::reqwest::header::ACCEPT,
                ::reqwest::header::HeaderValue::from_static("application/json"),
            )
            .headers(header_map)
            .build()?;
        let info = OperationInfo {
            operation_id: "jobs_cancel_scheduled_job",
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200u16 => ResponseValue::from_response(response).await,
            400u16..=499u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            500u16..=599u16 => {
                Err(Error::ErrorResponse(ResponseValue::from_response(response).await?))
            }
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
}
/// Items consumers will typically use such as the Client.
pub mod prelude {
    #[allow(unused_imports)]
    pub use super::Client;
}
