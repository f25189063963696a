//! Configurations (automatic device management) and `POST /configurations/testQueries`.
//!
//! Stored as documents; `content` cannot change after creation, as on IoT Hub. System
//! metrics are reported as zero (the emulator does not apply configurations to twins).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::extract::{
    Authorized, ConfigRead, ConfigWrite, INT32_MAX, JsonBody, PathParams, QueryParams, if_match,
    top_param,
};
use super::query::query_error;
use super::{AppState, json_response};
use crate::error::{ApiError, ErrorCode};
use crate::model::{MAX_ID_LEN, etag_matches, identity_etag, now_string};
use crate::{query, store};

/// Most configurations per hub (IoT Hub's limit for paid tiers).
pub const MAX_CONFIGURATIONS: u64 = 100;
/// Most configurations `GET /configurations` returns.
pub const MAX_LIST_CONFIGURATIONS: u32 = 20;

const CONFIG_ID_SPECIALS: &str = "-:+%_#*?!(),=@$'";

fn validate_configuration_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || CONFIG_ID_SPECIALS.contains(c)
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "The configuration id '{}' is not valid: use 1 to {MAX_ID_LEN} lower-case letters, digits or {CONFIG_ID_SPECIALS}",
            id.escape_default()
        )))
    }
}

fn etag_counter(doc: &Value) -> u64 {
    doc.get("etag")
        .and_then(Value::as_str)
        .and_then(|e| B64.decode(e).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn string_map(body: &Value, path: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let mut v = Some(body);
    for p in path {
        v = v.and_then(|x| x.get(*p));
    }
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(m.clone()),
        Some(_) => Err(ApiError::format(format!(
            "'{}' must be an object of strings.",
            path.join(".")
        ))),
    }
}

fn opt_string(body: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::format(format!("'{key}' must be a string."))),
    }
}

/// `GET /configurations/{id}`.
pub async fn get_configuration(
    _auth: Authorized<ConfigRead>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    validate_configuration_id(&id)?;
    let lookup = id.clone();
    match state
        .store
        .call(move |c| Ok(store::get_configuration(c, &lookup)?))
        .await?
    {
        Some(doc) => {
            let etag = doc.get("etag").and_then(Value::as_str).map(str::to_owned);
            Ok(json_response(StatusCode::OK, &doc, etag.as_deref()))
        }
        None => Err(not_found(&id)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ConfigurationNotFound,
        format!("Configuration '{}' does not exist.", id.escape_default()),
    )
}

/// `PUT /configurations/{id}`: create (no `If-Match`) or update (with `If-Match`).
pub async fn put_configuration(
    _auth: Authorized<ConfigWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    validate_configuration_id(&id)?;
    if !body.is_object() {
        return Err(ApiError::format("The configuration must be a JSON object."));
    }
    if let Some(body_id) = opt_string(&body, "id")?
        && body_id != id
    {
        return Err(ApiError::invalid(
            "The id in the body does not match the id in the URL.",
        ));
    }
    let labels = string_map(&body, &["labels"])?;
    let metric_queries = string_map(&body, &["metrics", "queries"])?;
    let target_condition = opt_string(&body, "targetCondition")?.unwrap_or_default();
    let schema_version = opt_string(&body, "schemaVersion")?.unwrap_or_else(|| "1.0".to_owned());
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|p| *p >= 0)
            .ok_or_else(|| ApiError::invalid("'priority' must be a non-negative integer."))?,
    };
    let content = match body.get("content") {
        None | Some(Value::Null) => json!({}),
        Some(c @ Value::Object(_)) => c.clone(),
        Some(_) => return Err(ApiError::format("'content' must be an object.")),
    };
    let if_match = if_match(&headers)?;
    let doc = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let existing = store::get_configuration(&tx, &id)?;
            let now = now_string();
            let doc = match (existing, if_match) {
                (Some(_), None) => {
                    return Err(ApiError::new(
                        ErrorCode::ConfigurationAlreadyExists,
                        format!("Configuration '{}' already exists.", id.escape_default()),
                    ));
                }
                (None, Some(_)) => return Err(not_found(&id)),
                (None, None) => {
                    if store::configuration_count(&tx)? >= MAX_CONFIGURATIONS {
                        return Err(ApiError::new(
                            ErrorCode::ConfigurationCountLimitExceeded,
                            format!("The hub already holds {MAX_CONFIGURATIONS} configurations."),
                        ));
                    }
                    json!({
                        "id": id,
                        "schemaVersion": schema_version,
                        "labels": labels,
                        "content": content,
                        "contentType": "assignment",
                        "targetCondition": target_condition,
                        "createdTimeUtc": now,
                        "lastUpdatedTimeUtc": now,
                        "priority": priority,
                        "systemMetrics": {
                            "results": { "appliedCount": 0, "targetedCount": 0 },
                            "queries": {},
                        },
                        "metrics": { "results": {}, "queries": metric_queries },
                        "etag": identity_etag(1),
                    })
                }
                (Some(mut doc), Some(expected)) => {
                    let counter = etag_counter(&doc);
                    if !etag_matches(&expected, &identity_etag(counter)) {
                        return Err(ApiError::precondition_failed("configuration"));
                    }
                    let content_given = body_has_content(&content);
                    if content_given && doc.get("content") != Some(&content) {
                        return Err(ApiError::invalid(
                            "The content of a configuration cannot be changed after it is created.",
                        ));
                    }
                    if let Some(obj) = doc.as_object_mut() {
                        obj.insert("labels".into(), Value::Object(labels));
                        obj.insert("targetCondition".into(), Value::String(target_condition));
                        obj.insert("priority".into(), Value::from(priority));
                        obj.insert(
                            "metrics".into(),
                            json!({ "results": {}, "queries": metric_queries }),
                        );
                        obj.insert("lastUpdatedTimeUtc".into(), Value::String(now));
                        obj.insert("etag".into(), Value::String(identity_etag(counter + 1)));
                    }
                    doc
                }
            };
            store::put_configuration(&tx, &id, &doc)?;
            tx.commit()?;
            Ok(doc)
        })
        .await?;
    let etag = doc.get("etag").and_then(Value::as_str).map(str::to_owned);
    Ok(json_response(StatusCode::OK, &doc, etag.as_deref()))
}

fn body_has_content(content: &Value) -> bool {
    content
        .as_object()
        .is_some_and(|m| m.values().any(|v| !v.is_null()))
}

/// `DELETE /configurations/{id}`.
pub async fn delete_configuration(
    _auth: Authorized<ConfigWrite>,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    validate_configuration_id(&id)?;
    let if_match = if_match(&headers)?;
    state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let Some(doc) = store::get_configuration(&tx, &id)? else {
                return Err(not_found(&id));
            };
            if let Some(expected) = if_match
                && !etag_matches(&expected, &identity_etag(etag_counter(&doc)))
            {
                return Err(ApiError::precondition_failed("configuration"));
            }
            store::delete_configuration(&tx, &id)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /configurations?top=N` (1–20, default 20).
pub async fn list_configurations(
    _auth: Authorized<ConfigRead>,
    State(state): State<AppState>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let top = top_param(&params, MAX_LIST_CONFIGURATIONS, INT32_MAX)?.min(MAX_LIST_CONFIGURATIONS);
    let docs = state
        .store
        .call(move |c| Ok(store::list_configurations(c, top)?))
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(docs), None))
}

/// `POST /configurations/testQueries`: checks a target condition and custom metric queries
/// with the query engine.
pub async fn test_queries(
    _auth: Authorized<ConfigRead>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::format("The test input must be a JSON object."));
    }
    // IoT Hub refuses an explicit null condition (400 ArgumentInvalid); an absent one means
    // "no condition to check". Null metric queries are refused the same way.
    for key in ["targetCondition", "customMetricQueries"] {
        if body.get(key).is_some_and(Value::is_null) {
            return Err(ApiError::invalid(format!("'{key}' must not be null.")));
        }
    }
    let condition = opt_string(&body, "targetCondition")?.unwrap_or_default();
    let custom = string_map(&body, &["customMetricQueries"])?;
    let result = state
        .store
        .call(move |c| {
            let mut condition_error = String::new();
            if !condition.trim().is_empty() {
                let q = format!("SELECT * FROM devices WHERE {condition}");
                match query::execute(c, &q, Some(1), None) {
                    Ok(_) => {}
                    Err(query::QueryError::Sql(e)) => return Err(ApiError::internal(&e)),
                    Err(e) => condition_error = query_error(e).message().to_owned(),
                }
            }
            let mut metric_errors = Map::new();
            for (name, q) in custom {
                let q = q.as_str().unwrap_or_default();
                let message = match query::execute(c, q, Some(1), None) {
                    Ok(_) => String::new(),
                    Err(query::QueryError::Sql(e)) => return Err(ApiError::internal(&e)),
                    Err(e) => query_error(e).message().to_owned(),
                };
                metric_errors.insert(name, Value::String(message));
            }
            Ok(json!({ "targetConditionError": condition_error, "customMetricQueryErrors": metric_errors }))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &result, None))
}
