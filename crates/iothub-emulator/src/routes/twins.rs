//! Device and module twins, and direct methods.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::extract::{Authorized, JsonBody, MethodOp, PathParams, TwinRead, TwinWrite, if_match};
use super::{AppState, json_response};
use crate::error::ApiError;
use crate::registry::TwinDocument;
use crate::twin::TwinWrite as How;

use iothub_core::limits::{
    MAX_METHOD_PAYLOAD_BYTES, METHOD_CONNECT_TIMEOUT_SECS, METHOD_RESPONSE_TIMEOUT_SECS,
};

fn twin_response(twin: &TwinDocument) -> Response {
    json_response(StatusCode::OK, &twin.doc, Some(&twin.etag))
}

async fn write(
    state: AppState,
    (device_id, module_id): (String, Option<String>),
    headers: &HeaderMap,
    body: Value,
    how: How,
) -> Result<Response, ApiError> {
    let twin = state
        .registry
        .write_twin(device_id, module_id, body, how, if_match(headers)?)
        .await?;
    Ok(twin_response(&twin))
}

/// `GET /twins/{id}`.
pub async fn get_device_twin(
    _auth: Authorized<TwinRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(twin_response(&state.registry.get_twin(id, None).await?))
}

/// `PATCH /twins/{id}`: updates (merges) tags and desired properties.
pub async fn patch_device_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write(state, (id, None), &headers, body, How::Update).await
}

/// `PUT /twins/{id}`: replaces tags and desired properties.
pub async fn replace_device_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write(state, (id, None), &headers, body, How::Replace).await
}

/// `GET /twins/{id}/modules/{mid}`.
pub async fn get_module_twin(
    _auth: Authorized<TwinRead>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(twin_response(
        &state.registry.get_twin(id, Some(mid)).await?,
    ))
}

/// `PATCH /twins/{id}/modules/{mid}`.
pub async fn patch_module_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write(state, (id, Some(mid)), &headers, body, How::Update).await
}

/// `PUT /twins/{id}/modules/{mid}`.
pub async fn replace_module_twin(
    _auth: Authorized<TwinWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    write(state, (id, Some(mid)), &headers, body, How::Replace).await
}

fn timeout_field(
    body: &Value,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u64>, ApiError> {
    let (min, max) = (u64::from(*range.start()), u64::from(*range.end()));
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match crate::model::seconds_value(v) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(format!(
                "{name} must be an integer from {min} to {max}."
            ))),
        },
    }
}

/// Default `responseTimeoutInSeconds` (IoT Hub's 30 s).
const DEFAULT_METHOD_RESPONSE_TIMEOUT_SECS: u64 = 30;

/// Validates a `CloudToDeviceMethod` body and returns the connect and response timeouts in
/// seconds (defaults 0 and 30, as IoT Hub's direct-method page gives).
pub(crate) fn validate_method_body(body: &Value) -> Result<(u64, u64), ApiError> {
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
    let response = timeout_field(
        body,
        "responseTimeoutInSeconds",
        METHOD_RESPONSE_TIMEOUT_SECS,
    )?
    .unwrap_or(DEFAULT_METHOD_RESPONSE_TIMEOUT_SECS);
    let connect =
        timeout_field(body, "connectTimeoutInSeconds", METHOD_CONNECT_TIMEOUT_SECS)?.unwrap_or(0);
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
    Ok((connect, response))
}

async fn invoke(
    state: AppState,
    device_id: String,
    module_id: Option<String>,
    body: Value,
) -> Result<Response, ApiError> {
    crate::model::validate_id("device", &device_id)?;
    if let Some(m) = &module_id {
        crate::model::validate_id("module", m)?;
    }
    let (connect_timeout, response_timeout) = validate_method_body(&body)?;
    state
        .registry
        .require_target(device_id.clone(), module_id.clone())
        .await?;
    let call = crate::sessions::MethodCall {
        method: body["methodName"].as_str().unwrap_or_default().to_owned(),
        payload: body.get("payload").cloned().unwrap_or(Value::Null),
        connect_timeout: std::time::Duration::from_secs(connect_timeout),
        response_timeout: std::time::Duration::from_secs(response_timeout),
    };
    let identity = crate::sessions::Identity::new(device_id, module_id);
    match state.sessions.invoke(&identity, call).await {
        Ok(answer) => Ok(crate::routes::response::json_response(
            axum::http::StatusCode::OK,
            &serde_json::json!({ "status": answer.status, "payload": answer.payload }),
            None,
        )),
        Err(crate::sessions::MethodError::NotOnline) => {
            Err(ApiError::device_not_online(connect_timeout))
        }
        Err(crate::sessions::MethodError::Timeout) => {
            Err(ApiError::gateway_timeout(response_timeout))
        }
    }
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
