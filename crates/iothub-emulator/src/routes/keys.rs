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
use crate::model::{AuthType, generate_key, validate_id};
use crate::store;

/// Most identities one request may list (the Azure CLI sends batches of this size).
pub const MAX_REGENERATE_ENTRIES: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyKey {
    Primary,
    Secondary,
    Both,
}

impl PolicyKey {
    fn parse(body: &Value) -> Result<Self, ApiError> {
        match body.get("policyKey").and_then(Value::as_str) {
            Some("primaryKey") => Ok(Self::Primary),
            Some("secondaryKey") => Ok(Self::Secondary),
            Some("both") => Ok(Self::Both),
            _ => Err(ApiError::new(
                ErrorCode::InvalidPolicyKey,
                "'policyKey' must be one of primaryKey, secondaryKey or both.",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Primary => "primaryKey",
            Self::Secondary => "secondaryKey",
            Self::Both => "both",
        }
    }
}

struct Entry {
    id: String,
    module_id: Option<String>,
}

fn parse_entries(body: &Value) -> Result<Vec<Entry>, ApiError> {
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
            Ok(Entry {
                id: id.to_owned(),
                module_id,
            })
        })
        .collect()
}

fn error_entry(entry: &Entry, code: ErrorCode, status: String) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(entry.id));
    if let Some(m) = &entry.module_id {
        v.insert("moduleId".into(), json!(m));
    }
    v.insert("errorCode".into(), json!(code.name()));
    v.insert("errorStatus".into(), json!(status));
    Value::Object(v)
}

/// New keys for `auth` as `policy` says; `None` when the identity does not use SAS keys.
fn rotate(auth: &mut crate::model::Auth, policy: PolicyKey) -> Option<(String, String)> {
    if auth.kind != AuthType::Sas {
        return None;
    }
    if policy != PolicyKey::Secondary {
        auth.primary_key = Some(generate_key());
    }
    if policy != PolicyKey::Primary {
        auth.secondary_key = Some(generate_key());
    }
    Some((
        auth.primary_key.clone().unwrap_or_default(),
        auth.secondary_key.clone().unwrap_or_default(),
    ))
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
    let policy = PolicyKey::parse(&body)?;
    let entries = parse_entries(&body)?;
    let st = state.clone();
    let (rotated, errors) = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let mut rotated = Vec::new();
            let mut errors = Vec::new();
            for entry in &entries {
                let keys = match &entry.module_id {
                    None => match store::get_device(&tx, &entry.id)? {
                        None => {
                            let e = st.device_not_found(&entry.id);
                            errors.push(error_entry(entry, e.code(), e.message().to_owned()));
                            continue;
                        }
                        Some(mut row) => {
                            let keys = rotate(&mut row.record.auth, policy);
                            if keys.is_some() {
                                row.record.etag_counter += 1;
                                store::put_device(&tx, &row)?;
                            }
                            keys
                        }
                    },
                    Some(module_id) => match store::get_module(&tx, &entry.id, module_id)? {
                        None => {
                            let e = if store::get_device(&tx, &entry.id)?.is_none() {
                                st.device_not_found(&entry.id)
                            } else {
                                st.module_not_found(&entry.id, module_id)
                            };
                            errors.push(error_entry(entry, e.code(), e.message().to_owned()));
                            continue;
                        }
                        Some(mut row) => {
                            let keys = rotate(&mut row.record.auth, policy);
                            if keys.is_some() {
                                row.record.etag_counter += 1;
                                store::put_module(&tx, &row)?;
                            }
                            keys
                        }
                    },
                };
                match keys {
                    Some((primary, secondary)) => {
                        let mut v = Map::new();
                        v.insert("id".into(), json!(entry.id));
                        if let Some(m) = &entry.module_id {
                            v.insert("moduleId".into(), json!(m));
                        }
                        v.insert("primaryKey".into(), json!(primary));
                        v.insert("secondaryKey".into(), json!(secondary));
                        rotated.push(Value::Object(v));
                    }
                    None => errors.push(error_entry(
                        entry,
                        ErrorCode::InvalidOperation,
                        "The identity does not authenticate with symmetric keys, so it has none to regenerate."
                            .to_owned(),
                    )),
                }
            }
            tx.commit()?;
            Ok((rotated, errors))
        })
        .await?;
    let status = match (rotated.is_empty(), errors.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::MULTI_STATUS,
        (true, false) => StatusCode::BAD_REQUEST,
    };
    let result = json!({ "policyKey": policy.name(), "rotatedKeys": rotated, "errors": errors });
    Ok(json_response(status, &result, None))
}
