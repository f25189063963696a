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
//! `secondaryKey` anywhere in a body are replaced by `"***"` (empty ones are kept). A body that is not JSON is
//! written as `null`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Replaces non-empty `primaryKey` / `secondaryKey` values, at any depth, by `"***"`.
pub fn redact_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if (k == "primaryKey" || k == "secondaryKey")
                    && v.as_str().is_some_and(|s| !s.is_empty())
                {
                    *v = Value::String("***".into());
                } else {
                    redact_keys(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_keys),
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

/// Middleware: buffers the request body (so handlers see it unchanged), runs the request and
/// writes a journal line with the response status. Without a journal it only enforces
/// [`MAX_BODY_BYTES`].
pub async fn journal_layer(
    State(journal): State<Option<Arc<Journal>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(journal) = journal else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let response = ApiError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "The request body is larger than {MAX_BODY_BYTES} bytes or could not be read."
                ),
            )
            .into_response();
            journal.append(&json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": journal_query(parts.uri.query()),
                "headers": journal_headers(&parts.headers),
                "body": Value::Null,
                "status": response.status().as_u16(),
            }));
            return response;
        }
    };
    let mut body_json = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    redact_keys(&mut body_json);
    let mut entry = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": journal_query(parts.uri.query()),
        "headers": journal_headers(&parts.headers),
        "body": body_json,
    });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(obj) = entry.as_object_mut() {
        obj.insert("status".into(), Value::from(response.status().as_u16()));
    }
    journal.append(&entry);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_nested_keys() {
        let mut v = json!([{"authentication": {"symmetricKey": {"primaryKey": "abc", "secondaryKey": "def"}}, "primaryKey": null, "secondaryKey": ""}]);
        redact_keys(&mut v);
        assert_eq!(v[0]["authentication"]["symmetricKey"]["primaryKey"], "***");
        assert_eq!(
            v[0]["authentication"]["symmetricKey"]["secondaryKey"],
            "***"
        );
        assert_eq!(v[0]["primaryKey"], Value::Null);
        assert_eq!(v[0]["secondaryKey"], "");
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
