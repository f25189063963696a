//! Async Azure IoT Hub registry manager: the service-side API for device and module
//! identities, twins, queries, bulk registry operations, statistics, direct methods and jobs.
//!
//! [`RegistryManager`] has the methods of the Python SDK's `IoTHubRegistryManager`, under the
//! same snake_case names and with the same positional arguments, so code ports line by line.
//! Every method has one shape: it takes ids as `impl Into<String>` and returns a request
//! value; Python's optional keyword arguments are setters on that request, and `.await` (or
//! `.send().await`) runs it and gives a [`Result`]. Each call sends the same HTTP request
//! (method, path, `If-Match`, JSON body) as the Python SDK.
//!
//! | Python (`IoTHubRegistryManager`) | Rust (`RegistryManager`) | `.await` gives |
//! |---|---|---|
//! | `IoTHubRegistryManager.from_connection_string(cs)` | `RegistryManager::from_connection_string(cs)?` | (not async) [`RegistryManager`] |
//! | `IoTHubRegistryManager.from_token_credential(host, cred)` | `RegistryManager::from_token_credential(host, cred)?` | (not async) [`RegistryManager`] |
//! | `rm.create_device_with_sas(id, pk, sk, "enabled", iot_edge=True)` | `rm.create_device_with_sas(id, pk, sk, DeviceStatus::Enabled).iot_edge(true).await?` | [`Device`] |
//! | `rm.create_device_with_x509(id, t1, t2, "enabled")` | `rm.create_device_with_x509(id, t1, t2, DeviceStatus::Enabled).await?` | [`Device`] |
//! | `rm.create_device_with_certificate_authority(id, "enabled")` | `rm.create_device_with_certificate_authority(id, DeviceStatus::Enabled).await?` | [`Device`] |
//! | `rm.update_device_with_sas(id, etag, pk, sk, "disabled")` | `rm.update_device_with_sas(id, &etag, pk, sk, DeviceStatus::Disabled).await?` | [`Device`] |
//! | `rm.update_device_with_x509(id, etag, t1, t2, "enabled")` | `rm.update_device_with_x509(id, &etag, t1, t2, DeviceStatus::Enabled).await?` | [`Device`] |
//! | `rm.update_device_with_certificate_authority(id, etag, "enabled")` | `rm.update_device_with_certificate_authority(id, &etag, DeviceStatus::Enabled).await?` | [`Device`] |
//! | `rm.get_device(id)` | `rm.get_device(id).await?` | [`Device`] |
//! | `rm.get_devices(max_number_of_devices=10)` | `rm.get_devices().max_number_of_devices(10).await?` | `Vec<`[`Device`]`>` |
//! | `rm.delete_device(id, etag=e)` | `rm.delete_device(id).etag(&e).await?` | `()` |
//! | `rm.create_module_with_sas(id, mid, managed_by, pk, sk)` | `rm.create_module_with_sas(id, mid, managed_by, pk, sk).await?` | [`Module`] |
//! | `rm.create_module_with_x509(id, mid, managed_by, t1, t2)` | `rm.create_module_with_x509(id, mid, managed_by, t1, t2).await?` | [`Module`] |
//! | `rm.create_module_with_certificate_authority(id, mid, managed_by)` | `rm.create_module_with_certificate_authority(id, mid, managed_by).await?` | [`Module`] |
//! | `rm.update_module_with_sas(id, mid, managed_by, etag, pk, sk)` | `rm.update_module_with_sas(id, mid, managed_by, &etag, pk, sk).await?` | [`Module`] |
//! | `rm.update_module_with_x509(id, mid, managed_by, etag, t1, t2)` | `rm.update_module_with_x509(id, mid, managed_by, &etag, t1, t2).await?` | [`Module`] |
//! | `rm.update_module_with_certificate_authority(id, mid, managed_by, etag)` | `rm.update_module_with_certificate_authority(id, mid, managed_by, &etag).await?` | [`Module`] |
//! | `rm.get_module(id, mid)` | `rm.get_module(id, mid).await?` | [`Module`] |
//! | `rm.get_modules(id)` | `rm.get_modules(id).await?` | `Vec<`[`Module`]`>` |
//! | `rm.delete_module(id, mid, etag=e)` | `rm.delete_module(id, mid).etag(&e).await?` | `()` |
//! | `rm.get_twin(id)` | `rm.get_twin(id).await?` | [`Twin`] |
//! | `rm.update_twin(id, twin, etag)` | `rm.update_twin(id, patch).etag(&etag).await?` | [`Twin`] |
//! | `rm.replace_twin(id, twin, etag)` | `rm.replace_twin(id, patch).etag(&etag).await?` | [`Twin`] |
//! | `rm.get_module_twin(id, mid)` | `rm.get_module_twin(id, mid).await?` | [`Twin`] |
//! | `rm.update_module_twin(id, mid, twin, etag)` | `rm.update_module_twin(id, mid, patch).etag(&etag).await?` | [`Twin`] |
//! | `rm.replace_module_twin(id, mid, twin, etag)` | `rm.replace_module_twin(id, mid, patch).etag(&etag).await?` | [`Twin`] |
//! | `rm.query_iot_hub(QuerySpecification(query=q), token, 100)` | `rm.query_iot_hub(q).continuation_token(token).page_size(100).await?` | [`QueryResult`] |
//! | `rm.get_service_statistics()` | `rm.get_service_statistics().await?` | [`ServiceStatistics`] |
//! | `rm.get_device_registry_statistics()` | `rm.get_device_registry_statistics().await?` | [`RegistryStatistics`] |
//! | `rm.invoke_device_method(id, CloudToDeviceMethod(method_name="m"))` | `rm.invoke_device_method(id, CloudToDeviceMethod::new("m")).await?` | [`CloudToDeviceMethodResult`] |
//! | `rm.invoke_device_module_method(id, mid, CloudToDeviceMethod(method_name="m"))` | `rm.invoke_device_module_method(id, mid, CloudToDeviceMethod::new("m")).await?` | [`CloudToDeviceMethodResult`] |
//! | `rm.bulk_create_or_update_devices(devices)` | `rm.bulk_create_or_update_devices(&devices).await?` | [`BulkRegistryOperationResult`] |
//! | `cm.create_configuration(config)` (`IoTHubConfigurationManager`) | `rm.create_configuration(&config).await?` | [`Configuration`] |
//! | `cm.get_configuration(id)` | `rm.get_configuration(id).await?` | [`Configuration`] |
//! | `cm.get_configurations(max_count=5)` | `rm.get_configurations().max_count(5).await?` | `Vec<`[`Configuration`]`>` |
//! | `cm.update_configuration(config, etag)` | `rm.update_configuration(&config, &etag).await?` | [`Configuration`] |
//! | `cm.delete_configuration(id, etag=e)` | `rm.delete_configuration(id).etag(&e).await?` | `()` |
//! | `cm.test_configuration_queries(input)` | `rm.test_configuration_queries(&input).await?` | [`ConfigurationQueriesTestResponse`] |
//! | `cm.apply_configuration_on_edge_device(id, content)` | `rm.apply_configuration_on_edge_device(id, &content).await?` | `()` |
//! | `jm.create_import_export_job(JobProperties(type="export", output_blob_container_uri=u))` (`IoTHubJobManager`) | `rm.create_import_export_job(JobProperties::export(u)).await?` | [`JobProperties`] |
//! | `jm.get_import_export_job(job_id)` | `rm.get_import_export_job(job_id).await?` | [`JobProperties`] |
//! | `jm.get_import_export_jobs()` | `rm.get_import_export_jobs().await?` | `Vec<`[`JobProperties`]`>` |
//! | `jm.cancel_import_export_job(job_id)` | `rm.cancel_import_export_job(job_id).await?` | `()` |
//! | `jm.create_scheduled_job(job_id, JobRequest(...))` | `rm.create_scheduled_job(job_id, JobRequest::device_method(cond, method)).await?` | [`JobResponse`] |
//! | `jm.get_scheduled_job(job_id)` | `rm.get_scheduled_job(job_id).await?` | [`JobResponse`] |
//! | `jm.cancel_scheduled_job(job_id)` | `rm.cancel_scheduled_job(job_id).await?` | [`JobResponse`] |
//! | `jm.query_scheduled_jobs(job_type, job_status)` | `rm.query_scheduled_jobs().job_type(t).job_status(s).await?` | [`QueryResult`]`<`[`JobResponse`]`>` |
//! | (not in Python) | `rm.wait_for_import_export_job(job_id).on_progress(f).await?` / `rm.wait_for_scheduled_job(job_id)` | [`JobProperties`] / [`JobResponse`] |
//! | (Azure CLI `renew-key`; api-version 2024-03-31) | `rm.bulk_regenerate_device_keys(RegenerateKeyPolicy::Both, targets).await?` | [`BulkRegenerateKeyResult`] |
//! | `rm.send_c2d_message(id, message, properties)` | `rm.send_c2d_message(id, message, properties).await?` (feature `c2d`, on by default) | `()` |
//!
//! Beyond Python: [`query_as`](RegistryManager::query_as) decodes query items into your own
//! type; [`QueryRequest::into_stream`] and [`QueryRequest::pages`] follow continuation
//! tokens; [`bulk_create_or_update_devices_chunked`](RegistryManager::bulk_create_or_update_devices_chunked)
//! takes any number of bulk entries. In the table, `etag` is an [`ETag`] (for example
//! `device.etag` from a read), `patch` a [`TwinPatch`], statuses a [`DeviceStatus`] and
//! `managed_by` an `Option<&str>`.
//!
//! # Connecting
//!
//! ```no_run
//! # async fn run() -> iothub_registry::Result<()> {
//! use std::time::Duration;
//! use iothub_registry::{RegistryManager, RetryPolicy};
//!
//! // Defaults: retries on, 30 s per attempt, SAS tokens renewed before expiry.
//! let rm = RegistryManager::from_connection_string(
//!     "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=...",
//! )?;
//!
//! // Options, for example against the local emulator (its HostName carries a port).
//! let rm = RegistryManager::builder()
//!     .connection_string(&std::env::var("IOTHUB_CONNECTION_STRING").unwrap())
//!     .add_root_certificate_file("ca.pem")
//!     .retry_policy(RetryPolicy::default().with_max_attempts(5))
//!     .attempt_timeout(Duration::from_secs(10))
//!     .build()?;
//! # let _ = rm; Ok(()) }
//! ```
//!
//! With the `token-credential` feature (on by default),
//! [`RegistryManager::from_token_credential`] takes an Azure AD `TokenCredential` instead.
//! Clones of a `RegistryManager` share one connection pool.
//!
//! # Devices and modules
//!
//! Writes that take an ETag take an [`ETag`], never a string, so an ETag and a key cannot
//! be swapped. An unconditional write says so: [`ETag::any()`], or no `.etag(..)` call on a
//! delete or twin write.
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::{DeviceStatus, ETag};
//!
//! let device = rm.create_device_with_sas("dev1", "", "", DeviceStatus::Enabled).await?;
//! let device = rm
//!     .update_device_with_sas("dev1", &device.etag, "", "", DeviceStatus::Disabled)
//!     .status_reason("maintenance")
//!     .await?;
//! match rm.update_device_with_sas("dev1", ETag::new("stale"), "", "", DeviceStatus::Enabled).await {
//!     Err(e) if e.is_precondition_failed() => println!("someone else changed dev1"),
//!     other => { other?; }
//! }
//! rm.create_module_with_sas("dev1", "mod1", Some("me"), "", "").await?;
//! for module in rm.get_modules("dev1").await? {
//!     println!("{}/{}", module.device_id, module.module_id);
//! }
//! rm.delete_module("dev1", "mod1").await?;
//! rm.delete_device("dev1").etag(&device.etag).await?;
//! assert!(rm.get_device("dev1").await.unwrap_err().is_not_found());
//! # Ok(()) }
//! ```
//!
//! # Twins
//!
//! [`Twin`] is what IoT Hub returns; a write sends a [`TwinPatch`], built from tags and
//! desired properties given as any `Serialize` value, so reported properties and read-only
//! fields cannot be sent back by accident.
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::TwinPatch;
//! use serde_json::json;
//!
//! let twin = rm.get_twin("dev1").await?;
//! let patch = TwinPatch::new()
//!     .tags(json!({"site": {"building": 4, "floor": 2}}))?
//!     .desired(json!({"interval": 30}))?;
//! let twin = rm.update_twin("dev1", patch).etag(&twin.etag).await?;
//! println!("desired now {:?}, reported {:?}", twin.desired(), twin.reported());
//! # Ok(()) }
//! ```
//!
//! # Queries
//!
//! [`RegistryManager::query_iot_hub`] returns one page when awaited, like Python, and turns
//! into a lazy stream of every twin with [`into_stream`](QueryRequest::into_stream) (or of
//! every page with [`pages`](QueryRequest::pages)); [`RegistryManager::query_as`] does the
//! same for projections and aggregates, decoded into your own type:
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use futures::TryStreamExt as _;
//! let mut twins = rm
//!     .query_iot_hub("SELECT * FROM devices WHERE status = 'enabled'")
//!     .page_size(200)
//!     .into_stream();
//! while let Some(twin) = twins.try_next().await? {
//!     println!("{:?}", twin.device_id);
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct PerStatus { status: String, n: u64 }
//! let counts = rm
//!     .query_as::<PerStatus>("SELECT status, COUNT() AS n FROM devices GROUP BY status")
//!     .await?;
//! for row in counts.items {
//!     println!("{}: {}", row.status, row.n);
//! }
//! # Ok(()) }
//! ```
//!
//! # Bulk registry operations
//!
//! [`RegistryManager::bulk_create_or_update_devices`] sends one `POST /devices` (IoT Hub
//! accepts at most 100 entries). [`RegistryManager::bulk_create_or_update_devices_chunked`]
//! takes any number, splits them into requests of 100, runs a few at once, retries throttled
//! chunks, and returns one [`ChunkedBulkResult`] with every per-device error, reporting
//! [`BulkProgress`] as it goes. (IoT Hub's import/export *jobs*, which go through blob
//! storage, are a different feature: see [Jobs](#jobs).)
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::{AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode};
//! let devices = (0..1000).map(|i| ExportImportDevice {
//!     id: format!("sensor-{i}"),
//!     import_mode: Some(ImportMode::CreateOrUpdate),
//!     status: Some(DeviceStatus::Enabled),
//!     authentication: Some(AuthenticationMechanism::sas("", "")),
//!     ..Default::default()
//! });
//! let (tx, rx) = tokio::sync::watch::channel(Default::default());
//! let outcome = rm.bulk_create_or_update_devices_chunked(devices).progress_channel(tx).await?;
//! println!("{} requests, ok={}, last progress {:?}", outcome.requests, outcome.is_successful(), *rx.borrow());
//! # Ok(()) }
//! ```
//!
//! # Jobs
//!
//! Import and export jobs move the whole identity registry to or from blob storage, given
//! container URIs with SAS tokens (kept out of `Debug` output, logs and error text); scheduled
//! jobs update twins or invoke a direct method on every device a query condition selects.
//! Both run on IoT Hub: the `wait_for_*` methods poll one until it finishes.
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager, container_sas_url: String) -> iothub_registry::Result<()> {
//! use std::time::Duration;
//! use iothub_registry::{CloudToDeviceMethod, JobProperties, JobRequest};
//!
//! let export = rm.create_import_export_job(JobProperties::export(container_sas_url)).await?;
//! let export = rm
//!     .wait_for_import_export_job(&export.job_id)
//!     .poll_interval(Duration::from_secs(2))
//!     .on_progress(|job| eprintln!("export {}: {}%", job.status, job.progress))
//!     .await?;
//! println!("export {}", export.status);
//!
//! let reboot = JobRequest::device_method("tags.site = 'b4'", CloudToDeviceMethod::new("reboot"));
//! rm.create_scheduled_job("reboot-b4", reboot).await?;
//! let job = rm.wait_for_scheduled_job("reboot-b4").timeout(Duration::from_secs(600)).await?;
//! println!("{} {:?}", job.status, job.device_job_statistics);
//! # Ok(()) }
//! ```
//!
//! # Direct methods and statistics
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::CloudToDeviceMethod;
//! let call = CloudToDeviceMethod::new("reboot").response_timeout_in_seconds(10);
//! if let Err(e) = rm.invoke_device_method("dev1", &call).await {
//!     assert!(e.is_device_not_online() && !e.is_not_found());
//! }
//! let stats = rm.get_device_registry_statistics().await?;
//! println!("{} devices, {} connected", stats.total_device_count,
//!          rm.get_service_statistics().await?.connected_device_count);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every call returns [`Result`], and every method's docs have an `# Errors` section naming
//! the checks that apply. IoT Hub's answers become [`Error::Service`] with a
//! [`ServiceError`]: HTTP status, [`ErrorCode`] (name such as `DeviceNotFound` and number such
//! as 404001), message, tracking id and `Retry-After`. Helpers such as
//! [`Error::is_not_found`], [`Error::is_already_exists`], [`Error::is_precondition_failed`],
//! [`Error::is_throttled`] and [`Error::is_device_not_online`] save comparing codes by hand;
//! `is_not_found` is false for an offline device (404103). A credential that cannot produce
//! a token is [`Error::Auth`], with the credential's error as its source. Keys and tokens
//! never appear in errors, `Debug` output or logs.
//!
//! # Retries
//!
//! Each call is retried under the client's [`RetryPolicy`] (default: 10 attempts, exponential
//! backoff from 200 ms to 10 s with jitter, 2 minute deadline, `Retry-After` honoured), with a
//! per-attempt timeout (default 30 s). What is retried depends on whether repeating the
//! request is safe:
//!
//! | Outcome | Reads, queries, deletes, updates with `If-Match`, twin PATCH/PUT, upsert-only bulk | Creates (PUT without `If-Match`), direct methods, other bulk requests |
//! |---|---|---|
//! | 429 (`ThrottlingException`, 429001–429005) | retried | retried (a throttled request is not applied) |
//! | connection could not be made | retried | retried (nothing was sent) |
//! | 503, 504, timeout, connection lost mid-request | retried | **not** retried: the first attempt may have been applied, and a repeat would fail with `DeviceAlreadyExists` or run the method twice |
//! | anything else (400, 401, 404, 409, 412, 500, ...) | not retried | not retried |
//!
//! A retried conditional update or delete whose first attempt did land reports
//! `PreconditionFailed` or `NotFound`. Use [`RetryPolicy::disabled`] (on the builder, or
//! per call with [`RegistryManager::with_retry_policy`]) to turn retries off.
//!
//! # Tracing
//!
//! Every operation runs in an `iothub.registry` span with the operation name, device id,
//! module id, job id and attempt number, and logs its outcome and retries at `debug` level.
//!
//! # Model types
//!
//! The public types in this crate are its own, converted from the code generated in
//! `iothub-rest`, so that regenerating that client cannot break users. IoT Hub's vocabulary
//! ([`ErrorCode`], [`DeviceStatus`], [`AuthenticationType`], [`ImportMode`], [`ETag`],
//! [`MAX_BULK_DEVICES`]) is defined once in `iothub-core`, shared with the other iothub-rs
//! crates, and re-exported here.

#![deny(missing_docs)]

mod bulk;
#[cfg(feature = "c2d")]
mod c2d;
mod client;
mod configurations;
mod devices;
mod error;
mod jobs;
mod methods;
mod model;
mod modules;
mod operation;
mod query;
mod retry;
mod statistics;
mod twins;

pub use bulk::{
    BulkProgress, BulkRequest, ChunkedBulkRequest, ChunkedBulkResult, FailedChunk, MAX_BULK_DEVICES,
};
#[cfg(feature = "c2d")]
pub use c2d::SendC2dMessageRequest;
pub use client::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, RegistryManager, RegistryManagerBuilder,
};
pub use configurations::{
    ApplyConfigurationRequest, BulkRegenerateKeyResult, Configuration, ConfigurationContent,
    ConfigurationMetrics, ConfigurationQueriesTestInput, ConfigurationQueriesTestResponse,
    ConfigurationRequest, DeleteConfigurationRequest, GetConfigurationRequest,
    GetConfigurationsRequest, KeyRegenerationTarget, RegenerateKeyError, RegenerateKeyPolicy,
    RegenerateKeysRequest, RotatedKeys, TestConfigurationQueriesRequest,
};
pub use devices::{DeleteDeviceRequest, DeviceRequest, GetDeviceRequest, GetDevicesRequest};
pub use error::{ConfigError, Error, ErrorCode, Result, ServiceError};
/// The credential error kept as the source of [`Error::Auth`].
pub use iothub_auth::AuthError;
pub use jobs::{
    CancelImportExportJobRequest, CreateImportExportJobRequest, CreateScheduledJobRequest,
    DEFAULT_JOB_POLL_INTERVAL, DEFAULT_MAX_EXECUTION_TIME, DeviceJobStatistics,
    GetImportExportJobRequest, GetImportExportJobsRequest, JobProperties, JobRequest, JobResponse,
    JobStatus, JobType, ManagedIdentity, QueryScheduledJobsRequest, ScheduledJobRequest,
    StorageAuthenticationType, WaitForImportExportJobRequest, WaitForScheduledJobRequest,
};
pub use methods::InvokeMethodRequest;
pub use model::{
    AuthenticationMechanism, AuthenticationType, BulkRegistryOperationResult, CloudToDeviceMethod,
    CloudToDeviceMethodResult, Device, DeviceCapabilities, DeviceRegistryOperationError,
    DeviceRegistryOperationWarning, DeviceStatus, ETag, ExportImportDevice, ImportMode, JsonObject,
    Module, QueryResult, QuerySpecification, RegistryStatistics, ServiceStatistics, SymmetricKey,
    Twin, TwinProperties, UnknownValue, X509Thumbprint,
};
pub use modules::{DeleteModuleRequest, GetModuleRequest, GetModulesRequest, ModuleRequest};
pub use query::{QueryPages, QueryRequest, QueryStream};
pub use retry::RetryPolicy;
pub use statistics::{RegistryStatisticsRequest, ServiceStatisticsRequest};
pub use twins::{GetTwinRequest, TwinPatch, TwinPatchError, TwinRequest};
