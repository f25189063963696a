//! `device-identity import` and `export`: any number of devices through bulk registry
//! operations (`POST /devices`, at most 100 per request), with bounded concurrency, a live
//! progress bar, a resumable file of the rows that were not imported, and a clean stop on
//! Ctrl-C.
//!
//! The row format is IoT Hub's export/import device object (the lines of an import or export
//! job's `devices.txt` blob): `id`, `importMode`, `status`, `statusReason`,
//! `authentication`, `tags`, `properties.desired`, `capabilities`. CSV rows name the common
//! fields as columns.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use iothub_registry::{
    AuthenticationMechanism, DeviceCapabilities, DeviceStatus, ExportImportDevice, ImportMode,
    JsonObject, RegistryManager, TwinProperties,
};
use serde_json::{Value, json};

use crate::args::{ExportArgs, ImportArgs};
use crate::error::{CliError, Result};
use crate::output::{Output, thousands};

/// Extra field of a JSONL row in the failed-rows file: why it was not imported. Ignored on
/// import, so the file can be imported again as it is.
pub const IMPORT_ERROR_FIELD: &str = "importError";
/// Extra columns of a CSV row in the failed-rows file.
const CSV_ERROR_COLUMNS: [&str; 2] = ["importErrorCode", "importErrorMessage"];
/// Error code of rows that were never sent because the import was interrupted.
const NOT_ATTEMPTED: &str = "NotAttempted";
/// Error code of rows that could not be read.
const MALFORMED: &str = "MalformedRow";
/// At most this many row errors are printed one by one; the rest are counted.
const PRINTED_ERRORS: usize = 20;

/// CSV columns read on import.
const CSV_COLUMNS: [&str; 12] = [
    "deviceId",
    "status",
    "statusReason",
    "authType",
    "primaryKey",
    "secondaryKey",
    "primaryThumbprint",
    "secondaryThumbprint",
    "iotEdge",
    "tags",
    "desired",
    "importMode",
];

/// One input row: where it was, what it was, and the device it describes (or why it
/// describes none).
struct Row {
    line: u64,
    raw: Raw,
    device: std::result::Result<ExportImportDevice, String>,
}

/// A row as it was read, to write it back unchanged into the failed-rows file.
enum Raw {
    /// A JSONL line that parsed as JSON.
    Json(Value),
    /// A JSONL line that did not.
    Text(String),
    /// A CSV record.
    Csv(csv::StringRecord),
}

/// Reads rows from JSONL or CSV, one at a time.
enum RowReader {
    Jsonl {
        lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
        line: u64,
    },
    Csv {
        records: csv::StringRecordsIntoIter<Box<dyn Read + Send>>,
        headers: csv::StringRecord,
        columns: HashMap<String, usize>,
    },
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

fn open_input(path: &Path) -> Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = File::open(path)
        .map_err(|e| CliError::new(format!("cannot open {}: {e}", path.display())))?;
    Ok(Box::new(file))
}

impl RowReader {
    fn open(path: &Path) -> Result<RowReader> {
        let input = open_input(path)?;
        if !is_csv(path) {
            return Ok(RowReader::Jsonl {
                lines: BufReader::with_capacity(1 << 20, input).lines(),
                line: 0,
            });
        }
        // Every row has the header's number of fields: a stray quote or comma is a malformed
        // row, not a device with a strange id.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(input);
        let headers = reader
            .headers()
            .map_err(|e| CliError::new(format!("{}: no CSV header row: {e}", path.display())))?
            .clone();
        let mut columns = HashMap::new();
        for (i, name) in headers.iter().enumerate() {
            let name = if name == "id" { "deviceId" } else { name };
            if CSV_COLUMNS.contains(&name) {
                if columns.insert(name.to_owned(), i).is_some() {
                    return Err(CliError::new(format!(
                        "{}: the CSV header names {name} twice",
                        path.display()
                    )));
                }
            } else if !CSV_ERROR_COLUMNS.contains(&name) {
                return Err(CliError::new(format!(
                    "{}: unknown CSV column '{name}' (known: {})",
                    path.display(),
                    CSV_COLUMNS.join(", ")
                )));
            }
        }
        if !columns.contains_key("deviceId") {
            return Err(CliError::new(format!(
                "{}: the CSV header has no deviceId column",
                path.display()
            )));
        }
        Ok(RowReader::Csv {
            records: reader.into_records(),
            headers,
            columns,
        })
    }

    /// The header of the failed-rows file, for CSV.
    fn csv_headers(&self) -> Option<csv::StringRecord> {
        match self {
            RowReader::Csv { headers, .. } => {
                let mut h: csv::StringRecord = headers
                    .iter()
                    .filter(|c| !CSV_ERROR_COLUMNS.contains(c))
                    .collect();
                for c in CSV_ERROR_COLUMNS {
                    h.push_field(c);
                }
                Some(h)
            }
            RowReader::Jsonl { .. } => None,
        }
    }

    fn next_row(&mut self) -> Option<Result<Row>> {
        match self {
            RowReader::Jsonl { lines, line } => loop {
                let text = match lines.next()? {
                    Ok(t) => t,
                    Err(e) => return Some(Err(CliError::new(format!("cannot read input: {e}")))),
                };
                *line += 1;
                if text.trim().is_empty() {
                    continue;
                }
                return Some(Ok(match serde_json::from_str::<Value>(&text) {
                    Ok(value) => Row {
                        line: *line,
                        device: json_device(&value),
                        raw: Raw::Json(value),
                    },
                    Err(e) => Row {
                        line: *line,
                        device: Err(format!("not JSON: {e}")),
                        raw: Raw::Text(text),
                    },
                }));
            },
            RowReader::Csv {
                records, columns, ..
            } => {
                let record = records.next()?;
                Some(Ok(match record {
                    Ok(record) => {
                        // The header is line 1.
                        let line = record.position().map_or(0, |p| p.line());
                        Row {
                            line,
                            device: csv_device(&record, columns),
                            raw: Raw::Csv(record),
                        }
                    }
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        Row {
                            line,
                            device: Err(format!("not CSV: {e}")),
                            raw: Raw::Csv(csv::StringRecord::new()),
                        }
                    }
                }))
            }
        }
    }
}

fn json_device(value: &Value) -> std::result::Result<ExportImportDevice, String> {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove(IMPORT_ERROR_FIELD);
    } else {
        return Err("not a JSON object".to_owned());
    }
    let device: ExportImportDevice = serde_json::from_value(value).map_err(|e| e.to_string())?;
    check_id(&device.id)?;
    Ok(device)
}

fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.trim().is_empty() {
        Err("the device id is empty".to_owned())
    } else {
        Ok(())
    }
}

fn csv_device(
    record: &csv::StringRecord,
    columns: &HashMap<String, usize>,
) -> std::result::Result<ExportImportDevice, String> {
    let get = |name: &str| {
        columns
            .get(name)
            .and_then(|&i| record.get(i))
            .filter(|v| !v.is_empty())
    };
    let object = |name: &str| -> std::result::Result<JsonObject, String> {
        match get(name) {
            None => Ok(JsonObject::default()),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Ok(map.into_iter().collect()),
                _ => Err(format!("column {name} is not a JSON object")),
            },
        }
    };
    let id = get("deviceId").unwrap_or_default().to_owned();
    check_id(&id)?;
    let status = get("status")
        .map(str::parse::<DeviceStatus>)
        .transpose()
        .map_err(|e| format!("column status: {e}"))?;
    let import_mode = get("importMode")
        .map(str::parse::<ImportMode>)
        .transpose()
        .map_err(|e| format!("column importMode: {e}"))?;
    let authentication = match get("authType").unwrap_or("sas") {
        "sas" | "shared_private_key" => AuthenticationMechanism::sas(
            get("primaryKey").unwrap_or_default(),
            get("secondaryKey").unwrap_or_default(),
        ),
        "selfSigned" | "self_signed" => {
            let primary = get("primaryThumbprint")
                .ok_or("selfSigned needs primaryThumbprint")?
                .to_owned();
            let secondary = get("secondaryThumbprint").unwrap_or(&primary).to_owned();
            AuthenticationMechanism::x509(primary, secondary)
        }
        "certificateAuthority" | "x509_ca" => AuthenticationMechanism::certificate_authority(),
        other => {
            return Err(format!(
                "column authType: '{other}' is not sas, selfSigned or certificateAuthority"
            ));
        }
    };
    let iot_edge = match get("iotEdge") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(format!("column iotEdge: '{other}' is not true or false")),
    };
    let desired = object("desired")?;
    Ok(ExportImportDevice {
        id,
        import_mode,
        status,
        status_reason: get("statusReason").map(str::to_owned),
        authentication: Some(authentication),
        tags: object("tags")?,
        properties: (!desired.is_empty()).then(|| TwinProperties {
            desired,
            ..Default::default()
        }),
        capabilities: iot_edge.map(|e| DeviceCapabilities { iot_edge: Some(e) }),
        ..Default::default()
    })
}

/// The failed-rows file, created on the first failure.
struct FailedFile {
    path: PathBuf,
    csv_headers: Option<csv::StringRecord>,
    writer: Option<Writer>,
    rows: u64,
}

enum Writer {
    Jsonl(BufWriter<File>),
    Csv(Box<csv::Writer<File>>),
}

impl FailedFile {
    fn write(&mut self, row: &Row, code: &str, message: &str) -> Result<()> {
        if self.writer.is_none() {
            let file = create_private(&self.path).map_err(|e| {
                CliError::new(format!("cannot create {}: {e}", self.path.display()))
            })?;
            self.writer = Some(match &self.csv_headers {
                Some(headers) => {
                    let mut w = csv::Writer::from_writer(file);
                    w.write_record(headers).map_err(csv_error)?;
                    Writer::Csv(Box::new(w))
                }
                None => Writer::Jsonl(BufWriter::new(file)),
            });
        }
        self.rows += 1;
        match (self.writer.as_mut(), &row.raw) {
            (Some(Writer::Jsonl(w)), Raw::Json(value)) => {
                let mut value = value.clone();
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        IMPORT_ERROR_FIELD.to_owned(),
                        json!({"code": code, "message": message, "line": row.line}),
                    );
                }
                writeln!(w, "{value}")?;
            }
            (Some(Writer::Jsonl(w)), Raw::Text(text)) => writeln!(w, "{text}")?,
            (Some(Writer::Csv(w)), Raw::Csv(record)) => {
                let width = self.csv_headers.as_ref().map_or(0, |h| h.len()) - 2;
                let mut out: Vec<&str> = record.iter().take(width).collect();
                out.resize(width, "");
                out.push(code);
                out.push(message);
                w.write_record(out).map_err(csv_error)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self.writer.as_mut() {
            Some(Writer::Jsonl(w)) => w.flush()?,
            Some(Writer::Csv(w)) => w.flush()?,
            None => {}
        }
        Ok(())
    }
}

fn csv_error(e: csv::Error) -> CliError {
    CliError::new(format!("cannot write the failed-rows file: {e}"))
}

/// Whether `a` and `b` name the same file (through `.`, `..`, symlinks or hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(ma), Ok(mb)) => {
            use std::os::unix::fs::MetadataExt as _;
            ma.dev() == mb.dev() && ma.ino() == mb.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => match (a.canonicalize(), b.canonicalize()) {
            (Ok(ca), Ok(cb)) => ca == cb,
            _ => false,
        },
        _ => false,
    }
}

/// Creates (or truncates) a file readable by its owner only, since rows may hold keys.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The default failed-rows file next to `input`.
fn default_failed_file(input: &Path) -> PathBuf {
    if input == Path::new("-") {
        return PathBuf::from("stdin.failed.jsonl");
    }
    let ext = if is_csv(input) { "csv" } else { "jsonl" };
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    input.with_file_name(format!("{stem}.failed.{ext}"))
}

/// Lines of a JSONL file, or records of a CSV file (for the progress bar's total).
fn count_rows(path: &Path) -> Option<u64> {
    if path == Path::new("-") {
        return None;
    }
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).ok()?);
    let mut count = 0u64;
    let mut last = b'\n';
    loop {
        let buf = reader.fill_buf().ok()?;
        if buf.is_empty() {
            break;
        }
        count += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[buf.len() - 1];
        let n = buf.len();
        reader.consume(n);
    }
    if last != b'\n' {
        count += 1;
    }
    Some(if is_csv(path) {
        count.saturating_sub(1)
    } else {
        count
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = if total.is_some() {
        format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {what} ({{rate}}, ETA {{eta}}) {{msg}}"
        )
    } else {
        format!("{{spinner}} [{{elapsed_precise}}] {{human_pos}} {what} ({{rate}}) {{msg}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        let style = style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", thousands(state.per_sec().round() as u64));
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What one import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Rows read.
    pub rows: u64,
    /// Devices the hub applied.
    pub imported: u64,
    /// Rows the hub refused or that could not be read.
    pub failed: u64,
    /// Rows never sent, because the import was interrupted.
    pub not_attempted: u64,
    /// Whether Ctrl-C interrupted it.
    pub interrupted: bool,
    /// Why the hub could not be reached, when that stopped it.
    pub unreachable: Option<String>,
}

/// Imports every row of `args.file`, `concurrency` bulk requests at a time, showing
/// progress. `stop` interrupts it between requests: requests in flight finish, the rest of
/// the file goes to the failed-rows file as not attempted.
///
/// # Errors
/// When the input or the failed-rows file cannot be opened or written. Rows the hub refuses
/// are not errors here; they are counted in the summary.
pub async fn import_devices(
    rm: &RegistryManager,
    args: &ImportArgs,
    stop: Arc<AtomicBool>,
    show_progress: bool,
) -> Result<(ImportSummary, PathBuf, Duration)> {
    let failed_path = args
        .failed_file
        .clone()
        .unwrap_or_else(|| default_failed_file(&args.file));
    if same_file(&failed_path, &args.file) {
        return Err(CliError::new(format!(
            "--failed-file {} is the file being imported; name another file",
            failed_path.display()
        )));
    }
    let mut reader = RowReader::open(&args.file)?;
    let mut failed = FailedFile {
        path: failed_path.clone(),
        csv_headers: reader.csv_headers(),
        writer: None,
        rows: 0,
    };
    let bar = if show_progress {
        progress_bar(count_rows(&args.file), "devices")
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    let mut printed = 0usize;
    let mut report = |bar: &ProgressBar, line: u64, code: &str, message: &str| {
        printed += 1;
        if printed <= PRINTED_ERRORS {
            // IoT Hub's names get their numbers: `ArgumentInvalid (400004)`.
            let code = match iothub_registry::ErrorCode::from_name(code) {
                known if known.number().is_some() => known.to_string(),
                _ => code.to_owned(),
            };
            bar.suspend(|| eprintln!("line {line}: {code}: {message}"));
        } else if printed == PRINTED_ERRORS + 1 {
            bar.suspend(|| {
                eprintln!("(further row errors are only written to the failed-rows file)")
            });
        }
    };

    let batch_size = usize::from(args.batch_size);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut input_done = false;
    let mut read_error = None;
    let mut carried: Option<Row> = None;
    // Set when a request could not reach the hub (after its retries): nothing more is sent.
    let mut unreachable: Option<String> = None;
    loop {
        // Fill the pipeline with batches while reading.
        while (!input_done || carried.is_some()) && in_flight.len() < usize::from(args.concurrency)
        {
            if stop.load(Ordering::Relaxed) || unreachable.is_some() {
                input_done = true;
                break;
            }
            // A batch that starts with a repeated id waits until every earlier request is
            // answered, so the rows of that id apply in file order.
            if carried.is_some() && !in_flight.is_empty() {
                break;
            }
            let mut batch: Vec<Row> = Vec::with_capacity(batch_size);
            // An id twice in one request fails the whole request (DeviceDefinedMultipleTimes):
            // a row whose id the batch already holds starts the next batch instead.
            let mut ids: std::collections::HashSet<String> = std::collections::HashSet::new();
            if let Some(row) = carried.take() {
                if let Ok(d) = &row.device {
                    ids.insert(d.id.clone());
                }
                batch.push(row);
            }
            while batch.len() < batch_size {
                match reader.next_row() {
                    None => {
                        input_done = true;
                        break;
                    }
                    Some(Err(e)) => {
                        read_error = Some(e);
                        input_done = true;
                        break;
                    }
                    Some(Ok(row)) => {
                        summary.rows += 1;
                        match &row.device {
                            Ok(d) if !ids.insert(d.id.clone()) => {
                                carried = Some(row);
                                break;
                            }
                            Ok(_) => batch.push(row),
                            Err(message) => {
                                summary.failed += 1;
                                report(&bar, row.line, MALFORMED, message);
                                failed.write(&row, MALFORMED, message)?;
                                bar.inc(1);
                            }
                        }
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            let devices: Vec<ExportImportDevice> = batch
                .iter()
                .filter_map(|r| r.device.as_ref().ok())
                .map(|d| {
                    let mut d = d.clone();
                    d.import_mode = d.import_mode.or(Some(args.import_mode));
                    d
                })
                .collect();
            in_flight.push(async move {
                let outcome = rm.bulk_create_or_update_devices(&devices).await;
                (batch, outcome)
            });
        }
        let Some((batch, outcome)) = in_flight.next().await else {
            break;
        };
        let n = batch.len() as u64;
        match outcome {
            Ok(result) => {
                let mut errors: HashMap<&str, (&str, &str)> = HashMap::new();
                for e in &result.errors {
                    errors.insert(
                        e.device_id.as_str(),
                        (
                            e.error_code.as_str(),
                            e.error_status.as_deref().unwrap_or(""),
                        ),
                    );
                }
                for row in &batch {
                    let id = row.device.as_ref().map(|d| d.id.as_str()).unwrap_or("");
                    if let Some((code, message)) = errors.get(id) {
                        summary.failed += 1;
                        report(&bar, row.line, code, message);
                        failed.write(row, code, message)?;
                    } else {
                        summary.imported += 1;
                    }
                }
            }
            Err(error) => {
                if (error.is_transport() || error.is_timeout()) && unreachable.is_none() {
                    unreachable = Some(crate::error::chain(&error));
                }
                let (code, message) = match error.service_error() {
                    Some(s) => (s.code.name().to_owned(), s.message.clone()),
                    None => ("RequestFailed".to_owned(), crate::error::chain(&error)),
                };
                for row in &batch {
                    summary.failed += 1;
                    report(&bar, row.line, &code, &message);
                    failed.write(row, &code, &message)?;
                }
            }
        }
        bar.inc(n);
        bar.set_message(if summary.failed > 0 {
            format!("{} failed", summary.failed)
        } else {
            String::new()
        });
    }
    let interrupted = stop.load(Ordering::Relaxed);
    if interrupted || unreachable.is_some() {
        summary.interrupted = interrupted;
        summary.unreachable = unreachable.clone();
        let why = if interrupted {
            "not sent: the import was interrupted"
        } else {
            "not sent: the hub could not be reached"
        };
        // Everything not sent goes to the failed-rows file, so a rerun on it resumes.
        if let Some(row) = carried.take() {
            summary.not_attempted += 1;
            failed.write(&row, NOT_ATTEMPTED, why)?;
        }
        while let Some(row) = reader.next_row() {
            let row = row?;
            summary.rows += 1;
            summary.not_attempted += 1;
            failed.write(&row, NOT_ATTEMPTED, why)?;
        }
    }
    failed.finish()?;
    bar.finish_and_clear();
    if let Some(e) = read_error {
        return Err(e);
    }
    Ok((summary, failed_path, started.elapsed()))
}

/// `device-identity import`: runs [`import_devices`] with Ctrl-C wired to its stop flag and
/// prints the summary.
///
/// # Errors
/// When rows were not imported (they are in the failed-rows file), when it was interrupted,
/// or when a file cannot be read or written.
pub async fn import(rm: &RegistryManager, out: Output, args: ImportArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
            eprintln!("interrupted: finishing the requests in flight…");
        }
    });
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = import_devices(rm, &args, Arc::clone(&stop), show).await;
    watcher.abort();
    let (summary, failed_path, elapsed) = outcome?;
    let rate = summary.imported as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut text = format!(
        "imported {} of {} device(s) in {:.1} s ({} devices/s)",
        thousands(summary.imported),
        thousands(summary.rows),
        elapsed.as_secs_f64(),
        thousands(rate.round() as u64)
    );
    let unfinished = summary.failed + summary.not_attempted;
    if unfinished > 0 {
        text.push_str(&format!(
            "; {} failed, {} not attempted, written to {}",
            summary.failed,
            summary.not_attempted,
            failed_path.display()
        ));
    }
    out.event(
        &text,
        &json!({
            "rows": summary.rows,
            "imported": summary.imported,
            "failed": summary.failed,
            "notAttempted": summary.not_attempted,
            "interrupted": summary.interrupted,
            "failedFile": (unfinished > 0).then(|| failed_path.display().to_string()),
            "seconds": elapsed.as_secs_f64(),
        }),
    )?;
    if summary.interrupted {
        return Err(CliError::new(format!(
            "import interrupted; rerun it on {} to import the rest",
            failed_path.display()
        ))
        .with_status(130));
    }
    if let Some(why) = &summary.unreachable {
        return Err(CliError::new(format!(
            "the hub could not be reached ({why}); rerun the import on {} once it is up",
            failed_path.display()
        )));
    }
    if unfinished > 0 {
        return Err(CliError::new(format!(
            "{unfinished} row(s) were not imported; fix them in {} and rerun the import on it",
            failed_path.display()
        )));
    }
    Ok(())
}

/// The export row of a device: its identity (with keys) and the parts of its twin an import
/// can write back (tags, desired properties without `$metadata` and `$version`). ETags and
/// reported properties are left out, so exporting what an import wrote gives the same rows.
fn export_row(device: &iothub_registry::Device, twin: &Value) -> Value {
    let desired: serde_json::Map<String, Value> = twin
        .pointer("/properties/desired")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut row = json!({
        "id": device.device_id,
        "status": device.status,
        "authentication": device.authentication,
    });
    if let Some(reason) = device.status_reason.as_ref().filter(|r| !r.is_empty()) {
        row["statusReason"] = json!(reason);
    }
    if let Some(tags) = twin
        .get("tags")
        .filter(|t| t.as_object().is_some_and(|m| !m.is_empty()))
    {
        row["tags"] = tags.clone();
    }
    if !desired.is_empty() {
        row["properties"] = json!({"desired": desired});
    }
    if device.capabilities.as_ref().and_then(|c| c.iot_edge) == Some(true) {
        row["capabilities"] = json!({"iotEdge": true});
    }
    row
}

/// `device-identity export`: every device, as JSONL rows `import` reads back.
///
/// # Errors
/// When the query or a device read fails, or the file cannot be written.
pub async fn export(rm: &RegistryManager, out: Output, args: ExportArgs) -> Result<()> {
    let mut sink: Box<dyn Write> = if args.file == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        let file = create_private(&args.file)
            .map_err(|e| CliError::new(format!("cannot create {}: {e}", args.file.display())))?;
        Box::new(BufWriter::new(file))
    };
    let total = rm
        .get_device_registry_statistics()
        .await
        .ok()
        .map(|s| s.total_device_count.max(0) as u64);
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr()) && args.file != Path::new("-");
    let bar = if show {
        progress_bar(total, "devices")
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut pages = rm
        .query_as::<Value>("SELECT * FROM devices")
        .page_size(1000)
        .pages();
    let mut written = 0u64;
    while let Some(page) = pages.next().await {
        let twins = page?;
        // Keys are not in twins: read each identity, a bounded number at a time, in order.
        let rows: Vec<Result<Option<Value>>> = futures::stream::iter(twins.items)
            .map(|twin| async move {
                let id = twin
                    .get("deviceId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                match rm.get_device(&id).await {
                    Ok(device) => Ok(Some(export_row(&device, &twin))),
                    // Deleted between the query and the read: nothing to export.
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(CliError::from(e)),
                }
            })
            .buffered(16)
            .collect()
            .await;
        for row in rows {
            if let Some(row) = row? {
                match writeln!(sink, "{row}") {
                    // `export -f - | head`: the reader has what it wanted.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other?,
                }
                written += 1;
            }
            bar.inc(1);
        }
    }
    match sink.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    }
    bar.finish_and_clear();
    if args.file != Path::new("-") {
        out.event(
            &format!(
                "exported {written} device(s) to {} in {:.1} s",
                args.file.display(),
                started.elapsed().as_secs_f64()
            ),
            &json!({"exported": written, "file": args.file.display().to_string()}),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &Path) -> Vec<(u64, std::result::Result<String, String>)> {
        let mut reader = match RowReader::open(path) {
            Ok(r) => r,
            Err(e) => panic!("open: {e}"),
        };
        let mut out = Vec::new();
        while let Some(row) = reader.next_row() {
            let row = row.unwrap_or_else(|e| panic!("{e}"));
            out.push((row.line, row.device.map(|d| d.id)));
        }
        out
    }

    #[test]
    fn jsonl_rows_keep_their_line_numbers() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\"}\n\nnot json\n{\"id\":\"\"}\n[1]\n{\"id\":\"b\",\"importError\":{\"code\":\"X\"}}",
        )?;
        let rows = rows(&path);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0], (1, Ok("a".to_owned())));
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.is_err());
        assert!(rows[2].1.is_err(), "empty id");
        assert!(rows[3].1.is_err(), "not an object");
        assert_eq!(rows[4], (6, Ok("b".to_owned())));
        assert_eq!(count_rows(&path), Some(6));
        Ok(())
    }

    #[test]
    fn csv_rows_map_to_devices() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("d.csv");
        std::fs::write(
            &path,
            "deviceId,status,authType,tags,iotEdge\n\
             a,enabled,sas,\"{\"\"site\"\":1}\",true\n\
             b,sleeping,sas,,\n\
             c,disabled,selfSigned,,\n\
             d,,certificateAuthority,,false\n",
        )?;
        let rows = rows(&path);
        assert_eq!(rows[0], (2, Ok("a".to_owned())));
        assert!(rows[1].1.as_ref().is_err_and(|e| e.contains("status")));
        assert!(
            rows[2]
                .1
                .as_ref()
                .is_err_and(|e| e.contains("primaryThumbprint"))
        );
        assert_eq!(rows[3], (5, Ok("d".to_owned())));
        assert_eq!(count_rows(&path), Some(4));
        std::fs::write(&path, "deviceId,colour\na,red\n")?;
        assert!(RowReader::open(&path).is_err());
        Ok(())
    }

    #[test]
    fn failed_file_names() {
        assert_eq!(
            default_failed_file(Path::new("x/devices.jsonl")),
            Path::new("x/devices.failed.jsonl")
        );
        assert_eq!(
            default_failed_file(Path::new("devices.csv")),
            Path::new("devices.failed.csv")
        );
    }
}
