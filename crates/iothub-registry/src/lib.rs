//! Async Azure IoT Hub registry manager: the service-side API for device and module
//! identities, twins, queries, bulk registry operations, statistics and direct methods.
//!
//! [`RegistryManager`] has the methods of the Python SDK's `IoTHubRegistryManager`, under the
//! same snake_case names, so code ports line by line. Python's optional keyword arguments
//! become calls on the returned request before `.await`, statuses, authentication kinds and
//! import modes are enums, and twins keep arbitrary nested JSON (`serde_json`). Each call
//! sends the same HTTP request (method, path, `If-Match`, JSON body) as the Python SDK.
//!
//! | Python | Rust |
//! |---|---|
//! | `IoTHubRegistryManager.from_connection_string(cs)` | [`RegistryManager::from_connection_string`]`(cs)?` |
//! | `rm.create_device_with_sas(id, pk, sk, "enabled", iot_edge=True)` | `rm.create_device_with_sas(id, pk, sk, DeviceStatus::Enabled).iot_edge(true).await?` |
//! | `rm.update_device_with_sas(id, etag, pk, sk, "disabled")` | `rm.update_device_with_sas(id, etag, pk, sk, DeviceStatus::Disabled).await?` |
//! | `rm.delete_device(id, etag=e)` | `rm.delete_device(id).etag(e).await?` |
//! | `rm.update_twin(id, twin, etag)` | `rm.update_twin(id, &twin).etag(etag).await?` |
//! | `rm.query_iot_hub(QuerySpecification(query=q), token, 100)` | `rm.query_iot_hub(q).continuation_token(token).max_item_count(100).await?` |
//! | `rm.invoke_device_method(id, CloudToDeviceMethod(method_name="m"))` | `rm.invoke_device_method(id, &CloudToDeviceMethod::new("m")).await?` |
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
//!     .retry_policy(RetryPolicy::default().max_attempts(5))
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
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::{DeviceStatus, ETag};
//!
//! let device = rm.create_device_with_sas("dev1", "", "", DeviceStatus::Enabled).await?;
//! let device = rm
//!     .update_device_with_sas("dev1", &device.etag, "", "", DeviceStatus::Disabled)
//!     .status_reason("maintenance")
//!     .await?;
//! match rm.update_device_with_sas("dev1", "stale-etag", "", "", DeviceStatus::Enabled).await {
//!     Err(e) if e.is_precondition_failed() => println!("someone else changed dev1"),
//!     other => { other?; }
//! }
//! rm.create_module_with_sas("dev1", "mod1", Some("me"), "", "").await?;
//! for module in rm.get_modules("dev1").await? {
//!     println!("{}/{}", module.device_id, module.module_id);
//! }
//! rm.delete_module("dev1", "mod1").await?;
//! rm.delete_device("dev1").etag(device.etag).await?;
//! assert!(rm.get_device("dev1").await.unwrap_err().is_not_found());
//! # let _ = ETag::any(); Ok(()) }
//! ```
//!
//! # Twins
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::Twin;
//! use serde_json::json;
//!
//! let twin = rm.get_twin("dev1").await?;
//! let patch = Twin::from_json(json!({
//!     "tags": {"site": {"building": 4, "floor": 2}},
//!     "properties": {"desired": {"interval": 30}},
//! })).expect("valid twin JSON");
//! let twin = rm.update_twin("dev1", &patch).etag(twin.etag).await?;
//! println!("desired now {:?}", twin.desired());
//! # Ok(()) }
//! ```
//!
//! # Queries
//!
//! [`RegistryManager::query_iot_hub`] returns one page, like Python;
//! [`RegistryManager::query`] is a lazy [`Stream`](futures::Stream) over every twin that
//! follows continuation tokens itself:
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use futures::TryStreamExt as _;
//! let mut twins = rm.query("SELECT * FROM devices WHERE status = 'enabled'").page_size(200);
//! while let Some(twin) = twins.try_next().await? {
//!     println!("{:?}", twin.device_id);
//! }
//! # Ok(()) }
//! ```
//!
//! # Bulk operations
//!
//! [`RegistryManager::bulk_create_or_update_devices`] sends one request (IoT Hub accepts at
//! most 100 entries). [`RegistryManager::bulk_create_or_update_devices_chunked`] takes any
//! number, splits them into requests of 100, runs a few at once, retries throttled chunks, and
//! returns one [`BulkImportResult`] with every per-device error, reporting [`BulkProgress`] as
//! it goes.
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) {
//! use iothub_registry::{AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode};
//! let devices = (0..1000).map(|i| ExportImportDevice {
//!     id: format!("sensor-{i}"),
//!     import_mode: Some(ImportMode::CreateOrUpdate),
//!     status: Some(DeviceStatus::Enabled),
//!     authentication: Some(AuthenticationMechanism::sas("", "")),
//!     ..Default::default()
//! });
//! let (tx, rx) = tokio::sync::watch::channel(Default::default());
//! let outcome = rm.bulk_create_or_update_devices_chunked(devices).progress_channel(tx).await;
//! println!("{} requests, ok={}, last progress {:?}", outcome.requests, outcome.is_successful(), *rx.borrow());
//! # }
//! ```
//!
//! # Direct methods and statistics
//!
//! ```no_run
//! # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
//! use iothub_registry::CloudToDeviceMethod;
//! let call = CloudToDeviceMethod::new("reboot").response_timeout_in_seconds(10);
//! if let Err(e) = rm.invoke_device_method("dev1", &call).await {
//!     assert!(e.is_device_not_online());
//! }
//! let stats = rm.get_device_registry_statistics().await?;
//! println!("{} devices, {} connected", stats.total_device_count,
//!          rm.get_service_statistics().await?.connected_device_count);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every call returns [`Result`]. IoT Hub's answers become [`Error::Service`] with a
//! [`ServiceError`]: HTTP status, [`ErrorCode`] (name such as `DeviceNotFound` and number such
//! as 404001), message, tracking id and `Retry-After`. Helpers such as
//! [`Error::is_not_found`], [`Error::is_precondition_failed`], [`Error::is_throttled`] and
//! [`Error::is_device_not_online`] save comparing codes by hand. Keys and tokens never appear
//! in errors, `Debug` output or logs.
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
//! module id and attempt number, and logs its outcome and retries at `debug` level.
//!
//! # Model types
//!
//! The public types in this crate are its own, converted from the code generated in
//! `iothub-rest`, so that regenerating that client cannot break users.

#![deny(missing_docs)]

mod bulk;
mod client;
mod devices;
mod error;
mod methods;
mod model;
mod modules;
mod query;
mod retry;
mod twins;

pub use bulk::{BulkImport, BulkImportResult, BulkProgress, FailedChunk, MAX_BULK_DEVICES};
pub use client::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, RegistryManager, RegistryManagerBuilder,
};
pub use devices::{DeleteRequest, DeviceRequest};
pub use error::{ConfigError, Error, ErrorCode, Result, ServiceError};
pub use model::{
    AuthenticationMechanism, AuthenticationType, BulkRegistryOperationResult, CloudToDeviceMethod,
    CloudToDeviceMethodResult, Device, DeviceCapabilities, DeviceRegistryOperationError,
    DeviceRegistryOperationWarning, DeviceStatus, ETag, ExportImportDevice, ImportMode, JsonObject,
    Module, QueryResult, QuerySpecification, RegistryStatistics, ServiceStatistics, SymmetricKey,
    Twin, TwinProperties, UnknownValue, X509Thumbprint,
};
pub use query::{Query, QueryItem, QueryRequest};
pub use retry::RetryPolicy;
pub use twins::TwinRequest;
