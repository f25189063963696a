//! Configurations (automatic device management) and `POST /configurations/testQueries`;
//! IoT Edge configuration content is applied by [`Registry::apply_configuration_content`].
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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::{Registry, RegistryError};
use crate::error::{ErrorCode, Invalid};
use crate::model::{MAX_ID_LEN, etag_matches, identity_etag};
use crate::{query, store};

/// Most configurations per hub (IoT Hub's limit for paid tiers).
pub const MAX_CONFIGURATIONS: u64 = iothub_core::limits::MAX_CONFIGURATIONS as u64;
/// Most configurations `GET /configurations` returns.
pub const MAX_LIST_CONFIGURATIONS: u32 = 20;

const CONFIG_ID_SPECIALS: &str = "-:+%_#*?!(),=@$'";

fn validate_configuration_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || CONFIG_ID_SPECIALS.contains(c)
        });
    if ok {
        Ok(())
    } else {
        Err(Invalid::argument(format!(
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

fn string_map(body: &Value, path: &[&str]) -> Result<Map<String, Value>, Invalid> {
    let mut v = Some(body);
    for p in path {
        v = v.and_then(|x| x.get(*p));
    }
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(m.clone()),
        Some(_) => Err(Invalid::format(format!(
            "'{}' must be an object of strings.",
            path.join(".")
        ))),
    }
}

fn opt_string(body: &Value, key: &str) -> Result<Option<String>, Invalid> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid::format(format!("'{key}' must be a string."))),
    }
}

fn not_found(id: &str) -> RegistryError {
    RegistryError::refused(
        ErrorCode::ConfigurationNotFound,
        format!("Configuration '{}' does not exist.", id.escape_default()),
    )
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
    conn: &Connection,
    metrics: &mut Value,
    names: &[&str],
) -> Result<(), RegistryError> {
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
            Err(query::QueryError::Sql(e)) => return Err(e.into()),
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
fn with_metrics(conn: &Connection, mut doc: Value) -> Result<Value, RegistryError> {
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
    conn: &Connection,
    target_condition: &str,
    custom: &Map<String, Value>,
) -> Result<(), RegistryError> {
    let check = |q: &str, code: ErrorCode, what: &str| match query::execute(conn, q, Some(1), None)
    {
        Ok(_) => Ok(()),
        Err(query::QueryError::Sql(e)) => Err(e.into()),
        Err(e) => Err(RegistryError::refused(code, format!("{what}: {e}"))),
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

impl Registry {
    /// Reads a configuration, with its metric results computed now.
    ///
    /// # Errors
    /// `ArgumentInvalid` (id), `ConfigurationNotFound`, or a store failure.
    pub async fn get_configuration(&self, id: String) -> Result<Value, RegistryError> {
        validate_configuration_id(&id)?;
        self.read(move |c, _| match store::get_configuration(c, &id)? {
            Some(doc) => with_metrics(c, doc),
            None => Err(not_found(&id)),
        })
        .await
    }

    /// Creates (no `if_match`) or updates a configuration from its JSON body.
    ///
    /// # Errors
    /// `IotHubFormatError`/`ArgumentInvalid` for the body, `InvalidConfigurationTargetCondition`
    /// or `InvalidConfigurationCustomMetricsQuery` for queries that do not parse,
    /// `ConfigurationAlreadyExists`, `ConfigurationNotFound`, `ConfigurationCountLimitExceeded`,
    /// `PreconditionFailed`, `ArgumentInvalid` when `content` would change, or a store failure.
    pub async fn put_configuration(
        &self,
        id: String,
        body: Value,
        if_match: Option<String>,
    ) -> Result<Value, RegistryError> {
        validate_configuration_id(&id)?;
        if !body.is_object() {
            return Err(Invalid::format("The configuration must be a JSON object.").into());
        }
        if let Some(body_id) = opt_string(&body, "id")?
            && body_id != id
        {
            return Err(
                Invalid::argument("The id in the body does not match the id in the URL.").into(),
            );
        }
        let labels = string_map(&body, &["labels"])?;
        let metric_queries = string_map(&body, &["metrics", "queries"])?;
        let target_condition = opt_string(&body, "targetCondition")?.unwrap_or_default();
        let schema_version =
            opt_string(&body, "schemaVersion")?.unwrap_or_else(|| "1.0".to_owned());
        let priority = match body.get("priority") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .filter(|p| *p >= 0)
                .ok_or_else(|| Invalid::argument("'priority' must be a non-negative integer."))?,
        };
        let content = match body.get("content") {
            None | Some(Value::Null) => json!({}),
            Some(c @ Value::Object(_)) => c.clone(),
            Some(_) => return Err(Invalid::format("'content' must be an object.").into()),
        };
        self.write(move |c, ctx| {
            check_queries(c, &target_condition, &metric_queries)?;
            let existing = store::get_configuration(c, &id)?;
            let now = ctx.now_text.clone();
            let doc = match (existing, if_match) {
                (Some(_), None) => {
                    return Err(RegistryError::refused(
                        ErrorCode::ConfigurationAlreadyExists,
                        format!("Configuration '{}' already exists.", id.escape_default()),
                    ));
                }
                (None, Some(_)) => return Err(not_found(&id)),
                (None, None) => {
                    if store::configuration_count(c)? >= MAX_CONFIGURATIONS {
                        return Err(RegistryError::refused(
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
                        return Err(RegistryError::PreconditionFailed {
                            what: "configuration",
                        });
                    }
                    let content_given = body_has_content(&content);
                    if content_given && doc.get("content") != Some(&content) {
                        return Err(Invalid::argument(
                            "The content of a configuration cannot be changed after it is created.",
                        )
                        .into());
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
            store::put_configuration(c, &id, &doc)?;
            let doc = with_metrics(c, doc)?;
            Ok(doc)
        })
        .await
    }

    /// Deletes a configuration.
    ///
    /// # Errors
    /// `ArgumentInvalid` (id), `ConfigurationNotFound`, `PreconditionFailed`, or a store
    /// failure.
    pub async fn delete_configuration(
        &self,
        id: String,
        if_match: Option<String>,
    ) -> Result<(), RegistryError> {
        validate_configuration_id(&id)?;
        self.write(move |c, _| {
            let Some(doc) = store::get_configuration(c, &id)? else {
                return Err(not_found(&id));
            };
            if let Some(expected) = if_match
                && !etag_matches(&expected, &identity_etag(etag_counter(&doc)))
            {
                return Err(RegistryError::PreconditionFailed {
                    what: "configuration",
                });
            }
            store::delete_configuration(c, &id)?;
            Ok(())
        })
        .await
    }

    /// Lists up to `top` configurations (at most [`MAX_LIST_CONFIGURATIONS`]) with their
    /// metric results.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_configurations(&self, top: u32) -> Result<Vec<Value>, RegistryError> {
        let top = top.min(MAX_LIST_CONFIGURATIONS);
        self.read(move |c, _| {
            store::list_configurations(c, top)?
                .into_iter()
                .map(|doc| with_metrics(c, doc))
                .collect()
        })
        .await
    }

    /// Checks a target condition and custom metric queries with the query engine
    /// (`POST /configurations/testQueries`) and returns IoT Hub's answer document
    /// (`targetConditionError`, `customMetricQueryErrors`: empty strings when valid).
    ///
    /// # Errors
    /// `IotHubFormatError`/`ArgumentInvalid` for the body (an explicit `null` is refused), or
    /// a store failure.
    pub async fn test_configuration_queries(&self, body: Value) -> Result<Value, RegistryError> {
        if !body.is_object() {
            return Err(Invalid::format("The test input must be a JSON object.").into());
        }
        // IoT Hub refuses an explicit null condition (400 ArgumentInvalid); an absent one
        // means "no condition to check". Null metric queries are refused the same way.
        for key in ["targetCondition", "customMetricQueries"] {
            if body.get(key).is_some_and(Value::is_null) {
                return Err(Invalid::argument(format!("'{key}' must not be null.")).into());
            }
        }
        let condition = opt_string(&body, "targetCondition")?.unwrap_or_default();
        let custom = string_map(&body, &["customMetricQueries"])?;
        self.read(move |c, _| {
            let mut condition_error = String::new();
            if !condition.trim().is_empty() {
                let q = format!("SELECT * FROM devices WHERE {condition}");
                condition_error = query_problem(c, &q)?;
            }
            let mut metric_errors = Map::new();
            for (name, q) in custom {
                let message = query_problem(c, q.as_str().unwrap_or_default())?;
                metric_errors.insert(name, Value::String(message));
            }
            Ok(json!({ "targetConditionError": condition_error, "customMetricQueryErrors": metric_errors }))
        })
        .await
    }
}

/// Why the query engine refuses `q` (empty when it runs).
fn query_problem(conn: &Connection, q: &str) -> Result<String, RegistryError> {
    match query::execute(conn, q, Some(1), None) {
        Ok(_) => Ok(String::new()),
        Err(query::QueryError::Sql(e)) => Err(e.into()),
        Err(e) => Ok(e.to_string()),
    }
}
