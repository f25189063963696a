//! `GET /$iothub/websocket`: AMQP over WebSockets (sub-protocol `AMQPWSB10`) and MQTT over
//! WebSockets (sub-protocol `mqtt`), IoT Hub's transports for networks that only allow port
//! 443. The upgraded connection is served by the AMQP or MQTT endpoint exactly like an AMQPS
//! or MQTTS connection; authentication happens inside it (CBS, MQTT CONNECT).

use std::sync::Arc;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::Role;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use iothub_core::websocket::{AMQP_SUB_PROTOCOL as SUB_PROTOCOL, MQTT_SUB_PROTOCOL};
use ws_stream_tungstenite::WsStream;

use super::AppState;
use crate::conn::ConnState;

use crate::error::{ApiError, ErrorCode};

/// Upgrades to a WebSocket carrying AMQP.
pub async fn amqp_over_websocket(State(state): State<AppState>, mut request: Request) -> Response {
    let headers = request.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let protocol = offered
        .iter()
        .find(|p| {
            p.eq_ignore_ascii_case(SUB_PROTOCOL)
                || p.eq_ignore_ascii_case("amqp")
                || p.eq_ignore_ascii_case(MQTT_SUB_PROTOCOL)
        })
        .cloned();
    let is_mqtt = protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(MQTT_SUB_PROTOCOL));
    let (Some(key), true, Some(protocol)) = (key, is_upgrade, protocol) else {
        return ApiError::new(
            ErrorCode::GenericBadRequest,
            format!("This endpoint carries AMQP and MQTT over WebSockets: send a WebSocket upgrade offering the sub-protocol {SUB_PROTOCOL} or {MQTT_SUB_PROTOCOL}."),
        )
        .into_response();
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let amqp = Arc::clone(&state.amqp);
    let mqtt = Arc::clone(&state.mqtt);
    let conn = request.extensions().get::<Arc<ConnState>>().cloned();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioAdapter::new(TokioIo::new(upgraded)),
                    Role::Server,
                    None,
                )
                .await;
                if is_mqtt {
                    crate::mqtt::serve_stream(WsStream::new(ws), mqtt, conn, None).await;
                } else {
                    crate::amqp::serve_stream(WsStream::new(ws), amqp).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Ok(protocol) = HeaderValue::from_str(&protocol) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}
