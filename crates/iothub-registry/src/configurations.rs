//! Configurations and IoT Edge deployments (Python's `IoTHubConfigurationManager`), and bulk
//! key regeneration (api-version 2024-03-31).

use std::collections::BTreeMap;
use std::fmt;

use iothub_core::redact::Redacted;
use iothub_rest::types as wire;
use serde::{Deserialize, Serialize};

use crate::RegistryManager;
use crate::error::{Error, Result, ServiceError};
use crate::model::{ETag, JsonObject};
use crate::operation::{FromWire, Op, decode_with, into_future, output};
use crate::retry::Idempotency;

/// What a configuration applies (`content`): desired properties for device twins
/// (`device_content`), for module twins (`module_content`), or an IoT Edge deployment
/// (`modules_content`, keyed by module name, each `{"properties.desired": {...}}`). Set one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConfigurationContent {
    /// Device twin paths and values, such as `{"properties.desired.interval": 30}`.
    #[serde(
        rename = "deviceContent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_content: Option<JsonObject>,
    /// IoT Edge deployment: module name (`$edgeAgent`, `$edgeHub`, custom modules) to its
    /// content, `{"properties.desired": {...}}`.
    #[serde(
        rename = "modulesContent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub modules_content: Option<BTreeMap<String, JsonObject>>,
    /// Module twin paths and values, for module configurations.
    #[serde(
        rename = "moduleContent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub module_content: Option<JsonObject>,
}

/// Metric queries and their latest counts (`systemMetrics` and `metrics` of a configuration).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigurationMetrics {
    /// Latest count for each metric name, such as `targetedCount` and `appliedCount` in
    /// `system_metrics`. IoT Hub refreshes them periodically, not on every change.
    #[serde(default)]
    pub results: BTreeMap<String, i64>,
    /// Query text for each metric name; system metric queries name the configuration as
    /// `configurations.[[<id>]]`.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}

/// An automatic device or module configuration, or an IoT Edge deployment
/// (`GET /configurations/{id}`).
///
/// Build one with struct-update syntax:
///
/// ```
/// use iothub_registry::{Configuration, ConfigurationContent};
/// let config = Configuration {
///     id: "telemetry-30s".into(),
///     target_condition: "tags.env = 'prod'".into(),
///     priority: 10,
///     content: ConfigurationContent {
///         device_content: Some(serde_json::from_str(r#"{"properties.desired.interval": 30}"#).unwrap()),
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// assert!(config.etag.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Configuration {
    /// Configuration id: lower-case letters, digits and `-:+%_#*?!(),=@$'`, up to 128
    /// characters.
    pub id: String,
    /// Schema version of the document (`1.0` when not set).
    #[serde(
        rename = "schemaVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_version: Option<String>,
    /// Free-form labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
    /// What the configuration applies; cannot change after creation.
    #[serde(default)]
    pub content: ConfigurationContent,
    /// Query condition over twin tags and reported properties picking the targets, such as
    /// `tags.env = 'prod'`.
    #[serde(rename = "targetCondition", default)]
    pub target_condition: String,
    /// When it was created (ISO 8601, set by IoT Hub).
    #[serde(
        rename = "createdTimeUtc",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub created_time_utc: Option<String>,
    /// When it last changed (ISO 8601, set by IoT Hub).
    #[serde(
        rename = "lastUpdatedTimeUtc",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated_time_utc: Option<String>,
    /// Higher wins when several configurations target the same twin; 0 or more.
    #[serde(default)]
    pub priority: i32,
    /// `targetedCount` and `appliedCount` (computed by IoT Hub; ignored when sent).
    #[serde(rename = "systemMetrics", default)]
    pub system_metrics: ConfigurationMetrics,
    /// Custom metric queries (set `queries`; IoT Hub fills `results`).
    #[serde(default)]
    pub metrics: ConfigurationMetrics,
    /// ETag, for [`RegistryManager::update_configuration`]; `None` before creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<ETag>,
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Queries to check with [`RegistryManager::test_configuration_queries`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigurationQueriesTestInput {
    /// Target condition to check.
    #[serde(rename = "targetCondition", default)]
    pub target_condition: String,
    /// Custom metric queries to check, by metric name.
    #[serde(rename = "customMetricQueries", default)]
    pub custom_metric_queries: BTreeMap<String, String>,
}

/// Problems found by [`RegistryManager::test_configuration_queries`]; empty strings mean none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigurationQueriesTestResponse {
    /// Error in the target condition, or empty.
    #[serde(rename = "targetConditionError", default)]
    pub target_condition_error: String,
    /// Error of each custom metric query, by metric name (empty when it is valid).
    #[serde(rename = "customMetricQueryErrors", default)]
    pub custom_metric_query_errors: BTreeMap<String, String>,
}

/// Converts between this crate's types and the generated ones through their common JSON
/// form (both carry IoT Hub's wire names).
fn convert<A: Serialize, B: serde::de::DeserializeOwned>(a: &A) -> Result<B> {
    let json = serde_json::to_vec(a).map_err(|e| Error::InvalidResponse {
        status: None,
        body: String::new(),
        source: Some(e),
    })?;
    serde_json::from_slice(&json).map_err(|e| Error::InvalidResponse {
        status: None,
        body: crate::error::body_excerpt(&json),
        source: Some(e),
    })
}

impl FromWire<wire::Configuration> for Configuration {
    fn from_wire(wire: wire::Configuration) -> Result<Self> {
        convert(&wire)
    }
}

impl FromWire<wire::ConfigurationQueriesTestResponse> for ConfigurationQueriesTestResponse {
    fn from_wire(wire: wire::ConfigurationQueriesTestResponse) -> Result<Self> {
        convert(&wire)
    }
}

/// A configuration create or update, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct ConfigurationRequest<'a> {
    rm: &'a RegistryManager,
    body: wire::Configuration,
    if_match: Option<ETag>,
}

impl ConfigurationRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::create_configuration`] or
    /// [`RegistryManager::update_configuration`].
    pub async fn send(self) -> Result<Configuration> {
        let rest = self.rm.rest();
        let id = self.body.id.clone().unwrap_or_default();
        let id = id.as_str();
        let body = &self.body;
        let if_match = self.if_match.as_ref().map(ETag::header_value);
        let if_match = if_match.as_deref();
        let (name, idempotency) = match if_match {
            None => ("create_configuration", Idempotency::Unsafe),
            Some(_) => ("update_configuration", Idempotency::Safe),
        };
        self.rm
            .run(Op::new(name, idempotency), || async move {
                output(rest.configuration_create_or_update(id, if_match, body)).await
            })
            .await
    }
}

into_future!(ConfigurationRequest => Configuration);

/// A configuration read, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetConfigurationRequest<'a> {
    rm: &'a RegistryManager,
    id: String,
}

impl GetConfigurationRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_configuration`].
    pub async fn send(self) -> Result<Configuration> {
        let rest = self.rm.rest();
        let id = self.id.as_str();
        self.rm
            .run(
                Op::new("get_configuration", Idempotency::Safe),
                || async move { output(rest.configuration_get(id)).await },
            )
            .await
    }
}

into_future!(GetConfigurationRequest => Configuration);

/// A configuration list, ready to send: optionally set
/// [`max_count`](Self::max_count), then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetConfigurationsRequest<'a> {
    rm: &'a RegistryManager,
    max_count: Option<u32>,
}

impl GetConfigurationsRequest<'_> {
    /// At most this many configurations (`?top=`); IoT Hub returns at most 20 whatever the
    /// value, and has no paging for this list. `0` returns an empty list without a request.
    pub fn max_count(mut self, max_count: u32) -> Self {
        self.max_count = Some(max_count);
        self
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_configurations`].
    pub async fn send(self) -> Result<Vec<Configuration>> {
        let rest = self.rm.rest();
        let top = match self.max_count {
            None => None,
            Some(n) => match std::num::NonZeroU32::new(n) {
                Some(top) => Some(top),
                None => return Ok(Vec::new()),
            },
        };
        self.rm
            .run(
                Op::new("get_configurations", Idempotency::Safe),
                || async move { output(rest.configuration_get_configurations(top)).await },
            )
            .await
    }
}

into_future!(GetConfigurationsRequest => Vec<Configuration>);

/// A configuration delete, ready to send: optionally set [`etag`](Self::etag), then `.await`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct DeleteConfigurationRequest<'a> {
    rm: &'a RegistryManager,
    id: String,
    etag: ETag,
}

impl DeleteConfigurationRequest<'_> {
    /// Deletes only if the configuration's ETag still matches. Without this call the delete
    /// is unconditional (`If-Match: "*"`, as Python's `etag=None`).
    pub fn etag(mut self, etag: impl Into<ETag>) -> Self {
        self.etag = etag.into();
        self
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::delete_configuration`].
    pub async fn send(self) -> Result<()> {
        let rest = self.rm.rest();
        let id = self.id.as_str();
        let if_match = self.etag.header_value();
        let if_match = if_match.as_str();
        self.rm
            .run(Op::new("delete_configuration", Idempotency::Safe), || async move {
                output::<(), ()>(rest.configuration_delete(id, Some(if_match))).await
            })
            .await
    }
}

into_future!(DeleteConfigurationRequest => ());

/// A query check, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct TestConfigurationQueriesRequest<'a> {
    rm: &'a RegistryManager,
    body: wire::ConfigurationQueriesTestInput,
}

impl TestConfigurationQueriesRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::test_configuration_queries`].
    pub async fn send(self) -> Result<ConfigurationQueriesTestResponse> {
        let rest = self.rm.rest();
        let body = &self.body;
        self.rm
            .run(
                Op::new("test_configuration_queries", Idempotency::Safe),
                || async move { output(rest.configuration_test_queries(body)).await },
            )
            .await
    }
}

into_future!(TestConfigurationQueriesRequest => ConfigurationQueriesTestResponse);

/// An IoT Edge deployment applied to one device, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct ApplyConfigurationRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    body: wire::ConfigurationContent,
}

impl ApplyConfigurationRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::apply_configuration_on_edge_device`].
    pub async fn send(self) -> Result<()> {
        let rest = self.rm.rest();
        let device_id = self.device_id.as_str();
        let body = &self.body;
        self.rm
            .run(
                Op::new("apply_configuration_on_edge_device", Idempotency::Safe).device(device_id),
                || async move {
                    output::<(), ()>(rest.configuration_apply_on_edge_device(device_id, body)).await
                },
            )
            .await
    }
}

into_future!(ApplyConfigurationRequest => ());

// ---- key regeneration ------------------------------------------------------------------

/// Which key of each identity [`RegistryManager::bulk_regenerate_device_keys`] replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegenerateKeyPolicy {
    /// The primary key only (`primaryKey`).
    PrimaryKey,
    /// The secondary key only (`secondaryKey`).
    SecondaryKey,
    /// Both keys (`both`).
    Both,
}

/// One identity whose keys are regenerated: a device, or a module of a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRegenerationTarget {
    /// Device id.
    pub device_id: String,
    /// Module id, for a module.
    pub module_id: Option<String>,
}

impl KeyRegenerationTarget {
    /// The device `device_id`.
    pub fn device(device_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            module_id: None,
        }
    }

    /// The module `module_id` of device `device_id`.
    pub fn module(device_id: impl Into<String>, module_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            module_id: Some(module_id.into()),
        }
    }
}

/// New keys of one identity. `Debug` shows only whether each key is set.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RotatedKeys {
    /// Device id.
    #[serde(rename = "id", default)]
    pub device_id: String,
    /// Module id, for a module.
    #[serde(rename = "moduleId", default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// Primary key after the call (base64).
    #[serde(
        rename = "primaryKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub primary_key: Option<String>,
    /// Secondary key after the call (base64).
    #[serde(
        rename = "secondaryKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub secondary_key: Option<String>,
}

impl fmt::Debug for RotatedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatedKeys")
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("primary_key", &Redacted(&self.primary_key))
            .field("secondary_key", &Redacted(&self.secondary_key))
            .finish()
    }
}

/// Why the keys of one identity were not regenerated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegenerateKeyError {
    /// Device id.
    #[serde(rename = "id", default)]
    pub device_id: String,
    /// Module id, for a module.
    #[serde(rename = "moduleId", default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// IoT Hub error code name, such as `DeviceNotFound` or `ModuleNotFound`.
    #[serde(rename = "errorCode", default)]
    pub error_code: String,
    /// Human-readable detail.
    #[serde(rename = "errorStatus", default)]
    pub error_status: String,
}

/// Outcome of [`RegistryManager::bulk_regenerate_device_keys`]: the identities that got new
/// keys and the ones that did not. A partial (IoT Hub's 207) or total (400) failure is this
/// value, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BulkRegenerateKeyResult {
    /// The key that was regenerated, as IoT Hub names it (`primaryKey`, `secondaryKey`,
    /// `both`).
    #[serde(rename = "policyKey", default)]
    pub policy_key: Option<String>,
    /// Identities that got new keys, with the keys.
    #[serde(rename = "rotatedKeys", default)]
    pub rotated_keys: Vec<RotatedKeys>,
    /// One entry per identity that kept its keys.
    #[serde(default)]
    pub errors: Vec<RegenerateKeyError>,
}

impl BulkRegenerateKeyResult {
    /// True when every listed identity got new keys (IoT Hub answered 200).
    pub fn is_successful(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A bulk key regeneration, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct RegenerateKeysRequest<'a> {
    rm: &'a RegistryManager,
    body: wire::BulkRegenerateDeviceKey,
}

impl RegenerateKeysRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::bulk_regenerate_device_keys`].
    pub async fn send(self) -> Result<BulkRegenerateKeyResult> {
        let rest = self.rm.rest();
        let body = &self.body;
        self.rm
            .run(
                Op::new("bulk_regenerate_device_keys", Idempotency::Safe),
                || async move {
                    match rest.service_bulk_regenerate_device_key(body).await {
                        Ok(rv) => convert(&rv.into_inner()),
                        Err(progenitor_client::Error::ErrorResponse(rv)) => {
                            let status = rv.status().as_u16();
                            let headers = rv.headers().clone();
                            let result = rv.into_inner();
                            if result.rotated_keys.is_empty() && result.errors.is_empty() {
                                // A 400 that is not a per-identity result (a bad request).
                                Err(Error::Service(ServiceError::from_parts(
                                    status, &headers, b"",
                                )))
                            } else {
                                convert(&result)
                            }
                        }
                        Err(e) => Err(decode_with(e, |rv| {
                            let status = rv.status().as_u16();
                            Error::Service(ServiceError::from_parts(status, rv.headers(), b""))
                        })
                        .await),
                    }
                },
            )
            .await
    }
}

into_future!(RegenerateKeysRequest => BulkRegenerateKeyResult);

impl RegistryManager {
    /// Creates a configuration or IoT Edge deployment (`PUT /configurations/{id}` without
    /// `If-Match`), as Python's `IoTHubConfigurationManager.create_configuration`.
    ///
    /// # Errors
    ///
    /// [`Error::is_already_exists`](crate::Error::is_already_exists) when the id is taken;
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) for an invalid id, target
    /// condition or metric query; [`Error::is_unauthorized`](crate::Error::is_unauthorized)
    /// (the policy needs `RegistryReadWrite`), [`Error::is_throttled`](crate::Error::is_throttled)
    /// once retries are spent, and the transport errors of every call.
    pub fn create_configuration(&self, configuration: &Configuration) -> ConfigurationRequest<'_> {
        self.configuration_request(configuration, None)
    }

    /// Updates a configuration's labels, priority, target condition or metrics
    /// (`PUT /configurations/{id}` with `If-Match: "<etag>"`; [`ETag::any`] for an
    /// unconditional update). Its content cannot change after creation.
    ///
    /// # Errors
    ///
    /// [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) when the ETag is
    /// stale; [`Error::is_not_found`](crate::Error::is_not_found);
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) when the content differs from
    /// the stored one; and as [`create_configuration`](Self::create_configuration).
    pub fn update_configuration(
        &self,
        configuration: &Configuration,
        etag: impl Into<ETag>,
    ) -> ConfigurationRequest<'_> {
        self.configuration_request(configuration, Some(etag.into()))
    }

    fn configuration_request(
        &self,
        configuration: &Configuration,
        if_match: Option<ETag>,
    ) -> ConfigurationRequest<'_> {
        let mut body: wire::Configuration = convert(configuration).unwrap_or_default();
        // Read-only on the wire: IoT Hub computes them.
        body.system_metrics = None;
        body.created_time_utc = None;
        body.last_updated_time_utc = None;
        ConfigurationRequest {
            rm: self,
            body,
            if_match,
        }
    }

    /// Reads a configuration with its current metrics (`GET /configurations/{id}`).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (`ConfigurationNotFound`);
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs `RegistryRead`),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_configuration(
        &self,
        configuration_id: impl Into<String>,
    ) -> GetConfigurationRequest<'_> {
        GetConfigurationRequest {
            rm: self,
            id: configuration_id.into(),
        }
    }

    /// Lists configurations (`GET /configurations?top=`); IoT Hub returns at most 20.
    ///
    /// # Errors
    ///
    /// As [`get_configuration`](Self::get_configuration), without the not-found case.
    pub fn get_configurations(&self) -> GetConfigurationsRequest<'_> {
        GetConfigurationsRequest {
            rm: self,
            max_count: None,
        }
    }

    /// Deletes a configuration (`DELETE /configurations/{id}`, `If-Match: "*"` unless
    /// [`etag`](DeleteConfigurationRequest::etag) is set).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found);
    /// [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) with a stale
    /// ETag; [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs
    /// `RegistryReadWrite`), [`Error::is_throttled`](crate::Error::is_throttled) once retries
    /// are spent, and the transport errors of every call.
    pub fn delete_configuration(
        &self,
        configuration_id: impl Into<String>,
    ) -> DeleteConfigurationRequest<'_> {
        DeleteConfigurationRequest {
            rm: self,
            id: configuration_id.into(),
            etag: ETag::any(),
        }
    }

    /// Checks a target condition and custom metric queries without saving anything
    /// (`POST /configurations/testQueries`). Invalid queries are reported in the answer, not
    /// as errors.
    ///
    /// # Errors
    ///
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs `RegistryRead`),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn test_configuration_queries(
        &self,
        input: &ConfigurationQueriesTestInput,
    ) -> TestConfigurationQueriesRequest<'_> {
        TestConfigurationQueriesRequest {
            rm: self,
            body: convert(input).unwrap_or_default(),
        }
    }

    /// Applies an IoT Edge deployment to one edge device at once
    /// (`POST /devices/{id}/applyConfigurationContent`): each module in
    /// `content.modules_content` gets the given desired properties in its twin. Only
    /// `modules_content` counts and it is required.
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (`DeviceNotFound`);
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) when the device is not an IoT
    /// Edge device or the content is malformed;
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs `RegistryReadWrite`),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn apply_configuration_on_edge_device(
        &self,
        device_id: impl Into<String>,
        content: &ConfigurationContent,
    ) -> ApplyConfigurationRequest<'_> {
        ApplyConfigurationRequest {
            rm: self,
            device_id: device_id.into(),
            body: convert(content).unwrap_or_default(),
        }
    }

    /// Has IoT Hub replace the symmetric keys of up to 100 devices and modules with keys it
    /// generates, and returns the new keys (`POST /devices/keys/regenerate`, api-version
    /// 2024-03-31; not in the Python SDK, used by the Azure CLI's `renew-key`). Identities
    /// that could not be changed (missing, or not using keys) are listed in
    /// [`BulkRegenerateKeyResult::errors`]: a partial or total failure is a value.
    ///
    /// A client pinned to api-version 2021-04-12 cannot use this operation.
    ///
    /// # Errors
    ///
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) for an empty list or a
    /// malformed entry; a 413 (`TooManyDevices`) above 100 identities;
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs `RegistryReadWrite`),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn bulk_regenerate_device_keys(
        &self,
        policy: RegenerateKeyPolicy,
        targets: impl IntoIterator<Item = KeyRegenerationTarget>,
    ) -> RegenerateKeysRequest<'_> {
        let policy_key = match policy {
            RegenerateKeyPolicy::PrimaryKey => wire::RegenerateKeyPolicy::PrimaryKey,
            RegenerateKeyPolicy::SecondaryKey => wire::RegenerateKeyPolicy::SecondaryKey,
            RegenerateKeyPolicy::Both => wire::RegenerateKeyPolicy::Both,
        };
        RegenerateKeysRequest {
            rm: self,
            body: wire::BulkRegenerateDeviceKey {
                policy_key: Some(policy_key),
                devices: targets
                    .into_iter()
                    .map(|t| wire::RegenerateDeviceKey {
                        id: t.device_id,
                        module_id: t.module_id,
                    })
                    .collect(),
            },
        }
    }
}
