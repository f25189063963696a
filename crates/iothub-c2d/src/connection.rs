//! Opening an authenticated AMQP session to the hub: TCP, TLS, optionally a WebSocket,
//! AMQP with SASL ANONYMOUS, then a CBS `put-token`, renewed before the token expires.
//!
//! Public as [`crate::amqp`] for the other AMQP layers of the SDK (the built-in endpoint
//! reader `iothub-events` opens its sessions with it); most users never need it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use iothub_auth::HubCredential;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::websocket::{SUB_PROTOCOL, WsStream};

/// The path at which Event Hubs (and the Event Hubs-compatible endpoint of an IoT hub) serves
/// AMQP over WebSockets.
pub const SERVICEBUS_PATH: &str = "/$servicebus/websocket";
use crate::{Error, RetryPolicy, Transport};

/// How long a CBS put-token may take (the Node SDK allows 120 s; this is tighter).
const PUT_TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Renewal interval for tokens whose expiry is not known (Azure AD bearer tokens).
const OPAQUE_TOKEN_RENEWAL: Duration = Duration::from_secs(300);
/// After a failed renewal, try again after this long.
const RENEW_RETRY: Duration = Duration::from_secs(10);

/// Everything needed to open connections to one AMQP endpoint (an IoT hub, or an Event
/// Hubs-compatible endpoint); shared by the client and its feedback receivers.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name without port, for TCP, SNI and certificate checks.
    pub host: String,
    /// The CBS audience (the `name` of the put-token request): `HostName` as given (with a
    /// port if any) for an IoT hub, `sb://{host}/{entity}` for an Event Hubs entity.
    pub audience: String,
    /// AMQPS port (TLS transport).
    pub amqps_port: u16,
    /// HTTPS port (WebSocket transport).
    pub https_port: u16,
    /// TLS or WebSockets.
    pub transport: Transport,
    /// The WebSocket path (WebSocket transport): [`PATH`](crate::websocket::PATH)
    /// (`/$iothub/websocket`) for an IoT hub, [`SERVICEBUS_PATH`]
    /// (`/$servicebus/websocket`) for an Event Hubs endpoint.
    pub websocket_path: &'static str,
    /// TLS settings (trusted roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// What signs the CBS tokens.
    pub credential: HubCredential,
    /// Bound on one connection attempt (TCP, TLS, AMQP open and CBS).
    pub connect_timeout: Duration,
    /// Attempts and backoff of [`connect`].
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("transport", &self.transport)
            .field("amqps_port", &self.amqps_port)
            .field("https_port", &self.https_port)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `amqps://host:port` or `wss://host:port/$iothub/websocket`, for messages.
    pub fn describe(&self) -> String {
        match self.transport {
            Transport::Amqp => format!("amqps://{}:{}", self.host, self.amqps_port),
            Transport::AmqpWebSockets => {
                format!(
                    "wss://{}:{}{}",
                    self.host, self.https_port, self.websocket_path
                )
            }
        }
    }
}

/// An open, authenticated AMQP session. A watcher task owns the connection and reports when
/// it ends ([`dead`](Self::dead)), so that work waiting on the connection fails at once
/// instead of waiting for a timeout. [`close`](Self::close) (or dropping it) closes the
/// connection and stops token renewal.
pub struct Authenticated {
    /// The session; attach links on it.
    pub session: SessionHandle<()>,
    dead: watch::Receiver<bool>,
    closer: Option<oneshot::Sender<()>>,
    renewer: JoinHandle<()>,
}

impl Authenticated {
    fn new(
        mut connection: ConnectionHandle<()>,
        session: SessionHandle<()>,
        mut cbs: Cbs,
        expires: Option<SystemTime>,
        endpoint: Endpoint,
    ) -> Self {
        let (dead_tx, dead) = watch::channel(false);
        let (closer, close_rx) = oneshot::channel::<()>();
        let mut renewer_dead = dead.clone();
        let renewer = tokio::spawn(async move {
            let mut expires = expires;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(renew_after(expires)) => {}
                    _ = renewer_dead.wait_for(|d| *d) => return,
                }
                match cbs.put_token(&endpoint).await {
                    Ok(next) => {
                        tracing::debug!("CBS token renewed");
                        expires = next;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "renewing the CBS token failed");
                        expires = None;
                        tokio::select! {
                            () = tokio::time::sleep(RENEW_RETRY) => {}
                            _ = renewer_dead.wait_for(|d| *d) => return,
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                _ = connection.on_close() => {}
                _ = close_rx => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection.close()).await;
                }
            }
            let _ = dead_tx.send(true);
        });
        Authenticated {
            session,
            dead,
            closer: Some(closer),
            renewer,
        }
    }

    /// Completes when the connection has ended.
    pub fn dead(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut dead = self.dead.clone();
        async move {
            let _ = dead.wait_for(|d| *d).await;
        }
    }

    /// Ends the session and closes the connection in the background.
    pub fn close(self) {
        let Authenticated {
            mut session,
            closer,
            renewer,
            ..
        } = self;
        renewer.abort();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), session.end()).await;
            if let Some(closer) = closer {
                let _ = closer.send(());
            }
        });
    }
}

/// Opens an authenticated session, retrying per the policy.
///
/// # Errors
/// [`Error::Unauthorized`] when the token is refused, [`Error::Credential`],
/// [`Error::Config`], or [`Error::Connect`] / [`Error::Timeout`] once the retries are spent.
pub async fn connect(endpoint: &Endpoint) -> Result<Authenticated, Error> {
    let mut attempt = 0u32;
    loop {
        let result =
            match tokio::time::timeout(endpoint.connect_timeout, connect_once(endpoint)).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout(endpoint.connect_timeout)),
            };
        match result {
            Ok(open) => return Ok(open),
            // A refused token or a bad credential will not get better by retrying.
            Err(e @ (Error::Unauthorized { .. } | Error::Credential(_) | Error::Config(_))) => {
                return Err(e);
            }
            Err(e) => {
                attempt += 1;
                if attempt >= endpoint.retry.max_attempts() {
                    return Err(match e {
                        e @ Error::Connect { .. } => e,
                        other => Error::Connect {
                            endpoint: endpoint.describe(),
                            source: Box::new(other),
                        },
                    });
                }
                let delay = endpoint.retry.delay(attempt);
                tracing::debug!(error = %e, ?delay, attempt, "AMQP connect failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn connect_once(endpoint: &Endpoint) -> Result<Authenticated, Error> {
    let connect_error = |e: Box<dyn std::error::Error + Send + Sync>| Error::Connect {
        endpoint: endpoint.describe(),
        source: e,
    };
    let port = match endpoint.transport {
        Transport::Amqp => endpoint.amqps_port,
        Transport::AmqpWebSockets => endpoint.https_port,
    };
    let tcp = TcpStream::connect((endpoint.host.as_str(), port))
        .await
        .map_err(|e| connect_error(Box::new(e)))?;
    let _ = tcp.set_nodelay(true);
    let server_name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| Error::Config(format!("'{}' is not a valid host name: {e}", endpoint.host)))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&endpoint.tls))
        .connect(server_name, tcp)
        .await
        .map_err(|e| connect_error(Box::new(e)))?;
    let container_id = format!("iothub-c2d-{}", uuid::Uuid::new_v4().simple());
    let builder = Connection::builder()
        .container_id(container_id)
        .hostname(endpoint.host.as_str())
        .sasl_profile(SaslProfile::Anonymous);
    let mut connection = match endpoint.transport {
        Transport::Amqp => {
            builder
                .open_with_stream(iothub_transport::BatchedWrites::new(tls))
                .await
        }
        Transport::AmqpWebSockets => {
            let url = endpoint.describe();
            let mut request = url
                .into_client_request()
                .map_err(|e| connect_error(Box::new(e)))?;
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(SUB_PROTOCOL),
            );
            let (ws, _response) = tokio_tungstenite::client_async(request, tls)
                .await
                .map_err(|e| connect_error(Box::new(e)))?;
            builder
                .open_with_stream(iothub_transport::BatchedWrites::new(WsStream::new(ws)))
                .await
        }
    }
    .map_err(|e| connect_error(Box::new(e)))?;
    let mut session = match Session::begin(&mut connection).await {
        Ok(session) => session,
        Err(e) => {
            let _ = connection.close().await;
            return Err(Error::amqp(e));
        }
    };
    let mut cbs = match Cbs::attach(&mut session).await {
        Ok(cbs) => cbs,
        Err(e) => {
            let _ = connection.close().await;
            return Err(e);
        }
    };
    let expires = match cbs.put_token(endpoint).await {
        Ok(expires) => expires,
        Err(e) => {
            let _ = connection.close().await;
            return Err(e);
        }
    };
    Ok(Authenticated::new(
        connection,
        session,
        cbs,
        expires,
        endpoint.clone(),
    ))
}

/// A TLS client configuration trusting the platform's roots plus `extra_pems` (PEM files'
/// contents, one or more certificates each).
///
/// # Errors
/// [`Error::Config`] for a PEM without a certificate or an invalid certificate.
pub fn tls_config(extra_pems: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for pem in extra_pems {
        let mut found = 0;
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(pem) {
            let cert: rustls_pki_types::CertificateDer<'static> =
                cert.map_err(|e| Error::Config(format!("invalid root certificate PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("invalid root certificate: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::Config(
                "a root certificate PEM holds no certificate".into(),
            ));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// The `status-code` and `status-description` of a request-response reply (CBS,
/// `$management`), or `None` when its `correlation-id` is not `request_id` (the reply of
/// another request on the same link). A missing status reads as 0.
pub fn reply_status<B>(message: &Message<B>, request_id: &str) -> Option<(i32, String)> {
    let correlates = message
        .properties
        .as_ref()
        .and_then(|p| p.correlation_id.as_ref())
        .is_some_and(|c| matches!(c, MessageId::String(s) if s == request_id));
    if !correlates {
        return None;
    }
    let app = message.application_properties.as_ref();
    let status = app
        .and_then(|a| a.0.get("status-code"))
        .and_then(|v| match v {
            SimpleValue::Int(n) => Some(*n),
            SimpleValue::Long(n) => i32::try_from(*n).ok(),
            SimpleValue::Uint(n) => i32::try_from(*n).ok(),
            SimpleValue::Short(n) => Some(i32::from(*n)),
            _ => None,
        })
        .unwrap_or(0);
    let description = app
        .and_then(|a| a.0.get("status-description"))
        .and_then(|v| match v {
            SimpleValue::String(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Some((status, description))
}

/// When to put a new token: a fifth of the remaining life (at most five minutes) before
/// the old one expires.
fn renew_after(expires: Option<SystemTime>) -> Duration {
    let Some(expires) = expires else {
        return OPAQUE_TOKEN_RENEWAL;
    };
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let margin = (left / 5).min(Duration::from_secs(300));
    left.saturating_sub(margin).max(Duration::from_millis(500))
}

/// The claims-based-security links: a sender to `$cbs` and a receiver for its replies.
struct Cbs {
    sender: Sender,
    receiver: Receiver,
}

impl Cbs {
    async fn attach(session: &mut SessionHandle<()>) -> Result<Self, Error> {
        let sender = Sender::builder()
            .name(format!("cbs-sender-{}", uuid::Uuid::new_v4().simple()))
            .source("cbs")
            .target("$cbs")
            .attach(session)
            .await
            .map_err(Error::amqp)?;
        let receiver = Receiver::builder()
            .name(format!("cbs-receiver-{}", uuid::Uuid::new_v4().simple()))
            .source("$cbs")
            .target("cbs")
            .attach(session)
            .await
            .map_err(Error::amqp)?;
        Ok(Cbs { sender, receiver })
    }

    /// Puts the credential's current token; returns its expiry when known.
    async fn put_token(&mut self, endpoint: &Endpoint) -> Result<Option<SystemTime>, Error> {
        let header = endpoint
            .credential
            .authorization_header()
            .await
            .map_err(Error::Credential)?;
        let header = header.expose();
        let (kind, token, expires) = match header.strip_prefix("Bearer ") {
            Some(jwt) => ("Bearer", jwt.to_owned(), None),
            None => {
                let expires = iothub_auth::sas::ParsedSasToken::parse(header)
                    .ok()
                    .map(|t| UNIX_EPOCH + Duration::from_secs(t.expiry));
                (
                    "servicebus.windows.net:sastoken",
                    header.to_owned(),
                    expires,
                )
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut app = OrderedMap::new();
        app.insert(
            "operation".to_owned(),
            SimpleValue::String("put-token".into()),
        );
        app.insert("type".to_owned(), SimpleValue::String(kind.into()));
        app.insert(
            "name".to_owned(),
            SimpleValue::String(endpoint.audience.clone()),
        );
        let request = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::String(id.clone())),
                reply_to: Some("cbs".into()),
                to: Some("$cbs".into()),
                ..Default::default()
            })
            .application_properties(ApplicationProperties(app))
            .value(Value::String(token))
            .build();
        let exchange = async {
            self.sender.send(request).await.map_err(Error::amqp)?;
            loop {
                let reply = self
                    .receiver
                    .recv::<Body<Value>>()
                    .await
                    .map_err(Error::amqp)?;
                let _ = self.receiver.accept(&reply).await;
                let message = reply.message();
                let Some((status, description)) = reply_status(message, &id) else {
                    continue;
                };
                // IoT Hub answers 200; other CBS servers answer 202. Any 2xx is success.
                return if (200..300).contains(&status) {
                    Ok(expires)
                } else {
                    Err(Error::Unauthorized {
                        status,
                        description,
                    })
                };
            }
        };
        tokio::time::timeout(PUT_TOKEN_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Timeout(PUT_TOKEN_TIMEOUT))?
    }
}
