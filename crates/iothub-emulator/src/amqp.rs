//! The AMQP 1.0 endpoint: cloud-to-device messaging for service clients, over TLS
//! (`--amqps-port`, IoT Hub's 5671) and over WebSockets on the HTTPS port
//! (`/$iothub/websocket`, sub-protocol `AMQPWSB10`).
//!
//! What a service client sees, as on IoT Hub:
//! - **Opening.** Both ways the official clients open a connection are accepted: the SASL
//!   header, with the mechanisms `MSSBCBS` (Python's uamqp) and `ANONYMOUS` offered, and the
//!   bare AMQP header without SASL (Node's rhea). Either way the client then authenticates
//!   through claims-based security.
//! - **CBS (`$cbs`).** A `put-token` request (application properties `operation`,
//!   `type = servicebus.windows.net:sastoken`, `name`; body: the token) is answered on the
//!   client's `$cbs` receiver with `status-code` 200 and `correlation-id` = the request's
//!   `message-id`, or 401 with a `status-description` that says why. Tokens are checked like
//!   the REST side: a shared access policy with *service connect*, a matching signature, not
//!   expired, for this hub. A later put-token renews the authorization.
//! - **Links.** Before a valid token (or after it expired) a link to `/messages/devicebound`
//!   or `/messages/servicebound/feedback` is refused with `amqp:unauthorized-access`.
//! - **`/messages/devicebound`.** Each transfer needs `to = /devices/{id}/messages/devicebound`
//!   (or `/devices/{id}/modules/{mid}/messages/devicebound`). It is accepted once stored
//!   durably, or rejected with IoT Hub's condition: `amqp:not-found` (DeviceNotFound),
//!   `amqp:resource-limit-exceeded` (DeviceMaximumQueueDepthExceeded),
//!   `amqp:link:message-size-exceeded` (MessageTooLarge), `com.microsoft:argument-error`
//!   (a malformed message). The description reads `ErrorCode:<Name>;<text>` and the error
//!   info carries `com.microsoft:tracking-id`.
//! - **`/messages/servicebound/feedback`.** Feedback records are sent as JSON arrays of at
//!   most 64 records, when 64 are waiting or when the feedback batch interval has passed
//!   since the last batch (15 s by default, as IoT Hub documents). A batch is deleted when
//!   the receiver accepts it and offered again otherwise.
//!
//! - **SASL PLAIN** (the `az iot` CLI, the Event Hubs samples): user
//!   `{policy}@sas.root.{hub}`, password a SAS token of that policy; checked at SASL (a wrong
//!   one gets the SASL outcome `auth`), after which the connection is authorized until the
//!   token expires, as after a CBS put-token.
//! - **The built-in endpoint** (`messages/events` and the Event Hubs-compatible entity): see
//!   [`crate::eventhub`].
//!
//! Connections that send nothing for the first 10 s, or fail the TLS handshake, are closed.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle,
    ListenerSessionHandle, SaslAcceptor, SessionAcceptor, SupportedReceiverSettleModes,
    SupportedSenderSettleModes,
};
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::types::definitions::{
    self, AmqpError, ErrorCondition, Fields, LinkError, ReceiverSettleMode, Role, SenderSettleMode,
};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{
    Array, Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value,
};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use fe2o3_amqp::{Receiver, Sender};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value as Json, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::auth::{Policies, Rights, authenticate_sasl_plain, authenticate_token};
use crate::c2d::{Ack, C2dError, C2dQueues, FEEDBACK_CONTENT_TYPE, OutgoingMessage};
use crate::conn::{ConnectionLimits, Tracker};
use crate::consumers::ConsumerGroups;
use crate::eventhub::{self, EventsNode};
use crate::events::EventLog;
use crate::journal::Journal;

/// Address of the service's send link.
pub const DEVICEBOUND: &str = "/messages/devicebound";
/// Address of the feedback receive link (matched case-insensitively, as clients differ).
pub const FEEDBACK: &str = "/messages/servicebound/feedback";
/// Address of the claims-based-security node.
pub const CBS: &str = "$cbs";
/// Default time between feedback batches (IoT Hub's C2D guide).
pub const DEFAULT_FEEDBACK_INTERVAL: Duration = Duration::from_secs(15);

const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";

/// What the AMQP endpoint needs from the rest of the emulator.
pub struct AmqpContext {
    /// The C2D queues.
    pub queues: Arc<C2dQueues>,
    /// Shared access policies.
    pub policies: Arc<Policies>,
    /// Throttling (class `CloudToDeviceSend`), shared with the REST API.
    pub throttle: Arc<crate::throttle::Throttle>,
    /// Logical hub name (container id, feedback user id).
    pub hub_name: String,
    /// Ports a token's host may name (HTTPS and AMQPS).
    pub ports: Mutex<Vec<u16>>,
    /// The request journal, if on.
    pub journal: Option<Arc<Journal>>,
    /// Time between feedback batches.
    pub feedback_interval: Duration,
    /// Becomes `true` when the emulator stops: every AMQP connection is then closed.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Connection limits; the idle timeout is advertised as the AMQP `idle-time-out`, and
    /// the handshake timeout bounds the wait for the protocol header.
    pub limits: ConnectionLimits,
    /// The telemetry event log the built-in endpoint serves.
    pub events: Arc<EventLog>,
    /// Consumer groups and the readers of each partition.
    pub consumers: Arc<ConsumerGroups>,
    /// The AMQPS port (named in the built-in endpoint's redirect).
    pub amqps_port: u16,
    /// When the hub was created (ms since the epoch; the entity's `created_at`).
    pub created_at_ms: i64,
}

impl AmqpContext {
    /// The Event Hubs-compatible entity's name: the hub name.
    pub fn entity(&self) -> &str {
        &self.hub_name
    }

    fn ports(&self) -> Vec<u16> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl fmt::Debug for AmqpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpContext")
            .field("hub_name", &self.hub_name)
            .finish_non_exhaustive()
    }
}

/// Serves AMQPS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<AmqpContext>,
    tracker: Arc<Tracker>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    crate::server::serve_tls(
        listener,
        tls,
        tracker,
        "AMQPS",
        shutdown,
        move |stream, _| serve_stream(stream, Arc::clone(&ctx)),
    )
    .await;
}

/// Serves one AMQP connection over an established byte stream (TLS or WebSocket).
pub async fn serve_stream<S>(mut stream: S, ctx: Arc<AmqpContext>)
where
    S: AsyncRead + AsyncWrite + fmt::Debug + Send + Unpin + 'static,
{
    let mut header = [0u8; 8];
    match tokio::time::timeout(ctx.limits.handshake_timeout, stream.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let stream = Replay {
        prefix: header,
        pos: 0,
        inner: stream,
    };
    // Frames written meanwhile go out together, in one TLS record and system call.
    let stream = iothub_transport::BatchedWrites::new(stream);
    // Clients that read performatives by fixed index need every field written out.
    let stream = crate::amqp_frames::PadPerformatives::new(stream);
    let container = format!("{}-amqp", ctx.hub_name);
    let idle_ms = u32::try_from(ctx.limits.idle_timeout.as_millis()).unwrap_or(u32::MAX);
    let sasl = ServiceSasl {
        ctx: Arc::clone(&ctx),
        plain_until: Arc::default(),
    };
    let plain_until = Arc::clone(&sasl.plain_until);
    let opened = if header == SASL_HEADER {
        ConnectionAcceptor::builder()
            .container_id(container)
            .idle_time_out(idle_ms)
            .sasl_acceptor(sasl)
            .build()
            .accept(stream)
            .await
    } else if header == AMQP_HEADER {
        ConnectionAcceptor::builder()
            .container_id(container)
            .idle_time_out(idle_ms)
            .build()
            .accept(stream)
            .await
    } else {
        let mut stream = stream;
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, &SASL_HEADER).await;
        let _ = tokio::io::AsyncWriteExt::flush(&mut stream).await;
        tracing::debug!("AMQP connection with an unsupported protocol header refused");
        return;
    };
    match opened {
        Ok(connection) => {
            tracing::info!(sasl = header == SASL_HEADER, "AMQP connection opened");
            let mut stop = ctx.stop.clone();
            let state = Arc::new(ConnState::default());
            *state
                .authorized_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                *plain_until.lock().unwrap_or_else(|p| p.into_inner());
            tokio::select! {
                () = run_connection(connection, ctx, state) => {}
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
            tracing::info!("AMQP connection closed");
        }
        Err(e) => tracing::info!(error = %e, "AMQP connection refused while opening"),
    }
}

/// Replays bytes already read (the protocol header) before the rest of the stream.
#[derive(Debug)]
struct Replay<S> {
    prefix: [u8; 8],
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// SASL for IoT Hub service clients: `MSSBCBS` ("authenticate later through CBS") and
/// `ANONYMOUS` both succeed, and the CBS token is what is checked; `PLAIN` carries the
/// token itself and is checked here ([`authenticate_sasl_plain`]).
#[derive(Clone)]
struct ServiceSasl {
    ctx: Arc<AmqpContext>,
    /// Until when a PLAIN login authorizes the connection.
    plain_until: Arc<Mutex<Option<SystemTime>>>,
}

impl SaslAcceptor for ServiceSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from("MSSBCBS"),
            Symbol::from("ANONYMOUS"),
            Symbol::from("PLAIN"),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let code = match init.mechanism.as_str() {
            "MSSBCBS" | "ANONYMOUS" => SaslCode::Ok,
            "PLAIN" => {
                let response = init
                    .initial_response
                    .map(|b| b.into_vec())
                    .unwrap_or_default();
                let mut fields = response.split(|b| *b == 0);
                let _authzid = fields.next();
                let user = fields.next().map(String::from_utf8_lossy);
                let password = fields.next().map(String::from_utf8_lossy);
                match (user, password) {
                    (Some(user), Some(password)) => match authenticate_sasl_plain(
                        &self.ctx.policies,
                        &user,
                        &password,
                        &self.ctx.ports(),
                        &self.ctx.hub_name,
                        SystemTime::now(),
                    ) {
                        Ok(until) => {
                            *self.plain_until.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(until);
                            SaslCode::Ok
                        }
                        Err(why) => {
                            tracing::info!(reason = %why, "SASL PLAIN login refused");
                            SaslCode::Auth
                        }
                    },
                    _ => {
                        tracing::info!("SASL PLAIN login refused: no user name and password");
                        SaslCode::Auth
                    }
                }
            }
            _ => SaslCode::Auth,
        };
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code: SaslCode::Auth,
            additional_data: None,
        })
    }
}

/// Per-connection state: the authorization from CBS and the CBS reply link.
#[derive(Default)]
struct ConnState {
    authorized_until: Mutex<Option<SystemTime>>,
    cbs_replies: Mutex<Option<mpsc::Sender<Message<AmqpValue<Value>>>>>,
    management_replies: Mutex<Option<mpsc::Sender<Message<AmqpValue<Value>>>>>,
}

impl ConnState {
    fn is_authorized(&self) -> bool {
        self.authorized_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| SystemTime::now() < until)
    }
}

async fn run_connection(
    mut connection: ListenerConnectionHandle,
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
) {
    let mut sessions = Vec::new();
    while let Ok(session) = SessionAcceptor::new().accept(&mut connection).await {
        sessions.push(tokio::spawn(run_session(
            session,
            Arc::clone(&ctx),
            Arc::clone(&state),
        )));
    }
    for session in sessions {
        session.abort();
    }
    let _ = connection.close().await;
}

/// Which node a link attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Cbs,
    Devicebound,
    Feedback,
    Events(EventsNode),
    Unknown,
}

fn node_of(address: Option<&str>, entity: &str) -> Node {
    // uamqp names nodes as URLs (`amqps://host/messages/devicebound`): keep the path.
    let address = address.map(|a| {
        let lower = a.to_ascii_lowercase();
        match ["amqps://", "amqp://", "wss://"]
            .iter()
            .find(|scheme| lower.starts_with(*scheme))
        {
            Some(scheme) => {
                let rest = &a[scheme.len()..];
                rest.find('/').map_or("", |i| &rest[i..])
            }
            None => a,
        }
    });
    match address {
        Some(a) if a == CBS => Node::Cbs,
        Some(a) if a.eq_ignore_ascii_case(DEVICEBOUND) => Node::Devicebound,
        Some(a) if a.eq_ignore_ascii_case(FEEDBACK) => Node::Feedback,
        Some(a) => eventhub::events_node(a, entity).map_or(Node::Unknown, Node::Events),
        None => Node::Unknown,
    }
}

async fn run_session(
    mut session: ListenerSessionHandle,
    ctx: Arc<AmqpContext>,
    state: Arc<ConnState>,
) {
    // Dispositions are sent settled (receiver-settle-mode `first`), as IoT Hub does: uamqp
    // asks for `second` but completes a send only on a settled disposition.
    let acceptor = LinkAcceptor::builder()
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .build();
    // Partition readers get their events pre-settled whatever they ask for, as Event Hubs
    // sends them: reading is not destructive, so there is nothing for the reader to settle
    // (and readers such as azure-eventhub's never settle).
    let reader_acceptor = LinkAcceptor::builder()
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .supported_sender_settle_modes(SupportedSenderSettleModes::Settled)
        .fallback_sender_settle_mode(SenderSettleMode::Settled)
        .build();
    let mut links = Vec::new();
    while let Some(attach) = session.next_incoming_attach().await {
        let node = match attach.role {
            // The peer sends: the node is the target.
            Role::Sender => node_of(
                attach.target.as_deref().and_then(|t| match t {
                    fe2o3_amqp::types::messaging::TargetArchetype::Target(t) => {
                        t.address.as_deref()
                    }
                    #[allow(unreachable_patterns)]
                    _ => None,
                }),
                ctx.entity(),
            ),
            // The peer receives: the node is the source.
            Role::Receiver => node_of(
                attach.source.as_deref().and_then(|s| s.address.as_deref()),
                ctx.entity(),
            ),
        };
        // What a partition reader asks for is read from the attach before it is answered.
        let reader_request = match &node {
            Node::Events(EventsNode::Partition { .. }) => Some((
                eventhub::start_position(attach.source.as_deref().and_then(|s| {
                    s.filter
                        .as_ref()
                        .and_then(|f| f.get(&Symbol::from(eventhub::SELECTOR_FILTER)))
                })),
                eventhub::epoch_of(attach.properties.as_ref()),
            )),
            _ => None,
        };
        let link_acceptor = match node {
            Node::Events(EventsNode::Partition { .. }) => &reader_acceptor,
            _ => &acceptor,
        };
        let endpoint = match link_acceptor
            .accept_incoming_attach(attach, &mut session)
            .await
        {
            Ok(endpoint) => endpoint,
            Err(e) => {
                tracing::debug!(error = ?e, "AMQP attach failed");
                continue;
            }
        };
        let needs_auth = matches!(
            node,
            Node::Devicebound
                | Node::Feedback
                | Node::Events(EventsNode::Redirect { .. } | EventsNode::Partition { .. })
        );
        if needs_auth && !state.is_authorized() {
            refuse(
                endpoint,
                amqp_error(
                    ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
                    "IotHubUnauthorizedAccess",
                    "Put a valid token on $cbs before attaching this link.",
                ),
            )
            .await;
            continue;
        }
        let task = match (node, endpoint) {
            (Node::Cbs, LinkEndpoint::Receiver(receiver)) => {
                tokio::spawn(cbs_requests(receiver, Arc::clone(&ctx), Arc::clone(&state)))
            }
            (Node::Cbs, LinkEndpoint::Sender(sender)) => {
                let (tx, rx) = mpsc::channel(16);
                *state.cbs_replies.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
                tokio::spawn(cbs_replies(sender, rx))
            }
            (Node::Devicebound, LinkEndpoint::Receiver(receiver)) => {
                tokio::spawn(devicebound(receiver, Arc::clone(&ctx), Arc::clone(&state)))
            }
            (Node::Feedback, LinkEndpoint::Sender(sender)) => {
                tokio::spawn(feedback(sender, Arc::clone(&ctx)))
            }
            (Node::Events(EventsNode::Redirect { rest }), endpoint @ LinkEndpoint::Sender(_)) => {
                let error = eventhub::redirect_error(ctx.entity(), ctx.amqps_port, &rest);
                tokio::spawn(async move {
                    // The detach follows the attach as its own step, as on IoT Hub, so a
                    // client that installs its error handler once the attach completes
                    // (the Event Hubs samples do) still sees it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    refuse(endpoint, error).await;
                })
            }
            (Node::Events(EventsNode::Management), LinkEndpoint::Receiver(receiver)) => {
                tokio::spawn(management_requests(
                    receiver,
                    Arc::clone(&ctx),
                    Arc::clone(&state),
                ))
            }
            (Node::Events(EventsNode::Management), LinkEndpoint::Sender(sender)) => {
                let (tx, rx) = mpsc::channel(16);
                *state
                    .management_replies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(tx);
                tokio::spawn(cbs_replies(sender, rx))
            }
            (
                Node::Events(EventsNode::Partition { group, partition }),
                LinkEndpoint::Sender(sender),
            ) => {
                let (position, epoch) =
                    reader_request.unwrap_or((Ok(crate::events::StartPosition::Start), Ok(None)));
                match start_reader(&ctx, &group, &partition, position, epoch).await {
                    Ok((lease, partition, next)) => {
                        let state = Arc::clone(&state);
                        tokio::spawn(eventhub::deliver(
                            sender,
                            Arc::clone(&ctx.events),
                            partition,
                            next,
                            lease,
                            Box::new(move || {
                                *state
                                    .authorized_until
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                            }),
                        ))
                    }
                    Err(error) => {
                        refuse(LinkEndpoint::Sender(sender), error).await;
                        continue;
                    }
                }
            }
            (Node::Events(_), endpoint) => {
                refuse(
                    endpoint,
                    eventhub::plain_error(
                        ErrorCondition::AmqpError(AmqpError::NotImplemented),
                        "The built-in endpoint is read-only: devices send telemetry, which is read from {entity}/ConsumerGroups/{group}/Partitions/{id}.",
                    ),
                )
                .await;
                continue;
            }
            (_, endpoint) => {
                refuse(
                    endpoint,
                    amqp_error(
                        ErrorCondition::AmqpError(AmqpError::NotFound),
                        "GenericNotFound",
                        &format!(
                            "This IoT hub has no such node for a service client; its built-in endpoint is the entity '{}'.",
                            ctx.entity()
                        ),
                    ),
                )
                .await;
                continue;
            }
        };
        links.push(task);
    }
    for link in links {
        link.abort();
    }
    let _ = session.end().await;
}

async fn refuse(endpoint: LinkEndpoint, error: definitions::Error) {
    let _ = match endpoint {
        LinkEndpoint::Sender(sender) => sender.close_with_error(error).await.map(|_| ()),
        LinkEndpoint::Receiver(receiver) => receiver.close_with_error(error).await.map(|_| ()),
    };
}

/// An AMQP error in IoT Hub's style: `ErrorCode:<Name>;<text>` and a tracking id.
fn amqp_error(condition: ErrorCondition, code_name: &str, text: &str) -> definitions::Error {
    let mut info = Fields::new();
    info.insert(
        Symbol::from("com.microsoft:tracking-id"),
        Value::String(uuid::Uuid::new_v4().simple().to_string()),
    );
    definitions::Error {
        condition,
        description: Some(format!("ErrorCode:{code_name};{text}")),
        info: Some(Box::new(info)),
    }
}

fn c2d_amqp_error(error: &C2dError) -> definitions::Error {
    let condition = match error {
        C2dError::DeviceNotFound(_) | C2dError::ModuleNotFound { .. } => {
            ErrorCondition::AmqpError(AmqpError::NotFound)
        }
        C2dError::QueueFull(_) => ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded),
        C2dError::TooLarge(_) => ErrorCondition::LinkError(LinkError::MessageSizeExceeded),
        C2dError::Invalid(_) => {
            ErrorCondition::Custom(Symbol::from("com.microsoft:argument-error"))
        }
        _ => ErrorCondition::AmqpError(AmqpError::InternalError),
    };
    amqp_error(condition, error.code().name(), &error.to_string())
}

async fn cbs_requests(mut receiver: Receiver, ctx: Arc<AmqpContext>, state: Arc<ConnState>) {
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let _ = receiver.accept(&delivery).await;
        let message = delivery.message();
        let props = message.properties.as_ref();
        let get = |name: &str| app_text(message, name);
        let token = body_bytes(&message.body).and_then(|b| String::from_utf8(b).ok());
        let (status, description) = match (get("operation").as_deref(), get("type"), token) {
            (Some("put-token"), Some(kind), Some(token)) => {
                if kind.eq_ignore_ascii_case("servicebus.windows.net:sastoken") {
                    match authenticate_token(
                        &ctx.policies,
                        &token,
                        &ctx.ports(),
                        ctx.entity(),
                        Rights::SERVICE_CONNECT,
                        SystemTime::now(),
                    ) {
                        Ok((_, until)) => {
                            *state.authorized_until.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(until);
                            (200, "OK".to_owned())
                        }
                        Err(refusal) => (refusal.status, refusal.message),
                    }
                } else {
                    (
                        401,
                        format!(
                            "Token type '{}' is not supported by the emulator; use servicebus.windows.net:sastoken.",
                            kind.escape_default()
                        ),
                    )
                }
            }
            (Some("put-token"), _, _) => (
                400,
                "A put-token request needs the application properties 'type' and 'name' and the token as its body.".to_owned(),
            ),
            _ => (
                400,
                "Only the 'put-token' operation is supported on $cbs.".to_owned(),
            ),
        };
        let mut app = OrderedMap::new();
        app.insert("status-code".to_owned(), SimpleValue::Int(status));
        app.insert(
            "status-description".to_owned(),
            SimpleValue::String(description),
        );
        let reply = Message::builder()
            .properties(Properties {
                correlation_id: props.and_then(|p| p.message_id.clone()),
                to: props.and_then(|p| p.reply_to.clone()),
                ..Default::default()
            })
            .application_properties(ApplicationProperties(app))
            .value(Value::Null)
            .build();
        reply_on(&state.cbs_replies, reply, CBS).await;
    }
}

/// Sends a request-response reply on the connection's reply link for `node`. The reply link
/// is normally attached before the first request; if not, it is waited for briefly.
async fn reply_on(
    slot: &Mutex<Option<mpsc::Sender<Message<AmqpValue<Value>>>>>,
    reply: Message<AmqpValue<Value>>,
    node: &str,
) {
    for _ in 0..50 {
        let tx = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            if tx.send(reply).await.is_err() {
                tracing::debug!(node, "reply dropped: the reply link closed");
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::debug!(node, "reply dropped: no receiver link for replies");
}

/// Checks a partition reader's request and claims its place: the lease, the partition and
/// the first sequence number to deliver.
async fn start_reader(
    ctx: &AmqpContext,
    group: &str,
    partition: &str,
    position: Result<crate::events::StartPosition, String>,
    epoch: Result<Option<i64>, String>,
) -> Result<(crate::consumers::ReaderLease, u32, i64), definitions::Error> {
    let argument = |text: &str| {
        eventhub::plain_error(
            ErrorCondition::Custom(Symbol::from("com.microsoft:argument-error")),
            text,
        )
    };
    let position = position.map_err(|e| argument(&e))?;
    let epoch = epoch.map_err(|e| argument(&e))?;
    // Partition ids are written as Event Hubs lists them ("0", "1", …): "01" or "+1" are
    // not aliases.
    let id = partition
        .parse::<u32>()
        .ok()
        .filter(|p| *p < ctx.events.partitions() && p.to_string() == partition)
        .ok_or_else(|| {
            eventhub::plain_error(
                ErrorCondition::AmqpError(AmqpError::NotFound),
                &format!(
                    "Partition '{}' does not exist; the partitions are 0 to {}.",
                    partition.escape_default(),
                    ctx.events.partitions().saturating_sub(1)
                ),
            )
        })?;
    let lease = ctx
        .consumers
        .claim(group, id, epoch)
        .map_err(|e| eventhub::consumer_error(&e))?;
    let next = ctx.events.resolve(id, position).await.map_err(|e| {
        let condition = match e {
            crate::events::EventError::OutOfRange { .. } => {
                ErrorCondition::Custom(Symbol::from("com.microsoft:argument-out-of-range"))
            }
            _ => ErrorCondition::AmqpError(AmqpError::InternalError),
        };
        eventhub::plain_error(condition, &e.to_string())
    })?;
    Ok((lease, id, next))
}

/// An application property of a request as text (string or symbol).
fn app_text(message: &Message<Body<Value>>, name: &str) -> Option<String> {
    match message.application_properties.as_ref()?.0.get(name)? {
        SimpleValue::String(s) => Some(s.clone()),
        SimpleValue::Symbol(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Requests to the built-in endpoint's `$management` node; answers go out on the
/// connection's `$management` receiver link.
async fn management_requests(mut receiver: Receiver, ctx: Arc<AmqpContext>, state: Arc<ConnState>) {
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let _ = receiver.accept(&delivery).await;
        let message = delivery.message();
        let get = |name: &str| app_text(message, name);
        // Authorized by the connection (CBS or SASL PLAIN) or by the request's own token.
        let authorized = state.is_authorized()
            || get("security_token").is_some_and(|token| {
                authenticate_token(
                    &ctx.policies,
                    &token,
                    &ctx.ports(),
                    ctx.entity(),
                    Rights::SERVICE_CONNECT,
                    SystemTime::now(),
                )
                .is_ok()
            });
        let outcome = if authorized {
            match eventhub::management_request(get) {
                Ok(request) => {
                    eventhub::answer_management(
                        &request,
                        ctx.entity(),
                        ctx.created_at_ms,
                        &ctx.events,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        } else {
            Err((
                401,
                "Put a valid token on $cbs, or in the request's security_token, first.".to_owned(),
            ))
        };
        let reply = eventhub::management_reply(message, outcome);
        reply_on(&state.management_replies, reply, "$management").await;
    }
}

async fn cbs_replies(mut sender: Sender, mut rx: mpsc::Receiver<Message<AmqpValue<Value>>>) {
    while let Some(reply) = rx.recv().await {
        if sender.send(reply).await.is_err() {
            break;
        }
    }
    let _ = sender.close().await;
}

/// The bytes of a body: the data sections concatenated, or a string or binary value.
fn body_bytes(body: &Body<Value>) -> Option<Vec<u8>> {
    match body {
        Body::Data(sections) => Some(sections.iter().flat_map(|d| d.0.iter().copied()).collect()),
        Body::Value(v) => match &v.0 {
            Value::String(s) => Some(s.clone().into_bytes()),
            Value::Binary(b) => Some(b.to_vec()),
            Value::Null => Some(Vec::new()),
            _ => None,
        },
        Body::Empty => Some(Vec::new()),
        _ => None,
    }
}

fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => {
            let bytes: [u8; 16] = u.clone().into_inner();
            uuid::Uuid::from_bytes(bytes).to_string()
        }
        MessageId::Binary(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn simple_to_json(value: &SimpleValue) -> Json {
    match value {
        SimpleValue::Null => Json::Null,
        SimpleValue::Bool(b) => Json::Bool(*b),
        SimpleValue::Ubyte(n) => json!(n),
        SimpleValue::Ushort(n) => json!(n),
        SimpleValue::Uint(n) => json!(n),
        SimpleValue::Ulong(n) => json!(n),
        SimpleValue::Byte(n) => json!(n),
        SimpleValue::Short(n) => json!(n),
        SimpleValue::Int(n) => json!(n),
        SimpleValue::Long(n) => json!(n),
        SimpleValue::Float(f) => json!(f.into_inner()),
        SimpleValue::Double(f) => json!(f.into_inner()),
        SimpleValue::String(s) => Json::String(s.clone()),
        SimpleValue::Symbol(s) => Json::String(s.as_str().to_owned()),
        SimpleValue::Timestamp(t) => Json::String(crate::clock::format_time(
            crate::c2d::from_millis(t.milliseconds()),
        )),
        SimpleValue::Binary(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        other => Json::String(format!("{other:?}")),
    }
}

/// Reads `/devices/{id}[/modules/{mid}]/messages/devicebound` (ids percent-decoded).
fn parse_to(to: &str) -> Option<(String, Option<String>)> {
    let rest = to.strip_prefix("/devices/")?;
    let rest = rest.strip_suffix("/messages/devicebound")?;
    let (device, module) = match rest.split_once("/modules/") {
        Some((d, m)) => (d, Some(m)),
        None => (rest, None),
    };
    let decode =
        |s: &str| iothub_auth::sas::decode(s).filter(|s| !s.is_empty() && !s.contains('/'));
    let device = decode(device)?;
    let module = match module {
        Some(m) => Some(decode(m)?),
        None => None,
    };
    Some((device, module))
}

/// Reads a transfer on `/messages/devicebound` into a message to enqueue, and the JSON that
/// the journal and the stored message keep.
fn read_devicebound(message: &Message<Body<Value>>) -> Result<(OutgoingMessage, Json), C2dError> {
    let props = message.properties.clone().unwrap_or_default();
    let to = props.to.as_deref().ok_or_else(|| {
        C2dError::Invalid(
            "The message has no 'to' property; set it to /devices/{deviceId}/messages/devicebound."
                .into(),
        )
    })?;
    let (device_id, module_id) = parse_to(to).ok_or_else(|| {
        C2dError::Invalid(format!(
            "The 'to' property '{}' is not /devices/{{deviceId}}/messages/devicebound.",
            to.escape_default()
        ))
    })?;
    let body = body_bytes(&message.body).ok_or_else(|| {
        C2dError::Invalid("The message body must be data sections, a string or binary.".into())
    })?;
    let mut application = Map::new();
    let mut ack = Ack::None;
    if let Some(app) = &message.application_properties {
        for (key, value) in app.0.iter() {
            if key == "iothub-ack" {
                let text = match value {
                    SimpleValue::String(s) => s.clone(),
                    SimpleValue::Symbol(s) => s.as_str().to_owned(),
                    _ => {
                        return Err(C2dError::Invalid(
                            "iothub-ack must be a string: none, positive, negative or full.".into(),
                        ));
                    }
                };
                ack = text.parse::<Ack>().map_err(|_| {
                    C2dError::Invalid(format!(
                        "iothub-ack '{}' is not one of none, positive, negative, full.",
                        text.escape_default()
                    ))
                })?;
            }
            application.insert(key.clone(), simple_to_json(value));
        }
    }
    let expiry: Option<DateTime<Utc>> = props
        .absolute_expiry_time
        .as_ref()
        .map(|t| crate::c2d::from_millis(t.milliseconds()));
    let message_id = props.message_id.as_ref().map(message_id_text);
    let correlation_id = props.correlation_id.as_ref().map(message_id_text);
    for (name, id) in [
        ("message-id", message_id.as_deref()),
        ("correlation-id", correlation_id.as_deref()),
    ] {
        if let Some(id) = id
            && !crate::model::is_valid_id(id)
        {
            return Err(C2dError::Invalid(format!(
                "The {name} must be 1 to 128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ ' (IoT Hub's message format)."
            )));
        }
    }
    // IoT Hub's 64 KB limit covers the whole message: body, properties and application
    // properties (names and values as text).
    let text = |s: Option<&str>| s.map_or(0, str::len);
    let size = body.len()
        + text(props.to.as_deref())
        + text(message_id.as_deref())
        + text(correlation_id.as_deref())
        + props.user_id.as_ref().map_or(0, |b| b.len())
        + text(props.content_type.as_ref().map(|s| s.as_str()))
        + text(props.content_encoding.as_ref().map(|s| s.as_str()))
        + application
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len))
            .sum::<usize>();
    if size > crate::c2d::MAX_MESSAGE_BYTES {
        return Err(C2dError::TooLarge(size));
    }
    let mut wire = BTreeMap::new();
    wire.insert("to", json!(to));
    wire.insert("messageId", json!(message_id));
    wire.insert("correlationId", json!(correlation_id));
    wire.insert(
        "userId",
        json!(
            props
                .user_id
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        ),
    );
    wire.insert(
        "contentType",
        json!(props.content_type.as_ref().map(|s| s.as_str().to_owned())),
    );
    wire.insert(
        "contentEncoding",
        json!(
            props
                .content_encoding
                .as_ref()
                .map(|s| s.as_str().to_owned())
        ),
    );
    wire.insert(
        "absoluteExpiryTime",
        json!(expiry.map(crate::clock::format_time)),
    );
    wire.insert("applicationProperties", Json::Object(application));
    let properties = serde_json::to_value(&wire).unwrap_or(Json::Null);
    Ok((
        OutgoingMessage {
            device_id,
            module_id,
            message_id,
            ack,
            expiry,
            properties: properties.clone(),
            body,
        },
        properties,
    ))
}

type Settlement =
    Pin<Box<dyn std::future::Future<Output = (DeliveryInfo, Result<(), C2dError>)> + Send>>;

async fn devicebound(mut receiver: Receiver, ctx: Arc<AmqpContext>, state: Arc<ConnState>) {
    let mut pending: FuturesUnordered<Settlement> = FuturesUnordered::new();
    loop {
        tokio::select! {
            delivery = receiver.recv::<Body<Value>>() => {
                let Ok(delivery) = delivery else { break };
                let (info, message) = delivery.into_parts();
                if !state.is_authorized() {
                    let error = amqp_error(
                        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
                        "IotHubUnauthorizedAccess",
                        "The token put on $cbs has expired; put a new one.",
                    );
                    let _ = receiver.reject(info, error).await;
                    continue;
                }
                if ctx.throttle.check(crate::throttle::OperationClass::CloudToDeviceSend).is_err() {
                    let error = amqp_error(
                        ErrorCondition::Custom(Symbol::from("com.microsoft:device-container-throttled")),
                        "ThrottlingException",
                        "The request has been throttled. Wait and try again. Operation type: C2DSend",
                    );
                    let _ = receiver.reject(info, error).await;
                    continue;
                }
                let ctx = Arc::clone(&ctx);
                pending.push(Box::pin(async move {
                    let result = match read_devicebound(&message) {
                        Ok((outgoing, wire)) => {
                            let size = outgoing.body.len();
                            let result = ctx.queues.enqueue(outgoing).await;
                            journal(&ctx, &wire, size, &result);
                            result
                        }
                        Err(e) => Err(e),
                    };
                    (info, result)
                }));
            }
            Some(first) = pending.next(), if !pending.is_empty() => {
                // A group commit settles many messages at once: the accepted ones that are
                // ready share one disposition (a range of delivery ids where they are
                // consecutive) instead of one frame and one flush each.
                let mut accepted = Vec::new();
                let mut rejected = Vec::new();
                let mut next = Some(first);
                while let Some((info, result)) = next {
                    match result {
                        Ok(()) => accepted.push(info),
                        Err(e) => rejected.push((info, e)),
                    }
                    next = futures::FutureExt::now_or_never(pending.next()).flatten();
                }
                let mut outcome = if accepted.is_empty() {
                    Ok(())
                } else {
                    receiver.accept_all(accepted).await
                };
                for (info, e) in rejected {
                    if outcome.is_ok() {
                        outcome = receiver.reject(info, c2d_amqp_error(&e)).await;
                    }
                }
                if outcome.is_err() {
                    break;
                }
            }
        }
    }
    // Messages still being stored are committed or not; their dispositions cannot be sent.
    let _ = receiver.close().await;
}

fn journal(ctx: &AmqpContext, wire: &Json, size: usize, result: &Result<(), C2dError>) {
    let Some(journal) = &ctx.journal else {
        return;
    };
    journal.append(&json!({
        "protocol": "amqp",
        "link": DEVICEBOUND,
        "properties": wire,
        "bodyBytes": size,
        "outcome": match result {
            Ok(()) => "accepted".to_owned(),
            Err(e) => format!("rejected:{}", e.code().name()),
        },
    }));
}

async fn feedback(mut sender: Sender, ctx: Arc<AmqpContext>) {
    let interval = ctx.feedback_interval;
    let mut last_batch: Option<Instant> = None;
    loop {
        let due = last_batch.is_none_or(|at| at.elapsed() >= interval);
        let batch = if due {
            match ctx.queues.take_feedback().await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "reading feedback failed");
                    None
                }
            }
        } else {
            None
        };
        let Some(batch) = batch else {
            let wait = match last_batch {
                Some(at) if !due => interval.saturating_sub(at.elapsed()),
                _ => interval.min(Duration::from_secs(1)),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = ctx.queues.feedback_changed() => {}
                _ = sender.on_detach() => return,
            }
            continue;
        };
        let message = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::String(uuid::Uuid::new_v4().to_string())),
                user_id: Some(Binary::from(ctx.hub_name.as_bytes().to_vec())),
                content_type: Some(Symbol::from(FEEDBACK_CONTENT_TYPE)),
                creation_time: Some(Timestamp::from_milliseconds(Utc::now().timestamp_millis())),
                ..Default::default()
            })
            .data(Binary::from(batch.body))
            .build();
        last_batch = Some(Instant::now());
        match sender.send(message).await {
            Ok(Outcome::Accepted(_)) => {
                if let Err(e) = ctx.queues.complete_feedback(batch.seqs).await {
                    tracing::warn!(error = %e, "completing feedback failed");
                }
            }
            Ok(_) => ctx.queues.release_feedback(&batch.seqs),
            Err(_) => {
                ctx.queues.release_feedback(&batch.seqs);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_addresses() {
        assert_eq!(
            parse_to("/devices/d1/messages/devicebound"),
            Some(("d1".into(), None))
        );
        assert_eq!(
            parse_to("/devices/a%23b/modules/m1/messages/devicebound"),
            Some(("a#b".into(), Some("m1".into())))
        );
        assert_eq!(parse_to("/devices//messages/devicebound"), None);
        assert_eq!(parse_to("/devices/d1/messages/events"), None);
        assert_eq!(parse_to("devices/d1/messages/devicebound"), None);
    }

    #[test]
    fn message_ids_follow_the_id_rule() {
        assert!(crate::model::is_valid_id(
            "3f2b6c1e-0c1d-4b7e-9a55-2d8f0f9e1a77"
        ));
        assert!(crate::model::is_valid_id("m:1.+%_#*?!(),=@;$'-"));
        assert!(!crate::model::is_valid_id(""));
        assert!(!crate::model::is_valid_id("has space"));
        assert!(!crate::model::is_valid_id("é"));
        assert!(!crate::model::is_valid_id(&"x".repeat(129)));
        assert!(crate::model::is_valid_id(&"x".repeat(128)));
    }

    #[test]
    fn nodes() {
        assert_eq!(node_of(Some("$cbs"), "hub"), Node::Cbs);
        assert_eq!(
            node_of(Some("/messages/serviceBound/feedback"), "hub"),
            Node::Feedback
        );
        assert_eq!(
            node_of(Some("/messages/devicebound"), "hub"),
            Node::Devicebound
        );
        assert_eq!(
            node_of(
                Some("amqps://localhost:5671/messages/events/$management"),
                "hub"
            ),
            Node::Events(EventsNode::Redirect {
                rest: "/$management".into()
            })
        );
        assert_eq!(
            node_of(
                Some("amqps://localhost:5671/hub/ConsumerGroups/$Default/Partitions/1"),
                "hub"
            ),
            Node::Events(EventsNode::Partition {
                group: "$Default".into(),
                partition: "1".into()
            })
        );
        assert_eq!(node_of(Some("/other/$cbs"), "hub"), Node::Unknown);
        assert_eq!(node_of(None, "hub"), Node::Unknown);
        assert_eq!(
            node_of(Some("amqps://localhost/messages/devicebound"), "hub"),
            Node::Devicebound
        );
        assert_eq!(
            node_of(
                Some("amqps://localhost:5671/messages/serviceBound/feedback"),
                "hub"
            ),
            Node::Feedback
        );
        assert_eq!(node_of(Some("amqps://localhost"), "hub"), Node::Unknown);
    }
}
