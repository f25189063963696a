//! The registry: IoT Hub's rules for device and module identities, twins, bulk registry
//! operations and key regeneration, over the store, with no transport type in sight.
//!
//! Every write runs inside a SQLite transaction on the store's blocking pool: look the
//! identity up, check the ETag, apply the rule, write. A refused operation writes nothing.
//! Concurrent writes are group-committed: the writes waiting when a transaction starts share
//! it, one after the other in arrival order, and one commit (one `fsync`) makes all of them
//! durable; each is answered only after that commit. Most writes run in a savepoint of their
//! own, rolled back when they fail; bulk registry operations and import lines run without one
//! ([`Isolation::Group`]): their entries are checked before they write, and a store failure
//! fails their whole group. Callers (the HTTPS, MQTT and AMQP endpoints) pass plain values
//! in and get records or a [`RegistryError`] back; the HTTP error body is built from that
//! error in one place (`routes/response.rs`).
//!
//! Time comes from the [`Clock`] given to [`Registry::new`], so `$metadata`,
//! `statusUpdatedTime` and generation ids are exact under a fixed clock.

mod bulk;
mod configurations;
mod connections;
mod error;
mod export;
mod identities;
mod keys;
mod scopes;
mod twins;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use bulk::{ImportFailure, ImportLine};
pub use configurations::MAX_LIST_CONFIGURATIONS;
pub use error::RegistryError;
pub use keys::{KeyPolicy, KeyTarget};
pub use twins::TwinDocument;

use crate::clock::{Clock, format_time};
use crate::error::Invalid;
use crate::store::{Store, StoreError};

/// Modules IoT Hub creates with every IoT Edge device and manages itself.
pub const EDGE_SYSTEM_MODULES: [&str; 2] = ["$edgeAgent", "$edgeHub"];

/// Whether `module_id` is one of the IoT Edge system modules.
pub fn is_system_module(module_id: &str) -> bool {
    EDGE_SYSTEM_MODULES.contains(&module_id)
}

/// A change of the desired properties of a device (`module_id` `None`) or module, as a JSON
/// merge patch (`null` removes) carrying the new `$version`: what IoT Hub pushes to devices
/// subscribed to desired-property changes.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredChange {
    /// Device id.
    pub device_id: String,
    /// Module id, for a module twin.
    pub module_id: Option<String>,
    /// Desired properties version after the change.
    pub version: u64,
    /// The change, with `$version`.
    pub patch: serde_json::Value,
}

/// Called after a committed transaction with the desired-property changes it made.
pub type DesiredListener = Arc<dyn Fn(Vec<DesiredChange>) + Send + Sync>;

/// A registry change IoT Hub reports as a non-telemetry event message ("IoT Hub
/// non-telemetry event schemas"): the identity, the change and the document IoT Hub puts in
/// the message body.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEvent {
    /// What happened.
    pub kind: RegistryEventKind,
    /// Device id.
    pub device_id: String,
    /// Module id, for a module.
    pub module_id: Option<String>,
    /// The message body: the identity's twin (lifecycle), the change with the twin's new
    /// version (twin change), or the sequence number (connection state).
    pub body: serde_json::Value,
}

/// The operations IoT Hub reports (the `opType` property of the event message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryEventKind {
    /// `createDeviceIdentity` or `createModuleIdentity`.
    Created,
    /// `deleteDeviceIdentity` or `deleteModuleIdentity`.
    Deleted,
    /// `updateTwin`.
    TwinUpdated,
    /// `replaceTwin`.
    TwinReplaced,
    /// `deviceConnected`.
    Connected,
    /// `deviceDisconnected`.
    Disconnected,
}

impl RegistryEventKind {
    /// IoT Hub's `opType` for a device (`module` false) or module.
    pub fn op_type(self, module: bool) -> &'static str {
        match (self, module) {
            (Self::Created, false) => "createDeviceIdentity",
            (Self::Created, true) => "createModuleIdentity",
            (Self::Deleted, false) => "deleteDeviceIdentity",
            (Self::Deleted, true) => "deleteModuleIdentity",
            (Self::TwinUpdated, _) => "updateTwin",
            (Self::TwinReplaced, _) => "replaceTwin",
            (Self::Connected, _) => "deviceConnected",
            (Self::Disconnected, _) => "deviceDisconnected",
        }
    }
}

/// Called after a committed transaction with the event messages it makes.
pub type EventListener = Arc<dyn Fn(Vec<RegistryEvent>) + Send + Sync>;

/// What the device side needs to authenticate an identity.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The identity's authentication (keys or thumbprints).
    pub auth: crate::model::AuthenticationMechanism,
    /// Whether the identity may connect (a module follows its device's status).
    pub enabled: bool,
    /// Generation id of the identity.
    pub generation_id: String,
}

/// The registry over a store. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<Store>,
    clock: Clock,
    hub: Arc<str>,
    on_desired: Option<DesiredListener>,
    on_event: Option<EventListener>,
    group: Arc<Mutex<Group>>,
}

/// A write waiting for the next group commit: it runs inside the group's transaction and
/// returns what to do once the commit's outcome is known, and whether it failed in a way that
/// dooms the whole transaction (see [`Isolation::Group`]).
type Job = Box<dyn FnOnce(&Connection) -> (Finish, Doomed) + Send>;

/// Whether a write left the group's transaction unfit to commit.
type Doomed = bool;

/// How a write is kept apart from the other writes of its group commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// In a savepoint of its own: when it fails, its changes alone are undone and the
    /// group commits without them.
    Savepoint,
    /// In the group's transaction itself, for writes whose only failure after a change is a
    /// store failure (the bulk registry operation and import lines, which turn every other
    /// problem into a per-entry failure first). Such a failure rolls the whole group back:
    /// every write that ran in it is answered `NotCommitted`, and the writes behind it go
    /// into the next group. It spares the write SQLite's copy of
    /// every page it touches into the savepoint's sub-journal (see `bulk::EntrySavepoint`
    /// for what that cost).
    Group,
}

/// Answers a write (and announces its changes) once its group's commit outcome is known.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Writes waiting for a transaction, and whether a task is committing groups.
#[derive(Default)]
struct Group {
    waiting: Vec<Job>,
    committing: bool,
}

/// Most writes in one transaction, so readers get the connection between groups.
const MAX_GROUP: usize = 256;

/// Commits groups of waiting writes until none is left.
async fn commit_groups(group: Arc<Mutex<Group>>, store: Arc<Store>) {
    loop {
        let jobs = {
            let mut g = group.lock().unwrap_or_else(|p| p.into_inner());
            if g.waiting.is_empty() {
                g.committing = false;
                return;
            }
            let n = g.waiting.len().min(MAX_GROUP);
            g.waiting.drain(..n).collect::<Vec<Job>>()
        };
        let round = store
            .call(move |conn| Ok::<_, StoreError>(commit_group(conn, jobs)))
            .await;
        match round {
            Ok((finishes, outcome, not_run)) => {
                for finish in finishes {
                    finish(outcome.clone());
                }
                // Writes a doomed group never ran go first into the next one.
                if !not_run.is_empty() {
                    let mut g = group.lock().unwrap_or_else(|p| p.into_inner());
                    let later = std::mem::replace(&mut g.waiting, not_run);
                    g.waiting.extend(later);
                }
            }
            // The blocking task panicked: its writes' answer channels were dropped with it, so
            // their callers get an error; the transaction was rolled back while unwinding.
            Err(e) => tracing::error!(error = %e, "a registry group commit failed"),
        }
    }
}

/// What a group commit returns: the answers of the writes it ran, the transaction's outcome,
/// and the writes it did not run (after a doomed one), for the next group.
type GroupRound = (Vec<Finish>, Result<(), String>, Vec<Job>);

/// Runs `jobs` in one transaction (each in its own savepoint unless it is
/// [`Isolation::Group`]) and commits. A doomed transaction is rolled back: the jobs that ran
/// are answered with the failure, and the ones after the doomed job are handed back unrun.
fn commit_group(conn: &mut Connection, jobs: Vec<Job>) -> GroupRound {
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        // Dropping the jobs unanswered fails their callers.
        Err(e) => return (Vec::new(), Err(e.to_string()), Vec::new()),
    };
    let mut finishes: Vec<Finish> = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    for job in jobs.by_ref() {
        let (finish, doomed) = job(&tx);
        finishes.push(finish);
        if doomed {
            // Dropping the transaction rolls it back.
            drop(tx);
            return (
                finishes,
                Err("a store failure rolled back the writes committed with this one".to_owned()),
                jobs.collect(),
            );
        }
    }
    let outcome = tx.commit().map_err(|e| e.to_string());
    (finishes, outcome, Vec::new())
}

/// Runs `f` inside a savepoint, rolled back when it fails.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    conn.prepare_cached("SAVEPOINT registry_write")?
        .execute([])?;
    let outcome = f();
    if outcome.is_err() {
        conn.prepare_cached("ROLLBACK TO registry_write")?
            .execute([])?;
    }
    conn.prepare_cached("RELEASE registry_write")?.execute([])?;
    outcome
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
    desired: std::sync::Mutex<Vec<DesiredChange>>,
    events: std::sync::Mutex<Vec<RegistryEvent>>,
    /// Whether an event listener is set (event messages are built only then).
    wants_events: bool,
}

impl Ctx {
    /// Records an event message of this transaction, announced after it commits.
    /// `body` is only built when an event listener is set.
    fn emit(
        &self,
        kind: RegistryEventKind,
        device_id: &str,
        module_id: Option<&str>,
        body: impl FnOnce() -> serde_json::Value,
    ) {
        if !self.wants_events {
            return;
        }
        let body = body();
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RegistryEvent {
                kind,
                device_id: device_id.to_owned(),
                module_id: module_id.map(str::to_owned),
                body,
            });
    }

    /// Records a change of desired properties made in this transaction, to be announced
    /// after it commits (nothing when the desired version did not move).
    fn desired_changed(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        before: &crate::twin::Section,
        after: &crate::twin::Section,
    ) {
        if before.version == after.version {
            return;
        }
        let mut patch = crate::twin::merge_patch(&before.values, &after.values);
        patch.insert("$version".into(), serde_json::Value::from(after.version));
        self.desired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(DesiredChange {
                device_id: device_id.to_owned(),
                module_id: module_id.map(str::to_owned),
                version: after.version,
                patch: serde_json::Value::Object(patch),
            });
    }

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
            on_desired: None,
            on_event: None,
            group: Arc::default(),
        }
    }

    /// Calls `listener` after every committed change of desired properties (service twin
    /// writes, bulk twin entries, configuration content), in commit order per transaction.
    pub fn with_desired_listener(mut self, listener: DesiredListener) -> Self {
        self.on_desired = Some(listener);
        self
    }

    /// Calls `listener` after each committed transaction with the event messages it made
    /// (identities created and deleted, twins changed, connection states changed).
    pub fn with_event_listener(mut self, listener: EventListener) -> Self {
        self.on_event = Some(listener);
        self
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
            desired: std::sync::Mutex::new(Vec::new()),
            events: std::sync::Mutex::new(Vec::new()),
            wants_events: self.on_event.is_some(),
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

    /// Runs a change: kept when `f` succeeds, rolled back otherwise, and answered once the
    /// group commit that holds it is durable (see the module docs). The listeners hear of its
    /// changes after that commit, in commit order.
    async fn write<T, F>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&Connection, &Ctx) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        self.write_in(self.ctx(), Isolation::Savepoint, f).await
    }

    /// [`Registry::write`] with the isolation chosen (see [`Isolation`]) and its context made
    /// beforehand (its time and event buffers), for a write that builds part of its change
    /// before its turn at the writer.
    async fn write_in<T, F>(&self, ctx: Ctx, isolation: Isolation, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&Connection, &Ctx) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let on_desired = self.on_desired.clone();
        let on_event = self.on_event.clone();
        let job: Job = Box::new(move |conn| {
            let outcome = match isolation {
                Isolation::Savepoint => in_savepoint(conn, || f(conn, &ctx)),
                Isolation::Group => f(conn, &ctx),
            };
            let doomed = isolation == Isolation::Group && outcome.is_err();
            let changes =
                std::mem::take(&mut *ctx.desired.lock().unwrap_or_else(|p| p.into_inner()));
            let events = std::mem::take(&mut *ctx.events.lock().unwrap_or_else(|p| p.into_inner()));
            let finish: Finish = Box::new(move |committed: Result<(), String>| {
                let result = match (outcome, committed) {
                    (Ok(value), Ok(())) => {
                        if let (false, Some(listener)) = (changes.is_empty(), &on_desired) {
                            listener(changes);
                        }
                        if let (false, Some(listener)) = (events.is_empty(), &on_event) {
                            listener(events);
                        }
                        Ok(value)
                    }
                    (Ok(_), Err(e)) => Err(RegistryError::Store(StoreError::NotCommitted(e))),
                    (Err(e), _) => Err(e),
                };
                let _ = reply.send(result);
            });
            (finish, doomed)
        });
        let lead = {
            let mut g = self.group.lock().unwrap_or_else(|p| p.into_inner());
            g.waiting.push(job);
            !std::mem::replace(&mut g.committing, true)
        };
        if lead {
            // A task of its own, so a caller that goes away never strands the writes queued
            // behind it.
            tokio::spawn(commit_groups(
                Arc::clone(&self.group),
                Arc::clone(&self.store),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(RegistryError::Store(StoreError::NotCommitted(
                "the transaction failed before the write ran".to_owned(),
            )))
        })
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

impl Registry {
    /// [`Registry::query`], with each item as the JSON text the hub sends (see
    /// [`crate::query::execute_raw`]).
    ///
    /// # Errors
    /// As [`Registry::query`].
    pub async fn query_raw(
        &self,
        text: String,
        max_items: Option<u32>,
        continuation: Option<String>,
    ) -> Result<crate::query::RawQueryPage, RegistryError> {
        self.read(move |c, _| {
            Ok(crate::query::execute_raw(
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
