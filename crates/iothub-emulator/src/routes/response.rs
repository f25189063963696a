//! The one place where errors become HTTP responses.
//!
//! Domain errors ([`RegistryError`], which carries the query engine's and the store's, and
//! [`C2dError`]) turn into an [`ApiError`] here, and an [`ApiError`] into IoT Hub's error
//! response: the status from the code, the `iothub-errorcode` header and the JSON body.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::c2d::C2dError;
use crate::error::ApiError;
use crate::registry::RegistryError;

/// Header carrying the error name on every error response.
pub const IOTHUB_ERRORCODE: HeaderName = HeaderName::from_static("iothub-errorcode");

/// `application/json; charset=utf-8`, as IoT Hub sends it.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code().clone();
        let status = StatusCode::from_u16(crate::error::http_status(&code))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        if let Ok(name) = HeaderValue::from_str(code.name()) {
            headers.insert(IOTHUB_ERRORCODE, name);
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(code);
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(store) => ApiError::internal(&store),
            RegistryError::Query(crate::query::QueryError::Sql(sql)) => ApiError::internal(&sql),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

impl From<C2dError> for ApiError {
    fn from(error: C2dError) -> Self {
        match error {
            C2dError::Store(e) => ApiError::internal(&e),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

/// A response with IoT Hub's JSON content type whose body is JSON text already written.
pub fn json_text_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// A JSON response with IoT Hub's content type and an optional quoted `ETag` header.
pub fn json_response(status: StatusCode, body: &Value, etag: Option<&str>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&format!("\"{e}\"")).ok()) {
        headers.insert(header::ETAG, etag);
    }
    response
}
