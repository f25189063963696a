//! Bulk registry operations (`POST /devices`): one request of at most 100 entries (Python's
//! `bulk_create_or_update_devices`), or any number of entries split into concurrent chunks.
//! Not to be confused with IoT Hub's import/export jobs, which go through blob storage.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt as _};
use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::error::{Error, Result, ServiceError};
use crate::model::{BulkRegistryOperationResult, ExportImportDevice};
use crate::operation::{Op, decode_with, into_future};
use crate::retry::Idempotency;

#[doc(inline)]
pub use iothub_core::limits::MAX_BULK_DEVICES;

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

/// The aggregated outcome of a chunked bulk registry operation
/// ([`RegistryManager::bulk_create_or_update_devices_chunked`]).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ChunkedBulkResult {
    /// Per-entry errors and warnings from every chunk that IoT Hub processed;
    /// `is_successful` is true only if every entry of every chunk succeeded.
    pub result: BulkRegistryOperationResult,
    /// Chunks that failed as a whole.
    pub failed_chunks: Vec<FailedChunk>,
    /// Bulk requests that completed (one per processed chunk).
    pub requests: usize,
}

impl ChunkedBulkResult {
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

/// One bulk registry request (`bulk_create_or_update_devices`), ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct BulkRequest<'a> {
    rm: &'a RegistryManager,
    body: Vec<wire::ExportImportDevice>,
}

impl BulkRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::bulk_create_or_update_devices`].
    pub async fn send(self) -> Result<BulkRegistryOperationResult> {
        self.rm.bulk_request(&self.body).await
    }
}

into_future!(BulkRequest => BulkRegistryOperationResult);

impl RegistryManager {
    /// Creates, updates or deletes up to 100 identities in one request (`POST /devices`),
    /// each entry selecting its [`ImportMode`](crate::ImportMode).
    ///
    /// Like the Python SDK, a partial failure (HTTP 400 with a result body) is `Ok` with
    /// `is_successful == false` and one error per failed entry. Use
    /// [`bulk_create_or_update_devices_chunked`](Self::bulk_create_or_update_devices_chunked)
    /// for any number of entries.
    ///
    /// # Errors
    ///
    /// [`Error::is_too_many_devices`](crate::Error::is_too_many_devices) (413002) for more
    /// than 100 entries (sent as is, IoT Hub refuses);
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) when IoT Hub refuses the
    /// request as a whole; [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. Requests that create or delete are not retried after
    /// a timeout.
    pub fn bulk_create_or_update_devices(&self, devices: &[ExportImportDevice]) -> BulkRequest<'_> {
        BulkRequest {
            rm: self,
            body: devices.iter().map(Into::into).collect(),
        }
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

    /// Applies any number of bulk entries as bulk registry requests (`POST /devices`): splits
    /// them into chunks of at most 100 ([`chunk_size`](ChunkedBulkRequest::chunk_size)), runs
    /// a bounded number concurrently ([`concurrency`](ChunkedBulkRequest::concurrency),
    /// default 4; each retried per the retry policy, throttling always), and aggregates every
    /// per-entry error into one [`ChunkedBulkResult`]. Not part of the Python SDK.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
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
    ///     .await?;
    /// for id in outcome.failed_device_ids() {
    ///     eprintln!("failed: {id}");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Per-entry failures and chunks that failed as a whole are reported in the
    /// [`ChunkedBulkResult`] (check [`is_successful`](ChunkedBulkResult::is_successful)), as
    /// the single call reports partial failures. The call itself fails with
    /// [`Error::InvalidRequest`] for a chunk size outside 1..=100 or a concurrency of 0, and
    /// with the first chunk's error when every chunk failed as a whole (nothing was applied):
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call.
    pub fn bulk_create_or_update_devices_chunked(
        &self,
        devices: impl IntoIterator<Item = ExportImportDevice>,
    ) -> ChunkedBulkRequest<'_> {
        ChunkedBulkRequest {
            rm: self,
            devices: devices.into_iter().collect(),
            chunk_size: MAX_BULK_DEVICES,
            concurrency: 4,
            progress: None,
        }
    }
}

/// A chunked bulk registry operation, ready to run: set options, then `.await` it (or call
/// [`send`](Self::send)). Resolves to one [`ChunkedBulkResult`].
#[must_use = "a request does nothing until it is awaited"]
pub struct ChunkedBulkRequest<'a> {
    rm: &'a RegistryManager,
    devices: Vec<ExportImportDevice>,
    chunk_size: usize,
    concurrency: usize,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for ChunkedBulkRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedBulkRequest")
            .field("devices", &self.devices.len())
            .field("chunk_size", &self.chunk_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl ChunkedBulkRequest<'_> {
    /// Entries per request, 1 to [`MAX_BULK_DEVICES`] (defaults to 100). Another value makes
    /// the request fail with [`Error::InvalidRequest`] before anything is sent.
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = size;
        self
    }

    /// Requests in flight at once (defaults to 4). `0` makes the request fail with
    /// [`Error::InvalidRequest`] before anything is sent.
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests;
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
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::bulk_create_or_update_devices_chunked`].
    pub async fn send(self) -> Result<ChunkedBulkResult> {
        if !(1..=MAX_BULK_DEVICES).contains(&self.chunk_size) {
            return Err(Error::InvalidRequest {
                message: format!(
                    "chunk size {} is outside 1..={MAX_BULK_DEVICES}",
                    self.chunk_size
                ),
            });
        }
        if self.concurrency == 0 {
            return Err(Error::InvalidRequest {
                message: "concurrency must be at least 1".to_owned(),
            });
        }
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

        let mut aggregate = ChunkedBulkResult {
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
        if aggregate.requests == 0 && !aggregate.failed_chunks.is_empty() {
            // Nothing was applied: report the failure as every other call does.
            return Err(aggregate.failed_chunks.swap_remove(0).error);
        }
        Ok(aggregate)
    }
}

into_future!(ChunkedBulkRequest => ChunkedBulkResult);

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
