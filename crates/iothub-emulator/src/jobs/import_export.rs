//! Import and export jobs (`POST /jobs/create`, `GET /jobs`, `GET|DELETE /jobs/{id}`).
//!
//! An export streams the registry in pages of [`EXPORT_PAGE_DEVICES`] devices to the output
//! blob (`devices.txt` unless `outputBlobName` says otherwise), uploaded in blocks: memory
//! stays bounded whatever the registry's size, and the blob appears only when complete. An
//! import reads the input blob line by line and applies batches of [`IMPORT_BATCH_LINES`]
//! lines with the bulk registry operation's rules (plus module lines); each batch commits
//! with the job's count of applied lines. Lines that fail go to `importErrors.log` in the
//! output container, one JSON object per line with IoT Hub's error code.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::blob::{self, Container};
use super::{IMPORT_EXPORT, Jobs, Live, MAX_ACTIVE_IMPORT_EXPORT_JOBS, invalid, is_terminal};
use crate::clock::format_time;
use crate::error::{ErrorCode, Invalid};
use crate::registry::{ImportFailure, ImportLine, RegistryError};
use crate::store::StoreError;

/// Devices per page of an export.
pub const EXPORT_PAGE_DEVICES: usize = 1000;
/// Input lines per transaction of an import.
pub const IMPORT_BATCH_LINES: usize = 1000;
/// The blob an export writes and an import reads unless the job names another.
const DEFAULT_BLOB: &str = "devices.txt";
/// The blob of failed import lines, in the output container.
pub const IMPORT_ERRORS_BLOB: &str = "importErrors.log";
/// The blob of configurations when `includeConfigurations` is set and no name is given.
const DEFAULT_CONFIGURATIONS_BLOB: &str = "configurations.txt";
/// How often a running job's `progress` is written.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A validated import/export job request.
struct Request {
    export: bool,
    input: Option<Container>,
    output: Container,
    input_blob: String,
    output_blob: String,
    exclude_keys: bool,
    configurations_blob: Option<String>,
}

fn string_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, RegistryError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid::format(format!("{name} must be a string.")).into()),
    }
}

fn bool_field(body: &Value, name: &str) -> Result<bool, RegistryError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Invalid::format(format!("{name} must be true or false.")).into()),
    }
}

/// Reads a container URI. `needs` is the SAS permission the job needs (`r` to read the
/// input, `w` to write the output); a SAS whose `sp` lacks it is refused at creation with
/// `BlobContainerValidationError`, as IoT Hub does ("Unauthorized to write to output blob
/// container").
fn container(body: &Value, field: &str, needs: char) -> Result<Container, RegistryError> {
    let uri = string_field(body, field)?
        .ok_or_else(|| invalid(format!("{field} is required for this job type.")))?;
    let container = Container::from_sas_url(field, uri).map_err(|e| invalid(e.to_string()))?;
    if container
        .expiry()
        .is_some_and(|expiry| expiry <= chrono::Utc::now())
    {
        return Err(RegistryError::refused(
            ErrorCode::BlobContainerValidationError,
            format!("The SAS of {field} has expired (its 'se' is in the past)."),
        ));
    }
    if container
        .permissions()
        .is_some_and(|sp| !sp.contains(needs))
    {
        let what = if needs == 'w' {
            "Unauthorized to write to output blob container."
        } else {
            "Unauthorized to read from input blob container."
        };
        return Err(RegistryError::refused(
            ErrorCode::BlobContainerValidationError,
            format!("{what} The SAS of {field} does not grant '{needs}' permission."),
        ));
    }
    Ok(container)
}

fn parse_request(body: &Value) -> Result<Request, RegistryError> {
    if !body.is_object() {
        return Err(Invalid::format("The job must be a JSON object.").into());
    }
    let export = match string_field(body, "type")? {
        Some(t) if t.eq_ignore_ascii_case("export") => true,
        Some(t) if t.eq_ignore_ascii_case("import") => false,
        Some(t) => {
            return Err(invalid(format!(
                "The job type '{}' is not valid here; use 'export' or 'import' (scheduled jobs go to /jobs/v2).",
                t.escape_default()
            )));
        }
        None => return Err(invalid("type is required: 'export' or 'import'.")),
    };
    match string_field(body, "storageAuthenticationType")? {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("keyBased") => {}
        Some(t) if t.eq_ignore_ascii_case("identityBased") => {
            return Err(invalid(
                "identityBased storage authentication uses the hub's managed identity, which the local hub does not have; give container URIs with a SAS (keyBased).",
            ));
        }
        Some(t) => {
            return Err(invalid(format!(
                "The storageAuthenticationType '{}' is not valid; use keyBased or identityBased.",
                t.escape_default()
            )));
        }
    }
    let output = container(body, "outputBlobContainerUri", 'w')?;
    let input = if export {
        None
    } else {
        Some(container(body, "inputBlobContainerUri", 'r')?)
    };
    if !export && bool_field(body, "includeConfigurations")? {
        return Err(invalid(
            "includeConfigurations is not supported for import jobs by the local hub: import configurations with PUT /configurations/{id}.",
        ));
    }
    for field in ["inputBlobName", "outputBlobName", "configurationsBlobName"] {
        if let Some(name) = string_field(body, field)?
            && object_store::path::Path::parse(name).is_err()
        {
            return Err(invalid(format!(
                "{field} '{}' is not a blob name (no empty segments, '.' or '..').",
                name.escape_default()
            )));
        }
    }
    let configurations_blob = bool_field(body, "includeConfigurations")?.then(|| {
        string_field(body, "configurationsBlobName")
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_CONFIGURATIONS_BLOB)
            .to_owned()
    });
    Ok(Request {
        export,
        input,
        output,
        input_blob: string_field(body, "inputBlobName")?
            .unwrap_or(DEFAULT_BLOB)
            .to_owned(),
        output_blob: string_field(body, "outputBlobName")?
            .unwrap_or(DEFAULT_BLOB)
            .to_owned(),
        exclude_keys: bool_field(body, "excludeKeysInExport")?,
        configurations_blob,
    })
}

impl Jobs {
    /// Creates an import or export job (`POST /jobs/create`) and starts it in the
    /// background. Returns its record, status `enqueued`.
    ///
    /// # Errors
    /// `IotHubFormatError` for a body of the wrong shape; `ArgumentInvalid` for a missing or
    /// unusable container URI (no SAS, not a container URL), an unknown type, or
    /// `identityBased` storage access; `BlobContainerValidationError` for a SAS without the
    /// permission the job needs; `JobQuotaExceeded` while another import or export job is
    /// active (IoT Hub runs one at a time); a store failure.
    pub async fn create_import_export(
        self: &Arc<Self>,
        body: Value,
    ) -> Result<Value, RegistryError> {
        let request = parse_request(&body)?;
        let job_id = uuid::Uuid::new_v4().to_string();
        let now = format_time(self.now());
        let mut record = Map::new();
        record.insert("jobId".into(), json!(job_id));
        record.insert(
            "type".into(),
            json!(if request.export { "export" } else { "import" }),
        );
        record.insert("status".into(), json!("enqueued"));
        record.insert("progress".into(), json!(0));
        record.insert("startTimeUtc".into(), json!(now));
        record.insert("endTimeUtc".into(), Value::Null);
        // The container URIs carry SAS tokens: IoT Hub does not echo them, and the local hub
        // neither returns nor stores them (the running job holds them in memory).
        if let Some(name) = &request.configurations_blob {
            record.insert("configurationsBlobName".into(), json!(name));
        }
        if !request.export {
            record.insert("inputBlobName".into(), json!(request.input_blob));
        }
        record.insert("outputBlobName".into(), json!(request.output_blob));
        record.insert("excludeKeysInExport".into(), json!(request.exclude_keys));
        record.insert(
            "includeConfigurations".into(),
            json!(request.configurations_blob.is_some()),
        );
        record.insert("storageAuthenticationType".into(), json!("keyBased"));
        record.insert("failureReason".into(), Value::Null);
        let record = Value::Object(record);
        {
            let _guard = self.records.lock().await;
            let active = self
                .count_active(IMPORT_EXPORT, &["enqueued", "running"])
                .await?;
            if active >= MAX_ACTIVE_IMPORT_EXPORT_JOBS {
                return Err(RegistryError::refused(
                    ErrorCode::JobQuotaExceeded,
                    "An import or export job is already active on this hub; IoT Hub runs one at a time. Wait for it to finish or cancel it.",
                ));
            }
            self.insert(IMPORT_EXPORT, &job_id, record.clone()).await?;
        }
        let live = self.start_live(&job_id);
        let jobs = Arc::clone(self);
        let id = job_id.clone();
        tokio::spawn(async move {
            let outcome = if request.export {
                jobs.run_export(&id, &live, &request).await
            } else {
                jobs.run_import(&id, &live, &request).await
            };
            jobs.finish(&id, outcome).await;
            jobs.end_live(&id);
        });
        Ok(record)
    }

    /// Reads an import or export job (`GET /jobs/{id}`).
    ///
    /// # Errors
    /// `JobNotFound`, or a store failure.
    pub async fn get_import_export(&self, job_id: &str) -> Result<Value, RegistryError> {
        self.read(IMPORT_EXPORT, job_id).await
    }

    /// Lists the import and export jobs, oldest first (`GET /jobs`).
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_import_export(&self) -> Result<Vec<Value>, RegistryError> {
        self.store
            .call(|c| {
                let texts: Vec<String> = c
                    .prepare(
                        "SELECT record FROM jobs WHERE family = ?1 ORDER BY created_ms, job_id",
                    )?
                    .query_map([IMPORT_EXPORT], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                texts
                    .iter()
                    .map(|t| {
                        serde_json::from_str(t).map_err(|source| StoreError::Corrupt {
                            what: "job",
                            source,
                        })
                    })
                    .collect::<Result<Vec<Value>, StoreError>>()
            })
            .await
            .map_err(RegistryError::Store)
    }

    /// Cancels an import or export job (`DELETE /jobs/{id}`) and returns its record. A job
    /// that has finished keeps its status. An import's lines applied before the cancel stay
    /// applied (the record's `progress` tells how far it got).
    ///
    /// # Errors
    /// `JobNotFound`, or a store failure.
    pub async fn cancel_import_export(&self, job_id: &str) -> Result<Value, RegistryError> {
        self.cancel(IMPORT_EXPORT, job_id).await
    }

    /// Marks a job `running`.
    async fn set_running(&self, job_id: &str) -> Result<(), RegistryError> {
        self.update(job_id, |r| {
            if r["status"] == "enqueued" {
                r["status"] = json!("running");
            }
        })
        .await
        .map(drop)
    }

    async fn set_progress(&self, job_id: &str, percent: u64) {
        let percent = percent.min(99);
        let _ = self
            .update(job_id, move |r| {
                if !is_terminal(r["status"].as_str().unwrap_or_default()) {
                    r["progress"] = json!(percent);
                }
            })
            .await;
    }

    /// Records a job's outcome: `completed`, or `failed` with the reason (a job cancelled
    /// meanwhile keeps `cancelled`).
    async fn finish(&self, job_id: &str, outcome: Result<(), String>) {
        let now = format_time(self.now());
        let result = self
            .update(job_id, move |r| {
                if is_terminal(r["status"].as_str().unwrap_or_default()) {
                    return;
                }
                r["endTimeUtc"] = json!(now);
                match outcome {
                    Ok(()) => {
                        r["status"] = json!("completed");
                        r["progress"] = json!(100);
                    }
                    Err(reason) => {
                        r["status"] = json!("failed");
                        r["failureReason"] = json!(reason);
                    }
                }
            })
            .await;
        if let Err(e) = result {
            tracing::error!(job = job_id, error = %e, "recording a job's outcome failed");
        }
    }

    async fn run_export(&self, job_id: &str, live: &Live, req: &Request) -> Result<(), String> {
        self.set_running(job_id).await.map_err(|e| e.to_string())?;
        let total = self
            .registry
            .device_counts()
            .await
            .map_err(|e| e.to_string())?
            .total
            .max(1);
        let mut writer = req
            .output
            .create(&req.output_blob)
            .map_err(|e| blob::describe(&e, &req.output, &req.output_blob))?;
        let mut after = None;
        let mut done = 0u64;
        let mut reported = Instant::now();
        loop {
            if live.cancelled.load(Ordering::SeqCst) {
                let _ = writer.abort().await;
                return Ok(());
            }
            let page = match self
                .registry
                .export_page(
                    after.take(),
                    super::import_export::EXPORT_PAGE_DEVICES,
                    !req.exclude_keys,
                )
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(format!("Reading the registry failed: {e}"));
                }
            };
            if page.devices == 0 {
                break;
            }
            if let Err(e) = writer.write_all(page.text.as_bytes()).await {
                let _ = writer.abort().await;
                return Err(write_failure(&e, &req.output, &req.output_blob));
            }
            done += page.devices as u64;
            after = page.last;
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                self.set_progress(job_id, done * 100 / total).await;
            }
        }
        writer
            .shutdown()
            .await
            .map_err(|e| write_failure(&e, &req.output, &req.output_blob))?;
        if let Some(name) = &req.configurations_blob {
            let configurations = self
                .registry
                .list_configurations(crate::registry::MAX_LIST_CONFIGURATIONS)
                .await
                .map_err(|e| format!("Reading the configurations failed: {e}"))?;
            let mut text = String::new();
            for c in configurations {
                text.push_str(&c.to_string());
                text.push('\n');
            }
            let mut writer = req
                .output
                .create(name)
                .map_err(|e| blob::describe(&e, &req.output, name))?;
            writer
                .write_all(text.as_bytes())
                .await
                .map_err(|e| write_failure(&e, &req.output, name))?;
            writer
                .shutdown()
                .await
                .map_err(|e| write_failure(&e, &req.output, name))?;
        }
        Ok(())
    }

    async fn run_import(&self, job_id: &str, live: &Live, req: &Request) -> Result<(), String> {
        self.set_running(job_id).await.map_err(|e| e.to_string())?;
        let input = req
            .input
            .as_ref()
            .expect("an import job has an input container");
        let (reader, size) = input
            .open(&req.input_blob)
            .await
            .map_err(|e| blob::describe(&e, input, &req.input_blob))?;
        let mut errors = req
            .output
            .create(IMPORT_ERRORS_BLOB)
            .map_err(|e| blob::describe(&e, &req.output, IMPORT_ERRORS_BLOB))?;
        // A reader task parses lines into batches while the previous batch is applied.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Batch, String>>(2);
        let input_desc = (input.clone(), req.input_blob.clone());
        let reader_task = tokio::spawn(read_batches(reader, tx, input_desc));
        let mut applied = 0u64;
        let mut error_text = String::new();
        let mut retry: Vec<ImportLine> = Vec::new();
        let outcome: Result<(), String> = loop {
            if live.cancelled.load(Ordering::SeqCst) {
                break Ok(());
            }
            let Some(batch) = rx.recv().await else {
                break Ok(());
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => break Err(e),
            };
            for (line, code, message) in &batch.malformed {
                push_error(
                    &mut error_text,
                    *line,
                    None,
                    None,
                    None,
                    code.clone(),
                    message,
                );
            }
            let lines_through = batch.last_line;
            let progress = (batch.bytes_through * 100)
                .checked_div(size)
                .unwrap_or(100)
                .min(99);
            // Lines naming scopes may name a parent that comes later in the file (an export
            // is in id order): the ones refused for their scope are tried again at the end.
            let scoped: std::collections::HashMap<u64, Value> = batch
                .lines
                .iter()
                .filter(|l| names_a_scope(&l.entry))
                .map(|l| (l.line, l.entry.clone()))
                .collect();
            let id = job_id.to_owned();
            let failures = self
                .registry
                .import_lines(batch.lines, move |c, _| {
                    c.prepare_cached(
                        "UPDATE jobs SET checkpoint = ?2, record = json_set(record, '$.progress', ?3)
                         WHERE job_id = ?1 AND status = 'running'",
                    )?
                    .execute(rusqlite::params![id, lines_through as i64, progress as i64])?;
                    Ok::<_, StoreError>(())
                })
                .await;
            match failures {
                Ok(failures) => {
                    for f in failures {
                        match scoped.get(&f.line) {
                            Some(entry) if f.failure.code == ErrorCode::InvalidDeviceScope => {
                                retry.push(ImportLine {
                                    line: f.line,
                                    entry: entry.clone(),
                                });
                            }
                            _ => push_failure(&mut error_text, &f),
                        }
                    }
                }
                Err(e) => break Err(format!("Applying lines up to {lines_through} failed: {e}")),
            }
            applied = lines_through;
            if error_text.len() > 1 << 20 {
                if let Err(e) = errors.write_all(error_text.as_bytes()).await {
                    break Err(write_failure(&e, &req.output, IMPORT_ERRORS_BLOB));
                }
                error_text.clear();
            }
        };
        reader_task.abort();
        // The lines refused for a scope whose device came later, once more, in file order.
        let outcome = match outcome {
            Ok(()) if !retry.is_empty() && !live.cancelled.load(Ordering::SeqCst) => {
                match self.registry.import_lines(retry, |_, _| Ok(())).await {
                    Ok(failures) => {
                        for f in failures {
                            push_failure(&mut error_text, &f);
                        }
                        Ok(())
                    }
                    Err(e) => Err(format!("Applying the lines that name scopes failed: {e}")),
                }
            }
            other => other,
        };
        tracing::debug!(job = job_id, lines = applied, "import job stopped reading");
        if outcome.is_ok() || !error_text.is_empty() {
            let written = async {
                errors.write_all(error_text.as_bytes()).await?;
                errors.shutdown().await
            }
            .await;
            if let Err(e) = written {
                let _ = errors.abort().await;
                return outcome.and(Err(write_failure(&e, &req.output, IMPORT_ERRORS_BLOB)));
            }
        } else {
            let _ = errors.abort().await;
        }
        outcome
    }
}

fn write_failure(e: &std::io::Error, container: &Container, name: &str) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<object_store::Error>())
    {
        Some(store_error) => blob::describe(store_error, container, name),
        None => format!(
            "Writing '{name}' to the container {} failed: {}",
            container.shown(),
            e.kind()
        ),
    }
}

/// Lines parsed from the input blob, ready to apply.
struct Batch {
    lines: Vec<ImportLine>,
    /// Lines that are not JSON objects: line number, code, message.
    malformed: Vec<(u64, ErrorCode, String)>,
    /// The last line number this batch covers.
    last_line: u64,
    /// Bytes of the blob read through this batch.
    bytes_through: u64,
}

/// Reads the input blob line by line into batches of [`IMPORT_BATCH_LINES`] lines.
async fn read_batches(
    mut reader: object_store::buffered::BufReader,
    tx: tokio::sync::mpsc::Sender<Result<Batch, String>>,
    (container, name): (Container, String),
) {
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    let mut raw = Vec::new();
    let mut batch = Batch {
        lines: Vec::new(),
        malformed: Vec::new(),
        last_line: 0,
        bytes_through: 0,
    };
    loop {
        let (n, cut) = match read_line_bounded(&mut reader, &mut raw).await {
            Ok(read) => read,
            Err(e) => {
                let reason = match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<object_store::Error>())
                {
                    Some(se) => blob::describe(se, &container, &name),
                    None => format!("Reading '{name}' failed: {}", e.kind()),
                };
                let _ = tx.send(Err(reason)).await;
                return;
            }
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        bytes += n as u64;
        let problem = if cut {
            Some(format!(
                "Invalid device format in line {line_no}: the line is longer than {MAX_LINE_BYTES} bytes."
            ))
        } else if std::str::from_utf8(&raw).is_err() {
            Some(format!(
                "Invalid device format in line {line_no}: the line is not UTF-8 text."
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            batch
                .malformed
                .push((line_no, ErrorCode::DeserializationError, message));
        }
        let buf = if cut {
            ""
        } else {
            std::str::from_utf8(&raw).unwrap_or_default()
        };
        // A byte order mark at the start of the blob is not part of the first line.
        let text = if line_no == 1 {
            buf.trim_start_matches('\u{feff}').trim()
        } else {
            buf.trim()
        };
        if !text.is_empty() {
            match serde_json::from_str::<Value>(text) {
                Ok(entry @ Value::Object(_)) => batch.lines.push(ImportLine {
                    line: line_no,
                    entry,
                }),
                Ok(_) => batch.malformed.push((
                    line_no,
                    ErrorCode::DeserializationError,
                    format!(
                        "Invalid device format in line: {}. The line is not a JSON object.",
                        shorten(text)
                    ),
                )),
                Err(e) => batch.malformed.push((
                    line_no,
                    ErrorCode::DeserializationError,
                    format!(
                        "Invalid device format in line: {}. {}.",
                        shorten(text),
                        crate::error::json_problem(&e)
                    ),
                )),
            }
        }
        if batch.lines.len() + batch.malformed.len() >= IMPORT_BATCH_LINES {
            batch.last_line = line_no;
            batch.bytes_through = bytes;
            let full = std::mem::replace(
                &mut batch,
                Batch {
                    lines: Vec::new(),
                    malformed: Vec::new(),
                    last_line: 0,
                    bytes_through: 0,
                },
            );
            if tx.send(Ok(full)).await.is_err() {
                return;
            }
        }
    }
    batch.last_line = line_no;
    batch.bytes_through = bytes;
    let _ = tx.send(Ok(batch)).await;
}

/// The text of a line for an error record (as IoT Hub quotes it), cut at 200 characters.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

/// Whether an import line names a scope (a non-empty `deviceScope` or `parentScopes`): only
/// those can fail for a parent that comes later in the file.
fn names_a_scope(entry: &Value) -> bool {
    entry["deviceScope"].as_str().is_some_and(|s| !s.is_empty())
        || entry["parentScopes"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
}

/// Longest input line an import reads (IoT Hub's twin and identity limits keep a real line
/// far below it); a longer one is a failed line, and only this much of it is held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads one line (through `\n`) into `out`, keeping at most [`MAX_LINE_BYTES`] of it.
/// Returns the bytes consumed (0 at the end) and whether the line was cut.
async fn read_line_bounded(
    reader: &mut object_store::buffered::BufReader,
    out: &mut Vec<u8>,
) -> std::io::Result<(usize, bool)> {
    out.clear();
    let (mut consumed, mut cut) = (0, false);
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok((consumed, cut));
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(out.len());
        cut |= take > room;
        out.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, cut));
        }
    }
}

/// Appends one record of `importErrors.log`: IoT Hub's fields (`deviceId`, `errorCode` as
/// the six-digit number, `errorStatus`), plus `line`, and `moduleId` and `importMode` when
/// known. `errorStatus` starts with the code's name.
fn push_error(
    out: &mut String,
    line: u64,
    device_id: Option<&str>,
    module_id: Option<&str>,
    mode: Option<&str>,
    code: ErrorCode,
    message: &str,
) {
    let mut record = Map::new();
    if let Some(id) = device_id {
        record.insert("deviceId".into(), json!(id));
    }
    if let Some(m) = module_id {
        record.insert("moduleId".into(), json!(m));
    }
    record.insert("errorCode".into(), json!(code.number()));
    record.insert(
        "errorStatus".into(),
        json!(format!("{}: {message}", code.name())),
    );
    record.insert("line".into(), json!(line));
    if let Some(mode) = mode {
        record.insert("importMode".into(), json!(mode));
    }
    out.push_str(&Value::Object(record).to_string());
    out.push('\n');
}

fn push_failure(out: &mut String, f: &ImportFailure) {
    push_error(
        out,
        f.line,
        Some(&f.failure.device_id),
        f.module_id.as_deref(),
        f.failure.operation,
        f.failure.code.clone(),
        &f.failure.message,
    );
}
