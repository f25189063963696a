//! The registry: IoT Hub's rules for device and module identities, twins, bulk registry
//! operations and key regeneration, over the store, with no transport type in sight.
//!
//! Every operation runs in one SQLite transaction on the store's blocking pool: look the
//! identity up, check the ETag, apply the rule, write, commit. A refused operation writes
//! nothing. Callers (the HTTPS routes today, the device side's MQTT endpoint tomorrow) pass
//! plain values in and get records or a [`RegistryError`] back; the HTTP error body is built
//! from that error in one place (`routes/response.rs`).
//!
//! Time comes from the [`Clock`] given to [`Registry::new`], so `$metadata`,
//! `statusUpdatedTime` and generation ids are exact under a fixed clock.

mod bulk;
mod configurations;
mod error;
mod identities;
mod keys;
mod scopes;
mod twins;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use configurations::MAX_LIST_CONFIGURATIONS;
pub use error::RegistryError;
pub use keys::{KeyPolicy, KeyTarget};
pub use twins::TwinDocument;

use crate::clock::{Clock, format_time};
use crate::error::Invalid;
use crate::store::Store;

/// Modules IoT Hub creates with every IoT Edge device and manages itself.
pub const EDGE_SYSTEM_MODULES: [&str; 2] = ["$edgeAgent", "$edgeHub"];

/// Whether `module_id` is one of the IoT Edge system modules.
pub fn is_system_module(module_id: &str) -> bool {
    EDGE_SYSTEM_MODULES.contains(&module_id)
}

/// The registry over a store. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<Store>,
    clock: Clock,
    hub: Arc<str>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

/// What one operation runs with: its time and the hub's name (for messages).
pub(crate) struct Ctx {
    now: DateTime<Utc>,
    now_text: String,
    hub: Arc<str>,
}

impl Ctx {
    fn device_not_found(&self, device_id: &str) -> RegistryError {
        RegistryError::DeviceNotFound {
            device_id: device_id.to_owned(),
            hub: Arc::clone(&self.hub),
        }
    }

    fn module_not_found(&self, device_id: &str, module_id: &str) -> RegistryError {
        RegistryError::ModuleNotFound {
            device_id: device_id.to_owned(),
            module_id: module_id.to_owned(),
            hub: Arc::clone(&self.hub),
        }
    }
}

impl Registry {
    /// A registry over `store`, stamping times from `clock`; `hub_name` appears in messages.
    pub fn new(store: Arc<Store>, clock: Clock, hub_name: &str) -> Self {
        Registry {
            store,
            clock,
            hub: Arc::from(hub_name),
        }
    }

    /// The current time of the registry's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// `DeviceNotFound` for `device_id` (for callers outside the registry that find a device
    /// missing, such as the C2D queues).
    pub fn device_not_found(&self, device_id: &str) -> RegistryError {
        RegistryError::DeviceNotFound {
            device_id: device_id.to_owned(),
            hub: Arc::clone(&self.hub),
        }
    }

    fn ctx(&self) -> Ctx {
        let now = self.now();
        Ctx {
            now,
            now_text: format_time(now),
            hub: Arc::clone(&self.hub),
        }
    }

    /// Runs a read on the store's blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&Connection, &Ctx) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        let ctx = self.ctx();
        self.store.call(move |conn| f(conn, &ctx)).await
    }

    /// Runs a change in one transaction: committed when `f` succeeds, rolled back otherwise.
    async fn write<T, F>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&Connection, &Ctx) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        let ctx = self.ctx();
        self.store
            .call(move |conn| {
                let tx = conn.transaction()?;
                let value = f(&tx, &ctx)?;
                tx.commit()?;
                Ok(value)
            })
            .await
    }
}

impl Registry {
    /// Runs a query in IoT Hub's query language and returns one page (see [`crate::query`]).
    ///
    /// # Errors
    /// `ArgumentInvalid` for a query the engine refuses, `GenericBadRequest` for a foreign
    /// continuation token, or a store failure.
    pub async fn query(
        &self,
        text: String,
        max_items: Option<u32>,
        continuation: Option<String>,
    ) -> Result<crate::query::QueryPage, RegistryError> {
        self.read(move |c, _| {
            Ok(crate::query::execute(
                c,
                &text,
                max_items,
                continuation.as_deref(),
            )?)
        })
        .await
    }
}

/// Checks a device or module id (IoT Hub's id rule, see [`crate::model::validate_id`]).
fn check_ids(device_id: &str, module_id: Option<&str>) -> Result<(), Invalid> {
    crate::model::validate_id("device", device_id)?;
    if let Some(m) = module_id {
        crate::model::validate_id("module", m)?;
    }
    Ok(())
}

/// Checks an `If-Match` ETag (already unquoted; `*` matches anything) against `current`.
fn check_etag(
    if_match: Option<&str>,
    current: &str,
    what: &'static str,
) -> Result<(), RegistryError> {
    match if_match {
        Some(expected) if !crate::model::etag_matches(expected, current) => {
            Err(RegistryError::PreconditionFailed { what })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
