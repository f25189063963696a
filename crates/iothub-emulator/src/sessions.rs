//! Device sessions: which devices and modules are connected now, what they subscribed to,
//! and the direct-method calls waiting for their answer. No transport type appears here; a
//! transport (MQTT today) opens a session when an identity connects, forwards what the
//! session receives, and closes it when the connection ends.
//!
//! Rules (IoT Hub's "Understand and invoke direct methods" and MQTT support pages):
//! - one connection per identity: a second connection with the same client id replaces the
//!   first ([`SessionEvent::Replaced`]);
//! - a direct method reaches a device only while it is connected *and* subscribed to method
//!   requests; otherwise the call waits up to `connectTimeoutInSeconds` for that, then fails
//!   with `DeviceNotOnline` (404103);
//! - a device that does not answer within `responseTimeoutInSeconds` fails the call with
//!   `GatewayTimeout` (504101);
//! - desired-property changes are pushed to identities subscribed to them.
//!
//! Connection state (`connectionState`, `connectionStateUpdatedTime`, `lastActivityTime`) is
//! written to the registry by [`Sessions::run_state_writer`], which takes every identity whose
//! state changed and writes its *current* state in one transaction: a burst of connections
//! costs one commit, and a replaced session's late disconnect can never overwrite the new
//! session's state.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::registry::Registry;

/// A device (`module_id` `None`) or module identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// Device id.
    pub device_id: String,
    /// Module id, for a module.
    pub module_id: Option<String>,
}

impl Identity {
    /// A device identity.
    #[cfg(test)]
    pub fn device(device_id: impl Into<String>) -> Self {
        Identity {
            device_id: device_id.into(),
            module_id: None,
        }
    }

    /// A device or module identity.
    pub fn new(device_id: impl Into<String>, module_id: Option<String>) -> Self {
        Identity {
            device_id: device_id.into(),
            module_id,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.module_id {
            Some(m) => write!(f, "{}/{}", self.device_id, m),
            None => f.write_str(&self.device_id),
        }
    }
}

/// What a session is told by the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A direct-method request to forward; answer it with [`Sessions::respond`] and `request_id`.
    MethodRequest {
        /// Request id (`$rid`).
        request_id: u64,
        /// Method name.
        method: String,
        /// JSON payload.
        payload: Value,
    },
    /// A change of the desired properties: `patch` is a JSON merge patch (`null` removes)
    /// carrying the new `$version`.
    DesiredPatch {
        /// Desired properties version after the change.
        version: u64,
        /// The change, with `$version`.
        patch: Value,
    },
    /// Another connection with the same identity replaced this one; close the connection.
    Replaced,
}

/// What a session subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// `$iothub/methods/POST/#`.
    Methods,
    /// `$iothub/twin/PATCH/properties/desired/#`.
    DesiredProperties,
}

/// A direct-method invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// Method name.
    pub method: String,
    /// JSON payload.
    pub payload: Value,
    /// How long to wait for the identity to be online (`connectTimeoutInSeconds`).
    pub connect_timeout: Duration,
    /// How long to wait for the answer once delivered (`responseTimeoutInSeconds`).
    pub response_timeout: Duration,
}

/// A device's answer to a direct method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResponse {
    /// The status the device chose.
    pub status: i64,
    /// The JSON payload it sent (`null` when it sent none).
    pub payload: Value,
}

/// Why a direct method failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    /// Not connected (or not subscribed to methods) within the connect timeout (404103).
    #[error(
        "The operation failed because the requested device isn't online or hasn't registered the direct method callback."
    )]
    NotOnline,
    /// No answer within the response timeout (504101).
    #[error("Timed out waiting for the response from device.")]
    Timeout,
}

struct Entry {
    id: u64,
    events: mpsc::UnboundedSender<SessionEvent>,
    subscriptions: HashSet<SubscriptionKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SubscriptionKey {
    Methods,
    Desired,
}

impl From<Subscription> for SubscriptionKey {
    fn from(s: Subscription) -> Self {
        match s {
            Subscription::Methods => SubscriptionKey::Methods,
            Subscription::DesiredProperties => SubscriptionKey::Desired,
        }
    }
}

struct Pending {
    identity: Identity,
    reply: oneshot::Sender<MethodResponse>,
}

/// The hub's device sessions. Cheap to share (`Arc`).
pub struct Sessions {
    open: Mutex<HashMap<Identity, Entry>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    /// Bumped on every open, close and subscription: method calls waiting for a device
    /// watch it.
    changed: watch::Sender<u64>,
    dirty: mpsc::UnboundedSender<Identity>,
    dirty_rx: Mutex<Option<mpsc::UnboundedReceiver<Identity>>>,
    /// Subscriptions kept for identities that connect with a persistent session (MQTT
    /// `cleanSession=0`): the transport's topic filters, restored on the next connection.
    kept: Mutex<HashMap<Identity, Vec<String>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.open_count())
            .finish_non_exhaustive()
    }
}

/// A session handle: the transport keeps it for the life of the connection and passes it to
/// [`Sessions::close`] at the end.
#[derive(Debug)]
pub struct Session {
    /// The identity.
    pub identity: Identity,
    id: u64,
    /// What the hub tells this session.
    pub events: mpsc::UnboundedReceiver<SessionEvent>,
}

impl Sessions {
    /// No sessions.
    pub fn new() -> Arc<Self> {
        let (dirty, dirty_rx) = mpsc::unbounded_channel();
        let (changed, _) = watch::channel(0);
        Arc::new(Sessions {
            open: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            changed,
            dirty,
            dirty_rx: Mutex::new(Some(dirty_rx)),
            kept: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps the subscriptions (topic filters) of an identity with a persistent session.
    pub fn keep_subscriptions(&self, identity: &Identity, filters: Vec<String>) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(identity.clone(), filters);
    }

    /// The kept subscriptions of an identity, if it has a persistent session.
    pub fn kept_subscriptions(&self, identity: &Identity) -> Option<Vec<String>> {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(identity)
            .cloned()
    }

    /// Ends an identity's persistent session (a clean-session connection).
    pub fn forget_subscriptions(&self, identity: &Identity) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(identity);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Identity, Entry>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `identity`, replacing (and telling) the one open before.
    pub fn open(&self, identity: Identity) -> Session {
        let (tx, events) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let previous = self.lock().insert(
            identity.clone(),
            Entry {
                id,
                events: tx,
                subscriptions: HashSet::new(),
            },
        );
        if let Some(previous) = previous {
            let _ = previous.events.send(SessionEvent::Replaced);
        }
        let _ = self.dirty.send(identity.clone());
        self.changed.send_modify(|n| *n += 1);
        Session {
            identity,
            id,
            events,
        }
    }

    /// Closes a session. Returns whether it was still the identity's current session (a
    /// replaced session's close changes nothing).
    pub fn close(&self, session: &Session) -> bool {
        let mut open = self.lock();
        let current = open
            .get(&session.identity)
            .is_some_and(|e| e.id == session.id);
        if current {
            open.remove(&session.identity);
        }
        drop(open);
        if current {
            let _ = self.dirty.send(session.identity.clone());
            self.changed.send_modify(|n| *n += 1);
        }
        current
    }

    /// Records a subscription of a session (method requests, desired-property changes).
    pub fn subscribe(&self, session: &Session, what: Subscription) {
        let mut open = self.lock();
        if let Some(entry) = open
            .get_mut(&session.identity)
            .filter(|e| e.id == session.id)
        {
            entry.subscriptions.insert(what.into());
        }
        drop(open);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Removes a subscription of a session.
    pub fn unsubscribe(&self, session: &Session, what: Subscription) {
        let mut open = self.lock();
        if let Some(entry) = open
            .get_mut(&session.identity)
            .filter(|e| e.id == session.id)
        {
            entry.subscriptions.remove(&what.into());
        }
    }

    /// Whether `identity` has an open session.
    pub fn is_connected(&self, identity: &Identity) -> bool {
        self.lock().contains_key(identity)
    }

    /// Identities with an open session.
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// Devices (not modules) with an open session (`connectedDeviceCount`).
    pub fn connected_devices(&self) -> usize {
        self.lock().keys().filter(|i| i.module_id.is_none()).count()
    }

    fn sender_for(
        &self,
        identity: &Identity,
        what: SubscriptionKey,
    ) -> Option<mpsc::UnboundedSender<SessionEvent>> {
        self.lock()
            .get(identity)
            .filter(|e| e.subscriptions.contains(&what))
            .map(|e| e.events.clone())
    }

    /// Pushes a desired-property change to `identity` if it is subscribed to them.
    pub fn push_desired(&self, identity: &Identity, version: u64, patch: Value) {
        if let Some(tx) = self.sender_for(identity, SubscriptionKey::Desired) {
            let _ = tx.send(SessionEvent::DesiredPatch { version, patch });
        }
    }

    /// Invokes a direct method: waits up to `connect_timeout` for `identity` to be connected
    /// and subscribed to methods, forwards the request, and waits up to `response_timeout`
    /// for the answer.
    ///
    /// # Errors
    /// [`MethodError::NotOnline`] or [`MethodError::Timeout`].
    pub async fn invoke(
        &self,
        identity: &Identity,
        call: MethodCall,
    ) -> Result<MethodResponse, MethodError> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + call.connect_timeout;
        let sender = loop {
            if let Some(tx) = self.sender_for(identity, SubscriptionKey::Methods) {
                break tx;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(MethodError::NotOnline),
            }
        };
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                request_id,
                Pending {
                    identity: identity.clone(),
                    reply,
                },
            );
        let sent = sender.send(SessionEvent::MethodRequest {
            request_id,
            method: call.method,
            payload: call.payload,
        });
        let outcome = if sent.is_err() {
            Err(MethodError::NotOnline)
        } else {
            match tokio::time::timeout(call.response_timeout, answer).await {
                Ok(Ok(response)) => Ok(response),
                // The session ended without answering: the device went away with the request.
                Ok(Err(_)) | Err(_) => Err(MethodError::Timeout),
            }
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request_id);
        outcome
    }

    /// Delivers an identity's answer to the method request `request_id`. Returns `false` when
    /// no call of this identity waits for it (unknown id, already answered, timed out).
    pub fn respond(&self, identity: &Identity, request_id: u64, response: MethodResponse) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get(&request_id) {
            Some(p) if &p.identity == identity => {}
            _ => return false,
        }
        pending
            .remove(&request_id)
            .is_some_and(|p| p.reply.send(response).is_ok())
    }

    /// Writes the connection state of every identity whose sessions changed to the registry,
    /// batching whatever changed while the previous batch was written. Runs until the
    /// sessions are dropped; call it once.
    pub async fn run_state_writer(self: Arc<Self>, registry: Registry) {
        let Some(mut rx) = self
            .dirty_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let weak = Arc::downgrade(&self);
        drop(self);
        while let Some(first) = rx.recv().await {
            let mut batch = HashSet::from([first]);
            while let Ok(next) = rx.try_recv() {
                batch.insert(next);
            }
            let Some(sessions) = weak.upgrade() else {
                return;
            };
            let states: Vec<(String, Option<String>, bool)> = batch
                .into_iter()
                .map(|i| {
                    let connected = sessions.is_connected(&i);
                    (i.device_id, i.module_id, connected)
                })
                .collect();
            drop(sessions);
            if let Err(e) = registry.set_connection_states(states).await {
                tracing::warn!(error = %e, "recording connection states failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(connect_ms: u64, response_ms: u64) -> MethodCall {
        MethodCall {
            method: "reboot".into(),
            payload: json!({"delay": 1}),
            connect_timeout: Duration::from_millis(connect_ms),
            response_timeout: Duration::from_millis(response_ms),
        }
    }

    #[tokio::test]
    async fn a_method_needs_a_subscribed_session() {
        let sessions = Sessions::new();
        let d1 = Identity::device("d1");
        assert_eq!(
            sessions.invoke(&d1, call(0, 100)).await,
            Err(MethodError::NotOnline)
        );
        let _session = sessions.open(d1.clone());
        assert_eq!(
            sessions.invoke(&d1, call(20, 100)).await,
            Err(MethodError::NotOnline),
            "connected but not subscribed"
        );
    }

    #[tokio::test]
    async fn a_method_waits_for_the_device_to_connect_and_gets_its_answer() {
        let sessions = Sessions::new();
        let d1 = Identity::device("d1");
        let device = {
            let sessions = Arc::clone(&sessions);
            let d1 = d1.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut session = sessions.open(d1.clone());
                sessions.subscribe(&session, Subscription::Methods);
                let Some(SessionEvent::MethodRequest {
                    request_id,
                    method,
                    payload,
                }) = session.events.recv().await
                else {
                    panic!("no method request");
                };
                assert_eq!(method, "reboot");
                assert!(!sessions.respond(
                    &Identity::device("other"),
                    request_id,
                    MethodResponse {
                        status: 1,
                        payload: Value::Null,
                    }
                ));
                assert!(sessions.respond(
                    &d1,
                    request_id,
                    MethodResponse {
                        status: 201,
                        payload: json!({"got": payload}),
                    }
                ));
                session
            })
        };
        let answer = sessions.invoke(&d1, call(2000, 1000)).await;
        assert_eq!(
            answer,
            Ok(MethodResponse {
                status: 201,
                payload: json!({"got": {"delay": 1}})
            })
        );
        let _session = device.await;
    }

    #[tokio::test]
    async fn an_unanswered_method_times_out_and_a_late_answer_is_dropped() {
        let sessions = Sessions::new();
        let d1 = Identity::device("d1");
        let mut session = sessions.open(d1.clone());
        sessions.subscribe(&session, Subscription::Methods);
        assert_eq!(
            sessions.invoke(&d1, call(0, 30)).await,
            Err(MethodError::Timeout)
        );
        let Some(SessionEvent::MethodRequest { request_id, .. }) = session.events.recv().await
        else {
            panic!("no request");
        };
        assert!(!sessions.respond(
            &d1,
            request_id,
            MethodResponse {
                status: 200,
                payload: Value::Null
            }
        ));
    }

    #[tokio::test]
    async fn a_second_connection_replaces_the_first() {
        let sessions = Sessions::new();
        let d1 = Identity::device("d1");
        let mut first = sessions.open(d1.clone());
        let second = sessions.open(d1.clone());
        assert_eq!(first.events.recv().await, Some(SessionEvent::Replaced));
        assert!(!sessions.close(&first), "a replaced session closes nothing");
        assert!(sessions.is_connected(&d1));
        assert_eq!(sessions.connected_devices(), 1);
        assert!(sessions.close(&second));
        assert!(!sessions.is_connected(&d1));
    }
}
