//! The crate's error type and the decoding of IoT Hub's error responses.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a [`RegistryManager`](crate::RegistryManager) call.
///
/// Variants are split by where the failure happened. `Config` and `Auth` fail before anything
/// is sent; `Transport` and `Timeout` may or may not have reached IoT Hub; `Service` is an answer
/// from IoT Hub; `InvalidResponse` is an answer this crate could not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client could not be built (bad connection string, CA certificate, host or option).
    /// Nothing was sent; retrying with the same input fails the same way.
    #[error("invalid registry manager configuration")]
    Config(#[source] ConfigError),
    /// No `Authorization` header could be produced (for example the Azure AD credential
    /// failed to return a token). Nothing was sent; retrying may help if the credential
    /// recovers. The credential's own error is the [`source`](std::error::Error::source).
    #[error("cannot authorize the request")]
    Auth {
        /// Why the credential failed (never holds key or token material).
        #[source]
        source: iothub_auth::AuthError,
    },
    /// A request could not be built from the arguments (for example an ETag that is not a
    /// valid header value, or a chunk size of 0). Nothing was sent.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What is wrong with the arguments.
        message: String,
    },
    /// A cloud-to-device send failed (feature `c2d`); the `is_*` checks look inside it.
    #[cfg(feature = "c2d")]
    #[error("cloud-to-device send failed: {0}")]
    C2d(#[source] iothub_c2d::Error),
    /// A twin patch could not be built (see [`TwinPatchError`](crate::TwinPatchError)).
    /// Nothing was sent.
    #[error("invalid twin patch")]
    TwinPatch(#[from] crate::twins::TwinPatchError),
    /// IoT Hub answered with an error. See [`ServiceError`] for the code, and its helpers such
    /// as [`ServiceError::is_not_found`]. Whether retrying is safe depends on the code;
    /// throttling is already retried by the client when the retry policy allows it.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The operation did not finish within its time budget (per attempt or in total). The
    /// request may have been applied.
    #[error("operation timed out after {attempts} attempt(s) in {elapsed:?}")]
    Timeout {
        /// Time spent on the operation, retries included.
        elapsed: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// A wait for a job ([`wait_for_import_export_job`](crate::RegistryManager::wait_for_import_export_job),
    /// [`wait_for_scheduled_job`](crate::RegistryManager::wait_for_scheduled_job)) reached its
    /// timeout before the job reached a terminal status (completed, failed or cancelled).
    /// The job itself is untouched and keeps running on IoT Hub: wait again, or cancel it.
    #[error("job `{job_id}` was still {status} after waiting {waited:?}")]
    JobWaitTimeout {
        /// The job waited for.
        job_id: String,
        /// Its status at the last successful poll ([`JobStatus::Unknown`](crate::JobStatus::Unknown)
        /// when no poll finished in time).
        status: crate::jobs::JobStatus,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// The request did not complete at the HTTP level (DNS, TCP, TLS, connection reset).
    /// Unless the connection was never established, the request may have been applied.
    #[error("request to iot hub failed")]
    Transport(#[source] reqwest::Error),
    /// IoT Hub answered with something this crate cannot decode. Not retried.
    #[error("unexpected response from iot hub (status {status:?})")]
    InvalidResponse {
        /// HTTP status, when known.
        status: Option<u16>,
        /// The start (at most 1 KiB) of the body, with any `primaryKey` / `secondaryKey`
        /// values replaced by `<redacted>`.
        body: String,
        /// The decoding error, when there was one.
        #[source]
        source: Option<serde_json::Error>,
    },
}

impl Error {
    /// The service error, when IoT Hub answered with one.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Error::Service(e) => Some(e),
            _ => None,
        }
    }

    /// The service error, consuming `self`.
    pub fn into_service_error(self) -> Option<ServiceError> {
        match self {
            Error::Service(e) => Some(e),
            _ => None,
        }
    }

    /// The IoT Hub error code, when IoT Hub answered with an error.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.service_error().map(|e| &e.code)
    }

    /// 404: the device, module, twin or other resource does not exist. False for
    /// DeviceNotOnline (404103), which IoT Hub also sends with status 404 but which means the
    /// device exists and is not connected: see [`is_device_not_online`](Self::is_device_not_online).
    pub fn is_not_found(&self) -> bool {
        self.service_error().is_some_and(ServiceError::is_not_found)
            || self.c2d_check(C2dCheck::DeviceNotFound)
    }

    /// The device's cloud-to-device queue is full: DeviceMaximumQueueDepthExceeded (403004),
    /// from [`send_c2d_message`](crate::RegistryManager::send_c2d_message).
    pub fn is_queue_full(&self) -> bool {
        self.c2d_check(C2dCheck::QueueFull)
    }

    /// A cloud-to-device message is over IoT Hub's 64 KB limit: MessageTooLarge (413001).
    pub fn is_message_too_large(&self) -> bool {
        self.c2d_check(C2dCheck::TooLarge)
    }

    #[cfg(feature = "c2d")]
    fn c2d_check(&self, check: C2dCheck) -> bool {
        let Error::C2d(e) = self else {
            return false;
        };
        match check {
            C2dCheck::DeviceNotFound => e.is_device_not_found(),
            C2dCheck::QueueFull => e.is_queue_full(),
            C2dCheck::TooLarge => e.is_message_too_large(),
            C2dCheck::Throttled => e.is_throttled(),
            C2dCheck::Unauthorized => e.is_unauthorized(),
            C2dCheck::Timeout => e.is_timeout(),
        }
    }

    #[cfg(not(feature = "c2d"))]
    fn c2d_check(&self, _check: C2dCheck) -> bool {
        false
    }

    /// 409: the device or module already exists.
    pub fn is_already_exists(&self) -> bool {
        self.service_error()
            .is_some_and(ServiceError::is_already_exists)
    }

    /// 412: the `If-Match` ETag did not match.
    pub fn is_precondition_failed(&self) -> bool {
        self.service_error()
            .is_some_and(ServiceError::is_precondition_failed)
    }

    /// 429: IoT Hub throttled the request.
    pub fn is_throttled(&self) -> bool {
        self.service_error().is_some_and(ServiceError::is_throttled)
            || self.c2d_check(C2dCheck::Throttled)
    }

    /// 404103 DeviceNotOnline: the device (or module) exists but is not connected, or has not
    /// subscribed to direct methods, so the method could not be invoked.
    pub fn is_device_not_online(&self) -> bool {
        self.service_error()
            .is_some_and(ServiceError::is_device_not_online)
    }

    /// 401: IoT Hub refused the credential or its rights for the operation; this includes
    /// 401100 `SystemModuleModifyUnauthorizedAccess` (the IoT Edge system modules are the
    /// hub's; match [`code`](Self::code) to tell it apart). A credential that could not
    /// produce a token at all is [`Error::Auth`], see [`is_auth`](Self::is_auth).
    pub fn is_unauthorized(&self) -> bool {
        self.service_error()
            .is_some_and(ServiceError::is_unauthorized)
            || self.c2d_check(C2dCheck::Unauthorized)
    }

    /// 400: IoT Hub rejected the request as malformed or invalid.
    pub fn is_bad_request(&self) -> bool {
        self.service_error()
            .is_some_and(ServiceError::is_bad_request)
    }

    /// 413002 TooManyDevices: more than 100 entries in one bulk request.
    pub fn is_too_many_devices(&self) -> bool {
        self.service_error()
            .is_some_and(ServiceError::is_too_many_devices)
    }

    /// The credential could not produce an `Authorization` header; nothing was sent.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    /// The request did not complete at the HTTP level (DNS, TCP, TLS, connection reset).
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport(_))
    }

    /// The operation ran out of time: [`Error::Timeout`], or [`Error::JobWaitTimeout`] for a
    /// job wait.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::JobWaitTimeout { .. })
            || self.c2d_check(C2dCheck::Timeout)
    }
}

/// Why a [`RegistryManager`](crate::RegistryManager) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The connection string is malformed.
    #[error("malformed connection string")]
    ConnectionString(#[source] iothub_auth::ConnectionStringError),
    /// The connection string holds no service key.
    #[error("connection string cannot sign requests")]
    Credential(#[source] iothub_auth::AuthError),
    /// No credential was given to the builder.
    #[error("no credential: use connection_string, credential or token_credential")]
    MissingCredential,
    /// The host or endpoint is not a valid URL.
    #[error("invalid host or endpoint: {0}")]
    InvalidEndpoint(String),
    /// A root CA certificate is not valid PEM.
    #[error("invalid root certificate")]
    InvalidCertificate(#[source] reqwest::Error),
    /// A root CA file could not be read.
    #[error("cannot read root certificate file")]
    CertificateFile(#[source] std::io::Error),
    /// The user agent is not a valid header value.
    #[error("invalid user agent")]
    InvalidUserAgent,
    /// The HTTP client could not be created.
    #[error("cannot build the http client")]
    Http(#[source] reqwest::Error),
    /// A custom HTTP client was given together with options that only apply to the client
    /// this crate builds itself (root certificates, connect timeout, user agent).
    #[error("http_client cannot be combined with: {options}; configure the reqwest client instead")]
    ConflictingOptions {
        /// The conflicting options, comma-separated.
        options: String,
    },
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

// IoT Hub's error codes are shared vocabulary, defined in `iothub-core`.
#[doc(inline)]
pub use iothub_core::ErrorCode;

/// An error answer from IoT Hub, decoded from its status, `iothub-errorcode` header and body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("iot hub returned {status}: {code}")]
#[non_exhaustive]
pub struct ServiceError {
    /// HTTP status.
    pub status: u16,
    /// IoT Hub's error code.
    pub code: ErrorCode,
    /// IoT Hub's explanation (the text after `ErrorCode:<Name>;`), if any.
    pub message: String,
    /// The tracking id to quote to support, if any.
    pub tracking_id: Option<String>,
    /// How long IoT Hub asked the client to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl ServiceError {
    /// 404: the device, module, twin or other resource does not exist. False for
    /// DeviceNotOnline (404103); see [`is_device_not_online`](Self::is_device_not_online).
    pub fn is_not_found(&self) -> bool {
        self.status == 404 && !self.is_device_not_online()
    }

    /// 409: the identity already exists.
    pub fn is_already_exists(&self) -> bool {
        self.status == 409
    }

    /// 412: the ETag did not match.
    pub fn is_precondition_failed(&self) -> bool {
        self.status == 412
    }

    /// 429: the request was throttled.
    pub fn is_throttled(&self) -> bool {
        self.status == 429
    }

    /// 401: the credential was refused or lacks the rights for the operation.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    /// 400: the request was rejected as malformed or invalid.
    pub fn is_bad_request(&self) -> bool {
        self.status == 400
    }

    /// 413002: too many devices in one bulk request.
    pub fn is_too_many_devices(&self) -> bool {
        self.code == ErrorCode::TooManyDevices
    }

    /// 404103: the device is not online, so the direct method could not be invoked.
    pub fn is_device_not_online(&self) -> bool {
        self.code == ErrorCode::DeviceNotOnline
    }

    /// 5xx: the service failed.
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }

    /// Decodes an error response from its parts. `body` is the raw body (possibly empty or
    /// not JSON). Pure function, no IO.
    pub fn from_parts(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let details: Option<ErrorBody> = serde_json::from_slice(body).ok();
        Self::from_details(status, headers, details.unwrap_or_default())
    }

    pub(crate) fn from_generated(
        status: u16,
        headers: &HeaderMap,
        d: iothub_rest::types::ErrorDetails,
    ) -> Self {
        Self::from_details(
            status,
            headers,
            ErrorBody {
                message_upper: d.message,
                message_lower: None,
                exception_message: d.exception_message,
                error_code: d.error_code,
                tracking_id: d.tracking_id,
            },
        )
    }

    fn from_details(status: u16, headers: &HeaderMap, body: ErrorBody) -> Self {
        let header_name = headers
            .get("iothub-errorcode")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let mut name = header_name;
        let mut number = body.error_code.as_ref().and_then(json_number);
        let mut tracking_id = body.tracking_id.clone();
        let message;

        let text = body
            .message_upper
            .or(body.message_lower)
            .unwrap_or_default();
        let text = text.trim();
        if text.starts_with('{') {
            // Shape B nested in Message (direct methods).
            if let Ok(inner) = serde_json::from_str::<ErrorBody>(text) {
                number = number.or_else(|| inner.error_code.as_ref().and_then(json_number));
                tracking_id = tracking_id.or(inner.tracking_id);
                let inner_text = inner
                    .message_lower
                    .or(inner.message_upper)
                    .unwrap_or_default();
                let (n, m) = split_error_code(&inner_text);
                name = name.or(n);
                message = m;
            } else {
                message = text.to_owned();
            }
        } else {
            let (n, m) = split_error_code(text);
            name = name.or(n);
            message = m;
        }
        if tracking_id.is_none() {
            tracking_id = body
                .exception_message
                .as_deref()
                .and_then(parse_tracking_id);
        }

        let code = match (number, name) {
            (Some(n), _) if !matches!(ErrorCode::from_number(n), ErrorCode::Unknown { .. }) => {
                ErrorCode::from_number(n)
            }
            (n, Some(name)) => match ErrorCode::from_name(&name) {
                ErrorCode::Unknown { name, .. } => ErrorCode::Unknown { name, number: n },
                known => known,
            },
            (n, None) => ErrorCode::Unknown {
                name: None,
                number: n,
            },
        };
        ServiceError {
            status,
            code,
            message: scrub_sas_signatures(&message).into_owned(),
            tracking_id,
            retry_after: retry_after(headers),
        }
    }
}

#[derive(Default, serde::Deserialize)]
struct ErrorBody {
    #[serde(rename = "Message")]
    message_upper: Option<String>,
    #[serde(rename = "message")]
    message_lower: Option<String>,
    #[serde(rename = "ExceptionMessage")]
    exception_message: Option<String>,
    #[serde(rename = "errorCode")]
    error_code: Option<serde_json::Value>,
    #[serde(rename = "trackingId")]
    tracking_id: Option<String>,
}

fn json_number(v: &serde_json::Value) -> Option<u32> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Splits `ErrorCode:<Name>;<detail>` into the name and the detail.
fn split_error_code(text: &str) -> (Option<String>, String) {
    if let Some(rest) = text.strip_prefix("ErrorCode:") {
        let (name, detail) = rest.split_once(';').unwrap_or((rest, ""));
        let name = name.trim();
        let name = (!name.is_empty()).then(|| name.to_owned());
        (name, detail.trim().to_owned())
    } else {
        (None, text.to_owned())
    }
}

/// Reads `Tracking ID:<id>-G:…` (or `Tracking ID:<id>` alone).
fn parse_tracking_id(text: &str) -> Option<String> {
    let start = text.find("Tracking ID:")? + "Tracking ID:".len();
    let rest = text[start..].trim_start();
    let end = rest
        .find("-G:")
        .or_else(|| rest.find(|c: char| c.is_whitespace() || c == ','))
        .unwrap_or(rest.len());
    let id = rest[..end].trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// `Retry-After` (seconds) or `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        // `try_from_secs_f64` rejects negative, non-finite and too large values.
        if let Some(ms) = header(name).and_then(|v| v.parse::<f64>().ok())
            && let Ok(delay) = Duration::try_from_secs_f64(ms / 1000.0)
        {
            return Some(delay);
        }
    }
    header("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The first KiB of a body, as lossy UTF-8. A JSON body holding device or module keys
/// (`primaryKey`, `secondaryKey`) or job container URIs (`inputBlobContainerUri`,
/// `outputBlobContainerUri`, whose query string is a SAS token) is re-serialized with those
/// values replaced first, and the value of any SAS signature (`sig=`) left in the text is
/// replaced too, so that the excerpt can be printed.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let redacted = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|mut value| redact_keys(&mut value).then(|| value.to_string()));
    let body = redacted.as_ref().map_or(body, String::as_bytes);
    let text = String::from_utf8_lossy(body);
    excerpt(&scrub_sas_signatures(&text)).to_owned()
}

/// `text` with the value of every SAS signature parameter (`sig=…`, as in a container URI's
/// query string) replaced by `<redacted>`.
pub(crate) fn scrub_sas_signatures(text: &str) -> std::borrow::Cow<'_, str> {
    const PARAM: &str = "sig=";
    let lower = text.to_ascii_lowercase();
    let starts: Vec<usize> = lower
        .match_indices(PARAM)
        .map(|(at, _)| at)
        .filter(|&at| at == 0 || matches!(text.as_bytes()[at - 1], b'?' | b'&' | b';'))
        .collect();
    if starts.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for at in starts {
        let value = at + PARAM.len();
        if value < copied {
            continue;
        }
        // A signature is base64, possibly URL-encoded.
        let end = text[value..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "%+/=_-".contains(c)))
            .map_or(text.len(), |n| value + n);
        out.push_str(&text[copied..value]);
        out.push_str(iothub_core::redact::REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The first KiB of `text`, cut at a character boundary.
pub(crate) fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Replaces non-null `primaryKey` / `secondaryKey` values, at any depth, by `"<redacted>"`,
/// and the query string of `inputBlobContainerUri` / `outputBlobContainerUri` values;
/// true if any was replaced.
fn redact_keys(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut redacted = false;
            for (k, v) in map.iter_mut() {
                if (k == "primaryKey" || k == "secondaryKey") && !v.is_null() {
                    *v = Value::String("<redacted>".into());
                    redacted = true;
                } else if let (
                    "inputBlobContainerUri" | "outputBlobContainerUri",
                    Value::String(uri),
                ) = (k.as_str(), &*v)
                {
                    *v = Value::String(iothub_rest::redact_uri_query(uri));
                    redacted = true;
                } else {
                    redacted |= redact_keys(v);
                }
            }
            redacted
        }
        Value::Array(items) => items.iter_mut().fold(false, |acc, v| redact_keys(v) | acc),
        _ => false,
    }
}

/// Which check of a cloud-to-device error an `is_*` method makes.
#[cfg_attr(not(feature = "c2d"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
enum C2dCheck {
    DeviceNotFound,
    QueueFull,
    TooLarge,
    Throttled,
    Unauthorized,
    Timeout,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn decodes_shape_a_with_header() {
        let body = br#"{"Message":"ErrorCode:DeviceNotFound;Device 'd1' is not registered.","ExceptionMessage":"Tracking ID:0123abcd-G:0-TimeStamp:01/02/2024 03:04:05"}"#;
        let e = ServiceError::from_parts(
            404,
            &headers(&[("iothub-errorcode", "DeviceNotFound")]),
            body,
        );
        assert_eq!(e.code, ErrorCode::DeviceNotFound);
        assert_eq!(e.code.number(), Some(404001));
        assert_eq!(e.message, "Device 'd1' is not registered.");
        assert_eq!(e.tracking_id.as_deref(), Some("0123abcd"));
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "iot hub returned 404: DeviceNotFound (404001)"
        );
    }

    #[test]
    fn decodes_shape_a_without_header() {
        let body = br#"{"Message":"ErrorCode:ThrottlingBacklogTimeout;The request has been throttled. Wait 10 seconds and try again. Operation type: CRUD","ExceptionMessage":"Tracking ID:abc-G:0"}"#;
        let e = ServiceError::from_parts(429, &headers(&[("retry-after", "10")]), body);
        assert_eq!(e.code, ErrorCode::ThrottlingBacklogTimeout);
        assert_eq!(e.code.number(), Some(429003));
        assert_eq!(e.retry_after, Some(Duration::from_secs(10)));
        assert!(e.is_throttled());
    }

    #[test]
    fn decodes_shape_b_nested_in_message() {
        let inner = r#"{"errorCode":404103,"trackingId":"track-1","message":"Timed out waiting for device to connect.","info":{},"timestampUtc":"2024-01-01T00:00:00Z"}"#;
        let body = serde_json::json!({"Message": inner, "ExceptionMessage": ""}).to_string();
        let e = ServiceError::from_parts(404, &HeaderMap::new(), body.as_bytes());
        assert_eq!(e.code, ErrorCode::DeviceNotOnline);
        assert!(e.is_device_not_online());
        assert!(!e.is_not_found(), "an offline device is not a missing one");
        assert!(!Error::Service(e.clone()).is_not_found());
        assert!(Error::Service(e.clone()).is_device_not_online());
        assert_eq!(e.tracking_id.as_deref(), Some("track-1"));
        assert_eq!(e.message, "Timed out waiting for device to connect.");
    }

    #[test]
    fn decodes_shape_b_top_level() {
        let body = br#"{"errorCode":409001,"trackingId":"t","message":"exists"}"#;
        let e = ServiceError::from_parts(409, &HeaderMap::new(), body);
        assert_eq!(e.code, ErrorCode::DeviceAlreadyExists);
        assert_eq!(e.message, "exists");
    }

    #[test]
    fn unknown_and_empty_bodies() {
        let e = ServiceError::from_parts(418, &headers(&[("iothub-errorcode", "Teapot")]), b"");
        assert_eq!(
            e.code,
            ErrorCode::Unknown {
                name: Some("Teapot".into()),
                number: None
            }
        );
        assert_eq!(e.code.name(), "Teapot");
        let e = ServiceError::from_parts(503, &HeaderMap::new(), b"<html>oops</html>");
        assert_eq!(e.code.name(), "Unknown");
        assert_eq!(e.message, "");
        assert!(e.is_server_error());
    }

    #[test]
    fn code_tables_round_trip() {
        for n in [
            400013, 404001, 409301, 412001, 413002, 429001, 429005, 503001,
        ] {
            let code = ErrorCode::from_number(n);
            assert_eq!(code.number(), Some(n));
            assert_eq!(ErrorCode::from_name(code.name()), code);
        }
    }

    #[test]
    fn body_excerpt_hides_keys() {
        let body = br#"{"deviceId":"d1","authentication":{"symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25k"}},"status":"sleeping"}"#;
        let excerpt = body_excerpt(body);
        assert!(excerpt.contains("<redacted>"), "{excerpt}");
        assert!(
            !excerpt.contains("cHJpbWFyeQ") && !excerpt.contains("c2Vjb25k"),
            "{excerpt}"
        );
        assert!(excerpt.contains("sleeping"), "{excerpt}");
        // Bodies without keys are kept as sent.
        assert_eq!(body_excerpt(b"{ \"a\": 1 }"), "{ \"a\": 1 }");
        assert_eq!(body_excerpt(b"<html>"), "<html>");
    }

    #[test]
    fn body_excerpt_hides_sas_tokens() {
        let body = br#"{"jobId":"j1","outputBlobContainerUri":"https://a.blob.core.windows.net/c?sv=2022-11-02&sig=U0VDUkVU%2Bsig","failureReason":"cannot write https://a.blob.core.windows.net/c?se=2030&sig=T1RIRVI%3D: 403","status":"oops"}"#;
        let excerpt = body_excerpt(body);
        assert!(
            !excerpt.contains("U0VDUkVU") && !excerpt.contains("T1RIRVI"),
            "{excerpt}"
        );
        assert!(
            excerpt.contains("https://a.blob.core.windows.net/c?<redacted>"),
            "{excerpt}"
        );
        assert!(excerpt.contains("sig=<redacted>: 403"), "{excerpt}");
        // Not JSON: the signature is still replaced.
        let text = body_excerpt(b"<html>https://a/c?sv=1&SIG=abc%3D&se=2</html>");
        assert_eq!(text, "<html>https://a/c?sv=1&SIG=<redacted>&se=2</html>");
        assert_eq!(scrub_sas_signatures("design=1"), "design=1");
        let e = ServiceError::from_parts(
            400,
            &HeaderMap::new(),
            br#"{"Message":"ErrorCode:ArgumentInvalid;bad uri https://a/c?sig=abc"}"#,
        );
        assert_eq!(e.message, "bad uri https://a/c?sig=<redacted>");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        // Out-of-range values from a misbehaving server or proxy are ignored, not a panic.
        assert_eq!(retry_after(&headers(&[("retry-after", "1e300")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1e300"),
                ("retry-after", "1")
            ])),
            Some(Duration::from_secs(1))
        );
    }
}
