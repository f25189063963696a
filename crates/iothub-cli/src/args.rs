//! The command line: global connection and output options, and the commands, shaped like
//! `az iot hub` / `az iot device` so Azure users find the same names and flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use iothub_registry::{DeviceStatus, ImportMode};

/// A device or module id as given on the command line: refused before anything is sent
/// when it is empty, `.` or `..` (a REST path cannot address such an id: `..` would name
/// the parent resource, so `module-identity delete -m ..` would delete the device).
fn identity_id(text: &str) -> Result<String, String> {
    match text {
        "" => Err("an id cannot be empty".to_owned()),
        "." | ".." => Err(format!(
            "'{text}' cannot be an id: IoT Hub's REST paths cannot address it"
        )),
        _ => Ok(text.to_owned()),
    }
}

/// `--status`: IoT Hub's device statuses, listed in the help.
fn device_status() -> impl clap::builder::TypedValueParser<Value = DeviceStatus> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(DeviceStatus::ALL.iter().map(|s| s.as_str()))
        .try_map(|s| s.parse::<DeviceStatus>())
}

/// `--import-mode`: IoT Hub's import modes, listed in the help.
fn import_mode() -> impl clap::builder::TypedValueParser<Value = ImportMode> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(ImportMode::ALL.iter().map(|m| m.as_str()))
        .try_map(|s| s.parse::<ImportMode>())
}

/// Data directory `--local` reads when given no DIR: the local hub's default.
pub const DEFAULT_LOCAL_DIR: &str = iothub_emulator::cli::DEFAULT_DATA_DIR;

/// Manage an Azure IoT Hub or the local one: device and module identities, twins, queries,
/// direct methods, cloud-to-device messages, telemetry, bulk import and export; run the
/// local hub and simulated devices.
///
/// Connect with --connection-string (or IOTHUB_CONNECTION_STRING), a service connection
/// string of a hub in Azure or of the local hub, or with --local, which reads a running
/// local hub's connection string and CA certificate from its data directory.
#[derive(Debug, Parser)]
#[command(
    name = "iothub",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// How to reach the hub.
    #[command(flatten)]
    pub hub: HubArgs,

    /// Output format [default: table on a terminal, json otherwise].
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        overrides_with = "output"
    )]
    pub output: Option<OutputFormat>,

    /// Show keys (primaryKey, secondaryKey) instead of masking them.
    #[arg(long, global = true)]
    pub show_keys: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the hub is and how to trust it.
#[derive(Args, Clone, Default)]
pub struct HubArgs {
    /// Service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…);
    /// --local wins over it.
    #[arg(
        long,
        global = true,
        env = "IOTHUB_CONNECTION_STRING",
        hide_env_values = true,
        value_name = "TEXT"
    )]
    pub connection_string: Option<String>,

    /// Use the running local hub whose data directory is DIR (`--local` alone:
    /// iothub-emulator-data; `--local=DIR`, or `--local DIR` for an existing directory):
    /// its connection strings and CA certificate.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = DEFAULT_LOCAL_DIR
    )]
    pub local: Option<PathBuf>,

    /// Trust this CA certificate (PEM) for the hub's TLS, besides the system's roots.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for HubArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubArgs")
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "<redacted>"),
            )
            .field("local", &self.local)
            .field("ca", &self.ca)
            .finish()
    }
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Pretty-printed JSON (one document per result).
    Json,
    /// Human-readable tables.
    Table,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk through every feature against an embedded local hub with simulated devices.
    Quickstart,
    /// Device identities: create, show, list, update, delete, bulk import and export.
    #[command(subcommand)]
    DeviceIdentity(DeviceIdentity),
    /// Module identities.
    #[command(subcommand)]
    ModuleIdentity(ModuleIdentity),
    /// Device twins: show, patch (update) or replace tags and desired properties.
    #[command(subcommand)]
    DeviceTwin(TwinCommand),
    /// Module twins.
    #[command(subcommand)]
    ModuleTwin(ModuleTwinCommand),
    /// Query the hub with IoT Hub's query language; follows continuation tokens.
    Query(QueryArgs),
    /// Invoke a direct method on a device and print its answer.
    InvokeDeviceMethod(MethodArgs),
    /// Invoke a direct method on a module and print its answer.
    InvokeModuleMethod(ModuleMethodArgs),
    /// Cloud-to-device messages.
    #[command(subcommand)]
    C2dMessage(C2dCommand),
    /// Print cloud-to-device feedback records as the hub delivers them.
    MonitorFeedback(FeedbackArgs),
    /// Print device telemetry from the built-in Event Hubs-compatible endpoint.
    MonitorEvents(EventsArgs),
    /// IoT Hub jobs: scheduled twin updates and direct methods on many devices; import and
    /// export jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Automatic device configurations.
    #[command(subcommand)]
    Configuration(ConfigurationCommand),
    /// IoT Edge deployments.
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Registry statistics (device counts) and service statistics (connected devices).
    Stats,
    /// Act as a device: simulate one or a fleet, or send telemetry.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Run the local hub.
    #[command(subcommand)]
    Emulator(EmulatorCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Authentication of a new identity, in `az iot hub`'s words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AuthMethod {
    /// SAS keys (generated when --primary-key and --secondary-key are not given).
    #[default]
    #[value(name = "shared_private_key", alias = "sas")]
    SharedPrivateKey,
    /// Self-signed X.509 certificates, by thumbprint.
    #[value(name = "self_signed", alias = "x509")]
    SelfSigned,
    /// X.509 certificates signed by a CA the hub trusts.
    #[value(name = "x509_ca", alias = "ca")]
    X509Ca,
}

/// Credentials of a new or updated identity.
#[derive(Args, Clone, Default)]
pub struct Credentials {
    /// Authentication method.
    #[arg(long = "auth-method", visible_alias = "am", value_enum)]
    pub auth_method: Option<AuthMethod>,
    /// Primary SAS key (base64, 16–64 bytes) [default: generated].
    #[arg(long, visible_alias = "pk", value_name = "BASE64")]
    pub primary_key: Option<String>,
    /// Secondary SAS key [default: generated].
    #[arg(long, visible_alias = "sk", value_name = "BASE64")]
    pub secondary_key: Option<String>,
    /// Primary X.509 thumbprint (SHA-1 or SHA-256, hex).
    #[arg(long, visible_alias = "ptp", value_name = "HEX")]
    pub primary_thumbprint: Option<String>,
    /// Secondary X.509 thumbprint [default: the primary one].
    #[arg(long, visible_alias = "stp", value_name = "HEX")]
    pub secondary_thumbprint: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_method", &self.auth_method)
            .field(
                "primary_key",
                &self.primary_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secondary_key",
                &self.secondary_key.as_ref().map(|_| "<redacted>"),
            )
            .field("primary_thumbprint", &self.primary_thumbprint)
            .field("secondary_thumbprint", &self.secondary_thumbprint)
            .finish()
    }
}

/// `device-identity …`.
#[derive(Debug, Subcommand)]
pub enum DeviceIdentity {
    /// Create a device identity.
    Create {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Credentials.
        #[command(flatten)]
        credentials: Credentials,
        /// Status.
        #[arg(long, default_value = "enabled", value_parser = device_status())]
        status: DeviceStatus,
        /// Why the status was set.
        #[arg(long)]
        status_reason: Option<String>,
        /// Make it an IoT Edge device.
        #[arg(long, visible_alias = "ee")]
        edge_enabled: bool,
    },
    /// Show a device identity.
    Show {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
    },
    /// List device identities (through the query API, so any number).
    List {
        /// Stop after N devices.
        #[arg(long)]
        top: Option<usize>,
    },
    /// Update a device identity's status or credentials (read, change, write with its ETag).
    Update {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// New credentials; the authentication method stays unless --auth-method is given.
        #[command(flatten)]
        credentials: Credentials,
        /// New status.
        #[arg(long, value_parser = device_status())]
        status: Option<DeviceStatus>,
        /// Why the status was set.
        #[arg(long)]
        status_reason: Option<String>,
        /// Write only if the device's ETag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Delete a device identity.
    Delete {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Delete only if the device's ETag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Bulk-import any number of devices from a JSONL or CSV file, or run an IoT Hub import
    /// job that reads them from blob storage (--blob).
    Import(ImportCommand),
    /// Export every device identity (keys, tags, desired properties) as JSONL to a file, or
    /// run an IoT Hub export job that writes them to blob storage (--blob).
    Export(ExportCommand),
}

/// A blob container URL with a SAS token, as IoT Hub's import and export jobs take it. A
/// secret: `Debug` shows it without its query string, and it is never printed.
#[derive(Clone)]
pub struct SasUrl(pub String);

impl std::fmt::Debug for SasUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SasUrl")
            .field(&crate::jobs::container_location(&self.0))
            .finish()
    }
}

/// `--blob` and friends: taken as given, never refused by clap (whose error would quote the
/// value, SAS token included); checked without being echoed when the command runs.
fn sas_url(text: &str) -> Result<SasUrl, std::convert::Infallible> {
    Ok(SasUrl(text.to_owned()))
}

/// Seconds as a [`std::time::Duration`]: a positive number, fractions allowed.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() && s <= 1e9 => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err("expected a number of seconds greater than 0".to_owned()),
    }
}

/// How a command that runs a job waits for it.
#[derive(Debug, Args, Clone, Copy)]
pub struct WaitArgs {
    /// Seconds between two reads of the job while waiting (fractions allowed). Each read
    /// counts against the hub's jobs operations quota.
    #[arg(long, visible_alias = "interval", value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub poll_interval: std::time::Duration,
    /// Stop waiting after this many seconds (the job keeps running on the hub) [default:
    /// wait until the job finishes].
    #[arg(long, visible_alias = "duration", value_name = "SECONDS", value_parser = seconds)]
    pub poll_duration: Option<std::time::Duration>,
}

/// `device-identity import`: from a file (bulk registry operations) or from blob storage (an
/// IoT Hub import job).
#[derive(Debug, Args)]
pub struct ImportCommand {
    /// The devices: JSONL (one IoT Hub export/import object per line: id, status,
    /// authentication, tags, properties.desired, importMode, …) or CSV (header row; columns
    /// deviceId, status, statusReason, authType, primaryKey, secondaryKey,
    /// primaryThumbprint, secondaryThumbprint, iotEdge, tags, desired, importMode). `-`
    /// reads JSONL from stdin.
    #[arg(
        long,
        short = 'f',
        value_name = "FILE",
        required_unless_present = "blob",
        conflicts_with = "blob"
    )]
    pub file: Option<PathBuf>,
    /// Where rows that were not imported go, each with its IoT Hub error code; rerun the
    /// import on it to resume [default: FILE.failed.jsonl or FILE.failed.csv].
    #[arg(long, value_name = "FILE", conflicts_with = "blob")]
    pub failed_file: Option<PathBuf>,
    /// Import mode of rows that name none (with --blob, each line's importMode applies,
    /// createOrUpdate when it names none).
    #[arg(long, default_value = "createOrUpdate", value_parser = import_mode(), conflicts_with = "blob")]
    pub import_mode: ImportMode,
    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64), conflicts_with = "blob")]
    pub concurrency: u16,
    /// Devices per bulk request (IoT Hub allows at most 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100), conflicts_with = "blob")]
    pub batch_size: u16,
    /// Run an IoT Hub import job instead: the URL, with a SAS token allowing read and list,
    /// of the blob container holding the devices (one export/import JSON object per line,
    /// each with its importMode).
    #[arg(
        long = "blob",
        visible_aliases = ["ibcu", "input-blob-container-uri"],
        value_name = "CONTAINER_SAS_URL",
        value_parser = sas_url,
        requires = "output_blob"
    )]
    pub blob: Option<SasUrl>,
    /// With --blob: the URL, with a SAS token allowing write, read and delete, of the blob
    /// container the job writes importErrors.log to (the lines it could not apply).
    #[arg(
        long = "output-blob",
        visible_aliases = ["obcu", "output-blob-container-uri"],
        value_name = "CONTAINER_SAS_URL",
        value_parser = sas_url,
        requires = "blob"
    )]
    pub output_blob: Option<SasUrl>,
    /// With --blob: the blob to read in the input container [default: devices.txt].
    #[arg(long, value_name = "NAME", requires = "blob")]
    pub blob_name: Option<String>,
    /// With --blob: print the job as IoT Hub accepted it and return without waiting.
    #[arg(long, requires = "blob")]
    pub no_wait: bool,
    /// With --blob: how to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

impl ImportCommand {
    /// The file import this command asks for, unless it runs an import job (--blob).
    pub fn file_import(&self) -> Option<ImportArgs> {
        Some(ImportArgs {
            file: self.file.clone()?,
            failed_file: self.failed_file.clone(),
            import_mode: self.import_mode,
            concurrency: self.concurrency,
            batch_size: self.batch_size,
        })
    }
}

/// A file import (`device-identity import -f FILE`), as [`crate::bulk::import`] runs it.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// The JSONL or CSV file (`-`: JSONL from stdin).
    pub file: PathBuf,
    /// Where rows that were not imported go [default: next to the input].
    pub failed_file: Option<PathBuf>,
    /// Import mode of rows that name none.
    pub import_mode: ImportMode,
    /// Bulk requests in flight at once.
    pub concurrency: u16,
    /// Devices per bulk request (at most 100).
    pub batch_size: u16,
}

/// `device-identity export`: to a file (reads of every identity) or to blob storage (an IoT
/// Hub export job).
#[derive(Debug, Args)]
pub struct ExportCommand {
    /// Output file (JSONL, created with owner-only permissions since it holds keys); `-`
    /// writes to stdout.
    #[arg(
        long,
        short = 'f',
        value_name = "FILE",
        required_unless_present = "blob",
        conflicts_with = "blob"
    )]
    pub file: Option<PathBuf>,
    /// Run an IoT Hub export job instead: the URL, with a SAS token allowing write, read and
    /// delete, of the blob container the job writes devices.txt to.
    #[arg(
        long = "blob",
        visible_aliases = ["bcu", "blob-container-uri"],
        value_name = "CONTAINER_SAS_URL",
        value_parser = sas_url
    )]
    pub blob: Option<SasUrl>,
    /// With --blob: export the identities without their keys (IoT Hub writes them as null).
    #[arg(long, requires = "blob")]
    pub exclude_keys: bool,
    /// With --blob: the blob to write in the container [default: devices.txt].
    #[arg(long, value_name = "NAME", requires = "blob")]
    pub blob_name: Option<String>,
    /// With --blob: print the job as IoT Hub accepted it and return without waiting.
    #[arg(long, requires = "blob")]
    pub no_wait: bool,
    /// With --blob: how to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

impl ExportCommand {
    /// The file export this command asks for, unless it runs an export job (--blob).
    pub fn file_export(&self) -> Option<ExportArgs> {
        Some(ExportArgs {
            file: self.file.clone()?,
        })
    }
}

/// A file export (`device-identity export -f FILE`), as [`crate::bulk::export`] runs it.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// Output file (`-`: stdout).
    pub file: PathBuf,
}

/// `module-identity …`.
#[derive(Debug, Subcommand)]
pub enum ModuleIdentity {
    /// Create a module identity.
    Create {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
        /// Credentials.
        #[command(flatten)]
        credentials: Credentials,
        /// Who manages the module (e.g. `iotEdge`).
        #[arg(long)]
        managed_by: Option<String>,
    },
    /// Show a module identity.
    Show {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
    },
    /// List a device's module identities.
    List {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
    },
    /// Update a module identity's credentials.
    Update {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
        /// New credentials.
        #[command(flatten)]
        credentials: Credentials,
        /// Write only if the module's ETag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Delete a module identity.
    Delete {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
        /// Delete only if the module's ETag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
}

/// A twin write's content.
#[derive(Debug, Args, Clone)]
pub struct TwinWriteArgs {
    /// Tags, as a JSON object (or @FILE).
    #[arg(long, value_name = "JSON")]
    pub tags: Option<String>,
    /// Desired properties, as a JSON object (or @FILE).
    #[arg(long, value_name = "JSON")]
    pub desired: Option<String>,
    /// A whole twin document, `{"tags": …, "properties": {"desired": …}}` (or @FILE).
    #[arg(long, value_name = "JSON", conflicts_with_all = ["tags", "desired"])]
    pub json: Option<String>,
    /// Write only if the twin's ETag is still this one.
    #[arg(long)]
    pub etag: Option<String>,
}

/// `device-twin …`.
#[derive(Debug, Subcommand)]
pub enum TwinCommand {
    /// Show a device twin.
    Show {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
    },
    /// Patch a device twin's tags and desired properties (null removes a property).
    Update {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// What to write.
        #[command(flatten)]
        write: TwinWriteArgs,
    },
    /// Replace a device twin's tags and desired properties: the part not given becomes
    /// empty (use update to change one part).
    Replace {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// What to write.
        #[command(flatten)]
        write: TwinWriteArgs,
    },
}

/// `module-twin …`.
#[derive(Debug, Subcommand)]
pub enum ModuleTwinCommand {
    /// Show a module twin.
    Show {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
    },
    /// Patch a module twin's tags and desired properties.
    Update {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
        /// What to write.
        #[command(flatten)]
        write: TwinWriteArgs,
    },
    /// Replace a module twin's tags and desired properties: the part not given becomes
    /// empty (use update to change one part).
    Replace {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Module id.
        #[arg(long, short = 'm', value_parser = identity_id)]
        module_id: String,
        /// What to write.
        #[command(flatten)]
        write: TwinWriteArgs,
    },
}

/// `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query, e.g. "SELECT * FROM devices WHERE tags.site = 'b4'".
    #[arg(long = "query-command", short = 'q', value_name = "QUERY")]
    pub query: String,
    /// Stop after N results.
    #[arg(long)]
    pub top: Option<usize>,
    /// Results per page requested from the hub (IoT Hub allows at most 1,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
}

/// `invoke-device-method`.
#[derive(Debug, Args)]
pub struct MethodArgs {
    /// Device id.
    #[arg(long, short = 'd', value_parser = identity_id)]
    pub device_id: String,
    /// Method name.
    #[arg(long, visible_alias = "mn")]
    pub method_name: String,
    /// Payload, as JSON (or @FILE).
    #[arg(long, visible_alias = "mp", default_value = "{}")]
    pub method_payload: String,
    /// Seconds to wait for the device's answer (5–300).
    #[arg(long, visible_alias = "to", default_value_t = 30, value_parser = clap::value_parser!(i32).range(5..=300))]
    pub timeout: i32,
    /// Seconds to wait for the device to connect (0–300).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=300))]
    pub connect_timeout: i32,
}

/// `invoke-module-method`.
#[derive(Debug, Args)]
pub struct ModuleMethodArgs {
    /// The method.
    #[command(flatten)]
    pub method: MethodArgs,
    /// Module id.
    #[arg(long, short = 'm', value_parser = identity_id)]
    pub module_id: String,
}

/// `c2d-message …`.
#[derive(Debug, Subcommand)]
pub enum C2dCommand {
    /// Send a cloud-to-device message.
    Send {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Message body.
        #[arg(long, default_value = "Ping from the iothub CLI")]
        data: String,
        /// Properties, `key=value;key2=value2`: application properties, and the system
        /// properties messageId, correlationId, contentType, contentEncoding, expiryTimeUtc.
        #[arg(long, visible_alias = "properties")]
        props: Option<String>,
        /// Feedback to request: positive, negative or full.
        #[arg(long)]
        ack: Option<String>,
    },
    /// Delete every message waiting in a device's cloud-to-device queue.
    Purge {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
    },
}

/// `monitor-feedback`.
#[derive(Debug, Args)]
pub struct FeedbackArgs {
    /// Stop once the record of this message id arrives.
    #[arg(long, visible_alias = "wait-on-msg", value_name = "MESSAGE_ID")]
    pub wait_on_id: Option<String>,
    /// Stop after this many seconds (0: never).
    #[arg(long, short = 't', default_value_t = 300)]
    pub timeout: u64,
}

/// `monitor-events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events from this device.
    #[arg(long, short = 'd', value_parser = identity_id)]
    pub device_id: Option<String>,
    /// Consumer group.
    #[arg(long, visible_alias = "cg", default_value = "$Default")]
    pub consumer_group: String,
    /// Where to start: `latest` (events enqueued from now on), `earliest` (everything
    /// retained), or an RFC 3339 enqueued time.
    #[arg(long, default_value = "latest")]
    pub start: String,
    /// Stop after this many seconds (0: never).
    #[arg(long, short = 't', default_value_t = 0)]
    pub timeout: u64,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Include system and application properties.
    #[arg(long)]
    pub properties: bool,
    /// AMQPS port of the built-in endpoint [default: 5671, or the local hub's].
    #[arg(long, value_name = "N")]
    pub amqps_port: Option<u16>,
}

/// The kinds of scheduled job `job create` makes, as IoT Hub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduledJobKind {
    /// Patch the twin (tags, desired properties) of every selected device.
    #[value(name = "scheduleUpdateTwin")]
    ScheduleUpdateTwin,
    /// Invoke a direct method on every selected device.
    #[value(name = "scheduleDeviceMethod")]
    ScheduleDeviceMethod,
}

/// The job types `job list` filters on, as IoT Hub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobKind {
    /// Scheduled twin updates.
    #[value(name = "scheduleUpdateTwin")]
    ScheduleUpdateTwin,
    /// Scheduled direct methods.
    #[value(name = "scheduleDeviceMethod")]
    ScheduleDeviceMethod,
    /// Exports of the identity registry to blob storage.
    #[value(name = "export")]
    Export,
    /// Imports of identities from blob storage.
    #[value(name = "import")]
    Import,
}

/// Job statuses `job list` filters on (scheduled jobs: queued, scheduled, running,
/// completed, failed, cancelled; import and export jobs: enqueued, running, completed,
/// failed, cancelled).
const JOB_STATUSES: [&str; 8] = [
    "queued",
    "scheduled",
    "enqueued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "unknown",
];

/// An RFC 3339 time.
fn rfc3339(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time such as 2030-01-02T03:04:05Z: {e}"))
}

/// `job …`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Schedule a twin update or a direct method on the devices a query condition selects.
    Create(JobCreateArgs),
    /// Show a job: a scheduled job, or else an import or export job.
    Show {
        /// Job id.
        #[arg(long, value_parser = identity_id)]
        job_id: String,
    },
    /// List jobs, following continuation tokens: scheduled jobs and import/export jobs,
    /// or only those of --job-type, --job-status or --import-export.
    List {
        /// Only jobs of this type.
        #[arg(long, visible_alias = "jt", value_enum)]
        job_type: Option<JobKind>,
        /// Only jobs in this status.
        #[arg(long, visible_alias = "js", value_parser = clap::builder::PossibleValuesParser::new(JOB_STATUSES))]
        job_status: Option<String>,
        /// Only import and export jobs (IoT Hub keeps them for 30 days).
        #[arg(long, conflicts_with = "job_type")]
        import_export: bool,
        /// Stop after N jobs.
        #[arg(long)]
        top: Option<usize>,
    },
    /// Cancel a scheduled job, or an import or export job.
    Cancel {
        /// Job id.
        #[arg(long, value_parser = identity_id)]
        job_id: String,
    },
}

/// `job create`.
#[derive(Debug, Args)]
pub struct JobCreateArgs {
    /// Job id (unique among the hub's scheduled jobs).
    #[arg(long, value_parser = identity_id)]
    pub job_id: String,
    /// What the job does.
    #[arg(long, visible_alias = "jt", value_enum)]
    pub job_type: ScheduledJobKind,
    /// Which devices: the WHERE clause of a twin query, without WHERE, e.g.
    /// "tags.site = 'b4'" or "deviceId IN ['d1', 'd2']".
    #[arg(long, short = 'q', value_name = "CONDITION")]
    pub query_condition: String,
    /// scheduleUpdateTwin: the patch, `{"tags": …, "properties": {"desired": …}}` (or @FILE).
    #[arg(
        long,
        visible_alias = "patch",
        value_name = "JSON",
        required_if_eq("job_type", "scheduleUpdateTwin"),
        conflicts_with_all = ["method_name", "method_payload", "method_response_timeout", "method_connect_timeout"]
    )]
    pub twin_patch: Option<String>,
    /// scheduleDeviceMethod: the method's name.
    #[arg(
        long,
        visible_alias = "mn",
        required_if_eq("job_type", "scheduleDeviceMethod")
    )]
    pub method_name: Option<String>,
    /// scheduleDeviceMethod: the payload, as JSON (or @FILE).
    #[arg(long, visible_alias = "mp", value_name = "JSON")]
    pub method_payload: Option<String>,
    /// scheduleDeviceMethod: seconds to wait for each device's answer (5–300).
    #[arg(long, visible_alias = "mrt", default_value_t = 30, value_parser = clap::value_parser!(i32).range(5..=300))]
    pub method_response_timeout: i32,
    /// scheduleDeviceMethod: seconds to wait for a disconnected device to connect (0–300).
    #[arg(long, visible_alias = "mct", default_value_t = 30, value_parser = clap::value_parser!(i32).range(0..=300))]
    pub method_connect_timeout: i32,
    /// When the job starts, as an RFC 3339 time [default: now].
    #[arg(long, visible_alias = "start", value_name = "TIME", value_parser = rfc3339)]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Seconds the job may run before IoT Hub stops it.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: u64,
    /// Wait until the job finishes, showing its progress, and print it as it ended.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// With --wait: how to wait.
    #[command(flatten)]
    pub wait_args: WaitArgs,
}

/// `configuration …`.
#[derive(Debug, Subcommand)]
pub enum ConfigurationCommand {
    /// Create an automatic device configuration.
    Create {
        /// Configuration id.
        #[arg(long, short = 'c')]
        config_id: String,
        /// Content: `{"deviceContent": {"properties.desired.x": …}}` (or @FILE).
        #[arg(long, value_name = "JSON")]
        content: String,
        /// Target condition, e.g. "tags.site = 'b4'".
        #[arg(long, default_value = "")]
        target_condition: String,
        /// Priority (higher wins).
        #[arg(long, default_value_t = 0)]
        priority: i32,
        /// Labels, as a JSON object of strings (or @FILE).
        #[arg(long, value_name = "JSON")]
        labels: Option<String>,
        /// Custom metrics, `{"queries": {"name": "SELECT deviceId FROM devices …"}}` (or @FILE).
        #[arg(long, value_name = "JSON")]
        metrics: Option<String>,
    },
    /// Show a configuration.
    Show {
        /// Configuration id.
        #[arg(long, short = 'c')]
        config_id: String,
    },
    /// List configurations.
    List {
        /// Stop after N configurations.
        #[arg(long)]
        top: Option<u32>,
    },
    /// Update a configuration's priority, target condition, labels or metrics.
    Update {
        /// Configuration id.
        #[arg(long, short = 'c')]
        config_id: String,
        /// New target condition.
        #[arg(long)]
        target_condition: Option<String>,
        /// New priority.
        #[arg(long)]
        priority: Option<i32>,
        /// New labels (JSON object, or @FILE).
        #[arg(long, value_name = "JSON")]
        labels: Option<String>,
        /// Write only if the configuration's ETag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Delete a configuration.
    Delete {
        /// Configuration id.
        #[arg(long, short = 'c')]
        config_id: String,
        /// Delete only if the configuration's ETag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
}

/// `edge …`.
#[derive(Debug, Subcommand)]
pub enum EdgeCommand {
    /// Apply a deployment manifest (`{"modulesContent": …}`) to one IoT Edge device.
    SetModules {
        /// Device id.
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// The manifest, as JSON (or @FILE).
        #[arg(long, short = 'k', value_name = "JSON")]
        content: String,
    },
}

/// `device …`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Connect as one device (or a fleet) over MQTT: answer direct methods, print
    /// cloud-to-device messages and desired-property patches, report them back, send
    /// telemetry. Runs until Ctrl-C, --duration or --msg-count.
    Simulate(SimulateArgs),
    /// Send one device-to-cloud message as a device.
    SendD2cMessage {
        /// Device id (its key is read from the registry).
        #[arg(long, short = 'd', value_parser = identity_id)]
        device_id: String,
        /// Message body.
        #[arg(long, default_value = "Ping from the iothub CLI")]
        data: String,
        /// Application properties, `key=value;key2=value2` (`$.ct`, `$.ce`, `$.mid`,
        /// `$.cid` set the system properties).
        #[arg(long, visible_alias = "properties")]
        props: Option<String>,
    },
}

/// `device simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Device id; with --count, the prefix of the fleet's ids (`ID-0000`, `ID-0001`, …).
    #[arg(long, short = 'd', value_parser = identity_id)]
    pub device_id: String,
    /// Simulate a fleet of N devices, created in the registry when missing.
    #[arg(long)]
    pub count: Option<u32>,
    /// Telemetry messages each device sends (0: none).
    #[arg(long, visible_alias = "mc", default_value_t = 10)]
    pub msg_count: u64,
    /// Milliseconds between messages of one device.
    #[arg(long, visible_alias = "mi", default_value_t = 1000)]
    pub msg_interval_ms: u64,
    /// Telemetry body [default: a JSON reading with a temperature and a counter].
    #[arg(long)]
    pub data: Option<String>,
    /// Keep running after the last message until Ctrl-C or --duration.
    #[arg(long)]
    pub keep_running: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Connect over MQTT over WebSockets on the HTTPS port instead of MQTTS.
    #[arg(long)]
    pub websockets: bool,
    /// MQTTS port [default: 8883, or the local hub's].
    #[arg(long, value_name = "N")]
    pub mqtts_port: Option<u16>,
}

/// `emulator …`.
#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Start the local hub and serve until Ctrl-C (same flags as the iothub-emulator binary).
    Start(iothub_emulator::cli::EmulatorArgs),
}
