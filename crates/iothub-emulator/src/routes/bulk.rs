//! Bulk registry operations: `POST /devices` with up to 100 `ExportImportDevice`s.
//!
//! The rules are the registry's ([`crate::registry::Registry::bulk`]); this route reads the
//! body and answers `BulkRegistryOperationResult`, with 200 when every entry succeeded and
//! 400 otherwise.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::extract::{Authorized, JsonBody, RegistryWrite};
use super::{AppState, json_response};
use crate::error::ApiError;

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
    let failures = state.registry.bulk(items).await?;
    let errors: Vec<Value> = failures
        .iter()
        .map(|f| {
            json!({
                "deviceId": f.device_id,
                "errorCode": f.code.name(),
                "errorStatus": f.message,
                "operation": f.operation,
            })
        })
        .collect();
    let ok = errors.is_empty();
    let body = json!({ "isSuccessful": ok, "errors": errors, "warnings": [] });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(json_response(status, &body, None))
}
