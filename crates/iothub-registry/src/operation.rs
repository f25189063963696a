//! How one registry operation runs, for every method of [`RegistryManager`].
//!
//! A method builds a request value (a `…Request` struct in the module of its resource). Its
//! `send` describes the operation with an [`Op`] (name, ids, idempotency, attempt timeout)
//! and hands [`RegistryManager::run`] a closure that makes one attempt: call the generated
//! `iothub-rest` function and turn its answer into this crate's types with [`output`] (or
//! [`decode`] / [`decode_with`] for responses that need more care). `run` owns everything
//! that is the same for all operations: the tracing span, the per-attempt timeout, the
//! credential, the retry decision and the backoff.

use std::future::Future;
use std::time::{Duration, Instant};

use iothub_rest::types::ErrorDetails;
use iothub_rest::{ClientInfo as _, ResponseValue};
use tracing::Instrument as _;

use crate::RegistryManager;
use crate::error::{Error, Result, ServiceError, body_excerpt};
use crate::retry::{Decision, Idempotency, classify};

/// What the request loop needs to know about an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub(crate) name: &'static str,
    pub(crate) device_id: Option<&'a str>,
    pub(crate) module_id: Option<&'a str>,
    pub(crate) job_id: Option<&'a str>,
    pub(crate) idempotency: Idempotency,
    pub(crate) attempt_timeout: Option<Duration>,
}

impl<'a> Op<'a> {
    pub(crate) fn new(name: &'static str, idempotency: Idempotency) -> Self {
        Self {
            name,
            device_id: None,
            module_id: None,
            job_id: None,
            idempotency,
            attempt_timeout: None,
        }
    }

    pub(crate) fn device(mut self, device_id: &'a str) -> Self {
        self.device_id = Some(device_id);
        self
    }

    pub(crate) fn module(mut self, module_id: &'a str) -> Self {
        self.module_id = Some(module_id);
        self
    }

    pub(crate) fn job(mut self, job_id: &'a str) -> Self {
        self.job_id = Some(job_id);
        self
    }

    pub(crate) fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }
}

impl RegistryManager {
    /// Runs one operation: attempts, per-attempt timeout, retries with backoff, a tracing span.
    pub(crate) async fn run<T, F, Fut>(&self, op: Op<'_>, mut attempt_fn: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // A REST path cannot address these ids: `..` would name the parent resource (a
        // module call with module id `..` would reach the device), `.` the collection.
        for (what, id) in [
            ("device", op.device_id),
            ("module", op.module_id),
            ("job", op.job_id),
        ] {
            if let Some(id @ ("" | "." | "..")) = id {
                return Err(Error::InvalidRequest {
                    message: format!(
                        "the {what} id '{id}' cannot be addressed by IoT Hub's REST API"
                    ),
                });
            }
        }
        let span = tracing::info_span!(
            "iothub.registry",
            operation = op.name,
            device_id = op.device_id,
            module_id = op.module_id,
            job_id = op.job_id,
            attempt = tracing::field::Empty,
        );
        let policy = &self.retry;
        let attempt_timeout = op.attempt_timeout.unwrap_or(self.attempt_timeout);
        let credential = self.rest().inner().credential();
        async move {
            let start = Instant::now();
            // An operation with its own attempt timeout (direct methods wait for the device)
            // gets at least that long in total, so one attempt is never cut short.
            let deadline = policy
                .total_timeout()
                .map(|t| t.max(op.attempt_timeout.unwrap_or_default()))
                .and_then(|t| start.checked_add(t));
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                tracing::Span::current().record("attempt", attempt);
                let budget = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()).min(attempt_timeout),
                    None => attempt_timeout,
                };
                let attempt_start = Instant::now();
                let one_attempt = async {
                    // The generated client signs the request itself, but reports a failure
                    // only as text; asking first keeps the credential's own error as the
                    // source of `Error::Auth`. Tokens are cached, so this costs no round trip.
                    credential
                        .authorization_header()
                        .await
                        .map_err(|source| Error::Auth { source })?;
                    attempt_fn().await
                };
                let result = match tokio::time::timeout(budget, one_attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Timeout {
                        elapsed: start.elapsed(),
                        attempts: attempt,
                    }),
                };
                let elapsed_ms = attempt_start.elapsed().as_millis() as u64;
                let error = match result {
                    Ok(value) => {
                        tracing::debug!(attempt, elapsed_ms, "succeeded");
                        return Ok(value);
                    }
                    Err(e) => e,
                };
                let decision = if attempt >= policy.max_attempts() {
                    Decision::Stop
                } else {
                    classify(&error, op.idempotency)
                };
                let Decision::Retry { hint } = decision else {
                    tracing::debug!(attempt, elapsed_ms, error = %error, "failed");
                    return Err(error);
                };
                let delay = policy.delay(attempt, hint, rand::random::<f64>());
                let retry_at = Instant::now().checked_add(delay);
                if deadline.is_some_and(|d| retry_at.is_none_or(|t| t >= d)) {
                    tracing::debug!(attempt, elapsed_ms, error = %error, "failed; no time left to retry");
                    return Err(error);
                }
                tracing::debug!(
                    attempt,
                    elapsed_ms,
                    error = %error,
                    delay_ms = delay.as_millis() as u64,
                    "retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }
}

/// Conversion of a generated response body into this crate's type. Fallible, because a
/// body can hold a value this crate refuses to guess at (a missing ETag, an unknown status).
pub(crate) trait FromWire<T>: Sized {
    fn from_wire(wire: T) -> Result<Self>;
}

/// Implements [`FromWire`] through an infallible `From`.
macro_rules! from_wire_via_from {
    ($($wire:ty => $ours:ty),* $(,)?) => {
        $(impl crate::operation::FromWire<$wire> for $ours {
            fn from_wire(wire: $wire) -> crate::error::Result<Self> {
                Ok(<$ours>::from(wire))
            }
        })*
    };
}
pub(crate) use from_wire_via_from;

impl<W, T: FromWire<W>> FromWire<Vec<W>> for Vec<T> {
    fn from_wire(wire: Vec<W>) -> Result<Self> {
        wire.into_iter().map(T::from_wire).collect()
    }
}

impl FromWire<()> for () {
    fn from_wire(_: ()) -> Result<Self> {
        Ok(())
    }
}

/// Awaits a generated call and converts its body into our type.
pub(crate) async fn output<T, U>(
    call: impl Future<
        Output = std::result::Result<ResponseValue<T>, progenitor_client::Error<ErrorDetails>>,
    >,
) -> Result<U>
where
    U: FromWire<T>,
{
    match call.await {
        Ok(rv) => U::from_wire(rv.into_inner()),
        Err(e) => Err(decode(e).await),
    }
}

/// Decodes a failed generated call whose error body is IoT Hub's `ErrorDetails`.
pub(crate) async fn decode(e: progenitor_client::Error<ErrorDetails>) -> Error {
    decode_with(e, |rv| {
        let status = rv.status().as_u16();
        let headers = rv.headers().clone();
        Error::Service(ServiceError::from_generated(
            status,
            &headers,
            rv.into_inner(),
        ))
    })
    .await
}

/// Decodes a failed generated call; `on_error_response` handles documented error bodies.
pub(crate) async fn decode_with<E>(
    e: progenitor_client::Error<E>,
    on_error_response: impl FnOnce(ResponseValue<E>) -> Error,
) -> Error {
    use progenitor_client::Error as P;
    match e {
        P::ErrorResponse(rv) => on_error_response(rv),
        P::UnexpectedResponse(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            match response.bytes().await {
                Ok(body) if status >= 400 => {
                    Error::Service(ServiceError::from_parts(status, &headers, &body))
                }
                Ok(body) => Error::InvalidResponse {
                    status: Some(status),
                    body: body_excerpt(&body),
                    source: None,
                },
                Err(e) => Error::Transport(e),
            }
        }
        P::InvalidResponsePayload(body, source) => Error::InvalidResponse {
            status: None,
            body: body_excerpt(&body),
            source: Some(source),
        },
        P::CommunicationError(e) | P::ResponseBodyError(e) | P::InvalidUpgrade(e) => {
            Error::Transport(e)
        }
        // `Custom` comes from the request hook: the credential's header could not be put
        // on the request. The credential itself was already asked by `run`.
        P::InvalidRequest(message) | P::Custom(message) => Error::InvalidRequest { message },
    }
}

/// `IntoFuture` for a request type whose `send(self)` is an `async fn`.
macro_rules! into_future {
    ($request:ident $(<$($param:ident),*>)? => $output:ty $(where $($bound:tt)*)?) => {
        impl<'a $($(, $param)*)?> ::std::future::IntoFuture for $request<'a $($(, $param)*)?>
        $(where $($bound)*)?
        {
            type Output = crate::error::Result<$output>;
            type IntoFuture = ::futures::future::BoxFuture<'a, crate::error::Result<$output>>;

            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    };
}
pub(crate) use into_future;
