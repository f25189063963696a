//! Request hooks: api-version, `Authorization` and a tracing span for every operation, and
//! error bodies made decodable.

use progenitor_client::{ClientHooks, ClientInfo, Error, OperationInfo};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tracing::Instrument as _;

use crate::{Client, ClientState};

impl ClientHooks<ClientState> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &OperationInfo,
    ) -> Result<(), Error<E>> {
        let state = self.inner();
        // progenitor sends the spec version as a header; IoT Hub reads the query parameter.
        request.headers_mut().remove("api-version");
        request
            .url_mut()
            .query_pairs_mut()
            .append_pair("api-version", state.api_version());
        let header = state
            .credential()
            .authorization_header()
            .await
            .map_err(|e| Error::Custom(format!("cannot authorize the request: {e}")))?;
        let mut value = HeaderValue::from_str(header.expose())
            .map_err(|_| Error::Custom("authorization value is not a valid header".into()))?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let span = tracing::debug_span!(
            "iothub.rest",
            operation = info.operation_id,
            method = %request.method(),
            path = request.url().path(),
        );
        async {
            let started = std::time::Instant::now();
            let result = match self.client().execute(request).await {
                Ok(response) => normalize_error_body(response).await,
                Err(error) => Err(error),
            };
            match &result {
                Ok(response) => tracing::debug!(
                    status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "response"
                ),
                Err(error) => tracing::debug!(%error, "request failed"),
            }
            result
        }
        .instrument(span)
        .await
    }
}

/// Makes every error response carry a JSON object body.
///
/// IoT Hub answers errors with a JSON object, which the generated code decodes as
/// `ErrorDetails`. A proxy or gateway in between may answer with HTML, plain text or
/// nothing (a bare 503, 504 or 429); decoding that would fail and lose the status and
/// headers (`Retry-After`) that decide whether to retry. Such a body is replaced with
/// `{"Message": "ErrorCode:<iothub-errorcode header or reason>;<start of the body>"}`;
/// status and headers are kept.
async fn normalize_error_body(response: reqwest::Response) -> reqwest::Result<reqwest::Response> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let version = response.version();
    let mut headers = response.headers().clone();
    let body = response.bytes().await?;
    let body = if serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object()) {
        body
    } else {
        let code = headers
            .get("iothub-errorcode")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', "")
            });
        let text = String::from_utf8_lossy(&body);
        let mut excerpt = text.trim();
        if excerpt.len() > 512 {
            let mut end = 512;
            while !excerpt.is_char_boundary(end) {
                end -= 1;
            }
            excerpt = &excerpt[..end];
        }
        headers.remove(reqwest::header::CONTENT_LENGTH);
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        serde_json::json!({ "Message": format!("ErrorCode:{code};{excerpt}") })
            .to_string()
            .into()
    };
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok(reqwest::Response::from(rebuilt))
}
