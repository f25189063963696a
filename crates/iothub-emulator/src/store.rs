//! The SQLite store.
//!
//! One connection behind a mutex; every call runs on tokio's blocking pool. A second
//! connection, on a thread of its own, only checkpoints the WAL ([`Store::open`]). The database is in
//! WAL mode with `synchronous=FULL`, so a change that was answered 2xx survives a crash or
//! `kill -9`. Multi-row changes run in one transaction. The per-row statements of the hot paths
//! (device and module reads, writes and deletes) are prepared once and kept in the connection's
//! statement cache.
//!
//! Tables (the query engine reads `devices` and `modules`, never writes):
//! - `devices(device_id TEXT PRIMARY KEY, status TEXT, record TEXT, twin TEXT,
//!   connection_state TEXT)`: `record` is the identity (with keys), `twin` the full twin
//!   document as `GET /twins/{id}` returns it; `status` and `connection_state` repeat the
//!   twin's `status` and `connectionState` for their indexes;
//! - `modules(device_id, module_id, record, twin, PRIMARY KEY(device_id, module_id))`;
//! - `configurations(id TEXT PRIMARY KEY, record TEXT)`;
//! - `c2d_messages(seq, device_id, module_id, message_id, ack, enqueued_ms, expiry_ms,
//!   generation_id, properties, body)`: the cloud-to-device queues (module_id `''` for a
//!   device's own queue); `properties` is the JSON of the AMQP properties, `body` the payload;
//!   `delivery_count`, `lock_token` and `locked_until_ms` hold the delivery state: a message
//!   with a lock token is Invisible (delivered, not yet settled) until the lock expires;
//! - `c2d_feedback(seq, device_id, created_ms, record)`: feedback records waiting for a
//!   feedback receiver, `record` as IoT Hub sends it;
//! - `events(partition, seq, offset, enqueued_ms, device_id, module_id, properties, body)`: the
//!   telemetry event log (see `events`).
//!
//! Rows are listed in insertion order (`rowid`).
//!
//! The `cloudToDeviceMessageCount` of an identity and its twin is the depth of its
//! cloud-to-device queue, counted from `c2d_messages` when the identity or twin is read
//! ([`DEVICE_QUEUE_DEPTH`], [`MODULE_QUEUE_DEPTH`]); stored twins hold 0 there, and the copy
//! inside `record` is not kept current. A message sent or settled writes only its own rows:
//! no identity page, twin or query-index entry is rewritten for a counter.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::model::{DeviceRecord, ModuleRecord};
use crate::twin::TwinState;

/// Schema version kept in `PRAGMA user_version`. Version 3 added the query indexes; version 4
/// the delivery state of cloud-to-device messages (`delivery_count`, `lock_token`,
/// `locked_until_ms`) and the telemetry event log (`events`); version 5 the
/// `devices.connection_state` column, with the status and connection-state indexes on plain
/// columns instead of twin expressions (one JSON expression less to compute per write);
/// version 6 the `jobs` and `device_jobs` tables; version 7 stores every twin with a
/// `cloudToDeviceMessageCount` of 0 (the queue is counted when a twin is read). An older
/// database gets them when it is opened.
const SCHEMA_VERSION: i64 = 7;

/// The cloud-to-device queue depth of the device row `t` (SQL, a correlated subquery that
/// reads the `c2d_messages_by_target` index).
pub(crate) const DEVICE_QUEUE_DEPTH: &str =
    "(SELECT COUNT(*) FROM c2d_messages AS q WHERE q.device_id = t.device_id AND q.module_id = '')";

/// The cloud-to-device queue depth of the module row `t`.
pub(crate) const MODULE_QUEUE_DEPTH: &str = "(SELECT COUNT(*) FROM c2d_messages AS q WHERE q.device_id = t.device_id AND q.module_id = t.module_id)";

/// The tables and indexes, created when missing, in one transaction. The `*_query` and
/// `devices_by_*` indexes serve the query engine: their expressions are the exact SQL the
/// engine generates (see `query::sql`, which checks this text in its tests), so SQLite reads
/// the values from the index instead of parsing every twin.
pub(crate) const SCHEMA: &str = "
BEGIN;
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    status    TEXT NOT NULL,
    record    TEXT NOT NULL,
    twin      TEXT NOT NULL,
    connection_state TEXT NOT NULL DEFAULT 'Disconnected'
);
CREATE TABLE IF NOT EXISTS modules (
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL,
    record    TEXT NOT NULL,
    twin      TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
);
CREATE TABLE IF NOT EXISTS configurations (
    id     TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS c2d_messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    module_id   TEXT NOT NULL DEFAULT '',
    message_id  TEXT,
    ack         TEXT NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    expiry_ms   INTEGER NOT NULL,
    generation_id TEXT NOT NULL,
    properties  TEXT NOT NULL,
    body        BLOB NOT NULL,
    delivery_count  INTEGER NOT NULL DEFAULT 0,
    lock_token      TEXT,
    locked_until_ms INTEGER
);
CREATE INDEX IF NOT EXISTS c2d_messages_by_target ON c2d_messages (device_id, module_id);
CREATE INDEX IF NOT EXISTS c2d_messages_by_expiry ON c2d_messages (expiry_ms);
CREATE TABLE IF NOT EXISTS c2d_feedback (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    partition   INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    offset      INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    device_id   TEXT NOT NULL,
    module_id   TEXT NOT NULL DEFAULT '',
    properties  TEXT NOT NULL,
    body        BLOB NOT NULL,
    PRIMARY KEY (partition, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (enqueued_ms);
CREATE TABLE IF NOT EXISTS event_partitions (
    partition   INTEGER PRIMARY KEY,
    next_seq    INTEGER NOT NULL,
    next_offset INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_query ON devices (device_id,
    jsonb_remove(twin, '$.properties.desired.$metadata', '$.properties.reported.$metadata', '$.etag', '$.deviceEtag', '$.statusUpdateTime', '$.authenticationType', '$.x509Thumbprint', '$.version', '$.cloudToDeviceMessageCount'));
CREATE INDEX IF NOT EXISTS modules_query ON modules (device_id, module_id,
    jsonb_remove(twin, '$.properties.desired.$metadata', '$.properties.reported.$metadata', '$.etag', '$.deviceEtag', '$.statusUpdateTime', '$.authenticationType', '$.x509Thumbprint', '$.version', '$.cloudToDeviceMessageCount'));
CREATE INDEX IF NOT EXISTS modules_by_module_id ON modules (module_id, device_id);
CREATE INDEX IF NOT EXISTS devices_by_status ON devices (status, device_id);
CREATE INDEX IF NOT EXISTS devices_by_connection_state ON devices (connection_state, device_id);
CREATE TABLE IF NOT EXISTS jobs (
    job_id     TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL DEFAULT 0,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_family ON jobs (family, created_ms, job_id);
CREATE TABLE IF NOT EXISTS device_jobs (
    job_id    TEXT NOT NULL,
    device_id TEXT NOT NULL,
    status    TEXT NOT NULL,
    record    TEXT NOT NULL,
    PRIMARY KEY (job_id, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hub (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
COMMIT;
";

/// When this hub's data was first created, in ms since the epoch: `now_ms` on the first call
/// for a database, the stored time ever after (the `created_at` of the built-in endpoint's
/// Event Hubs entity, which a restart must not move).
///
/// # Errors
/// [`StoreError`] when the database cannot be read or written.
pub fn created_ms(conn: &Connection, now_ms: i64) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO hub (name, value) VALUES ('created_ms', ?1)",
        params![now_ms],
    )?;
    Ok(
        conn.query_row("SELECT value FROM hub WHERE name = 'created_ms'", [], |r| {
            r.get(0)
        })?,
    )
}

/// A store failure. Handlers turn it into a 500 without showing its text to clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("database operation failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be decoded.
    #[error("stored {what} is corrupt")]
    Corrupt {
        /// Which kind of row.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The schema was written by a newer emulator.
    #[error(
        "the database schema version {found} is newer than this emulator supports ({SCHEMA_VERSION})"
    )]
    NewerSchema {
        /// Version found in the file.
        found: i64,
    },
    /// The blocking task running the call panicked or was cancelled.
    #[error("store task failed")]
    Join(#[source] tokio::task::JoinError),
    /// The database file's permissions could not be restricted to its owner.
    #[error("cannot make the database file private")]
    Permissions(#[source] std::io::Error),
    /// The checkpoint thread could not be started.
    #[error("cannot start the checkpoint thread")]
    Thread(#[source] std::io::Error),
    /// The group commit that held this write failed; nothing of the write was kept.
    #[error("the write's transaction was not committed: {0}")]
    NotCommitted(String),
}

/// The store: a SQLite connection behind a mutex, and for a database file, a checkpointer.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    checkpointer: Option<Checkpointer>,
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// WAL pages after which a commit checkpoints itself, when the checkpointer falls behind
/// (32 MiB of 4 KiB pages; SQLite's default is 1,000 pages).
const WAL_BACKSTOP_PAGES: i64 = 8192;

/// The size the WAL file is cut back to when it starts over (`PRAGMA journal_size_limit`).
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// A thread with its own connection that runs passive checkpoints (`PRAGMA
/// wal_checkpoint(PASSIVE)`), so the copy of committed pages from the WAL into the database
/// file, and that file's fsync, leave the writer's critical path: a third of the writer's
/// time in a bulk import when every commit that crossed SQLite's 1,000-page threshold ran
/// it. A passive checkpoint takes no lock a writer or reader needs. Durability is the WAL's,
/// as before: a commit is answered after its frames are synced. The WAL starts over from
/// its beginning at the first write after a complete checkpoint, and is then cut back to
/// [`WAL_SIZE_LIMIT`] bytes.
#[derive(Debug)]
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("iothub-checkpoint".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_INTERVAL)
                {
                    if let Err(e) = checkpoint(&conn) {
                        tracing::debug!(error = %e, "a passive checkpoint failed; the next one retries");
                    }
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Runs a passive checkpoint: the WAL's frames, and how many of them are in the database file.
/// It takes neither the write lock nor a snapshot, so it never makes a writer or a reader
/// wait or fail (a `RESTART` or `TRUNCATE` checkpoint would hold the write lock while it
/// waits for readers, and a deferred transaction that then tries to write fails with
/// `SQLITE_BUSY` without waiting).
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database file at `path`, and starts its checkpointer:
    /// a thread with a connection of its own that copies committed WAL pages into the
    /// database file every 20 ms. It stops when the store is dropped.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or migrated, made private, or the
    /// checkpointer cannot start.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // Identities hold keys: the database is its owner's only. SQLite gives the WAL and
        // shared-memory files the database file's permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(StoreError::Permissions)?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A page cache of 64 MiB (SQLite's default is 2 MiB): a registry of a million
        // identities is about a gigabyte, and writes to its indexes otherwise read most pages
        // back from the operating system.
        conn.pragma_update(None, "cache_size", -65_536)?;
        // Reads of the database file go through a memory map (up to 2 GiB, SQLite's usual
        // ceiling): scans of a large registry (GROUP BY, full query scans) then read pages
        // in place instead of copying each one from the kernel into the page cache, about
        // 1.7x faster at 1,000,000 twins. The mapped pages count in the process's RSS but
        // are the kernel's file cache, shared and reclaimable; writes still go to the WAL.
        conn.pragma_update(None, "mmap_size", 2_147_418_112_i64)?;
        // Checkpoints run on the checkpointer's thread; a commit runs one itself only when
        // the WAL outgrows the backstop.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let mut store = Self::init(conn)?;
        store.checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// Opens a private in-memory database.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        // The query planner stability guarantee. Without it, SQLite 3.54 marks a statement
        // for recompilation whenever a parameter it could plan around (a `LIMIT ?`, an
        // `= ?` term) is rebound or its bindings are cleared, and rusqlite clears them each
        // time a cached statement goes back to its cache: every read of the event log or the
        // C2D queue was compiled again, about a tenth of the hub's CPU while serving
        // telemetry. With it, a cached statement keeps its plan.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found });
        }
        // Version 5: the connection state gets a column of its own (before the schema, whose
        // index needs it), and the two indexes that read the twin for status and connection
        // state are rebuilt on the columns.
        let has_devices: bool = conn
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'devices'")?
            .exists([])?;
        let has_state: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('devices') WHERE name = 'connection_state'")?
            .exists([])?;
        if has_devices && !has_state {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE devices ADD COLUMN connection_state TEXT NOT NULL DEFAULT 'Disconnected';
                 UPDATE devices SET connection_state = coalesce(twin ->> '$.connectionState', 'Disconnected');
                 DROP INDEX IF EXISTS devices_by_status;
                 DROP INDEX IF EXISTS devices_by_connection_state;
                 COMMIT;",
            )?;
        }
        conn.execute_batch(SCHEMA)?;
        // Version 7: twins written before it hold the queue depth of their time.
        if (1..7).contains(&found) {
            conn.execute_batch(
                "BEGIN;
                 UPDATE devices SET twin = json_set(twin, '$.cloudToDeviceMessageCount', 0)
                     WHERE twin ->> '$.cloudToDeviceMessageCount' != 0;
                 UPDATE modules SET twin = json_set(twin, '$.cloudToDeviceMessageCount', 0)
                     WHERE twin ->> '$.cloudToDeviceMessageCount' != 0;
                 COMMIT;",
            )?;
        }
        // Version 4 added the delivery state of cloud-to-device messages; an older table gets
        // the columns it lacks.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('c2d_messages')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for (name, ddl) in [
            ("delivery_count", "INTEGER NOT NULL DEFAULT 0"),
            ("lock_token", "TEXT"),
            ("locked_until_ms", "INTEGER"),
        ] {
            if !columns.iter().any(|c| c == name) {
                conn.execute_batch(&format!("ALTER TABLE c2d_messages ADD COLUMN {name} {ddl}"))?;
            }
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        // No device is connected to a hub that has just started: connection states and the
        // locks of messages delivered over connections of the previous run are released.
        conn.execute_batch(
            "BEGIN;
             UPDATE devices SET record = json_set(record, '$.connected', json('false')),
                 twin = json_set(twin, '$.connectionState', 'Disconnected'),
                 connection_state = 'Disconnected'
                 WHERE json_extract(record, '$.connected') = 1;
             UPDATE modules SET record = json_set(record, '$.connected', json('false')),
                 twin = json_set(twin, '$.connectionState', 'Disconnected')
                 WHERE json_extract(record, '$.connected') = 1;
             UPDATE c2d_messages SET lock_token = NULL, locked_until_ms = NULL
                 WHERE lock_token IS NOT NULL;
             COMMIT;",
        )?;
        Ok(Store {
            conn: Mutex::new(conn),
            checkpointer: None,
        })
    }

    /// Runs `f` with the connection on tokio's blocking pool. `E` is the caller's error type
    /// (the registry's, the C2D queues', ...); a failed blocking task becomes
    /// [`StoreError::Join`].
    pub async fn call<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.with_connection(f)
            .await
            .map_err(|e| E::from(StoreError::Join(e)))?
    }

    async fn with_connection<R, F>(self: &Arc<Self>, f: F) -> Result<R, tokio::task::JoinError>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // A panic inside an earlier call rolled its transaction back when it unwound, so the
            // connection is still consistent and the poison flag can be ignored.
            let mut conn = store
                .conn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { what, source })
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt { what, source })
}

/// A device with its twin.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// Identity.
    pub record: DeviceRecord,
    /// Twin state.
    pub twin: TwinState,
}

/// A module with its twin.
#[derive(Debug, Clone)]
pub struct ModuleRow {
    /// Identity.
    pub record: ModuleRecord,
    /// Twin state.
    pub twin: TwinState,
}

/// Reads a device.
pub fn get_device(conn: &Connection, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
    let row: Option<(String, String, i64)> = conn
        .prepare_cached(&format!(
            "SELECT record, twin, {DEVICE_QUEUE_DEPTH} FROM devices AS t WHERE device_id = ?1"
        ))?
        .query_row(params![device_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(record, twin, count)| decode_device(&record, &twin, count))
        .transpose()
}

/// A device row from its stored columns and its queue depth (`c2d_count`).
fn decode_device(record: &str, twin: &str, c2d_count: i64) -> Result<DeviceRow, StoreError> {
    let twin: Value = decode("device twin", twin)?;
    let mut record: DeviceRecord = decode("device", record)?;
    record.cloud_to_device_message_count = u64::try_from(c2d_count).unwrap_or(0);
    Ok(DeviceRow {
        record,
        twin: TwinState::from_doc(&twin),
    })
}

/// A module row from its stored columns and its queue depth (`c2d_count`).
fn decode_module(record: &str, twin: &str, c2d_count: i64) -> Result<ModuleRow, StoreError> {
    let twin: Value = decode("module twin", twin)?;
    let mut record: ModuleRecord = decode("module", record)?;
    record.cloud_to_device_message_count = u64::try_from(c2d_count).unwrap_or(0);
    Ok(ModuleRow {
        record,
        twin: TwinState::from_doc(&twin),
    })
}

/// A twin as it is stored: `cloudToDeviceMessageCount` is 0, whatever the queue holds (readers
/// count the queue; see the module docs). Twins of identities with an empty queue, nearly all
/// of them, are then served as stored.
fn stored_twin(mut twin: Value) -> Value {
    if let Some(obj) = twin.as_object_mut() {
        obj.insert("cloudToDeviceMessageCount".to_owned(), Value::from(0));
    }
    twin
}

/// A device row as it is stored: its identity and twin as JSON text. Encoding needs no
/// connection, so a bulk create encodes its new devices before its turn at the writer.
#[derive(Debug, Clone)]
pub struct EncodedDevice {
    record: String,
    twin: String,
}

impl EncodedDevice {
    /// Encodes `row` as [`put_device`] stores it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a document cannot be serialized.
    pub fn new(row: &DeviceRow) -> Result<Self, StoreError> {
        Ok(Self {
            record: encode("device", &row.record)?,
            // `stored_twin(row.twin.render_device(&row.record))`, written directly.
            twin: row
                .twin
                .device_json(&row.record, 0)
                .map_err(|source| StoreError::Corrupt {
                    what: "device twin",
                    source,
                })?,
        })
    }
}

/// Inserts or replaces a device (keeping its position in listings when it already exists).
pub fn put_device(conn: &Connection, row: &DeviceRow) -> Result<(), StoreError> {
    put_encoded_device(conn, row, &EncodedDevice::new(row)?)
}

/// [`put_device`] with the row already encoded (`encoded` must be `EncodedDevice::new(row)`).
pub fn put_encoded_device(
    conn: &Connection,
    row: &DeviceRow,
    encoded: &EncodedDevice,
) -> Result<(), StoreError> {
    let EncodedDevice { record, twin } = encoded;
    conn.prepare_cached(
        "INSERT INTO devices (device_id, status, record, twin, connection_state) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(device_id) DO UPDATE SET status = excluded.status, record = excluded.record,
             twin = excluded.twin, connection_state = excluded.connection_state",
    )?
    .execute(params![
        row.record.device_id,
        row.record.status.as_str(),
        record,
        twin,
        crate::model::connection_state(row.record.connected)
    ])?;
    Ok(())
}

/// Deletes a device and its modules. Returns whether the device existed.
///
/// Its cloud-to-device queues and its pending feedback go with it (IoT Hub drops pending
/// feedback of a deleted device).
pub fn delete_device(conn: &Connection, device_id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM modules WHERE device_id = ?1")?
        .execute(params![device_id])?;
    conn.prepare_cached("DELETE FROM c2d_messages WHERE device_id = ?1")?
        .execute(params![device_id])?;
    conn.prepare_cached("DELETE FROM c2d_feedback WHERE device_id = ?1")?
        .execute(params![device_id])?;
    Ok(conn
        .prepare_cached("DELETE FROM devices WHERE device_id = ?1")?
        .execute(params![device_id])?
        > 0)
}

/// Lists up to `top` devices in creation order.
pub fn list_devices(conn: &Connection, top: u32) -> Result<Vec<DeviceRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT record, {DEVICE_QUEUE_DEPTH} FROM devices AS t ORDER BY rowid LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![top], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    rows.map(|r| {
        let (record, count) = r?;
        let mut record: DeviceRecord = decode("device", &record)?;
        record.cloud_to_device_message_count = u64::try_from(count).unwrap_or(0);
        Ok(record)
    })
    .collect()
}

/// `(total, enabled, disabled)` device counts.
pub fn device_counts(conn: &Connection) -> Result<(u64, u64, u64), StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(status = 'enabled'), 0), COALESCE(SUM(status = 'disabled'), 0) FROM devices",
        [],
        |r| {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok((n(0)?, n(1)?, n(2)?))
        },
    )?)
}

/// Reads up to `limit` devices whose id sorts after `after` (`""`: from the first), in id
/// order: the pages of an export job.
pub fn devices_after(
    conn: &Connection,
    after: &str,
    limit: usize,
) -> Result<Vec<DeviceRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        &format!(
            "SELECT record, twin, {DEVICE_QUEUE_DEPTH} FROM devices AS t WHERE device_id > ?1 ORDER BY device_id LIMIT ?2"
        ),
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })?;
    rows.map(|r| {
        let (record, twin, count) = r?;
        decode_device(&record, &twin, count)
    })
    .collect()
}

/// Reads the modules of the devices whose ids sort after `after` and up to `last`, in
/// device then module id order.
pub fn modules_between(
    conn: &Connection,
    after: &str,
    last: &str,
) -> Result<Vec<ModuleRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        &format!(
            "SELECT record, twin, {MODULE_QUEUE_DEPTH} FROM modules AS t WHERE device_id > ?1 AND device_id <= ?2
             ORDER BY device_id, module_id"
        ),
    )?;
    let rows = stmt.query_map(params![after, last], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })?;
    rows.map(|r| {
        let (record, twin, count) = r?;
        decode_module(&record, &twin, count)
    })
    .collect()
}

/// Reads a module.
pub fn get_module(
    conn: &Connection,
    device_id: &str,
    module_id: &str,
) -> Result<Option<ModuleRow>, StoreError> {
    let row: Option<(String, String, i64)> = conn
        .prepare_cached(
            &format!(
                "SELECT record, twin, {MODULE_QUEUE_DEPTH} FROM modules AS t WHERE device_id = ?1 AND module_id = ?2"
            ),
        )?
        .query_row(params![device_id, module_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(record, twin, count)| decode_module(&record, &twin, count))
        .transpose()
}

/// Inserts or replaces a module.
pub fn put_module(conn: &Connection, row: &ModuleRow) -> Result<(), StoreError> {
    let record = encode("module", &row.record)?;
    let twin = encode(
        "module twin",
        &stored_twin(row.twin.render_module(&row.record)),
    )?;
    conn.prepare_cached(
        "INSERT INTO modules (device_id, module_id, record, twin) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(device_id, module_id) DO UPDATE SET record = excluded.record, twin = excluded.twin",
    )?
    .execute(params![row.record.device_id, row.record.module_id, record, twin])?;
    Ok(())
}

/// Deletes a module. Returns whether it existed.
pub fn delete_module(
    conn: &Connection,
    device_id: &str,
    module_id: &str,
) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM c2d_messages WHERE device_id = ?1 AND module_id = ?2",
        params![device_id, module_id],
    )?;
    Ok(conn.execute(
        "DELETE FROM modules WHERE device_id = ?1 AND module_id = ?2",
        params![device_id, module_id],
    )? > 0)
}

/// Lists the modules of a device in creation order.
pub fn list_modules(conn: &Connection, device_id: &str) -> Result<Vec<ModuleRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT record, {MODULE_QUEUE_DEPTH} FROM modules AS t WHERE device_id = ?1 ORDER BY rowid"
    ))?;
    let rows = stmt.query_map(params![device_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    rows.map(|r| {
        let (record, count) = r?;
        let mut record: ModuleRecord = decode("module", &record)?;
        record.cloud_to_device_message_count = u64::try_from(count).unwrap_or(0);
        Ok(record)
    })
    .collect()
}

/// Reads a configuration document.
pub fn get_configuration(conn: &Connection, id: &str) -> Result<Option<Value>, StoreError> {
    let row: Option<String> = conn
        .query_row(
            "SELECT record FROM configurations WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    row.map(|text| decode("configuration", &text)).transpose()
}

/// Inserts or replaces a configuration document.
pub fn put_configuration(conn: &Connection, id: &str, doc: &Value) -> Result<(), StoreError> {
    let text = encode("configuration", doc)?;
    conn.execute(
        "INSERT INTO configurations (id, record) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![id, text],
    )?;
    Ok(())
}

/// Deletes a configuration. Returns whether it existed.
pub fn delete_configuration(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM configurations WHERE id = ?1", params![id])? > 0)
}

/// Lists up to `top` configurations in creation order.
pub fn list_configurations(conn: &Connection, top: u32) -> Result<Vec<Value>, StoreError> {
    let mut stmt = conn.prepare("SELECT record FROM configurations ORDER BY rowid LIMIT ?1")?;
    let rows = stmt.query_map(params![top], |r| r.get::<_, String>(0))?;
    rows.map(|r| decode("configuration", &r?)).collect()
}

/// Number of configurations.
pub fn configuration_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM configurations", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceInput;

    /// Commits leave their checkpoints to the checkpointer: the database file gets every
    /// committed page although the WAL stays under the writer's own threshold, and the WAL
    /// file is cut back when it starts over.
    #[test]
    fn the_checkpointer_copies_the_wal_into_the_database_file()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("hub.db");
        let wal = dir.path().join("hub.db-wal");
        let store = Store::open(&path)?;
        let write = |prefix: &str, n: usize, size: usize| -> Result<(), StoreError> {
            let mut conn = store.conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction()?;
            for i in 0..n {
                tx.execute(
                    "INSERT INTO configurations (id, record) VALUES (?1, ?2)",
                    params![format!("{prefix}-{i}"), "x".repeat(size)],
                )?;
            }
            tx.commit()?;
            Ok(())
        };
        for batch in 0..40 {
            write(&format!("c{batch}"), 100, 2000)?;
        }
        let big = std::fs::metadata(&wal)?.len();
        assert!(big > 4 << 20, "the WAL holds the writes ({big} bytes)");
        // The database file grows to hold the rows, with no checkpoint by the writer (its
        // threshold is 32 MiB) and none by this test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&path)?.len() < 8_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file holds {} bytes",
                std::fs::metadata(&path)?.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(CHECKPOINT_INTERVAL * 10);
        // The next write starts the WAL over and cuts the file back.
        write("after", 1, 10)?;
        let small = std::fs::metadata(&wal)?.len();
        assert!(
            small <= WAL_SIZE_LIMIT as u64,
            "the WAL was cut back to {small} bytes"
        );
        let probe = Connection::open(&path)?;
        let n: i64 = probe.query_row("SELECT COUNT(*) FROM configurations", [], |r| r.get(0))?;
        assert_eq!(n, 4001);
        drop(probe);
        drop(store);
        Ok(())
    }

    #[test]
    fn device_round_trip_and_twin_column() -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::open_in_memory()?;
        let conn = store.conn.lock().map_err(|_| "poisoned")?;
        let record = DeviceRecord::create("d1", &DeviceInput::default(), chrono::Utc::now())
            .map_err(|e| e.to_string())?;
        let row = DeviceRow {
            record,
            twin: TwinState::new(crate::clock::NEVER),
        };
        put_device(&conn, &row)?;
        let back = get_device(&conn, "d1")?.ok_or("missing")?;
        assert_eq!(back.record, row.record);
        assert_eq!(back.twin, row.twin);
        let twin: String = conn.query_row("SELECT twin FROM devices", [], |r| r.get(0))?;
        let twin: Value = serde_json::from_str(&twin)?;
        assert_eq!(twin["deviceId"], "d1");
        assert_eq!(twin["etag"], "AAAAAAAAAAE=");
        assert_eq!(device_counts(&conn)?, (1, 1, 0));
        assert!(delete_device(&conn, "d1")?);
        assert!(get_device(&conn, "d1")?.is_none());
        Ok(())
    }
}
