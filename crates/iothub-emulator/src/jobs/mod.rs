//! IoT Hub's jobs: registry import/export through blob storage (`/jobs`) and scheduled twin
//! updates and direct methods over the devices a query selects (`/jobs/v2`).
//!
//! Sources: "Import and export IoT Hub device identities in bulk" and "Schedule jobs on
//! multiple devices" (IoT Hub developer guide), and the data-plane REST spec's `jobs`
//! operations. Jobs run in the background on the hub's runtime; their records (the wire
//! documents clients read back) live in the `jobs` table, and a scheduled job's per-device
//! results in `device_jobs`, so they survive restarts.
//!
//! After a crash or `kill -9`, [`Jobs::recover`] settles every job the previous run left
//! unfinished, and its record says what happened:
//! * an import or export job that was queued or running is `failed`; an import's
//!   `failureReason` gives how many input lines were applied, a number committed in the same
//!   transaction as those lines;
//! * a scheduled job that had not started yet is resumed at its start time;
//! * a scheduled job that was running is `failed`, with the per-device results recorded so
//!   far (devices not reached stay `pending` in its statistics).

mod blob;
mod import_export;
mod scheduled;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::clock::{Clock, format_time};
use crate::error::{ErrorCode, Invalid};
use crate::registry::{Registry, RegistryError};
use crate::sessions::Sessions;
use crate::store::{Store, StoreError};

pub(crate) use blob::redact as redact_signature;
pub(crate) use scheduled::twin_patch;
pub use scheduled::{ScheduledJobInput, ScheduledWork};

/// At most this many import/export jobs are active (queued or running) at a time, as on
/// IoT Hub ("Only one active device import or export job is allowed at a time").
pub const MAX_ACTIVE_IMPORT_EXPORT_JOBS: usize = 1;

/// At most this many scheduled jobs are active (scheduled, queued or running) at a time
/// (IoT Hub's S3 tier allows 10 concurrent jobs; lower tiers fewer).
pub const MAX_ACTIVE_SCHEDULED_JOBS: usize = 10;

/// `jobs.family` of import/export jobs.
const IMPORT_EXPORT: &str = "importExport";
/// `jobs.family` of scheduled jobs.
const SCHEDULED: &str = "scheduled";

/// What a job's runner shares with the hub while it runs.
#[derive(Debug, Default)]
struct Live {
    /// Set by a cancel request; the runner stops at its next step.
    cancelled: AtomicBool,
    /// Devices a scheduled job is working on right now (`runningCount`).
    running: AtomicU64,
    /// Wakes a runner that sleeps until its start time.
    wake: tokio::sync::Notify,
}

/// The jobs of one hub.
pub struct Jobs {
    store: Arc<Store>,
    registry: Registry,
    sessions: Arc<Sessions>,
    clock: Clock,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Serializes the read-modify-write of job records.
    records: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

fn job_not_found(job_id: &str) -> RegistryError {
    RegistryError::refused(
        ErrorCode::JobNotFound,
        format!("The job '{}' does not exist.", job_id.escape_default()),
    )
}

/// 409 for a job id that is taken.
fn job_exists(job_id: &str) -> RegistryError {
    RegistryError::refused(
        ErrorCode::GenericConflict,
        format!(
            "A job with id '{}' already exists.",
            job_id.escape_default()
        ),
    )
}

/// Whether a status is final.
fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

fn store_error(e: StoreError) -> RegistryError {
    RegistryError::Store(e)
}

impl Jobs {
    /// The jobs of the hub behind `registry` (device sessions serve method jobs).
    pub fn new(
        store: Arc<Store>,
        registry: Registry,
        sessions: Arc<Sessions>,
        clock: Clock,
    ) -> Arc<Self> {
        Arc::new(Jobs {
            store,
            registry,
            sessions,
            clock,
            live: Mutex::new(HashMap::new()),
            records: tokio::sync::Mutex::new(()),
        })
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn live(&self, job_id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(job_id)
            .cloned()
    }

    fn start_live(&self, job_id: &str) -> Arc<Live> {
        let live = Arc::new(Live::default());
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job_id.to_owned(), Arc::clone(&live));
        live
    }

    fn end_live(&self, job_id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job_id);
    }

    /// Reads a job's record of `family`.
    async fn read(&self, family: &'static str, job_id: &str) -> Result<Value, RegistryError> {
        let id = job_id.to_owned();
        let record = self
            .store
            .call(move |c| read_record(c, Some(family), &id))
            .await
            .map_err(store_error)?;
        record.ok_or_else(|| job_not_found(job_id))
    }

    /// Applies `change` to a job's record and writes it back (unless the record is already
    /// final and `change` is not allowed to touch final records). Returns the new record.
    async fn update(
        &self,
        job_id: &str,
        change: impl FnOnce(&mut Value) + Send + 'static,
    ) -> Result<Value, RegistryError> {
        let _guard = self.records.lock().await;
        let id = job_id.to_owned();
        let updated = self
            .store
            .call(move |c| {
                let Some(mut record) = read_any(c, &id)? else {
                    return Ok(None);
                };
                change(&mut record);
                write_record(c, &id, &record, None)?;
                Ok::<_, StoreError>(Some(record))
            })
            .await
            .map_err(store_error)?;
        updated.ok_or_else(|| job_not_found(job_id))
    }

    /// Counts a family's jobs whose status is one of `statuses`.
    async fn count_active(
        &self,
        family: &'static str,
        statuses: &'static [&'static str],
    ) -> Result<usize, RegistryError> {
        self.store
            .call(move |c| {
                let mut n = 0usize;
                for s in statuses {
                    let k: i64 = c
                        .prepare_cached(
                            "SELECT COUNT(*) FROM jobs WHERE family = ?1 AND status = ?2",
                        )?
                        .query_row(params![family, s], |r| r.get(0))?;
                    n += usize::try_from(k).unwrap_or(0);
                }
                Ok::<_, StoreError>(n)
            })
            .await
            .map_err(store_error)
    }

    /// Inserts a new job record; `GenericConflict` when the id is taken.
    async fn insert(
        &self,
        family: &'static str,
        job_id: &str,
        record: Value,
    ) -> Result<(), RegistryError> {
        let id = job_id.to_owned();
        let created_ms = self.now().timestamp_millis();
        let inserted = self
            .store
            .call(move |c| {
                let status = record["status"].as_str().unwrap_or("unknown").to_owned();
                let n = c.execute(
                    "INSERT INTO jobs (job_id, family, status, created_ms, record) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(job_id) DO NOTHING",
                    params![id, family, status, created_ms, record.to_string()],
                )?;
                Ok::<_, StoreError>(n == 1)
            })
            .await
            .map_err(store_error)?;
        if inserted {
            Ok(())
        } else {
            Err(job_exists(job_id))
        }
    }

    /// Settles the jobs a previous run left unfinished (see the module docs) and restarts the
    /// scheduled jobs that had not started. Call once, when the hub starts.
    ///
    /// # Errors
    /// A store failure.
    pub async fn recover(self: &Arc<Self>) -> Result<(), StoreError> {
        let now = format_time(self.now());
        let resumable = self
            .store
            .call(move |c| {
                let tx = c.transaction()?;
                let mut resumable = Vec::new();
                let rows: Vec<(String, String, String)> = tx
                    .prepare(
                        "SELECT job_id, family, record FROM jobs
                         WHERE status NOT IN ('completed', 'failed', 'cancelled')",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                for (id, family, text) in rows {
                    let mut record: Value = serde_json::from_str(&text)
                        .map_err(|source| StoreError::Corrupt { what: "job", source })?;
                    let status = record["status"].as_str().unwrap_or_default().to_owned();
                    if family == SCHEDULED && matches!(status.as_str(), "scheduled" | "queued") {
                        record["statusMessage"] =
                            json!("Resumed after the local hub restarted; the job had not started.");
                        write_record(&tx, &id, &record, None)?;
                        resumable.push(id);
                        continue;
                    }
                    if family == SCHEDULED {
                        // The per-device results recorded before the stop stay counted.
                        record["deviceJobStatistics"] = scheduled::statistics(&tx, &id, 0)?;
                    }
                    let reason = if family == SCHEDULED {
                        "The local hub stopped while this job was running; it was not resumed. The per-device results recorded before the stop are kept; devices still pending were not reached.".to_owned()
                    } else if record["type"] == "import" {
                        let applied: i64 = tx
                            .query_row(
                                "SELECT checkpoint FROM jobs WHERE job_id = ?1",
                                params![id],
                                |r| r.get(0),
                            )
                            .optional()?
                            .unwrap_or(0);
                        format!(
                            "The local hub stopped while this import job was running; it was not resumed. The first {applied} lines of the input blob were applied and the rest were not. Import the remaining lines (or the whole blob with importMode createOrUpdate) to finish."
                        )
                    } else {
                        "The local hub stopped while this export job was running; it was not resumed and no output blob was written. Create the export job again.".to_owned()
                    };
                    record["status"] = json!("failed");
                    record["failureReason"] = json!(reason);
                    let end = if family == SCHEDULED { "endTime" } else { "endTimeUtc" };
                    record[end] = json!(now);
                    write_record(&tx, &id, &record, None)?;
                }
                tx.commit()?;
                Ok::<_, StoreError>(resumable)
            })
            .await?;
        for id in resumable {
            let jobs = Arc::clone(self);
            let live = self.start_live(&id);
            tokio::spawn(async move { scheduled::run(jobs, id, live).await });
        }
        Ok(())
    }

    /// Cancels a job of `family` that is not final yet and returns its record.
    async fn cancel(&self, family: &'static str, job_id: &str) -> Result<Value, RegistryError> {
        let record = self.read(family, job_id).await?;
        if is_terminal(record["status"].as_str().unwrap_or_default()) {
            return Ok(record);
        }
        let now = format_time(self.now());
        let end = if family == SCHEDULED {
            "endTime"
        } else {
            "endTimeUtc"
        };
        let record = self
            .update(job_id, move |r| {
                if !is_terminal(r["status"].as_str().unwrap_or_default()) {
                    r["status"] = json!("cancelled");
                    r[end] = json!(now);
                }
            })
            .await?;
        if let Some(live) = self.live(job_id) {
            live.cancelled.store(true, Ordering::SeqCst);
            live.wake.notify_waiters();
        }
        Ok(record)
    }
}

/// Reads a job's record whatever its family.
fn read_any(c: &Connection, job_id: &str) -> Result<Option<Value>, StoreError> {
    read_record(c, None, job_id)
}

/// Reads a job's record, of `family` when given.
fn read_record(
    c: &Connection,
    family: Option<&str>,
    job_id: &str,
) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = c
        .prepare_cached(
            "SELECT record FROM jobs WHERE job_id = ?1 AND (?2 IS NULL OR family = ?2)",
        )?
        .query_row(params![job_id, family], |r| r.get(0))
        .optional()?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|source| StoreError::Corrupt {
            what: "job",
            source,
        })
    })
    .transpose()
}

/// Writes a job's record (and its status column); `checkpoint` also sets the count of input
/// lines an import has applied.
fn write_record(
    c: &Connection,
    job_id: &str,
    record: &Value,
    checkpoint: Option<u64>,
) -> Result<(), StoreError> {
    let status = record["status"].as_str().unwrap_or("unknown");
    c.prepare_cached(
        "UPDATE jobs SET record = ?2, status = ?3, checkpoint = coalesce(?4, checkpoint) WHERE job_id = ?1",
    )?
    .execute(params![
        job_id,
        record.to_string(),
        status,
        checkpoint.map(|n| n as i64)
    ])?;
    Ok(())
}

/// `ArgumentInvalid` with `message`.
fn invalid(message: impl Into<String>) -> RegistryError {
    Invalid::argument(message).into()
}

/// A query over `devices.jobs`: `SELECT * FROM devices.jobs`, optionally with a WHERE
/// clause of `=` comparisons joined by AND on `jobId`, `deviceId`, `status` or `jobType`
/// (with or without the `devices.jobs.` prefix), as IoT Hub's jobs page shows them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceJobsQuery {
    filters: Vec<(&'static str, String)>,
}

impl DeviceJobsQuery {
    /// Parses `text`; `None` when it is not a query over `devices.jobs` (the query engine
    /// takes it).
    ///
    /// # Errors
    /// `ArgumentInvalid` for a `devices.jobs` query the local hub does not support.
    pub fn parse(text: &str) -> Option<Result<Self, RegistryError>> {
        let lower = text.to_ascii_lowercase();
        let from = lower.find(" from devices.jobs")?;
        // Only a FROM clause naming devices.jobs itself (not text that mentions it).
        let after = &lower[from + " from devices.jobs".len()..];
        if !(after.is_empty() || after.starts_with(char::is_whitespace))
            || lower[..from].contains('\'')
        {
            return None;
        }
        let unsupported = || {
            invalid(
                "The local hub answers devices.jobs queries of the form SELECT * FROM devices.jobs [WHERE f = 'v' AND ...] with f one of jobId, deviceId, status, jobType.",
            )
        };
        if lower[..from].trim() != "select *" {
            return Some(Err(unsupported()));
        }
        let rest = text[from + " from devices.jobs".len()..].trim();
        let mut query = DeviceJobsQuery::default();
        if rest.is_empty() {
            return Some(Ok(query));
        }
        let Some(clause) = rest
            .get(..6)
            .filter(|w| w.eq_ignore_ascii_case("where "))
            .map(|_| &rest[6..])
        else {
            return Some(Err(unsupported()));
        };
        for part in split_and(clause) {
            let Some((lhs, rhs)) = part.split_once('=') else {
                return Some(Err(unsupported()));
            };
            let lhs = lhs.trim();
            let lhs = lhs.strip_prefix("devices.jobs.").unwrap_or(lhs);
            let field = match lhs {
                "jobId" => "jobId",
                "deviceId" => "deviceId",
                "status" => "status",
                "jobType" => "jobType",
                _ => return Some(Err(unsupported())),
            };
            let rhs = rhs.trim();
            let Some(value) = rhs
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| rhs.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .filter(|v| !v.contains(['\'', '"']))
            else {
                return Some(Err(unsupported()));
            };
            query.filters.push((field, value.to_owned()));
        }
        Some(Ok(query))
    }

    fn get(&self, field: &str) -> Option<String> {
        self.filters
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.clone())
    }

    fn matches(&self, row: &Value) -> bool {
        self.filters
            .iter()
            .all(|(f, v)| row[*f].as_str() == Some(v))
    }
}

/// Splits a WHERE clause at ` AND ` (any case) outside quotes.
fn split_and(clause: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let bytes = clause.as_bytes();
    let (mut start, mut quote, mut i) = (0, None, 0);
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (None, q @ (b'\'' | b'"')) => quote = Some(q),
            (Some(q), b) if b == q => quote = None,
            (None, _)
                if clause
                    .get(i..i + 5)
                    .is_some_and(|w| w.eq_ignore_ascii_case(" and ")) =>
            {
                parts.push(&clause[start..i]);
                start = i + 5;
                i += 4;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&clause[start..]);
    parts
}

impl Jobs {
    /// Runs a `devices.jobs` query: one page of per-device job results of at most
    /// `max_items` rows after the position `continuation` names.
    ///
    /// # Errors
    /// `GenericBadRequest` for a foreign continuation token, or a store failure.
    pub async fn query_device_jobs(
        &self,
        query: &DeviceJobsQuery,
        max_items: usize,
        continuation: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), RegistryError> {
        let skip = match continuation {
            None => 0,
            Some(t) => t
                .strip_prefix("devicejobs:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    RegistryError::refused(
                        ErrorCode::GenericBadRequest,
                        "The continuation token is not one this hub gave.",
                    )
                })?,
        };
        let rows = self
            .device_jobs(query.get("jobId"), query.get("deviceId"))
            .await?;
        let mut matching = rows.into_iter().filter(|r| query.matches(r)).skip(skip);
        let page: Vec<Value> = matching.by_ref().take(max_items.max(1)).collect();
        let next = matching
            .next()
            .map(|_| format!("devicejobs:{}", skip + page.len()));
        Ok((page, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_jobs_queries_parse() {
        assert!(DeviceJobsQuery::parse("SELECT * FROM devices").is_none());
        let q = DeviceJobsQuery::parse(
            "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j 1' AND status = 'failed'",
        )
        .unwrap()
        .unwrap();
        assert_eq!(q.get("jobId").as_deref(), Some("j 1"));
        assert!(q.matches(&json!({"jobId": "j 1", "status": "failed"})));
        assert!(!q.matches(&json!({"jobId": "j 1", "status": "completed"})));
        assert!(
            DeviceJobsQuery::parse("SELECT deviceId FROM devices.jobs")
                .unwrap()
                .is_err()
        );
        assert!(
            DeviceJobsQuery::parse("SELECT * FROM devices.jobs WHERE x > 1")
                .unwrap()
                .is_err()
        );
        // An OR hidden in a value is refused, not read as part of the value.
        assert!(
            DeviceJobsQuery::parse("SELECT * FROM devices.jobs WHERE jobId = 'a' OR jobId = 'b'")
                .unwrap()
                .is_err()
        );
        // Text that mentions devices.jobs is an ordinary query.
        assert!(
            DeviceJobsQuery::parse(
                "SELECT * FROM devices WHERE tags.note = 'moved from devices.jobs table'"
            )
            .is_none()
        );
    }
}
