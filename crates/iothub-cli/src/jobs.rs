//! IoT Hub jobs: `device-identity export --blob` and `import --blob` (import and export jobs
//! through blob storage, `/jobs`), and `job create|show|list|cancel` (scheduled twin updates
//! and direct methods, `/jobs/v2`, plus the import and export jobs), shaped like
//! `az iot hub device-identity export|import` and `az iot hub job`.
//!
//! Blob container URLs carry SAS tokens, which are secrets: they are never printed. Container
//! URIs in job documents are shown without their query string, and any SAS signature
//! (`sig=…`) in text IoT Hub returns (a failure reason) is replaced.

use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};
use iothub_registry::{
    CloudToDeviceMethod, JobProperties, JobRequest, JobResponse, JobStatus, JobType,
    RegistryManager, TwinPatch,
};
use serde_json::{Value, json};

use crate::args::{
    ExportCommand, ImportCommand, JobCommand, JobCreateArgs, JobKind, OutputFormat, SasUrl,
    ScheduledJobKind, WaitArgs,
};
use crate::commands::json_arg;
use crate::error::{CliError, Result};
use crate::output::{Output, thousands};

/// The blob an export writes and an import reads unless told otherwise (IoT Hub's default).
const DEFAULT_BLOB: &str = "devices.txt";
/// The blob an import job writes the lines it could not apply to, in its output container.
const IMPORT_ERRORS_BLOB: &str = "importErrors.log";
/// What replaces secrets in what is printed.
const REDACTED: &str = "<redacted>";
/// Columns of job tables (see [`table_row`]).
const JOB_COLUMNS: [&str; 9] = [
    "jobId",
    "type",
    "status",
    "startTime",
    "endTime",
    "progress",
    "devices",
    "succeeded",
    "failed",
];

/// A job of `job list` as a table row: the device counts of a scheduled job under short
/// names.
fn table_row(job: &Value) -> Value {
    let mut row = json!({});
    for name in &JOB_COLUMNS[..6] {
        if let Some(v) = job.get(*name) {
            row[*name] = v.clone();
        }
    }
    if let Some(stats) = job.get("deviceJobStatistics") {
        for (column, field) in [
            ("devices", "deviceCount"),
            ("succeeded", "succeededCount"),
            ("failed", "failedCount"),
        ] {
            row[column] = stats.get(field).cloned().unwrap_or(Value::Null);
        }
    }
    row
}

// ---- secrets --------------------------------------------------------------------------------

/// A container URL without its query string (the SAS token) and fragment: what may be shown.
pub fn container_location(url: &str) -> String {
    let url = url.trim();
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// `text` with the value of every SAS signature parameter (`sig=…` after `?`, `&` or `;`,
/// or at the start) replaced by `<redacted>`.
pub fn scrub_sas(text: &str) -> String {
    const PARAM: &str = "sig=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in lower.match_indices(PARAM) {
        if at < copied || !(at == 0 || matches!(text.as_bytes()[at - 1], b'?' | b'&' | b';')) {
            continue;
        }
        let value = at + PARAM.len();
        // A signature is base64, possibly URL-encoded.
        let end = text[value..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "%+/=_-".contains(c)))
            .map_or(text.len(), |n| value + n);
        out.push_str(&text[copied..value]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces, at any depth, container URIs by their location and `?<redacted>`, and SAS
/// signatures in any other string.
fn redact_sas(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                match v {
                    Value::String(uri) if name.ends_with("BlobContainerUri") => {
                        let location = container_location(uri);
                        *v = Value::String(if location.len() < uri.trim().len() {
                            format!("{location}?{REDACTED}")
                        } else {
                            location
                        });
                    }
                    other => redact_sas(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_sas),
        Value::String(text) => {
            let scrubbed = scrub_sas(text);
            if scrubbed != *text {
                *text = scrubbed;
            }
        }
        _ => {}
    }
}

/// The URL of `flag`, refused (without being echoed) unless it is an http(s) URL.
fn container_url<'a>(url: &'a SasUrl, flag: &str) -> Result<&'a str> {
    let url = url.0.trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        Ok(url)
    } else {
        Err(CliError::new(format!(
            "{flag} takes the URL of a blob container with a SAS token \
             (https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=…&sig=…)"
        ))
        .with_status(2))
    }
}

// ---- job documents as printed ---------------------------------------------------------------

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

fn drop_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
    }
}

/// An import or export job as printed: the shape of a scheduled job (`startTime`,
/// `endTime`), as `az iot hub job` shows them, with IoT Hub's import/export fields; container
/// URIs without their SAS token.
fn import_export_json(job: &JobProperties) -> Value {
    let mut value = json!({
        "jobId": job.job_id,
        "type": job.job_type,
        "status": job.status,
        "progress": job.progress,
        "startTime": time(job.start_time_utc),
        "endTime": time(job.end_time_utc),
        "failureReason": job.failure_reason,
        "inputBlobContainerUri": job.input_blob_container_uri,
        "inputBlobName": job.input_blob_name,
        "outputBlobContainerUri": job.output_blob_container_uri,
        "outputBlobName": job.output_blob_name,
        "excludeKeysInExport": job.exclude_keys_in_export,
        "includeConfigurations": job.include_configurations,
        "configurationsBlobName": job.configurations_blob_name,
        "storageAuthenticationType": job.storage_authentication_type,
    });
    drop_nulls(&mut value);
    redact_sas(&mut value);
    value
}

/// A scheduled job as printed.
fn scheduled_json(job: &JobResponse) -> Result<Value> {
    let mut value = serde_json::to_value(job)
        .map_err(|e| CliError::new(format!("cannot encode the job: {e}")))?;
    redact_sas(&mut value);
    Ok(value)
}

/// Seconds between `start` and `end`, when IoT Hub gave both.
fn job_seconds(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<f64> {
    let (start, end) = (start?, end?);
    Some(((end - start).num_milliseconds().max(0) as f64) / 1000.0)
}

// ---- waiting ----------------------------------------------------------------------------

/// The look of a job's bar, in the style of the bulk import's: `{pos}%` for import and
/// export jobs, `{pos}/{len} devices` for scheduled jobs, and only a spinner and the message
/// while a scheduled job has selected no devices yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BarStyle {
    Percent,
    Devices,
    Waiting,
}

fn set_bar_style(bar: &ProgressBar, look: BarStyle) {
    let template = match look {
        BarStyle::Percent => "{spinner} [{elapsed_precise}] {wide_bar} {pos}% {msg}",
        BarStyle::Devices => {
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} devices {msg}"
        }
        BarStyle::Waiting => "{spinner} [{elapsed_precise}] {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
}

/// A bar for a job on stderr (hidden when `show` is false).
fn job_bar(show: bool, look: BarStyle) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(if look == BarStyle::Percent { 100 } else { 0 });
    set_bar_style(&bar, look);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What a wait that did not end with the job gives the user: Ctrl-C (status 130), or the
/// poll duration passing (status 1). The job keeps running on the hub either way.
fn stopped_waiting(job_id: &str, why: &str) -> CliError {
    CliError::new(format!(
        "{why}; job {job_id} keeps running on the hub (follow it with `iothub job show --job-id {job_id}`, stop it with `iothub job cancel --job-id {job_id}`)"
    ))
}

fn wait_error(job_id: &str, e: iothub_registry::Error) -> CliError {
    match e {
        iothub_registry::Error::JobWaitTimeout { status, waited, .. } => stopped_waiting(
            job_id,
            &format!(
                "stopped waiting after {:.0} s with the job {status}",
                waited.as_secs_f64()
            ),
        ),
        other => CliError::from(other),
    }
}

/// Runs `wait` until it ends, or until Ctrl-C.
async fn until_ctrl_c<T>(
    job_id: &str,
    wait: impl std::future::Future<Output = iothub_registry::Result<T>>,
) -> Result<T> {
    tokio::select! {
        outcome = wait => outcome.map_err(|e| wait_error(job_id, e)),
        _ = tokio::signal::ctrl_c() => Err(stopped_waiting(job_id, "interrupted").with_status(130)),
    }
}

/// Waits for an import or export job, drawing its percentage.
async fn wait_import_export(
    rm: &RegistryManager,
    job_id: &str,
    wait: WaitArgs,
    show: bool,
) -> Result<JobProperties> {
    let bar = job_bar(show, BarStyle::Percent);
    let drawn = bar.clone();
    let mut request = rm
        .wait_for_import_export_job(job_id)
        .poll_interval(wait.poll_interval)
        .on_progress(move |job: &JobProperties| {
            drawn.set_position(u64::try_from(job.progress.clamp(0, 100)).unwrap_or(0));
            drawn.set_message(format!(
                "{} job {}: {}",
                job.job_type, job.job_id, job.status
            ));
        });
    if let Some(limit) = wait.poll_duration {
        request = request.timeout(limit);
    }
    let outcome = until_ctrl_c(job_id, request.send()).await;
    bar.finish_and_clear();
    outcome
}

/// Waits for a scheduled job, drawing its devices done out of those selected.
async fn wait_scheduled(
    rm: &RegistryManager,
    job_id: &str,
    wait: WaitArgs,
    show: bool,
) -> Result<JobResponse> {
    let bar = job_bar(show, BarStyle::Waiting);
    let drawn = bar.clone();
    let mut counting = false;
    let mut request = rm
        .wait_for_scheduled_job(job_id)
        .poll_interval(wait.poll_interval)
        .on_progress(move |job: &JobResponse| {
            let stats = job.device_job_statistics.unwrap_or_default();
            let count = |n: i32| u64::try_from(n).unwrap_or(0);
            if stats.device_count > 0 && !counting {
                counting = true;
                set_bar_style(&drawn, BarStyle::Devices);
            }
            drawn.set_length(count(stats.device_count));
            drawn.set_position(count(stats.succeeded_count) + count(stats.failed_count));
            let mut message = format!("job {}: {}", job.job_id, job.status);
            if job.status == JobStatus::Scheduled
                && let Some(start) = job.start_time
            {
                message.push_str(&format!(
                    ", starts at {}",
                    start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
            if stats.failed_count > 0 {
                message.push_str(&format!(
                    ", {} failed",
                    thousands(count(stats.failed_count))
                ));
            }
            drawn.set_message(message);
        });
    if let Some(limit) = wait.poll_duration {
        request = request.timeout(limit);
    }
    let outcome = until_ctrl_c(job_id, request.send()).await;
    bar.finish_and_clear();
    outcome
}

fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

// ---- device-identity export/import --blob ---------------------------------------------

/// Where an import or export job's blobs are, for the outcome.
enum Blobs {
    Export {
        container: String,
        blob: String,
        exclude_keys: bool,
    },
    Import {
        input: String,
        blob: String,
        output: String,
    },
}

/// Prints how an import or export job ended; an error when it did not complete.
fn report_import_export(
    out: Output,
    job: &JobProperties,
    blobs: &Blobs,
    waited: Duration,
) -> Result<()> {
    let kind = match blobs {
        Blobs::Export { .. } => "export",
        Blobs::Import { .. } => "import",
    };
    let seconds = job_seconds(job.start_time_utc, job.end_time_utc).unwrap_or(waited.as_secs_f64());
    let mut value = import_export_json(job);
    value["seconds"] = json!(seconds);
    let id = &job.job_id;
    let mut text = match &job.status {
        JobStatus::Completed => format!("{kind} job {id} completed in {seconds:.1} s"),
        JobStatus::Failed => format!("{kind} job {id} failed after {seconds:.1} s"),
        JobStatus::Cancelled => format!("{kind} job {id} was cancelled after {seconds:.1} s"),
        other => format!("{kind} job {id} is {other}"),
    };
    match blobs {
        Blobs::Export {
            container,
            blob,
            exclude_keys,
        } => {
            let at = format!("{container}/{blob}");
            if job.status == JobStatus::Completed {
                let keys = if *exclude_keys { "without" } else { "with" };
                text.push_str(&format!(": identities, {keys} keys, in {at}"));
            }
            value["outputBlob"] = json!(at);
        }
        Blobs::Import {
            input,
            blob,
            output,
        } => {
            let log = format!("{output}/{IMPORT_ERRORS_BLOB}");
            if job.status != JobStatus::Failed || job.progress > 0 {
                text.push_str(&format!("; lines it could not apply are listed in {log}"));
            }
            value["inputBlob"] = json!(format!("{input}/{blob}"));
            value["importErrorsLog"] = json!(log);
        }
    }
    let reason = job
        .failure_reason
        .as_deref()
        .map(scrub_sas)
        .filter(|r| !r.trim().is_empty());
    if let Some(reason) = &reason {
        text.push_str(&format!(" ({reason})"));
    }
    // A final result: one line for people, pretty JSON like every other result.
    match out.format {
        OutputFormat::Table => out.event(&text, &value)?,
        OutputFormat::Json => out.one(&value)?,
    }
    match &job.status {
        JobStatus::Completed => Ok(()),
        JobStatus::Failed => Err(CliError::new(format!(
            "{kind} job {id} failed: {}",
            reason.as_deref().unwrap_or("IoT Hub gave no reason")
        ))),
        JobStatus::Cancelled => Err(CliError::new(format!("{kind} job {id} was cancelled"))),
        other => Err(CliError::new(format!(
            "{kind} job {id} ended as {other}, not completed"
        ))),
    }
}

/// Starts `job`, then (unless `no_wait`) waits for it with progress and reports how it ended.
async fn run_import_export(
    rm: &RegistryManager,
    out: Output,
    job: JobProperties,
    blobs: Blobs,
    wait: WaitArgs,
    no_wait: bool,
) -> Result<()> {
    let started = Instant::now();
    let created = rm.create_import_export_job(job).await?;
    if no_wait {
        return out.one(&import_export_json(&created));
    }
    // A long wait should ride out throttling and brief outages, as bulk imports do.
    let rm = rm.with_retry_policy(iothub_registry::RetryPolicy::default());
    let done = wait_import_export(&rm, &created.job_id, wait, stderr_is_terminal()).await?;
    report_import_export(out, &done, &blobs, started.elapsed())
}

/// `device-identity export --blob`: an IoT Hub export job.
pub async fn export_to_blob(rm: &RegistryManager, out: Output, args: ExportCommand) -> Result<()> {
    let Some(blob) = &args.blob else {
        return Err(CliError::new("--blob is needed for an export job").with_status(2));
    };
    let url = container_url(blob, "--blob")?;
    let mut job = JobProperties::export(url);
    if args.exclude_keys {
        job = job.exclude_keys_in_export(true);
    }
    if let Some(name) = &args.blob_name {
        job = job.output_blob_name(name);
    }
    let blobs = Blobs::Export {
        container: container_location(url),
        blob: args
            .blob_name
            .clone()
            .unwrap_or_else(|| DEFAULT_BLOB.to_owned()),
        exclude_keys: args.exclude_keys,
    };
    run_import_export(rm, out, job, blobs, args.wait, args.no_wait).await
}

/// `device-identity import --blob --output-blob`: an IoT Hub import job.
pub async fn import_from_blob(
    rm: &RegistryManager,
    out: Output,
    args: ImportCommand,
) -> Result<()> {
    let (Some(input), Some(output)) = (&args.blob, &args.output_blob) else {
        return Err(CliError::new("an import job needs --blob and --output-blob").with_status(2));
    };
    let input = container_url(input, "--blob")?;
    let output = container_url(output, "--output-blob")?;
    let mut job = JobProperties::import(input, output);
    if let Some(name) = &args.blob_name {
        job = job.input_blob_name(name);
    }
    let blobs = Blobs::Import {
        input: container_location(input),
        blob: args
            .blob_name
            .clone()
            .unwrap_or_else(|| DEFAULT_BLOB.to_owned()),
        output: container_location(output),
    };
    run_import_export(rm, out, job, blobs, args.wait, args.no_wait).await
}

// ---- job … ------------------------------------------------------------------------------

/// A job found by id: scheduled, or import/export.
enum Found {
    Scheduled(JobResponse),
    ImportExport(JobProperties),
}

/// The job `job_id`: IoT Hub answers a scheduled-job read of an id it does not know with a
/// job of status `unknown`, so that id is then read as an import or export job (as
/// `az iot hub job show` does).
async fn find_job(rm: &RegistryManager, job_id: &str) -> Result<Found> {
    let job = rm.get_scheduled_job(job_id).await?;
    if job.status != JobStatus::Unknown {
        return Ok(Found::Scheduled(job));
    }
    match rm.get_import_export_job(job_id).await {
        Ok(job) => Ok(Found::ImportExport(job)),
        Err(e) if e.is_not_found() => {
            let code = e
                .code()
                .map_or_else(|| "JobNotFound".to_owned(), |c| c.to_string());
            Err(CliError::new(format!(
                "{code}: no scheduled, import or export job has the id {job_id} (IoT Hub keeps finished jobs for 30 days)"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

fn print_found(out: Output, found: &Found) -> Result<()> {
    match found {
        Found::Scheduled(job) => out.one(&scheduled_json(job)?),
        Found::ImportExport(job) => out.one(&import_export_json(job)),
    }
}

/// The request `job create` describes.
fn job_request(args: &JobCreateArgs) -> Result<JobRequest> {
    let request = match args.job_type {
        ScheduledJobKind::ScheduleUpdateTwin => {
            let text = args.twin_patch.as_deref().ok_or_else(|| {
                CliError::new("scheduleUpdateTwin needs --twin-patch").with_status(2)
            })?;
            let mut document = json_arg(text, "--twin-patch")?;
            // IoT Hub's twin update jobs always write with etag "*": one given is dropped.
            if let Some(map) = document.as_object_mut() {
                map.remove("etag");
            }
            let patch = TwinPatch::from_json(document)
                .map_err(|e| CliError::from(e).context("--twin-patch"))?;
            JobRequest::update_twin(&args.query_condition, patch)
        }
        ScheduledJobKind::ScheduleDeviceMethod => {
            let name = args.method_name.as_deref().ok_or_else(|| {
                CliError::new("scheduleDeviceMethod needs --method-name").with_status(2)
            })?;
            let mut method = CloudToDeviceMethod::new(name)
                .response_timeout_in_seconds(args.method_response_timeout)
                .connect_timeout_in_seconds(args.method_connect_timeout);
            if let Some(payload) = &args.method_payload {
                method = method.payload(json_arg(payload, "--method-payload")?);
            }
            JobRequest::device_method(&args.query_condition, method)
        }
    };
    let mut request = request.max_execution_time(Duration::from_secs(args.ttl));
    if let Some(start) = args.start_time {
        request = request.start_time(start);
    }
    Ok(request)
}

/// `job create`.
async fn create(rm: &RegistryManager, out: Output, args: JobCreateArgs) -> Result<()> {
    let request = job_request(&args)?;
    let created = rm.create_scheduled_job(&args.job_id, request).await?;
    if !args.wait {
        return out.one(&scheduled_json(&created)?);
    }
    let rm = rm.with_retry_policy(iothub_registry::RetryPolicy::default());
    let done = wait_scheduled(&rm, &args.job_id, args.wait_args, stderr_is_terminal()).await?;
    out.one(&scheduled_json(&done)?)?;
    let stats = done.device_job_statistics.unwrap_or_default();
    match &done.status {
        JobStatus::Completed => {
            if stats.failed_count > 0 && out.format == OutputFormat::Table {
                eprintln!(
                    "{} of {} device(s) failed; see why with: iothub query -q \"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{}'\"",
                    stats.failed_count, stats.device_count, done.job_id
                );
            }
            Ok(())
        }
        JobStatus::Failed => Err(CliError::new(format!(
            "job {} failed: {}",
            done.job_id,
            done.failure_reason
                .as_deref()
                .or(done.status_message.as_deref())
                .map(scrub_sas)
                .unwrap_or_else(|| "IoT Hub gave no reason".to_owned())
        ))),
        JobStatus::Cancelled => Err(CliError::new(format!(
            "job {} was cancelled ({} of {} device(s) done)",
            done.job_id,
            stats.succeeded_count + stats.failed_count,
            stats.device_count
        ))),
        other => Err(CliError::new(format!(
            "job {} ended as {other}, not completed",
            done.job_id
        ))),
    }
}

/// `job list`: scheduled jobs through the paged query, then import and export jobs (one
/// unpaged list, filtered here, as `az iot hub job list` does).
async fn list(
    rm: &RegistryManager,
    out: Output,
    job_type: Option<JobKind>,
    job_status: Option<String>,
    import_export: bool,
    top: Option<usize>,
) -> Result<()> {
    let status = job_status.as_deref().map(JobStatus::from);
    let scheduled_type = match job_type {
        Some(JobKind::ScheduleUpdateTwin) => Some(Some(JobType::ScheduleUpdateTwin)),
        Some(JobKind::ScheduleDeviceMethod) => Some(Some(JobType::ScheduleDeviceMethod)),
        Some(JobKind::Export | JobKind::Import) => None,
        None if import_export => None,
        None => Some(None),
    };
    let import_export_type = match job_type {
        Some(JobKind::Export) => Some(Some(JobType::Export)),
        Some(JobKind::Import) => Some(Some(JobType::Import)),
        Some(JobKind::ScheduleUpdateTwin | JobKind::ScheduleDeviceMethod) => None,
        None => Some(None),
    };
    // Each family has statuses of its own; a filter on one of them skips the other family.
    let scheduled_status = !matches!(status, Some(JobStatus::Enqueued));
    let import_export_status = !matches!(status, Some(JobStatus::Queued | JobStatus::Scheduled));
    let limit = top.unwrap_or(usize::MAX);
    let mut rows: Vec<Value> = Vec::new();
    if let Some(job_type) = scheduled_type.filter(|_| scheduled_status && limit > 0) {
        let mut request = rm.query_scheduled_jobs();
        if let Some(t) = job_type {
            request = request.job_type(t);
        }
        if let Some(s) = &status {
            request = request.job_status(s.clone());
        }
        let jobs: Vec<JobResponse> = request.into_stream().take(limit).try_collect().await?;
        for job in &jobs {
            rows.push(scheduled_json(job)?);
        }
    }
    if let Some(job_type) = import_export_type.filter(|_| import_export_status)
        && rows.len() < limit
    {
        let jobs = rm.get_import_export_jobs().await?;
        rows.extend(
            jobs.iter()
                .filter(|j| job_type.as_ref().is_none_or(|t| j.job_type == *t))
                .filter(|j| status.as_ref().is_none_or(|s| j.status == *s))
                .take(limit - rows.len())
                .map(import_export_json),
        );
    }
    match out.format {
        OutputFormat::Table => {
            let rows: Vec<Value> = rows.iter().map(table_row).collect();
            out.list(&rows, &JOB_COLUMNS)
        }
        OutputFormat::Json => out.list(&rows, &[]),
    }
}

/// `job cancel`: a scheduled job, or an import or export job, printed as it then is.
async fn cancel(rm: &RegistryManager, out: Output, job_id: &str) -> Result<()> {
    match find_job(rm, job_id).await? {
        Found::Scheduled(_) => {
            let job = rm.cancel_scheduled_job(job_id).await?;
            out.one(&scheduled_json(&job)?)
        }
        Found::ImportExport(_) => {
            rm.cancel_import_export_job(job_id).await?;
            let job = rm.get_import_export_job(job_id).await?;
            out.one(&import_export_json(&job))
        }
    }
}

/// `job …`.
pub async fn job(rm: &RegistryManager, out: Output, cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::Create(args) => create(rm, out, args).await,
        JobCommand::Show { job_id } => print_found(out, &find_job(rm, &job_id).await?),
        JobCommand::List {
            job_type,
            job_status,
            import_export,
            top,
        } => list(rm, out, job_type, job_status, import_export, top).await,
        JobCommand::Cancel { job_id } => cancel(rm, out, &job_id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://acct.blob.core.windows.net/exports?sv=2022-11-02&sp=racwdl&sig=c2VjcmV0%2Bc2lnbg%3D%3D&se=2030";

    #[test]
    fn locations_leave_the_token_out() {
        assert_eq!(
            container_location(URL),
            "https://acct.blob.core.windows.net/exports"
        );
        assert_eq!(container_location(" http://h/c "), "http://h/c");
        assert_eq!(container_location("http://h/c#x"), "http://h/c");
    }

    #[test]
    fn signatures_are_scrubbed() {
        let text = format!("cannot read {URL}: 403; design=1");
        let scrubbed = scrub_sas(&text);
        assert!(!scrubbed.contains("c2VjcmV0"), "{scrubbed}");
        assert!(scrubbed.contains("sig=<redacted>&se=2030"), "{scrubbed}");
        assert!(scrubbed.ends_with("design=1"), "{scrubbed}");
        assert_eq!(scrub_sas("SIG=abc"), "SIG=<redacted>");
        assert_eq!(scrub_sas("no secret"), "no secret");
    }

    #[test]
    fn job_documents_never_hold_the_token() {
        let mut job = JobProperties::import(URL, URL).input_blob_name("fleet.txt");
        job.job_id = "j".into();
        job.failure_reason = Some(format!("cannot open {URL}"));
        let shown = import_export_json(&job).to_string();
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(
            shown.contains("\"https://acct.blob.core.windows.net/exports?<redacted>\""),
            "{shown}"
        );
        assert!(shown.contains("\"inputBlobName\":\"fleet.txt\""), "{shown}");
        assert!(!shown.contains("null"), "{shown}");
        let debug = format!("{:?}", SasUrl(URL.to_owned()));
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }

    #[test]
    fn container_urls_are_checked_without_being_echoed() {
        let bad = SasUrl("devices.txt?sig=c2VjcmV0".to_owned());
        let e = container_url(&bad, "--blob").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| !e.contains("c2VjcmV0")),
            "{e:?}"
        );
        let good = SasUrl(format!(" {URL} "));
        assert!(matches!(container_url(&good, "--blob"), Ok(u) if u == URL));
        assert!(container_url(&SasUrl("HTTPS://a/b?sig=x".into()), "--blob").is_ok());
    }
}
