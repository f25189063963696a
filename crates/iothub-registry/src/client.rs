//! [`RegistryManager`] and its builder. How an operation runs is in `operation.rs`; the
//! methods live with their resource (`devices.rs`, `modules.rs`, `twins.rs`, ...).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iothub_auth::{ConnectionString, HubCredential};
use iothub_rest::ClientState;

use crate::error::{ConfigError, Result};
use crate::retry::RetryPolicy;

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
    #[cfg(feature = "c2d")]
    c2d: std::result::Result<iothub_c2d::C2dClient, std::sync::Arc<iothub_c2d::Error>>,
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
    /// The C2D client, or why it could not be configured.
    #[cfg(feature = "c2d")]
    pub(crate) fn c2d(&self) -> crate::error::Result<iothub_c2d::C2dClient> {
        match &self.inner.c2d {
            Ok(client) => Ok(client.clone()),
            Err(e) => Err(crate::Error::InvalidRequest {
                message: format!("the cloud-to-device client could not be configured: {e}"),
            }),
        }
    }

    /// A client for the hub named by a service connection string
    /// (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`), with default options.
    /// SAS tokens are signed per request and renewed before they expire.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) when the connection string is malformed or
    /// holds no service key ([`ConfigError::ConnectionString`], [`ConfigError::Credential`]).
    pub fn from_connection_string(connection_string: &str) -> Result<Self> {
        Self::builder().connection_string(connection_string).build()
    }

    /// A client for `host` (for example `myhub.azure-devices.net`) authenticated with an
    /// Azure AD token credential (scope `https://iothubs.azure.net/.default`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) with [`ConfigError::InvalidEndpoint`] when
    /// `https://{host}` is not a valid URL. A credential that cannot produce a token fails
    /// later, per call, with [`Error::Auth`](crate::Error::Auth).
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
///     .retry_policy(RetryPolicy::default().with_max_attempts(5))
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
    #[cfg(feature = "c2d")]
    amqps_port: Option<u16>,
    #[cfg(feature = "c2d")]
    c2d_transport: Option<iothub_c2d::Transport>,
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

    /// TCP and TLS connect timeout (defaults to 10 s). Cannot be combined with
    /// [`http_client`](Self::http_client): configure that client instead.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Trusts an extra root CA (PEM, may hold several certificates), for example the local
    /// emulator's `ca.pem`. Defaults to the platform's roots only. Cannot be combined with
    /// [`http_client`](Self::http_client).
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// Trusts the root CA(s) in a PEM file, read by [`build`](Self::build). Cannot be combined
    /// with [`http_client`](Self::http_client).
    pub fn add_root_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_files.push(path.into());
        self
    }

    /// `User-Agent` header (defaults to `iothub-registry/<version>`). Cannot be combined with
    /// [`http_client`](Self::http_client).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// `api-version` query parameter (defaults to [`iothub_rest::API_VERSION`], `2024-03-31`;
    /// `"2021-04-12"`, [`iothub_rest::API_VERSION_2021_04_12`], is still served by IoT Hub and is
    /// what the official Python, Node and .NET SDKs send; bulk key regeneration needs 2024-03-31).
    pub fn api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = Some(api_version.into());
        self
    }

    /// Lifetime of SAS tokens signed from a connection string (defaults to one hour).
    pub fn sas_ttl(mut self, ttl: Duration) -> Self {
        self.sas_ttl = Some(ttl);
        self
    }

    /// Uses a caller-configured `reqwest` client (proxy, pool, TLS, user agent, connect
    /// timeout). Those settings then belong to that client: giving this builder root
    /// certificates, a user agent or a connect timeout as well makes [`build`](Self::build)
    /// fail with [`ConfigError::ConflictingOptions`] rather than ignore them. The per-attempt
    /// timeout and the retry policy still apply.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The AMQPS port for [`send_c2d_message`](RegistryManager::send_c2d_message) (default
    /// 5671, IoT Hub's; a local hub on a free port tells its own).
    #[cfg(feature = "c2d")]
    pub fn amqps_port(mut self, port: u16) -> Self {
        self.amqps_port = Some(port);
        self
    }

    /// The transport of [`send_c2d_message`](RegistryManager::send_c2d_message): AMQP over
    /// TLS (default) or over WebSockets on the HTTPS port.
    #[cfg(feature = "c2d")]
    pub fn c2d_transport(mut self, transport: iothub_c2d::Transport) -> Self {
        self.c2d_transport = Some(transport);
        self
    }

    /// Validates the options and builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) with a [`ConfigError`]: no credential, a
    /// malformed connection string, an invalid endpoint, user agent or root certificate, an
    /// unreadable certificate file, or [`http_client`](Self::http_client) combined with
    /// options that belong to the HTTP client. Nothing is sent.
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
            Some(http) => {
                let mut conflicting = Vec::new();
                if !self.root_pems.is_empty() || !self.root_files.is_empty() {
                    conflicting.push("root certificates");
                }
                if self.connect_timeout.is_some() {
                    conflicting.push("connect_timeout");
                }
                if self.user_agent.is_some() {
                    conflicting.push("user_agent");
                }
                if !conflicting.is_empty() {
                    return Err(ConfigError::ConflictingOptions {
                        options: conflicting.join(", "),
                    }
                    .into());
                }
                http
            }
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
        #[cfg(feature = "c2d")]
        let c2d = {
            let mut c2d =
                iothub_c2d::C2dClient::builder().credential(host.clone(), credential.clone());
            if let Some(port) = self.amqps_port {
                c2d = c2d.amqps_port(port);
            }
            if let Some(transport) = self.c2d_transport {
                c2d = c2d.transport(transport);
            }
            if let Some(timeout) = self.connect_timeout {
                c2d = c2d.connect_timeout(timeout);
            }
            for pem in &self.root_pems {
                c2d = c2d.add_root_certificate_pem(pem.clone());
            }
            for path in &self.root_files {
                c2d = c2d.add_root_certificate_file(path.clone());
            }
            c2d.build().map_err(std::sync::Arc::new)
        };
        let mut state = ClientState::new(credential);
        if let Some(v) = self.api_version {
            state = state.with_api_version(v);
        }
        let rest = iothub_rest::Client::from_reqwest(&endpoint, http, state);
        Ok(RegistryManager {
            inner: Arc::new(Inner {
                rest,
                host,
                #[cfg(feature = "c2d")]
                c2d,
            }),
            retry: self.retry.unwrap_or_default(),
            attempt_timeout: self.attempt_timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT),
        })
    }
}
