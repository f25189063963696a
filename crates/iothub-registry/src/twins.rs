//! Device and module twins: get, update (PATCH) and replace (PUT), and the [`TwinPatch`]
//! that the writes send.

use serde::Serialize;
use serde_json::Value;

use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::error::Result;
use crate::model::{ETag, JsonObject, Twin};
use crate::operation::{Op, into_future, output};
use crate::retry::Idempotency;

/// The part of a twin a service may write: tags and desired properties.
///
/// `update_twin` merges it into the twin (JSON merge patch: a `null` removes a key);
/// `replace_twin` makes it the twin's whole tags and desired properties. Reported properties
/// belong to the device, and identity copies, `$metadata`, `$version` and the ETag belong to
/// IoT Hub, so a patch has no place for them.
///
/// Build one from any [`Serialize`] value (your own structs, `serde_json::json!`, maps):
///
/// ```
/// use iothub_registry::TwinPatch;
/// use serde_json::json;
///
/// #[derive(serde::Serialize)]
/// struct Telemetry { interval_s: u32, enabled: bool }
///
/// let patch = TwinPatch::new()
///     .tags(json!({"site": {"building": 4, "floor": 2}}))?
///     .desired(Telemetry { interval_s: 30, enabled: true })?;
/// assert_eq!(patch.as_desired().unwrap()["interval_s"], 30);
///
/// // or from the JSON document form, `{"tags": .., "properties": {"desired": ..}}`
/// let patch = TwinPatch::from_json(json!({"properties": {"desired": {"interval_s": null}}}))?;
///
/// // a value that is not a JSON object is refused with a typed error
/// assert!(TwinPatch::new().desired(42).is_err());
/// # let _ = patch;
/// # Ok::<(), iothub_registry::TwinPatchError>(())
/// ```
///
/// A patch cannot carry reported properties, and a [`Twin`] you read is not a patch:
///
/// ```compile_fail
/// use iothub_registry::TwinPatch;
/// let patch = TwinPatch::new().reported(serde_json::json!({"temp": 21}));
/// ```
///
/// ```compile_fail
/// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
/// let twin = rm.get_twin("dev1").await?;
/// rm.update_twin("dev1", &twin).await?; // would send reported properties back
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TwinPatch {
    tags: Option<JsonObject>,
    desired: Option<JsonObject>,
}

/// Why a [`TwinPatch`] could not be built. Nothing was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwinPatchError {
    /// Tags, desired properties or the whole document were not a JSON object.
    #[error("twin {part} must be a JSON object, not {found}")]
    NotAnObject {
        /// `tags`, `desired properties`, `properties` or `patch`.
        part: &'static str,
        /// The JSON kind that was given: `null`, `boolean`, `number`, `string` or `array`.
        found: &'static str,
    },
    /// The value could not be serialized to JSON.
    #[error("twin {part} could not be serialized to JSON")]
    Serialize {
        /// `tags` or `desired properties`.
        part: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The document holds a field a service cannot write: reported properties, an identity
    /// field (`deviceId`, `status`, ...), the ETag or version.
    #[error("a twin patch can only hold `tags` and `properties.desired`, not `{field}`")]
    NotWritable {
        /// The refused field, for example `properties.reported`.
        field: String,
    },
    /// A key starts with `$`: IoT Hub reserves those (`$metadata`, `$version`), so it
    /// refuses them in writes. Usually a read twin's properties were copied into a patch.
    #[error("twin {part} hold the read-only key `{key}`")]
    ReservedKey {
        /// `tags` or `desired properties`.
        part: &'static str,
        /// The refused key.
        key: String,
    },
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn reserved_key(object: &JsonObject) -> Option<&str> {
    object.iter().find_map(|(k, v)| {
        if k.starts_with('$') {
            Some(k.as_str())
        } else if let Value::Object(inner) = v {
            reserved_key(inner)
        } else {
            None
        }
    })
}

fn object(part: &'static str, value: Value) -> Result<JsonObject, TwinPatchError> {
    match value {
        Value::Object(map) => match reserved_key(&map) {
            Some(key) => Err(TwinPatchError::ReservedKey {
                part,
                key: key.to_owned(),
            }),
            None => Ok(map),
        },
        other => Err(TwinPatchError::NotAnObject {
            part,
            found: kind(&other),
        }),
    }
}

fn to_object(part: &'static str, value: impl Serialize) -> Result<JsonObject, TwinPatchError> {
    let value =
        serde_json::to_value(value).map_err(|source| TwinPatchError::Serialize { part, source })?;
    object(part, value)
}

impl TwinPatch {
    /// An empty patch: sends `{}` (no change for `update_twin`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tags (back-end only, arbitrary nested JSON) from any [`Serialize`] value.
    ///
    /// # Errors
    ///
    /// [`TwinPatchError::NotAnObject`] unless the value serializes to a JSON object,
    /// [`TwinPatchError::ReservedKey`] for a key starting with `$`,
    /// [`TwinPatchError::Serialize`] when serialization fails.
    pub fn tags(mut self, tags: impl Serialize) -> Result<Self, TwinPatchError> {
        self.tags = Some(to_object("tags", tags)?);
        Ok(self)
    }

    /// Sets the desired properties from any [`Serialize`] value.
    ///
    /// # Errors
    ///
    /// As [`tags`](Self::tags).
    pub fn desired(mut self, desired: impl Serialize) -> Result<Self, TwinPatchError> {
        self.desired = Some(to_object("desired properties", desired)?);
        Ok(self)
    }

    /// A patch from the twin document form: an object with at most `tags` and
    /// `properties: {"desired": ..}`, as Python's `Twin(tags=.., properties=TwinProperties(desired=..))`
    /// serializes.
    ///
    /// # Errors
    ///
    /// [`TwinPatchError::NotAnObject`] when the document, `tags`, `properties` or `desired`
    /// is not an object; [`TwinPatchError::NotWritable`] for any other field, such as
    /// `properties.reported`, `deviceId` or `etag`; [`TwinPatchError::ReservedKey`] for a key
    /// starting with `$`.
    pub fn from_json(document: Value) -> Result<Self, TwinPatchError> {
        let Value::Object(document) = document else {
            return Err(TwinPatchError::NotAnObject {
                part: "patch",
                found: kind(&document),
            });
        };
        let mut patch = TwinPatch::new();
        for (field, value) in document {
            match field.as_str() {
                "tags" => patch.tags = Some(object("tags", value)?),
                "properties" => {
                    let Value::Object(properties) = value else {
                        return Err(TwinPatchError::NotAnObject {
                            part: "properties",
                            found: kind(&value),
                        });
                    };
                    for (field, value) in properties {
                        match field.as_str() {
                            "desired" => {
                                patch.desired = Some(object("desired properties", value)?);
                            }
                            _ => {
                                return Err(TwinPatchError::NotWritable {
                                    field: format!("properties.{field}"),
                                });
                            }
                        }
                    }
                }
                _ => return Err(TwinPatchError::NotWritable { field }),
            }
        }
        Ok(patch)
    }

    /// The tags this patch sets, if any.
    pub fn as_tags(&self) -> Option<&JsonObject> {
        self.tags.as_ref()
    }

    /// The desired properties this patch sets, if any.
    pub fn as_desired(&self) -> Option<&JsonObject> {
        self.desired.as_ref()
    }

    pub(crate) fn to_wire(&self) -> wire::Twin {
        wire::Twin {
            tags: self.tags.clone().unwrap_or_default(),
            properties: self.desired.as_ref().map(|desired| wire::TwinProperties {
                desired: desired.clone(),
                reported: JsonObject::new(),
            }),
            ..wire::Twin::default()
        }
    }
}

impl From<&TwinPatch> for TwinPatch {
    fn from(patch: &TwinPatch) -> Self {
        patch.clone()
    }
}

impl TryFrom<Value> for TwinPatch {
    type Error = TwinPatchError;

    /// As [`TwinPatch::from_json`].
    fn try_from(document: Value) -> Result<Self, TwinPatchError> {
        TwinPatch::from_json(document)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TwinWrite {
    Update,
    Replace,
}

/// A twin update or replacement, ready to send: optionally set [`etag`](Self::etag), then
/// `.await` it. Resolves to the twin as stored after the write.
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
    /// Applies only if the twin's ETag still matches (`If-Match: "<etag>"`; pass
    /// `&twin.etag`). Without this call the write is unconditional (`If-Match: "*"`, as
    /// Python's `etag=None`).
    pub fn etag(mut self, etag: impl Into<ETag>) -> Self {
        self.etag = etag.into();
        self
    }

    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As the method that made this request ([`RegistryManager::update_twin`] and friends).
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

into_future!(TwinRequest => Twin);

/// A twin read (`get_twin`, `get_module_twin`), ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetTwinRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    module_id: Option<String>,
}

impl GetTwinRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_twin`].
    pub async fn send(self) -> Result<Twin> {
        let rest = self.rm.rest();
        let device_id = self.device_id.as_str();
        match self.module_id.as_deref() {
            None => {
                self.rm
                    .run(
                        Op::new("get_twin", Idempotency::Safe).device(device_id),
                        || async move { output(rest.devices_get_twin(device_id)).await },
                    )
                    .await
            }
            Some(module_id) => {
                self.rm
                    .run(
                        Op::new("get_module_twin", Idempotency::Safe)
                            .device(device_id)
                            .module(module_id),
                        || async move { output(rest.modules_get_twin(device_id, module_id)).await },
                    )
                    .await
            }
        }
    }
}

into_future!(GetTwinRequest => Twin);

impl RegistryManager {
    fn twin_request(
        &self,
        device_id: String,
        module_id: Option<String>,
        kind: TwinWrite,
        patch: TwinPatch,
    ) -> TwinRequest<'_> {
        TwinRequest {
            rm: self,
            device_id,
            module_id,
            kind,
            body: patch.to_wire(),
            etag: ETag::any(),
        }
    }

    /// Gets a device twin (`GET /twins/{id}`).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001) when the device does not
    /// exist; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_twin(&self, device_id: impl Into<String>) -> GetTwinRequest<'_> {
        GetTwinRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: None,
        }
    }

    /// Patches a device twin (`PATCH /twins/{id}`): the patch's tags and desired properties
    /// are merged into the twin, and a `null` value removes a key.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::TwinPatch;
    /// let twin = rm.get_twin("dev1").await?;
    /// let patch = TwinPatch::new().desired(serde_json::json!({"telemetry": {"interval": 30}}))?;
    /// let updated = rm.update_twin("dev1", patch).etag(&twin.etag).await?;
    /// assert_eq!(updated.desired()["telemetry"]["interval"], 30);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_precondition_failed`](crate::Error::is_precondition_failed) (412001) when
    /// the ETag is stale; [`Error::is_not_found`](crate::Error::is_not_found) (404001) when
    /// the device does not exist; [`Error::is_bad_request`](crate::Error::is_bad_request)
    /// for a patch IoT Hub refuses (too deep, too large, invalid key);
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn update_twin(
        &self,
        device_id: impl Into<String>,
        patch: impl Into<TwinPatch>,
    ) -> TwinRequest<'_> {
        self.twin_request(device_id.into(), None, TwinWrite::Update, patch.into())
    }

    /// Replaces a device twin's tags and desired properties (`PUT /twins/{id}`); the parts
    /// the patch does not set become empty.
    ///
    /// # Errors
    ///
    /// As [`update_twin`](Self::update_twin).
    pub fn replace_twin(
        &self,
        device_id: impl Into<String>,
        patch: impl Into<TwinPatch>,
    ) -> TwinRequest<'_> {
        self.twin_request(device_id.into(), None, TwinWrite::Replace, patch.into())
    }

    /// Gets a module twin (`GET /twins/{id}/modules/{mid}`).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001 or 404010) when the device
    /// or module does not exist; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_module_twin(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> GetTwinRequest<'_> {
        GetTwinRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: Some(module_id.into()),
        }
    }

    /// Patches a module twin (`PATCH /twins/{id}/modules/{mid}`), as
    /// [`update_twin`](Self::update_twin) does for a device.
    ///
    /// # Errors
    ///
    /// As [`update_twin`](Self::update_twin); a missing module is
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404010).
    pub fn update_module_twin(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        patch: impl Into<TwinPatch>,
    ) -> TwinRequest<'_> {
        self.twin_request(
            device_id.into(),
            Some(module_id.into()),
            TwinWrite::Update,
            patch.into(),
        )
    }

    /// Replaces a module twin's tags and desired properties
    /// (`PUT /twins/{id}/modules/{mid}`).
    ///
    /// # Errors
    ///
    /// As [`update_module_twin`](Self::update_module_twin).
    pub fn replace_module_twin(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        patch: impl Into<TwinPatch>,
    ) -> TwinRequest<'_> {
        self.twin_request(
            device_id.into(),
            Some(module_id.into()),
            TwinWrite::Replace,
            patch.into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(patch: &TwinPatch) -> Value {
        serde_json::to_value(patch.to_wire()).unwrap()
    }

    #[test]
    fn patch_bodies_hold_only_tags_and_desired() {
        let patch = TwinPatch::new().desired(json!({"temp": 21})).unwrap();
        assert_eq!(
            body(&patch),
            json!({"properties": {"desired": {"temp": 21}}})
        );
        let patch = TwinPatch::new().tags(json!({"a": {"b": [1, 2]}})).unwrap();
        assert_eq!(body(&patch), json!({"tags": {"a": {"b": [1, 2]}}}));
        let doc =
            json!({"tags": {"only": true}, "properties": {"desired": {"mode": "eco", "x": null}}});
        assert_eq!(body(&TwinPatch::from_json(doc.clone()).unwrap()), doc);
        assert_eq!(body(&TwinPatch::new()), json!({}));
    }

    #[test]
    fn typed_values_serialize() {
        #[derive(Serialize)]
        struct Cfg {
            interval: u32,
            name: Option<String>,
        }
        let patch = TwinPatch::new()
            .desired(Cfg {
                interval: 5,
                name: None,
            })
            .unwrap();
        assert_eq!(
            body(&patch),
            json!({"properties": {"desired": {"interval": 5, "name": null}}})
        );
    }

    #[test]
    fn refuses_what_a_service_cannot_write() {
        assert!(matches!(
            TwinPatch::new().tags(json!([1])),
            Err(TwinPatchError::NotAnObject {
                part: "tags",
                found: "array"
            })
        ));
        assert!(matches!(
            TwinPatch::new().desired("x"),
            Err(TwinPatchError::NotAnObject {
                found: "string",
                ..
            })
        ));
        let reported = TwinPatch::from_json(json!({"properties": {"reported": {"a": 1}}}));
        assert!(
            matches!(&reported, Err(TwinPatchError::NotWritable { field }) if field == "properties.reported"),
            "{reported:?}"
        );
        let identity = TwinPatch::from_json(json!({"deviceId": "d", "tags": {}}));
        assert!(matches!(identity, Err(TwinPatchError::NotWritable { .. })));
        let metadata = TwinPatch::new().desired(json!({"a": 1, "$version": 3}));
        assert!(matches!(
            metadata,
            Err(TwinPatchError::ReservedKey { ref key, .. }) if key == "$version"
        ));
        assert!(matches!(
            TwinPatch::from_json(json!(null)),
            Err(TwinPatchError::NotAnObject { part: "patch", .. })
        ));
        let e: crate::Error = TwinPatch::new().tags(1).unwrap_err().into();
        assert!(e.to_string().contains("twin patch"), "{e}");
    }
}
