//! Configurations (automatic device management), `POST /configurations/testQueries` and
//! `POST /devices/{id}/applyConfigurationContent`.
//!
//! Stored as documents; `content` cannot change after creation, as on IoT Hub.
//!
//! # Metrics
//!
//! `systemMetrics.queries` holds the queries IoT Hub defines for the configuration's kind
//! (Microsoft's "automatic device management" and "IoT Edge deployment monitoring" articles),
//! with the configuration id in the `[[id]]` bracket syntax:
//!
//! | kind (content) | `targetedCount` | `appliedCount` |
//! |---|---|---|
//! | device (`deviceContent`) | `select deviceId from devices where <targetCondition>` | `select deviceId from devices where configurations.[[id]].status = 'Applied'` |
//! | module (`moduleContent`) | `select deviceId, moduleId from devices.modules where <targetCondition>` | `select deviceId, moduleId from devices.modules where configurations.[[id]].status = 'Applied'` |
//! | edge deployment (`modulesContent`) | `select deviceId from devices where capabilities.iotEdge = true and (<targetCondition>)` | `select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[id]].status = 'Applied'` |
//!
//! `systemMetrics.results` and `metrics.results` (the user's custom metric queries) hold the
//! number of rows each query selects. IoT Hub refreshes them periodically; the emulator
//! computes them whenever a configuration is read or written. The emulator does not itself
//! apply configurations to twins, so `appliedCount` counts only twins whose
//! `configurations.[[id]].status` says `Applied`.

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
use crate::model::{MAX_ID_LEN, etag_matches, identity_etag};
use crate::twin::{TwinChange, TwinWrite};
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
        .call(move |c| {
            store::get_configuration(c, &lookup)?
                .map(|doc| with_metrics(c, doc))
                .transpose()
        })
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
    let now = state.registry.now();
    let doc = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            check_queries(&tx, &target_condition, &metric_queries)?;
            let existing = store::get_configuration(&tx, &id)?;
            let now = crate::clock::format_time(now);
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
                            "results": {},
                            "queries": system_queries(&id, &content, &target_condition),
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
                    let queries = system_queries(
                        &id,
                        doc.get("content").unwrap_or(&Value::Null),
                        &target_condition,
                    );
                    if let Some(obj) = doc.as_object_mut() {
                        obj.insert(
                            "systemMetrics".into(),
                            json!({ "results": {}, "queries": queries }),
                        );
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
            let doc = with_metrics(&tx, doc)?;
            tx.commit()?;
            Ok(doc)
        })
        .await?;
    let etag = doc.get("etag").and_then(Value::as_str).map(str::to_owned);
    Ok(json_response(StatusCode::OK, &doc, etag.as_deref()))
}

/// The kind of a configuration, from the part of `content` it fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Device,
    Module,
    Edge,
}

fn kind_of(content: &Value) -> Kind {
    let filled = |k: &str| content.get(k).is_some_and(|v| !v.is_null());
    if filled("modulesContent") {
        Kind::Edge
    } else if filled("moduleContent") {
        Kind::Module
    } else {
        Kind::Device
    }
}

/// IoT Hub's system metric queries for a configuration (see the module docs).
fn system_queries(id: &str, content: &Value, target_condition: &str) -> Map<String, Value> {
    let condition = target_condition.trim();
    let (targeted, applied) = match kind_of(content) {
        Kind::Device => (
            format!("select deviceId from devices where {condition}"),
            format!(
                "select deviceId from devices where configurations.[[{id}]].status = 'Applied'"
            ),
        ),
        Kind::Module => (
            format!("select deviceId, moduleId from devices.modules where {condition}"),
            format!(
                "select deviceId, moduleId from devices.modules where configurations.[[{id}]].status = 'Applied'"
            ),
        ),
        Kind::Edge => (
            format!(
                "select deviceId from devices where capabilities.iotEdge = true and ({condition})"
            ),
            format!(
                "select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[{id}]].status = 'Applied'"
            ),
        ),
    };
    let mut queries = Map::new();
    if !condition.is_empty() {
        queries.insert("targetedCount".into(), Value::String(targeted));
    }
    queries.insert("appliedCount".into(), Value::String(applied));
    queries
}

/// Counts the rows of each query in `metrics.queries` into `metrics.results`; a query that
/// fails to run counts 0 (it was checked when the configuration was written).
fn fill_results(
    conn: &rusqlite::Connection,
    metrics: &mut Value,
    names: &[&str],
) -> Result<(), ApiError> {
    let Some(queries) = metrics.get("queries").and_then(Value::as_object) else {
        return Ok(());
    };
    let mut results = Map::new();
    for name in names {
        results.insert((*name).to_owned(), Value::from(0));
    }
    for (name, q) in queries {
        let n = match query::count(conn, q.as_str().unwrap_or_default()) {
            Ok(n) => n,
            Err(query::QueryError::Sql(e)) => return Err(ApiError::internal(&e)),
            Err(_) => 0,
        };
        results.insert(name.clone(), Value::from(n));
    }
    if let Some(obj) = metrics.as_object_mut() {
        obj.insert("results".into(), Value::Object(results));
    }
    Ok(())
}

/// The configuration document with its metric results computed now.
fn with_metrics(conn: &rusqlite::Connection, mut doc: Value) -> Result<Value, ApiError> {
    if let Some(system) = doc.get_mut("systemMetrics") {
        fill_results(conn, system, &["targetedCount", "appliedCount"])?;
    }
    if let Some(custom) = doc.get_mut("metrics") {
        fill_results(conn, custom, &[])?;
    }
    Ok(doc)
}

/// Refuses a target condition or custom metric query the query engine cannot run.
fn check_queries(
    conn: &rusqlite::Connection,
    target_condition: &str,
    custom: &Map<String, Value>,
) -> Result<(), ApiError> {
    let check = |q: &str, code: ErrorCode, what: &str| match query::execute(conn, q, Some(1), None)
    {
        Ok(_) => Ok(()),
        Err(query::QueryError::Sql(e)) => Err(ApiError::internal(&e)),
        Err(e) => Err(ApiError::new(code, format!("{what}: {e}"))),
    };
    if !target_condition.trim().is_empty() {
        check(
            &format!("SELECT * FROM devices WHERE {target_condition}"),
            ErrorCode::InvalidConfigurationTargetCondition,
            "The target condition is not valid",
        )?;
    }
    for (name, q) in custom {
        check(
            q.as_str().unwrap_or_default(),
            ErrorCode::InvalidConfigurationCustomMetricsQuery,
            &format!(
                "The custom metric query '{}' is not valid",
                name.escape_default()
            ),
        )?;
    }
    Ok(())
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
        .call(move |c| {
            store::list_configurations(c, top)?
                .into_iter()
                .map(|doc| with_metrics(c, doc))
                .collect::<Result<Vec<_>, _>>()
        })
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
    crate::model::validate_id("device", &id)?;
    let modules = match body.get("modulesContent") {
        Some(Value::Object(m)) if !m.is_empty() => m.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "'modulesContent' is required: configuration content is applied to the modules of an IoT Edge device.",
            ));
        }
        Some(Value::Object(_)) => {
            return Err(ApiError::invalid("'modulesContent' names no module."));
        }
        Some(_) => return Err(ApiError::format("'modulesContent' must be an object.")),
    };
    let mut changes = Vec::with_capacity(modules.len());
    for (module_id, content) in &modules {
        crate::model::validate_id("module", module_id)?;
        let desired = match content {
            Value::Object(c) if c.len() == 1 && c.contains_key("properties.desired") => {
                c["properties.desired"].clone()
            }
            _ => {
                return Err(ApiError::format(format!(
                    "The content of module '{}' must be {{\"properties.desired\": {{...}}}}.",
                    module_id.escape_default()
                )));
            }
        };
        if !desired.is_object() {
            return Err(ApiError::format(format!(
                "'properties.desired' of module '{}' must be an object.",
                module_id.escape_default()
            )));
        }
        let change = TwinChange::from_twin_body(
            &json!({ "properties": { "desired": desired } }),
            TwinWrite::ReplaceGiven,
        )?;
        changes.push((module_id.clone(), change));
    }
    state
        .registry
        .apply_configuration_content(id, changes)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
