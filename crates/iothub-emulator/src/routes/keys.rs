//! `POST /devices/keys/regenerate` (api-version 2024-03-31): the hub replaces the symmetric
//! keys of many device and module identities with keys it generates.
//!
//! Body `{"policyKey": "primaryKey" | "secondaryKey" | "both", "devices": [{"id": ..,
//! "moduleId": ..}]}`, at most [`MAX_REGENERATE_ENTRIES`] entries. The answer is
//! `{"policyKey", "rotatedKeys": [{id, moduleId, primaryKey, secondaryKey}], "errors": [{id,
//! moduleId, errorCode, errorStatus}]}` with status 200 when every entry succeeded, 207 when
//! some did and 400 when none did (the status codes of the Azure CLI's generated client for
//! this operation). Every entry is decided in one transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::extract::{Authorized, JsonBody, RegistryWrite};
use super::{AppState, json_response};
use crate::error::{ApiError, ErrorCode};
use crate::model::validate_id;
use crate::registry::{KeyPolicy, KeyTarget};

/// Most identities one request may list (the Azure CLI sends batches of this size).
pub const MAX_REGENERATE_ENTRIES: usize = 100;

fn parse_policy(body: &Value) -> Result<KeyPolicy, ApiError> {
    body.get("policyKey")
        .and_then(Value::as_str)
        .and_then(KeyPolicy::from_wire)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidPolicyKey,
                "'policyKey' must be one of primaryKey, secondaryKey or both.",
            )
        })
}

fn parse_entries(body: &Value) -> Result<Vec<KeyTarget>, ApiError> {
    let Some(devices) = body.get("devices").and_then(Value::as_array) else {
        return Err(ApiError::format(
            "'devices' must be an array of {id, moduleId}.",
        ));
    };
    if devices.is_empty() {
        return Err(ApiError::invalid("'devices' lists no identity."));
    }
    if devices.len() > MAX_REGENERATE_ENTRIES {
        return Err(ApiError::new(
            ErrorCode::TooManyDevices,
            format!(
                "A key regeneration request may list at most {MAX_REGENERATE_ENTRIES} identities; it lists {}.",
                devices.len()
            ),
        ));
    }
    devices
        .iter()
        .map(|d| {
            let Some(id) = d.get("id").and_then(Value::as_str) else {
                return Err(ApiError::format(
                    "Each entry of 'devices' needs an 'id' string.",
                ));
            };
            validate_id("device", id)?;
            let module_id = match d.get("moduleId") {
                None | Some(Value::Null) => None,
                Some(Value::String(m)) => {
                    validate_id("module", m)?;
                    Some(m.clone())
                }
                Some(_) => return Err(ApiError::format("'moduleId' must be a string.")),
            };
            Ok(KeyTarget {
                device_id: id.to_owned(),
                module_id,
            })
        })
        .collect()
}

fn identity(target: &KeyTarget) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(target.device_id));
    if let Some(m) = &target.module_id {
        v.insert("moduleId".into(), json!(m));
    }
    v
}

/// `POST /devices/keys/regenerate`.
pub async fn regenerate_keys(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::format("The request must be a JSON object."));
    }
    let policy = parse_policy(&body)?;
    let entries = parse_entries(&body)?;
    let outcome = state.registry.regenerate_keys(policy, entries).await?;
    let rotated: Vec<Value> = outcome
        .rotated
        .iter()
        .map(|r| {
            let mut v = identity(&r.target);
            v.insert("primaryKey".into(), json!(r.primary_key));
            v.insert("secondaryKey".into(), json!(r.secondary_key));
            Value::Object(v)
        })
        .collect();
    let errors: Vec<Value> = outcome
        .failed
        .iter()
        .map(|f| {
            let mut v = identity(&f.target);
            v.insert("errorCode".into(), json!(f.code.name()));
            v.insert("errorStatus".into(), json!(f.message));
            Value::Object(v)
        })
        .collect();
    let status = match (rotated.is_empty(), errors.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::MULTI_STATUS,
        (true, false) => StatusCode::BAD_REQUEST,
    };
    let result = json!({ "policyKey": policy.name(), "rotatedKeys": rotated, "errors": errors });
    Ok(json_response(status, &result, None))
}
