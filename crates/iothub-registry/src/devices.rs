//! Device identities: create, update, get, list, delete.

use std::num::NonZeroU32;

use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::error::Result;
use crate::model::{AuthenticationMechanism, Device, DeviceStatus, ETag};
use crate::operation::{Op, into_future, output};
use crate::retry::Idempotency;

/// The most devices `GET /devices` returns (its `top` ranges from 1 to 1000).
const MAX_LIST_DEVICES: u32 = 1000;

/// A device create or update, ready to send: set optional fields, then `.await` it (or call
/// [`send`](Self::send)). Resolves to the stored [`Device`].
///
/// Returned by the `create_device_with_*` and `update_device_with_*` methods. The optional
/// fields are the keyword arguments of the Python SDK: `iot_edge` (default `false`),
/// `status_reason`, `device_scope`, `parent_scopes`.
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
    ///
    /// # Errors
    ///
    /// As the method that made this request (`create_device_with_*` or
    /// `update_device_with_*`).
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

into_future!(DeviceRequest => Device);

/// A device read (`get_device`), ready to send: `.await` it. Resolves to the [`Device`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetDeviceRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
}

impl GetDeviceRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_device`].
    pub async fn send(self) -> Result<Device> {
        let rest = self.rm.rest();
        let device_id = self.device_id.as_str();
        self.rm
            .run(
                Op::new("get_device", Idempotency::Safe).device(device_id),
                || async move { output(rest.devices_get_identity(device_id)).await },
            )
            .await
    }
}

into_future!(GetDeviceRequest => Device);

/// A device listing (`get_devices`), ready to send: optionally set
/// [`max_number_of_devices`](Self::max_number_of_devices), then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetDevicesRequest<'a> {
    rm: &'a RegistryManager,
    max_number_of_devices: Option<u32>,
}

impl GetDevicesRequest<'_> {
    /// At most this many devices (`?top=n`). Defaults to the service's choice; IoT Hub
    /// returns at most 1000 either way, so a larger value asks for 1000, and 0 gives an empty
    /// list without a request (the service takes `top` from 1 to 1000).
    pub fn max_number_of_devices(mut self, max_number_of_devices: u32) -> Self {
        self.max_number_of_devices = Some(max_number_of_devices);
        self
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_devices`].
    pub async fn send(self) -> Result<Vec<Device>> {
        let rest = self.rm.rest();
        let top = match self.max_number_of_devices {
            None => None,
            Some(n) => match NonZeroU32::new(n.min(MAX_LIST_DEVICES)) {
                Some(top) => Some(top),
                None => return Ok(Vec::new()),
            },
        };
        self.rm
            .run(Op::new("get_devices", Idempotency::Safe), || async move {
                output(rest.devices_get_devices(top)).await
            })
            .await
    }
}

into_future!(GetDevicesRequest => Vec<Device>);

/// A device delete, ready to send: optionally set [`etag`](Self::etag), then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct DeleteDeviceRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    etag: ETag,
}

impl DeleteDeviceRequest<'_> {
    /// Deletes only if the identity's ETag still matches (`If-Match: "<etag>"`). Without this
    /// call the delete is unconditional (`If-Match: "*"`, as Python's `etag=None`).
    pub fn etag(mut self, etag: impl Into<ETag>) -> Self {
        self.etag = etag.into();
        self
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::delete_device`].
    pub async fn send(self) -> Result<()> {
        let rest = self.rm.rest();
        let if_match = self.etag.header_value();
        let if_match = if_match.as_str();
        let device_id = self.device_id.as_str();
        self.rm
            .run(
                Op::new("delete_device", Idempotency::Safe).device(device_id),
                || async move {
                    output::<(), ()>(rest.devices_delete_identity(device_id, Some(if_match))).await
                },
            )
            .await
    }
}

into_future!(DeleteDeviceRequest => ());

impl RegistryManager {
    /// Creates a device that authenticates with shared access keys
    /// (`PUT /devices/{id}` without `If-Match`).
    ///
    /// Keys are base64; empty keys let IoT Hub generate them. Optional fields are set on the
    /// returned request before `.await`:
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::DeviceStatus;
    /// let device = rm
    ///     .create_device_with_sas("edge1", "", "", DeviceStatus::Enabled)
    ///     .iot_edge(true)
    ///     .status_reason("provisioned by tooling")
    ///     .await?;
    /// println!("created with etag {}", device.etag);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_already_exists`](crate::Error::is_already_exists) (409001) when the id is
    /// taken; [`Error::is_bad_request`](crate::Error::is_bad_request) for an invalid id or
    /// key; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors every call can return (see [`Error`](crate::Error)). Not retried
    /// after a timeout, since the first attempt may have created the device.
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
    /// their SHA-1 or SHA-256 thumbprints (hex) (`PUT /devices/{id}` without `If-Match`).
    ///
    /// # Errors
    ///
    /// As [`create_device_with_sas`](Self::create_device_with_sas).
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

    /// Creates a device that authenticates with X.509 certificates signed by a registered
    /// certificate authority (`PUT /devices/{id}` without `If-Match`).
    ///
    /// # Errors
    ///
    /// As [`create_device_with_sas`](Self::create_device_with_sas).
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

    /// Replaces a device identity with one that authenticates with shared access keys
    /// (`PUT /devices/{id}` with `If-Match: "<etag>"`).
    ///
    /// Pass the identity's ETag (`&device.etag`) to update only the version you read, or
    /// [`ETag::any()`] to update whatever is stored.
    ///
    /// The request replaces the identity: as in Python's `update_device_with_sas`,
    /// `capabilities.iotEdge` is sent as `false` unless you call `.iot_edge(true)`. Updating
    /// an IoT Edge device without it turns it into a leaf device, which drops its device
    /// scope and releases its child devices.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::{DeviceStatus, ETag};
    /// let device = rm.get_device("dev1").await?;
    /// rm.update_device_with_sas("dev1", &device.etag, "", "", DeviceStatus::Disabled)
    ///     .status_reason("maintenance")
    ///     .await?;
    /// rm.update_device_with_sas("dev1", ETag::any(), "", "", DeviceStatus::Enabled).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) (412001) when
    /// the ETag is stale; [`Error::is_not_found`](crate::Error::is_not_found) (404001) when
    /// the device does not exist; [`Error::is_bad_request`](crate::Error::is_bad_request),
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
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

    /// Replaces a device identity with one that authenticates with X.509 thumbprints
    /// (`PUT /devices/{id}` with `If-Match: "<etag>"`).
    ///
    /// # Errors
    ///
    /// As [`update_device_with_sas`](Self::update_device_with_sas).
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

    /// Replaces a device identity with one that authenticates with CA-signed certificates
    /// (`PUT /devices/{id}` with `If-Match: "<etag>"`).
    ///
    /// # Errors
    ///
    /// As [`update_device_with_sas`](Self::update_device_with_sas).
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
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// match rm.get_device("dev1").await {
    ///     Ok(device) => println!("{:?}", device.status),
    ///     Err(e) if e.is_not_found() => println!("no such device"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001) when the device does not
    /// exist; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_device(&self, device_id: impl Into<String>) -> GetDeviceRequest<'_> {
        GetDeviceRequest {
            rm: self,
            device_id: device_id.into(),
        }
    }

    /// Lists device identities (`GET /devices`, `?top=n` with
    /// [`max_number_of_devices`](GetDevicesRequest::max_number_of_devices)). IoT Hub returns
    /// at most 1000; use [`query_iot_hub`](Self::query_iot_hub) to see every device.
    ///
    /// # Errors
    ///
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_devices(&self) -> GetDevicesRequest<'_> {
        GetDevicesRequest {
            rm: self,
            max_number_of_devices: None,
        }
    }

    /// Deletes a device identity and its modules (`DELETE /devices/{id}`), unconditionally
    /// (`If-Match: "*"`) unless [`.etag(..)`](DeleteDeviceRequest::etag) is set.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// rm.delete_device("dev1").await?; // any version
    /// let device = rm.get_device("dev2").await?;
    /// rm.delete_device("dev2").etag(&device.etag).await?; // only this version
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001) when the device does not
    /// exist; [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) (412001)
    /// when the ETag is stale; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. A retried delete whose first attempt landed reports
    /// `is_not_found`.
    pub fn delete_device(&self, device_id: impl Into<String>) -> DeleteDeviceRequest<'_> {
        DeleteDeviceRequest {
            rm: self,
            device_id: device_id.into(),
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
            .update_device_with_x509(
                "dev1",
                ETag::new("MQ=="),
                "t1",
                "t2",
                DeviceStatus::Disabled,
            )
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
            rm.update_device_with_certificate_authority("d", ETag::any(), DeviceStatus::Enabled);
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
            rm.delete_device("d")
                .etag(ETag::new("MQ=="))
                .etag
                .header_value(),
            "\"MQ==\""
        );
    }
}
