//! Module identities.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::extract::{Authorized, JsonBody, PathParams, RegistryRead, RegistryWrite, if_match};
use super::{AppState, json_response};
use crate::error::ApiError;
use crate::model::{ModuleInput, ModuleRecord};

fn module_response(record: &ModuleRecord) -> Response {
    json_response(StatusCode::OK, &record.to_wire(), Some(&record.etag()))
}

/// `GET /devices/{id}/modules`.
pub async fn list_modules(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let modules = state.registry.list_modules(id).await?;
    let body = Value::Array(modules.iter().map(ModuleRecord::to_wire).collect());
    Ok(json_response(StatusCode::OK, &body, None))
}

/// `GET /devices/{id}/modules/{mid}`.
pub async fn get_module(
    _auth: Authorized<RegistryRead>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(module_response(&state.registry.get_module(id, mid).await?))
}

/// `PUT /devices/{id}/modules/{mid}`: create (no `If-Match`) or update (with `If-Match`).
pub async fn put_module(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ModuleInput>,
) -> Result<Response, ApiError> {
    let record = state
        .registry
        .put_module(id, mid, input, if_match(&headers)?)
        .await?;
    Ok(module_response(&record))
}

/// `DELETE /devices/{id}/modules/{mid}`.
pub async fn delete_module(
    _auth: Authorized<RegistryWrite>,
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .registry
        .delete_module(id, mid, if_match(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
