//! Device and module twins: read, update (merge), replace, a device's reported properties,
//! and IoT Edge configuration content.

use rusqlite::Connection;
use serde_json::{Value, json};

use super::identities::{require_device, require_module};
use super::{Ctx, Registry, RegistryError, check_etag, check_ids, is_system_module};
use crate::error::Invalid;
use crate::model::ModuleRecord;
use crate::store::{self, ModuleRow};
use crate::twin::{TwinChange, TwinState, TwinWrite};

/// A twin as IoT Hub returns it, with its ETag (unquoted).
#[derive(Debug, Clone, PartialEq)]
pub struct TwinDocument {
    /// The twin JSON (`GET /twins/{id}` shape).
    pub doc: Value,
    /// The twin's ETag.
    pub etag: String,
}

fn check_twin_body_ids(
    body: &Value,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<(), Invalid> {
    if let Some(b) = body.get("deviceId").and_then(Value::as_str)
        && b != device_id
    {
        return Err(Invalid::argument(format!(
            "The deviceId '{}' in the body does not match the id '{}' in the URL.",
            b.escape_default(),
            device_id.escape_default()
        )));
    }
    if let (Some(b), Some(m)) = (body.get("moduleId").and_then(Value::as_str), module_id)
        && b != m
    {
        return Err(Invalid::argument(format!(
            "The moduleId '{}' in the body does not match the id '{}' in the URL.",
            b.escape_default(),
            m.escape_default()
        )));
    }
    Ok(())
}

/// Who writes a twin: the service (tags and desired properties) or the device itself
/// (reported properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Service,
    Device,
}

/// Records the twin change event of a write that moved the twin's version: the twin's new
/// `version`, and the tags and properties the write gave, each section with its new
/// `$version` (the body of IoT Hub's `updateTwin` / `replaceTwin` event messages).
pub(super) fn twin_changed(
    ctx: &Ctx,
    (device_id, module_id): (&str, Option<&str>),
    change: &TwinChange,
    how: TwinWrite,
    version_before: u64,
    twin: &crate::twin::TwinState,
) {
    if twin.version == version_before || !ctx.wants_events {
        return;
    }
    let mut body = serde_json::Map::new();
    body.insert("version".into(), Value::from(twin.version));
    if let Some(tags) = &change.tags {
        body.insert("tags".into(), Value::Object(tags.clone()));
    }
    let mut properties = serde_json::Map::new();
    for (name, given, section) in [
        ("desired", &change.desired, &twin.desired),
        ("reported", &change.reported, &twin.reported),
    ] {
        if let Some(values) = given {
            let mut values = values.clone();
            values.insert("$version".into(), Value::from(section.version));
            properties.insert(name.into(), Value::Object(values));
        }
    }
    if !properties.is_empty() {
        body.insert("properties".into(), Value::Object(properties));
    }
    let kind = match how {
        TwinWrite::Update => super::RegistryEventKind::TwinUpdated,
        _ => super::RegistryEventKind::TwinReplaced,
    };
    ctx.emit(kind, device_id, module_id, || Value::Object(body));
}

/// Applies `change` to the twin of a device or module in one transaction.
fn write_twin_in(
    conn: &Connection,
    ctx: &Ctx,
    (device_id, module_id): (&str, Option<&str>),
    change: &TwinChange,
    how: TwinWrite,
    if_match: Option<&str>,
    writer: Writer,
) -> Result<TwinDocument, RegistryError> {
    match module_id {
        None => {
            let mut row = require_device(conn, ctx, device_id)?;
            check_etag(if_match, &row.twin.etag(), "twin")?;
            let before = row.twin.desired.clone();
            let version = row.twin.version;
            row.twin.apply(change, how, &ctx.now_text)?;
            store::put_device(conn, &row)?;
            ctx.desired_changed(device_id, None, &before, &row.twin.desired);
            twin_changed(ctx, (device_id, None), change, how, version, &row.twin);
            Ok(TwinDocument {
                doc: row.twin.render_device(&row.record),
                etag: row.twin.etag(),
            })
        }
        Some(m) => {
            let mut row = require_module(conn, ctx, device_id, m)?;
            check_etag(if_match, &row.twin.etag(), "module twin")?;
            let before = row.twin.desired.clone();
            let version = row.twin.version;
            row.twin.apply(change, how, &ctx.now_text)?;
            // IoT Edge system modules: tags may change, desired properties only through
            // configuration content (IoT Hub answers 401 SystemModuleModifyUnauthorizedAccess).
            if writer == Writer::Service
                && is_system_module(m)
                && row.twin.desired.values != before.values
            {
                return Err(RegistryError::SystemModule {
                    module_id: m.to_owned(),
                });
            }
            store::put_module(conn, &row)?;
            ctx.desired_changed(device_id, Some(m), &before, &row.twin.desired);
            twin_changed(ctx, (device_id, Some(m)), change, how, version, &row.twin);
            Ok(TwinDocument {
                doc: row.twin.render_module(&row.record),
                etag: row.twin.etag(),
            })
        }
    }
}

impl Registry {
    /// Reads the twin of a device (`module_id` `None`) or module.
    ///
    /// # Errors
    /// `ArgumentInvalid`, `DeviceNotFound`, `ModuleNotFound`, or a store failure.
    pub async fn get_twin(
        &self,
        device_id: String,
        module_id: Option<String>,
    ) -> Result<TwinDocument, RegistryError> {
        check_ids(&device_id, module_id.as_deref())?;
        self.read(move |c, ctx| match &module_id {
            None => {
                let row = require_device(c, ctx, &device_id)?;
                Ok(TwinDocument {
                    doc: row.twin.render_device(&row.record),
                    etag: row.twin.etag(),
                })
            }
            Some(m) => {
                let row = require_module(c, ctx, &device_id, m)?;
                Ok(TwinDocument {
                    doc: row.twin.render_module(&row.record),
                    etag: row.twin.etag(),
                })
            }
        })
        .await
    }

    /// The service's twin write: an update (`PATCH`, [`TwinWrite::Update`]) or a replacement
    /// (`PUT`, [`TwinWrite::Replace`]) of tags and desired properties from a twin body.
    ///
    /// # Errors
    /// `IotHubFormatError`/`ArgumentInvalid` for a body that breaks the twin rules
    /// ([`crate::twin`]), `SystemModuleModifyUnauthorizedAccess` when the desired properties
    /// of `$edgeAgent`/`$edgeHub` would change, `DeviceNotFound`, `ModuleNotFound`,
    /// `PreconditionFailed`, or a store failure. Nothing is written on error.
    pub async fn write_twin(
        &self,
        device_id: String,
        module_id: Option<String>,
        body: Value,
        how: TwinWrite,
        if_match: Option<String>,
    ) -> Result<TwinDocument, RegistryError> {
        check_ids(&device_id, module_id.as_deref())?;
        check_twin_body_ids(&body, &device_id, module_id.as_deref())?;
        let change = TwinChange::from_twin_body(&body, how)?;
        self.write(move |c, ctx| {
            write_twin_in(
                c,
                ctx,
                (&device_id, module_id.as_deref()),
                &change,
                how,
                if_match.as_deref(),
                Writer::Service,
            )
        })
        .await
    }

    /// A device's (or module's) update of its own reported properties: a JSON merge-patch
    /// (`null` removes), through the same twin rules as the service's writes. This is the
    /// write path of the device side (MQTT `$iothub/twin/PATCH/properties/reported/`
    /// and the HTTPS device routes).
    ///
    /// # Errors
    /// `IotHubFormatError`/`ArgumentInvalid` for a patch that breaks the twin rules,
    /// `DeviceNotFound`, `ModuleNotFound`, or a store failure.
    pub async fn update_reported_properties(
        &self,
        device_id: String,
        module_id: Option<String>,
        patch: Value,
    ) -> Result<TwinDocument, RegistryError> {
        check_ids(&device_id, module_id.as_deref())?;
        let change = TwinChange::reported_patch(&patch)?;
        self.write(move |c, ctx| {
            write_twin_in(
                c,
                ctx,
                (&device_id, module_id.as_deref()),
                &change,
                TwinWrite::Update,
                None,
                Writer::Device,
            )
        })
        .await
    }

    /// Applies IoT Edge configuration content (`POST /devices/{id}/applyConfigurationContent`
    /// with `{"modulesContent": {"<module>": {"properties.desired": {...}}}}`), as IoT Hub
    /// does: every module named gets the given desired properties as its twin's complete
    /// desired properties, and modules that do not exist yet are registered (with generated
    /// SAS keys). Everything is checked before anything is written. This is the one path that
    /// sets the system modules' desired properties.
    ///
    /// # Errors
    /// `DeviceNotFound`; `ArgumentInvalid` when the device is not an IoT Edge device or
    /// `modulesContent` is missing or empty; `IotHubFormatError` when a module entry is not
    /// `{"properties.desired": {...}}`; the twin rules as for twin updates; a store failure.
    pub async fn apply_configuration_content(
        &self,
        device_id: String,
        body: Value,
    ) -> Result<(), RegistryError> {
        check_ids(&device_id, None)?;
        let modules = match body.get("modulesContent") {
            Some(Value::Object(m)) if !m.is_empty() => m.clone(),
            None | Some(Value::Null) => {
                return Err(Invalid::argument(
                    "'modulesContent' is required: configuration content is applied to the modules of an IoT Edge device.",
                )
                .into());
            }
            Some(Value::Object(_)) => {
                return Err(Invalid::argument("'modulesContent' names no module.").into());
            }
            Some(_) => return Err(Invalid::format("'modulesContent' must be an object.").into()),
        };
        let mut changes = Vec::with_capacity(modules.len());
        for (module_id, content) in &modules {
            check_ids(&device_id, Some(module_id))?;
            if module_id.starts_with('$') && !is_system_module(module_id) {
                return Err(Invalid::argument(format!(
                    "The module id '{}' starts with '$', which IoT Hub reserves for its own modules ($edgeAgent, $edgeHub).",
                    module_id.escape_default()
                ))
                .into());
            }
            let desired = match content {
                Value::Object(c) if c.len() == 1 && c.contains_key("properties.desired") => {
                    c["properties.desired"].clone()
                }
                _ => {
                    return Err(Invalid::format(format!(
                        "The content of module '{}' must be {{\"properties.desired\": {{...}}}}.",
                        module_id.escape_default()
                    ))
                    .into());
                }
            };
            if !desired.is_object() {
                return Err(Invalid::format(format!(
                    "'properties.desired' of module '{}' must be an object.",
                    module_id.escape_default()
                ))
                .into());
            }
            let change = TwinChange::from_twin_body(
                &json!({ "properties": { "desired": desired } }),
                TwinWrite::ReplaceGiven,
            )?;
            changes.push((module_id.clone(), change));
        }
        self.write(move |c, ctx| {
            let device = require_device(c, ctx, &device_id)?;
            if !device.record.capabilities.iot_edge {
                return Err(Invalid::argument(format!(
                    "Device '{}' is not an IoT Edge device; configuration content can only be applied to IoT Edge devices.",
                    device_id.escape_default()
                ))
                .into());
            }
            for (module_id, change) in &changes {
                let mut row = match store::get_module(c, &device_id, module_id)? {
                    Some(row) => row,
                    None => ModuleRow {
                        record: ModuleRecord::system(&device_id, module_id, ctx.now),
                        twin: TwinState::new(&ctx.now_text),
                    },
                };
                let before = row.twin.desired.clone();
                let version = row.twin.version;
                row.twin.apply(change, TwinWrite::ReplaceGiven, &ctx.now_text)?;
                store::put_module(c, &row)?;
                ctx.desired_changed(&device_id, Some(module_id), &before, &row.twin.desired);
                twin_changed(
                    ctx,
                    (&device_id, Some(module_id)),
                    change,
                    TwinWrite::ReplaceGiven,
                    version,
                    &row.twin,
                );
            }
            Ok(())
        })
        .await
    }
}
