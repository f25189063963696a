//! `POST /devices/query`: runs the query engine and pages its results.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::extract::{Authorized, INT32_MAX, JsonBody, QueryOp, parse_count};
use super::{AppState, json_response, json_text_response};
use crate::error::ApiError;

const MAX_ITEM_COUNT: HeaderName = HeaderName::from_static("x-ms-max-item-count");
const CONTINUATION: HeaderName = HeaderName::from_static("x-ms-continuation");
const ITEM_TYPE: HeaderName = HeaderName::from_static("x-ms-item-type");

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid(format!("The {name} header is not valid ASCII.")))
        })
        .transpose()
}

/// `POST /devices/query` with body `{"query": "..."}`.
pub async fn query_devices(
    _auth: Authorized<QueryOp>,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::format(
            "The query specification must be a JSON object: {\"query\": \"SELECT ...\"}.",
        ));
    }
    let text = match body.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "The query specification needs a non-empty 'query'.",
            ));
        }
        Some(_) => return Err(ApiError::format("'query' must be a string.")),
    };
    let max_items = header_text(&headers, &MAX_ITEM_COUNT)?
        .map(|t| parse_count(MAX_ITEM_COUNT.as_str(), &t, 1, INT32_MAX))
        .transpose()?;
    let continuation = header_text(&headers, &CONTINUATION)?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    if let Some(query) = crate::jobs::DeviceJobsQuery::parse(&text) {
        let (items, token) = state
            .jobs
            .query_device_jobs(
                &query?,
                max_items.unwrap_or(100) as usize,
                continuation.as_deref(),
            )
            .await?;
        let mut response = json_response(StatusCode::OK, &Value::Array(items), None);
        let out = response.headers_mut();
        out.insert(ITEM_TYPE, HeaderValue::from_static("DeviceJob"));
        if let Some(token) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
            out.insert(CONTINUATION, token);
        }
        return Ok(response);
    }
    let page = state
        .registry
        .query_raw(text, max_items, continuation)
        .await?;
    let mut body =
        String::with_capacity(page.items.iter().map(|i| i.get().len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item.get());
    }
    body.push(']');
    let mut response = json_text_response(StatusCode::OK, body);
    let out = response.headers_mut();
    if let Ok(item_type) = HeaderValue::from_str(page.item_type) {
        out.insert(ITEM_TYPE, item_type);
    }
    if let Some(token) = page
        .continuation
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        out.insert(CONTINUATION, token);
    }
    Ok(response)
}
