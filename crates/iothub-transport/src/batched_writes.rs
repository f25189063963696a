//! Frames written together: a connection's outgoing bytes go out in batches.
//!
//! The AMQP stack (fe2o3-amqp) sends each frame on its own and flushes after it, so every
//! transfer of a busy link costs one TLS record and one `writev` system call: about a third
//! of the local hub's CPU time while a reader drains a partition of the built-in endpoint.
//! [`BatchedWrites`] splits a byte stream into its read half, used in place, and its write
//! half, owned by a writer task. Writes are appended to a shared buffer and count as flushed
//! once handed over (as a TCP socket's send buffer takes them); the writer task then writes
//! everything that accumulated meanwhile with one write and one flush. Under load many
//! frames share a TLS record and a system call; a lone frame goes out at once, one task hop
//! later.
//!
//! Nothing is lost or reordered: the writer takes the buffer whole, in order. At most
//! [`MAX_BUFFERED`] bytes wait; a writer past it waits (backpressure, as a full socket
//! buffer). A write error ends the writer task and is returned by the next write, flush or
//! shutdown. Shutdown waits until everything buffered has been written, then shuts the
//! stream down; dropping the stream without a shutdown still writes what was buffered.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf, ReadHalf, WriteHalf};

/// Bytes that may wait for the writer task before writes wait too.
const MAX_BUFFERED: usize = 1 << 20;

/// What the stream and its writer task share.
#[derive(Default)]
struct Shared {
    /// Bytes written and not yet taken by the writer task.
    buf: Vec<u8>,
    /// No more writes: the writer task writes what is left and shuts the stream down.
    closing: bool,
    /// The writer task has ended; `error` says why, if it failed.
    done: bool,
    /// The write error that ended the writer task (its kind and text: `io::Error` is not
    /// `Clone`, and every later call reports it).
    error: Option<(io::ErrorKind, String)>,
    /// The writer task, waiting for bytes.
    writer: Option<Waker>,
    /// A write waiting for room, or a shutdown waiting for the end.
    waiting: Option<Waker>,
}

impl Shared {
    fn failure(&self) -> Option<io::Error> {
        self.error
            .as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn wake_waiting(&mut self) {
        if let Some(w) = self.waiting.take() {
            w.wake();
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Nothing panics while holding the lock; a poisoned state is still consistent.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// A byte stream whose writes are batched by a writer task.
///
/// Reads go straight to the stream. Writes are buffered (at most 1 MiB; past it, a write
/// waits) and are flushed once handed over; the writer task writes and flushes each batch
/// that accumulated. [`AsyncWrite::poll_shutdown`] waits until every buffered byte was
/// written and the stream is shut down; dropping the value still writes what was buffered.
///
/// # Errors
/// A failed write of the writer task is returned (its kind and text) by every later write,
/// flush and shutdown; a write after a shutdown fails with [`io::ErrorKind::BrokenPipe`].
///
/// # Panics
/// [`BatchedWrites::new`] spawns the writer task, so it must be called inside a tokio
/// runtime.
pub struct BatchedWrites<S> {
    read: ReadHalf<S>,
    shared: Arc<Mutex<Shared>>,
}

impl<S> std::fmt::Debug for BatchedWrites<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedWrites").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> BatchedWrites<S> {
    /// Splits `stream` and starts the writer task of its write half (with `tokio::spawn`).
    pub fn new(stream: S) -> Self {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Mutex::new(Shared::default()));
        tokio::spawn(write_batches(write, Arc::clone(&shared)));
        Self { read, shared }
    }
}

/// The writer task: takes whatever accumulated, writes and flushes it, until closed.
async fn write_batches<S: AsyncRead + AsyncWrite>(
    mut write: WriteHalf<S>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut batch = Vec::new();
    loop {
        let closing = std::future::poll_fn(|cx| {
            let mut s = lock(&shared);
            if !s.buf.is_empty() {
                std::mem::swap(&mut batch, &mut s.buf);
                s.wake_waiting();
                Poll::Ready(false)
            } else if s.closing {
                Poll::Ready(true)
            } else {
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let result = if closing {
            write.shutdown().await
        } else {
            match write.write_all(&batch).await {
                Ok(()) => write.flush().await,
                Err(e) => Err(e),
            }
        };
        batch.clear();
        if closing || result.is_err() {
            let mut s = lock(&shared);
            s.done = true;
            s.closing = true;
            if let Err(e) = result {
                s.error = Some((e.kind(), e.to_string()));
            }
            s.buf = Vec::new();
            s.wake_waiting();
            return;
        }
    }
}

impl<S: AsyncRead> AsyncRead for BatchedWrites<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for BatchedWrites<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.shared);
        if let Some(e) = s.failure() {
            return Poll::Ready(Err(e));
        }
        if s.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream is shut down",
            )));
        }
        if s.buf.len() >= MAX_BUFFERED {
            s.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_BUFFERED - s.buf.len());
        s.buf.extend_from_slice(&buf[..n]);
        s.wake_writer();
        Poll::Ready(Ok(n))
    }

    /// Handed over is flushed: the writer task writes and flushes every batch it takes.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(&self.shared).failure() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Waits until everything written has gone out and the stream is shut down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        if s.done {
            return Poll::Ready(s.failure().map_or(Ok(()), Err));
        }
        s.closing = true;
        s.wake_writer();
        s.waiting = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<S> Drop for BatchedWrites<S> {
    fn drop(&mut self) {
        // The writer task still writes what was buffered, then shuts the stream down.
        let mut s = lock(&self.shared);
        s.closing = true;
        s.wake_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn writes_arrive_whole_and_in_order_and_shutdown_drains() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut stream = BatchedWrites::new(near);
        let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.map(|_| got)
        });
        // Many small writes, each flushed, as the AMQP stack writes frames.
        for chunk in expected.chunks(37) {
            stream.write_all(chunk).await.expect("write");
            stream.flush().await.expect("flush");
        }
        stream.shutdown().await.expect("shutdown");
        let got = reader.await.expect("join").expect("read");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes changed or reordered");
    }

    #[tokio::test]
    async fn reads_pass_through_and_a_drop_still_writes_what_was_buffered() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut stream = BatchedWrites::new(near);
        far.write_all(b"ping").await.expect("write far");
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        stream.write_all(b"pong").await.expect("write");
        drop(stream);
        let mut back = Vec::new();
        far.read_to_end(&mut back).await.expect("read to end");
        assert_eq!(back, b"pong");
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_to_the_next_call() {
        let (near, far) = tokio::io::duplex(16);
        drop(far);
        let mut stream = BatchedWrites::new(near);
        // The first write is only handed over; the writer task then fails on the closed pipe.
        stream.write_all(b"lost").await.expect("handed over");
        let mut failed = None;
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if let Err(e) = stream.flush().await {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("the write error is reported");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(stream.write_all(b"more").await.is_err());
        assert!(stream.shutdown().await.is_err());
    }

    #[tokio::test]
    async fn a_full_buffer_makes_writers_wait_for_room() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut stream = BatchedWrites::new(near);
        let big = vec![7u8; 3 * MAX_BUFFERED];
        let writer = tokio::spawn(async move {
            stream.write_all(&big).await?;
            stream.shutdown().await
        });
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.expect("read");
        writer.await.expect("join").expect("write and shutdown");
        assert_eq!(got.len(), 3 * MAX_BUFFERED);
    }
}
