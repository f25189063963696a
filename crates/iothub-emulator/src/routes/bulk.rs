//! Bulk registry operations: `POST /devices` with up to 100 `ExportImportDevice`s.
//!
//! Each device is applied on its own (inside one SQLite transaction, with a savepoint per
//! device): what succeeds is committed, what fails leaves no trace and is listed in
//! `errors`. The answer is `BulkRegistryOperationResult` with 200 when everything succeeded
//! and 400 otherwise. Requests that are wrong as a whole (not an array, empty, more than 100
//! devices, an id twice) are rejected before anything is applied.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Value, json};

use super::devices::create_device_rows;
use super::extract::{Authorized, JsonBody, RegistryWrite};
use super::{AppState, json_response};
use crate::error::{ApiError, ErrorCode};
use crate::model::{
    AuthInput, CapabilitiesInput, DeviceInput, DeviceRecord, etag_matches, validate_id,
};
use crate::store;
use crate::twin::{TwinChange, TwinUpdate};

/// Most devices in one bulk request.
pub const MAX_BULK_DEVICES: usize = 100;

/// `ExportImportDevice` as sent by clients.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportDevice {
    id: Option<String>,
    module_id: Option<String>,
    #[serde(rename = "eTag")]
    e_tag: Option<String>,
    import_mode: Option<String>,
    status: Option<String>,
    status_reason: Option<String>,
    authentication: Option<AuthInput>,
    #[serde(rename = "twinETag")]
    twin_e_tag: Option<String>,
    tags: Option<Value>,
    properties: Option<Value>,
    capabilities: Option<CapabilitiesInput>,
    device_scope: Option<String>,
    parent_scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImportMode {
    Create,
    Update,
    CreateOrUpdate,
    UpdateIfMatchETag,
    CreateOrUpdateIfMatchETag,
    Delete,
    DeleteIfMatchETag,
    UpdateTwin,
    UpdateTwinIfMatchETag,
}

impl ImportMode {
    const ALL: [(ImportMode, &'static str); 9] = [
        (ImportMode::Create, "create"),
        (ImportMode::Update, "update"),
        (ImportMode::CreateOrUpdate, "createOrUpdate"),
        (ImportMode::UpdateIfMatchETag, "updateIfMatchETag"),
        (
            ImportMode::CreateOrUpdateIfMatchETag,
            "createOrUpdateIfMatchETag",
        ),
        (ImportMode::Delete, "delete"),
        (ImportMode::DeleteIfMatchETag, "deleteIfMatchETag"),
        (ImportMode::UpdateTwin, "updateTwin"),
        (ImportMode::UpdateTwinIfMatchETag, "updateTwinIfMatchETag"),
    ];

    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        let Some(text) = text else {
            return Ok(ImportMode::CreateOrUpdate);
        };
        Self::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(text))
            .map(|(mode, _)| *mode)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "The importMode '{}' is not valid; use one of {}.",
                    text.escape_default(),
                    Self::ALL
                        .iter()
                        .map(|(_, n)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
            .unwrap_or("createOrUpdate")
    }
}

fn check_etag(given: Option<&str>, current: &str, what: &str) -> Result<(), ApiError> {
    match given.and_then(super::extract::parse_etag) {
        Some(e) if etag_matches(e, current) => Ok(()),
        _ => Err(ApiError::precondition_failed(what)),
    }
}

/// Applies one device; a client error leaves the caller's savepoint to be rolled back.
fn apply_one(
    conn: &Connection,
    state: &AppState,
    dev: &ImportDevice,
    mode: ImportMode,
) -> Result<(), ApiError> {
    let id = dev.id.as_deref().unwrap_or_default();
    validate_id("device", id)?;
    if dev.module_id.as_deref().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::invalid(
            "Module identities cannot be changed through bulk registry operations.",
        ));
    }
    let input = DeviceInput {
        device_id: Some(id.to_owned()),
        status: dev.status.clone(),
        status_reason: dev.status_reason.clone(),
        authentication: dev.authentication.clone(),
        capabilities: dev.capabilities.clone(),
        device_scope: dev.device_scope.clone(),
        parent_scopes: dev.parent_scopes.clone(),
    };
    let change = TwinChange::from_import(dev.tags.as_ref(), dev.properties.as_ref())?;
    let existing = store::get_device(conn, id)?;
    match mode {
        ImportMode::Delete | ImportMode::DeleteIfMatchETag => {
            let Some(row) = existing else {
                return Err(state.device_not_found(id));
            };
            if mode == ImportMode::DeleteIfMatchETag {
                check_etag(dev.e_tag.as_deref(), &row.record.etag(), "device")?;
            }
            store::delete_device(conn, id)?;
        }
        ImportMode::UpdateTwin | ImportMode::UpdateTwinIfMatchETag => {
            let Some(mut row) = existing else {
                return Err(state.device_not_found(id));
            };
            if mode == ImportMode::UpdateTwinIfMatchETag {
                check_etag(dev.twin_e_tag.as_deref(), &row.twin.etag(), "twin")?;
            }
            if !change.is_empty() {
                row.twin.apply(&change, TwinUpdate::Merge)?;
                store::put_device(conn, &row)?;
            }
        }
        _ => {
            let may_create = matches!(
                mode,
                ImportMode::Create
                    | ImportMode::CreateOrUpdate
                    | ImportMode::CreateOrUpdateIfMatchETag
            );
            let may_update = mode != ImportMode::Create;
            match existing {
                Some(_) if !may_update => {
                    return Err(ApiError::new(
                        ErrorCode::DeviceAlreadyExists,
                        format!(
                            "A device with id '{}' is already registered.",
                            id.escape_default()
                        ),
                    ));
                }
                None if !may_create => return Err(state.device_not_found(id)),
                Some(mut row) => {
                    if matches!(
                        mode,
                        ImportMode::UpdateIfMatchETag | ImportMode::CreateOrUpdateIfMatchETag
                    ) {
                        check_etag(dev.e_tag.as_deref(), &row.record.etag(), "device")?;
                    }
                    row.record.update(&input)?;
                    if !change.is_empty() {
                        row.twin.apply(&change, TwinUpdate::ReplaceGiven)?;
                    }
                    store::put_device(conn, &row)?;
                }
                None => {
                    let record = DeviceRecord::create(id, &input)?;
                    let mut row = create_device_rows(conn, record)?;
                    if !change.is_empty() {
                        row.twin.apply(&change, TwinUpdate::ReplaceGiven)?;
                        store::put_device(conn, &row)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `POST /devices`.
pub async fn bulk_registry(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::format(
            "The bulk registry request must be a JSON array of ExportImportDevice objects.",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            "The bulk registry request holds no devices.",
        ));
    }
    if items.len() > MAX_BULK_DEVICES {
        return Err(ApiError::new(
            ErrorCode::TooManyDevices,
            format!(
                "The bulk registry request holds {} devices; at most {MAX_BULK_DEVICES} are allowed per request.",
                items.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for item in &items {
        if let Some(id) = item.get("id").and_then(Value::as_str)
            && !seen.insert(id.to_owned())
        {
            return Err(ApiError::new(
                ErrorCode::DeviceDefinedMultipleTimes,
                format!(
                    "The device '{}' appears more than once in the request.",
                    id.escape_default()
                ),
            ));
        }
    }
    let st = state.clone();
    let errors = state
        .store
        .call(move |c| {
            let mut errors = Vec::new();
            let tx = c.transaction()?;
            for item in items {
                let raw_id = item
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let parsed = serde_json::from_value::<ImportDevice>(item)
                    .map_err(|e| ApiError::format(format!("The device entry is not valid: {e}.")));
                let (mode, outcome) = match parsed {
                    Err(e) => (None, Err(e)),
                    Ok(dev) => match ImportMode::parse(dev.import_mode.as_deref()) {
                        Err(e) => (None, Err(e)),
                        Ok(mode) => {
                            // A savepoint per device, through cached statements (what
                            // `Transaction::savepoint` does, without parsing the SQL each time).
                            tx.prepare_cached("SAVEPOINT bulk_device")?.execute([])?;
                            let outcome = apply_one(&tx, &st, &dev, mode);
                            if outcome.is_err() {
                                tx.prepare_cached("ROLLBACK TO bulk_device")?.execute([])?;
                            }
                            tx.prepare_cached("RELEASE bulk_device")?.execute([])?;
                            (Some(mode), outcome)
                        }
                    },
                };
                if let Err(e) = outcome {
                    if !e.code().status().is_client_error() {
                        return Err(e);
                    }
                    errors.push(json!({
                        "deviceId": raw_id,
                        "errorCode": e.code().name(),
                        "errorStatus": e.message(),
                        "operation": mode.map(ImportMode::name),
                    }));
                }
            }
            tx.commit()?;
            Ok(errors)
        })
        .await?;
    let ok = errors.is_empty();
    let body = json!({ "isSuccessful": ok, "errors": errors, "warnings": [] });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(json_response(status, &body, None))
}
