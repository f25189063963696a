//! The HTTP API: every route in one table, plus the middleware around them.

mod bulk;
mod configurations;
mod device;
mod devices;
pub(crate) mod extract;
mod jobs;
mod keys;
mod modules;
mod query;
pub(crate) mod response;
mod twins;
mod websocket;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::amqp::AmqpContext;
use crate::auth::Policies;
use crate::c2d::C2dQueues;
use crate::error::{ApiError, ErrorCode};
use crate::journal::{self, Journal, MAX_BODY_BYTES};
use crate::registry::Registry;

use crate::throttle::Throttle;
pub use response::{json_response, json_text_response};

/// Shared state of the HTTP API.
#[derive(Debug)]
pub struct Shared {
    /// The registry (identities, twins, bulk, keys).
    pub registry: Registry,
    /// Shared access policies.
    pub policies: Arc<Policies>,
    /// Throttling state (shared with the AMQP endpoint).
    pub throttle: Arc<Throttle>,
    /// Port the HTTPS listener is bound to.
    pub https_port: u16,
    /// Cloud-to-device queues.
    pub c2d: Arc<C2dQueues>,
    /// The AMQP endpoint (for AMQP over WebSockets on the HTTPS port).
    pub amqp: Arc<AmqpContext>,
    /// The MQTT endpoint (for MQTT over WebSockets on the HTTPS port).
    pub mqtt: Arc<crate::mqtt::MqttContext>,
    /// Device sessions (direct methods, connected devices).
    pub sessions: Arc<crate::sessions::Sessions>,
    /// The telemetry event log (HTTPS device telemetry).
    pub events: Arc<crate::events::EventLog>,
    /// Import/export and scheduled jobs.
    pub jobs: Arc<crate::jobs::Jobs>,
}

/// Cheaply cloneable handle on [`Shared`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Builds the router with all routes and middleware.
pub fn router(state: AppState, journal: Option<Arc<Journal>>) -> Router {
    let routes = Router::new()
        .route(
            "/devices",
            get(devices::list_devices).post(bulk::bulk_registry),
        )
        .route(
            "/devices/query",
            post(query::query_devices)
                .get(devices::get_device_named_query)
                .put(devices::put_device_named_query)
                .delete(devices::delete_device_named_query),
        )
        .route(
            "/devices/{id}",
            get(devices::get_device)
                .put(devices::put_device)
                .delete(devices::delete_device),
        )
        .route("/devices/keys/regenerate", post(keys::regenerate_keys))
        .route(
            "/devices/{id}/applyConfigurationContent",
            post(configurations::apply_configuration_content),
        )
        .route(
            "/devices/{id}/commands",
            axum::routing::delete(devices::purge_commands),
        )
        .route("/devices/{id}/modules", get(modules::list_modules))
        .route(
            "/devices/{id}/modules/{mid}",
            get(modules::get_module)
                .put(modules::put_module)
                .delete(modules::delete_module),
        )
        .route(
            "/twins/{id}",
            get(twins::get_device_twin)
                .patch(twins::patch_device_twin)
                .put(twins::replace_device_twin),
        )
        .route(
            "/twins/{id}/modules/{mid}",
            get(twins::get_module_twin)
                .patch(twins::patch_module_twin)
                .put(twins::replace_module_twin),
        )
        .route("/twins/{id}/methods", post(twins::invoke_device_method))
        .route(
            "/twins/{id}/modules/{mid}/methods",
            post(twins::invoke_module_method),
        )
        .route("/devices/{id}/messages/events", post(device::device_events))
        .route(
            "/devices/{id}/modules/{mid}/messages/events",
            post(device::module_events),
        )
        .route(
            "/devices/{id}/messages/devicebound",
            get(device::device_receive),
        )
        .route(
            "/devices/{id}/modules/{mid}/messages/devicebound",
            get(device::module_receive),
        )
        .route(
            "/devices/{id}/messages/devicebound/{token}",
            axum::routing::delete(device::device_complete),
        )
        .route(
            "/devices/{id}/modules/{mid}/messages/devicebound/{token}",
            axum::routing::delete(device::module_complete),
        )
        .route(
            "/devices/{id}/messages/devicebound/{token}/abandon",
            post(device::device_abandon),
        )
        .route(
            "/devices/{id}/modules/{mid}/messages/devicebound/{token}/abandon",
            post(device::module_abandon),
        )
        .route("/statistics/devices", get(devices::device_statistics))
        .route("/statistics/service", get(devices::service_statistics))
        .route("/configurations", get(configurations::list_configurations))
        .route(
            "/configurations/testQueries",
            post(configurations::test_queries),
        )
        .route(
            "/configurations/{id}",
            get(configurations::get_configuration)
                .put(configurations::put_configuration)
                .delete(configurations::delete_configuration),
        )
        .route("/jobs/create", post(jobs::create_import_export_job))
        .route("/jobs", get(jobs::list_import_export_jobs))
        .route(
            "/jobs/{id}",
            get(jobs::get_import_export_job).delete(jobs::cancel_import_export_job),
        )
        .route("/jobs/v2/query", get(jobs::query_scheduled_jobs))
        .route(
            "/jobs/v2/{id}",
            get(jobs::get_scheduled_job).put(jobs::create_scheduled_job),
        )
        .route("/jobs/v2/{id}/cancel", post(jobs::cancel_scheduled_job))
        .route_layer(middleware::from_fn(require_api_version))
        // AMQP over WebSockets carries no api-version (clients do not send one).
        .route(
            iothub_core::websocket::PATH,
            get(websocket::amqp_over_websocket),
        )
        // uamqp (under the Python service SDK) uses the Service Bus path for the same transport.
        .route(
            "/$servicebus/websocket",
            get(websocket::amqp_over_websocket),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state);
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(journal::reject_oversized))
        .layer(middleware::from_fn(log_requests))
        .layer(middleware::from_fn_with_state(
            journal,
            journal::journal_layer,
        ))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::GenericNotFound,
        format!(
            "The requested resource '{}' does not exist.",
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::GenericMethodNotAllowed,
        format!(
            "The method {} is not allowed on '{}'.",
            request.method(),
            request.uri().path()
        ),
    )
}

/// IoT Hub answers 400 when `api-version` is missing; any non-empty value is accepted, so
/// clients on 2021-04-12 (the official SDKs) and on 2024-03-31 (the Azure CLI, iothub-rest's
/// default) are served alike.
async fn require_api_version(request: Request, next: Next) -> Response {
    let has_version = request
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .is_some_and(|pairs| {
            pairs
                .iter()
                .any(|(k, v)| k == "api-version" && !v.trim().is_empty())
        });
    if has_version {
        next.run(request).await
    } else {
        ApiError::new(
            ErrorCode::InvalidProtocolVersion,
            "The api-version query parameter is required, for example ?api-version=2021-04-12.",
        )
        .into_response()
    }
}

/// Logs one line per request: method, path, status and duration. Never headers or bodies.
async fn log_requests(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // Long paths (a 60 KB id) are cut, so one request cannot flood the log.
    let mut path = request.uri().path().to_owned();
    if path.len() > 256 {
        let cut = (0..=256)
            .rev()
            .find(|&i| path.is_char_boundary(i))
            .unwrap_or(0);
        path.truncate(cut);
        path.push('…');
    }
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    match response.extensions().get::<ErrorCode>() {
        Some(code) => {
            tracing::info!(%method, %path, status, error = code.name(), ms = format!("{millis:.1}"), "request")
        }
        None => tracing::info!(%method, %path, status, ms = format!("{millis:.1}"), "request"),
    }
    response
}
