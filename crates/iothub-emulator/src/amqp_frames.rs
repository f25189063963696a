//! Full-length performatives on the way out.
//!
//! The AMQP spec lets a peer leave out a performative's trailing null fields (part 1, 1.4:
//! "when the trailing elements of the list representation are null, they MAY be omitted"),
//! and the hub's AMQP stack does. Some clients read performatives by fixed list index and
//! fail on the shorter lists: the pure-Python AMQP stack of `azure-eventhub` (`pyamqp`)
//! reads `open[9]`, `begin[7]`, `attach[13]`, `detach[2]` and the transfer payload after
//! `transfer[10]`. [`PadPerformatives`] wraps the server's byte stream and writes every
//! performative with all its fields, the omitted ones as explicit nulls, which means the
//! same to every peer. Protocol headers, SASL frames, empty frames and payloads pass
//! through unchanged; nothing is decoded beyond the list header.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The field count of each AMQP performative, by descriptor code (0x10 open … 0x18 close).
const FIELDS: [(u8, u32); 9] = [
    (0x10, 10),
    (0x11, 8),
    (0x12, 14),
    (0x13, 11),
    (0x14, 11),
    (0x15, 6),
    (0x16, 3),
    (0x17, 1),
    (0x18, 1),
];
/// Bytes that may wait to be written before the writer is told to wait.
const MAX_BUFFERED: usize = 1 << 20;
const NULL: u8 = 0x40;

/// Pads a complete AMQP frame's performative to its full field count, if it is short.
/// Returns `None` when the frame is left as it is.
pub fn pad_frame(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < 8 || frame[5] != 0 {
        return None; // not an AMQP frame (SASL frames are type 1)
    }
    let doff = usize::from(frame[4]) * 4;
    let body = frame.get(doff..)?;
    // Described type: 0x00, descriptor as smallulong (0x53 code) or ulong (0x80 + 8 bytes).
    let (code, list_at) = match body {
        [0x00, 0x53, code, ..] => (*code, 3),
        [0x00, 0x80, rest @ ..] if rest.len() >= 8 && rest[..7].iter().all(|b| *b == 0) => {
            (rest[7], 10)
        }
        _ => return None,
    };
    let full = FIELDS.iter().find(|(c, _)| *c == code)?.1;
    let list = body.get(list_at..)?;
    let (count, elements, rest) = match list.first()? {
        0x45 => (0u32, &list[1..1], &list[1..]),
        0xc0 => {
            let size = usize::from(*list.get(1)?);
            let count = u32::from(*list.get(2)?);
            let end = 2 + size;
            (count, list.get(3..end)?, list.get(end..)?)
        }
        0xd0 => {
            let size = u32::from_be_bytes(list.get(1..5)?.try_into().ok()?) as usize;
            let count = u32::from_be_bytes(list.get(5..9)?.try_into().ok()?);
            let end = 5 + size;
            (count, list.get(9..end)?, list.get(end..)?)
        }
        _ => return None,
    };
    if count >= full {
        return None;
    }
    let missing = (full - count) as usize;
    let mut padded_elements = elements.to_vec();
    padded_elements.resize(elements.len() + missing, NULL);
    let mut out = Vec::with_capacity(frame.len() + missing + 8);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&frame[4..doff]);
    out.extend_from_slice(&body[..list_at]);
    if padded_elements.len() + 1 <= 255 {
        out.push(0xc0);
        out.push(u8::try_from(padded_elements.len() + 1).ok()?);
        out.push(u8::try_from(full).ok()?);
    } else {
        out.push(0xd0);
        out.extend_from_slice(&u32::try_from(padded_elements.len() + 4).ok()?.to_be_bytes());
        out.extend_from_slice(&full.to_be_bytes());
    }
    out.extend_from_slice(&padded_elements);
    out.extend_from_slice(rest);
    let size = u32::try_from(out.len()).ok()?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out)
}

/// A byte stream whose outgoing AMQP performatives are written with all their fields.
#[derive(Debug)]
pub struct PadPerformatives<S> {
    inner: S,
    /// Bytes written by the AMQP stack, not yet a complete frame or header.
    pending: Vec<u8>,
    /// Bytes ready for the inner stream.
    out: Vec<u8>,
}

impl<S> PadPerformatives<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        PadPerformatives {
            inner,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Moves every complete protocol header and frame from `pending` to `out`.
    fn process(&mut self) {
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            if rest.starts_with(b"AMQP") {
                if rest.len() < 8 {
                    break;
                }
                self.out.extend_from_slice(&rest[..8]);
                at += 8;
                continue;
            }
            if rest.len() < 4 {
                break;
            }
            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if size < 8 {
                // Not a valid frame: pass the rest through untouched.
                self.out.extend_from_slice(rest);
                at = self.pending.len();
                break;
            }
            if rest.len() < size {
                break;
            }
            let frame = &rest[..size];
            match pad_frame(frame) {
                Some(padded) => self.out.extend_from_slice(&padded),
                None => self.out.extend_from_slice(frame),
            }
            at += size;
        }
        self.pending.drain(..at);
    }
}

impl<S: AsyncWrite + Unpin> PadPerformatives<S> {
    /// Writes as much of `out` as the inner stream takes now.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the connection takes no more bytes",
                    )));
                }
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PadPerformatives<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PadPerformatives<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() + this.pending.len() >= MAX_BUFFERED {
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        this.pending.extend_from_slice(buf);
        this.process();
        // Start writing; what the inner stream does not take now goes out on flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame on channel 0 with `body`.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&u32::try_from(8 + body.len()).unwrap_or(0).to_be_bytes());
        f.extend_from_slice(&[2, 0, 0, 0]);
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn short_performatives_get_their_null_fields() {
        // detach: handle 1, closed true (error left out).
        let detach = frame(&[0x00, 0x53, 0x16, 0xc0, 0x03, 0x02, 0x52, 0x01, 0x41]);
        let padded = pad_frame(&detach).expect("padded");
        assert_eq!(
            padded,
            frame(&[0x00, 0x53, 0x16, 0xc0, 0x04, 0x03, 0x52, 0x01, 0x41, 0x40])
        );
        // end with no fields at all (list0).
        let end = frame(&[0x00, 0x53, 0x17, 0x45]);
        assert_eq!(
            pad_frame(&end).expect("padded"),
            frame(&[0x00, 0x53, 0x17, 0xc0, 0x02, 0x01, 0x40])
        );
        // A transfer's payload stays after the padded list.
        let transfer = frame(&[0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x43, 0xAA, 0xBB]);
        let padded = pad_frame(&transfer).expect("padded");
        assert_eq!(padded.len(), transfer.len() + 10);
        assert_eq!(&padded[padded.len() - 2..], &[0xAA, 0xBB]);
        assert_eq!(padded[8 + 5], 11, "eleven fields");
    }

    #[test]
    fn full_lists_sasl_frames_and_other_types_are_left_alone() {
        let close = frame(&[0x00, 0x53, 0x18, 0xc0, 0x02, 0x01, 0x40]);
        assert_eq!(pad_frame(&close), None);
        let mut sasl = frame(&[0x00, 0x53, 0x44, 0x45]);
        sasl[5] = 1;
        assert_eq!(pad_frame(&sasl), None);
        assert_eq!(pad_frame(&frame(&[])), None, "empty (heartbeat) frame");
        assert_eq!(pad_frame(&frame(&[0x00, 0x53, 0x70, 0x45])), None, "not a performative");
    }

    #[test]
    fn long_lists_grow_into_list32() {
        // An attach whose list8 is nearly full (251 bytes of elements, 3 fields).
        let mut body = vec![0x00, 0x53, 0x12, 0xc0, 252, 3, 0xa1, 246];
        body.extend(std::iter::repeat_n(b'x', 246));
        body.extend_from_slice(&[0x52, 0x00, 0x42]);
        let padded = pad_frame(&frame(&body)).expect("padded");
        let list = &padded[8 + 3..];
        assert_eq!(list[0], 0xd0);
        assert_eq!(u32::from_be_bytes([list[5], list[6], list[7], list[8]]), 14);
        let size = u32::from_be_bytes([list[1], list[2], list[3], list[4]]) as usize;
        assert_eq!(size, 4 + 251 + 11, "count bytes, old elements, eleven nulls");
        assert_eq!(padded.len(), 8 + 3 + 1 + 4 + size);
    }

    #[tokio::test]
    async fn the_stream_pads_frames_split_across_writes() -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut padded = PadPerformatives::new(client);
        let mut bytes = b"AMQP\x00\x01\x00\x00".to_vec();
        bytes.extend(frame(&[0x00, 0x53, 0x17, 0x45]));
        bytes.extend(frame(&[]));
        for chunk in bytes.chunks(3) {
            padded.write_all(chunk).await?;
        }
        padded.flush().await?;
        drop(padded);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got).await?;
        let mut want = b"AMQP\x00\x01\x00\x00".to_vec();
        want.extend(frame(&[0x00, 0x53, 0x17, 0xc0, 0x02, 0x01, 0x40]));
        want.extend(frame(&[]));
        assert_eq!(got, want);
        Ok(())
    }
}
