//! Jobs: `POST /jobs/create`, `GET /jobs`, `GET|DELETE /jobs/{id}` (registry import/export
//! through blob storage) and `PUT|GET /jobs/v2/{id}`, `POST /jobs/v2/{id}/cancel`,
//! `GET /jobs/v2/query` (scheduled twin updates and direct methods). The rules are the jobs
//! module's (`jobs/`).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::extract::{
    Authorized, INT32_MAX, JobRead, JobWrite, JsonBody, PathParams, QueryParams, parse_count,
};
use super::{AppState, json_response};
use crate::error::ApiError;
use crate::jobs::{ScheduledJobInput, ScheduledWork};

const MAX_ITEM_COUNT: HeaderName = HeaderName::from_static("x-ms-max-item-count");
const CONTINUATION: HeaderName = HeaderName::from_static("x-ms-continuation");

fn ok(doc: &Value) -> Response {
    json_response(StatusCode::OK, doc, None)
}

/// `POST /jobs/create`: an import or export job.
pub async fn create_import_export_job(
    _auth: Authorized<JobWrite>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    Ok(ok(&state.jobs.create_import_export(body).await?))
}

/// `GET /jobs`: the import and export jobs.
pub async fn list_import_export_jobs(
    _auth: Authorized<JobRead>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let jobs = state.jobs.list_import_export().await?;
    Ok(ok(&Value::Array(jobs)))
}

/// `GET /jobs/{id}`.
pub async fn get_import_export_job(
    _auth: Authorized<JobRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(ok(&state.jobs.get_import_export(&id).await?))
}

/// `DELETE /jobs/{id}`: cancels an import or export job and returns it.
pub async fn cancel_import_export_job(
    _auth: Authorized<JobWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(ok(&state.jobs.cancel_import_export(&id).await?))
}

fn time_field(body: &Value, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::invalid(format!(
                    "{name} '{}' is not an ISO 8601 time such as 2026-01-01T00:00:00Z.",
                    t.escape_default()
                ))
            }),
        Some(_) => Err(ApiError::format(format!("{name} must be a string."))),
    }
}

/// Reads a `JobRequest` body.
fn scheduled_input(id: String, body: &Value) -> Result<ScheduledJobInput, ApiError> {
    if !body.is_object() {
        return Err(ApiError::format("The job request must be a JSON object."));
    }
    if let Some(body_id) = body.get("jobId").and_then(Value::as_str)
        && !body_id.is_empty()
        && body_id != id
    {
        return Err(ApiError::invalid(format!(
            "The jobId '{}' in the body differs from '{}' in the URL.",
            body_id.escape_default(),
            id.escape_default()
        )));
    }
    let query_condition = match body.get("queryCondition") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "queryCondition is required: a WHERE clause over device twins, such as tags.building = '43'.",
            ));
        }
        Some(_) => return Err(ApiError::format("queryCondition must be a string.")),
    };
    let (work, wire) = match body.get("type").and_then(Value::as_str) {
        Some("scheduleUpdateTwin") => {
            let twin = body
                .get("updateTwin")
                .filter(|t| t.is_object())
                .ok_or_else(|| {
                    ApiError::invalid("A scheduleUpdateTwin job needs an updateTwin object.")
                })?;
            (
                ScheduledWork::UpdateTwin(crate::jobs::twin_patch(twin)),
                twin.clone(),
            )
        }
        Some("scheduleDeviceMethod") => {
            let method = body.get("cloudToDeviceMethod").ok_or_else(|| {
                ApiError::invalid("A scheduleDeviceMethod job needs a cloudToDeviceMethod.")
            })?;
            let (connect, response) = super::twins::validate_method_body(method)?;
            (
                ScheduledWork::DeviceMethod {
                    method: method["methodName"].as_str().unwrap_or_default().to_owned(),
                    payload: method.get("payload").cloned().unwrap_or(Value::Null),
                    connect_timeout_secs: connect,
                    response_timeout_secs: response,
                },
                method.clone(),
            )
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "The job type '{}' is not valid here; use scheduleUpdateTwin or scheduleDeviceMethod (import and export jobs go to /jobs/create).",
                other.escape_default()
            )));
        }
        None => {
            return Err(ApiError::invalid(
                "type is required: scheduleUpdateTwin or scheduleDeviceMethod.",
            ));
        }
    };
    let max_execution_secs = match body.get("maxExecutionTimeInSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|n| *n > 0)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "maxExecutionTimeInSeconds must be a whole number from 1 to 9223372036854775807.",
                    )
                })?,
        ),
    };
    Ok(ScheduledJobInput {
        job_id: id,
        work,
        body: wire,
        query_condition,
        start_time: time_field(body, "startTime")?,
        max_execution_secs,
    })
}

/// `PUT /jobs/v2/{id}`: creates a scheduled job.
pub async fn create_scheduled_job(
    _auth: Authorized<JobWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let input = scheduled_input(id, &body)?;
    Ok(ok(&state.jobs.create_scheduled(input).await?))
}

/// `GET /jobs/v2/{id}`.
pub async fn get_scheduled_job(
    _auth: Authorized<JobRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(ok(&state.jobs.get_scheduled(&id).await?))
}

/// `POST /jobs/v2/{id}/cancel`.
pub async fn cancel_scheduled_job(
    _auth: Authorized<JobWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(ok(&state.jobs.cancel_scheduled(&id).await?))
}

/// `GET /jobs/v2/query?jobType=&jobStatus=`, paged with `x-ms-max-item-count` (default
/// 100) and `x-ms-continuation`; the body is a JSON array of jobs, as IoT Hub answers.
pub async fn query_scheduled_jobs(
    _auth: Authorized<JobRead>,
    State(state): State<AppState>,
    QueryParams(params): QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let text = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let max_items = text(&MAX_ITEM_COUNT)
        .map(|t| parse_count(MAX_ITEM_COUNT.as_str(), &t, 1, INT32_MAX))
        .transpose()?
        .unwrap_or(100);
    let filter = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    for (name, known) in [
        (
            "jobType",
            &["scheduleUpdateTwin", "scheduleDeviceMethod"][..],
        ),
        (
            "jobStatus",
            &[
                "queued",
                "scheduled",
                "running",
                "completed",
                "failed",
                "cancelled",
            ][..],
        ),
    ] {
        if let Some(v) = filter(name).filter(|v| !known.contains(&v.as_str())) {
            return Err(ApiError::invalid(format!(
                "The {name} '{}' is not one of {}.",
                v.escape_default(),
                known.join(", ")
            )));
        }
    }
    let (items, token) = state
        .jobs
        .query_scheduled(
            filter("jobType"),
            filter("jobStatus"),
            max_items as usize,
            text(&CONTINUATION),
        )
        .await?;
    // IoT Hub answers with a bare array (not the REST spec's QueryResult); the next page's
    // token is the `x-ms-continuation` header, absent on the last page.
    let body = Value::Array(items);
    let mut response = ok(&body);
    if let Some(token) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(CONTINUATION, token);
    }
    Ok(response)
}
