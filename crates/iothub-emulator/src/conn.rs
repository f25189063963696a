//! Connection limits shared by every listener (HTTPS, AMQPS, and the WebSocket transports
//! that run on the HTTPS port): a bounded number of open connections, an idle timeout, and
//! a kill switch that works whoever drives the socket.
//!
//! Every accepted TCP stream is wrapped in a [`Tracked`] stream registered with a
//! [`Tracker`]. The wrapper records when bytes last arrived and whether a request is being
//! served; a sweeper task closes connections that received nothing for the idle timeout
//! while no request was in progress, and when more than `max_connections` are open the
//! connection that has been idle longest is closed first.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Default for [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Default for [`ConnectionLimits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ConnectionLimits::header_timeout`] (hyper's own default).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ConnectionLimits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Time limits and the connection bound applied to every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once over all listeners (default 1000). When a new
    /// connection would exceed it, the connection idle longest is closed; when none is idle
    /// the new one is closed.
    pub max_connections: usize,
    /// Time for the TLS handshake, and for an AMQP client's protocol header (default 10 s).
    pub handshake_timeout: Duration,
    /// Time for a complete HTTP/1.1 request head, counted from when the connection is ready
    /// for a request (default 30 s). On a kept-alive HTTP/1.1 connection this also bounds the
    /// wait for the next request.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body (default 30 s); a stalled body fails
    /// the request and closes the connection.
    pub body_timeout: Duration,
    /// A connection that received no bytes for this long while no request was in progress is
    /// closed (default 120 s). AMQP connections advertise it as their `idle-time-out`, so
    /// live clients send heartbeats well within it.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// State of one connection, shared between its stream and the tracker.
#[derive(Debug)]
pub struct ConnState {
    id: u64,
    /// Milliseconds since the tracker's epoch when bytes last arrived (or the connection
    /// was accepted, or a request finished).
    last_activity: AtomicU64,
    /// Requests in progress.
    busy: AtomicUsize,
    closed: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
    epoch: Instant,
    /// This connection's own idle limit in milliseconds (0: the tracker's idle timeout). MQTT
    /// sets it from the client's keep-alive.
    idle_limit_ms: AtomicU64,
}

impl ConnState {
    /// Gives this connection its own idle limit instead of the tracker's idle timeout (MQTT:
    /// one and a half times the keep-alive the client asked for).
    pub fn set_idle_limit(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        self.idle_limit_ms.store(ms, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_activity.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks a request as started; the returned guard marks it finished when dropped.
    pub fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        RequestGuard(Arc::clone(self))
    }

    /// Closes the connection: pending and later reads and writes fail.
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let wakers =
                std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|p| p.into_inner()));
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn register(&self, cx: &Context<'_>) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            if wakers.len() >= 4 {
                wakers.remove(0);
            }
            wakers.push(cx.waker().clone());
        }
    }

    /// Idle time, or `None` while a request is in progress.
    fn idle_for(&self, now_ms: u64) -> Option<u64> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(now_ms.saturating_sub(self.last_activity.load(Ordering::Relaxed)))
    }
}

/// Marks a request in progress on a connection until dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Registry of open connections over all listeners.
#[derive(Debug)]
pub struct Tracker {
    limits: ConnectionLimits,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Tracker {
    /// A tracker enforcing `limits`; call [`Tracker::sweep_forever`] in a task to close idle
    /// connections.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Tracker {
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The limits.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a newly accepted stream. If that makes more than `max_connections`, the
    /// connection idle longest is closed (possibly this new one, when every other
    /// connection is serving a request).
    pub fn track<S>(self: &Arc<Self>, io: S) -> Tracked<S> {
        let state = Arc::new(ConnState {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            last_activity: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
            epoch: self.epoch,
            idle_limit_ms: AtomicU64::new(0),
        });
        state.touch();
        let mut open = self.lock();
        open.insert(state.id, Arc::clone(&state));
        while open.len() > self.limits.max_connections.max(1) {
            let now = state.now_ms();
            let victim = open
                .values()
                .filter_map(|c| c.idle_for(now).map(|idle| (idle, c.id)))
                .filter(|(_, id)| *id != state.id)
                .max()
                .map(|(_, id)| id)
                .unwrap_or(state.id);
            if let Some(conn) = open.remove(&victim) {
                tracing::debug!(
                    connection = victim,
                    "connection limit reached; closing the connection idle longest"
                );
                conn.close();
            }
            if victim == state.id {
                break;
            }
        }
        drop(open);
        Tracked {
            io,
            state,
            tracker: Arc::clone(self),
        }
    }

    /// Closes the connection idle longest, if any; used when the process runs out of file
    /// descriptors. Returns whether one was closed.
    pub fn shed_one(&self) -> bool {
        let mut open = self.lock();
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let victim = open
            .values()
            .filter_map(|c| c.idle_for(now).map(|idle| (idle, c.id)))
            .max()
            .map(|(_, id)| id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.close();
                true
            }
            None => false,
        }
    }

    /// Closes connections idle for longer than the idle timeout.
    pub fn sweep(&self) {
        let limit = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut open = self.lock();
        open.retain(|_, conn| {
            let own = conn.idle_limit_ms.load(Ordering::Relaxed);
            let limit = if own == 0 { limit } else { own };
            let expired = conn.idle_for(now).is_some_and(|idle| idle >= limit);
            if expired {
                conn.close();
            }
            !expired && !conn.is_closed()
        });
    }

    /// Runs [`Tracker::sweep`] periodically (a quarter of the idle timeout, between 10 ms
    /// and 1 s) until `stop` completes.
    pub async fn sweep_forever(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let period =
            (self.limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                () = &mut stop => break,
            }
        }
    }
}

/// A stream registered with a [`Tracker`]: records incoming activity, and fails every read
/// and write once the tracker closes it. Dropping it unregisters the connection.
#[derive(Debug)]
pub struct Tracked<S> {
    io: S,
    state: Arc<ConnState>,
    tracker: Arc<Tracker>,
}

impl<S> Tracked<S> {
    /// The connection's shared state.
    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        self.tracker.lock().remove(&self.state.id);
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the hub's connection limits",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.state.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                self.state.register(cx);
                if self.state.is_closed() {
                    return Poll::Ready(Err(closed_error()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        if result.is_pending() {
            self.state.register(cx);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if result.is_pending() {
            self.state.register(cx);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            idle_timeout: Duration::from_millis(50),
            ..ConnectionLimits::default()
        }
    }

    #[tokio::test]
    async fn over_the_limit_the_longest_idle_is_closed_first() {
        let tracker = Tracker::new(limits(2));
        let a = tracker.track(());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = tracker.track(());
        let _busy = b.state().begin_request();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let c = tracker.track(());
        assert!(a.state().is_closed(), "oldest idle connection is shed");
        assert!(
            !b.state().is_closed(),
            "a connection serving a request is kept"
        );
        assert!(!c.state().is_closed());
        assert_eq!(tracker.open_count(), 2);
        // Every other connection busy: the newcomer is refused.
        let _busy_c = c.state().begin_request();
        let d = tracker.track(());
        assert!(d.state().is_closed());
        assert_eq!(tracker.open_count(), 2);
    }

    #[tokio::test]
    async fn sweep_closes_idle_connections_but_not_busy_ones() {
        let tracker = Tracker::new(limits(10));
        let idle = tracker.track(());
        let busy = tracker.track(());
        let guard = busy.state().begin_request();
        tokio::time::sleep(Duration::from_millis(60)).await;
        tracker.sweep();
        assert!(idle.state().is_closed());
        assert!(!busy.state().is_closed());
        drop(guard);
        tracker.sweep();
        assert!(
            !busy.state().is_closed(),
            "finishing a request counts as activity"
        );
        drop(idle);
        assert_eq!(tracker.open_count(), 1);
    }
}
