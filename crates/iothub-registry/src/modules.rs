//! Module identities: create, update, get, list (delete is in `devices.rs`).

use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::client::Op;
use crate::devices::output;
use crate::error::Result;
use crate::model::{AuthenticationMechanism, ETag, Module};
use crate::retry::Idempotency;

impl RegistryManager {
    #[allow(clippy::too_many_arguments)]
    async fn put_module(
        &self,
        operation: &'static str,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
        etag: Option<ETag>,
        authentication: AuthenticationMechanism,
        etag_in_body: bool,
    ) -> Result<Module> {
        let body = wire::Module {
            device_id: Some(device_id.to_owned()),
            module_id: Some(module_id.to_owned()),
            managed_by: managed_by.map(str::to_owned),
            authentication: Some((&authentication).into()),
            etag: if etag_in_body {
                etag.as_ref().and_then(|e| e.as_str().map(str::to_owned))
            } else {
                None
            },
            ..wire::Module::default()
        };
        let if_match = etag.as_ref().map(ETag::header_value);
        let idempotency = if if_match.is_some() {
            Idempotency::Safe
        } else {
            Idempotency::Unsafe
        };
        let rest = self.rest();
        let body = &body;
        let if_match = if_match.as_deref();
        self.run(
            Op::new(operation, idempotency)
                .device(device_id)
                .module(module_id),
            || async move {
                output(rest.modules_create_or_update_identity(device_id, module_id, if_match, body))
                    .await
            },
        )
        .await
    }

    /// Creates a module that authenticates with shared access keys
    /// (`PUT /devices/{id}/modules/{mid}` without `If-Match`). `managed_by` is optional, as in
    /// Python.
    pub async fn create_module_with_sas(
        &self,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
        primary_key: &str,
        secondary_key: &str,
    ) -> Result<Module> {
        let auth = AuthenticationMechanism::sas(primary_key, secondary_key);
        self.put_module(
            "create_module_with_sas",
            device_id,
            module_id,
            managed_by,
            None,
            auth,
            false,
        )
        .await
    }

    /// Creates a module that authenticates with self-signed X.509 certificates.
    pub async fn create_module_with_x509(
        &self,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
        primary_thumbprint: &str,
        secondary_thumbprint: &str,
    ) -> Result<Module> {
        let auth = AuthenticationMechanism::x509(primary_thumbprint, secondary_thumbprint);
        self.put_module(
            "create_module_with_x509",
            device_id,
            module_id,
            managed_by,
            None,
            auth,
            false,
        )
        .await
    }

    /// Creates a module that authenticates with CA-signed X.509 certificates.
    pub async fn create_module_with_certificate_authority(
        &self,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
    ) -> Result<Module> {
        let auth = AuthenticationMechanism::certificate_authority();
        self.put_module(
            "create_module_with_certificate_authority",
            device_id,
            module_id,
            managed_by,
            None,
            auth,
            false,
        )
        .await
    }

    /// Replaces a module identity with one that uses shared access keys
    /// (`If-Match: "<etag>"`, or `"*"` for [`ETag::any()`]).
    pub async fn update_module_with_sas(
        &self,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
        etag: impl Into<ETag>,
        primary_key: &str,
        secondary_key: &str,
    ) -> Result<Module> {
        let auth = AuthenticationMechanism::sas(primary_key, secondary_key);
        self.put_module(
            "update_module_with_sas",
            device_id,
            module_id,
            managed_by,
            Some(etag.into()),
            auth,
            false,
        )
        .await
    }

    /// Replaces a module identity with one that uses X.509 thumbprints.
    pub async fn update_module_with_x509(
        &self,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
        etag: impl Into<ETag>,
        primary_thumbprint: &str,
        secondary_thumbprint: &str,
    ) -> Result<Module> {
        let auth = AuthenticationMechanism::x509(primary_thumbprint, secondary_thumbprint);
        self.put_module(
            "update_module_with_x509",
            device_id,
            module_id,
            managed_by,
            Some(etag.into()),
            auth,
            false,
        )
        .await
    }

    /// Replaces a module identity with one that uses CA-signed certificates. Like the Python
    /// SDK, this call also sends the ETag in the body.
    pub async fn update_module_with_certificate_authority(
        &self,
        device_id: &str,
        module_id: &str,
        managed_by: Option<&str>,
        etag: impl Into<ETag>,
    ) -> Result<Module> {
        let auth = AuthenticationMechanism::certificate_authority();
        self.put_module(
            "update_module_with_certificate_authority",
            device_id,
            module_id,
            managed_by,
            Some(etag.into()),
            auth,
            true,
        )
        .await
    }

    /// Gets a module identity (`GET /devices/{id}/modules/{mid}`).
    pub async fn get_module(&self, device_id: &str, module_id: &str) -> Result<Module> {
        let rest = self.rest();
        self.run(
            Op::new("get_module", Idempotency::Safe)
                .device(device_id)
                .module(module_id),
            || async move { output(rest.modules_get_identity(device_id, module_id)).await },
        )
        .await
    }

    /// Lists the modules of a device (`GET /devices/{id}/modules`).
    pub async fn get_modules(&self, device_id: &str) -> Result<Vec<Module>> {
        let rest = self.rest();
        self.run(
            Op::new("get_modules", Idempotency::Safe).device(device_id),
            || async move {
                let modules: Vec<wire::Module> =
                    output(rest.modules_get_modules_on_device(device_id)).await?;
                Ok(modules.into_iter().map(Module::from).collect())
            },
        )
        .await
    }
}
