//! [`RegistryManager`], its builder, and the request loop every operation goes through
//! (per-attempt timeout, retries, tracing, error decoding).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_auth::{ConnectionString, HubCredential};
use iothub_rest::{ClientState, ResponseValue};
use tracing::Instrument as _;

use crate::error::{ConfigError, Error, Result, ServiceError, body_excerpt};
use crate::retry::{Decision, Idempotency, RetryPolicy, classify};

/// Default per-attempt timeout.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default TCP/TLS connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The service-side client for an IoT Hub's identity registry, twins, queries, bulk
/// operations, statistics and direct methods: the Rust counterpart of Python's
/// `IoTHubRegistryManager`, with the same method names.
///
/// Cheap to clone: clones share one HTTP connection pool and one credential cache.
///
/// ```no_run
/// # async fn run() -> iothub_registry::Result<()> {
/// use iothub_registry::{DeviceStatus, RegistryManager};
/// let rm = RegistryManager::from_connection_string(&std::env::var("IOTHUB_CONNECTION_STRING").unwrap())?;
/// let device = rm.create_device_with_sas("dev1", "", "", DeviceStatus::Enabled).await?;
/// println!("created {} etag {:?}", device.device_id, device.etag);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RegistryManager {
    pub(crate) inner: Arc<Inner>,
    pub(crate) retry: RetryPolicy,
    pub(crate) attempt_timeout: Duration,
}

pub(crate) struct Inner {
    pub(crate) rest: iothub_rest::Client,
    host: String,
}

impl fmt::Debug for RegistryManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryManager")
            .field("host", &self.inner.host)
            .field("retry", &self.retry)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl RegistryManager {
    /// A client for the hub named by a service connection string
    /// (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`), with default options.
    /// SAS tokens are signed per request and renewed before they expire.
    pub fn from_connection_string(connection_string: &str) -> Result<Self> {
        Self::builder().connection_string(connection_string).build()
    }

    /// A client for `host` (for example `myhub.azure-devices.net`) authenticated with an
    /// Azure AD token credential (scope `https://iothubs.azure.net/.default`).
    #[cfg(feature = "token-credential")]
    pub fn from_token_credential(
        host: &str,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Result<Self> {
        Self::builder().token_credential(host, credential).build()
    }

    /// A builder for options: retry policy, timeouts, extra root CA, user agent, api-version.
    pub fn builder() -> RegistryManagerBuilder {
        RegistryManagerBuilder::default()
    }

    /// The hub host this client talks to (`HostName`, possibly with a port).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// A clone that uses `policy` for its calls (same connection pool). Use it for a
    /// per-call override: `rm.with_retry_policy(RetryPolicy::disabled()).get_device(id)`.
    #[must_use]
    pub fn with_retry_policy(&self, policy: RetryPolicy) -> Self {
        Self {
            retry: policy,
            ..self.clone()
        }
    }

    /// A clone that uses `timeout` as its per-attempt timeout (same connection pool).
    #[must_use]
    pub fn with_attempt_timeout(&self, timeout: Duration) -> Self {
        Self {
            attempt_timeout: timeout,
            ..self.clone()
        }
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub(crate) fn rest(&self) -> &iothub_rest::Client {
        &self.inner.rest
    }

    /// Runs one operation: attempts, per-attempt timeout, retries with backoff, a tracing span.
    pub(crate) async fn run<T, F, Fut>(&self, op: Op<'_>, mut attempt_fn: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let span = tracing::info_span!(
            "iothub.registry",
            operation = op.name,
            device_id = op.device_id,
            module_id = op.module_id,
            attempt = tracing::field::Empty,
        );
        let policy = &self.retry;
        let attempt_timeout = op.attempt_timeout.unwrap_or(self.attempt_timeout);
        async move {
            let start = Instant::now();
            // An operation with its own attempt timeout (direct methods wait for the device)
            // gets at least that long in total, so one attempt is never cut short.
            let deadline = policy
                .get_total_timeout()
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
                let result = match tokio::time::timeout(budget, attempt_fn()).await {
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
                let decision = if attempt >= policy.get_max_attempts() {
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

/// What the request loop needs to know about an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub(crate) name: &'static str,
    pub(crate) device_id: Option<&'a str>,
    pub(crate) module_id: Option<&'a str>,
    pub(crate) idempotency: Idempotency,
    pub(crate) attempt_timeout: Option<Duration>,
}

impl<'a> Op<'a> {
    pub(crate) fn new(name: &'static str, idempotency: Idempotency) -> Self {
        Self {
            name,
            device_id: None,
            module_id: None,
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

    pub(crate) fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }
}

/// Decodes a failed generated call whose error body is IoT Hub's `ErrorDetails`.
pub(crate) async fn decode(e: progenitor_client::Error<iothub_rest::types::ErrorDetails>) -> Error {
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
        P::InvalidRequest(message) => Error::InvalidRequest { message },
        P::Custom(message) => Error::Auth { message },
    }
}

/// Builds a [`RegistryManager`]. Every option has a documented default; `build` validates
/// everything and fails early.
///
/// ```no_run
/// # fn run(cs: &str) -> iothub_registry::Result<()> {
/// use std::time::Duration;
/// use iothub_registry::{RegistryManager, RetryPolicy};
/// let rm = RegistryManager::builder()
///     .connection_string(cs)
///     .retry_policy(RetryPolicy::default().max_attempts(5))
///     .attempt_timeout(Duration::from_secs(10))
///     .add_root_certificate_file("ca.pem") // e.g. the local emulator's CA
///     .user_agent("my-app/1.0")
///     .build()?;
/// # let _ = rm; Ok(()) }
/// ```
#[derive(Default)]
#[must_use]
pub struct RegistryManagerBuilder {
    credential: Option<std::result::Result<(String, HubCredential), ConfigError>>,
    endpoint: Option<String>,
    retry: Option<RetryPolicy>,
    attempt_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    root_pems: Vec<Vec<u8>>,
    root_files: Vec<PathBuf>,
    user_agent: Option<String>,
    api_version: Option<String>,
    sas_ttl: Option<Duration>,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for RegistryManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryManagerBuilder")
            .field("endpoint", &self.endpoint)
            .field("retry", &self.retry)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl RegistryManagerBuilder {
    /// Authenticates with a service connection string (required unless another credential is
    /// given). Its `HostName` (which may include `:port`) is the hub address.
    pub fn connection_string(mut self, connection_string: &str) -> Self {
        self.credential = Some(
            ConnectionString::parse(connection_string)
                .map_err(ConfigError::ConnectionString)
                .and_then(|cs| {
                    HubCredential::from_connection_string(&cs)
                        .map(|c| (cs.host_name().to_owned(), c))
                        .map_err(ConfigError::Credential)
                }),
        );
        self
    }

    /// Authenticates with any [`HubCredential`] against `host`.
    pub fn credential(mut self, host: impl Into<String>, credential: HubCredential) -> Self {
        self.credential = Some(Ok((host.into(), credential)));
        self
    }

    /// Authenticates with an Azure AD token credential against `host`.
    #[cfg(feature = "token-credential")]
    pub fn token_credential(
        self,
        host: impl Into<String>,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Self {
        self.credential(host, HubCredential::token_credential(credential))
    }

    /// Sends requests to `endpoint` (for example `http://127.0.0.1:8080`) instead of
    /// `https://<host>`. The SAS audience stays the host. Defaults to `https://<host>`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Retry policy for every call (defaults to [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Timeout of one HTTP attempt (defaults to 30 s). Direct methods get at least their
    /// response and connect timeouts plus 15 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// TCP and TLS connect timeout (defaults to 10 s). Ignored with [`http_client`](Self::http_client).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Trusts an extra root CA (PEM, may hold several certificates), for example the local
    /// emulator's `ca.pem`. Defaults to the platform's roots only.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// Trusts the root CA(s) in a PEM file, read by [`build`](Self::build).
    pub fn add_root_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_files.push(path.into());
        self
    }

    /// `User-Agent` header (defaults to `iothub-registry/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// `api-version` query parameter (defaults to [`iothub_rest::API_VERSION`], `2021-04-12`).
    pub fn api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = Some(api_version.into());
        self
    }

    /// Lifetime of SAS tokens signed from a connection string (defaults to one hour).
    pub fn sas_ttl(mut self, ttl: Duration) -> Self {
        self.sas_ttl = Some(ttl);
        self
    }

    /// Uses a caller-configured `reqwest` client (proxy, pool, TLS). Root certificates,
    /// user agent and connect timeout given to this builder are then ignored.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Validates the options and builds the client.
    pub fn build(self) -> Result<RegistryManager> {
        let (host, mut credential) = self.credential.ok_or(ConfigError::MissingCredential)??;
        if let Some(ttl) = self.sas_ttl {
            credential = credential.with_sas_ttl(ttl);
        }
        let endpoint = self.endpoint.unwrap_or_else(|| format!("https://{host}"));
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&endpoint)
            .map_err(|_| ConfigError::InvalidEndpoint(endpoint.clone()))?;
        let http = match self.http {
            Some(http) => http,
            None => {
                let user_agent = self.user_agent.unwrap_or_else(|| {
                    concat!("iothub-registry/", env!("CARGO_PKG_VERSION")).to_owned()
                });
                reqwest::header::HeaderValue::from_str(&user_agent)
                    .map_err(|_| ConfigError::InvalidUserAgent)?;
                let mut certs = Vec::new();
                for path in &self.root_files {
                    let pem = std::fs::read(path).map_err(ConfigError::CertificateFile)?;
                    certs.extend(
                        reqwest::Certificate::from_pem_bundle(&pem)
                            .map_err(ConfigError::InvalidCertificate)?,
                    );
                }
                for pem in &self.root_pems {
                    certs.extend(
                        reqwest::Certificate::from_pem_bundle(pem)
                            .map_err(ConfigError::InvalidCertificate)?,
                    );
                }
                let mut builder = reqwest::Client::builder()
                    .user_agent(user_agent)
                    .connect_timeout(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
                    .pool_idle_timeout(Duration::from_secs(90));
                if !certs.is_empty() {
                    builder = builder.tls_certs_merge(certs);
                }
                builder.build().map_err(ConfigError::Http)?
            }
        };
        let mut state = ClientState::new(credential);
        if let Some(v) = self.api_version {
            state = state.with_api_version(v);
        }
        let rest = iothub_rest::Client::from_reqwest(&endpoint, http, state);
        Ok(RegistryManager {
            inner: Arc::new(Inner { rest, host }),
            retry: self.retry.unwrap_or_default(),
            attempt_timeout: self.attempt_timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT),
        })
    }
}
