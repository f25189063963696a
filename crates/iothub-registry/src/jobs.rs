//! IoT Hub jobs, the methods of Python's `IoTHubJobManager`: import and export of the identity
//! registry through blob storage (`/jobs`), scheduled twin updates and direct methods on the
//! devices a query selects (`/jobs/v2`), and waiting for either kind to finish.
//!
//! The rules quoted in the docs come from Microsoft's pages
//! [Import and export IoT Hub device identities in bulk](https://learn.microsoft.com/azure/iot-hub/iot-hub-bulk-identity-mgmt),
//! [Schedule jobs on multiple devices](https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs)
//! and [IoT Hub quotas and throttling](https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling).

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use iothub_rest::types as wire;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RegistryManager;
use crate::error::{Error, Result, scrub_sas_signatures};
use crate::model::{CloudToDeviceMethod, JsonObject, QueryResult};
use crate::operation::{Op, decode, from_wire_via_from, into_future, output};
use crate::query::{QueryPages, QueryStream, follow_pages};
use crate::retry::Idempotency;
use crate::twins::TwinPatch;

/// How often [`RegistryManager::wait_for_import_export_job`] and
/// [`RegistryManager::wait_for_scheduled_job`] read the job unless told otherwise: 5 s.
///
/// IoT Hub counts each read against the hub's jobs operations quota (100 a minute per unit on
/// S1 and S2, 5,000 on S3, per the quotas and throttling page), so one waiter at this
/// interval uses 12 a minute.
pub const DEFAULT_JOB_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How long a scheduled job may run unless [`JobRequest::max_execution_time`] says otherwise:
/// 3600 s (one hour), the default of the Node service SDK's `JobClient` and of the Azure
/// CLI's `az iot hub job create --ttl`.
pub const DEFAULT_MAX_EXECUTION_TIME: Duration = Duration::from_secs(3600);

// ---- string values ---------------------------------------------------------------------

/// Defines an enum of IoT Hub string values that keeps values it does not know in
/// `Other(String)`: `serde`, `Display` and [`as_str`] use the wire spelling; parsing ignores
/// ASCII case and never fails.
macro_rules! open_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version does not know, as IoT Hub sent it.
            Other(String),
        }

        impl $name {
            /// The value as IoT Hub spells it on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(value) => value,
                }
            }
        }

        impl From<&str> for $name {
            /// The known value `value` names (in any ASCII case), or `Other`.
            fn from(value: &str) -> Self {
                $( if value.eq_ignore_ascii_case($wire) { return $name::$variant; } )*
                $name::Other(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $( if value.eq_ignore_ascii_case($wire) { return $name::$variant; } )*
                $name::Other(value)
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;

            /// As `From<&str>`: never fails.
            fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
                Ok(Self::from(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(d)?))
            }
        }
    };
}

open_enum! {
    /// The kind of a job (`type`).
    ///
    /// Import/export jobs are [`Export`](Self::Export) or [`Import`](Self::Import); scheduled
    /// jobs are [`ScheduleUpdateTwin`](Self::ScheduleUpdateTwin) or
    /// [`ScheduleDeviceMethod`](Self::ScheduleDeviceMethod). IoT Hub also knows older kinds
    /// (`backup`, `firmwareUpdate`, `rebootDevice`, ...), which arrive as `Other`.
    ///
    /// ```
    /// use iothub_registry::JobType;
    /// assert_eq!("export".parse::<JobType>().unwrap(), JobType::Export);
    /// assert_eq!(JobType::ScheduleUpdateTwin.as_str(), "scheduleUpdateTwin");
    /// assert_eq!(JobType::from("backup"), JobType::Other("backup".into()));
    /// ```
    JobType {
        /// `unknown`: IoT Hub did not say (also what a job read through the wrong API shows).
        Unknown = "unknown",
        /// `export`: writes every identity of the registry to a blob.
        Export = "export",
        /// `import`: creates, updates or deletes identities from a blob.
        Import = "import",
        /// `scheduleUpdateTwin`: patches the twin of every selected device.
        ScheduleUpdateTwin = "scheduleUpdateTwin",
        /// `scheduleDeviceMethod`: invokes a direct method on every selected device.
        ScheduleDeviceMethod = "scheduleDeviceMethod",
    }
}

impl Default for JobType {
    /// [`JobType::Unknown`].
    fn default() -> Self {
        JobType::Unknown
    }
}

open_enum! {
    /// Where a job is in its life (`status`).
    ///
    /// Import/export jobs go `enqueued` → `running` → `completed` | `failed` | `cancelled`;
    /// scheduled jobs go `queued` → `scheduled` → `running` → `completed` | `failed` |
    /// `cancelled` (jobs page, "Job lifecycle"). [`is_terminal`](Self::is_terminal) tells the
    /// last three apart.
    ///
    /// ```
    /// use iothub_registry::JobStatus;
    /// assert!(JobStatus::Cancelled.is_terminal());
    /// assert!(!"Running".parse::<JobStatus>().unwrap().is_terminal());
    /// ```
    JobStatus {
        /// `unknown`: IoT Hub did not say.
        Unknown = "unknown",
        /// `enqueued`: an import/export job waiting to start (one runs at a time per hub).
        Enqueued = "enqueued",
        /// `queued`: a scheduled job accepted and not yet scheduled.
        Queued = "queued",
        /// `scheduled`: a scheduled job waiting for its start time.
        Scheduled = "scheduled",
        /// `running`: under way.
        Running = "running",
        /// `completed`: finished. For a scheduled job, per-device failures are counted in
        /// [`DeviceJobStatistics::failed_count`].
        Completed = "completed",
        /// `failed`: stopped by an error; see `failure_reason`.
        Failed = "failed",
        /// `cancelled`: stopped by a cancel request.
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// True for `completed`, `failed` and `cancelled`: the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl Default for JobStatus {
    /// [`JobStatus::Unknown`].
    fn default() -> Self {
        JobStatus::Unknown
    }
}

open_enum! {
    /// How IoT Hub reaches the storage account of an import or export job
    /// (`storageAuthenticationType`; bulk page, "Import and export devices with identity-based
    /// authentication").
    StorageAuthenticationType {
        /// `keyBased`: through the SAS token in the container URIs (IoT Hub's default).
        KeyBased = "keyBased",
        /// `identityBased`: through the hub's managed identity, which needs the Storage Blob
        /// Data Contributor role on the account; the URIs then carry no SAS token.
        IdentityBased = "identityBased",
    }
}

// ---- timestamps ------------------------------------------------------------------------

/// Job timestamps: read leniently, written as RFC 3339 in UTC.
pub(crate) mod timestamp {
    use chrono::{DateTime, Datelike as _, NaiveDateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// An ISO 8601 time as IoT Hub sends it: with an offset, or without one (then UTC).
    /// `None` for an empty value, for the never-set value `0001-01-01T00:00:00`, and for text
    /// that is not ISO 8601.
    pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
        let text = text.trim();
        let time = match DateTime::parse_from_rfc3339(text) {
            Ok(time) => time.with_timezone(&Utc),
            Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?
                .and_utc(),
        };
        (time.year() > 1).then_some(time)
    }

    /// `2030-01-02T03:04:05.000Z`: RFC 3339 in UTC with milliseconds, as the official SDKs send.
    pub(crate) fn format(time: &DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_str(&format(time)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.as_deref().and_then(parse))
    }
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.as_deref().and_then(timestamp::parse)
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// ---- import/export jobs -----------------------------------------------------------------

/// The managed identity an identity-based import or export job uses (`identity`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ManagedIdentity {
    /// Azure resource id of a user-assigned identity attached to the hub
    /// (`/subscriptions/…/userAssignedIdentities/<name>`); `None` for the hub's
    /// system-assigned identity.
    #[serde(
        rename = "userAssignedIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_assigned_identity: Option<String>,
}

impl ManagedIdentity {
    /// The hub's system-assigned identity.
    pub fn system_assigned() -> Self {
        Self::default()
    }

    /// A user-assigned identity of the hub, by Azure resource id.
    pub fn user_assigned(resource_id: impl Into<String>) -> Self {
        Self {
            user_assigned_identity: Some(resource_id.into()),
        }
    }
}

/// An import or export job (`POST /jobs/create`, `GET /jobs/{id}`): what to move where, and
/// how far IoT Hub got.
///
/// Build one with [`JobProperties::export`] or [`JobProperties::import`] and the setters; IoT
/// Hub fills `job_id`, `status`, `progress`, the times and `failure_reason` (values set there
/// are not sent).
///
/// The container URIs usually carry a SAS token, a secret: `Debug` shows them without their
/// query string, and `failure_reason` without any SAS signature. `Serialize` writes them whole
/// (it is the wire form).
///
/// ```
/// use iothub_registry::{JobProperties, JobType};
/// let export = JobProperties::export("https://acct.blob.core.windows.net/backup?sv=2022-11-02&sp=rwdl&sig=c2VjcmV0")
///     .exclude_keys_in_export(true);
/// assert_eq!(export.job_type, JobType::Export);
/// let shown = format!("{export:?}");
/// assert!(shown.contains("https://acct.blob.core.windows.net/backup?<redacted>"));
/// assert!(!shown.contains("c2VjcmV0"));
///
/// let import = JobProperties::import(
///     "https://acct.blob.core.windows.net/in?sv=2022-11-02&sp=rl&sig=aW4=",
///     "https://acct.blob.core.windows.net/out?sv=2022-11-02&sp=rw&sig=b3V0",
/// )
/// .input_blob_name("fleet-7.txt");
/// # let _ = import;
/// ```
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobProperties {
    /// Job id, assigned by IoT Hub (empty in a job you build; not sent when empty).
    #[serde(
        rename = "jobId",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub job_id: String,
    /// [`JobType::Export`] or [`JobType::Import`].
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub job_type: JobType,
    /// Where the job is (set by IoT Hub; [`JobStatus::Unknown`] in a job you build).
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: JobStatus,
    /// Percent done, 0 to 100 (set by IoT Hub; 0 until it reports any).
    #[serde(default, deserialize_with = "null_as_default")]
    pub progress: i32,
    /// Import: the container holding the blob to read, usually with a SAS token allowing
    /// read and list.
    #[serde(
        rename = "inputBlobContainerUri",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub input_blob_container_uri: Option<String>,
    /// Import: the blob to read (IoT Hub's default `devices.txt`): one JSON identity per line
    /// with an `importMode`.
    #[serde(
        rename = "inputBlobName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub input_blob_name: Option<String>,
    /// Export: the container the identities are written to; import: the container
    /// `importErrors.log` is written to. Usually with a SAS token allowing write, read and
    /// delete.
    #[serde(
        rename = "outputBlobContainerUri",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_blob_container_uri: Option<String>,
    /// Export: the blob written (IoT Hub's default `devices.txt`).
    #[serde(
        rename = "outputBlobName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_blob_name: Option<String>,
    /// Export: `true` writes the identities' keys as `null`. IoT Hub's default (not sent) is
    /// `false`: keys are exported.
    #[serde(
        rename = "excludeKeysInExport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_keys_in_export: Option<bool>,
    /// How IoT Hub reaches storage; IoT Hub's default (not sent) is
    /// [`StorageAuthenticationType::KeyBased`].
    #[serde(
        rename = "storageAuthenticationType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_authentication_type: Option<StorageAuthenticationType>,
    /// The managed identity of an identity-based job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ManagedIdentity>,
    /// `true` also exports or imports the hub's configurations. IoT Hub's default (not sent)
    /// is `false`.
    #[serde(
        rename = "includeConfigurations",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_configurations: Option<bool>,
    /// The blob holding the configurations (IoT Hub's default `configurations.txt`).
    #[serde(
        rename = "configurationsBlobName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub configurations_blob_name: Option<String>,
    /// When the job started (set by IoT Hub).
    #[serde(
        rename = "startTimeUtc",
        default,
        with = "timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time_utc: Option<DateTime<Utc>>,
    /// When the job ended (set by IoT Hub).
    #[serde(
        rename = "endTimeUtc",
        default,
        with = "timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time_utc: Option<DateTime<Utc>>,
    /// Why the job failed (set by IoT Hub).
    #[serde(
        rename = "failureReason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason: Option<String>,
}

impl fmt::Debug for JobProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = |uri: &Option<String>| uri.as_deref().map(iothub_rest::redact_uri_query);
        f.debug_struct("JobProperties")
            .field("job_id", &self.job_id)
            .field("job_type", &self.job_type)
            .field("status", &self.status)
            .field("progress", &self.progress)
            .field(
                "input_blob_container_uri",
                &uri(&self.input_blob_container_uri),
            )
            .field("input_blob_name", &self.input_blob_name)
            .field(
                "output_blob_container_uri",
                &uri(&self.output_blob_container_uri),
            )
            .field("output_blob_name", &self.output_blob_name)
            .field("exclude_keys_in_export", &self.exclude_keys_in_export)
            .field(
                "storage_authentication_type",
                &self.storage_authentication_type,
            )
            .field("identity", &self.identity)
            .field("include_configurations", &self.include_configurations)
            .field("configurations_blob_name", &self.configurations_blob_name)
            .field("start_time_utc", &self.start_time_utc)
            .field("end_time_utc", &self.end_time_utc)
            .field(
                "failure_reason",
                &self.failure_reason.as_deref().map(scrub_sas_signatures),
            )
            .finish()
    }
}

impl JobProperties {
    /// An export of every identity (devices and modules, with twin tags and desired
    /// properties) to `devices.txt` in the container at `output_blob_container_uri`, one JSON
    /// object per line. The URI needs a SAS token allowing write, read and delete, unless the
    /// job is [`identity_based`](Self::identity_based) (bulk page, "Export devices").
    pub fn export(output_blob_container_uri: impl Into<String>) -> Self {
        Self {
            job_type: JobType::Export,
            output_blob_container_uri: Some(output_blob_container_uri.into()),
            ..Self::default()
        }
    }

    /// An import from `devices.txt` in the container at `input_blob_container_uri` (SAS
    /// token allowing read), applying each line's `importMode` (the modes of
    /// [`ImportMode`](crate::ImportMode)); lines that fail are reported in
    /// `importErrors.log` in the container at `output_blob_container_uri` (SAS token
    /// allowing write, read and delete) (bulk page, "Import devices").
    pub fn import(
        input_blob_container_uri: impl Into<String>,
        output_blob_container_uri: impl Into<String>,
    ) -> Self {
        Self {
            job_type: JobType::Import,
            input_blob_container_uri: Some(input_blob_container_uri.into()),
            output_blob_container_uri: Some(output_blob_container_uri.into()),
            ..Self::default()
        }
    }

    /// Export: `true` writes keys as `null` (default: keys are exported).
    #[must_use]
    pub fn exclude_keys_in_export(mut self, exclude: bool) -> Self {
        self.exclude_keys_in_export = Some(exclude);
        self
    }

    /// Import: reads this blob instead of `devices.txt`.
    #[must_use]
    pub fn input_blob_name(mut self, name: impl Into<String>) -> Self {
        self.input_blob_name = Some(name.into());
        self
    }

    /// Export: writes this blob instead of `devices.txt`.
    #[must_use]
    pub fn output_blob_name(mut self, name: impl Into<String>) -> Self {
        self.output_blob_name = Some(name.into());
        self
    }

    /// Also exports or imports the hub's configurations, in `configurations.txt` unless
    /// [`configurations_blob_name`](Self::configurations_blob_name) says otherwise
    /// (default: not included).
    #[must_use]
    pub fn include_configurations(mut self, include: bool) -> Self {
        self.include_configurations = Some(include);
        self
    }

    /// The blob holding the configurations.
    #[must_use]
    pub fn configurations_blob_name(mut self, name: impl Into<String>) -> Self {
        self.configurations_blob_name = Some(name.into());
        self
    }

    /// Reaches storage through the hub's managed `identity` instead of SAS tokens
    /// (`storageAuthenticationType: identityBased`); the URIs then carry no token.
    #[must_use]
    pub fn identity_based(mut self, identity: ManagedIdentity) -> Self {
        self.storage_authentication_type = Some(StorageAuthenticationType::IdentityBased);
        self.identity = Some(identity);
        self
    }

    /// The request body: what the caller set, without the fields IoT Hub owns.
    fn to_wire(&self) -> wire::JobProperties {
        wire::JobProperties {
            job_id: (!self.job_id.is_empty()).then(|| self.job_id.clone()),
            type_: Some(self.job_type.as_str().to_owned()),
            input_blob_container_uri: self.input_blob_container_uri.clone().map(Into::into),
            input_blob_name: self.input_blob_name.clone(),
            output_blob_container_uri: self.output_blob_container_uri.clone().map(Into::into),
            output_blob_name: self.output_blob_name.clone(),
            exclude_keys_in_export: self.exclude_keys_in_export,
            storage_authentication_type: self
                .storage_authentication_type
                .as_ref()
                .map(|t| t.as_str().to_owned()),
            identity: self.identity.as_ref().map(|i| wire::ManagedIdentity {
                user_assigned_identity: i.user_assigned_identity.clone(),
            }),
            include_configurations: self.include_configurations,
            configurations_blob_name: self.configurations_blob_name.clone(),
            ..wire::JobProperties::default()
        }
    }
}

impl From<wire::JobProperties> for JobProperties {
    fn from(j: wire::JobProperties) -> Self {
        JobProperties {
            job_id: j.job_id.unwrap_or_default(),
            job_type: j.type_.map(JobType::from).unwrap_or_default(),
            status: j.status.map(JobStatus::from).unwrap_or_default(),
            progress: j.progress.unwrap_or(0),
            input_blob_container_uri: j.input_blob_container_uri.map(|u| u.0),
            input_blob_name: j.input_blob_name,
            output_blob_container_uri: j.output_blob_container_uri.map(|u| u.0),
            output_blob_name: j.output_blob_name,
            exclude_keys_in_export: j.exclude_keys_in_export,
            storage_authentication_type: j
                .storage_authentication_type
                .map(StorageAuthenticationType::from),
            identity: j.identity.map(|i| ManagedIdentity {
                user_assigned_identity: i.user_assigned_identity,
            }),
            include_configurations: j.include_configurations,
            configurations_blob_name: j.configurations_blob_name,
            start_time_utc: parse_time(j.start_time_utc),
            end_time_utc: parse_time(j.end_time_utc),
            failure_reason: j.failure_reason,
        }
    }
}

// ---- scheduled jobs ---------------------------------------------------------------------

/// What a scheduled job does on each device.
#[derive(Debug, Clone, PartialEq)]
enum JobAction {
    UpdateTwin(TwinPatch),
    DeviceMethod(CloudToDeviceMethod),
}

/// A scheduled job to create with [`RegistryManager::create_scheduled_job`]: a twin update or
/// a direct method on every device a query condition selects, from a start time, for at most
/// a maximum execution time.
///
/// ```
/// use chrono::{Duration as Days, Utc};
/// use iothub_registry::{CloudToDeviceMethod, JobRequest, JobType, TwinPatch};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let reboot = JobRequest::device_method(
///     "tags.site = 'b4' AND properties.reported.fw < 3",
///     CloudToDeviceMethod::new("reboot").response_timeout_in_seconds(30),
/// )
/// .start_time(Utc::now() + Days::hours(2))
/// .max_execution_time(Duration::from_secs(30 * 60));
/// assert_eq!(reboot.job_type(), JobType::ScheduleDeviceMethod);
///
/// let interval = JobRequest::update_twin(
///     "deviceId IN ['d1', 'd2']",
///     TwinPatch::new().desired(json!({"interval": 30}))?,
/// );
/// # let _ = interval;
/// # Ok::<(), iothub_registry::TwinPatchError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    query_condition: String,
    action: JobAction,
    start_time: Option<DateTime<Utc>>,
    max_execution_time: Duration,
}

impl JobRequest {
    /// A job that applies `patch` (tags and desired properties, JSON merge semantics as
    /// [`RegistryManager::update_twin`]) to the twin of every device `query_condition`
    /// selects. The patch is sent with `etag: "*"`: a twin update job always overwrites (jobs
    /// page, "Jobs to update device twin properties").
    ///
    /// `query_condition` is the WHERE clause of a twin query, without `WHERE`: for example
    /// `deviceId IN ['d1', 'd2']` or `tags.site = 'b4'` (jobs page).
    pub fn update_twin(query_condition: impl Into<String>, patch: impl Into<TwinPatch>) -> Self {
        Self::new(query_condition, JobAction::UpdateTwin(patch.into()))
    }

    /// A job that invokes `method` on every device `query_condition` selects, with the
    /// method's payload and timeouts (a payload of `None` is sent as `""`, as the Python SDK
    /// does). Devices that are offline are retried by IoT Hub until the job's maximum
    /// execution time (jobs page, "Jobs to execute direct methods").
    pub fn device_method(
        query_condition: impl Into<String>,
        method: impl Into<CloudToDeviceMethod>,
    ) -> Self {
        Self::new(query_condition, JobAction::DeviceMethod(method.into()))
    }

    fn new(query_condition: impl Into<String>, action: JobAction) -> Self {
        Self {
            query_condition: query_condition.into(),
            action,
            start_time: None,
            max_execution_time: DEFAULT_MAX_EXECUTION_TIME,
        }
    }

    /// When the job starts. Default: the moment the request is sent (the client's clock), as
    /// the Node service SDK does.
    #[must_use]
    pub fn start_time(mut self, start: DateTime<Utc>) -> Self {
        self.start_time = Some(start);
        self
    }

    /// How long the job may run before IoT Hub stops it (`maxExecutionTimeInSeconds`, sent in
    /// whole seconds, rounded up). Default [`DEFAULT_MAX_EXECUTION_TIME`] (one hour).
    #[must_use]
    pub fn max_execution_time(mut self, max: Duration) -> Self {
        self.max_execution_time = max;
        self
    }

    /// [`JobType::ScheduleUpdateTwin`] or [`JobType::ScheduleDeviceMethod`].
    pub fn job_type(&self) -> JobType {
        match self.action {
            JobAction::UpdateTwin(_) => JobType::ScheduleUpdateTwin,
            JobAction::DeviceMethod(_) => JobType::ScheduleDeviceMethod,
        }
    }

    /// The request body for job `job_id`, starting now unless a start time was set.
    fn to_wire(&self, job_id: &str) -> wire::JobRequest {
        let (type_, update_twin, cloud_to_device_method) = match &self.action {
            JobAction::UpdateTwin(patch) => {
                let mut twin = patch.to_wire();
                twin.etag = Some("*".to_owned());
                (wire::ScheduledJobType::ScheduleUpdateTwin, Some(twin), None)
            }
            JobAction::DeviceMethod(method) => (
                wire::ScheduledJobType::ScheduleDeviceMethod,
                None,
                Some(wire::CloudToDeviceMethod::from(method)),
            ),
        };
        let max = &self.max_execution_time;
        let seconds = max
            .as_secs()
            .saturating_add(u64::from(max.subsec_nanos() > 0));
        wire::JobRequest {
            job_id: Some(job_id.to_owned()),
            type_: Some(type_),
            update_twin,
            cloud_to_device_method,
            query_condition: Some(self.query_condition.clone()),
            start_time: Some(timestamp::format(&self.start_time.unwrap_or_else(Utc::now))),
            max_execution_time_in_seconds: Some(i64::try_from(seconds).unwrap_or(i64::MAX)),
        }
    }
}

/// Device counts of a scheduled job (`deviceJobStatistics`). While the job runs,
/// `succeeded_count + failed_count + running_count + pending_count` is `device_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceJobStatistics {
    /// Devices the query condition selected.
    #[serde(rename = "deviceCount", default)]
    pub device_count: i32,
    /// Devices on which the twin update or method failed.
    #[serde(rename = "failedCount", default)]
    pub failed_count: i32,
    /// Devices on which it succeeded.
    #[serde(rename = "succeededCount", default)]
    pub succeeded_count: i32,
    /// Devices it is running on now.
    #[serde(rename = "runningCount", default)]
    pub running_count: i32,
    /// Devices it has not reached yet.
    #[serde(rename = "pendingCount", default)]
    pub pending_count: i32,
}

impl From<wire::DeviceJobStatistics> for DeviceJobStatistics {
    fn from(s: wire::DeviceJobStatistics) -> Self {
        DeviceJobStatistics {
            device_count: s.device_count.unwrap_or(0),
            failed_count: s.failed_count.unwrap_or(0),
            succeeded_count: s.succeeded_count.unwrap_or(0),
            running_count: s.running_count.unwrap_or(0),
            pending_count: s.pending_count.unwrap_or(0),
        }
    }
}

/// A scheduled job as IoT Hub reports it (`GET /jobs/v2/{id}`, and the items of
/// [`RegistryManager::query_scheduled_jobs`]).
///
/// Per-device outcomes (each method's answer, each failure) are not here: query them with
/// `SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '<id>'` through
/// [`RegistryManager::query_as`] (jobs page, "Query jobs").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobResponse {
    /// Job id.
    #[serde(rename = "jobId", default)]
    pub job_id: String,
    /// [`JobType::ScheduleUpdateTwin`] or [`JobType::ScheduleDeviceMethod`].
    #[serde(rename = "type", default)]
    pub job_type: JobType,
    /// Where the job is.
    #[serde(default)]
    pub status: JobStatus,
    /// The WHERE clause selecting the devices.
    #[serde(
        rename = "queryCondition",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub query_condition: Option<String>,
    /// When the job was created.
    #[serde(
        rename = "createdTime",
        default,
        with = "timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_time: Option<DateTime<Utc>>,
    /// When the job starts or started.
    #[serde(
        rename = "startTime",
        default,
        with = "timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<DateTime<Utc>>,
    /// When the job ended.
    #[serde(
        rename = "endTime",
        default,
        with = "timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<DateTime<Utc>>,
    /// How long the job may run, in seconds.
    #[serde(
        rename = "maxExecutionTimeInSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_execution_time_in_seconds: Option<i64>,
    /// The method a [`JobType::ScheduleDeviceMethod`] job invokes.
    #[serde(
        rename = "cloudToDeviceMethod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_to_device_method: Option<CloudToDeviceMethod>,
    /// The twin patch a [`JobType::ScheduleUpdateTwin`] job applies, as IoT Hub returns it
    /// (`tags`, `properties.desired`, `etag: "*"`).
    #[serde(
        rename = "updateTwin",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub update_twin: Option<JsonObject>,
    /// Why the job failed, when it did.
    #[serde(
        rename = "failureReason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason: Option<String>,
    /// IoT Hub's status text.
    #[serde(
        rename = "statusMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub status_message: Option<String>,
    /// Device counts; `None` until IoT Hub reports them.
    #[serde(
        rename = "deviceJobStatistics",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_job_statistics: Option<DeviceJobStatistics>,
}

impl From<wire::JobResponse> for JobResponse {
    fn from(j: wire::JobResponse) -> Self {
        JobResponse {
            job_id: j.job_id.unwrap_or_default(),
            job_type: j.type_.map(JobType::from).unwrap_or_default(),
            status: j.status.map(JobStatus::from).unwrap_or_default(),
            query_condition: j.query_condition,
            created_time: parse_time(j.created_time),
            start_time: parse_time(j.start_time),
            end_time: parse_time(j.end_time),
            max_execution_time_in_seconds: j.max_execution_time_in_seconds,
            cloud_to_device_method: j.cloud_to_device_method.map(|m| CloudToDeviceMethod {
                method_name: m.method_name,
                payload: m.payload,
                response_timeout_in_seconds: m.response_timeout_in_seconds,
                connect_timeout_in_seconds: m.connect_timeout_in_seconds,
            }),
            update_twin: j
                .update_twin
                .and_then(|twin| match serde_json::to_value(twin) {
                    Ok(Value::Object(twin)) => Some(twin),
                    _ => None,
                }),
            failure_reason: j.failure_reason,
            status_message: j.status_message,
            device_job_statistics: j.device_job_statistics.map(Into::into),
        }
    }
}

from_wire_via_from! {
    wire::JobProperties => JobProperties,
    wire::JobResponse => JobResponse,
}

// ---- requests --------------------------------------------------------------------------

/// An import or export job to start, ready to send: `.await` it. Resolves to the job as
/// IoT Hub queued it, with its `job_id`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct CreateImportExportJobRequest<'a> {
    rm: &'a RegistryManager,
    job: JobProperties,
}

impl CreateImportExportJobRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::create_import_export_job`].
    pub async fn send(self) -> Result<JobProperties> {
        let rest = self.rm.rest();
        let body = self.job.to_wire();
        let body = &body;
        self.rm
            .run(
                Op::new("create_import_export_job", Idempotency::Unsafe),
                || async move { output(rest.jobs_create_import_export_job(body)).await },
            )
            .await
    }
}

into_future!(CreateImportExportJobRequest => JobProperties);

/// An import/export job read, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetImportExportJobRequest<'a> {
    rm: &'a RegistryManager,
    job_id: String,
}

impl GetImportExportJobRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_import_export_job`].
    pub async fn send(self) -> Result<JobProperties> {
        let rest = self.rm.rest();
        let job_id = self.job_id.as_str();
        self.rm
            .run(
                Op::new("get_import_export_job", Idempotency::Safe).job(job_id),
                || async move { output(rest.jobs_get_import_export_job(job_id)).await },
            )
            .await
    }
}

into_future!(GetImportExportJobRequest => JobProperties);

/// The list of import/export jobs, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct GetImportExportJobsRequest<'a> {
    rm: &'a RegistryManager,
}

impl GetImportExportJobsRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_import_export_jobs`].
    pub async fn send(self) -> Result<Vec<JobProperties>> {
        let rest = self.rm.rest();
        self.rm
            .run(
                Op::new("get_import_export_jobs", Idempotency::Safe),
                || async move { output(rest.jobs_get_import_export_jobs()).await },
            )
            .await
    }
}

into_future!(GetImportExportJobsRequest => Vec<JobProperties>);

/// An import/export job cancellation, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct CancelImportExportJobRequest<'a> {
    rm: &'a RegistryManager,
    job_id: String,
}

impl CancelImportExportJobRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::cancel_import_export_job`].
    pub async fn send(self) -> Result<()> {
        let rest = self.rm.rest();
        let job_id = self.job_id.as_str();
        self.rm
            .run(
                Op::new("cancel_import_export_job", Idempotency::Safe).job(job_id),
                || async move {
                    output::<(), ()>(rest.jobs_cancel_import_export_job(job_id)).await
                },
            )
            .await
    }
}

into_future!(CancelImportExportJobRequest => ());

/// A scheduled job to create, ready to send: `.await` it. Resolves to the job as IoT Hub
/// accepted it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct CreateScheduledJobRequest<'a> {
    rm: &'a RegistryManager,
    job_id: String,
    request: JobRequest,
}

impl CreateScheduledJobRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::create_scheduled_job`].
    pub async fn send(self) -> Result<JobResponse> {
        let rest = self.rm.rest();
        let job_id = self.job_id.as_str();
        let body = self.request.to_wire(job_id);
        let body = &body;
        self.rm
            .run(
                Op::new("create_scheduled_job", Idempotency::Unsafe).job(job_id),
                || async move { output(rest.jobs_create_scheduled_job(job_id, body)).await },
            )
            .await
    }
}

into_future!(CreateScheduledJobRequest => JobResponse);

/// A scheduled job read or cancellation, ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct ScheduledJobRequest<'a> {
    rm: &'a RegistryManager,
    job_id: String,
    cancel: bool,
}

impl ScheduledJobRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_scheduled_job`] or [`RegistryManager::cancel_scheduled_job`].
    pub async fn send(self) -> Result<JobResponse> {
        let rest = self.rm.rest();
        let job_id = self.job_id.as_str();
        if self.cancel {
            self.rm
                .run(
                    Op::new("cancel_scheduled_job", Idempotency::Safe).job(job_id),
                    || async move { output(rest.jobs_cancel_scheduled_job(job_id)).await },
                )
                .await
        } else {
            self.rm
                .run(
                    Op::new("get_scheduled_job", Idempotency::Safe).job(job_id),
                    || async move { output(rest.jobs_get_scheduled_job(job_id)).await },
                )
                .await
        }
    }
}

into_future!(ScheduledJobRequest => JobResponse);

/// A listing of scheduled jobs, ready to send: optionally set [`job_type`](Self::job_type),
/// [`job_status`](Self::job_status), [`page_size`](Self::page_size) and
/// [`continuation_token`](Self::continuation_token). `.await` (or [`send`](Self::send)) gets
/// one page; [`pages`](Self::pages) and [`into_stream`](Self::into_stream) follow the
/// continuation tokens.
#[must_use = "a request does nothing until it is awaited or streamed"]
#[derive(Debug)]
pub struct QueryScheduledJobsRequest<'a> {
    rm: &'a RegistryManager,
    job_type: Option<JobType>,
    job_status: Option<JobStatus>,
    continuation_token: Option<String>,
    page_size: Option<u32>,
}

impl QueryScheduledJobsRequest<'_> {
    /// Only jobs of this type (`?jobType=`), such as [`JobType::ScheduleDeviceMethod`].
    /// Default: every type.
    pub fn job_type(mut self, job_type: JobType) -> Self {
        self.job_type = Some(job_type);
        self
    }

    /// Only jobs in this status (`?jobStatus=`), such as [`JobStatus::Running`]. Default:
    /// every status.
    pub fn job_status(mut self, job_status: JobStatus) -> Self {
        self.job_status = Some(job_status);
        self
    }

    /// Jobs per page (`x-ms-max-item-count`). Default: the service's choice.
    #[doc(alias = "max_item_count")]
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// Starts after the page that returned this token (`x-ms-continuation`). Without it, or
    /// with an empty token, the listing starts at its first page.
    pub fn continuation_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.continuation_token = (!token.is_empty()).then_some(token);
        self
    }

    /// Sends the request for one page (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::query_scheduled_jobs`].
    pub async fn send(self) -> Result<QueryResult<JobResponse>> {
        let job_type = self.job_type.as_ref().map(|t| t.as_str().to_owned());
        let job_status = self.job_status.as_ref().map(|s| s.as_str().to_owned());
        self.rm
            .scheduled_jobs_page(
                job_type.as_deref(),
                job_status.as_deref(),
                self.continuation_token.as_deref(),
                self.page_size,
            )
            .await
    }

    /// Every page, lazily: nothing is sent until the stream is polled, and each page is
    /// fetched when the previous one has been taken. Ends after the last page, after the
    /// first error (which it yields), or when IoT Hub repeats a continuation token.
    pub fn pages(self) -> QueryPages<JobResponse> {
        let rm = self.rm.clone();
        let job_type = self.job_type.map(|t| t.as_str().to_owned());
        let job_status = self.job_status.map(|s| s.as_str().to_owned());
        let page_size = self.page_size;
        follow_pages(self.continuation_token, "job query", move |token| {
            let rm = rm.clone();
            let job_type = job_type.clone();
            let job_status = job_status.clone();
            async move {
                rm.scheduled_jobs_page(
                    job_type.as_deref(),
                    job_status.as_deref(),
                    token.as_deref(),
                    page_size,
                )
                .await
            }
        })
    }

    /// Every job of every page, lazily, as [`pages`](Self::pages) fetches them.
    pub fn into_stream(self) -> QueryStream<JobResponse> {
        self.pages().into_items()
    }
}

into_future!(QueryScheduledJobsRequest => QueryResult<JobResponse>);

impl RegistryManager {
    /// One page of `GET /jobs/v2/query`. The body is an array of jobs (as the Node, .NET and
    /// Azure CLI clients read it) or an object with `items` and `continuationToken` (as the
    /// Python client reads it); the token is taken from the `x-ms-continuation` header, or
    /// from the body.
    async fn scheduled_jobs_page(
        &self,
        job_type: Option<&str>,
        job_status: Option<&str>,
        continuation_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<QueryResult<JobResponse>> {
        let rest = self.rest();
        let count = page_size.map(|n| n.to_string());
        let count = count.as_deref();
        self.run(
            Op::new("query_scheduled_jobs", Idempotency::Safe),
            || async move {
                match rest
                    .jobs_query_scheduled_jobs(job_status, job_type, continuation_token, count)
                    .await
                {
                    Ok(rv) => {
                        let header = |name: &str| {
                            rv.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let item_type = header("x-ms-item-type");
                        let header_token = header("x-ms-continuation");
                        let (items, body_token, body_type) = match rv.into_inner() {
                            wire::JobQueryPage::Array(items) => (items, None, None),
                            wire::JobQueryPage::JobQueryResult(page) => {
                                (page.items, page.continuation_token, page.type_)
                            }
                        };
                        Ok(QueryResult {
                            item_type: item_type.or(body_type),
                            continuation_token: header_token
                                .filter(|t| !t.is_empty())
                                .or(body_token)
                                .filter(|t| !t.is_empty()),
                            items: items.into_iter().map(JobResponse::from).collect(),
                        })
                    }
                    Err(e) => Err(decode(e).await),
                }
            },
        )
        .await
    }
}

// ---- waiting -----------------------------------------------------------------------------

/// A wait for an import or export job to finish, ready to run: optionally set
/// [`poll_interval`](Self::poll_interval), [`timeout`](Self::timeout) and
/// [`on_progress`](Self::on_progress), then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
pub struct WaitForImportExportJobRequest<'a> {
    rm: &'a RegistryManager,
    job_id: String,
    poll: PollSettings,
    on_progress: Option<ProgressFn<'a, JobProperties>>,
}

/// A wait for a scheduled job to finish, ready to run: optionally set
/// [`poll_interval`](Self::poll_interval), [`timeout`](Self::timeout) and
/// [`on_progress`](Self::on_progress), then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
pub struct WaitForScheduledJobRequest<'a> {
    rm: &'a RegistryManager,
    job_id: String,
    poll: PollSettings,
    on_progress: Option<ProgressFn<'a, JobResponse>>,
}

/// The callback of a job wait.
type ProgressFn<'a, J> = Box<dyn FnMut(&J) + Send + 'a>;

#[derive(Debug, Clone, Copy)]
struct PollSettings {
    interval: Duration,
    timeout: Option<Duration>,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            interval: DEFAULT_JOB_POLL_INTERVAL,
            timeout: None,
        }
    }
}

macro_rules! wait_request {
    ($request:ident, $job:ty, $get:ident) => {
        impl fmt::Debug for $request<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($request))
                    .field("job_id", &self.job_id)
                    .field("poll_interval", &self.poll.interval)
                    .field("timeout", &self.poll.timeout)
                    .field("on_progress", &self.on_progress.is_some())
                    .finish_non_exhaustive()
            }
        }

        impl<'a> $request<'a> {
            /// Time between two reads of the job. Default [`DEFAULT_JOB_POLL_INTERVAL`] (5 s).
            /// Each read counts against the hub's jobs operations quota.
            pub fn poll_interval(mut self, interval: Duration) -> Self {
                self.poll.interval = interval;
                self
            }

            /// Gives up with [`Error::JobWaitTimeout`] when the job is not finished this long
            /// after the wait began (the job keeps running). The last read happens at the
            /// timeout, so the wait can last one read longer. Default: no timeout, wait as
            /// long as the job runs.
            pub fn timeout(mut self, timeout: Duration) -> Self {
                self.poll.timeout = Some(timeout);
                self
            }

            /// Called with the job after every read, the last (finished) one included, for
            /// example to draw progress. Runs on the waiting task: keep it short.
            pub fn on_progress(mut self, f: impl FnMut(&$job) + Send + 'a) -> Self {
                self.on_progress = Some(Box::new(f));
                self
            }

            /// Runs the wait (same as `.await`).
            ///
            /// # Errors
            ///
            /// [`Error::JobWaitTimeout`] when the timeout passes first;
            /// [`Error::InvalidRequest`] for a poll interval of zero (nothing is sent); and
            /// the errors of the read it repeats, once that read's retries are spent
            /// ([`Error::is_not_found`] for an unknown job id, ...).
            pub async fn send(self) -> Result<$job> {
                let rm = self.rm;
                let job_id = self.job_id;
                let id = job_id.as_str();
                wait_until_finished(id, self.poll, self.on_progress, || rm.$get(id).send()).await
            }
        }

        into_future!($request => $job);
    };
}

wait_request!(
    WaitForImportExportJobRequest,
    JobProperties,
    get_import_export_job
);
wait_request!(WaitForScheduledJobRequest, JobResponse, get_scheduled_job);

/// A job with a status: [`JobProperties`] and [`JobResponse`].
trait HasStatus {
    fn status(&self) -> &JobStatus;
}

impl HasStatus for JobProperties {
    fn status(&self) -> &JobStatus {
        &self.status
    }
}

impl HasStatus for JobResponse {
    fn status(&self) -> &JobStatus {
        &self.status
    }
}

/// Reads a job with `read` every `poll.interval` until its status is terminal.
async fn wait_until_finished<'a, J, F, Fut>(
    job_id: &str,
    poll: PollSettings,
    mut on_progress: Option<ProgressFn<'a, J>>,
    mut read: F,
) -> Result<J>
where
    J: HasStatus,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<J>>,
{
    if poll.interval.is_zero() {
        return Err(Error::InvalidRequest {
            message: "the poll interval of a job wait must be more than zero".into(),
        });
    }
    let start = Instant::now();
    let deadline = poll.timeout.and_then(|t| start.checked_add(t));
    loop {
        let job = read().await?;
        if let Some(report) = on_progress.as_mut() {
            report(&job);
        }
        let current = job.status();
        if current.is_terminal() {
            return Ok(job);
        }
        let pause = match deadline {
            None => poll.interval,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::JobWaitTimeout {
                        job_id: job_id.to_owned(),
                        status: current.clone(),
                        waited: start.elapsed(),
                    });
                }
                poll.interval.min(left)
            }
        };
        tracing::debug!(job_id, status = %current, "job not finished; waiting");
        tokio::time::sleep(pause).await;
    }
}

// ---- RegistryManager methods ------------------------------------------------------------

impl RegistryManager {
    /// Starts an import or export of the identity registry through blob storage
    /// (`POST /jobs/create`), as Python's `IoTHubJobManager.create_import_export_job`. Build
    /// `job` with [`JobProperties::export`] or [`JobProperties::import`]; the answer carries
    /// the `job_id` IoT Hub assigned, to pass to
    /// [`wait_for_import_export_job`](Self::wait_for_import_export_job).
    ///
    /// One import or export job runs at a time per hub; others wait as `enqueued` (quotas
    /// page). Not retried after a timeout or 503, since a repeat could start a second job.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager, sas_url: String) -> iothub_registry::Result<()> {
    /// use iothub_registry::{JobProperties, JobStatus};
    /// let job = rm
    ///     .create_import_export_job(JobProperties::export(sas_url).exclude_keys_in_export(true))
    ///     .await?;
    /// let done = rm
    ///     .wait_for_import_export_job(&job.job_id)
    ///     .on_progress(|job| eprintln!("{}: {}%", job.status, job.progress))
    ///     .await?;
    /// if done.status != JobStatus::Completed {
    ///     eprintln!("export {}: {:?}", done.status, done.failure_reason);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) for a malformed job (a missing
    /// or unusable container URI, an unknown type); IoT Hub's error when another import or
    /// export job is already running or the job quota is spent (`JobQuotaExceeded`, 403003,
    /// or throttling); [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs
    /// `RegistryReadWrite`, for an export as for an import),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. A SAS token IoT Hub cannot use usually surfaces later,
    /// as a `failed` job with a `failure_reason`.
    pub fn create_import_export_job(&self, job: JobProperties) -> CreateImportExportJobRequest<'_> {
        CreateImportExportJobRequest { rm: self, job }
    }

    /// Reads an import or export job with its status and progress (`GET /jobs/{id}`), as
    /// Python's `get_import_export_job`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`](crate::Error::InvalidRequest) for the ids `""`, `.` and `..`
    /// (nothing is sent); [`Error::is_not_found`](crate::Error::is_not_found) (`JobNotFound`,
    /// 404002; IoT Hub keeps finished jobs for 30 days, quotas page);
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_import_export_job(
        &self,
        job_id: impl Into<String>,
    ) -> GetImportExportJobRequest<'_> {
        GetImportExportJobRequest {
            rm: self,
            job_id: job_id.into(),
        }
    }

    /// Lists the hub's import and export jobs, running and finished in the last 30 days
    /// (`GET /jobs`), as Python's `get_import_export_jobs`. No paging.
    ///
    /// # Errors
    ///
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_import_export_jobs(&self) -> GetImportExportJobsRequest<'_> {
        GetImportExportJobsRequest { rm: self }
    }

    /// Cancels an import or export job (`DELETE /jobs/{id}`), as Python's
    /// `cancel_import_export_job`. IoT Hub answers 204, or 200 with a body that is not read;
    /// read the job to see it become `cancelled`. Identities an import already wrote stay
    /// written.
    ///
    /// # Errors
    ///
    /// As [`get_import_export_job`](Self::get_import_export_job).
    pub fn cancel_import_export_job(
        &self,
        job_id: impl Into<String>,
    ) -> CancelImportExportJobRequest<'_> {
        CancelImportExportJobRequest {
            rm: self,
            job_id: job_id.into(),
        }
    }

    /// Schedules a twin update or direct method on many devices under the id `job_id`
    /// (`PUT /jobs/v2/{id}`, with `jobId` in the body too), as Python's
    /// `create_scheduled_job`. Build `request` with [`JobRequest::update_twin`] or
    /// [`JobRequest::device_method`].
    ///
    /// Not retried after a timeout or 503: if the first attempt was applied, a repeat fails
    /// because the id is taken.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::{CloudToDeviceMethod, JobRequest};
    /// let request = JobRequest::device_method("tags.site = 'b4'", CloudToDeviceMethod::new("reboot"));
    /// rm.create_scheduled_job("reboot-b4", request).await?;
    /// let job = rm
    ///     .wait_for_scheduled_job("reboot-b4")
    ///     .on_progress(|job| {
    ///         if let Some(s) = job.device_job_statistics {
    ///             eprintln!("{}/{} done, {} failed", s.succeeded_count + s.failed_count, s.device_count, s.failed_count);
    ///         }
    ///     })
    ///     .await?;
    /// println!("{}", job.status);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`](crate::Error::InvalidRequest) for the ids `""`, `.` and `..`
    /// (nothing is sent); [`Error::is_bad_request`](crate::Error::is_bad_request) for a query
    /// condition IoT Hub cannot parse or a twin patch it refuses;
    /// [`Error::is_already_exists`](crate::Error::is_already_exists) or a 400 when the id is
    /// taken; a 429 (`ThrottlingMaxActiveJobCountExceeded`, 429004) or 403
    /// (`JobQuotaExceeded`) beyond the tier's concurrent jobs (quotas page);
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (needs `RegistryReadWrite`
    /// and `ServiceConnect`), [`Error::is_throttled`](crate::Error::is_throttled) once
    /// retries are spent, and the transport errors of every call.
    pub fn create_scheduled_job(
        &self,
        job_id: impl Into<String>,
        request: JobRequest,
    ) -> CreateScheduledJobRequest<'_> {
        CreateScheduledJobRequest {
            rm: self,
            job_id: job_id.into(),
            request,
        }
    }

    /// Reads a scheduled job with its status and device counts (`GET /jobs/v2/{id}`), as
    /// Python's `get_scheduled_job`. IoT Hub answers an unknown id with a job whose type and
    /// status are `unknown` ([`JobType::Unknown`], [`JobStatus::Unknown`]),
    /// not with an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`](crate::Error::InvalidRequest) for the ids `""`, `.` and `..`
    /// (nothing is sent);
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn get_scheduled_job(&self, job_id: impl Into<String>) -> ScheduledJobRequest<'_> {
        ScheduledJobRequest {
            rm: self,
            job_id: job_id.into(),
            cancel: false,
        }
    }

    /// Cancels a scheduled job (`POST /jobs/v2/{id}/cancel`, no body), as Python's
    /// `cancel_scheduled_job`, and returns the job as IoT Hub then reports it. Devices the job
    /// already reached keep what it did to them.
    ///
    /// # Errors
    ///
    /// As [`get_scheduled_job`](Self::get_scheduled_job).
    pub fn cancel_scheduled_job(&self, job_id: impl Into<String>) -> ScheduledJobRequest<'_> {
        ScheduledJobRequest {
            rm: self,
            job_id: job_id.into(),
            cancel: true,
        }
    }

    /// Lists scheduled jobs, optionally of one type and status
    /// (`GET /jobs/v2/query?jobType=&jobStatus=`), as Python's
    /// `query_scheduled_jobs(job_type, job_status)`. `.await` gives one page
    /// ([`QueryResult`] of [`JobResponse`]: pass its `continuation_token` back for the next);
    /// [`into_stream`](QueryScheduledJobsRequest::into_stream) gives every job.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use futures::TryStreamExt as _;
    /// use iothub_registry::{JobStatus, JobType};
    /// let mut running = rm
    ///     .query_scheduled_jobs()
    ///     .job_type(JobType::ScheduleDeviceMethod)
    ///     .job_status(JobStatus::Running)
    ///     .into_stream();
    /// while let Some(job) = running.try_next().await? {
    ///     println!("{} {:?}", job.job_id, job.device_job_statistics);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) for a type or status IoT Hub
    /// does not know; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. A stream yields the error and ends.
    pub fn query_scheduled_jobs(&self) -> QueryScheduledJobsRequest<'_> {
        QueryScheduledJobsRequest {
            rm: self,
            job_type: None,
            job_status: None,
            continuation_token: None,
            page_size: None,
        }
    }

    /// Reads an import or export job every
    /// [`poll_interval`](WaitForImportExportJobRequest::poll_interval) (default 5 s) until it
    /// is `completed`, `failed` or `cancelled`, and returns it as last read. A failed or
    /// cancelled job is a value, not an error: check `status` and `failure_reason`. Not in
    /// the Python SDK.
    ///
    /// Each read is [`get_import_export_job`](Self::get_import_export_job), with its retries.
    ///
    /// # Errors
    ///
    /// As [`WaitForImportExportJobRequest::send`]: [`Error::JobWaitTimeout`](crate::Error::JobWaitTimeout)
    /// after [`timeout`](WaitForImportExportJobRequest::timeout), or the error of a read.
    pub fn wait_for_import_export_job(
        &self,
        job_id: impl Into<String>,
    ) -> WaitForImportExportJobRequest<'_> {
        WaitForImportExportJobRequest {
            rm: self,
            job_id: job_id.into(),
            poll: PollSettings::default(),
            on_progress: None,
        }
    }

    /// Reads a scheduled job every [`poll_interval`](WaitForScheduledJobRequest::poll_interval)
    /// (default 5 s) until it is `completed`, `failed` or `cancelled`, and returns it as last
    /// read; [`JobResponse::device_job_statistics`] then says how many devices succeeded and
    /// failed. A failed or cancelled job is a value, not an error. Not in the Python SDK.
    ///
    /// Each read is [`get_scheduled_job`](Self::get_scheduled_job), with its retries.
    ///
    /// # Errors
    ///
    /// As [`WaitForScheduledJobRequest::send`]: [`Error::JobWaitTimeout`](crate::Error::JobWaitTimeout)
    /// after [`timeout`](WaitForScheduledJobRequest::timeout), or the error of a read.
    pub fn wait_for_scheduled_job(
        &self,
        job_id: impl Into<String>,
    ) -> WaitForScheduledJobRequest<'_> {
        WaitForScheduledJobRequest {
            rm: self,
            job_id: job_id.into(),
            poll: PollSettings::default(),
            on_progress: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_read_leniently() {
        let t = timestamp::parse("2024-05-06T07:08:09.1234567Z").unwrap();
        assert_eq!(timestamp::format(&t), "2024-05-06T07:08:09.123Z");
        assert_eq!(
            timestamp::parse("2024-05-06T07:08:09"),
            timestamp::parse("2024-05-06T07:08:09+00:00")
        );
        assert!(timestamp::parse("2024-05-06T09:08:09+02:00").is_some());
        assert_eq!(timestamp::parse("0001-01-01T00:00:00"), None);
        assert_eq!(timestamp::parse("0001-01-01T00:00:00Z"), None);
        assert_eq!(timestamp::parse(""), None);
        assert_eq!(timestamp::parse("Tue, 07 May 2024 10:00:00 GMT"), None);
    }

    #[test]
    fn enums_keep_unknown_values() {
        assert_eq!(JobStatus::from("COMPLETED"), JobStatus::Completed);
        assert_eq!(JobStatus::from("paused"), JobStatus::Other("paused".into()));
        assert_eq!(JobStatus::Other("paused".into()).to_string(), "paused");
        assert!(!JobStatus::Other("paused".into()).is_terminal());
        assert_eq!(
            serde_json::to_value(JobType::ScheduleDeviceMethod).unwrap(),
            json!("scheduleDeviceMethod")
        );
        assert_eq!(
            serde_json::from_value::<StorageAuthenticationType>(json!("identityBased")).unwrap(),
            StorageAuthenticationType::IdentityBased
        );
    }

    #[test]
    fn import_export_body_has_only_what_the_caller_set() {
        let mut job = JobProperties::import("https://a/in?sig=x", "https://a/out?sig=y")
            .input_blob_name("fleet.txt")
            .identity_based(ManagedIdentity::user_assigned("/subscriptions/s/id"));
        job.status = JobStatus::Running;
        job.progress = 40;
        job.failure_reason = Some("ignored".into());
        assert_eq!(
            serde_json::to_value(job.to_wire()).unwrap(),
            json!({"type": "import", "inputBlobContainerUri": "https://a/in?sig=x",
                   "outputBlobContainerUri": "https://a/out?sig=y", "inputBlobName": "fleet.txt",
                   "storageAuthenticationType": "identityBased",
                   "identity": {"userAssignedIdentity": "/subscriptions/s/id"}})
        );
    }

    #[test]
    fn our_serde_matches_the_wire() {
        let sent = json!({
            "jobId": "j1", "type": "export", "status": "running", "progress": 40,
            "outputBlobContainerUri": "https://a/out?sig=y", "excludeKeysInExport": true,
            "startTimeUtc": "2024-05-06T07:08:09.000Z"
        });
        let ours: JobProperties = serde_json::from_value(sent.clone()).unwrap();
        let wire: wire::JobProperties = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(JobProperties::from(wire), ours);
        assert_eq!(serde_json::to_value(&ours).unwrap(), sent);

        let sent = json!({
            "jobId": "j2", "type": "scheduleUpdateTwin", "status": "completed",
            "queryCondition": "deviceId = 'd1'", "createdTime": "2024-05-06T07:08:09.000Z",
            "maxExecutionTimeInSeconds": 3600,
            "updateTwin": {"etag": "*", "properties": {"desired": {"a": 1}}},
            "deviceJobStatistics": {"deviceCount": 1, "failedCount": 0, "succeededCount": 1,
                                    "runningCount": 0, "pendingCount": 0}
        });
        let ours: JobResponse = serde_json::from_value(sent.clone()).unwrap();
        let wire: wire::JobResponse = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(JobResponse::from(wire), ours);
        assert_eq!(serde_json::to_value(&ours).unwrap(), sent);
    }

    #[test]
    fn scheduled_bodies() {
        let start = timestamp::parse("2030-01-02T03:04:05Z").unwrap();
        let patch = TwinPatch::new().desired(json!({"interval": 30})).unwrap();
        let body = JobRequest::update_twin("deviceId = 'd1'", patch)
            .start_time(start)
            .max_execution_time(Duration::from_millis(1500))
            .to_wire("j1");
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"jobId": "j1", "type": "scheduleUpdateTwin", "queryCondition": "deviceId = 'd1'",
                   "startTime": "2030-01-02T03:04:05.000Z", "maxExecutionTimeInSeconds": 2,
                   "updateTwin": {"etag": "*", "properties": {"desired": {"interval": 30}}}})
        );
        let body = JobRequest::device_method("*", CloudToDeviceMethod::new("reboot")).to_wire("j2");
        let body = serde_json::to_value(body).unwrap();
        assert_eq!(body["maxExecutionTimeInSeconds"], 3600);
        assert_eq!(
            body["cloudToDeviceMethod"],
            json!({"methodName": "reboot", "payload": ""})
        );
        assert!(timestamp::parse(body["startTime"].as_str().unwrap()).is_some());
    }

    #[test]
    fn debug_hides_sas_tokens() {
        let mut job = JobProperties::import(
            "https://acct.blob.core.windows.net/in?sv=2022-11-02&sig=SU5QVVQ%3D",
            "https://acct.blob.core.windows.net/out?sv=2022-11-02&sig=T1VUUFVU",
        );
        job.failure_reason =
            Some("cannot read https://acct.blob.core.windows.net/in?sv=1&sig=SU5QVVQ%3D".into());
        for shown in [
            format!("{job:?}"),
            format!("{job:#?}"),
            format!("{:?}", job.to_wire()),
        ] {
            assert!(
                !shown.contains("SU5QVVQ") && !shown.contains("T1VUUFVU"),
                "{shown}"
            );
            assert!(
                shown.contains("https://acct.blob.core.windows.net/in?<redacted>"),
                "{shown}"
            );
        }
    }
}
