//! Device identities, purge and statistics.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::extract::{
    Authorized, JsonBody, PathParams, QueryParams, RegistryRead, RegistryWrite, ServiceOp,
    if_match, top_param,
};
use super::{AppState, json_response};
use crate::error::ApiError;
use crate::model::{DeviceInput, DeviceRecord, validate_id};

/// Most devices `GET /devices` returns.
pub const MAX_LIST_DEVICES: u32 = iothub_core::limits::MAX_LIST_DEVICES as u32;

fn device_response(record: &DeviceRecord) -> Response {
    json_response(StatusCode::OK, &record.to_wire(), Some(&record.etag()))
}

/// `GET /devices/{id}`.
pub async fn get_device(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(device_response(&state.registry.get_device(id).await?))
}

/// `PUT /devices/{id}`: create (no `If-Match`) or update (with `If-Match`).
pub async fn put_device(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<DeviceInput>,
) -> Result<Response, ApiError> {
    let record = state
        .registry
        .put_device(id, input, if_match(&headers)?)
        .await?;
    Ok(device_response(&record))
}

/// `DELETE /devices/{id}`: removes the device, its twin and its modules.
pub async fn delete_device(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .registry
        .delete_device(id, if_match(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /devices/query`: the static query route shadows a device named `query`.
pub async fn get_device_named_query(
    auth: Authorized<RegistryRead>,
    state: State<AppState>,
) -> Result<Response, ApiError> {
    get_device(auth, state, PathParams("query".to_owned())).await
}

/// `PUT /devices/query`: see [`get_device_named_query`].
pub async fn put_device_named_query(
    auth: Authorized<RegistryWrite>,
    state: State<AppState>,
    headers: HeaderMap,
    input: JsonBody<DeviceInput>,
) -> Result<Response, ApiError> {
    put_device(auth, state, PathParams("query".to_owned()), headers, input).await
}

/// `DELETE /devices/query`: see [`get_device_named_query`].
pub async fn delete_device_named_query(
    auth: Authorized<RegistryWrite>,
    state: State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete_device(auth, state, PathParams("query".to_owned()), headers).await
}

/// `GET /devices?top=N` (1–1000, default 1000), in creation order.
pub async fn list_devices(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let top = top_param(&params, MAX_LIST_DEVICES, MAX_LIST_DEVICES)?;
    let devices = state.registry.list_devices(top).await?;
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
    let Some(total) = state.c2d.purge(&id).await? else {
        return Err(state.registry.device_not_found(&id).into());
    };
    let body = json!({ "totalMessagesPurged": total, "deviceId": id, "moduleId": null });
    Ok(json_response(StatusCode::OK, &body, None))
}

/// `GET /statistics/devices`.
pub async fn device_statistics(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let counts = state.registry.device_counts().await?;
    let body = json!({
        "totalDeviceCount": counts.total,
        "enabledDeviceCount": counts.enabled,
        "disabledDeviceCount": counts.disabled,
    });
    Ok(json_response(StatusCode::OK, &body, None))
}

/// `GET /statistics/service`: `connectedDeviceCount`, the devices (not modules) connected now.
pub async fn service_statistics(
    _auth: Authorized<ServiceOp>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &json!({ "connectedDeviceCount": state.sessions.connected_devices() }),
        None,
    ))
}
