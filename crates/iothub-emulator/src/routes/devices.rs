//! Device and module identities, purge and statistics.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::extract::{
    Authorized, JsonBody, PathParams, QueryParams, RegistryRead, RegistryWrite, ServiceOp,
    if_match, top_param,
};
use super::{AppState, json_response};
use crate::error::{ApiError, ErrorCode};
use crate::model::{
    DeviceInput, DeviceRecord, ModuleInput, ModuleRecord, etag_matches, validate_id,
};
use crate::store::{self, DeviceRow, ModuleRow};
use crate::twin::TwinState;

/// Most devices `GET /devices` returns.
pub const MAX_LIST_DEVICES: u32 = 1000;

/// Modules IoT Hub creates with every IoT Edge device.
const EDGE_SYSTEM_MODULES: [&str; 2] = ["$edgeAgent", "$edgeHub"];

fn check_body_id(kind: &str, field: &str, body: Option<&str>, url: &str) -> Result<(), ApiError> {
    match body {
        Some(b) if b != url => Err(ApiError::invalid(format!(
            "The {kind} id '{}' in the body ({field}) does not match the id '{}' in the URL.",
            b.escape_default(),
            url.escape_default()
        ))),
        _ => Ok(()),
    }
}

/// Creates a device with its twin (and the IoT Edge system modules) inside the caller's
/// transaction.
pub fn create_device_rows(conn: &Connection, record: DeviceRecord) -> Result<DeviceRow, ApiError> {
    let row = DeviceRow {
        record,
        twin: TwinState::new(),
    };
    store::put_device(conn, &row)?;
    if row.record.iot_edge {
        for module_id in EDGE_SYSTEM_MODULES {
            let module = ModuleRow {
                record: ModuleRecord::system(&row.record.device_id, module_id),
                twin: TwinState::new(),
            };
            store::put_module(conn, &module)?;
        }
    }
    Ok(row)
}

/// `GET /devices/{id}`.
pub async fn get_device(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    get_device_by_id(state, id).await
}

async fn get_device_by_id(state: AppState, id: String) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    let lookup = id.clone();
    let row = state
        .store
        .call(move |c| Ok(store::get_device(c, &lookup)?))
        .await?;
    match row {
        Some(row) => Ok(json_response(
            StatusCode::OK,
            &row.record.to_wire(),
            Some(&row.record.etag()),
        )),
        None => Err(state.device_not_found(&id)),
    }
}

/// `PUT /devices/{id}`: create (no `If-Match`) or update (with `If-Match`).
pub async fn put_device(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<DeviceInput>,
) -> Result<Response, ApiError> {
    put_device_by_id(state, id, headers, input).await
}

async fn put_device_by_id(
    state: AppState,
    id: String,
    headers: HeaderMap,
    input: DeviceInput,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    check_body_id("device", "deviceId", input.device_id.as_deref(), &id)?;
    let if_match = if_match(&headers)?;
    let st = state.clone();
    let record = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let existing = store::get_device(&tx, &id)?;
            let record = match (existing, if_match) {
                (Some(_), None) => {
                    return Err(ApiError::new(
                        ErrorCode::DeviceAlreadyExists,
                        format!(
                            "A device with id '{}' is already registered on IoT hub '{}'.",
                            id.escape_default(),
                            st.hub_name
                        ),
                    ));
                }
                (None, Some(_)) => return Err(st.device_not_found(&id)),
                (None, None) => create_device_rows(&tx, DeviceRecord::create(&id, &input)?)?.record,
                (Some(mut row), Some(expected)) => {
                    if !etag_matches(&expected, &row.record.etag()) {
                        return Err(ApiError::precondition_failed("device"));
                    }
                    row.record.update(&input)?;
                    store::put_device(&tx, &row)?;
                    row.record
                }
            };
            tx.commit()?;
            Ok(record)
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &record.to_wire(),
        Some(&record.etag()),
    ))
}

/// `DELETE /devices/{id}`: removes the device, its twin and its modules.
pub async fn delete_device(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete_device_by_id(state, id, headers).await
}

async fn delete_device_by_id(
    state: AppState,
    id: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    let if_match = if_match(&headers)?;
    let st = state.clone();
    state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let Some(row) = store::get_device(&tx, &id)? else {
                return Err(st.device_not_found(&id));
            };
            if let Some(expected) = if_match
                && !etag_matches(&expected, &row.record.etag())
            {
                return Err(ApiError::precondition_failed("device"));
            }
            store::delete_device(&tx, &id)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /devices/query`: the static query route shadows a device named `query`.
pub async fn get_device_named_query(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    get_device_by_id(state, "query".to_owned()).await
}

/// `PUT /devices/query`: see [`get_device_named_query`].
pub async fn put_device_named_query(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<DeviceInput>,
) -> Result<Response, ApiError> {
    put_device_by_id(state, "query".to_owned(), headers, input).await
}

/// `DELETE /devices/query`: see [`get_device_named_query`].
pub async fn delete_device_named_query(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete_device_by_id(state, "query".to_owned(), headers).await
}

/// `GET /devices?top=N` (1–1000, default 1000), in creation order.
pub async fn list_devices(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let top = top_param(&params, MAX_LIST_DEVICES, MAX_LIST_DEVICES)?;
    let devices = state
        .store
        .call(move |c| Ok(store::list_devices(c, top)?))
        .await?;
    let body = Value::Array(devices.iter().map(DeviceRecord::to_wire).collect());
    Ok(json_response(StatusCode::OK, &body, None))
}

/// `DELETE /devices/{id}/commands`: purges the device's cloud-to-device queue and answers
/// with the number of messages removed.
pub async fn purge_commands(
    _auth: Authorized<ServiceOp>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    let purged = state.c2d.purge(&id).await.map_err(ApiError::from)?;
    let Some(total) = purged else {
        return Err(state.device_not_found(&id));
    };
    let body = json!({ "totalMessagesPurged": total, "deviceId": id, "moduleId": null });
    Ok(json_response(StatusCode::OK, &body, None))
}

/// `GET /devices/{id}/modules`.
pub async fn list_modules(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    let lookup = id.clone();
    let modules = state
        .store
        .call(move |c| {
            if store::get_device(c, &lookup)?.is_none() {
                return Ok(None);
            }
            Ok(Some(store::list_modules(c, &lookup)?))
        })
        .await?;
    match modules {
        Some(modules) => {
            let body = Value::Array(modules.iter().map(ModuleRecord::to_wire).collect());
            Ok(json_response(StatusCode::OK, &body, None))
        }
        None => Err(state.device_not_found(&id)),
    }
}

/// `GET /devices/{id}/modules/{mid}`.
pub async fn get_module(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    validate_id("module", &mid)?;
    let (d, m) = (id.clone(), mid.clone());
    let row = state
        .store
        .call(move |c| Ok(store::get_module(c, &d, &m)?))
        .await?;
    match row {
        Some(row) => Ok(json_response(
            StatusCode::OK,
            &row.record.to_wire(),
            Some(&row.record.etag()),
        )),
        None => Err(state.module_not_found(&id, &mid)),
    }
}

/// `PUT /devices/{id}/modules/{mid}`: create (no `If-Match`) or update (with `If-Match`).
pub async fn put_module(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ModuleInput>,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    validate_id("module", &mid)?;
    check_body_id("module", "moduleId", input.module_id.as_deref(), &mid)?;
    check_body_id("device", "deviceId", input.device_id.as_deref(), &id)?;
    let if_match = if_match(&headers)?;
    let st = state.clone();
    let record = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            if store::get_device(&tx, &id)?.is_none() {
                return Err(st.device_not_found(&id));
            }
            let existing = store::get_module(&tx, &id, &mid)?;
            let record = match (existing, if_match) {
                (Some(_), None) => {
                    return Err(ApiError::new(
                        ErrorCode::ModuleAlreadyExistsOnDevice,
                        format!(
                            "A module with id '{}' is already registered on device '{}'.",
                            mid.escape_default(),
                            id.escape_default()
                        ),
                    ));
                }
                (None, Some(_)) => return Err(st.module_not_found(&id, &mid)),
                (None, None) => {
                    let row = ModuleRow {
                        record: ModuleRecord::create(&id, &mid, &input)?,
                        twin: TwinState::new(),
                    };
                    store::put_module(&tx, &row)?;
                    row.record
                }
                (Some(mut row), Some(expected)) => {
                    if !etag_matches(&expected, &row.record.etag()) {
                        return Err(ApiError::precondition_failed("module"));
                    }
                    row.record.update(&input)?;
                    store::put_module(&tx, &row)?;
                    row.record
                }
            };
            tx.commit()?;
            Ok(record)
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &record.to_wire(),
        Some(&record.etag()),
    ))
}

/// `DELETE /devices/{id}/modules/{mid}`.
pub async fn delete_module(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    validate_id("device", &id)?;
    validate_id("module", &mid)?;
    let if_match = if_match(&headers)?;
    let st = state.clone();
    state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let Some(row) = store::get_module(&tx, &id, &mid)? else {
                if store::get_device(&tx, &id)?.is_none() {
                    return Err(st.device_not_found(&id));
                }
                return Err(st.module_not_found(&id, &mid));
            };
            if let Some(expected) = if_match
                && !etag_matches(&expected, &row.record.etag())
            {
                return Err(ApiError::precondition_failed("module"));
            }
            store::delete_module(&tx, &id, &mid)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /statistics/devices`.
pub async fn device_statistics(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let (total, enabled, disabled) = state.store.call(|c| Ok(store::device_counts(c)?)).await?;
    let body = json!({
        "totalDeviceCount": total,
        "enabledDeviceCount": enabled,
        "disabledDeviceCount": disabled,
    });
    Ok(json_response(StatusCode::OK, &body, None))
}

/// `GET /statistics/service`: no device can connect yet, so the count is 0.
pub async fn service_statistics(_auth: Authorized<ServiceOp>) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &json!({ "connectedDeviceCount": 0 }),
        None,
    ))
}
