//! [`C2dClient`] and its builder.

use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fe2o3_amqp::Sender;
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::types::messaging::{Data, Message as AmqpMessage, Outcome};
use iothub_auth::{ConnectionString, HubCredential};
use tokio::sync::Mutex;

use crate::connection::{Authenticated, Endpoint, connect};
use crate::error::from_amqp_error;
use crate::feedback::FeedbackReceiver;
use crate::message::checked_devicebound_address;
use crate::{Error, HubError, Message};

/// IoT Hub's AMQPS port.
pub const DEFAULT_AMQPS_PORT: u16 = 5671;
/// Default time a connection attempt (TCP, TLS, AMQP open, CBS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a send may take from the call until the hub settles the message.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// AMQP over TLS on port 5671 (`amqps://{host}`), IoT Hub's default.
    #[default]
    Amqp,
    /// AMQP over WebSockets on the HTTPS port (`wss://{host}:443/$iothub/websocket`,
    /// sub-protocol `AMQPWSB10`), for networks that only allow port 443.
    AmqpWebSockets,
}

/// Reconnection policy: how many times to try opening a connection, with exponential
/// backoff and full jitter between attempts.
///
/// Defaults: 5 attempts, first delay 200 ms, delays capped at 10 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_attempts` attempts (at least one) and the default delays.
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..Default::default()
        }
    }

    /// Tries once, with no retry.
    pub fn none() -> Self {
        Self::new(1)
    }

    /// Sets the first delay and the cap on delays.
    #[must_use]
    pub fn with_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// Attempts in total.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before attempt `attempt + 1` (`attempt` ≥ 1), with full jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let jitter = rand::random::<f64>();
        exp.mul_f64(0.5 + jitter / 2.0)
    }
}

/// Sends cloud-to-device messages over one AMQP connection and link, pipelined: many sends
/// are in flight at once, each returning when the hub has settled its message. Cheap to
/// clone; clones share the connection. Source of the wire details: IoT Hub's AMQP support
/// page and the C2D developer guide.
///
/// ```no_run
/// # async fn demo(cs: &str) -> Result<(), iothub_c2d::Error> {
/// use iothub_c2d::{Ack, C2dClient, Message};
/// let client = C2dClient::from_connection_string(cs)?;
/// let msg = Message::new(b"reboot".to_vec()).with_ack(Ack::Full);
/// let id = msg.message_id().to_owned(); // match feedback records with it
/// client.send("device-1", msg).await?;
/// # let _ = id; Ok(()) }
/// ```
#[derive(Clone)]
pub struct C2dClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for C2dClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C2dClient")
            .field("endpoint", &self.inner.endpoint.describe())
            .finish_non_exhaustive()
    }
}

struct Inner {
    endpoint: Endpoint,
    send_timeout: Duration,
    rest: iothub_rest::Client,
    link: Mutex<Option<Live>>,
    generation: AtomicU64,
}

struct Live {
    sender: Sender,
    auth: Authenticated,
    generation: u64,
}

impl C2dClient {
    /// A client for the hub of a service connection string
    /// (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`), with default options.
    ///
    /// # Errors
    /// [`Error::Config`] when the connection string is malformed or not a service one.
    pub fn from_connection_string(connection_string: &str) -> Result<Self, Error> {
        Self::builder().connection_string(connection_string).build()
    }

    /// A builder with every option.
    pub fn builder() -> C2dClientBuilder {
        C2dClientBuilder::default()
    }

    /// Sends `message` to a device's queue. Returns when the hub has accepted (enqueued) the
    /// message; the first send opens the connection.
    ///
    /// # Errors
    /// - [`Error::is_device_not_found`]: the device is not registered.
    /// - [`Error::is_queue_full`]: the device already has 50 messages waiting (403004).
    /// - [`Error::is_message_too_large`]: the body is over 64 KB (413001).
    /// - [`Error::is_throttled`]: the hub throttled the send.
    /// - [`Error::is_unauthorized`]: the credential was refused.
    /// - [`Error::is_outcome_unknown`]: the connection failed or the send timed out after the
    ///   message was handed over; it may have been enqueued and is not resent.
    /// - [`Error::Connect`]: no connection could be opened.
    pub fn send(&self, device_id: impl Into<String>, message: Message) -> SendRequest {
        SendRequest {
            client: self.clone(),
            device_id: device_id.into(),
            module_id: None,
            message,
            timeout: self.inner.send_timeout,
        }
    }

    /// Sends `message` to a module's queue (`/devices/{id}/modules/{mid}/messages/devicebound`).
    ///
    /// # Errors
    /// As [`send`](Self::send); [`Error::is_device_not_found`] also covers a missing module.
    pub fn send_to_module(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        message: Message,
    ) -> SendRequest {
        let mut request = self.send(device_id, message);
        request.module_id = Some(module_id.into());
        request
    }

    /// Opens a receiver for feedback records (`/messages/servicebound/feedback`) on a
    /// connection of its own.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::is_unauthorized`] or [`Error::Amqp`].
    pub async fn feedback_receiver(&self) -> Result<FeedbackReceiver, Error> {
        FeedbackReceiver::open(self.inner.endpoint.clone()).await
    }

    /// Deletes every message waiting in a device's queue (REST `DELETE
    /// /devices/{id}/commands`) and returns how many were removed. Messages that asked for
    /// negative or full acknowledgement produce `Purged` feedback.
    ///
    /// # Errors
    /// [`Error::is_device_not_found`], [`Error::is_unauthorized`], [`Error::Rest`].
    pub async fn purge_queue(&self, device_id: impl Into<String>) -> Result<PurgeResult, Error> {
        let device_id = device_id.into();
        match self
            .inner
            .rest
            .cloud_to_device_messages_purge_cloud_to_device_message_queue(&device_id)
            .await
        {
            Ok(response) => {
                let body = response.into_inner();
                Ok(PurgeResult {
                    device_id: body.device_id.unwrap_or(device_id),
                    module_id: body.module_id,
                    total_messages_purged: u64::try_from(body.total_messages_purged.unwrap_or(0))
                        .unwrap_or(0),
                })
            }
            Err(iothub_rest::Error::ErrorResponse(response)) => {
                let status = response.status();
                let details = response.into_inner();
                let message = details.message.unwrap_or_default();
                let (name, text) = message
                    .strip_prefix("ErrorCode:")
                    .and_then(|m| m.split_once(';'))
                    .map(|(n, t)| (n.to_owned(), t.to_owned()))
                    .unwrap_or_else(|| ("Unknown".to_owned(), message.clone()));
                Err(Error::Hub(HubError {
                    code: crate::ErrorCode::new(name),
                    condition: status.as_u16().to_string(),
                    description: text,
                    tracking_id: None,
                }))
            }
            Err(e) => Err(Error::Rest(Box::new(e))),
        }
    }

    /// Closes the connection (the next send opens a new one).
    pub async fn close(&self) {
        if let Some(live) = self.inner.link.lock().await.take() {
            let Live { sender, auth, .. } = live;
            let _ = tokio::time::timeout(Duration::from_secs(5), sender.close()).await;
            auth.close();
        }
    }

    async fn send_now(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        message: &Message,
    ) -> Result<(), Error> {
        let to = checked_devicebound_address(device_id, module_id)?;
        let amqp: AmqpMessage<Data> = message.to_amqp(to)?;
        let sendable = Sendable::builder().message(amqp).build();
        let (delivery, generation, dead) = {
            let mut guard = self.inner.link.lock().await;
            let mut reconnected = false;
            loop {
                if guard.is_none() {
                    *guard = Some(self.open_link().await?);
                    reconnected = true;
                }
                let Some(live) = guard.as_mut() else {
                    continue;
                };
                match live.sender.send_batchable_ref(&sendable).await {
                    Ok(delivery) => break (delivery, live.generation, live.auth.dead()),
                    Err(e) => {
                        // The link is unusable; the transfer was not handed over. Open a
                        // new connection once and send there.
                        if let Some(old) = guard.take() {
                            old.auth.close();
                        }
                        if reconnected {
                            return Err(Error::amqp(e));
                        }
                    }
                }
            }
        };
        let outcome = tokio::select! {
            outcome = delivery => outcome,
            () = dead => {
                self.discard(generation).await;
                return Err(Error::OutcomeUnknown(
                    "the AMQP connection closed before the hub settled the message".into(),
                ));
            }
        };
        match outcome {
            Ok(Outcome::Accepted(_)) => Ok(()),
            Ok(Outcome::Rejected(rejected)) => Err(match rejected.error {
                Some(error) => Error::Hub(from_amqp_error(&error)),
                None => Error::NotAccepted("rejected without an error".into()),
            }),
            Ok(Outcome::Released(_)) => Err(Error::NotAccepted("released".into())),
            Ok(Outcome::Modified(_)) => Err(Error::NotAccepted("modified".into())),
            #[allow(unreachable_patterns)]
            Ok(other) => Err(Error::NotAccepted(format!("{other:?}"))),
            Err(e) => {
                self.discard(generation).await;
                Err(Error::OutcomeUnknown(Box::new(e)))
            }
        }
    }

    async fn open_link(&self) -> Result<Live, Error> {
        let mut auth = connect(&self.inner.endpoint).await?;
        let sender = Sender::builder()
            .name(format!("c2d-sender-{}", uuid::Uuid::new_v4().simple()))
            .source(format!("c2d-{}", uuid::Uuid::new_v4().simple()))
            .target("/messages/devicebound")
            .attach(&mut auth.session)
            .await;
        match sender {
            Ok(sender) => Ok(Live {
                sender,
                auth,
                generation: self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1,
            }),
            Err(e) => {
                auth.close();
                Err(Error::amqp(e))
            }
        }
    }

    /// Drops the link of `generation` if it is still the current one.
    async fn discard(&self, generation: u64) {
        let mut guard = self.inner.link.lock().await;
        if guard.as_ref().is_some_and(|l| l.generation == generation)
            && let Some(old) = guard.take()
        {
            old.auth.close();
        }
    }
}

/// A pending send: `.await` it (or call [`send`](SendRequest::send)).
#[must_use = "a send does nothing until awaited"]
pub struct SendRequest {
    client: C2dClient,
    device_id: String,
    module_id: Option<String>,
    message: Message,
    timeout: Duration,
}

impl std::fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRequest")
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl SendRequest {
    /// Overrides the client's send timeout for this message (from the call until the hub
    /// settles the message, connecting included).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the message. A send the hub refused as throttled (so nothing was enqueued) is
    /// repeated with backoff, up to the retry policy's attempts, within the timeout.
    ///
    /// # Errors
    /// See [`C2dClient::send`].
    pub async fn send(self) -> Result<(), Error> {
        let timeout = self.timeout;
        let SendRequest {
            client,
            device_id,
            module_id,
            message,
            ..
        } = self;
        let attempts = async {
            let retry = &client.inner.endpoint.retry;
            let mut attempt = 0u32;
            loop {
                match client
                    .send_now(&device_id, module_id.as_deref(), &message)
                    .await
                {
                    Err(e) if e.is_throttled() && attempt + 1 < retry.max_attempts() => {
                        attempt += 1;
                        tokio::time::sleep(retry.delay(attempt)).await;
                    }
                    other => return other,
                }
            }
        };
        tokio::time::timeout(timeout, attempts)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }
}

impl IntoFuture for SendRequest {
    type Output = Result<(), Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// The result of [`C2dClient::purge_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeResult {
    /// The device whose queue was purged.
    pub device_id: String,
    /// The module, for a module queue (IoT Hub returns `null` for a device).
    pub module_id: Option<String>,
    /// How many messages were removed.
    pub total_messages_purged: u64,
}

/// Options for a [`C2dClient`].
#[derive(Default)]
#[must_use]
pub struct C2dClientBuilder {
    credential: Option<Result<(String, HubCredential), Error>>,
    transport: Transport,
    amqps_port: Option<u16>,
    root_pems: Vec<Vec<u8>>,
    root_files: Vec<PathBuf>,
    connect_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    sas_ttl: Option<Duration>,
}

impl std::fmt::Debug for C2dClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C2dClientBuilder")
            .field("transport", &self.transport)
            .field("amqps_port", &self.amqps_port)
            .finish_non_exhaustive()
    }
}

impl C2dClientBuilder {
    /// Authenticates with a service connection string (a shared access policy with
    /// *service connect*).
    pub fn connection_string(mut self, connection_string: &str) -> Self {
        self.credential = Some(
            ConnectionString::parse(connection_string)
                .map_err(|e| Error::Config(format!("invalid connection string: {e}")))
                .and_then(|cs| {
                    if !cs.is_service() {
                        return Err(Error::Config(
                            "the connection string is not a service one (it needs SharedAccessKeyName and SharedAccessKey)".into(),
                        ));
                    }
                    let credential =
                        HubCredential::from_connection_string(&cs).map_err(Error::Credential)?;
                    Ok((cs.host_name().to_owned(), credential))
                }),
        );
        self
    }

    /// Authenticates with any [`HubCredential`] for `host` (`HostName`, optionally with a
    /// port).
    pub fn credential(mut self, host: impl Into<String>, credential: HubCredential) -> Self {
        self.credential = Some(Ok((host.into(), credential)));
        self
    }

    /// Authenticates with an Azure AD token credential (scope `https://iothubs.azure.net/.default`,
    /// put on `$cbs` as a bearer token).
    #[cfg(feature = "token-credential")]
    pub fn token_credential(
        self,
        host: impl Into<String>,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Self {
        self.credential(host, HubCredential::token_credential(credential))
    }

    /// AMQP over TLS (default) or over WebSockets.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The AMQPS port (default 5671, IoT Hub's). A local hub started on a free port tells
    /// its port (`Emulator::amqps_port`). The WebSocket transport uses the port of
    /// `HostName` (default 443) instead.
    pub fn amqps_port(mut self, port: u16) -> Self {
        self.amqps_port = Some(port);
        self
    }

    /// Trusts the CA certificates in `pem` (in addition to the system's), e.g. a local hub's
    /// `ca.pem`.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// Trusts the CA certificates in the PEM file at `path`.
    pub fn add_root_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_files.push(path.into());
        self
    }

    /// Time allowed for one connection attempt (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Default time a send may take until the hub settles it (default 60 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = Some(timeout);
        self
    }

    /// Reconnection policy (default: 5 attempts, 200 ms doubling to at most 10 s).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Lifetime of the SAS tokens signed from a key (default one hour). Tokens are renewed
    /// on the open connection before they expire.
    pub fn sas_ttl(mut self, ttl: Duration) -> Self {
        self.sas_ttl = Some(ttl);
        self
    }

    /// Builds the client. No connection is opened until the first send.
    ///
    /// # Errors
    /// [`Error::Config`]: no credential, a malformed connection string, an unreadable or
    /// invalid root certificate.
    pub fn build(self) -> Result<C2dClient, Error> {
        let (host_name, mut credential) = self.credential.ok_or_else(|| {
            Error::Config("no credential: call connection_string(..) or credential(..)".into())
        })??;
        if let Some(ttl) = self.sas_ttl {
            credential = credential.with_sas_ttl(ttl);
        }
        let (host, https_port) = split_host(&host_name)?;
        let mut pems = self.root_pems.clone();
        for path in &self.root_files {
            pems.push(std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read root certificate {}: {e}",
                    path.display()
                ))
            })?);
        }
        let tls = crate::connection::tls_config(&pems)?;
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
        for pem in &pems {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("invalid root certificate: {e}")))?;
            http = http.tls_certs_merge(certs);
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("HTTP client setup failed: {e}")))?;
        let rest = iothub_rest::Client::from_reqwest(
            &format!("https://{host_name}"),
            http,
            iothub_rest::ClientState::new(credential.clone()),
        );
        let endpoint = Endpoint {
            host,
            audience: host_name,
            amqps_port: self.amqps_port.unwrap_or(DEFAULT_AMQPS_PORT),
            https_port,
            transport: self.transport,
            websocket_path: crate::websocket::PATH,
            tls,
            credential,
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            retry: self.retry.unwrap_or_default(),
        };
        Ok(C2dClient {
            inner: Arc::new(Inner {
                endpoint,
                send_timeout: self.send_timeout.unwrap_or(DEFAULT_SEND_TIMEOUT),
                rest,
                link: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        })
    }
}

/// Splits `HostName` into host and HTTPS port (443 when absent).
fn split_host(host_name: &str) -> Result<(String, u16), Error> {
    match host_name.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse()
                .map_err(|_| Error::Config(format!("'{host_name}' has an invalid port")))?;
            Ok((host.to_owned(), port))
        }
        _ => Ok((host_name.to_owned(), 443)),
    }
}
