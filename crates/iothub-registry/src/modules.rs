//! Module identities: create, update, get, list, delete.

use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::error::Result;
use crate::model::{AuthenticationMechanism, ETag, Module};
use crate::operation::{Op, into_future, output};
use crate::retry::Idempotency;

/// A module create or update, ready to send: `.await` it (or call [`send`](Self::send)).
/// Resolves to the stored [`Module`].
///
/// Returned by the `create_module_with_*` and `update_module_with_*` methods.
#[must_use = "a request does nothing until it is awaited"]
pub struct ModuleRequest<'a> {
    rm: &'a RegistryManager,
    operation: &'static str,
    if_match: Option<ETag>,
    body: wire::Module,
}

impl std::fmt::Debug for ModuleRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleRequest")
            .field("operation", &self.operation)
            .field("device_id", &self.body.device_id)
            .field("module_id", &self.body.module_id)
            .field("if_match", &self.if_match)
            .finish_non_exhaustive()
    }
}

impl<'a> ModuleRequest<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        rm: &'a RegistryManager,
        operation: &'static str,
        device_id: String,
        module_id: String,
        managed_by: Option<&str>,
        if_match: Option<ETag>,
        authentication: AuthenticationMechanism,
        etag_in_body: bool,
    ) -> Self {
        let body = wire::Module {
            device_id: Some(device_id),
            module_id: Some(module_id),
            managed_by: managed_by.map(str::to_owned),
            authentication: Some((&authentication).into()),
            // Python sends the ETag in the body only for this one update; so do we.
            etag: if etag_in_body {
                if_match.as_ref().map(|e| e.as_str().to_owned())
            } else {
                None
            },
            ..wire::Module::default()
        };
        Self {
            rm,
            operation,
            if_match,
            body,
        }
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As the method that made this request (`create_module_with_*` or
    /// `update_module_with_*`).
    pub async fn send(self) -> Result<Module> {
        let if_match = self.if_match.as_ref().map(ETag::header_value);
        let idempotency = if if_match.is_some() {
            Idempotency::Safe
        } else {
            Idempotency::Unsafe
        };
        let rest = self.rm.rest();
        let body = &self.body;
        let device_id = body.device_id.as_deref().unwrap_or_default();
        let module_id = body.module_id.as_deref().unwrap_or_default();
        let if_match = if_match.as_deref();
        self.rm
            .run(
                Op::new(self.operation, idempotency)
                    .device(device_id)
                    .module(module_id),
                || async move {
                    output(
                        rest.modules_create_or_update_identity(
                            device_id, module_id, if_match, body,
                        ),
                    )
                    .await
                },
            )
            .await
    }
}

into_future!(ModuleRequest => Module);

/// A module read (`get_module`), ready to send: `.await` it. Resolves to the [`Module`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetModuleRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    module_id: String,
}

impl GetModuleRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_module`].
    pub async fn send(self) -> Result<Module> {
        let rest = self.rm.rest();
        let (device_id, module_id) = (self.device_id.as_str(), self.module_id.as_str());
        self.rm
            .run(
                Op::new("get_module", Idempotency::Safe)
                    .device(device_id)
                    .module(module_id),
                || async move { output(rest.modules_get_identity(device_id, module_id)).await },
            )
            .await
    }
}

into_future!(GetModuleRequest => Module);

/// A listing of a device's modules (`get_modules`), ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetModulesRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
}

impl GetModulesRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_modules`].
    pub async fn send(self) -> Result<Vec<Module>> {
        let rest = self.rm.rest();
        let device_id = self.device_id.as_str();
        self.rm
            .run(
                Op::new("get_modules", Idempotency::Safe).device(device_id),
                || async move { output(rest.modules_get_modules_on_device(device_id)).await },
            )
            .await
    }
}

into_future!(GetModulesRequest => Vec<Module>);

/// A module delete, ready to send: optionally set [`etag`](Self::etag), then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct DeleteModuleRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    module_id: String,
    etag: ETag,
}

impl DeleteModuleRequest<'_> {
    /// Deletes only if the module's ETag still matches (`If-Match: "<etag>"`). Without this
    /// call the delete is unconditional (`If-Match: "*"`, as Python's `etag=None`).
    pub fn etag(mut self, etag: impl Into<ETag>) -> Self {
        self.etag = etag.into();
        self
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::delete_module`].
    pub async fn send(self) -> Result<()> {
        let rest = self.rm.rest();
        let if_match = self.etag.header_value();
        let if_match = if_match.as_str();
        let (device_id, module_id) = (self.device_id.as_str(), self.module_id.as_str());
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

into_future!(DeleteModuleRequest => ());

impl RegistryManager {
    /// Creates a module that authenticates with shared access keys
    /// (`PUT /devices/{id}/modules/{mid}` without `If-Match`).
    ///
    /// `managed_by` is positional and optional, as in Python (for example `Some("IotEdge")`).
    /// Keys are base64; empty keys let IoT Hub generate them.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// let module = rm.create_module_with_sas("dev1", "mod1", None, "", "").await?;
    /// rm.update_module_with_sas("dev1", "mod1", Some("ops"), &module.etag, "", "").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_already_exists`](crate::Error::is_already_exists) (409301) when the
    /// device already has this module; [`Error::is_not_found`](crate::Error::is_not_found)
    /// (404001) when the device does not exist;
    /// [`Error::is_bad_request`](crate::Error::is_bad_request),
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. Not retried after a timeout.
    pub fn create_module_with_sas(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        managed_by: Option<&str>,
        primary_key: impl Into<String>,
        secondary_key: impl Into<String>,
    ) -> ModuleRequest<'_> {
        ModuleRequest::new(
            self,
            "create_module_with_sas",
            device_id.into(),
            module_id.into(),
            managed_by,
            None,
            AuthenticationMechanism::sas(primary_key, secondary_key),
            false,
        )
    }

    /// Creates a module that authenticates with self-signed X.509 certificates
    /// (`PUT /devices/{id}/modules/{mid}` without `If-Match`).
    ///
    /// # Errors
    ///
    /// As [`create_module_with_sas`](Self::create_module_with_sas).
    pub fn create_module_with_x509(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        managed_by: Option<&str>,
        primary_thumbprint: impl Into<String>,
        secondary_thumbprint: impl Into<String>,
    ) -> ModuleRequest<'_> {
        ModuleRequest::new(
            self,
            "create_module_with_x509",
            device_id.into(),
            module_id.into(),
            managed_by,
            None,
            AuthenticationMechanism::x509(primary_thumbprint, secondary_thumbprint),
            false,
        )
    }

    /// Creates a module that authenticates with CA-signed X.509 certificates
    /// (`PUT /devices/{id}/modules/{mid}` without `If-Match`).
    ///
    /// # Errors
    ///
    /// As [`create_module_with_sas`](Self::create_module_with_sas).
    pub fn create_module_with_certificate_authority(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        managed_by: Option<&str>,
    ) -> ModuleRequest<'_> {
        ModuleRequest::new(
            self,
            "create_module_with_certificate_authority",
            device_id.into(),
            module_id.into(),
            managed_by,
            None,
            AuthenticationMechanism::certificate_authority(),
            false,
        )
    }

    /// Replaces a module identity with one that uses shared access keys
    /// (`PUT /devices/{id}/modules/{mid}` with `If-Match: "<etag>"`; [`ETag::any()`] for any
    /// version).
    ///
    /// # Errors
    ///
    /// [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) (412001) when
    /// the ETag is stale; [`Error::is_not_found`](crate::Error::is_not_found) (404001 or
    /// 404010) when the device or module does not exist;
    /// [`Error::is_bad_request`](crate::Error::is_bad_request),
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn update_module_with_sas(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        managed_by: Option<&str>,
        etag: impl Into<ETag>,
        primary_key: impl Into<String>,
        secondary_key: impl Into<String>,
    ) -> ModuleRequest<'_> {
        ModuleRequest::new(
            self,
            "update_module_with_sas",
            device_id.into(),
            module_id.into(),
            managed_by,
            Some(etag.into()),
            AuthenticationMechanism::sas(primary_key, secondary_key),
            false,
        )
    }

    /// Replaces a module identity with one that uses X.509 thumbprints
    /// (`PUT /devices/{id}/modules/{mid}` with `If-Match: "<etag>"`).
    ///
    /// # Errors
    ///
    /// As [`update_module_with_sas`](Self::update_module_with_sas).
    pub fn update_module_with_x509(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        managed_by: Option<&str>,
        etag: impl Into<ETag>,
        primary_thumbprint: impl Into<String>,
        secondary_thumbprint: impl Into<String>,
    ) -> ModuleRequest<'_> {
        ModuleRequest::new(
            self,
            "update_module_with_x509",
            device_id.into(),
            module_id.into(),
            managed_by,
            Some(etag.into()),
            AuthenticationMechanism::x509(primary_thumbprint, secondary_thumbprint),
            false,
        )
    }

    /// Replaces a module identity with one that uses CA-signed certificates
    /// (`PUT /devices/{id}/modules/{mid}` with `If-Match: "<etag>"`). Like the Python SDK,
    /// this call also sends the ETag in the body.
    ///
    /// # Errors
    ///
    /// As [`update_module_with_sas`](Self::update_module_with_sas).
    pub fn update_module_with_certificate_authority(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        managed_by: Option<&str>,
        etag: impl Into<ETag>,
    ) -> ModuleRequest<'_> {
        ModuleRequest::new(
            self,
            "update_module_with_certificate_authority",
            device_id.into(),
            module_id.into(),
            managed_by,
            Some(etag.into()),
            AuthenticationMechanism::certificate_authority(),
            true,
        )
    }

    /// Gets a module identity (`GET /devices/{id}/modules/{mid}`).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001 or 404010) when the
    /// device or module does not exist; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_module(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> GetModuleRequest<'_> {
        GetModuleRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: module_id.into(),
        }
    }

    /// Lists the modules of a device (`GET /devices/{id}/modules`).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) when the device does not exist
    /// (IoT Hub may instead answer with an empty list);
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_modules(&self, device_id: impl Into<String>) -> GetModulesRequest<'_> {
        GetModulesRequest {
            rm: self,
            device_id: device_id.into(),
        }
    }

    /// Deletes a module identity (`DELETE /devices/{id}/modules/{mid}`), unconditionally
    /// (`If-Match: "*"`) unless [`.etag(..)`](DeleteModuleRequest::etag) is set.
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001 or 404010) when the
    /// device or module does not exist;
    /// [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) (412001) when
    /// the ETag is stale; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn delete_module(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> DeleteModuleRequest<'_> {
        DeleteModuleRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: module_id.into(),
            etag: ETag::any(),
        }
    }
}
