//! The request journal (`--journal FILE`): one JSON line per request.
//!
//! ```json
//! {"method":"PUT","path":"/devices/dev1","query":{"api-version":"2021-04-12"},
//!  "headers":{"if-match":null,"x-ms-max-item-count":null,"x-ms-continuation":null,
//!             "content-type":"application/json; charset=utf-8"},
//!  "body":{"deviceId":"dev1","authentication":{"symmetricKey":{"primaryKey":"***","secondaryKey":"***"},"type":"sas"}},
//!  "status":200}
//! ```
//!
//! The `Authorization` header is never written, and the values of `primaryKey` and
//! `secondaryKey` (of any type) and a `symmetricKey` that is not an object, anywhere in a
//! body, are replaced by `"***"` (empty and null ones are kept). A body that is not JSON is
//! written as `null`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorCode};

/// Largest request body the emulator reads (bulk requests of 100 devices with full twins fit).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Headers copied into each journal line.
const JOURNALED_HEADERS: [&str; 4] = [
    "if-match",
    "x-ms-max-item-count",
    "x-ms-continuation",
    "content-type",
];

/// An append-only journal file.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<File>,
}

impl Journal {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Journal {
            file: Mutex::new(file),
        })
    }

    /// Appends one line.
    pub fn append(&self, entry: &Value) {
        let mut line = entry.to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(error = %e, "cannot write to the journal");
        }
    }
}

/// Replaces the values of `primaryKey` / `secondaryKey` (whatever their type, unless null or
/// empty), and a `symmetricKey` that is not an object, at any depth, by `"***"`, and the
/// `sig=` value of any string holding a SAS (job container URIs) by `REDACTED`.
pub fn redact_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let secret = match k.as_str() {
                    "primaryKey" | "secondaryKey" => {
                        !v.is_null() && v.as_str().is_none_or(|s| !s.is_empty())
                    }
                    "symmetricKey" => !v.is_null() && !v.is_object(),
                    _ => false,
                };
                if secret {
                    *v = Value::String("***".into());
                } else {
                    redact_keys(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_keys),
        // Container URIs of import/export jobs carry SAS tokens.
        Value::String(text) if text.contains("sig=") => {
            *text = crate::jobs::redact_signature(text);
        }
        _ => {}
    }
}

fn journal_headers(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in JOURNALED_HEADERS {
        let v = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| Value::String(s.to_owned()));
        out.insert(name.to_owned(), v.unwrap_or(Value::Null));
    }
    Value::Object(out)
}

fn journal_query(query: Option<&str>) -> Value {
    let pairs: Vec<(String, String)> = query
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// Middleware, inside the journal (which records the answer): a request whose declared `Content-Length` exceeds
/// [`MAX_BODY_BYTES`] is answered 413 `MessageTooLarge` at once, without reading the body
/// (IoT Hub rejects oversized messages the same way). Bodies sent without a length are
/// limited while they are read.
pub async fn reject_oversized(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES as u64 => ApiError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The request body of {length} bytes is larger than the limit of {MAX_BODY_BYTES} bytes."
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// What the journal saw of a request body while the handler read it.
#[derive(Debug, Default)]
struct Seen {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A request body that copies what the handler reads (up to [`MAX_BODY_BYTES`]) so the
/// journal can record it, without changing what the handler sees.
struct Tee {
    inner: Body,
    seen: Arc<Mutex<Seen>>,
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.bytes.len() + data.len() <= MAX_BODY_BYTES {
                seen.bytes.extend_from_slice(data);
            } else {
                seen.truncated = true;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: writes a journal line per request with the response status. It only
/// observes: the handler reads the same body stream it would without a journal, and the
/// journal records the JSON of whatever part the handler read (`null` if it read none, or
/// the body is not JSON).
pub async fn journal_layer(
    State(journal): State<Option<Arc<Journal>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(journal) = journal else {
        return next.run(request).await;
    };
    let mut entry = json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": journal_query(request.uri().query()),
        "headers": journal_headers(request.headers()),
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let request = request.map(|inner| {
        Body::new(Tee {
            inner,
            seen: Arc::clone(&seen),
        })
    });
    let response = next.run(request).await;
    let body_json = {
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.truncated {
            Value::Null
        } else {
            let mut v = serde_json::from_slice::<Value>(&seen.bytes).unwrap_or(Value::Null);
            redact_keys(&mut v);
            v
        }
    };
    if let Some(obj) = entry.as_object_mut() {
        obj.insert("body".into(), body_json);
        obj.insert("status".into(), Value::from(response.status().as_u16()));
    }
    journal.append(&entry);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_sas_signatures() {
        let mut v = json!({"outputBlobContainerUri": "http://h/a/c?sv=1&sig=c2VjcmV0&se=2"});
        redact_keys(&mut v);
        assert_eq!(
            v["outputBlobContainerUri"],
            "http://h/a/c?sv=1&sig=REDACTED&se=2"
        );
    }

    #[test]
    fn redacts_nested_keys() {
        let mut v = json!([{"authentication": {"symmetricKey": {"primaryKey": "abc", "secondaryKey": "def"}}, "primaryKey": null, "secondaryKey": ""}, {"symmetricKey": "SECRET", "x": {"primaryKey": ["SECRET"]}}]);
        redact_keys(&mut v);
        assert_eq!(v[0]["authentication"]["symmetricKey"]["primaryKey"], "***");
        assert_eq!(
            v[0]["authentication"]["symmetricKey"]["secondaryKey"],
            "***"
        );
        assert_eq!(v[0]["primaryKey"], Value::Null);
        assert_eq!(v[0]["secondaryKey"], "");
        assert_eq!(v[1]["symmetricKey"], "***");
        assert_eq!(v[1]["x"]["primaryKey"], "***");
        assert!(!v.to_string().contains("SECRET"));
    }

    #[test]
    fn query_is_an_object() {
        assert_eq!(
            journal_query(Some("api-version=2021-04-12&top=5")),
            json!({"api-version": "2021-04-12", "top": "5"})
        );
        assert_eq!(journal_query(None), json!({}));
    }
}
