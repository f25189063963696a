//! The device-facing HTTPS routes (what `azure-iot-device-http` and `az iot device …
//! --proto http` use): telemetry, and receiving and settling cloud-to-device messages.
//!
//! - `POST /devices/{id}[/modules/{mid}]/messages/events`: one message; application
//!   properties as `iothub-app-{name}` headers, system properties as `iothub-messageid`,
//!   `iothub-correlationid`, `iothub-userid`, `iothub-contenttype`, `iothub-contentencoding`
//!   (or `Content-Type` / `Content-Encoding`); with `Content-Type:
//!   application/vnd.microsoft.iothub.json`, a batch `[{"body", "base64Encoded",
//!   "properties"}]`. 204 once stored.
//! - `GET /devices/{id}[/modules/{mid}]/messages/devicebound`: 204 when the queue is empty;
//!   otherwise 200 with the body, the lock token as `ETag` and the message's properties as
//!   `iothub-*` headers. The message is locked for one minute ([`LOCK_TIMEOUT`]).
//! - `DELETE …/devicebound/{lockToken}` completes (`?reject` rejects), `POST
//!   …/devicebound/{lockToken}/abandon` abandons: 204, or 412 `DeviceMessageLockLost` when
//!   the lock is not held (settled, expired, unknown).
//!
//! Paths match `deviceBound` and `devicebound` alike (the server lower-cases that segment).
//! Authentication: a SAS token for the identity (no `skn`) or a shared access policy token
//! with *device connect*, in `Authorization`.

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;

use super::AppState;
use super::extract::PathParams;
use crate::auth::authenticate_device;
use crate::c2d::{DeliveredMessage, LOCK_TIMEOUT, Settlement};
use crate::error::{ApiError, ErrorCode};
use crate::events::{AuthMethod, EventError, Telemetry};
use crate::model::AuthenticationType;
use crate::registry::Credentials;

/// Content type of a telemetry batch.
const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.json";

/// Checks the device-side `Authorization` header for an identity and returns its credentials.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<Credentials, ApiError> {
    crate::model::validate_id("device", device_id)?;
    if let Some(m) = module_id {
        crate::model::validate_id("module", m)?;
    }
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.trim().is_empty())
    else {
        return Err(ApiError::unauthorized(
            "The request has no Authorization header; send a SharedAccessSignature made with the device's key.",
        ));
    };
    let credentials = state
        .registry
        .credentials(device_id.to_owned(), module_id.map(str::to_owned))
        .await
        .map_err(|e| match e {
            crate::registry::RegistryError::Store(_) => ApiError::from(e),
            // An unknown identity is answered like a wrong key, as IoT Hub does.
            _ => ApiError::unauthorized(e.to_string()),
        })?;
    let keys: Vec<&str> = match credentials.auth.kind {
        AuthenticationType::Sas | AuthenticationType::None => [
            &credentials.auth.primary_key,
            &credentials.auth.secondary_key,
        ]
        .into_iter()
        .filter_map(|k| k.as_deref())
        .collect(),
        _ => Vec::new(),
    };
    authenticate_device(
        &state.policies,
        token,
        device_id,
        module_id,
        &keys,
        SystemTime::now(),
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    if !credentials.enabled {
        return Err(ApiError::unauthorized(format!(
            "Device '{}' is disabled.",
            device_id.escape_default()
        )));
    }
    Ok(credentials)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// One message from the request's headers and body.
fn message_from_headers(headers: &HeaderMap, body: Vec<u8>) -> Telemetry {
    let mut application = Vec::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("iothub-app-")
            && let Ok(v) = value.to_str()
        {
            application.push((key.to_owned(), v.to_owned()));
        }
    }
    Telemetry {
        message_id: header_text(headers, "iothub-messageid"),
        correlation_id: header_text(headers, "iothub-correlationid"),
        user_id: header_text(headers, "iothub-userid"),
        content_type: header_text(headers, "iothub-contenttype"),
        content_encoding: header_text(headers, "iothub-contentencoding")
            .or_else(|| header_text(headers, header::CONTENT_ENCODING.as_str())),
        expiry: header_text(headers, "iothub-expiry"),
        application,
        body,
        ..Telemetry::default()
    }
}

/// The messages of a batch body (`[{"body", "base64Encoded", "properties"}]`).
fn messages_from_batch(body: &[u8]) -> Result<Vec<Telemetry>, ApiError> {
    let items: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::format(format!("The batch is not a JSON array: {e}.")))?;
    items
        .into_iter()
        .map(|item| {
            let text = item.get("body").and_then(Value::as_str).unwrap_or_default();
            let body = if item.get("base64Encoded").and_then(Value::as_bool) == Some(true) {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| ApiError::format("A batch entry's body is not valid base64."))?
            } else {
                text.as_bytes().to_vec()
            };
            let mut message = Telemetry {
                body,
                ..Telemetry::default()
            };
            if let Some(props) = item.get("properties").and_then(Value::as_object) {
                for (key, value) in props {
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    match key.as_str() {
                        "iothub-messageid" => message.message_id = Some(value),
                        "iothub-correlationid" => message.correlation_id = Some(value),
                        "iothub-userid" => message.user_id = Some(value),
                        "iothub-contenttype" => message.content_type = Some(value),
                        "iothub-contentencoding" => message.content_encoding = Some(value),
                        other => {
                            let key = other.strip_prefix("iothub-app-").unwrap_or(other);
                            message.application.push((key.to_owned(), value));
                        }
                    }
                }
            }
            Ok(message)
        })
        .collect()
}

async fn send_events(
    state: AppState,
    headers: HeaderMap,
    device_id: String,
    module_id: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let credentials = authorize(&state, &headers, &device_id, module_id.as_deref()).await?;
    let batch = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(BATCH_CONTENT_TYPE));
    let messages = if batch {
        messages_from_batch(&body)?
    } else {
        vec![message_from_headers(&headers, body.to_vec())]
    };
    let appends = messages.into_iter().map(|mut m| {
        m.device_id.clone_from(&device_id);
        m.module_id.clone_from(&module_id);
        m.generation_id.clone_from(&credentials.generation_id);
        m.auth = Some(AuthMethod::Sas);
        state.events.append(m)
    });
    futures::future::try_join_all(appends)
        .await
        .map_err(|e| match e {
            EventError::TooLarge(_) => ApiError::new(ErrorCode::MessageTooLarge, e.to_string()),
            other => ApiError::internal(&other),
        })?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn delivered_response(message: DeliveredMessage) -> Response {
    let mut response = Response::new(Body::from(message.body.clone()));
    let h = response.headers_mut();
    let mut put = |name: &str, value: String| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    };
    put("etag", format!("\"{}\"", message.lock_token));
    put("iothub-sequencenumber", message.sequence_number.to_string());
    put(
        "iothub-enqueuedtime",
        crate::clock::format_time(message.enqueued),
    );
    put("iothub-expiry", crate::clock::format_time(message.expiry));
    put("iothub-deliverycount", message.delivery_count.to_string());
    put("iothub-ack", message.ack.as_str().to_owned());
    let props = &message.properties;
    if let Some(id) = &message.message_id {
        put("iothub-messageid", id.clone());
    }
    for (name, key) in [
        ("iothub-correlationid", "correlationId"),
        ("iothub-userid", "userId"),
        ("iothub-to", "to"),
        ("content-type", "contentType"),
        ("content-encoding", "contentEncoding"),
    ] {
        if let Some(v) = props.get(key).and_then(Value::as_str) {
            put(name, v.to_owned());
        }
    }
    if let Some(app) = props
        .get("applicationProperties")
        .and_then(Value::as_object)
    {
        for (k, v) in app.iter().filter(|(k, _)| k.as_str() != "iothub-ack") {
            put(
                &format!("iothub-app-{k}"),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            );
        }
    }
    response
}

async fn receive(
    state: AppState,
    headers: HeaderMap,
    device_id: String,
    module_id: Option<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &device_id, module_id.as_deref()).await?;
    let mut taken = state
        .c2d
        .receive(&device_id, module_id.as_deref(), 1, Some(LOCK_TIMEOUT))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(match taken.pop() {
        Some(message) => delivered_response(message),
        None => empty(StatusCode::NO_CONTENT),
    })
}

async fn settle(
    state: AppState,
    headers: HeaderMap,
    (device_id, module_id): (String, Option<String>),
    lock_token: String,
    how: Settlement,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, &device_id, module_id.as_deref()).await?;
    let token = lock_token.trim_matches('"');
    let settled = state
        .c2d
        .settle(&device_id, module_id.as_deref(), token, how)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if settled {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::new(
            ErrorCode::DeviceMessageLockLost,
            format!(
                "The lock token '{}' does not hold a message of this device: it was settled, its lock expired, or it never existed.",
                token.escape_default()
            ),
        ))
    }
}

/// Rejection when the query string asks for it (`?reject`, `?reject=`, `?reject=true`),
/// else completion.
fn completion(query: &std::collections::HashMap<String, String>) -> Settlement {
    let reject = query
        .get("reject")
        .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true"));
    if reject {
        Settlement::Reject
    } else {
        Settlement::Complete
    }
}

/// `POST /devices/{id}/messages/events`.
pub async fn device_events(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    send_events(state, headers, id, None, body).await
}

/// `POST /devices/{id}/modules/{mid}/messages/events`.
pub async fn module_events(
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    send_events(state, headers, id, Some(mid), body).await
}

/// `GET /devices/{id}/messages/devicebound`.
pub async fn device_receive(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    receive(state, headers, id, None).await
}

/// `GET /devices/{id}/modules/{mid}/messages/devicebound`.
pub async fn module_receive(
    State(state): State<AppState>,
    PathParams((id, mid)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    receive(state, headers, id, Some(mid)).await
}

/// `DELETE /devices/{id}/messages/devicebound/{lockToken}[?reject]`.
pub async fn device_complete(
    State(state): State<AppState>,
    PathParams((id, token)): PathParams<(String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    settle(state, headers, (id, None), token, completion(&query)).await
}

/// `DELETE /devices/{id}/modules/{mid}/messages/devicebound/{lockToken}[?reject]`.
pub async fn module_complete(
    State(state): State<AppState>,
    PathParams((id, mid, token)): PathParams<(String, String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    settle(state, headers, (id, Some(mid)), token, completion(&query)).await
}

/// `POST /devices/{id}/messages/devicebound/{lockToken}/abandon`.
pub async fn device_abandon(
    State(state): State<AppState>,
    PathParams((id, token)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    settle(state, headers, (id, None), token, Settlement::Abandon).await
}

/// `POST /devices/{id}/modules/{mid}/messages/devicebound/{lockToken}/abandon`.
pub async fn module_abandon(
    State(state): State<AppState>,
    PathParams((id, mid, token)): PathParams<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    settle(state, headers, (id, Some(mid)), token, Settlement::Abandon).await
}
