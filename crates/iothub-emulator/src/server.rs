//! The HTTPS listener: TLS accept loop, HTTP/1.1 and HTTP/2 via hyper, graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::conn::{ConnState, Tracker};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts the next connection. When the process is out of file descriptors the connection
/// idle longest is closed to make room; other errors are logged and retried after a pause.
pub(crate) async fn accept(
    listener: &TcpListener,
    tracker: &Tracker,
    protocol: &str,
) -> (TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                // EMFILE (24) / ENFILE (23): out of descriptors.
                let out_of_files = matches!(e.raw_os_error(), Some(23 | 24));
                if out_of_files && tracker.shed_one() {
                    tracing::warn!(
                        protocol,
                        "out of file descriptors; closed the connection idle longest"
                    );
                    tokio::task::yield_now().await;
                } else {
                    tracing::warn!(protocol, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Accepts TLS connections on `listener` until `shutdown` completes and runs `handle` on each
/// in its own task: the accept loop of the AMQPS and MQTTS listeners. Connections are
/// registered with `tracker`; a handshake that fails or takes longer than the handshake
/// timeout is dropped (and logged at debug level under `protocol`).
pub(crate) async fn serve_tls<H, F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    tracker: Arc<Tracker>,
    protocol: &'static str,
    shutdown: impl Future<Output = ()> + Send,
    handle: H,
) where
    H: Fn(tokio_rustls::server::TlsStream<crate::conn::Tracked<TcpStream>>, Arc<ConnState>) -> F
        + Clone
        + Send
        + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let handshake = tracker.limits().handshake_timeout;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            pair = accept(&listener, &tracker, protocol) => pair,
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let handle = handle.clone();
        let tcp = tracker.track(tcp);
        tokio::spawn(async move {
            let _ = tcp.get_ref().set_nodelay(true);
            let state = Arc::clone(tcp.state());
            match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => handle(stream, state).await,
                Ok(Err(e)) => tracing::debug!(%peer, protocol, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, protocol, "TLS handshake timed out"),
            }
        });
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (up to five seconds). Connections are registered with `tracker`, which
/// applies the connection limits.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    tracker: Arc<Tracker>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = tracker.limits();
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            pair = accept(&listener, &tracker, "HTTPS") => pair,
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tcp = tracker.track(tcp);
        tokio::spawn(async move {
            let _ = tcp.get_ref().set_nodelay(true);
            let conn = Arc::clone(tcp.state());
            let stream =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let body_timeout = limits.body_timeout;
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let guard = conn.begin_request();
                let mut request = trim_trailing_slash(request);
                // A WebSocket upgrade hands this connection to another endpoint, which takes
                // over its limits (MQTT's keep-alive).
                request.extensions_mut().insert(Arc::clone(&conn));
                let request = request.map(|body| {
                    axum::body::Body::new(StallTimeout::new(body, body_timeout, Arc::clone(&conn)))
                });
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(guard);
                    response
                }
            });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("some connections were still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

/// IoT Hub routes `/devices/` like `/devices` (the Node SDK's `Registry.list` sends the
/// former), so a trailing slash is dropped before routing; and the device routes'
/// `messages/deviceBound` segment matches in any case (clients send both `deviceBound` and
/// `devicebound`), so it is lower-cased.
fn trim_trailing_slash<B>(mut request: hyper::Request<B>) -> hyper::Request<B> {
    let path = request.uri().path();
    let folded = fold_devicebound(path);
    if (path.len() > 1 && path.ends_with('/')) || folded.is_some() {
        let path = folded.as_deref().unwrap_or(path);
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = hyper::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The path with a `/messages/deviceBound` segment (any case) spelled `devicebound`, or
/// `None` when there is nothing to change.
fn fold_devicebound(path: &str) -> Option<String> {
    let lower = path.to_ascii_lowercase();
    let at = lower.find("/messages/devicebound")? + "/messages/".len();
    let segment = &path[at..at + "devicebound".len()];
    if segment == "devicebound" {
        return None;
    }
    Some(format!(
        "{}devicebound{}",
        &path[..at],
        &path[at + "devicebound".len()..]
    ))
}

/// A request body that fails, and closes its connection, when the client sends nothing for
/// `timeout` while the body is being read.
struct StallTimeout {
    inner: Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    conn: Arc<ConnState>,
}

impl StallTimeout {
    fn new(inner: Incoming, timeout: Duration, conn: Arc<ConnState>) -> Self {
        StallTimeout {
            inner,
            timeout,
            deadline: None,
            conn,
        }
    }
}

/// The error a stalled body yields.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no part of the request body for {0:?}")]
pub struct BodyStalled(Duration);

impl HttpBody for StallTimeout {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    this.conn.close();
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
