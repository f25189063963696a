//! Device identities: create, update, get, list, delete.

use std::future::{Future, IntoFuture};

use futures::future::BoxFuture;
use iothub_rest::types as wire;
use iothub_rest::types::ErrorDetails;

use crate::RegistryManager;
use crate::client::{Op, decode};
use crate::error::Result;
use crate::model::{AuthenticationMechanism, Device, DeviceStatus, ETag};
use crate::retry::Idempotency;

/// Awaits a generated call and converts its body into our type.
pub(crate) async fn output<T, U>(
    call: impl Future<
        Output = std::result::Result<
            iothub_rest::ResponseValue<T>,
            progenitor_client::Error<ErrorDetails>,
        >,
    >,
) -> Result<U>
where
    U: From<T>,
{
    match call.await {
        Ok(rv) => Ok(U::from(rv.into_inner())),
        Err(e) => Err(decode(e).await),
    }
}

/// A device create or update, ready to send: set optional fields, then `.await` it.
///
/// Returned by the `create_device_with_*` and `update_device_with_*` methods. The optional
/// fields are those of the Python SDK: `iot_edge` (default `false`), `status_reason`,
/// `device_scope`, `parent_scopes`.
#[must_use = "a request does nothing until it is awaited"]
pub struct DeviceRequest<'a> {
    rm: &'a RegistryManager,
    operation: &'static str,
    if_match: Option<ETag>,
    body: wire::Device,
}

impl std::fmt::Debug for DeviceRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRequest")
            .field("operation", &self.operation)
            .field("device_id", &self.body.device_id)
            .field("if_match", &self.if_match)
            .finish_non_exhaustive()
    }
}

impl<'a> DeviceRequest<'a> {
    fn new(
        rm: &'a RegistryManager,
        operation: &'static str,
        device_id: String,
        if_match: Option<ETag>,
        status: DeviceStatus,
        authentication: AuthenticationMechanism,
    ) -> Self {
        Self {
            rm,
            operation,
            if_match,
            body: wire::Device {
                device_id: Some(device_id),
                status: Some(status.into()),
                authentication: Some((&authentication).into()),
                capabilities: Some(wire::DeviceCapabilities {
                    iot_edge: Some(false),
                }),
                ..wire::Device::default()
            },
        }
    }

    /// Marks the device as an IoT Edge device (default `false`).
    pub fn iot_edge(mut self, iot_edge: bool) -> Self {
        self.body.capabilities = Some(wire::DeviceCapabilities {
            iot_edge: Some(iot_edge),
        });
        self
    }

    /// Why the status is set (up to 128 characters).
    pub fn status_reason(mut self, reason: impl Into<String>) -> Self {
        self.body.status_reason = Some(reason.into());
        self
    }

    /// Scope of the device: generated for edge devices; set on a leaf device to the parent
    /// edge device's `device_scope` to make it a child.
    pub fn device_scope(mut self, scope: impl Into<String>) -> Self {
        self.body.device_scope = Some(scope.into());
        self
    }

    /// Scopes of the parent edge device(s).
    pub fn parent_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.body.parent_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sends the request (same as `.await`).
    pub async fn send(self) -> Result<Device> {
        let if_match = self.if_match.as_ref().map(ETag::header_value);
        let idempotency = if if_match.is_some() {
            Idempotency::Safe
        } else {
            Idempotency::Unsafe
        };
        let rest = self.rm.rest();
        let body = &self.body;
        let id = body.device_id.as_deref().unwrap_or_default();
        let if_match = if_match.as_deref();
        self.rm
            .run(
                Op::new(self.operation, idempotency).device(id),
                || async move {
                    output(rest.devices_create_or_update_identity(id, if_match, body)).await
                },
            )
            .await
    }
}

impl<'a> IntoFuture for DeviceRequest<'a> {
    type Output = Result<Device>;
    type IntoFuture = BoxFuture<'a, Result<Device>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A delete (device or module), ready to send: optionally set `.etag(..)`, then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct DeleteRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    module_id: Option<String>,
    etag: ETag,
}

impl DeleteRequest<'_> {
    /// Deletes only if the identity's ETag matches (defaults to any: `If-Match: "*"`).
    pub fn etag(mut self, etag: impl Into<ETag>) -> Self {
        self.etag = etag.into();
        self
    }

    /// Sends the request (same as `.await`).
    pub async fn send(self) -> Result<()> {
        let rest = self.rm.rest();
        let if_match = self.etag.header_value();
        let if_match = if_match.as_str();
        let device_id = self.device_id.as_str();
        match self.module_id.as_deref() {
            None => {
                self.rm
                    .run(
                        Op::new("delete_device", Idempotency::Safe).device(device_id),
                        || async move {
                            output::<(), ()>(
                                rest.devices_delete_identity(device_id, Some(if_match)),
                            )
                            .await
                        },
                    )
                    .await
            }
            Some(module_id) => {
                self.rm
                    .run(
                        Op::new("delete_module", Idempotency::Safe)
                            .device(device_id)
                            .module(module_id),
                        || async move {
                            output::<(), ()>(rest.modules_delete_identity(
                                device_id,
                                module_id,
                                Some(if_match),
                            ))
                            .await
                        },
                    )
                    .await
            }
        }
    }
}

impl<'a> IntoFuture for DeleteRequest<'a> {
    type Output = Result<()>;
    type IntoFuture = BoxFuture<'a, Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl RegistryManager {
    /// Creates a device that authenticates with shared access keys.
    ///
    /// `PUT /devices/{id}` without `If-Match`. Empty keys let IoT Hub generate them. Optional
    /// fields are set on the returned request before `.await`:
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::DeviceStatus;
    /// let device = rm
    ///     .create_device_with_sas("edge1", "", "", DeviceStatus::Enabled)
    ///     .iot_edge(true)
    ///     .status_reason("provisioned by tooling")
    ///     .await?;
    /// # let _ = device; Ok(()) }
    /// ```
    pub fn create_device_with_sas(
        &self,
        device_id: impl Into<String>,
        primary_key: impl Into<String>,
        secondary_key: impl Into<String>,
        status: DeviceStatus,
    ) -> DeviceRequest<'_> {
        DeviceRequest::new(
            self,
            "create_device_with_sas",
            device_id.into(),
            None,
            status,
            AuthenticationMechanism::sas(primary_key, secondary_key),
        )
    }

    /// Creates a device that authenticates with self-signed X.509 certificates, identified by
    /// their thumbprints.
    pub fn create_device_with_x509(
        &self,
        device_id: impl Into<String>,
        primary_thumbprint: impl Into<String>,
        secondary_thumbprint: impl Into<String>,
        status: DeviceStatus,
    ) -> DeviceRequest<'_> {
        DeviceRequest::new(
            self,
            "create_device_with_x509",
            device_id.into(),
            None,
            status,
            AuthenticationMechanism::x509(primary_thumbprint, secondary_thumbprint),
        )
    }

    /// Creates a device that authenticates with X.509 certificates signed by a registered CA.
    pub fn create_device_with_certificate_authority(
        &self,
        device_id: impl Into<String>,
        status: DeviceStatus,
    ) -> DeviceRequest<'_> {
        DeviceRequest::new(
            self,
            "create_device_with_certificate_authority",
            device_id.into(),
            None,
            status,
            AuthenticationMechanism::certificate_authority(),
        )
    }

    /// Replaces a device identity with one that authenticates with shared access keys.
    ///
    /// `PUT /devices/{id}` with `If-Match: "<etag>"`; pass [`ETag::any()`] (or `None`, or
    /// `"*"`) to update whatever the current version is. A stale ETag fails with
    /// [`ServiceError::is_precondition_failed`](crate::ServiceError::is_precondition_failed).
    pub fn update_device_with_sas(
        &self,
        device_id: impl Into<String>,
        etag: impl Into<ETag>,
        primary_key: impl Into<String>,
        secondary_key: impl Into<String>,
        status: DeviceStatus,
    ) -> DeviceRequest<'_> {
        DeviceRequest::new(
            self,
            "update_device_with_sas",
            device_id.into(),
            Some(etag.into()),
            status,
            AuthenticationMechanism::sas(primary_key, secondary_key),
        )
    }

    /// Replaces a device identity with one that authenticates with X.509 thumbprints.
    pub fn update_device_with_x509(
        &self,
        device_id: impl Into<String>,
        etag: impl Into<ETag>,
        primary_thumbprint: impl Into<String>,
        secondary_thumbprint: impl Into<String>,
        status: DeviceStatus,
    ) -> DeviceRequest<'_> {
        DeviceRequest::new(
            self,
            "update_device_with_x509",
            device_id.into(),
            Some(etag.into()),
            status,
            AuthenticationMechanism::x509(primary_thumbprint, secondary_thumbprint),
        )
    }

    /// Replaces a device identity with one that authenticates with CA-signed certificates.
    pub fn update_device_with_certificate_authority(
        &self,
        device_id: impl Into<String>,
        etag: impl Into<ETag>,
        status: DeviceStatus,
    ) -> DeviceRequest<'_> {
        DeviceRequest::new(
            self,
            "update_device_with_certificate_authority",
            device_id.into(),
            Some(etag.into()),
            status,
            AuthenticationMechanism::certificate_authority(),
        )
    }

    /// Gets a device identity (`GET /devices/{id}`).
    pub async fn get_device(&self, device_id: &str) -> Result<Device> {
        let rest = self.rest();
        self.run(
            Op::new("get_device", Idempotency::Safe).device(device_id),
            || async move { output(rest.devices_get_identity(device_id)).await },
        )
        .await
    }

    /// Lists device identities (`GET /devices?top=n`). IoT Hub returns at most 1000; prefer
    /// [`query`](Self::query) to see every device. `None` lets the service choose.
    pub async fn get_devices(&self, max_number_of_devices: Option<u32>) -> Result<Vec<Device>> {
        let rest = self.rest();
        let top = max_number_of_devices.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        self.run(Op::new("get_devices", Idempotency::Safe), || async move {
            let devices: Vec<wire::Device> = output(rest.devices_get_devices(top)).await?;
            Ok(devices.into_iter().map(Device::from).collect())
        })
        .await
    }

    /// Deletes a device identity (`DELETE /devices/{id}`, `If-Match: "*"` unless
    /// `.etag(..)` is set).
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager, etag: String) -> iothub_registry::Result<()> {
    /// rm.delete_device("dev1").await?;              // any version
    /// rm.delete_device("dev2").etag(etag).await?;   // only this version
    /// # Ok(()) }
    /// ```
    pub fn delete_device(&self, device_id: impl Into<String>) -> DeleteRequest<'_> {
        DeleteRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: None,
            etag: ETag::any(),
        }
    }

    /// Deletes a module identity (`DELETE /devices/{id}/modules/{mid}`, `If-Match: "*"`
    /// unless `.etag(..)` is set).
    pub fn delete_module(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> DeleteRequest<'_> {
        DeleteRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: Some(module_id.into()),
            etag: ETag::any(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rm() -> RegistryManager {
        RegistryManager::from_connection_string(
            "HostName=h.example;SharedAccessKeyName=p;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .unwrap()
    }

    #[test]
    fn create_with_sas_body_matches_python() {
        let rm = rm();
        let req = rm.create_device_with_sas("dev1", "AAAA", "BBBB", DeviceStatus::Enabled);
        assert!(req.if_match.is_none());
        assert_eq!(
            serde_json::to_value(&req.body).unwrap(),
            json!({"deviceId": "dev1", "status": "enabled",
                   "authentication": {"symmetricKey": {"primaryKey": "AAAA", "secondaryKey": "BBBB"}, "type": "sas"},
                   "capabilities": {"iotEdge": false}})
        );
    }

    #[test]
    fn options_map_to_body_fields() {
        let rm = rm();
        let req = rm
            .update_device_with_x509("dev1", "MQ==", "t1", "t2", DeviceStatus::Disabled)
            .iot_edge(true)
            .status_reason("why")
            .device_scope("scope")
            .parent_scopes(["p1"]);
        assert_eq!(req.if_match.as_ref().unwrap().header_value(), "\"MQ==\"");
        assert_eq!(
            serde_json::to_value(&req.body).unwrap(),
            json!({"deviceId": "dev1", "status": "disabled",
                   "authentication": {"x509Thumbprint": {"primaryThumbprint": "t1", "secondaryThumbprint": "t2"}, "type": "selfSigned"},
                   "capabilities": {"iotEdge": true}, "statusReason": "why",
                   "deviceScope": "scope", "parentScopes": ["p1"]})
        );
        let req =
            rm.update_device_with_certificate_authority("d", None::<String>, DeviceStatus::Enabled);
        assert_eq!(req.if_match.as_ref().unwrap().header_value(), "\"*\"");
        assert_eq!(
            serde_json::to_value(&req.body).unwrap(),
            json!({"deviceId": "d", "status": "enabled",
                   "authentication": {"type": "certificateAuthority"},
                   "capabilities": {"iotEdge": false}})
        );
    }

    #[test]
    fn delete_defaults_to_any_etag() {
        let rm = rm();
        assert_eq!(rm.delete_device("d").etag.header_value(), "\"*\"");
        assert_eq!(
            rm.delete_device("d").etag("MQ==").etag.header_value(),
            "\"MQ==\""
        );
    }
}
