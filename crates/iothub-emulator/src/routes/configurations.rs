//! Configurations (automatic device management), `POST /configurations/testQueries` and
//! `POST /devices/{id}/applyConfigurationContent`: the rules are the registry's
//! (`registry/configurations.rs`, `registry/twins.rs`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::extract::{
    Authorized, ConfigRead, ConfigWrite, INT32_MAX, JsonBody, PathParams, QueryParams, if_match,
    top_param,
};
use super::{AppState, json_response};
use crate::error::ApiError;
use crate::registry::MAX_LIST_CONFIGURATIONS;

fn configuration_response(doc: &Value) -> Response {
    let etag = doc.get("etag").and_then(Value::as_str);
    json_response(StatusCode::OK, doc, etag)
}

/// `GET /configurations/{id}`.
pub async fn get_configuration(
    _auth: Authorized<ConfigRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(configuration_response(
        &state.registry.get_configuration(id).await?,
    ))
}

/// `PUT /configurations/{id}`: create (no `If-Match`) or update (with `If-Match`).
pub async fn put_configuration(
    _auth: Authorized<ConfigWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let doc = state
        .registry
        .put_configuration(id, body, if_match(&headers)?)
        .await?;
    Ok(configuration_response(&doc))
}

/// `DELETE /configurations/{id}`.
pub async fn delete_configuration(
    _auth: Authorized<ConfigWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .registry
        .delete_configuration(id, if_match(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /configurations?top=N` (1–20, default 20).
pub async fn list_configurations(
    _auth: Authorized<ConfigRead>,
    State(state): State<AppState>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let top = top_param(&params, MAX_LIST_CONFIGURATIONS, INT32_MAX)?;
    let docs = state.registry.list_configurations(top).await?;
    Ok(json_response(StatusCode::OK, &Value::Array(docs), None))
}

/// `POST /configurations/testQueries`: checks a target condition and custom metric queries
/// with the query engine.
pub async fn test_queries(
    _auth: Authorized<ConfigRead>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let result = state.registry.test_configuration_queries(body).await?;
    Ok(json_response(StatusCode::OK, &result, None))
}

/// `POST /devices/{id}/applyConfigurationContent` with `{"modulesContent": {...}}`.
///
/// Applies an IoT Edge deployment to one edge device at once, as IoT Hub does: every module
/// named in `modulesContent` gets the given `properties.desired` as its twin's complete desired
/// properties, and modules that do not exist yet are registered (with generated SAS keys).
/// Everything is checked before anything is written, in one transaction. Answers 204.
///
/// # Errors
///
/// 404 DeviceNotFound; 400 ArgumentInvalid when the device is not an IoT Edge device or
/// `modulesContent` is missing or empty; 400 IotHubFormatError when a module entry is not
/// `{"properties.desired": {...}}`; the twin size and depth limits as for twin updates.
pub async fn apply_configuration_content(
    _auth: Authorized<ConfigWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    state.registry.apply_configuration_content(id, body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
