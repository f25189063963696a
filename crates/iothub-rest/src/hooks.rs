//! Request hooks: api-version, `Authorization` and a tracing span for every operation.

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
            let result = self.client().execute(request).await;
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
