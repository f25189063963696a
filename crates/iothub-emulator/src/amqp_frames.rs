//! Full-length performatives on the way out.
//!
//! The AMQP spec lets a peer leave out a performative's trailing null fields (part 1, 1.4:
//! "when the trailing elements of the list representation are null, they MAY be omitted"),
//! and the hub's AMQP stack does. Some clients read performatives by fixed list index and
//! fail on the shorter lists: the pure-Python AMQP stack of `azure-eventhub` (`pyamqp`)
//! reads `open[9]`, `begin[7]`, `attach[13]`, `detach[2]` and the transfer payload after
//! `transfer[10]`, and compares fields such as `handle-max` as numbers, where the stack
//! writes a null for "the default". [`PadPerformatives`] wraps the server's byte stream and
//! writes every performative with all its fields: the omitted ones as nulls, and nulls in
//! fields with a spec default that clients read as values as that default, which means the
//! same to every peer. Protocol headers, SASL frames, empty frames and payloads pass
//! through unchanged; values are only measured (by their constructors), never decoded.
//!
//! On the way in, one fix: the keys of an `open`'s `properties` are symbols (the `fields`
//! type, part 2, 2.7.1), but uamqp, under Microsoft's `az iot hub monitor-events`, writes
//! them as strings, which IoT Hub accepts and the AMQP stack here refuses. The client's
//! first `open` gets string keys turned into symbols (same layout, another constructor);
//! every byte after it passes through untouched.

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

/// The encoded size of the AMQP value at the start of `bytes` (constructor included).
fn value_len(bytes: &[u8]) -> Option<usize> {
    let constructor = *bytes.first()?;
    let sized = |width: usize| -> Option<usize> {
        let n = match width {
            1 => usize::from(*bytes.get(1)?),
            _ => u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize,
        };
        Some(1 + width + n)
    };
    let len = match constructor {
        0x00 => {
            let descriptor = value_len(&bytes[1..])?;
            1 + descriptor + value_len(bytes.get(1 + descriptor..)?)?
        }
        0x40..=0x45 => 1,
        0x50..=0x56 => 2,
        0x60..=0x61 => 3,
        0x70..=0x74 => 5,
        0x80..=0x84 => 9,
        0x98 => 17,
        0xa0..=0xa3 | 0xc0..=0xc1 | 0xe0 => sized(1)?,
        0xb0..=0xb3 | 0xd0..=0xd1 | 0xf0 => sized(4)?,
        _ => return None,
    };
    (len <= bytes.len()).then_some(len)
}

/// The spec's default of a performative field that clients read as a value, encoded: what a
/// null there means (part 2, 2.7).
fn default_of(code: u8, index: usize) -> Option<&'static [u8]> {
    const UINT_MAX: &[u8] = &[0x70, 0xff, 0xff, 0xff, 0xff];
    const FALSE: &[u8] = &[0x42];
    match (code, index) {
        (0x10, 2) | (0x11, 4) => Some(UINT_MAX),    // max-frame-size, handle-max
        (0x10, 3) => Some(&[0x60, 0xff, 0xff]),      // channel-max
        (0x12, 3) => Some(&[0x50, 0x02]),            // snd-settle-mode: mixed
        (0x12, 4) => Some(&[0x50, 0x00]),            // rcv-settle-mode: first
        (0x13, 8 | 9)                                // drain, echo
        | (0x14, 5 | 8 | 9 | 10)                     // more, resume, aborted, batchable
        | (0x15, 3 | 5)                              // settled, batchable
        | (0x16, 1) => Some(FALSE),                  // closed
        _ => None,
    }
}

/// Rewrites a complete AMQP frame's performative with all its fields: left-out trailing
/// fields become nulls, and nulls in fields with a spec default that clients read as a
/// value (sizes, settle modes, flags) become that default. Returns `None` when the frame
/// is left as it is (not a performative, or already complete).
#[cfg(test)]
pub fn pad_frame(frame: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    pad_frame_into(frame, &mut out).then_some(out)
}

/// Most fields a performative has (`attach`: 14).
const MAX_FIELDS: usize = 16;

/// [`pad_frame`] appending to `out`: writes the rewritten frame and returns `true`, or
/// writes nothing and returns `false` when the frame is left as it is. No allocation beyond
/// `out`'s growth: every frame the hub sends goes through here.
pub fn pad_frame_into(frame: &[u8], out: &mut Vec<u8>) -> bool {
    pad(frame, out).is_some()
}

fn pad(frame: &[u8], out: &mut Vec<u8>) -> Option<()> {
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
    let full = FIELDS.iter().find(|(c, _)| *c == code)?.1 as usize;
    let list = body.get(list_at..)?;
    let (count, mut elements, rest) = match list.first()? {
        0x45 => (0usize, &list[1..1], &list[1..]),
        0xc0 => {
            let size = usize::from(*list.get(1)?);
            let end = 2 + size;
            (
                usize::from(*list.get(2)?),
                list.get(3..end)?,
                list.get(end..)?,
            )
        }
        0xd0 => {
            let size = u32::from_be_bytes(list.get(1..5)?.try_into().ok()?) as usize;
            let count = u32::from_be_bytes(list.get(5..9)?.try_into().ok()?) as usize;
            let end = 5 + size;
            (count, list.get(9..end)?, list.get(end..)?)
        }
        _ => return None,
    };
    if count > MAX_FIELDS || full > MAX_FIELDS {
        return None;
    }
    let mut fields: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
    for field in fields.iter_mut().take(count) {
        let len = value_len(elements)?;
        *field = &elements[..len];
        elements = &elements[len..];
    }
    if !elements.is_empty() {
        return None; // the list holds more than its count says: leave it alone
    }
    let total = full.max(count);
    let mut changed = count < full;
    for (index, field) in fields.iter_mut().enumerate().take(total) {
        if index >= count {
            *field = &[NULL];
        }
        if let (true, Some(default)) = (*field == [NULL], default_of(code, index)) {
            *field = default;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let fields = &fields[..total];
    let content_len: usize = fields.iter().map(|f| f.len()).sum();
    let count = u32::try_from(total).ok()?;
    let start = out.len();
    out.reserve(frame.len() + content_len + 16);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&frame[4..doff]);
    out.extend_from_slice(&body[..list_at]);
    if content_len < 255 && count < 256 {
        out.push(0xc0);
        out.push(u8::try_from(content_len + 1).ok()?);
        out.push(u8::try_from(count).ok()?);
    } else {
        out.push(0xd0);
        out.extend_from_slice(&u32::try_from(content_len + 4).ok()?.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
    }
    for field in fields {
        out.extend_from_slice(field);
    }
    out.extend_from_slice(rest);
    let Ok(size) = u32::try_from(out.len() - start) else {
        out.truncate(start);
        return None;
    };
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Some(())
}

/// Turns string keys of an `open` frame's `properties` map into symbols, in place. Returns
/// whether `frame` is an AMQP `open` (changed or not); any other frame is left as it is.
pub fn symbol_keys_in_open(frame: &mut [u8]) -> bool {
    if frame.len() < 8 || frame[5] != 0 {
        return false;
    }
    let doff = usize::from(frame[4]) * 4;
    let Some(body) = frame.get_mut(doff..) else {
        return false;
    };
    let list_at = match body {
        [0x00, 0x53, 0x10, ..] => 3,
        [0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10, ..] => 10,
        _ => return false,
    };
    let Some(list) = body.get_mut(list_at..) else {
        return true;
    };
    let (count, start) = match list.first() {
        Some(0xc0) if list.len() >= 3 => (usize::from(list[2]), 3),
        Some(0xd0) if list.len() >= 9 => (
            u32::from_be_bytes([list[5], list[6], list[7], list[8]]) as usize,
            9,
        ),
        _ => return true,
    };
    // Field 9 is `properties`.
    let mut at = start;
    for _ in 0..9.min(count) {
        match value_len(&list[at..]) {
            Some(len) => at += len,
            None => return true,
        }
    }
    if count < 10 {
        return true;
    }
    let Some(map_len) = value_len(&list[at..]) else {
        return true;
    };
    let map = &mut list[at..at + map_len];
    let (pairs, mut at) = match map.first() {
        Some(0xc1) if map.len() >= 3 => (usize::from(map[2]) / 2, 3),
        Some(0xd1) if map.len() >= 9 => (
            u32::from_be_bytes([map[5], map[6], map[7], map[8]]) as usize / 2,
            9,
        ),
        _ => return true,
    };
    for _ in 0..pairs {
        match map.get(at) {
            Some(0xa1) => map[at] = 0xa3,
            Some(0xb1) => map[at] = 0xb3,
            Some(_) => {}
            None => return true,
        }
        let Some(key) = value_len(&map[at..]) else {
            return true;
        };
        at += key;
        let Some(value) = map.get(at..).and_then(value_len) else {
            return true;
        };
        at += value;
    }
    true
}

/// A byte stream whose outgoing AMQP performatives are written with all their fields, and
/// whose incoming `open` gets symbol keys in its properties (see the module docs).
#[derive(Debug)]
pub struct PadPerformatives<S> {
    inner: S,
    /// Bytes written by the AMQP stack, not yet a complete frame or header.
    pending: Vec<u8>,
    /// Bytes ready for the inner stream.
    out: Vec<u8>,
    /// Bytes read from the inner stream before the client's `open` is complete.
    incoming: Vec<u8>,
    /// Bytes read and checked, ready for the AMQP stack.
    ready: Vec<u8>,
    /// The client's `open` (or something that is not a frame) went by: reads pass through.
    opened: bool,
}

impl<S> PadPerformatives<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        PadPerformatives {
            inner,
            pending: Vec::new(),
            out: Vec::new(),
            incoming: Vec::new(),
            ready: Vec::new(),
            opened: false,
        }
    }

    /// Moves complete protocol headers and frames from `incoming` to `ready`, fixing the
    /// `open`; after it, everything.
    fn check_incoming(&mut self) {
        let mut at = 0;
        while !self.opened {
            let rest = &mut self.incoming[at..];
            if rest.starts_with(b"AMQP") || (rest.len() < 4 && b"AMQP".starts_with(rest)) {
                if rest.len() < 8 {
                    break;
                }
                at += 8;
                continue;
            }
            if rest.len() < 4 {
                break;
            }
            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if size < 8 {
                self.opened = true;
                break;
            }
            if rest.len() < size {
                break;
            }
            if symbol_keys_in_open(&mut rest[..size]) {
                self.opened = true;
            }
            at += size;
        }
        if self.opened {
            at = self.incoming.len();
        }
        self.ready.extend(self.incoming.drain(..at));
    }

    /// Moves every complete protocol header and frame of `bytes` to `out`, padded; returns
    /// how many bytes that was (the rest is an incomplete header or frame).
    fn process(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
        let mut at = 0;
        loop {
            let rest = &bytes[at..];
            if rest.starts_with(b"AMQP") {
                if rest.len() < 8 {
                    break;
                }
                out.extend_from_slice(&rest[..8]);
                at += 8;
                continue;
            }
            if rest.len() < 4 {
                break;
            }
            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if size < 8 {
                // Not a valid frame: pass the rest through untouched.
                out.extend_from_slice(rest);
                at = bytes.len();
                break;
            }
            if rest.len() < size {
                break;
            }
            let frame = &rest[..size];
            if !pad_frame_into(frame, out) {
                out.extend_from_slice(frame);
            }
            at += size;
        }
        at
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
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.opened {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of stream: hand over what is left as it is.
                    this.opened = true;
                    this.ready.append(&mut this.incoming);
                    if this.ready.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    this.incoming.extend_from_slice(read.filled());
                    if this.incoming.len() > MAX_BUFFERED {
                        this.opened = true;
                    }
                    this.check_incoming();
                }
                other => return other,
            }
        }
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
        if this.pending.is_empty() {
            // The usual case: whole frames, straight from the caller's buffer.
            let used = Self::process(&mut this.out, buf);
            this.pending.extend_from_slice(&buf[used..]);
        } else {
            this.pending.extend_from_slice(buf);
            let used = Self::process(&mut this.out, &this.pending);
            this.pending.drain(..used);
        }
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
    fn short_performatives_get_their_fields() {
        // detach: handle 1, closed true (error left out).
        let detach = frame(&[0x00, 0x53, 0x16, 0xc0, 0x04, 0x02, 0x52, 0x01, 0x41]);
        assert_eq!(
            pad_frame(&detach).expect("padded"),
            frame(&[0x00, 0x53, 0x16, 0xc0, 0x05, 0x03, 0x52, 0x01, 0x41, 0x40])
        );
        // detach: handle 1, closed left out: it becomes false.
        let detach = frame(&[0x00, 0x53, 0x16, 0xc0, 0x03, 0x01, 0x52, 0x01]);
        assert_eq!(
            pad_frame(&detach).expect("padded"),
            frame(&[0x00, 0x53, 0x16, 0xc0, 0x05, 0x03, 0x52, 0x01, 0x42, 0x40])
        );
        // end with no fields at all (list0).
        let end = frame(&[0x00, 0x53, 0x17, 0x45]);
        assert_eq!(
            pad_frame(&end).expect("padded"),
            frame(&[0x00, 0x53, 0x17, 0xc0, 0x02, 0x01, 0x40])
        );
        // A transfer's payload stays after the completed list; its flags become false.
        let transfer = frame(&[0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x43, 0xAA, 0xBB]);
        let padded = pad_frame(&transfer).expect("padded");
        assert_eq!(
            &padded[8..],
            &[
                0x00, 0x53, 0x14, 0xc0, 0x0c, 0x0b, 0x43, 0x40, 0x40, 0x40, 0x40, 0x42, 0x40, 0x40,
                0x42, 0x42, 0x42, 0xAA, 0xBB
            ]
        );
        // begin: a null handle-max in the middle becomes the spec's 4294967295.
        let begin = frame(&[
            0x00, 0x53, 0x11, 0xc0, 0x0a, 0x05, 0x40, 0x43, 0x70, 0, 0, 0x13, 0x88, 0x43, 0x40,
        ]);
        let padded = pad_frame(&begin).expect("padded");
        assert_eq!(padded[8 + 5], 8, "eight fields");
        assert_eq!(
            &padded[8 + 6 + 8..8 + 6 + 13],
            &[0x70, 0xff, 0xff, 0xff, 0xff]
        );
    }

    /// An `open` whose properties map has `keys` (each a constructor and the key's bytes).
    fn open_with_keys(keys: &[(u8, &[u8])]) -> Vec<u8> {
        let mut map = Vec::new();
        for (constructor, key) in keys {
            map.push(*constructor);
            map.push(u8::try_from(key.len()).unwrap_or(0));
            map.extend_from_slice(key);
            map.extend_from_slice(&[0xa1, 0x01, b'v']);
        }
        let mut fields = vec![0xa1, 0x01, b'c']; // container-id
        fields.extend(std::iter::repeat_n(0x40, 8)); // hostname ... desired-capabilities
        fields.push(0xc1);
        fields.push(u8::try_from(map.len() + 1).unwrap_or(0));
        fields.push(u8::try_from(keys.len() * 2).unwrap_or(0));
        fields.extend(map);
        let mut body = vec![0x00, 0x53, 0x10, 0xc0];
        body.push(u8::try_from(fields.len() + 1).unwrap_or(0));
        body.push(10);
        body.extend(fields);
        frame(&body)
    }

    #[test]
    fn string_keys_of_open_properties_become_symbols() {
        let mut open = open_with_keys(&[(0xa1, b"product"), (0xa3, b"version")]);
        assert!(symbol_keys_in_open(&mut open));
        assert_eq!(
            open,
            open_with_keys(&[(0xa3, b"product"), (0xa3, b"version")])
        );
        // Other frames are not touched.
        let mut close = frame(&[0x00, 0x53, 0x18, 0xc0, 0x02, 0x01, 0x40]);
        let before = close.clone();
        assert!(!symbol_keys_in_open(&mut close));
        assert_eq!(close, before);
        // An open without properties is an open, unchanged.
        let mut bare = frame(&[0x00, 0x53, 0x10, 0xc0, 0x04, 0x01, 0xa1, 0x01, b'c']);
        let before = bare.clone();
        assert!(symbol_keys_in_open(&mut bare));
        assert_eq!(bare, before);
    }

    #[tokio::test]
    async fn reads_fix_the_open_and_pass_the_rest_through() -> io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut fixed = PadPerformatives::new(server);
        let mut sasl = frame(&[0x00, 0x53, 0x41, 0x45]);
        sasl[5] = 1;
        let open = open_with_keys(&[(0xa1, b"product")]);
        // A later frame that looks like an open with string keys is left alone.
        let later = open_with_keys(&[(0xa1, b"late")]);
        let mut sent = b"AMQP\x03\x01\x00\x00".to_vec();
        sent.extend(&sasl);
        sent.extend(b"AMQP\x00\x01\x00\x00");
        sent.extend(&open);
        sent.extend(&later);
        for chunk in sent.chunks(5) {
            client.write_all(chunk).await?;
        }
        drop(client);
        let mut got = Vec::new();
        fixed.read_to_end(&mut got).await?;
        let mut want = b"AMQP\x03\x01\x00\x00".to_vec();
        want.extend(&sasl);
        want.extend(b"AMQP\x00\x01\x00\x00");
        want.extend(open_with_keys(&[(0xa3, b"product")]));
        want.extend(&later);
        assert_eq!(got, want);
        Ok(())
    }

    #[test]
    fn values_are_measured_by_their_constructors() {
        assert_eq!(value_len(&[0x40]), Some(1));
        assert_eq!(value_len(&[0x52, 7]), Some(2));
        assert_eq!(value_len(&[0xa1, 3, b'a', b'b', b'c']), Some(5));
        assert_eq!(value_len(&[0xa1, 3, b'a']), None, "truncated");
        assert_eq!(value_len(&[0x00, 0x53, 0x28, 0xc0, 0x01, 0x00]), Some(6));
        assert_eq!(value_len(&[0xb0, 0, 0, 0, 1, 9]), Some(6));
        assert_eq!(value_len(&[0xff]), None);
    }

    #[test]
    fn full_lists_sasl_frames_and_other_types_are_left_alone() {
        let close = frame(&[0x00, 0x53, 0x18, 0xc0, 0x02, 0x01, 0x40]);
        assert_eq!(pad_frame(&close), None);
        let disposition = frame(&[
            0x00, 0x53, 0x15, 0xc0, 0x07, 0x06, 0x41, 0x43, 0x40, 0x41, 0x40, 0x41,
        ]);
        assert_eq!(pad_frame(&disposition), None, "complete, no defaulted null");
        let mut sasl = frame(&[0x00, 0x53, 0x44, 0x45]);
        sasl[5] = 1;
        assert_eq!(pad_frame(&sasl), None);
        assert_eq!(pad_frame(&frame(&[])), None, "empty (heartbeat) frame");
        assert_eq!(
            pad_frame(&frame(&[0x00, 0x53, 0x70, 0x45])),
            None,
            "not a performative"
        );
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
        // Count bytes, the old elements, the two settle modes' defaults (2 bytes each) and
        // nine nulls.
        assert_eq!(size, 4 + 251 + 2 + 2 + 9);
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
