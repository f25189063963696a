//! Starting and stopping an emulator: [`Emulator`] and [`EmulatorBuilder`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::amqp::{AmqpContext, DEFAULT_FEEDBACK_INTERVAL};
use crate::auth::{Policies, WELL_KNOWN_KEY, parse_hub_key};
use crate::c2d::C2dQueues;
use crate::conn::{ConnectionLimits, Tracker};
use crate::consumers::ConsumerGroups;
use crate::events::EventLog;
pub use crate::events::EventSource;
pub use crate::events::PartitionInfo;
use crate::journal::Journal;
use crate::mqtt::MqttContext;
use crate::registry::Registry;
use crate::routes::{AppState, Shared, router};
use crate::sessions::{Identity, Sessions};
use crate::store::{Store, StoreError};
use crate::throttle::{Throttle, ThrottleConfig};
use crate::tls::{self, TlsError};

/// IoT Hub's HTTPS port, the default for `--https-port`.
pub const DEFAULT_HTTPS_PORT: u16 = 443;
/// IoT Hub's AMQPS port, the default for `--amqps-port`.
pub const DEFAULT_AMQPS_PORT: u16 = 5671;
/// IoT Hub's MQTT-over-TLS port, the default for `--mqtts-port` (not served yet).
pub const DEFAULT_MQTTS_PORT: u16 = 8883;
/// Default logical hub name.
pub const DEFAULT_HUB_NAME: &str = "emulator";
/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "iothub.db";

/// Why the emulator could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (the message says what to change).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen for {protocol} on {addr}")]
    Bind {
        /// Protocol of the listener (`HTTPS` or `AMQPS`).
        protocol: &'static str,
        /// The address tried.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be created or used.
    #[error("cannot use the data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another running hub uses the data directory (it holds the directory's lock file).
    #[error(
        "the data directory {path} is in use by another running hub; stop it, or choose another directory"
    )]
    DataDirInUse {
        /// The directory.
        path: PathBuf,
    },
    /// The TLS certificates could not be created or loaded.
    #[error("cannot prepare TLS certificates")]
    Tls(#[from] TlsError),
    /// The store could not be opened.
    #[error("cannot open the device store")]
    Store(#[from] StoreError),
    /// The journal file could not be opened.
    #[error("cannot open the journal file {path}")]
    Journal {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server task panicked.
    #[error("the server task failed")]
    Server(#[source] tokio::task::JoinError),
}

/// Configures and starts an [`Emulator`]. Create one with [`Emulator::builder`].
#[derive(Clone)]
#[must_use]
pub struct EmulatorBuilder {
    data_dir: Option<PathBuf>,
    in_memory: bool,
    bind: IpAddr,
    https_port: u16,
    amqps_port: u16,
    mqtts_port: u16,
    hub_name: String,
    key: Option<String>,
    journal: Option<PathBuf>,
    throttle: ThrottleConfig,
    feedback_interval: Duration,
    limits: ConnectionLimits,
    partitions: u32,
    retention: Duration,
    trusted_cas: Vec<String>,
    trusted_ca_files: Vec<PathBuf>,
    consumer_groups: Vec<String>,
    routes: Vec<EventSource>,
}

impl fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("data_dir", &self.data_dir)
            .field("in_memory", &self.in_memory)
            .field("bind", &self.bind)
            .field("https_port", &self.https_port)
            .field("amqps_port", &self.amqps_port)
            .field("mqtts_port", &self.mqtts_port)
            .field("hub_name", &self.hub_name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("journal", &self.journal)
            .field("throttle", &self.throttle)
            .field("feedback_interval", &self.feedback_interval)
            .field("limits", &self.limits)
            .field("partitions", &self.partitions)
            .field("retention", &self.retention)
            .field("trusted_cas", &self.trusted_cas.len())
            .field("consumer_groups", &self.consumer_groups)
            .field("routes", &self.routes)
            .finish()
    }
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            data_dir: None,
            in_memory: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https_port: 0,
            amqps_port: 0,
            mqtts_port: 0,
            hub_name: DEFAULT_HUB_NAME.to_owned(),
            key: None,
            journal: None,
            throttle: ThrottleConfig::off(),
            feedback_interval: DEFAULT_FEEDBACK_INTERVAL,
            limits: ConnectionLimits::default(),
            partitions: crate::events::DEFAULT_PARTITIONS,
            retention: crate::events::DEFAULT_RETENTION,
            trusted_cas: Vec::new(),
            trusted_ca_files: Vec::new(),
            consumer_groups: Vec::new(),
            routes: Vec::new(),
        }
    }
}

impl EmulatorBuilder {
    /// Directory for the database and the certificates (created if missing). Required unless
    /// [`in_memory`](Self::in_memory) is set; with `in_memory` only `ca.pem` is written there.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Keep devices in memory and certificates in a temporary directory (default `false`).
    pub fn in_memory(mut self, yes: bool) -> Self {
        self.in_memory = yes;
        self
    }

    /// Address to listen on (default `127.0.0.1`).
    pub fn bind(mut self, addr: IpAddr) -> Self {
        self.bind = addr;
        self
    }

    /// HTTPS port (default `0`, a free port: see [`Emulator::https_port`]; the binary's default
    /// is IoT Hub's 443). The WebSocket transports are served on it too.
    pub fn https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    /// AMQPS port for cloud-to-device messaging (default `0`, a free port: see
    /// [`Emulator::amqps_port`]; the binary's default is IoT Hub's 5671).
    pub fn amqps_port(mut self, port: u16) -> Self {
        self.amqps_port = port;
        self
    }

    /// MQTT-over-TLS port for devices (default `0`, a free port: see
    /// [`Emulator::mqtts_port`]; the binary's default is IoT Hub's 8883).
    pub fn mqtts_port(mut self, port: u16) -> Self {
        self.mqtts_port = port;
        self
    }

    /// Partitions of the telemetry event log (default 4, IoT Hub's default; 1–32). A device's
    /// messages all go to one partition.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Trusts a CA (PEM, one or more certificates) for devices and modules with
    /// `certificateAuthority` authentication: their client certificates must chain to a
    /// trusted CA and name the device id as subject common name. PEM files in the data
    /// directory's `trusted-cas/` are trusted too. Call once per CA.
    pub fn trusted_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.trusted_cas.push(pem.into());
        self
    }

    /// Like [`trusted_ca_pem`](Self::trusted_ca_pem), with the PEM read from `path` at start.
    pub fn trusted_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trusted_ca_files.push(path.into());
        self
    }

    /// Adds a consumer group to the built-in endpoint (every hub has `$Default`; IoT Hub
    /// creates others on request). Names in the data directory's `consumer-groups.txt`, one a
    /// line, are added too. Call once per group.
    pub fn consumer_group(mut self, name: impl Into<String>) -> Self {
        self.consumer_groups.push(name.into());
        self
    }

    /// Routes IoT Hub's event messages of `source` to the built-in endpoint, as a message
    /// route with that data source does on IoT Hub (default: none, telemetry only). Their
    /// bodies and properties follow "IoT Hub non-telemetry event schemas". Call once per
    /// source.
    pub fn route_events(mut self, source: EventSource) -> Self {
        if !self.routes.contains(&source) {
            self.routes.push(source);
        }
        self
    }

    /// How long telemetry is kept (default one day, IoT Hub's default retention).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Logical hub name used in error messages (default `emulator`; 3–50 letters, digits or `-`).
    pub fn hub_name(mut self, name: impl Into<String>) -> Self {
        self.hub_name = name.into();
        self
    }

    /// Base64 key used as the primary key of every shared access policy (default
    /// [`WELL_KNOWN_KEY`]); must decode to 16–64 bytes.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Append one JSON line per request to this file (see the crate docs for the format).
    pub fn journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal = Some(path.into());
        self
    }

    /// Throttling (default off).
    pub fn throttle(mut self, config: ThrottleConfig) -> Self {
        self.throttle = config;
        self
    }

    /// Time between cloud-to-device feedback batches on a feedback link (default 15 s, IoT
    /// Hub's documented interval; a batch also goes out as soon as 64 records wait). Tests
    /// shorten it to see feedback at once.
    pub fn feedback_batch_interval(mut self, interval: Duration) -> Self {
        self.feedback_interval = interval;
        self
    }

    /// Connection limits applied to every listener (default [`ConnectionLimits::default`]:
    /// 1000 connections, 10 s handshake, 30 s request head, 30 s body stall, 120 s idle).
    /// See the crate README for what each limit closes.
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let l = &self.limits;
        if l.max_connections == 0
            || [
                l.handshake_timeout,
                l.header_timeout,
                l.body_timeout,
                l.idle_timeout,
            ]
            .iter()
            .any(Duration::is_zero)
        {
            return Err(Error::Config(
                "connection limits must be positive (max_connections and every timeout)".into(),
            ));
        }
        let name = &self.hub_name;
        let name_ok = (3..=50).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !name_ok {
            return Err(Error::Config(format!(
                "hub name '{}' must be 3 to 50 ASCII letters, digits or '-' (--hub-name)",
                name.escape_default()
            )));
        }
        let ports = [
            ("HTTPS", self.https_port),
            ("AMQPS", self.amqps_port),
            ("MQTTS", self.mqtts_port),
        ];
        for (i, (flag_a, a)) in ports.iter().enumerate() {
            for (flag_b, b) in &ports[i + 1..] {
                if *a != 0 && a == b {
                    return Err(Error::Config(format!(
                        "the {flag_a} and {flag_b} ports are both {a}; give them different ports"
                    )));
                }
            }
        }
        if !(1..=32).contains(&self.partitions) {
            return Err(Error::Config(format!(
                "the event log needs 1 to 32 partitions, not {}",
                self.partitions
            )));
        }
        if !self.in_memory && self.data_dir.is_none() {
            return Err(Error::Config(
                "a data directory is required unless the store is in memory".into(),
            ));
        }
        Ok(())
    }

    /// Creates the certificates and store if needed, binds the HTTPS listener and starts
    /// serving. Returns once the listener is ready.
    pub async fn start(self) -> Result<Emulator, Error> {
        self.validate()?;
        let key_text = self
            .key
            .clone()
            .unwrap_or_else(|| WELL_KNOWN_KEY.to_owned());
        let hub_key = parse_hub_key(&key_text)
            .map_err(|e| Error::Config(format!("the hub key is not valid: {e}")))?;

        let data_dir = match &self.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                Some(dir.clone())
            }
            None => None,
        };
        // One hub per data directory: two would share the database and overwrite each
        // other's connection-string files. The lock goes with the process, even on kill -9.
        let lock = match &data_dir {
            Some(dir) => Some(lock_data_dir(dir)?),
            None => None,
        };
        let temp_dir = if self.in_memory {
            Some(
                tempfile::Builder::new()
                    .prefix("iothub-emulator-")
                    .tempdir()
                    .map_err(|source| Error::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    })?,
            )
        } else {
            None
        };
        let (cert_dir, store) = match (&temp_dir, &data_dir) {
            (Some(tmp), _) => (tmp.path().to_owned(), Store::open_in_memory()?),
            (None, Some(dir)) => (dir.clone(), Store::open(&dir.join(DATABASE_FILE))?),
            (None, None) => return Err(Error::Config("a data directory is required".into())),
        };
        let material = tls::load_or_create(&cert_dir)?;
        let ca_path = match (&temp_dir, &data_dir) {
            (Some(_), Some(dir)) => {
                let path = dir.join(tls::CA_FILE);
                tls::write_file(&path, &material.ca_pem, false)?;
                path
            }
            _ => cert_dir.join(tls::CA_FILE),
        };
        let server_config = material.server_config()?;
        let device_tls = material.device_server_config()?;
        let mut ca_pems = self.trusted_cas.clone();
        for file in &self.trusted_ca_files {
            ca_pems.push(std::fs::read_to_string(file).map_err(|e| {
                Error::Config(format!(
                    "cannot read the trusted CA file {} (--trusted-ca): {e}",
                    file.display()
                ))
            })?);
        }
        if let Some(dir) = data_dir
            .as_ref()
            .map(|d| d.join(crate::x509::TRUSTED_CA_DIR))
            && let Ok(entries) = std::fs::read_dir(&dir)
        {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pem"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|source| Error::DataDir {
                    path: file.clone(),
                    source,
                })?;
                ca_pems.push(text);
            }
        }
        let trusted_cas = crate::x509::TrustedCas::from_pems(
            &ca_pems,
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .map_err(Error::Config)?;
        let journal = match &self.journal {
            Some(path) => Some(Arc::new(Journal::open(path).map_err(|source| {
                Error::Journal {
                    path: path.clone(),
                    source,
                }
            })?)),
            None => None,
        };

        let requested = SocketAddr::new(self.bind, self.https_port);
        let listener = tokio::net::TcpListener::bind(requested)
            .await
            .map_err(|source| Error::Bind {
                protocol: "HTTPS",
                addr: requested,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            protocol: "HTTPS",
            addr: requested,
            source,
        })?;

        let mqtts_requested = SocketAddr::new(self.bind, self.mqtts_port);
        let mqtts_listener = tokio::net::TcpListener::bind(mqtts_requested)
            .await
            .map_err(|source| Error::Bind {
                protocol: "MQTTS",
                addr: mqtts_requested,
                source,
            })?;
        let mqtts_addr = mqtts_listener.local_addr().map_err(|source| Error::Bind {
            protocol: "MQTTS",
            addr: mqtts_requested,
            source,
        })?;

        let amqps_requested = SocketAddr::new(self.bind, self.amqps_port);
        let amqps_listener = tokio::net::TcpListener::bind(amqps_requested)
            .await
            .map_err(|source| Error::Bind {
                protocol: "AMQPS",
                addr: amqps_requested,
                source,
            })?;
        let amqps_addr = amqps_listener.local_addr().map_err(|source| Error::Bind {
            protocol: "AMQPS",
            addr: amqps_requested,
            source,
        })?;

        let policies = Arc::new(Policies::new(&hub_key));
        let policy_keys = policies
            .iter()
            .map(|p| (p.name().to_owned(), p.primary_key()))
            .collect();
        let store = Arc::new(store);
        let clock = crate::clock::system_clock();
        let sessions = Sessions::new();
        let desired_to = Arc::downgrade(&sessions);
        // Events stored in a partition the new count no longer has could not be read.
        let highest: Option<u32> = store
            .call(|c| {
                c.query_row("SELECT MAX(partition) FROM events", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .await
            .map_err(Error::Store)?;
        if let Some(highest) = highest.filter(|p| *p >= self.partitions) {
            return Err(Error::Config(format!(
                "the data directory keeps telemetry in partition {highest}; start with at least {} partitions (--partitions), or with a new data directory",
                highest + 1
            )));
        }
        let events = EventLog::start(
            Arc::clone(&store),
            Arc::clone(&clock),
            self.partitions,
            self.retention,
        );
        let mut registry = Registry::new(Arc::clone(&store), Arc::clone(&clock), &self.hub_name)
            .with_desired_listener(Arc::new(move |changes| {
                if let Some(sessions) = desired_to.upgrade() {
                    for change in changes {
                        let identity = Identity::new(change.device_id, change.module_id);
                        sessions.push_desired(&identity, change.version, change.patch);
                    }
                }
            }));
        if !self.routes.is_empty() {
            let routes = self.routes.clone();
            let log = Arc::downgrade(&events);
            let hub = self.hub_name.clone();
            let clock = Arc::clone(&clock);
            registry = registry.with_event_listener(Arc::new(move |changes| {
                let Some(log) = log.upgrade() else { return };
                let now = clock();
                for change in changes
                    .iter()
                    .filter(|c| routes.contains(&EventSource::of(c.kind)))
                {
                    log.enqueue(crate::events::event_message(change, &hub, now));
                }
            }));
        }
        let state_writer = tokio::spawn(Arc::clone(&sessions).run_state_writer(registry.clone()));
        let jobs = crate::jobs::Jobs::new(
            Arc::clone(&store),
            registry.clone(),
            Arc::clone(&sessions),
            Arc::clone(&clock),
        );
        jobs.recover().await.map_err(Error::Store)?;
        let queues = C2dQueues::start(Arc::clone(&store), Arc::clone(&clock));
        let mut groups = self.consumer_groups.clone();
        if let Some(Ok(text)) = data_dir
            .as_ref()
            .map(|dir| std::fs::read_to_string(dir.join(CONSUMER_GROUPS_FILE)))
        {
            groups.extend(text.lines().map(str::to_owned));
        }
        for group in &groups {
            let group = group.trim();
            let ok = group.is_empty()
                || ((1..=50).contains(&group.len())
                    && group
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._$".contains(c)));
            if !ok {
                return Err(Error::Config(format!(
                    "consumer group '{}' must be 1 to 50 letters, digits, '-', '.', '_' or '$'",
                    group.escape_default()
                )));
            }
        }
        let consumers = Arc::new(ConsumerGroups::new(&groups));
        let group_names = consumers.names().to_vec();
        let now_ms = clock().timestamp_millis();
        let created_at_ms = store
            .call(move |c| crate::store::created_ms(c, now_ms))
            .await?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let throttle = Arc::new(Throttle::new(self.throttle.clone()));
        let amqp = Arc::new(AmqpContext {
            throttle: Arc::clone(&throttle),
            queues: Arc::clone(&queues),
            policies: Arc::clone(&policies),
            hub_name: self.hub_name.clone(),
            ports: std::sync::Mutex::new(vec![local_addr.port(), amqps_addr.port()]),
            journal: journal.clone(),
            feedback_interval: self.feedback_interval,
            stop: shutdown_rx.clone(),
            limits: self.limits,
            events: Arc::clone(&events),
            consumers,
            amqps_port: amqps_addr.port(),
            created_at_ms,
        });
        let tracker = Tracker::new(self.limits);
        let mqtt = Arc::new(MqttContext {
            registry: registry.clone(),
            policies: Arc::clone(&policies),
            sessions: Arc::clone(&sessions),
            queues: Arc::clone(&queues),
            events: Arc::clone(&events),
            limits: self.limits,
            stop: shutdown_rx.clone(),
            trusted_cas,
        });
        let state = AppState(Arc::new(Shared {
            registry,
            policies,
            throttle,
            https_port: local_addr.port(),
            c2d: queues,
            amqp: Arc::clone(&amqp),
            mqtt: Arc::clone(&mqtt),
            sessions,
            events: Arc::clone(&events),
            jobs,
        }));
        let app = router(state, journal);
        let mut https_shutdown = shutdown_rx.clone();
        let mut sweep_shutdown = shutdown_rx.clone();
        let mut amqps_shutdown = shutdown_rx.clone();
        let mut mqtts_shutdown = shutdown_rx;
        let mqtts_task = tokio::spawn(crate::mqtt::serve(
            mqtts_listener,
            device_tls,
            mqtt,
            Arc::clone(&tracker),
            async move {
                let _ = mqtts_shutdown.wait_for(|stop| *stop).await;
            },
        ));
        let sweeper = tokio::spawn(Arc::clone(&tracker).sweep_forever(async move {
            let _ = sweep_shutdown.wait_for(|stop| *stop).await;
        }));
        let amqps_task = tokio::spawn(crate::amqp::serve(
            amqps_listener,
            Arc::clone(&server_config),
            amqp,
            Arc::clone(&tracker),
            async move {
                let _ = amqps_shutdown.wait_for(|stop| *stop).await;
            },
        ));
        let https_task = tokio::spawn(crate::server::serve(
            listener,
            server_config,
            app,
            Arc::clone(&tracker),
            async move {
                let _ = https_shutdown.wait_for(|stop| *stop).await;
            },
        ));
        let task = tokio::spawn(async move {
            let _ = https_task.await;
            amqps_task.abort();
            mqtts_task.abort();
            sweeper.abort();
            state_writer.abort();
        });
        tracing::info!(addr = %local_addr, amqps = %amqps_addr, mqtts = %mqtts_addr, hub = %self.hub_name, consumer_groups = ?group_names, "HTTPS, AMQPS and MQTTS listeners ready");
        let emulator = Emulator {
            local_addr,
            hub_name: self.hub_name,
            amqps_port: amqps_addr.port(),
            mqtts_port: mqtts_addr.port(),
            events,
            policy_keys,
            ca_pem: material.ca_pem,
            ca_path,
            data_dir,
            in_memory: self.in_memory,
            shutdown: Some(shutdown_tx),
            task: Some(task),
            tracker,
            _temp_dir: temp_dir,
            _lock: lock,
        };
        if let Some(dir) = emulator.data_dir.clone() {
            emulator.write_connection_strings(&dir)?;
        }
        Ok(emulator)
    }
}

/// File in the data directory that a running hub holds locked (an advisory lock, released
/// when the process ends).
pub const LOCK_FILE: &str = "iothub.lock";

/// Takes the data directory's lock, or says which directory is in use.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, Error> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::DataDir {
            path: dir.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::DataDirInUse {
            path: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::DataDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// File in the data directory naming extra consumer groups, one a line.
pub const CONSUMER_GROUPS_FILE: &str = "consumer-groups.txt";
/// File in the data directory holding the `iothubowner` connection string of the running hub.
pub const CONNECTION_STRING_FILE: &str = "connection-string.txt";
/// File in the data directory holding the built-in endpoint's Event Hubs-compatible
/// connection string.
pub const EVENTHUB_CONNECTION_STRING_FILE: &str = "eventhub-connection-string.txt";

/// A running emulator. Dropping it stops the listener; [`Emulator::shutdown`] also waits for
/// in-flight requests.
pub struct Emulator {
    local_addr: SocketAddr,
    hub_name: String,
    amqps_port: u16,
    mqtts_port: u16,
    policy_keys: Vec<(String, String)>,
    ca_pem: String,
    ca_path: PathBuf,
    data_dir: Option<PathBuf>,
    in_memory: bool,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    tracker: Arc<Tracker>,
    events: Arc<EventLog>,
    _temp_dir: Option<tempfile::TempDir>,
    /// The data directory's lock, held while the hub runs.
    _lock: Option<std::fs::File>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("local_addr", &self.local_addr)
            .field("hub_name", &self.hub_name)
            .field("ca_path", &self.ca_path)
            .field("data_dir", &self.data_dir)
            .field("in_memory", &self.in_memory)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A builder with the defaults described on each setter.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// The HTTPS port actually bound (useful after `https_port(0)`).
    pub fn https_port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The socket address the HTTPS listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The AMQPS port actually bound (cloud-to-device messaging over AMQP 1.0 and TLS).
    pub fn amqps_port(&self) -> u16 {
        self.amqps_port
    }

    /// The MQTTS port actually bound (the device side: MQTT 3.1.1 over TLS).
    pub fn mqtts_port(&self) -> u16 {
        self.mqtts_port
    }

    /// The telemetry event log (device-to-cloud messages, as the built-in endpoint will
    /// serve them): read it to check what devices sent.
    pub fn telemetry(&self) -> TelemetryLog {
        TelemetryLog(Arc::clone(&self.events))
    }

    /// The host name clients use: `localhost:<port>`, or `localhost` when the port is 443.
    pub fn host_name(&self) -> String {
        host_name(self.https_port())
    }

    /// The logical hub name.
    pub fn hub_name(&self) -> &str {
        &self.hub_name
    }

    /// Connection string of the `iothubowner` policy:
    /// `HostName=localhost:<port>;SharedAccessKeyName=iothubowner;SharedAccessKey=<key>`.
    pub fn connection_string(&self) -> String {
        self.policy_connection_string("iothubowner")
            .unwrap_or_default()
    }

    /// The Event Hubs-compatible connection string of the built-in endpoint (policy
    /// `service`): `Endpoint=sb://localhost:<amqps port>/;SharedAccessKeyName=service;SharedAccessKey=<key>;EntityPath=<hub name>`
    /// (the port is left out when it is 5671). TLS on the AMQPS port, with this hub's CA.
    /// Event Hubs clients that drop the port from `Endpoint` take it as a custom endpoint
    /// address (`amqps://localhost:<port>`).
    pub fn eventhub_connection_string(&self) -> String {
        let key = self
            .policy_keys
            .iter()
            .find(|(name, _)| name == "service")
            .map(|(_, key)| key.as_str())
            .unwrap_or_default();
        let host = if self.amqps_port == DEFAULT_AMQPS_PORT {
            "localhost".to_owned()
        } else {
            format!("localhost:{}", self.amqps_port)
        };
        format!(
            "Endpoint=sb://{host}/;SharedAccessKeyName=service;SharedAccessKey={key};EntityPath={}",
            self.hub_name
        )
    }

    /// The Event Hubs-compatible name of the built-in endpoint (the hub name).
    pub fn eventhub_name(&self) -> &str {
        &self.hub_name
    }

    /// Writes both connection strings into the data directory (owner-only permissions where
    /// the platform has them), so tools find a running hub from its directory.
    fn write_connection_strings(&self, dir: &Path) -> Result<(), Error> {
        for (file, text) in [
            (CONNECTION_STRING_FILE, self.connection_string()),
            (
                EVENTHUB_CONNECTION_STRING_FILE,
                self.eventhub_connection_string(),
            ),
        ] {
            let path = dir.join(file);
            write_private(&path, &format!("{text}\n"))
                .map_err(|source| Error::DataDir { path, source })?;
        }
        Ok(())
    }

    /// Connection string of a shared access policy (`iothubowner`, `service`, `registryRead`,
    /// `registryReadWrite`), or `None` for an unknown policy.
    pub fn policy_connection_string(&self, policy: &str) -> Option<String> {
        self.policy_keys
            .iter()
            .find(|(name, _)| name == policy)
            .map(|(name, key)| {
                format!(
                    "HostName={};SharedAccessKeyName={name};SharedAccessKey={key}",
                    self.host_name()
                )
            })
    }

    /// PEM of the CA that signed the server certificate; trust it in clients.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Path of `ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.ca_path.clone()
    }

    /// Connections open now over all listeners (those the connection limits have closed
    /// are not counted).
    pub fn open_connections(&self) -> usize {
        self.tracker.open_count()
    }

    /// The connection limits in force.
    pub fn connection_limits(&self) -> ConnectionLimits {
        self.tracker.limits()
    }

    /// The data directory, if one was given.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Stops accepting connections, waits (up to five seconds) for in-flight requests and
    /// closes the store.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(task) = self.task.take() {
            task.await.map_err(Error::Server)?;
        }
        Ok(())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
    }
}

/// Read access to a running emulator's telemetry event log, for tests and tools.
#[derive(Debug, Clone)]
pub struct TelemetryLog(Arc<EventLog>);

/// A device-to-cloud message as the hub stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTelemetry {
    /// Partition of the event log.
    pub partition: u32,
    /// Sequence number in the partition.
    pub sequence_number: i64,
    /// Offset in the partition.
    pub offset: i64,
    /// When the hub enqueued it.
    pub enqueued: chrono::DateTime<chrono::Utc>,
    /// IoT Hub's system properties (`iothub-connection-device-id`, `message-id`, …).
    pub system_properties: serde_json::Map<String, serde_json::Value>,
    /// The device's application properties.
    pub application_properties: serde_json::Map<String, serde_json::Value>,
    /// The body.
    pub body: Vec<u8>,
}

impl TelemetryLog {
    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.0.partitions()
    }

    /// The partition a device's messages go to.
    pub fn partition_of(&self, device_id: &str) -> u32 {
        self.0.partition_of(device_id)
    }

    /// What `partition` holds now (first and last sequence numbers, last offset and
    /// enqueued time).
    ///
    /// # Errors
    /// A message saying why (unknown partition, store failure).
    pub async fn partition_info(&self, partition: u32) -> Result<PartitionInfo, String> {
        self.0
            .partition_info(partition)
            .await
            .map_err(|e| e.to_string())
    }

    /// Up to `max` messages of `partition` from sequence number `from` on.
    ///
    /// # Errors
    /// A message saying why (unknown partition, store failure).
    pub async fn read(
        &self,
        partition: u32,
        from: i64,
        max: usize,
    ) -> Result<Vec<StoredTelemetry>, String> {
        let events = self
            .0
            .read(partition, from, max)
            .await
            .map_err(|e| e.to_string())?;
        Ok(events
            .into_iter()
            .map(|e| {
                let section = |pairs: Vec<(String, String)>| {
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect()
                };
                StoredTelemetry {
                    partition: e.partition,
                    sequence_number: e.sequence_number,
                    offset: e.offset,
                    enqueued: e.enqueued,
                    system_properties: section(e.properties.system),
                    application_properties: section(e.properties.application),
                    body: e.body,
                }
            })
            .collect())
    }

    /// Every stored message a device (or one of its modules) sent, oldest first.
    ///
    /// # Errors
    /// A message saying why (store failure).
    pub async fn from_device(&self, device_id: &str) -> Result<Vec<StoredTelemetry>, String> {
        let partition = self.partition_of(device_id);
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page = self.read(partition, from, 1000).await?;
            let Some(last) = page.last() else { break };
            from = last.sequence_number + 1;
            all.extend(page.into_iter().filter(|m| {
                m.system_properties.get("iothub-connection-device-id")
                    == Some(&serde_json::Value::String(device_id.to_owned()))
            }));
        }
        Ok(all)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// `localhost:<port>`, or `localhost` for 443.
pub fn host_name(port: u16) -> String {
    if port == DEFAULT_HTTPS_PORT {
        "localhost".to_owned()
    } else {
        format!("localhost:{port}")
    }
}
