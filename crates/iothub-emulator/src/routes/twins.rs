//! Device and module twins, and direct methods.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::extract::{Authorized, JsonBody, MethodOp, PathParams, TwinRead, TwinWrite, if_match};
use super::{AppState, json_response};
use crate::error::ApiError;
use crate::model::{etag_matches, validate_id};
use crate::store;
use crate::twin::{TwinChange, TwinUpdate};

/// Largest direct-method payload IoT Hub accepts.
const MAX_METHOD_PAYLOAD_BYTES: usize = 128 * 1024;

fn check_twin_body_ids(
    body: &Value,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(b) = body.get("deviceId").and_then(Value::as_str)
        && b != device_id
    {
        return Err(ApiError::invalid(format!(
            "The deviceId '{}' in the body does not match the id '{}' in the URL.",
            b.escape_default(),
            device_id.escape_default()
        )));
    }
    if let (Some(b), Some(m)) = (body.get("moduleId").and_then(Value::as_str), module_id)
        && b != m
    {
        return Err(ApiError::invalid(format!(
            "The moduleId '{}' in the body does not match the id '{}' in the URL.",
            b.escape_default(),
            m.escape_default()
        )));
    }
    Ok(())
}

async fn read_twin(
    state: AppState,
    device_id: String,
    module_id: Option<String>,
) -> Result<Response, ApiError> {
    validate_id("device", &device_id)?;
    if let Some(m) = &module_id {
        validate_id("module", m)?;
    }
    let st = state.clone();
    let (doc, etag) = state
        .store
        .call(move |c| match &module_id {
            None => match store::get_device(c, &device_id)? {
                Some(row) => Ok((row.twin.render_device(&row.record), row.twin.etag())),
                None => Err(st.device_not_found(&device_id)),
            },
            Some(m) => match store::get_module(c, &device_id, m)? {
                Some(row) => Ok((row.twin.render_module(&row.record), row.twin.etag())),
                None if store::get_device(c, &device_id)?.is_none() => {
                    Err(st.device_not_found(&device_id))
                }
                None => Err(st.module_not_found(&device_id, m)),
            },
        })
        .await?;
    Ok(json_response(StatusCode::OK, &doc, Some(&etag)))
}

async fn write_twin(
    state: AppState,
    device_id: String,
    module_id: Option<String>,
    headers: HeaderMap,
    body: Value,
    how: TwinUpdate,
) -> Result<Response, ApiError> {
    validate_id("device", &device_id)?;
    if let Some(m) = &module_id {
        validate_id("module", m)?;
    }
    check_twin_body_ids(&body, &device_id, module_id.as_deref())?;
    let change = TwinChange::from_twin_body(&body)?;
    let if_match = if_match(&headers)?;
    let st = state.clone();
    let (doc, etag) = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let result = match &module_id {
                None => {
                    let Some(mut row) = store::get_device(&tx, &device_id)? else {
                        return Err(st.device_not_found(&device_id));
                    };
                    if let Some(expected) = &if_match
                        && !etag_matches(expected, &row.twin.etag())
                    {
                        return Err(ApiError::precondition_failed("twin"));
                    }
                    row.twin.apply(&change, how)?;
                    store::put_device(&tx, &row)?;
                    (row.twin.render_device(&row.record), row.twin.etag())
                }
                Some(m) => {
                    let Some(mut row) = store::get_module(&tx, &device_id, m)? else {
                        if store::get_device(&tx, &device_id)?.is_none() {
                            return Err(st.device_not_found(&device_id));
                        }
                        return Err(st.module_not_found(&device_id, m));
                    };
                    if let Some(expected) = &if_match
                        && !etag_matches(expected, &row.twin.etag())
                    {
                        return Err(ApiError::precondition_failed("module twin"));
                    }
                    row.twin.apply(&change, how)?;
                    store::put_module(&tx, &row)?;
                    (row.twin.render_module(&row.record), row.twin.etag())
                }
            };
            tx.commit()?;
            Ok(result)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &doc, Some(&etag)))
}

/// `GET /twins/{id}`.
pub async fn get_device_twin(
    _auth: Authorized<TwinRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    read_twin(state, id, None).await
}

/// `PATCH /twins/{id}`: merges tags and desired properties.
pub async fn patch_device_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write_twin(state, id, None, headers, body, TwinUpdate::Merge).await
}

/// `PUT /twins/{id}`: replaces tags and desired properties.
pub async fn replace_device_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write_twin(state, id, None, headers, body, TwinUpdate::Replace).await
}

/// `GET /twins/{id}/modules/{mid}`.
pub async fn get_module_twin(
    _auth: Authorized<TwinRead>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    read_twin(state, id, Some(mid)).await
}

/// `PATCH /twins/{id}/modules/{mid}`.
pub async fn patch_module_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write_twin(state, id, Some(mid), headers, body, TwinUpdate::Merge).await
}

/// `PUT /twins/{id}/modules/{mid}`.
pub async fn replace_module_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write_twin(state, id, Some(mid), headers, body, TwinUpdate::Replace).await
}

fn timeout_field(body: &Value, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(format!(
                "{name} must be an integer from {min} to {max}."
            ))),
        },
    }
}

/// Validates a `CloudToDeviceMethod` body and returns the connect timeout.
fn validate_method_body(body: &Value) -> Result<u64, ApiError> {
    if !body.is_object() {
        return Err(ApiError::format(
            "The method invocation must be a JSON object.",
        ));
    }
    match body.get("methodName") {
        Some(Value::String(name)) if !name.trim().is_empty() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid("methodName is required."));
        }
        Some(_) => return Err(ApiError::format("methodName must be a string.")),
    }
    timeout_field(body, "responseTimeoutInSeconds", 5, 300)?;
    let connect = timeout_field(body, "connectTimeoutInSeconds", 0, 300)?.unwrap_or(0);
    let payload_len = body
        .get("payload")
        .map(|p| p.to_string().len())
        .unwrap_or(0);
    if payload_len > MAX_METHOD_PAYLOAD_BYTES {
        return Err(ApiError::new(
            crate::error::ErrorCode::MessageTooLarge,
            format!(
                "The method payload is {payload_len} bytes; the maximum is {MAX_METHOD_PAYLOAD_BYTES}."
            ),
        ));
    }
    Ok(connect)
}

async fn invoke(
    state: AppState,
    device_id: String,
    module_id: Option<String>,
    body: Value,
) -> Result<Response, ApiError> {
    validate_id("device", &device_id)?;
    if let Some(m) = &module_id {
        validate_id("module", m)?;
    }
    let connect_timeout = validate_method_body(&body)?;
    let st = state.clone();
    state
        .store
        .call(move |c| {
            if store::get_device(c, &device_id)?.is_none() {
                return Err(st.device_not_found(&device_id));
            }
            if let Some(m) = &module_id
                && store::get_module(c, &device_id, m)?.is_none()
            {
                return Err(st.module_not_found(&device_id, m));
            }
            Ok(())
        })
        .await?;
    // Devices cannot connect to the emulator yet, so every target is offline.
    Err(ApiError::device_not_online(connect_timeout))
}

/// `POST /twins/{id}/methods`.
pub async fn invoke_device_method(
    _auth: Authorized<MethodOp>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    invoke(state, id, None, body).await
}

/// `POST /twins/{id}/modules/{mid}/methods`.
pub async fn invoke_module_method(
    _auth: Authorized<MethodOp>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    invoke(state, id, Some(mid), body).await
}
