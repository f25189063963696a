//! Public data types: identities, twins, bulk entries, statistics and direct methods.
//!
//! These are this crate's own types, converted to and from the generated `iothub-rest` types,
//! so that regenerating the low-level client does not change this API; the string values
//! ([`DeviceStatus`], [`AuthenticationType`], [`ImportMode`]) and [`ETag`] are re-exported
//! from `iothub-core`. They serialize with
//! IoT Hub's JSON names, so `serde_json` can print them or build them from JSON.
//!
//! Types that callers build for requests ([`ExportImportDevice`], [`CloudToDeviceMethod`],
//! [`AuthenticationMechanism`], ...) have public fields and `Default`: write them with
//! `..Default::default()`. Types that only come back from IoT Hub ([`Device`], [`Module`],
//! [`Twin`], ...) are `#[non_exhaustive]`. Twin changes are sent as a
//! [`TwinPatch`](crate::TwinPatch).
//!
//! Timestamps (`status_updated_time`, `last_activity_time`, ...) are kept as the ISO 8601
//! text IoT Hub sent.

use std::fmt;
use std::str::FromStr;

use iothub_core::redact::Redacted;
use iothub_rest::types as wire;
use serde::{Deserialize, Serialize};

use crate::operation::{FromWire, from_wire_via_from};
use serde_json::{Map, Value};

/// A JSON object (twin tags, desired or reported properties).
pub type JsonObject = Map<String, Value>;

// The registry's string values and the ETag type are IoT Hub's vocabulary, shared through
// `iothub-core` and re-exported under this crate's names.
#[doc(inline)]
pub use iothub_core::{AuthenticationType, DeviceStatus, ETag, ImportMode, UnknownValue};

/// [`ETag`] is its own type so that an ETag and a key (both strings on the wire) cannot be
/// swapped in a call. Holds doctests only.
///
/// A key where an ETag belongs does not compile:
///
/// ```compile_fail
/// # async fn run(rm: iothub_registry::RegistryManager, etag: iothub_registry::ETag) {
/// use iothub_registry::DeviceStatus;
/// let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// // primary key and ETag swapped
/// rm.update_device_with_sas("dev1", key, etag, "", DeviceStatus::Enabled).await;
/// # }
/// ```
///
/// ```compile_fail
/// # async fn run(rm: iothub_registry::RegistryManager) {
/// // a plain string is not an ETag either
/// rm.update_module_with_sas("dev1", "mod1", None, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "", "").await;
/// # }
/// ```
///
/// The same calls with ETags compile:
///
/// ```
/// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
/// use iothub_registry::{DeviceStatus, ETag};
/// let device = rm.get_device("dev1").await?;
/// rm.update_device_with_sas("dev1", &device.etag, "", "", DeviceStatus::Enabled).await?;
/// rm.update_module_with_sas("dev1", "mod1", None, ETag::any(), "", "").await?;
/// # Ok(()) }
/// ```
#[cfg(doctest)]
pub struct ETagIsNotAString;

/// A pair of base64 shared access keys. `Debug` shows only whether each key is set.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SymmetricKey {
    /// Primary key (base64).
    #[serde(rename = "primaryKey", skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// Secondary key (base64).
    #[serde(rename = "secondaryKey", skip_serializing_if = "Option::is_none")]
    pub secondary_key: Option<String>,
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymmetricKey")
            .field("primary_key", &Redacted(&self.primary_key))
            .field("secondary_key", &Redacted(&self.secondary_key))
            .finish()
    }
}

/// A pair of X.509 certificate thumbprints.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct X509Thumbprint {
    /// Thumbprint of the primary certificate.
    #[serde(rename = "primaryThumbprint", skip_serializing_if = "Option::is_none")]
    pub primary_thumbprint: Option<String>,
    /// Thumbprint of the secondary certificate.
    #[serde(
        rename = "secondaryThumbprint",
        skip_serializing_if = "Option::is_none"
    )]
    pub secondary_thumbprint: Option<String>,
}

/// The credentials of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthenticationMechanism {
    /// The kind of credential.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<AuthenticationType>,
    /// Shared access keys, for [`AuthenticationType::Sas`].
    #[serde(rename = "symmetricKey", skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<SymmetricKey>,
    /// Thumbprints, for [`AuthenticationType::SelfSigned`].
    #[serde(rename = "x509Thumbprint", skip_serializing_if = "Option::is_none")]
    pub x509_thumbprint: Option<X509Thumbprint>,
}

impl AuthenticationMechanism {
    /// Shared access keys.
    pub fn sas(primary_key: impl Into<String>, secondary_key: impl Into<String>) -> Self {
        Self {
            auth_type: Some(AuthenticationType::Sas),
            symmetric_key: Some(SymmetricKey {
                primary_key: Some(primary_key.into()),
                secondary_key: Some(secondary_key.into()),
            }),
            x509_thumbprint: None,
        }
    }

    /// Self-signed X.509 certificates identified by thumbprint.
    pub fn x509(
        primary_thumbprint: impl Into<String>,
        secondary_thumbprint: impl Into<String>,
    ) -> Self {
        Self {
            auth_type: Some(AuthenticationType::SelfSigned),
            symmetric_key: None,
            x509_thumbprint: Some(X509Thumbprint {
                primary_thumbprint: Some(primary_thumbprint.into()),
                secondary_thumbprint: Some(secondary_thumbprint.into()),
            }),
        }
    }

    /// X.509 certificates signed by a registered certificate authority.
    pub fn certificate_authority() -> Self {
        Self {
            auth_type: Some(AuthenticationType::CertificateAuthority),
            ..Self::default()
        }
    }
}

/// Optional features of a device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceCapabilities {
    /// True for an IoT Edge device.
    #[serde(rename = "iotEdge", skip_serializing_if = "Option::is_none")]
    pub iot_edge: Option<bool>,
}

/// A device identity, as returned by IoT Hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Device {
    /// Case-sensitive device id.
    #[serde(rename = "deviceId")]
    pub device_id: String,
    /// Service-assigned id that tells apart identities re-created with the same id.
    #[serde(rename = "generationId", skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<String>,
    /// ETag of the identity: pass `&device.etag` to `update_device_with_*` or to
    /// `delete_device(..).etag(..)`. IoT Hub always sends one; a response without it is
    /// refused as [`Error::InvalidResponse`](crate::Error::InvalidResponse).
    pub etag: ETag,
    /// Whether the device may connect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
    /// Why the status was set.
    #[serde(rename = "statusReason", skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the status last changed (ISO 8601, as sent).
    #[serde(rename = "statusUpdatedTime", skip_serializing_if = "Option::is_none")]
    pub status_updated_time: Option<String>,
    /// `Connected` or `Disconnected`.
    #[serde(rename = "connectionState", skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// When the connection state last changed (ISO 8601, as sent).
    #[serde(
        rename = "connectionStateUpdatedTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub connection_state_updated_time: Option<String>,
    /// Last activity (ISO 8601, as sent).
    #[serde(rename = "lastActivityTime", skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Cloud-to-device messages waiting.
    #[serde(
        rename = "cloudToDeviceMessageCount",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_to_device_message_count: Option<i32>,
    /// Credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationMechanism>,
    /// Capabilities (IoT Edge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    /// Scope of the device (edge hierarchies).
    #[serde(rename = "deviceScope", skip_serializing_if = "Option::is_none")]
    pub device_scope: Option<String>,
    /// Scopes of the parent edge devices.
    #[serde(
        rename = "parentScopes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parent_scopes: Vec<String>,
}

/// A module identity, as returned by IoT Hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Module {
    /// Case-sensitive module id.
    #[serde(rename = "moduleId")]
    pub module_id: String,
    /// The device that owns the module.
    #[serde(rename = "deviceId")]
    pub device_id: String,
    /// Service-assigned id that tells apart modules re-created with the same id.
    #[serde(rename = "generationId", skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<String>,
    /// ETag of the identity: pass `&module.etag` to `update_module_with_*` or to
    /// `delete_module(..).etag(..)`. Always sent by IoT Hub.
    pub etag: ETag,
    /// Who manages the module (for example `IotEdge`).
    #[serde(rename = "managedBy", skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// `Connected` or `Disconnected`.
    #[serde(rename = "connectionState", skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// When the connection state last changed (ISO 8601, as sent).
    #[serde(
        rename = "connectionStateUpdatedTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub connection_state_updated_time: Option<String>,
    /// Last activity (ISO 8601, as sent).
    #[serde(rename = "lastActivityTime", skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Cloud-to-module messages waiting.
    #[serde(
        rename = "cloudToDeviceMessageCount",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_to_device_message_count: Option<i32>,
    /// Credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationMechanism>,
}

/// Desired and reported properties of a twin.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TwinProperties {
    /// Properties set by the back end.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub desired: JsonObject,
    /// Properties reported by the device or module.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub reported: JsonObject,
}

/// A device or module twin as IoT Hub returns it (`get_twin`, `update_twin`, queries).
///
/// A read type only: to change a twin, send a [`TwinPatch`](crate::TwinPatch), which holds
/// just the parts a service may write (tags and desired properties).
///
/// Copies of identity fields (`status`, `authentication_type`, ...) are as IoT Hub sent them
/// and are `None` when it did not; for module twins several are never sent. Timestamps are
/// ISO 8601 text, as sent.
///
/// ```
/// use iothub_registry::{DeviceStatus, Twin};
/// let twin: Twin = serde_json::from_value(serde_json::json!({
///     "deviceId": "dev1", "etag": "AAAAAAAAAAE=", "version": 4, "status": "enabled",
///     "tags": {"site": "lab"},
///     "properties": {"desired": {"interval": 30, "$version": 2},
///                    "reported": {"interval": 30, "$version": 5}},
/// }))?;
/// assert_eq!(twin.status, Some(DeviceStatus::Enabled));
/// assert_eq!(twin.desired()["interval"], 30);
/// assert_eq!(twin.reported()["$version"], 5);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Twin {
    /// Device id.
    #[serde(rename = "deviceId", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Module id (module twins).
    #[serde(rename = "moduleId", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// ETag of the twin: pass `&twin.etag` to `update_twin(..).etag(..)` and friends. This
    /// is not the identity's ETag. Always sent by IoT Hub.
    pub etag: ETag,
    /// ETag of the identity (device or module) behind the twin, when IoT Hub sends it.
    #[serde(rename = "deviceEtag", skip_serializing_if = "Option::is_none")]
    pub device_etag: Option<ETag>,
    /// Version of the twin, incremented by IoT Hub on every change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Back-end-only tags, arbitrary nested JSON (empty when the twin has none).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: JsonObject,
    /// Desired and reported properties, each with IoT Hub's `$metadata` and `$version`
    /// entries. See [`desired`](Self::desired) and [`reported`](Self::reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<TwinProperties>,
    /// Copy of the identity status (device twins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
    /// Reason for the status.
    #[serde(rename = "statusReason", skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the status last changed (ISO 8601, as sent).
    #[serde(rename = "statusUpdateTime", skip_serializing_if = "Option::is_none")]
    pub status_update_time: Option<String>,
    /// `Connected` or `Disconnected`.
    #[serde(rename = "connectionState", skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// Last activity (ISO 8601, as sent).
    #[serde(rename = "lastActivityTime", skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Cloud-to-device messages waiting.
    #[serde(
        rename = "cloudToDeviceMessageCount",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_to_device_message_count: Option<i32>,
    /// Copy of the identity's authentication type.
    #[serde(rename = "authenticationType", skip_serializing_if = "Option::is_none")]
    pub authentication_type: Option<AuthenticationType>,
    /// Copy of the identity's thumbprints.
    #[serde(rename = "x509Thumbprint", skip_serializing_if = "Option::is_none")]
    pub x509_thumbprint: Option<X509Thumbprint>,
    /// Copy of the identity's capabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    /// Scope of the device.
    #[serde(rename = "deviceScope", skip_serializing_if = "Option::is_none")]
    pub device_scope: Option<String>,
    /// Scopes of the parent edge devices.
    #[serde(
        rename = "parentScopes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parent_scopes: Vec<String>,
    /// Digital twin model id, for Plug and Play devices.
    #[serde(rename = "modelId", skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

impl Twin {
    /// The desired properties, including IoT Hub's `$metadata` and `$version` entries; an
    /// empty object when the twin has none (or `properties` was not sent).
    pub fn desired(&self) -> &JsonObject {
        self.properties
            .as_ref()
            .map_or(empty_object(), |p| &p.desired)
    }

    /// The reported properties, including IoT Hub's `$metadata` and `$version` entries; an
    /// empty object when the twin has none (or `properties` was not sent).
    pub fn reported(&self) -> &JsonObject {
        self.properties
            .as_ref()
            .map_or(empty_object(), |p| &p.reported)
    }
}

fn empty_object() -> &'static JsonObject {
    static EMPTY: std::sync::OnceLock<JsonObject> = std::sync::OnceLock::new();
    EMPTY.get_or_init(JsonObject::new)
}

/// One entry of a bulk registry request (`bulk_create_or_update_devices`).
///
/// ```
/// use iothub_registry::{AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode};
/// let entry = ExportImportDevice {
///     id: "bulk1".into(),
///     import_mode: Some(ImportMode::Create),
///     status: Some(DeviceStatus::Enabled),
///     authentication: Some(AuthenticationMechanism::sas("", "")),
///     ..Default::default()
/// };
/// # let _ = entry;
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExportImportDevice {
    /// Device id.
    pub id: String,
    /// Module id, when the entry targets a module.
    #[serde(rename = "moduleId", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// ETag of the identity, for the `*IfMatchETag` identity modes (sent as `eTag`).
    #[serde(rename = "eTag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<ETag>,
    /// What to do with the entry.
    #[serde(rename = "importMode", skip_serializing_if = "Option::is_none")]
    pub import_mode: Option<ImportMode>,
    /// Status to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
    /// Reason for the status.
    #[serde(rename = "statusReason", skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationMechanism>,
    /// ETag of the twin, for [`ImportMode::UpdateTwinIfMatchETag`] (sent as `twinETag`).
    #[serde(rename = "twinETag", skip_serializing_if = "Option::is_none")]
    pub twin_etag: Option<ETag>,
    /// Twin tags to set.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: JsonObject,
    /// Twin properties to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<TwinProperties>,
    /// Capabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    /// Scope of the device.
    #[serde(rename = "deviceScope", skip_serializing_if = "Option::is_none")]
    pub device_scope: Option<String>,
    /// Scopes of the parent edge devices.
    #[serde(
        rename = "parentScopes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parent_scopes: Vec<String>,
}

/// Why one entry of a bulk request failed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceRegistryOperationError {
    /// Device id of the entry.
    #[serde(rename = "deviceId")]
    pub device_id: String,
    /// Module id of the entry, if any.
    #[serde(rename = "moduleId", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// Error name, for example `DeviceAlreadyExists`.
    #[serde(rename = "errorCode")]
    pub error_code: String,
    /// Error text.
    #[serde(rename = "errorStatus", skip_serializing_if = "Option::is_none")]
    pub error_status: Option<String>,
    /// The operation that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

impl DeviceRegistryOperationError {
    /// The error code as an [`ErrorCode`](crate::ErrorCode).
    pub fn code(&self) -> crate::ErrorCode {
        crate::ErrorCode::from_name(&self.error_code)
    }
}

/// A warning about one entry of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceRegistryOperationWarning {
    /// Device id of the entry.
    #[serde(rename = "deviceId")]
    pub device_id: String,
    /// Warning name, for example `DeviceRegisteredWithoutTwin`.
    #[serde(rename = "warningCode")]
    pub warning_code: String,
    /// Warning text.
    #[serde(rename = "warningStatus", skip_serializing_if = "Option::is_none")]
    pub warning_status: Option<String>,
}

/// Outcome of a bulk registry request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BulkRegistryOperationResult {
    /// True when every entry succeeded.
    #[serde(rename = "isSuccessful")]
    pub is_successful: bool,
    /// One element per failed entry.
    #[serde(default)]
    pub errors: Vec<DeviceRegistryOperationError>,
    /// One element per entry with a warning.
    #[serde(default)]
    pub warnings: Vec<DeviceRegistryOperationWarning>,
}

/// Device counts of the identity registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegistryStatistics {
    /// All devices.
    #[serde(rename = "totalDeviceCount")]
    pub total_device_count: i64,
    /// Enabled devices.
    #[serde(rename = "enabledDeviceCount")]
    pub enabled_device_count: i64,
    /// Disabled devices.
    #[serde(rename = "disabledDeviceCount")]
    pub disabled_device_count: i64,
}

/// Service-level counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServiceStatistics {
    /// Devices connected now.
    #[serde(rename = "connectedDeviceCount")]
    pub connected_device_count: i64,
}

/// A direct method call.
///
/// `payload: None` is sent as `"payload": ""`, as the Python SDK does.
///
/// ```
/// use iothub_registry::CloudToDeviceMethod;
/// let call = CloudToDeviceMethod::new("reboot")
///     .payload(serde_json::json!({"delay": 5}))
///     .response_timeout_in_seconds(30);
/// # let _ = call;
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloudToDeviceMethod {
    /// Name of the method.
    #[serde(rename = "methodName")]
    pub method_name: String,
    /// Argument: any JSON value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Seconds to wait for the method's answer.
    #[serde(
        rename = "responseTimeoutInSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_timeout_in_seconds: Option<i32>,
    /// Seconds to wait for a disconnected device to connect.
    #[serde(
        rename = "connectTimeoutInSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout_in_seconds: Option<i32>,
}

impl From<&CloudToDeviceMethod> for CloudToDeviceMethod {
    fn from(method: &CloudToDeviceMethod) -> Self {
        method.clone()
    }
}

impl CloudToDeviceMethod {
    /// A call of `method_name` with no payload and the service's default timeouts.
    pub fn new(method_name: impl Into<String>) -> Self {
        Self {
            method_name: method_name.into(),
            ..Self::default()
        }
    }

    /// Sets the payload.
    #[must_use]
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Sets the response timeout in seconds.
    #[must_use]
    pub fn response_timeout_in_seconds(mut self, seconds: i32) -> Self {
        self.response_timeout_in_seconds = Some(seconds);
        self
    }

    /// Sets the connect timeout in seconds.
    #[must_use]
    pub fn connect_timeout_in_seconds(mut self, seconds: i32) -> Self {
        self.connect_timeout_in_seconds = Some(seconds);
        self
    }
}

/// The answer of a direct method.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloudToDeviceMethodResult {
    /// Status chosen by the device code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// Value returned by the method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// A query in the IoT Hub query language (`{"query": "..."}`). Converts from `&str` and
/// `String`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySpecification {
    /// Query text, for example `SELECT * FROM devices`.
    pub query: String,
}

impl From<&str> for QuerySpecification {
    fn from(query: &str) -> Self {
        Self {
            query: query.to_owned(),
        }
    }
}

impl From<String> for QuerySpecification {
    fn from(query: String) -> Self {
        Self { query }
    }
}

/// One page of query results: twins from
/// [`query_iot_hub`](crate::RegistryManager::query_iot_hub), or the caller's own type from
/// [`query_as`](crate::RegistryManager::query_as) (projections and aggregates).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct QueryResult<T = Twin> {
    /// `x-ms-item-type`: the kind of items (for example `Twin` or `Raw`).
    pub item_type: Option<String>,
    /// The items of this page.
    pub items: Vec<T>,
    /// `x-ms-continuation`: pass it back to get the next page; `None` on the last page.
    pub continuation_token: Option<String>,
}

// ----- conversions to and from the generated types -----

from_wire_via_from! {
    wire::BulkRegistryOperationResult => BulkRegistryOperationResult,
    wire::RegistryStatistics => RegistryStatistics,
    wire::ServiceStatistics => ServiceStatistics,
    wire::CloudToDeviceMethodResult => CloudToDeviceMethodResult,
}

impl From<&SymmetricKey> for iothub_rest::SymmetricKey {
    fn from(k: &SymmetricKey) -> Self {
        iothub_rest::SymmetricKey {
            primary_key: k.primary_key.clone(),
            secondary_key: k.secondary_key.clone(),
        }
    }
}

impl From<iothub_rest::SymmetricKey> for SymmetricKey {
    fn from(k: iothub_rest::SymmetricKey) -> Self {
        SymmetricKey {
            primary_key: k.primary_key,
            secondary_key: k.secondary_key,
        }
    }
}

impl From<&X509Thumbprint> for wire::X509Thumbprint {
    fn from(t: &X509Thumbprint) -> Self {
        wire::X509Thumbprint {
            primary_thumbprint: t.primary_thumbprint.clone(),
            secondary_thumbprint: t.secondary_thumbprint.clone(),
        }
    }
}

impl From<wire::X509Thumbprint> for X509Thumbprint {
    fn from(t: wire::X509Thumbprint) -> Self {
        X509Thumbprint {
            primary_thumbprint: t.primary_thumbprint,
            secondary_thumbprint: t.secondary_thumbprint,
        }
    }
}

impl From<&AuthenticationMechanism> for wire::AuthenticationMechanism {
    fn from(a: &AuthenticationMechanism) -> Self {
        wire::AuthenticationMechanism {
            symmetric_key: a.symmetric_key.as_ref().map(Into::into),
            type_: a.auth_type.map(Into::into),
            x509_thumbprint: a.x509_thumbprint.as_ref().map(Into::into),
        }
    }
}

impl From<wire::AuthenticationMechanism> for AuthenticationMechanism {
    fn from(a: wire::AuthenticationMechanism) -> Self {
        AuthenticationMechanism {
            auth_type: a.type_.map(Into::into),
            symmetric_key: a.symmetric_key.map(Into::into),
            x509_thumbprint: a.x509_thumbprint.map(Into::into),
        }
    }
}

impl From<&DeviceCapabilities> for wire::DeviceCapabilities {
    fn from(c: &DeviceCapabilities) -> Self {
        wire::DeviceCapabilities {
            iot_edge: c.iot_edge,
        }
    }
}

impl From<wire::DeviceCapabilities> for DeviceCapabilities {
    fn from(c: wire::DeviceCapabilities) -> Self {
        DeviceCapabilities {
            iot_edge: c.iot_edge,
        }
    }
}

/// The ETag IoT Hub always sends with an identity or twin.
fn required_etag(etag: Option<String>, what: &str) -> crate::Result<ETag> {
    etag.map(ETag::new)
        .ok_or_else(|| crate::Error::InvalidResponse {
            status: None,
            body: format!("{what} without an etag"),
            source: None,
        })
}

/// A wire string that must be one of an enum's values.
fn known<T: FromStr<Err = UnknownValue>>(
    value: Option<String>,
    what: &str,
) -> crate::Result<Option<T>> {
    value
        .map(|v| {
            v.parse()
                .map_err(|UnknownValue(v)| crate::Error::InvalidResponse {
                    status: None,
                    body: format!("unknown {what} `{v}`"),
                    source: None,
                })
        })
        .transpose()
}

impl FromWire<wire::Device> for Device {
    fn from_wire(d: wire::Device) -> crate::Result<Self> {
        Ok(Device {
            etag: required_etag(d.etag, "device")?,
            device_id: d.device_id.unwrap_or_default(),
            generation_id: d.generation_id,
            status: d.status.map(Into::into),
            status_reason: d.status_reason,
            status_updated_time: d.status_updated_time,
            connection_state: d.connection_state,
            connection_state_updated_time: d.connection_state_updated_time,
            last_activity_time: d.last_activity_time,
            cloud_to_device_message_count: d.cloud_to_device_message_count,
            authentication: d.authentication.map(Into::into),
            capabilities: d.capabilities.map(Into::into),
            device_scope: d.device_scope,
            parent_scopes: d.parent_scopes,
        })
    }
}

impl FromWire<wire::Module> for Module {
    fn from_wire(m: wire::Module) -> crate::Result<Self> {
        Ok(Module {
            etag: required_etag(m.etag, "module")?,
            module_id: m.module_id.unwrap_or_default(),
            device_id: m.device_id.unwrap_or_default(),
            generation_id: m.generation_id,
            managed_by: m.managed_by,
            connection_state: m.connection_state,
            connection_state_updated_time: m.connection_state_updated_time,
            last_activity_time: m.last_activity_time,
            cloud_to_device_message_count: m.cloud_to_device_message_count,
            authentication: m.authentication.map(Into::into),
        })
    }
}

impl From<&TwinProperties> for wire::TwinProperties {
    fn from(p: &TwinProperties) -> Self {
        wire::TwinProperties {
            desired: p.desired.clone(),
            reported: p.reported.clone(),
        }
    }
}

impl From<wire::TwinProperties> for TwinProperties {
    fn from(p: wire::TwinProperties) -> Self {
        TwinProperties {
            desired: p.desired,
            reported: p.reported,
        }
    }
}

impl FromWire<wire::Twin> for Twin {
    fn from_wire(t: wire::Twin) -> crate::Result<Self> {
        Ok(Twin {
            etag: required_etag(t.etag, "twin")?,
            status: known(t.status, "twin status")?,
            authentication_type: known(t.authentication_type, "authentication type")?,
            device_id: t.device_id,
            module_id: t.module_id,
            device_etag: t.device_etag.map(ETag::new),
            version: t.version,
            tags: t.tags,
            properties: t.properties.map(Into::into),
            status_reason: t.status_reason,
            status_update_time: t.status_update_time,
            connection_state: t.connection_state,
            last_activity_time: t.last_activity_time,
            cloud_to_device_message_count: t.cloud_to_device_message_count,
            x509_thumbprint: t.x509_thumbprint.map(Into::into),
            capabilities: t.capabilities.map(Into::into),
            device_scope: t.device_scope,
            parent_scopes: t.parent_scopes,
            model_id: t.model_id,
        })
    }
}

impl From<&ExportImportDevice> for wire::ExportImportDevice {
    fn from(d: &ExportImportDevice) -> Self {
        wire::ExportImportDevice {
            authentication: d.authentication.as_ref().map(Into::into),
            capabilities: d.capabilities.as_ref().map(Into::into),
            device_scope: d.device_scope.clone(),
            e_tag: d.etag.as_ref().map(|e| e.as_str().to_owned()),
            id: Some(d.id.clone()),
            import_mode: d.import_mode.map(Into::into),
            module_id: d.module_id.clone(),
            parent_scopes: d.parent_scopes.clone(),
            properties: d.properties.as_ref().map(Into::into),
            status: d.status.map(Into::into),
            status_reason: d.status_reason.clone(),
            tags: d.tags.clone(),
            twin_e_tag: d.twin_etag.as_ref().map(|e| e.as_str().to_owned()),
        }
    }
}

impl From<wire::BulkRegistryOperationResult> for BulkRegistryOperationResult {
    fn from(r: wire::BulkRegistryOperationResult) -> Self {
        BulkRegistryOperationResult {
            is_successful: r.is_successful.unwrap_or(false),
            errors: r
                .errors
                .into_iter()
                .map(|e| DeviceRegistryOperationError {
                    device_id: e.device_id.unwrap_or_default(),
                    module_id: e.module_id,
                    error_code: e.error_code.unwrap_or_default(),
                    error_status: e.error_status,
                    operation: e.operation,
                })
                .collect(),
            warnings: r
                .warnings
                .into_iter()
                .map(|w| DeviceRegistryOperationWarning {
                    device_id: w.device_id.unwrap_or_default(),
                    warning_code: w.warning_code.unwrap_or_default(),
                    warning_status: w.warning_status,
                })
                .collect(),
        }
    }
}

impl From<wire::RegistryStatistics> for RegistryStatistics {
    fn from(s: wire::RegistryStatistics) -> Self {
        RegistryStatistics {
            total_device_count: s.total_device_count.unwrap_or(0),
            enabled_device_count: s.enabled_device_count.unwrap_or(0),
            disabled_device_count: s.disabled_device_count.unwrap_or(0),
        }
    }
}

impl From<wire::ServiceStatistics> for ServiceStatistics {
    fn from(s: wire::ServiceStatistics) -> Self {
        ServiceStatistics {
            connected_device_count: s.connected_device_count.unwrap_or(0),
        }
    }
}

impl From<&CloudToDeviceMethod> for wire::CloudToDeviceMethod {
    /// A `None` payload becomes `""`, as in the Python SDK.
    fn from(m: &CloudToDeviceMethod) -> Self {
        wire::CloudToDeviceMethod {
            connect_timeout_in_seconds: m.connect_timeout_in_seconds,
            method_name: m.method_name.clone(),
            payload: Some(
                m.payload
                    .clone()
                    .unwrap_or_else(|| Value::String(String::new())),
            ),
            response_timeout_in_seconds: m.response_timeout_in_seconds,
        }
    }
}

impl From<wire::CloudToDeviceMethodResult> for CloudToDeviceMethodResult {
    fn from(r: wire::CloudToDeviceMethodResult) -> Self {
        CloudToDeviceMethodResult {
            status: r.status,
            payload: r.payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn etag_quoting_matches_python() {
        assert_eq!(ETag::any().header_value(), "\"*\"");
        assert_eq!(ETag::new("*").header_value(), "\"*\"");
        assert!(ETag::new("*").is_any());
        assert_eq!(ETag::new("MQ==").header_value(), "\"MQ==\"");
        assert_eq!(ETag::new("\"MQ==\"").header_value(), "\"MQ==\"");
        assert_eq!(ETag::new("\"").header_value(), "\"\"\"");
        assert_eq!(ETag::new("").header_value(), "\"\"");
        assert_eq!(
            serde_json::to_value(ETag::new("MQ==")).unwrap(),
            json!("MQ==")
        );
    }

    #[test]
    fn method_without_payload_sends_empty_string() {
        let body = serde_json::to_value(wire::CloudToDeviceMethod::from(
            &CloudToDeviceMethod::new("m"),
        ))
        .unwrap();
        assert_eq!(body, json!({"methodName": "m", "payload": ""}));
        let call = CloudToDeviceMethod::new("reboot")
            .payload(json!({"x": 1}))
            .response_timeout_in_seconds(30)
            .connect_timeout_in_seconds(5);
        assert_eq!(
            serde_json::to_value(wire::CloudToDeviceMethod::from(&call)).unwrap(),
            json!({"methodName": "reboot", "payload": {"x": 1}, "responseTimeoutInSeconds": 30, "connectTimeoutInSeconds": 5})
        );
    }

    #[test]
    fn our_serde_matches_generated_serde() {
        let twin = json!({
            "deviceId": "d", "etag": "AAAA", "version": 3,
            "tags": {"x": {"y": 1}},
            "properties": {"desired": {"a": 1, "$version": 2}, "reported": {"b": true}},
            "status": "enabled", "parentScopes": ["p"], "x509Thumbprint": {"primaryThumbprint": "t"}
        });
        let ours: Twin = serde_json::from_value(twin.clone()).unwrap();
        let theirs: wire::Twin = serde_json::from_value(twin.clone()).unwrap();
        assert_eq!(Twin::from_wire(theirs).unwrap(), ours);
        assert_eq!(ours.status, Some(DeviceStatus::Enabled));
        assert_eq!(serde_json::to_value(&ours).unwrap(), twin);
    }

    #[test]
    fn responses_without_etag_or_with_unknown_values_are_refused() {
        let no_etag: wire::Twin = serde_json::from_value(json!({"deviceId": "d"})).unwrap();
        let e = Twin::from_wire(no_etag).unwrap_err();
        assert!(e.to_string().contains("unexpected response"), "{e}");
        let odd: wire::Twin =
            serde_json::from_value(json!({"deviceId": "d", "etag": "x", "status": "sleeping"}))
                .unwrap();
        assert!(Twin::from_wire(odd).is_err());
        let device: wire::Device = serde_json::from_value(json!({"deviceId": "d"})).unwrap();
        assert!(Device::from_wire(device).is_err());
        let module: wire::Module = serde_json::from_value(json!({"moduleId": "m"})).unwrap();
        assert!(Module::from_wire(module).is_err());
    }

    #[test]
    fn bulk_entry_etags_are_bare_values() {
        let entry = ExportImportDevice {
            id: "d".into(),
            import_mode: Some(ImportMode::UpdateTwinIfMatchETag),
            etag: Some(ETag::new("MQ==")),
            twin_etag: Some(ETag::new("Mg==")),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(wire::ExportImportDevice::from(&entry)).unwrap(),
            json!({"id": "d", "importMode": "updateTwinIfMatchETag", "eTag": "MQ==", "twinETag": "Mg=="})
        );
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({"id": "d", "importMode": "updateTwinIfMatchETag", "eTag": "MQ==", "twinETag": "Mg=="})
        );
    }

    #[test]
    fn bulk_entry_body_matches_python() {
        let entry = ExportImportDevice {
            id: "bulk1".into(),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(AuthenticationMechanism::sas("AAAA", "BBBB")),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(wire::ExportImportDevice::from(&entry)).unwrap(),
            json!({"id": "bulk1", "importMode": "create", "status": "enabled",
                   "authentication": {"symmetricKey": {"primaryKey": "AAAA", "secondaryKey": "BBBB"}, "type": "sas"}})
        );
    }

    #[test]
    fn debug_output_hides_device_keys() {
        let device = Device::from_wire(wire::Device {
            device_id: Some("d1".into()),
            etag: Some("MQ==".into()),
            authentication: Some(
                (&AuthenticationMechanism::sas("cHJpbWFyeQ==", "c2Vjb25k")).into(),
            ),
            ..wire::Device::default()
        })
        .unwrap();
        let entry = ExportImportDevice {
            id: "d1".into(),
            authentication: Some(AuthenticationMechanism::sas("cHJpbWFyeQ==", "c2Vjb25k")),
            ..Default::default()
        };
        for shown in [format!("{device:?}"), format!("{entry:?}")] {
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(
                !shown.contains("cHJpbWFyeQ") && !shown.contains("c2Vjb25k"),
                "{shown}"
            );
        }
    }

    #[test]
    fn enums_parse_and_print() {
        assert_eq!(
            "Enabled".parse::<DeviceStatus>().unwrap(),
            DeviceStatus::Enabled
        );
        assert_eq!(AuthenticationType::SelfSigned.to_string(), "selfSigned");
        assert_eq!(
            ImportMode::UpdateTwinIfMatchETag.as_str(),
            "updateTwinIfMatchETag"
        );
        assert!("nope".parse::<ImportMode>().is_err());
    }
}
