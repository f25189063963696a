//! Bulk registry operations: one request of at most 100 entries (Python's
//! `bulk_create_or_update_devices`), or any number of entries split into concurrent chunks.

use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt as _};
use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::client::{Op, decode_with};
use crate::error::{Error, Result, ServiceError};
use crate::model::{BulkRegistryOperationResult, ExportImportDevice};
use crate::retry::Idempotency;

/// The most entries IoT Hub accepts in one bulk request.
pub const MAX_BULK_DEVICES: usize = 100;

/// Progress of a chunked bulk operation, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BulkProgress {
    /// Entries whose chunk has finished (successfully or not).
    pub done: usize,
    /// All entries.
    pub total: usize,
    /// Entries that failed so far.
    pub failed: usize,
}

/// A chunk that failed as a whole (for example it was still throttled when the retry policy
/// gave up). None of its entries is known to have been applied.
#[derive(Debug)]
#[non_exhaustive]
pub struct FailedChunk {
    /// The device ids of the chunk's entries, in request order.
    pub device_ids: Vec<String>,
    /// Why the chunk failed.
    pub error: Error,
}

/// The aggregated outcome of a chunked bulk operation.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BulkImportResult {
    /// Per-entry errors and warnings from every chunk that IoT Hub processed;
    /// `is_successful` is true only if every entry of every chunk succeeded.
    pub result: BulkRegistryOperationResult,
    /// Chunks that failed as a whole.
    pub failed_chunks: Vec<FailedChunk>,
    /// Bulk requests that completed (one per processed chunk).
    pub requests: usize,
}

impl BulkImportResult {
    /// True when every entry succeeded.
    pub fn is_successful(&self) -> bool {
        self.result.is_successful && self.failed_chunks.is_empty()
    }

    /// Ids of every entry that failed, per-entry errors and failed chunks alike.
    pub fn failed_device_ids(&self) -> Vec<&str> {
        self.result
            .errors
            .iter()
            .map(|e| e.device_id.as_str())
            .chain(
                self.failed_chunks
                    .iter()
                    .flat_map(|c| c.device_ids.iter().map(String::as_str)),
            )
            .collect()
    }
}

/// Repeating a bulk request is harmless only when no entry creates or deletes.
fn idempotency(devices: &[wire::ExportImportDevice]) -> Idempotency {
    let safe = devices.iter().all(|d| {
        matches!(
            d.import_mode,
            None | Some(
                wire::ImportMode::CreateOrUpdate
                    | wire::ImportMode::Update
                    | wire::ImportMode::UpdateTwin
            )
        )
    });
    if safe {
        Idempotency::Safe
    } else {
        Idempotency::Unsafe
    }
}

type ProgressFn = Arc<dyn Fn(BulkProgress) + Send + Sync>;

impl RegistryManager {
    /// Creates, updates or deletes up to 100 identities in one request (`POST /devices`),
    /// each entry selecting its [`ImportMode`](crate::ImportMode). Like the Python SDK, a partial failure
    /// (HTTP 400 with a result body) is returned as `Ok` with `is_successful == false` and
    /// one error per failed entry; more than 100 entries are sent as is and IoT Hub answers
    /// `TooManyDevices` (413002). Use
    /// [`bulk_create_or_update_devices_chunked`](Self::bulk_create_or_update_devices_chunked)
    /// for any number of entries.
    pub async fn bulk_create_or_update_devices(
        &self,
        devices: &[ExportImportDevice],
    ) -> Result<BulkRegistryOperationResult> {
        let body: Vec<wire::ExportImportDevice> = devices.iter().map(Into::into).collect();
        self.bulk_request(&body).await
    }

    async fn bulk_request(
        &self,
        body: &Vec<wire::ExportImportDevice>,
    ) -> Result<BulkRegistryOperationResult> {
        let rest = self.rest();
        self.run(
            Op::new("bulk_create_or_update_devices", idempotency(body)),
            || async move {
                match rest.bulk_registry_update_registry(body).await {
                    Ok(rv) => Ok(rv.into_inner().into()),
                    Err(progenitor_client::Error::ErrorResponse(rv)) => {
                        let status = rv.status().as_u16();
                        let headers = rv.headers().clone();
                        let result = rv.into_inner();
                        if result.is_successful.is_some() || !result.errors.is_empty() {
                            Ok(result.into())
                        } else {
                            // A 400 without a result body: decode what the headers say.
                            Err(Error::Service(ServiceError::from_parts(
                                status, &headers, b"",
                            )))
                        }
                    }
                    Err(e) => Err(decode_with(e, |rv| {
                        let status = rv.status().as_u16();
                        Error::Service(ServiceError::from_parts(status, rv.headers(), b""))
                    })
                    .await),
                }
            },
        )
        .await
    }

    /// Applies any number of bulk entries: splits them into requests of at most 100,
    /// runs a bounded number concurrently (each retried per the retry policy; throttling is
    /// always retried), and aggregates every per-entry error into one result.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) {
    /// use iothub_registry::{AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode};
    /// let devices = (0..250).map(|i| ExportImportDevice {
    ///     id: format!("sensor-{i:04}"),
    ///     import_mode: Some(ImportMode::Create),
    ///     status: Some(DeviceStatus::Enabled),
    ///     authentication: Some(AuthenticationMechanism::sas("", "")),
    ///     ..Default::default()
    /// });
    /// let outcome = rm
    ///     .bulk_create_or_update_devices_chunked(devices)
    ///     .concurrency(4)
    ///     .on_progress(|p| eprintln!("{}/{} ({} failed)", p.done, p.total, p.failed))
    ///     .await;
    /// for id in outcome.failed_device_ids() {
    ///     eprintln!("failed: {id}");
    /// }
    /// # }
    /// ```
    pub fn bulk_create_or_update_devices_chunked(
        &self,
        devices: impl IntoIterator<Item = ExportImportDevice>,
    ) -> BulkImport<'_> {
        BulkImport {
            rm: self,
            devices: devices.into_iter().collect(),
            chunk_size: MAX_BULK_DEVICES,
            concurrency: 4,
            progress: None,
        }
    }
}

/// A chunked bulk operation, ready to run: set options, then `.await` it.
#[must_use = "a request does nothing until it is awaited"]
pub struct BulkImport<'a> {
    rm: &'a RegistryManager,
    devices: Vec<ExportImportDevice>,
    chunk_size: usize,
    concurrency: usize,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for BulkImport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkImport")
            .field("devices", &self.devices.len())
            .field("chunk_size", &self.chunk_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl BulkImport<'_> {
    /// Entries per request, 1 to 100 (defaults to 100).
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = size.clamp(1, MAX_BULK_DEVICES);
        self
    }

    /// Requests in flight at once (defaults to 4; at least 1).
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// Calls `f` after each chunk with the running totals.
    pub fn on_progress(mut self, f: impl Fn(BulkProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Publishes the running totals on a `watch` channel after each chunk.
    pub fn progress_channel(self, sender: tokio::sync::watch::Sender<BulkProgress>) -> Self {
        self.on_progress(move |p| {
            sender.send_replace(p);
        })
    }

    /// Runs the operation (same as `.await`).
    pub async fn send(self) -> BulkImportResult {
        let total = self.devices.len();
        let chunks: Vec<Vec<wire::ExportImportDevice>> = self
            .devices
            .chunks(self.chunk_size)
            .map(|c| c.iter().map(Into::into).collect())
            .collect();
        let done = AtomicUsize::new(0);
        let failed = AtomicUsize::new(0);
        let rm = self.rm;
        let progress = self.progress.clone();
        let (done, failed) = (&done, &failed);
        let outcomes: Vec<(
            Vec<wire::ExportImportDevice>,
            Result<BulkRegistryOperationResult>,
        )> = stream::iter(chunks)
            .map(|chunk| {
                let progress = progress.clone();
                async move {
                    let outcome = rm.bulk_request(&chunk).await;
                    let chunk_failed = match &outcome {
                        Ok(r) => r.errors.len(),
                        Err(_) => chunk.len(),
                    };
                    let d = done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
                    let f = failed.fetch_add(chunk_failed, Ordering::Relaxed) + chunk_failed;
                    if let Some(progress) = &progress {
                        progress(BulkProgress {
                            done: d,
                            total,
                            failed: f,
                        });
                    }
                    (chunk, outcome)
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut aggregate = BulkImportResult {
            result: BulkRegistryOperationResult {
                is_successful: true,
                ..Default::default()
            },
            ..Default::default()
        };
        for (chunk, outcome) in outcomes {
            match outcome {
                Ok(r) => {
                    aggregate.requests += 1;
                    aggregate.result.is_successful &= r.is_successful && r.errors.is_empty();
                    aggregate.result.errors.extend(r.errors);
                    aggregate.result.warnings.extend(r.warnings);
                }
                Err(error) => {
                    aggregate.result.is_successful = false;
                    aggregate.failed_chunks.push(FailedChunk {
                        device_ids: chunk.into_iter().filter_map(|d| d.id).collect(),
                        error,
                    });
                }
            }
        }
        aggregate
    }
}

impl<'a> IntoFuture for BulkImport<'a> {
    type Output = BulkImportResult;
    type IntoFuture = BoxFuture<'a, BulkImportResult>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: Option<wire::ImportMode>) -> wire::ExportImportDevice {
        wire::ExportImportDevice {
            import_mode: mode,
            ..Default::default()
        }
    }

    #[test]
    fn only_upserts_and_updates_are_repeatable() {
        use wire::ImportMode as M;
        assert_eq!(
            idempotency(&[
                entry(None),
                entry(Some(M::CreateOrUpdate)),
                entry(Some(M::UpdateTwin))
            ]),
            Idempotency::Safe
        );
        for mode in [
            M::Create,
            M::Delete,
            M::DeleteIfMatchETag,
            M::UpdateIfMatchETag,
        ] {
            assert_eq!(
                idempotency(&[entry(None), entry(Some(mode))]),
                Idempotency::Unsafe
            );
        }
    }
}
