//! The MQTT endpoint: IoT Hub's device side over MQTT 3.1.1, on the MQTTS port (TLS) and on
//! the HTTPS port at `/$iothub/websocket` (sub-protocol `mqtt`). Both run [`serve_stream`]
//! over any byte stream. Packets are read and written by the packet codec of the rumqtt
//! project (`rumqttc::mqttbytes::v4`); everything IoT Hub-specific is here or below.
//!
//! Rules (Microsoft's "Communicate with an IoT hub using the MQTT protocol"):
//! - CONNECT: client id `deviceId` or `deviceId/moduleId`; user name
//!   `{host}/{clientId}/?api-version=…` (further query parameters allowed); password a SAS
//!   token for the identity. Refusals: protocol level other than 4 → return code 1, a client
//!   id or user name that names no identity → 2 / 4, a malformed token → 4, an unknown or
//!   disabled identity, a wrong key or an expired token → 5, a store failure → 3.
//! - Topics: only the identity's own (see [`iothub_core::mqtt`]). A PUBLISH elsewhere, or with
//!   QoS 2, closes the connection; a SUBSCRIBE to a topic IoT Hub does not serve is refused
//!   for that filter (return code 0x80); QoS 2 subscriptions are granted QoS 1.
//! - The connection closes when the token expires (the SDKs reconnect with a new one), when
//!   another connection with the same client id arrives, and after one and a half times the
//!   keep-alive without a packet.
//!
//! What the device does goes to the domain modules: telemetry to the event log, twin reads
//! and reported properties to the registry, method answers to the sessions, PUBACKs of
//! cloud-to-device messages to the C2D queues (a PUBACK completes; a message not acknowledged
//! when the connection ends returns to its queue and is delivered again, its delivery count
//! one higher).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use iothub_core::mqtt::{self as topics, Topic};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, Protocol, QoS};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::auth::{DeviceAuthError, Policies, authenticate_device};
use crate::c2d::{C2dQueues, DeliveredMessage, Settlement};
use crate::conn::{ConnState, ConnectionLimits, Tracker};
use crate::events::{AuthMethod, EventLog, Telemetry};
use crate::model::AuthenticationType;
use crate::registry::{Registry, RegistryError};
use crate::sessions::{Identity, MethodResponse, Session, SessionEvent, Sessions, Subscription};
use crate::x509::{PeerCertificates, TrustedCas};

/// Largest packet read: a 256 KB message plus room for its topic and properties.
const MAX_PACKET_BYTES: usize = crate::events::MAX_MESSAGE_BYTES + 16 * 1024;
/// Cloud-to-device messages delivered and not yet acknowledged, per connection.
const C2D_WINDOW: usize = 16;

/// What the MQTT endpoint works with.
pub struct MqttContext {
    /// The registry (credentials, twins, connection state).
    pub registry: Registry,
    /// Shared access policies (policy tokens with device connect).
    pub policies: Arc<Policies>,
    /// Device sessions and method calls.
    pub sessions: Arc<Sessions>,
    /// Cloud-to-device queues.
    pub queues: Arc<C2dQueues>,
    /// The telemetry event log.
    pub events: Arc<EventLog>,
    /// Connection limits (handshake timeout, idle timeout).
    pub limits: ConnectionLimits,
    /// Becomes `true` when the emulator stops.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// CAs trusted for `certificateAuthority` identities.
    pub trusted_cas: TrustedCas,
}

impl fmt::Debug for MqttContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttContext").finish_non_exhaustive()
    }
}

/// Serves MQTT over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<MqttContext>,
    tracker: Arc<Tracker>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    crate::server::serve_tls(
        listener,
        tls,
        tracker,
        "MQTTS",
        shutdown,
        move |stream, state| {
            let peer = stream.get_ref().1.peer_certificates().map(|chain| {
                PeerCertificates(chain.iter().map(|c| c.clone().into_owned()).collect())
            });
            serve_stream(stream, Arc::clone(&ctx), Some(state), peer)
        },
    )
    .await;
}

/// Why a connection ends.
#[derive(Debug)]
enum Close {
    /// The peer closed, sent DISCONNECT, or the socket failed.
    Gone,
    /// A protocol or IoT Hub rule was broken (logged).
    Violation(String),
    /// Another connection took over the identity.
    Replaced,
    /// The token expired.
    Expired,
    /// The emulator is stopping.
    Stopping,
}

/// An authenticated identity.
struct LoggedIn {
    identity: Identity,
    generation_id: String,
    auth: AuthMethod,
    expiry: Option<SystemTime>,
}

/// Reads the next packet, reading more bytes as needed. `Ok(None)` at end of stream.
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, String> {
    loop {
        match Packet::read(buf, MAX_PACKET_BYTES) {
            Ok(packet) => return Ok(Some(packet)),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed packet: {e}")),
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

async fn write_packet<S: AsyncWrite + Unpin>(stream: &mut S, packet: Packet) -> Result<(), Close> {
    let mut out = BytesMut::with_capacity(packet.size() + 8);
    packet
        .write(&mut out, usize::MAX)
        .map_err(|e| Close::Violation(format!("cannot encode a packet: {e}")))?;
    stream.write_all(&out).await.map_err(|_| Close::Gone)?;
    stream.flush().await.map_err(|_| Close::Gone)
}

/// Serves one MQTT connection over an established byte stream (TLS or WebSocket). `conn` is
/// the connection's state in the tracker, when the transport has one (its idle limit becomes
/// 1.5 × keep-alive); `peer` the client certificates from the TLS handshake, if any.
pub async fn serve_stream<S>(
    mut stream: S,
    ctx: Arc<MqttContext>,
    conn: Option<Arc<ConnState>>,
    peer: Option<PeerCertificates>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let first = tokio::time::timeout(
        ctx.limits.handshake_timeout,
        read_packet(&mut stream, &mut buf),
    )
    .await;
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Err(e)) if e.contains("protocol") => {
            let _ = write_packet(
                &mut stream,
                connack(ConnectReturnCode::RefusedProtocolVersion),
            )
            .await;
            tracing::debug!(error = %e, "MQTT connection refused");
            return;
        }
        _ => {
            tracing::debug!("MQTT connection closed before a CONNECT");
            return;
        }
    };
    let login = match login(&ctx, &connect, peer.as_ref()).await {
        Ok(login) => login,
        Err((code, why)) => {
            tracing::info!(client = %connect.client_id.escape_default(), code = ?code, reason = %why, "MQTT connection refused");
            let _ = write_packet(&mut stream, connack(code)).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    if let Some(conn) = &conn {
        let limit = if connect.keep_alive == 0 {
            ctx.limits.idle_timeout
        } else {
            Duration::from_millis(u64::from(connect.keep_alive) * 1500)
        };
        conn.set_idle_limit(limit);
    }
    let session = ctx.sessions.open(login.identity.clone());
    // A persistent session (cleanSession=0) keeps its subscriptions across connections, as
    // IoT Hub does; the official SDKs rely on it (they do not subscribe again).
    let kept = if connect.clean_session {
        ctx.sessions.forget_subscriptions(&login.identity);
        None
    } else {
        ctx.sessions.kept_subscriptions(&login.identity)
    };
    let ack = ConnAck::new(ConnectReturnCode::Success, kept.is_some());
    if write_packet(&mut stream, Packet::ConnAck(ack))
        .await
        .is_err()
    {
        ctx.sessions.close(&session);
        return;
    }
    tracing::info!(identity = %login.identity, "MQTT device connected");
    let mut connection = Connection {
        ctx: Arc::clone(&ctx),
        login,
        session,
        c2d: None,
        next_pkid: 0,
        persistent: !connect.clean_session,
        filters: Vec::new(),
    };
    for filter in kept.unwrap_or_default() {
        connection.subscribe(&filter, QoS::AtLeastOnce);
    }
    let outcome = connection.run(&mut stream, buf).await;
    connection.finish().await;
    match outcome {
        Close::Violation(why) => {
            tracing::info!(identity = %connection.login.identity, reason = %why, "MQTT connection closed")
        }
        other => {
            tracing::info!(identity = %connection.login.identity, reason = ?other, "MQTT device disconnected")
        }
    }
    let _ = stream.shutdown().await;
}

fn connack(code: ConnectReturnCode) -> Packet {
    Packet::ConnAck(ConnAck::new(code, false))
}

/// Checks CONNECT: protocol level, client id, user name and password.
async fn login(
    ctx: &MqttContext,
    connect: &Connect,
    peer: Option<&PeerCertificates>,
) -> Result<LoggedIn, (ConnectReturnCode, String)> {
    if connect.protocol != Protocol::V4 {
        return Err((
            ConnectReturnCode::RefusedProtocolVersion,
            "IoT Hub speaks MQTT 3.1.1 (protocol level 4)".into(),
        ));
    }
    let client_id = connect.client_id.as_str();
    let (device_id, module_id) = match client_id.split_once('/') {
        Some((d, m)) => (d, Some(m)),
        None => (client_id, None),
    };
    if device_id.is_empty() || module_id.is_some_and(|m| m.is_empty() || m.contains('/')) {
        return Err((
            ConnectReturnCode::BadClientId,
            "the client id must be the device id or deviceId/moduleId".into(),
        ));
    }
    let Some(credentials) = &connect.login else {
        return Err((
            ConnectReturnCode::BadUserNamePassword,
            "CONNECT has no user name".into(),
        ));
    };
    // `{host}/{clientId}/?api-version=…`: the part between the host and the query must be
    // the client id.
    let path = credentials.username.split('?').next().unwrap_or_default();
    let named = path
        .split_once('/')
        .map(|(_, rest)| rest.trim_end_matches('/'));
    if named != Some(client_id) {
        return Err((
            ConnectReturnCode::BadUserNamePassword,
            "the user name must be {host}/{clientId}/?api-version=…".into(),
        ));
    }
    let found = ctx
        .registry
        .credentials(device_id.to_owned(), module_id.map(str::to_owned))
        .await;
    let found = match found {
        Ok(found) => found,
        Err(RegistryError::Store(e)) => {
            return Err((
                ConnectReturnCode::ServiceUnavailable,
                format!("store failure: {e}"),
            ));
        }
        Err(e) => return Err((ConnectReturnCode::NotAuthorized, e.to_string())),
    };
    if !found.enabled {
        return Err((
            ConnectReturnCode::NotAuthorized,
            "the device is disabled".into(),
        ));
    }
    let identity = Identity::new(device_id, module_id.map(str::to_owned));
    match found.auth.kind {
        AuthenticationType::Sas | AuthenticationType::None => {
            let keys: Vec<&str> = [&found.auth.primary_key, &found.auth.secondary_key]
                .into_iter()
                .filter_map(|k| k.as_deref())
                .collect();
            let expiry = authenticate_device(
                &ctx.policies,
                &credentials.password,
                device_id,
                module_id,
                &keys,
                SystemTime::now(),
            )
            .map_err(|e| {
                let code = match e {
                    DeviceAuthError::Malformed(_) => ConnectReturnCode::BadUserNamePassword,
                    DeviceAuthError::WrongKey(_) | DeviceAuthError::Expired => {
                        ConnectReturnCode::NotAuthorized
                    }
                };
                (code, e.to_string())
            })?;
            Ok(LoggedIn {
                identity,
                generation_id: found.generation_id,
                auth: AuthMethod::Sas,
                expiry: Some(expiry),
            })
        }
        AuthenticationType::SelfSigned | AuthenticationType::CertificateAuthority => {
            let chain = peer.map(|p| p.0.as_slice()).unwrap_or_default();
            let Some(end) = chain.first() else {
                return Err((
                    ConnectReturnCode::NotAuthorized,
                    "an X.509 identity must present its client certificate (on the MQTTS port)"
                        .into(),
                ));
            };
            if found.auth.kind == AuthenticationType::SelfSigned {
                let expected: Vec<&str> = [
                    &found.auth.primary_thumbprint,
                    &found.auth.secondary_thumbprint,
                ]
                .into_iter()
                .filter_map(|t| t.as_deref())
                .collect();
                if !crate::x509::matches_thumbprint(end, &expected) {
                    return Err((
                        ConnectReturnCode::NotAuthorized,
                        "the client certificate's thumbprint is neither the primary nor the secondary thumbprint".into(),
                    ));
                }
            } else {
                ctx.trusted_cas
                    .verify(chain, device_id)
                    .map_err(|why| (ConnectReturnCode::NotAuthorized, why))?;
            }
            Ok(LoggedIn {
                identity,
                generation_id: found.generation_id,
                auth: AuthMethod::X509,
                expiry: None,
            })
        }
    }
}

/// Cloud-to-device delivery state of a connection subscribed to its queue.
struct C2dDelivery {
    signal: Arc<tokio::sync::Notify>,
    /// Packet id → lock token of messages delivered and not yet acknowledged.
    in_flight: HashMap<u16, String>,
    /// Whether the queue may hold more than was taken last time.
    poll: bool,
}

type PendingAck =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<u16>, Close>> + Send>>;

struct Connection {
    ctx: Arc<MqttContext>,
    login: LoggedIn,
    session: Session,
    c2d: Option<C2dDelivery>,
    next_pkid: u16,
    /// Whether the session outlives the connection (`cleanSession=0`).
    persistent: bool,
    /// The granted subscriptions, kept for a persistent session.
    filters: Vec<String>,
}

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Send + Unpin>(
        &mut self,
        stream: &mut S,
        mut buf: BytesMut,
    ) -> Close {
        let mut stop = self.ctx.stop.clone();
        let expiry = self
            .login
            .expiry
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_secs(u64::MAX / 4));
        let expires = tokio::time::sleep(expiry.min(Duration::from_secs(100 * 365 * 86_400)));
        tokio::pin!(expires);
        // Telemetry appends in flight; each yields the packet id to acknowledge, in order.
        let mut acks: FuturesOrdered<PendingAck> = FuturesOrdered::new();
        loop {
            // Handle every complete packet already buffered.
            loop {
                match Packet::read(&mut buf, MAX_PACKET_BYTES) {
                    Ok(packet) => {
                        if let Err(close) = self.handle(stream, packet, &mut acks).await {
                            return close;
                        }
                    }
                    Err(CodecError::InsufficientBytes(_)) => break,
                    Err(e) => return Close::Violation(format!("malformed packet: {e}")),
                }
            }
            let c2d_ready = self
                .c2d
                .as_ref()
                .is_some_and(|c| c.poll && c.in_flight.len() < C2D_WINDOW);
            let signal = self.c2d.as_ref().map(|c| Arc::clone(&c.signal));
            tokio::select! {
                read = stream.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Close::Gone,
                    Ok(_) => {}
                },
                Some(done) = acks.next(), if !acks.is_empty() => match done {
                    Ok(Some(pkid)) => {
                        if let Err(close) = write_packet(stream, Packet::PubAck(PubAck::new(pkid))).await {
                            return close;
                        }
                    }
                    Ok(None) => {}
                    Err(close) => return close,
                },
                event = self.session.events.recv() => match event {
                    Some(SessionEvent::Replaced) | None => return Close::Replaced,
                    Some(event) => {
                        if let Err(close) = self.forward(stream, event).await {
                            return close;
                        }
                    }
                },
                () = async {}, if c2d_ready => {
                    if let Err(close) = self.deliver(stream).await {
                        return close;
                    }
                }
                () = async { match &signal { Some(s) => s.notified().await, None => std::future::pending().await } } => {
                    if let Some(c2d) = &mut self.c2d {
                        c2d.poll = true;
                    }
                }
                () = &mut expires => return Close::Expired,
                () = async { let _ = stop.wait_for(|s| *s).await; } => return Close::Stopping,
            }
        }
    }

    /// Returns unacknowledged messages to their queue and closes the session.
    async fn finish(&mut self) {
        let identity = &self.login.identity;
        if let Some(c2d) = self.c2d.take() {
            let tokens: Vec<String> = c2d.in_flight.into_values().collect();
            if let Err(e) = self
                .ctx
                .queues
                .release(&identity.device_id, identity.module_id.as_deref(), tokens)
                .await
            {
                tracing::warn!(error = %e, "returning unacknowledged cloud-to-device messages failed");
            }
            drop(c2d.signal);
            self.ctx
                .queues
                .drop_queue_signal(&identity.device_id, identity.module_id.as_deref());
        }
        self.ctx.sessions.close(&self.session);
    }

    fn pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            let taken = self
                .c2d
                .as_ref()
                .is_some_and(|c| c.in_flight.contains_key(&self.next_pkid));
            if self.next_pkid != 0 && !taken {
                return self.next_pkid;
            }
        }
    }

    /// Forwards what the hub tells the session: method requests and desired-property changes.
    async fn forward<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        event: SessionEvent,
    ) -> Result<(), Close> {
        let (topic, body) = match event {
            SessionEvent::MethodRequest {
                request_id,
                method,
                payload,
            } => (
                topics::method_request_topic(&method, &request_id.to_string()),
                payload,
            ),
            SessionEvent::DesiredPatch { version, patch } => {
                (topics::desired_topic(version), patch)
            }
            SessionEvent::Replaced => return Err(Close::Replaced),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        write_packet(
            stream,
            Packet::Publish(Publish::new(topic, QoS::AtMostOnce, body)),
        )
        .await
    }

    /// Delivers the next messages of the queue, up to the window.
    async fn deliver<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> Result<(), Close> {
        let Some(c2d) = &self.c2d else {
            return Ok(());
        };
        let room = C2D_WINDOW - c2d.in_flight.len();
        let identity = self.login.identity.clone();
        let messages = self
            .ctx
            .queues
            .receive(
                &identity.device_id,
                identity.module_id.as_deref(),
                room,
                None,
            )
            .await
            .map_err(|e| {
                Close::Violation(format!("reading the cloud-to-device queue failed: {e}"))
            })?;
        if let Some(c2d) = &mut self.c2d {
            c2d.poll = messages.len() == room;
        }
        for message in messages {
            let pkid = self.pkid();
            let topic = topics::c2d_topic(&identity.device_id, &c2d_property_bag(&message));
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, message.body.clone());
            publish.pkid = pkid;
            publish.dup = message.delivery_count > 1;
            if let Some(c2d) = &mut self.c2d {
                c2d.in_flight.insert(pkid, message.lock_token.clone());
            }
            write_packet(stream, Packet::Publish(publish)).await?;
        }
        Ok(())
    }

    async fn handle<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        packet: Packet,
        acks: &mut FuturesOrdered<PendingAck>,
    ) -> Result<(), Close> {
        match packet {
            Packet::Publish(publish) => self.on_publish(stream, publish, acks).await,
            Packet::PubAck(ack) => {
                let identity = &self.login.identity;
                let token = self
                    .c2d
                    .as_mut()
                    .and_then(|c| c.in_flight.remove(&ack.pkid));
                if let Some(token) = token {
                    self.ctx
                        .queues
                        .settle(
                            &identity.device_id,
                            identity.module_id.as_deref(),
                            &token,
                            Settlement::Complete,
                        )
                        .await
                        .map_err(|e| {
                            Close::Violation(format!("completing a message failed: {e}"))
                        })?;
                    if let Some(c2d) = &mut self.c2d {
                        c2d.poll = true;
                    }
                }
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for filter in &subscribe.filters {
                    codes.push(self.subscribe(&filter.path, filter.qos));
                }
                write_packet(stream, Packet::SubAck(SubAck::new(subscribe.pkid, codes))).await
            }
            Packet::Unsubscribe(unsubscribe) => {
                for path in &unsubscribe.topics {
                    self.unsubscribe(path);
                }
                write_packet(stream, Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid))).await
            }
            Packet::PingReq => write_packet(stream, Packet::PingResp).await,
            Packet::Disconnect => Err(Close::Gone),
            Packet::Connect(_) => Err(Close::Violation(
                "a second CONNECT on one connection".into(),
            )),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                Err(Close::Violation("QoS 2 is not supported by IoT Hub".into()))
            }
            other => Err(Close::Violation(format!(
                "unexpected packet from a device: {other:?}"
            ))),
        }
    }

    /// The granted QoS for a filter IoT Hub serves this identity, or a refusal; a granted
    /// filter is remembered for a persistent session.
    fn subscribe(&mut self, path: &str, qos: QoS) -> SubscribeReasonCode {
        let code = self.grant(path, qos);
        if code != SubscribeReasonCode::Failure && !self.filters.iter().any(|f| f == path) {
            self.filters.push(path.to_owned());
            if self.persistent {
                self.ctx
                    .sessions
                    .keep_subscriptions(&self.login.identity, self.filters.clone());
            }
        }
        code
    }

    fn grant(&mut self, path: &str, qos: QoS) -> SubscribeReasonCode {
        let granted = SubscribeReasonCode::Success(match qos {
            QoS::AtMostOnce => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        });
        let identity = &self.login.identity;
        if path == topics::METHODS_SUBSCRIPTION {
            self.ctx
                .sessions
                .subscribe(&self.session, Subscription::Methods);
            granted
        } else if path == topics::DESIRED_SUBSCRIPTION {
            self.ctx
                .sessions
                .subscribe(&self.session, Subscription::DesiredProperties);
            granted
        } else if path == topics::TWIN_RESPONSES_SUBSCRIPTION {
            granted
        } else if identity.module_id.is_none()
            && path == topics::c2d_subscription(&identity.device_id)
        {
            if self.c2d.is_none() {
                self.c2d = Some(C2dDelivery {
                    signal: self.ctx.queues.queue_signal(&identity.device_id, None),
                    in_flight: HashMap::new(),
                    poll: true,
                });
            }
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        } else {
            tracing::debug!(identity = %identity, filter = %path.escape_default(), "MQTT subscription refused");
            SubscribeReasonCode::Failure
        }
    }

    fn unsubscribe(&mut self, path: &str) {
        self.filters.retain(|f| f != path);
        if self.persistent {
            self.ctx
                .sessions
                .keep_subscriptions(&self.login.identity, self.filters.clone());
        }
        if path == topics::METHODS_SUBSCRIPTION {
            self.ctx
                .sessions
                .unsubscribe(&self.session, Subscription::Methods);
        } else if path == topics::DESIRED_SUBSCRIPTION {
            self.ctx
                .sessions
                .unsubscribe(&self.session, Subscription::DesiredProperties);
        }
    }

    async fn on_publish<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        publish: Publish,
        acks: &mut FuturesOrdered<PendingAck>,
    ) -> Result<(), Close> {
        if publish.qos == QoS::ExactlyOnce {
            return Err(Close::Violation("QoS 2 is not supported by IoT Hub".into()));
        }
        let identity = self.login.identity.clone();
        match Topic::parse(&publish.topic) {
            Some(Topic::Telemetry {
                device_id,
                module_id,
                properties,
            }) if device_id == identity.device_id && module_id == identity.module_id => {
                let mut event = telemetry_from_bag(&properties);
                event.device_id = device_id;
                event.module_id = module_id;
                event.generation_id = self.login.generation_id.clone();
                event.auth = Some(self.login.auth);
                if publish.retain {
                    event
                        .application
                        .push(("mqtt-retain".into(), "true".into()));
                }
                event.body = publish.payload.to_vec();
                let events = Arc::clone(&self.ctx.events);
                let pkid = (publish.qos == QoS::AtLeastOnce).then_some(publish.pkid);
                acks.push_back(Box::pin(async move {
                    match events.append(event).await {
                        Ok(_) => Ok(pkid),
                        Err(crate::events::EventError::TooLarge(n)) => {
                            Err(Close::Violation(format!(
                                "a device-to-cloud message of {n} bytes is over IoT Hub's 256 KB"
                            )))
                        }
                        Err(e) => Err(Close::Violation(format!("storing telemetry failed: {e}"))),
                    }
                }));
                Ok(())
            }
            Some(Topic::MethodResponse { status, request_id }) => {
                let payload = if publish.payload.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&publish.payload).into_owned())
                    })
                };
                if let Ok(id) = request_id.parse::<u64>() {
                    self.ctx
                        .sessions
                        .respond(&identity, id, MethodResponse { status, payload });
                }
                self.ack_if_needed(stream, &publish).await
            }
            Some(Topic::TwinGet { request_id }) => {
                let (status, body) = match self
                    .ctx
                    .registry
                    .get_twin(identity.device_id.clone(), identity.module_id.clone())
                    .await
                {
                    Ok(twin) => (200, twin_sections(&twin.doc)),
                    Err(e) => (error_status(&e), error_body(&e)),
                };
                self.ack_if_needed(stream, &publish).await?;
                let topic = topics::twin_response_topic(status, &request_id, None);
                write_packet(
                    stream,
                    Packet::Publish(Publish::new(topic, QoS::AtMostOnce, body)),
                )
                .await
            }
            Some(Topic::TwinReported { request_id }) => {
                let answer = match serde_json::from_slice::<Value>(&publish.payload) {
                    Err(_) => Err((400, br#"{"errorCode":400004,"message":"The reported properties are not valid JSON."}"#.to_vec())),
                    Ok(patch) => match self
                        .ctx
                        .registry
                        .update_reported_properties(identity.device_id.clone(), identity.module_id.clone(), patch)
                        .await
                    {
                        Ok(twin) => Ok(twin.doc["properties"]["reported"]["$version"].as_u64()),
                        Err(e) => Err((error_status(&e), error_body(&e))),
                    },
                };
                self.ack_if_needed(stream, &publish).await?;
                let (topic, body) = match answer {
                    Ok(version) => (
                        topics::twin_response_topic(204, &request_id, version),
                        Vec::new(),
                    ),
                    Err((status, body)) => {
                        (topics::twin_response_topic(status, &request_id, None), body)
                    }
                };
                write_packet(
                    stream,
                    Packet::Publish(Publish::new(topic, QoS::AtMostOnce, body)),
                )
                .await
            }
            _ => Err(Close::Violation(format!(
                "PUBLISH to '{}', which is not one of this identity's topics",
                publish.topic.escape_default()
            ))),
        }
    }

    async fn ack_if_needed<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        publish: &Publish,
    ) -> Result<(), Close> {
        if publish.qos == QoS::AtLeastOnce {
            write_packet(stream, Packet::PubAck(PubAck::new(publish.pkid))).await?;
        }
        Ok(())
    }
}

/// The body of a twin GET answer: `{"desired": {…, "$version"}, "reported": {…, "$version"}}`.
fn twin_sections(doc: &Value) -> Vec<u8> {
    let mut props = doc.get("properties").cloned().unwrap_or(Value::Null);
    for section in ["desired", "reported"] {
        if let Some(s) = props.get_mut(section).and_then(Value::as_object_mut) {
            s.remove("$metadata");
        }
    }
    serde_json::to_vec(&props).unwrap_or_default()
}

fn error_status(e: &RegistryError) -> u16 {
    e.code().status().unwrap_or(500)
}

fn error_body(e: &RegistryError) -> Vec<u8> {
    let body = serde_json::json!({
        "errorCode": e.code().number(),
        "message": e.to_string(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Telemetry fields from a topic's property bag: IoT Hub's `$.` system keys, everything else
/// an application property.
fn telemetry_from_bag(bag: &str) -> Telemetry {
    let mut event = Telemetry::default();
    for (key, value) in topics::decode_property_bag(bag) {
        let slot = match key.as_str() {
            topics::PROP_MESSAGE_ID => &mut event.message_id,
            topics::PROP_CORRELATION_ID => &mut event.correlation_id,
            topics::PROP_USER_ID => &mut event.user_id,
            topics::PROP_CONTENT_TYPE => &mut event.content_type,
            topics::PROP_CONTENT_ENCODING => &mut event.content_encoding,
            topics::PROP_EXPIRY => &mut event.expiry,
            topics::PROP_OUTPUT_NAME => &mut event.output_name,
            topics::PROP_TO => continue,
            _ => {
                event.application.push((key, value));
                continue;
            }
        };
        *slot = Some(value);
    }
    event
}

/// The property bag of a delivered cloud-to-device message: its system properties as `$.`
/// keys (`$.mid`, `$.cid`, `$.uid`, `$.to`, `$.ct`, `$.ce`, `$.exp`), then its application
/// properties, `iothub-ack` among them.
fn c2d_property_bag(message: &DeliveredMessage) -> String {
    let props = &message.properties;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let text = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_owned);
    for (bag_key, key) in [
        (topics::PROP_MESSAGE_ID, "messageId"),
        (topics::PROP_CORRELATION_ID, "correlationId"),
        (topics::PROP_USER_ID, "userId"),
        (topics::PROP_TO, "to"),
        (topics::PROP_CONTENT_TYPE, "contentType"),
        (topics::PROP_CONTENT_ENCODING, "contentEncoding"),
        (topics::PROP_EXPIRY, "absoluteExpiryTime"),
    ] {
        if let Some(v) = text(key) {
            pairs.push((bag_key.to_owned(), v));
        }
    }
    if let Some(app) = props
        .get("applicationProperties")
        .and_then(Value::as_object)
    {
        for (k, v) in app {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            pairs.push((k.clone(), v));
        }
    }
    topics::encode_property_bag(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_bags_split_system_and_application_properties() {
        let t =
            telemetry_from_bag("%24.mid=m1&$.ct=application%2Fjson&%24.ce=utf-8&temp=21&%24.to=x");
        assert_eq!(t.message_id.as_deref(), Some("m1"));
        assert_eq!(t.content_type.as_deref(), Some("application/json"));
        assert_eq!(t.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(t.application, vec![("temp".to_owned(), "21".to_owned())]);
    }

    #[test]
    fn twin_get_answers_have_no_metadata() {
        let doc = serde_json::json!({"properties": {
            "desired": {"a": 1, "$metadata": {}, "$version": 2},
            "reported": {"$metadata": {}, "$version": 1}}});
        let body: Value = serde_json::from_slice(&twin_sections(&doc)).unwrap_or_default();
        assert_eq!(
            body,
            serde_json::json!({"desired": {"a": 1, "$version": 2}, "reported": {"$version": 1}})
        );
    }
}
