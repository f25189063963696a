//! The registry as an export job writes it: one `ExportImportDevice` JSON object per line,
//! each device followed by its modules (IoT Hub's "Import and export IoT Hub device
//! identities in bulk" page). Lines carry what an import needs to rebuild the identity: ids,
//! ETags, status, authentication (keys unless excluded), tags, desired and reported
//! properties, capabilities and scopes.

use serde_json::{Map, Value, json};

use super::{Registry, RegistryError};
use crate::model::AuthenticationMechanism;
use crate::store::{self, DeviceRow, ModuleRow};

/// One page of an export.
#[derive(Debug, Clone, Default)]
pub struct ExportPage {
    /// The page's lines, each ending in `\n`.
    pub text: String,
    /// Devices on the page.
    pub devices: usize,
    /// Module lines on the page.
    pub modules: usize,
    /// The last device id of the page: where the next page starts (`None`: the registry has
    /// no device after the cursor).
    pub last: Option<String>,
}

/// The `authentication` object of an export line; keys become `null` when excluded.
fn export_auth(auth: &AuthenticationMechanism, keys: bool) -> Value {
    let mut wire = auth.to_wire();
    if !keys && let Some(sym) = wire.get_mut("symmetricKey") {
        *sym = json!({ "primaryKey": null, "secondaryKey": null });
    }
    wire
}

/// Copies `tags` and `properties` from a rendered twin into an export line.
fn copy_twin(line: &mut Map<String, Value>, mut twin: Value) {
    if let Some(etag) = twin.get("etag").cloned() {
        line.insert("twinETag".into(), etag);
    }
    for key in ["tags", "properties"] {
        if let Some(v) = twin.get_mut(key).map(Value::take) {
            line.insert(key.into(), v);
        }
    }
}

fn device_line(row: &DeviceRow, keys: bool) -> Value {
    let r = &row.record;
    let mut line = Map::new();
    line.insert("id".into(), Value::String(r.device_id.clone()));
    line.insert("eTag".into(), Value::String(r.etag()));
    line.insert("status".into(), Value::String(r.status.as_str().into()));
    if let Some(reason) = &r.status_reason {
        line.insert("statusReason".into(), Value::String(reason.clone()));
    }
    line.insert("authentication".into(), export_auth(&r.auth, keys));
    copy_twin(&mut line, row.twin.render_device(r));
    line.insert("capabilities".into(), json!(r.capabilities));
    if let Some(scope) = &r.device_scope {
        line.insert("deviceScope".into(), Value::String(scope.clone()));
    }
    line.insert("parentScopes".into(), json!(r.parent_scopes));
    Value::Object(line)
}

fn module_line(row: &ModuleRow, keys: bool) -> Value {
    let r = &row.record;
    let mut line = Map::new();
    line.insert("id".into(), Value::String(r.device_id.clone()));
    line.insert("moduleId".into(), Value::String(r.module_id.clone()));
    line.insert("eTag".into(), Value::String(r.etag()));
    if let Some(by) = &r.managed_by {
        line.insert("managedBy".into(), Value::String(by.clone()));
    }
    line.insert("authentication".into(), export_auth(&r.auth, keys));
    copy_twin(&mut line, row.twin.render_module(r));
    Value::Object(line)
}

impl Registry {
    /// Renders up to `max_devices` devices whose ids sort after `after` (`None`: from the
    /// first), each followed by its modules, as export lines. `keys: false` writes `null`
    /// keys (the job's `excludeKeysInExport`). The IoT Edge system modules (`$edgeAgent`,
    /// `$edgeHub`) are exported too; an import recreates them with their device and gives
    /// them these keys and twins.
    ///
    /// # Errors
    /// A store failure.
    pub async fn export_page(
        &self,
        after: Option<String>,
        max_devices: usize,
        keys: bool,
    ) -> Result<ExportPage, RegistryError> {
        self.read(move |c, _| {
            let after = after.unwrap_or_default();
            let devices = store::devices_after(c, &after, max_devices)?;
            let Some(last) = devices.last().map(|d| d.record.device_id.clone()) else {
                return Ok(ExportPage::default());
            };
            let modules = store::modules_between(c, &after, &last)?;
            let mut page = ExportPage {
                devices: devices.len(),
                last: Some(last),
                ..ExportPage::default()
            };
            let mut modules = modules.into_iter().peekable();
            for device in &devices {
                page.text.push_str(&device_line(device, keys).to_string());
                page.text.push('\n');
                while let Some(m) =
                    modules.next_if(|m| m.record.device_id == device.record.device_id)
                {
                    page.text.push_str(&module_line(&m, keys).to_string());
                    page.text.push('\n');
                    page.modules += 1;
                }
            }
            Ok(page)
        })
        .await
    }
}
