//! Device and module twins: get, update (PATCH) and replace (PUT).

use std::future::IntoFuture;

use futures::future::BoxFuture;
use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::client::Op;
use crate::devices::output;
use crate::error::Result;
use crate::model::{ETag, Twin};
use crate::retry::Idempotency;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TwinWrite {
    Update,
    Replace,
}

/// A twin update or replacement, ready to send: optionally set `.etag(..)`, then `.await`.
///
/// Both are safe to retry: a JSON merge patch applied twice gives the same twin, and so does
/// a replacement.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct TwinRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    module_id: Option<String>,
    kind: TwinWrite,
    body: wire::Twin,
    etag: ETag,
}

impl TwinRequest<'_> {
    /// Applies only if the twin's ETag matches (defaults to any: `If-Match: "*"`).
    pub fn etag(mut self, etag: impl Into<ETag>) -> Self {
        self.etag = etag.into();
        self
    }

    /// Sends the request (same as `.await`).
    pub async fn send(self) -> Result<Twin> {
        let rest = self.rm.rest();
        let if_match = self.etag.header_value();
        let if_match = Some(if_match.as_str());
        let body = &self.body;
        let device_id = self.device_id.as_str();
        let kind = self.kind;
        match self.module_id.as_deref() {
            None => {
                let name = match kind {
                    TwinWrite::Update => "update_twin",
                    TwinWrite::Replace => "replace_twin",
                };
                self.rm
                    .run(
                        Op::new(name, Idempotency::Safe).device(device_id),
                        || async move {
                            match kind {
                                TwinWrite::Update => {
                                    output(rest.devices_update_twin(device_id, if_match, body))
                                        .await
                                }
                                TwinWrite::Replace => {
                                    output(rest.devices_replace_twin(device_id, if_match, body))
                                        .await
                                }
                            }
                        },
                    )
                    .await
            }
            Some(module_id) => {
                let name = match kind {
                    TwinWrite::Update => "update_module_twin",
                    TwinWrite::Replace => "replace_module_twin",
                };
                self.rm
                    .run(
                        Op::new(name, Idempotency::Safe)
                            .device(device_id)
                            .module(module_id),
                        || async move {
                            match kind {
                                TwinWrite::Update => {
                                    output(
                                        rest.modules_update_twin(
                                            device_id, module_id, if_match, body,
                                        ),
                                    )
                                    .await
                                }
                                TwinWrite::Replace => {
                                    output(
                                        rest.modules_replace_twin(
                                            device_id, module_id, if_match, body,
                                        ),
                                    )
                                    .await
                                }
                            }
                        },
                    )
                    .await
            }
        }
    }
}

impl<'a> IntoFuture for TwinRequest<'a> {
    type Output = Result<Twin>;
    type IntoFuture = BoxFuture<'a, Result<Twin>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl RegistryManager {
    fn twin_request(
        &self,
        device_id: String,
        module_id: Option<String>,
        kind: TwinWrite,
        twin: &Twin,
    ) -> TwinRequest<'_> {
        TwinRequest {
            rm: self,
            device_id,
            module_id,
            kind,
            body: twin.into(),
            etag: ETag::any(),
        }
    }

    /// Gets a device twin (`GET /twins/{id}`).
    pub async fn get_twin(&self, device_id: &str) -> Result<Twin> {
        let rest = self.rest();
        self.run(
            Op::new("get_twin", Idempotency::Safe).device(device_id),
            || async move { output(rest.devices_get_twin(device_id)).await },
        )
        .await
    }

    /// Patches a device twin (`PATCH /twins/{id}`): tags and desired properties are merged,
    /// `null` removes a key. Every field set on `twin` is sent.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::Twin;
    /// let twin = rm.get_twin("dev1").await?;
    /// let patch = Twin::with_desired(serde_json::json!({"telemetry": {"interval": 30}})).unwrap();
    /// let updated = rm.update_twin("dev1", &patch).etag(twin.etag).await?;
    /// # let _ = updated; Ok(()) }
    /// ```
    pub fn update_twin(&self, device_id: impl Into<String>, twin: &Twin) -> TwinRequest<'_> {
        self.twin_request(device_id.into(), None, TwinWrite::Update, twin)
    }

    /// Replaces a device twin's tags and desired properties (`PUT /twins/{id}`).
    pub fn replace_twin(&self, device_id: impl Into<String>, twin: &Twin) -> TwinRequest<'_> {
        self.twin_request(device_id.into(), None, TwinWrite::Replace, twin)
    }

    /// Gets a module twin (`GET /twins/{id}/modules/{mid}`).
    pub async fn get_module_twin(&self, device_id: &str, module_id: &str) -> Result<Twin> {
        let rest = self.rest();
        self.run(
            Op::new("get_module_twin", Idempotency::Safe)
                .device(device_id)
                .module(module_id),
            || async move { output(rest.modules_get_twin(device_id, module_id)).await },
        )
        .await
    }

    /// Patches a module twin (`PATCH /twins/{id}/modules/{mid}`).
    pub fn update_module_twin(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        twin: &Twin,
    ) -> TwinRequest<'_> {
        self.twin_request(
            device_id.into(),
            Some(module_id.into()),
            TwinWrite::Update,
            twin,
        )
    }

    /// Replaces a module twin (`PUT /twins/{id}/modules/{mid}`).
    pub fn replace_module_twin(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        twin: &Twin,
    ) -> TwinRequest<'_> {
        self.twin_request(
            device_id.into(),
            Some(module_id.into()),
            TwinWrite::Replace,
            twin,
        )
    }
}
