//! Scheduled jobs (`PUT|GET /jobs/v2/{id}`, `POST /jobs/v2/{id}/cancel`,
//! `GET /jobs/v2/query`): a twin update (`scheduleUpdateTwin`) or a direct method
//! (`scheduleDeviceMethod`) applied, from `startTime` on, to every device that
//! `SELECT * FROM devices WHERE {queryCondition}` selects.
//!
//! The devices are selected when the job starts. Each gets a row in `device_jobs` (`pending`,
//! then `completed` or `failed` with its outcome or error), which the job's
//! `deviceJobStatistics` count. Up to [`DEVICE_CONCURRENCY`] devices are worked on at a
//! time. A job that outlives `maxExecutionTimeInSeconds` stops and is `failed`; a cancelled
//! job stops with the counts so far. A job whose devices all got an answer is `completed`,
//! even when some answers are failures (as on IoT Hub: the statistics tell).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rusqlite::params;
use serde_json::{Value, json};

use super::{Jobs, Live, MAX_ACTIVE_SCHEDULED_JOBS, SCHEDULED, invalid, is_terminal, store_error};
use crate::clock::format_time;
use crate::error::ErrorCode;
use crate::model::seconds_value;
use crate::registry::RegistryError;
use crate::sessions::{Identity, MethodCall, MethodError};
use crate::store::StoreError;
use crate::twin::{TwinChange, TwinWrite};

/// Devices a scheduled job works on at once.
pub const DEVICE_CONCURRENCY: usize = 64;
/// `maxExecutionTimeInSeconds` when the request gives none (one hour).
pub const DEFAULT_MAX_EXECUTION_SECS: u64 = 3600;
/// Longest execution time the runner waits for (a century): larger values mean "no limit".
const MAX_EXECUTION_CAP_SECS: u64 = 100 * 365 * 24 * 3600;
/// Device results are written in groups of this many (or every [`FLUSH_EVERY`]).
const FLUSH_ROWS: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// What a scheduled job does to each device.
#[derive(Debug, Clone)]
pub enum ScheduledWork {
    /// `scheduleUpdateTwin`: a twin patch (tags, desired properties), applied as
    /// `PATCH /twins/{id}` applies it.
    UpdateTwin(Value),
    /// `scheduleDeviceMethod`: a direct method call.
    DeviceMethod {
        /// `methodName`.
        method: String,
        /// `payload`.
        payload: Value,
        /// `connectTimeoutInSeconds`.
        connect_timeout_secs: u64,
        /// `responseTimeoutInSeconds`.
        response_timeout_secs: u64,
    },
}

/// A scheduled job request (`JobRequest`), checked by the HTTP layer.
#[derive(Debug, Clone)]
pub struct ScheduledJobInput {
    /// `jobId`.
    pub job_id: String,
    /// The work, with its wire body (`updateTwin` or `cloudToDeviceMethod`) to echo back.
    pub work: ScheduledWork,
    /// The body's `updateTwin` or `cloudToDeviceMethod`, as sent.
    pub body: Value,
    /// `queryCondition`: a WHERE clause over device twins.
    pub query_condition: String,
    /// `startTime` (`None`: now).
    pub start_time: Option<DateTime<Utc>>,
    /// `maxExecutionTimeInSeconds` (`None`: [`DEFAULT_MAX_EXECUTION_SECS`]).
    pub max_execution_secs: Option<u64>,
}

impl ScheduledWork {
    fn job_type(&self) -> &'static str {
        match self {
            ScheduledWork::UpdateTwin(_) => "scheduleUpdateTwin",
            ScheduledWork::DeviceMethod { .. } => "scheduleDeviceMethod",
        }
    }

    /// Reads the work back from a job record.
    fn from_record(record: &Value) -> Option<Self> {
        match record["type"].as_str()? {
            "scheduleUpdateTwin" => Some(ScheduledWork::UpdateTwin(twin_patch(
                record.get("updateTwin")?,
            ))),
            "scheduleDeviceMethod" => {
                let m = record.get("cloudToDeviceMethod")?;
                Some(ScheduledWork::DeviceMethod {
                    method: m["methodName"].as_str()?.to_owned(),
                    payload: m.get("payload").cloned().unwrap_or(Value::Null),
                    connect_timeout_secs: seconds_value(&m["connectTimeoutInSeconds"]).unwrap_or(0),
                    response_timeout_secs: seconds_value(&m["responseTimeoutInSeconds"])
                        .unwrap_or(30),
                })
            }
            _ => None,
        }
    }
}

/// The parts of an `updateTwin` body a twin patch takes (tags and desired properties);
/// `deviceId`, `etag` (`*` in job requests) and read-only fields are left out.
pub(crate) fn twin_patch(update: &Value) -> Value {
    let mut patch = serde_json::Map::new();
    if let Some(tags) = update.get("tags").filter(|v| !v.is_null()) {
        patch.insert("tags".into(), tags.clone());
    }
    if let Some(desired) = update
        .get("properties")
        .and_then(|p| p.get("desired"))
        .filter(|v| !v.is_null())
    {
        patch.insert("properties".into(), json!({ "desired": desired }));
    }
    Value::Object(patch)
}

/// Statistics of a job's devices.
pub(super) fn statistics(
    c: &rusqlite::Connection,
    job_id: &str,
    running: u64,
) -> Result<Value, StoreError> {
    let mut counts = std::collections::HashMap::<String, u64>::new();
    let mut stmt = c.prepare_cached(
        "SELECT status, COUNT(*) FROM device_jobs WHERE job_id = ?1 GROUP BY status",
    )?;
    let rows = stmt.query_map(params![job_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (status, n) = row?;
        counts.insert(status, u64::try_from(n).unwrap_or(0));
    }
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let total: u64 = counts.values().sum();
    let running = running.min(get("pending"));
    Ok(json!({
        "deviceCount": total,
        "failedCount": get("failed"),
        "succeededCount": get("completed"),
        "runningCount": running,
        "pendingCount": get("pending") - running,
    }))
}

impl Jobs {
    /// Creates a scheduled job (`PUT /jobs/v2/{id}`) and returns its record, status
    /// `queued` (reads say `scheduled` until a job that starts later starts).
    ///
    /// # Errors
    /// `ArgumentInvalid` for a query condition the query engine refuses or a twin patch that
    /// breaks the twin rules; `GenericConflict` when the job id exists;
    /// `ThrottlingMaxActiveJobCountExceeded` beyond [`MAX_ACTIVE_SCHEDULED_JOBS`] active
    /// jobs; a store failure.
    pub async fn create_scheduled(
        self: &Arc<Self>,
        input: ScheduledJobInput,
    ) -> Result<Value, RegistryError> {
        crate::model::validate_id("job", &input.job_id)?;
        if input.query_condition.trim().is_empty() {
            return Err(invalid("queryCondition is required."));
        }
        // The condition must compile as a twin query (the registry answers a one-item page).
        self.registry
            .query(device_query("*", &input.query_condition), Some(1), None)
            .await
            .map_err(|e| invalid(format!("The queryCondition is not valid: {e}")))?;
        if let ScheduledWork::UpdateTwin(patch) = &input.work {
            TwinChange::from_twin_body(patch, TwinWrite::Update)?;
        }
        let now = self.now();
        let start = input.start_time.unwrap_or(now);
        let status = if start > now + chrono::Duration::seconds(1) {
            "scheduled"
        } else {
            "queued"
        };
        let mut record = json!({
            "jobId": input.job_id,
            "queryCondition": input.query_condition,
            "createdTime": format_time(now),
            "startTime": format_time(start),
            "endTime": null,
            "maxExecutionTimeInSeconds": input.max_execution_secs.unwrap_or(DEFAULT_MAX_EXECUTION_SECS),
            "type": input.work.job_type(),
            "status": status,
            "failureReason": null,
            "statusMessage": null,
            "deviceJobStatistics": {
                "deviceCount": 0, "failedCount": 0, "succeededCount": 0,
                "runningCount": 0, "pendingCount": 0,
            },
        });
        let body_key = match input.work {
            ScheduledWork::UpdateTwin(_) => "updateTwin",
            ScheduledWork::DeviceMethod { .. } => "cloudToDeviceMethod",
        };
        record[body_key] = input.body.clone();
        {
            let _guard = self.records.lock().await;
            // A repeated id is a conflict whatever the number of active jobs.
            let id = input.job_id.clone();
            let taken = self
                .store
                .call(move |c| super::read_any(c, &id))
                .await
                .map_err(store_error)?
                .is_some();
            if taken {
                return Err(super::job_exists(&input.job_id));
            }
            let active = self
                .count_active(SCHEDULED, &["scheduled", "queued", "running"])
                .await?;
            if active >= MAX_ACTIVE_SCHEDULED_JOBS {
                return Err(RegistryError::refused(
                    ErrorCode::ThrottlingMaxActiveJobCountExceeded,
                    format!(
                        "{active} scheduled jobs are active; at most {MAX_ACTIVE_SCHEDULED_JOBS} may be at a time. Wait for one to finish or cancel one."
                    ),
                ));
            }
            self.insert(SCHEDULED, &input.job_id, record.clone())
                .await?;
        }
        let live = self.start_live(&input.job_id);
        let jobs = Arc::clone(self);
        let id = input.job_id.clone();
        tokio::spawn(async move { run(jobs, id, live).await });
        // IoT Hub answers the creation with `queued` even for a job that starts later; reads
        // say `scheduled` until it starts.
        record["status"] = json!("queued");
        Ok(record)
    }

    /// Reads a scheduled job (`GET /jobs/v2/{id}`) with its current statistics. An unknown id
    /// gives `{"jobId": id, "type": "unknown", "status": "unknown"}`, as IoT Hub answers.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get_scheduled(&self, job_id: &str) -> Result<Value, RegistryError> {
        let mut record = match self.read(SCHEDULED, job_id).await {
            // IoT Hub answers an unknown id with a job of type and status `unknown` (200),
            // which the Azure CLI relies on.
            Err(e) if e.code() == ErrorCode::JobNotFound => {
                return Ok(json!({ "jobId": job_id, "type": "unknown", "status": "unknown" }));
            }
            other => other?,
        };
        if !is_terminal(record["status"].as_str().unwrap_or_default()) {
            let running = self
                .live(job_id)
                .map_or(0, |l| l.running.load(Ordering::Relaxed));
            let id = job_id.to_owned();
            record["deviceJobStatistics"] = self
                .store
                .call(move |c| statistics(c, &id, running))
                .await
                .map_err(store_error)?;
        }
        Ok(record)
    }

    /// Cancels a scheduled job (`POST /jobs/v2/{id}/cancel`) and returns its record. A job
    /// that has finished keeps its status; a running one stops with the counts so far.
    ///
    /// # Errors
    /// `JobNotFound`, or a store failure.
    pub async fn cancel_scheduled(&self, job_id: &str) -> Result<Value, RegistryError> {
        self.cancel(SCHEDULED, job_id).await?;
        let id = job_id.to_owned();
        let stats = self
            .store
            .call(move |c| statistics(c, &id, 0))
            .await
            .map_err(store_error)?;
        self.update(job_id, move |r| r["deviceJobStatistics"] = stats)
            .await
    }

    /// Lists scheduled jobs, oldest first, optionally of one `jobType` and `jobStatus`
    /// (`GET /jobs/v2/query`), `max_items` at a time; `continuation` is the token of the
    /// previous page. Returns the page and the next page's token.
    ///
    /// # Errors
    /// `GenericBadRequest` for a token this hub did not give, or a store failure.
    pub async fn query_scheduled(
        &self,
        job_type: Option<String>,
        job_status: Option<String>,
        max_items: usize,
        continuation: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), RegistryError> {
        let (after_ms, after_id) = match continuation {
            None => (i64::MIN, String::new()),
            Some(token) => decode_token(&token).ok_or_else(|| {
                RegistryError::refused(
                    ErrorCode::GenericBadRequest,
                    "The continuation token is not one this hub gave.",
                )
            })?,
        };
        let max_items = max_items.clamp(1, 1000);
        let (rows, more) = self
            .store
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT created_ms, job_id, record FROM jobs
                     WHERE family = ?1 AND (created_ms, job_id) > (?2, ?3)
                       AND (?4 IS NULL OR json_extract(record, '$.type') = ?4)
                       AND (?5 IS NULL OR status = ?5)
                     ORDER BY created_ms, job_id LIMIT ?6",
                )?;
                let rows: Vec<(i64, String, String)> = stmt
                    .query_map(
                        params![
                            SCHEDULED,
                            after_ms,
                            after_id,
                            job_type,
                            job_status,
                            (max_items + 1) as i64
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?
                    .collect::<Result<_, _>>()?;
                let more = rows.len() > max_items;
                Ok::<_, StoreError>((rows.into_iter().take(max_items).collect::<Vec<_>>(), more))
            })
            .await
            .map_err(store_error)?;
        let token = if more {
            rows.last().map(|(ms, id, _)| encode_token(*ms, id))
        } else {
            None
        };
        let mut items = Vec::with_capacity(rows.len());
        for (_, id, text) in rows {
            let record: Value = serde_json::from_str(&text).map_err(|source| {
                store_error(StoreError::Corrupt {
                    what: "job",
                    source,
                })
            })?;
            // Active jobs get their current statistics, as a single read gives them.
            if is_terminal(record["status"].as_str().unwrap_or_default()) {
                items.push(record);
            } else {
                items.push(self.get_scheduled(&id).await.unwrap_or(record));
            }
        }
        Ok((items, token))
    }

    /// The per-device results of the scheduled jobs (the rows of `devices.jobs`), optionally
    /// of one job and one device.
    ///
    /// # Errors
    /// A store failure.
    pub async fn device_jobs(
        &self,
        job_id: Option<String>,
        device_id: Option<String>,
    ) -> Result<Vec<Value>, RegistryError> {
        self.store
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT record FROM device_jobs
                     WHERE (?1 IS NULL OR job_id = ?1) AND (?2 IS NULL OR device_id = ?2)
                     ORDER BY job_id, device_id",
                )?;
                let texts: Vec<String> = stmt
                    .query_map(params![job_id, device_id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                texts
                    .iter()
                    .map(|t| {
                        serde_json::from_str(t).map_err(|source| StoreError::Corrupt {
                            what: "device job",
                            source,
                        })
                    })
                    .collect::<Result<Vec<Value>, StoreError>>()
            })
            .await
            .map_err(store_error)
    }
}

/// `SELECT {columns} FROM devices WHERE {condition}`; the condition `*` selects every device
/// (as the Azure CLI documents for `az iot hub job create -q '*'`).
fn device_query(columns: &str, condition: &str) -> String {
    match condition.trim() {
        "*" => format!("SELECT {columns} FROM devices"),
        c => format!("SELECT {columns} FROM devices WHERE {c}"),
    }
}

fn encode_token(created_ms: i64, job_id: &str) -> String {
    B64.encode(format!("{created_ms}|{job_id}"))
}

fn decode_token(token: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(B64.decode(token).ok()?).ok()?;
    let (ms, id) = text.split_once('|')?;
    Some((ms.parse().ok()?, id.to_owned()))
}

/// One device's result.
struct DeviceResult {
    device_id: String,
    record: Value,
    ok: bool,
}

/// Runs a scheduled job from its record until it finishes, fails or is cancelled.
pub(super) async fn run(jobs: Arc<Jobs>, job_id: String, live: Arc<Live>) {
    if let Err(e) = run_inner(&jobs, &job_id, &live).await {
        let now = format_time(jobs.now());
        let reason = format!("The job stopped: {e}");
        let _ = jobs
            .update(&job_id, move |r| {
                if !is_terminal(r["status"].as_str().unwrap_or_default()) {
                    r["status"] = json!("failed");
                    r["failureReason"] = json!(reason);
                    r["endTime"] = json!(now);
                }
            })
            .await;
    }
    jobs.end_live(&job_id);
}

async fn run_inner(jobs: &Arc<Jobs>, job_id: &str, live: &Live) -> Result<(), RegistryError> {
    let record = jobs.read(SCHEDULED, job_id).await?;
    let work = ScheduledWork::from_record(&record)
        .ok_or_else(|| invalid("The job's record has no work to do."))?;
    let start = record["startTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| jobs.now(), |t| t.with_timezone(&Utc));
    // Sleep until the start time, unless cancelled.
    loop {
        if live.cancelled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let wait = (start - jobs.now()).to_std().unwrap_or_default();
        if wait.is_zero() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
            () = live.wake.notified() => {}
        }
    }
    let started = jobs.now();
    let max_secs = record["maxExecutionTimeInSeconds"]
        .as_u64()
        .unwrap_or(DEFAULT_MAX_EXECUTION_SECS);
    // A deadline past any real run (a century) stands for an absurd maxExecutionTimeInSeconds.
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(max_secs.min(MAX_EXECUTION_CAP_SECS));
    let started_text = format_time(started);
    jobs.update(job_id, {
        let started_text = started_text.clone();
        move |r| {
            if !is_terminal(r["status"].as_str().unwrap_or_default()) {
                r["status"] = json!("running");
                r["startTime"] = json!(started_text);
            }
        }
    })
    .await?;
    // Select the devices and record them as pending.
    let condition = record["queryCondition"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut devices = Vec::new();
    let mut token = None;
    loop {
        let page = jobs
            .registry
            .query(
                device_query("deviceId", &condition),
                Some(1000),
                token.take(),
            )
            .await?;
        devices.extend(
            page.items
                .iter()
                .filter_map(|i| i["deviceId"].as_str().map(str::to_owned)),
        );
        match page.continuation {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let job_type = work.job_type();
    {
        let id = job_id.to_owned();
        let ids = devices.clone();
        let created = started_text.clone();
        jobs.store
            .call(move |c| {
                let tx = c.transaction()?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT OR IGNORE INTO device_jobs (job_id, device_id, status, record) VALUES (?1, ?2, 'pending', ?3)",
                    )?;
                    for d in &ids {
                        let row = json!({
                            "deviceId": d, "jobId": id, "jobType": job_type, "status": "pending",
                            "startTimeUtc": null, "endTimeUtc": null,
                            "createdDateTimeUtc": created, "lastUpdatedDateTimeUtc": created,
                        });
                        stmt.execute(params![id, d, row.to_string()])?;
                    }
                }
                tx.commit()?;
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(store_error)?;
    }
    // Work on the devices, writing results in groups.
    let work = Arc::new(work);
    let mut results = futures::stream::iter(devices.into_iter().map(|device_id| {
        let jobs = Arc::clone(jobs);
        let work = Arc::clone(&work);
        let job_id = job_id.to_owned();
        async move {
            let started = format_time(jobs.now());
            let outcome = run_device(&jobs, &work, &device_id).await;
            let ended = format_time(jobs.now());
            let mut record = json!({
                "deviceId": device_id, "jobId": job_id, "jobType": work.job_type(),
                "startTimeUtc": started, "endTimeUtc": ended,
                "createdDateTimeUtc": started, "lastUpdatedDateTimeUtc": ended,
            });
            let ok = match outcome {
                Ok(outcome) => {
                    record["status"] = json!("completed");
                    if !outcome.is_null() {
                        record["outcome"] = outcome;
                    }
                    true
                }
                Err((code, message)) => {
                    record["status"] = json!("failed");
                    record["error"] = json!({ "code": code.name(), "description": message });
                    false
                }
            };
            DeviceResult {
                device_id,
                record,
                ok,
            }
        }
    }))
    .map(|f| {
        live.running.fetch_add(1, Ordering::Relaxed);
        f
    })
    .buffer_unordered(DEVICE_CONCURRENCY);
    let mut pending: Vec<DeviceResult> = Vec::new();
    let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut timed_out = false;
    loop {
        if live.cancelled.load(Ordering::SeqCst) {
            break;
        }
        let next = tokio::select! {
            r = results.next() => r,
            () = tokio::time::sleep_until(deadline) => { timed_out = true; None }
            () = live.wake.notified() => continue,
            _ = flush_tick.tick() => {
                // Results are written at least every FLUSH_EVERY, so reads see them while
                // slow devices are still waited for.
                flush(jobs, job_id, std::mem::take(&mut pending)).await?;
                continue;
            }
        };
        let Some(result) = next else { break };
        live.running.fetch_sub(1, Ordering::Relaxed);
        pending.push(result);
        if pending.len() >= FLUSH_ROWS {
            flush(jobs, job_id, std::mem::take(&mut pending)).await?;
        }
    }
    drop(results);
    live.running.store(0, Ordering::Relaxed);
    flush(jobs, job_id, pending).await?;
    let id = job_id.to_owned();
    let stats = jobs
        .store
        .call(move |c| statistics(c, &id, 0))
        .await
        .map_err(store_error)?;
    let now = format_time(jobs.now());
    jobs.update(job_id, move |r| {
        r["deviceJobStatistics"] = stats;
        if is_terminal(r["status"].as_str().unwrap_or_default()) {
            return;
        }
        r["endTime"] = json!(now);
        if timed_out {
            r["status"] = json!("failed");
            r["failureReason"] = json!(format!(
                "The job did not finish within maxExecutionTimeInSeconds ({max_secs} s); devices still pending were not reached."
            ));
        } else {
            r["status"] = json!("completed");
        }
    })
    .await?;
    Ok(())
}

async fn flush(jobs: &Jobs, job_id: &str, results: Vec<DeviceResult>) -> Result<(), RegistryError> {
    if results.is_empty() {
        return Ok(());
    }
    let id = job_id.to_owned();
    jobs.store
        .call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE device_jobs SET status = ?3, record = ?4 WHERE job_id = ?1 AND device_id = ?2",
                )?;
                for r in &results {
                    let status = if r.ok { "completed" } else { "failed" };
                    stmt.execute(params![id, r.device_id, status, r.record.to_string()])?;
                }
            }
            tx.commit()?;
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(store_error)
}

/// Applies the job's work to one device: the outcome (`null` for a twin update,
/// `{"deviceMethodResponse": {status, payload}}` for a method) or the error's code and text.
async fn run_device(
    jobs: &Jobs,
    work: &ScheduledWork,
    device_id: &str,
) -> Result<Value, (ErrorCode, String)> {
    match work {
        ScheduledWork::UpdateTwin(patch) => jobs
            .registry
            .write_twin(
                device_id.to_owned(),
                None,
                patch.clone(),
                TwinWrite::Update,
                None,
            )
            .await
            .map(|_| Value::Null)
            .map_err(|e| (e.code(), e.to_string())),
        ScheduledWork::DeviceMethod {
            method,
            payload,
            connect_timeout_secs,
            response_timeout_secs,
        } => {
            let call = MethodCall {
                method: method.clone(),
                payload: payload.clone(),
                connect_timeout: Duration::from_secs(*connect_timeout_secs),
                response_timeout: Duration::from_secs(*response_timeout_secs),
            };
            match jobs
                .sessions
                .invoke(&Identity::new(device_id, None), call)
                .await
            {
                Ok(answer) => Ok(json!({
                    "deviceMethodResponse": { "status": answer.status, "payload": answer.payload }
                })),
                Err(MethodError::NotOnline) => Err((
                    ErrorCode::DeviceNotOnline,
                    "The device is not online or has not subscribed to direct methods.".to_owned(),
                )),
                Err(MethodError::Timeout) => Err((
                    ErrorCode::GatewayTimeout,
                    format!("The device did not answer within {response_timeout_secs} s."),
                )),
            }
        }
    }
}
