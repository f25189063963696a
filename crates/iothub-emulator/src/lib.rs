//! A local Azure IoT Hub emulator: the service-side HTTPS registry REST API (api-versions
//! 2021-04-12 and 2024-03-31) over TLS, backed by SQLite.
//!
//! Start one in-process for tests (port 0 and a temporary directory, so tests run in
//! parallel):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let emu = iothub_emulator::Emulator::builder()
//!     .data_dir(dir.path())
//!     .https_port(0)
//!     .start()
//!     .await?;
//! let cs = emu.connection_string(); // HostName=localhost:<port>;SharedAccessKeyName=iothubowner;SharedAccessKey=...
//! let ca = emu.ca_pem();            // trust this CA in the HTTPS client
//! let read_only = emu.policy_connection_string("registryRead");
//! # let _ = (cs, ca, read_only);
//! emu.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! See the crate README for the start-up contract of the `iothub-emulator` binary, the
//! well-known development key ([`WELL_KNOWN_KEY`]), the limits chosen where IoT Hub's
//! documentation is unsure, and what is not implemented yet.
//!
//! The public surface is what a test author needs: [`Emulator`] and its [`EmulatorBuilder`],
//! [`ThrottleConfig`] (with [`Quota`], [`ThrottleProfile`], [`OperationClass`]),
//! [`ConnectionLimits`], the shared access [`Policies`] and the [`WELL_KNOWN_KEY`]; and, to
//! run the `iothub-emulator` binary as a process of its own (benchmarks that measure the
//! hub apart from their client, `kill -9` tests), [`process::HubProcess`].
//!
//! Inside, the crate is layered. The domain (`registry`: identities, modules, twins, bulk
//! operations and key regeneration with their own error type; `twin` and `model`: documents
//! and validation; `c2d`: cloud-to-device queues; `query`: the query engine; `sessions`:
//! device sessions and method calls; `events`: the telemetry event log and IoT Hub's event
//! messages; `consumers`: consumer groups and partition readers; `store`: SQLite; `clock`:
//! injectable time) uses no HTTP, AMQP or MQTT type. The transports sit on top: `routes`
//! (HTTPS, with the one conversion from domain errors to IoT Hub's error responses), `amqp`
//! (AMQPS and AMQP over WebSockets: C2D, feedback, CBS and SASL logins), `eventhub` (the
//! built-in Event Hubs-compatible endpoint on the same listeners), `amqp_frames` (complete
//! performatives on the wire), `mqtt` (the device side), `auth`, `throttle`, `journal`,
//! `conn` and `server`. The crate's `architecture` test checks that the domain imports no
//! transport and that no modules import each other in a cycle.

mod amqp;
mod amqp_frames;
mod auth;
mod c2d;
pub mod cli;
mod clock;
mod conn;
mod consumers;
mod emulator;
mod error;
mod eventhub;
mod events;
mod jobs;
mod journal;
mod model;
mod mqtt;
pub mod process;
mod query;
mod registry;
mod routes;
mod server;
mod sessions;
mod store;
mod throttle;
mod tls;
mod twin;
mod x509;

pub use auth::{POLICY_NAMES, Policies, Policy, WELL_KNOWN_KEY};
pub use conn::ConnectionLimits;
pub use consumers::DEFAULT_CONSUMER_GROUP;
pub use emulator::{
    CONNECTION_STRING_FILE, CONSUMER_GROUPS_FILE, DATABASE_FILE, DEFAULT_AMQPS_PORT,
    DEFAULT_HTTPS_PORT, DEFAULT_HUB_NAME, DEFAULT_MQTTS_PORT, EVENTHUB_CONNECTION_STRING_FILE,
    Emulator, EmulatorBuilder, Error, EventSource, LOCK_FILE, PartitionInfo, StoredTelemetry,
    TelemetryLog, host_name,
};
pub use throttle::{OperationClass, Quota, ThrottleConfig, ThrottleProfile};
/// File in the data directory (and the certificate directory) holding the local hub's CA
/// certificate in PEM: the root clients trust for its TLS.
pub use tls::CA_FILE;
