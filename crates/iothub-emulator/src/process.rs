//! The local hub as a child process: the `iothub-emulator` binary started on free ports
//! (port 0 for HTTPS, AMQPS and MQTTS) with a data directory of its own, for benchmarks and
//! tests that measure the hub apart from their client (its CPU time, memory and data
//! directory) or that kill it with `kill -9`.
//!
//! The process is ready when it has printed its `IOTHUB_CONNECTION_STRING=` and
//! `EVENTHUB_CONNECTION_STRING=` lines; the AMQPS and MQTTS ports are read from its start-up
//! log. Dropping a [`HubProcess`] kills it.

use std::ffi::OsString;
use std::io::{self, BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Builds a [`HubProcess`].
#[derive(Debug)]
#[must_use]
pub struct HubProcessBuilder {
    binary: PathBuf,
    data_dir: Option<PathBuf>,
    args: Vec<OsString>,
    log: String,
}

impl HubProcessBuilder {
    /// The data directory (default: a new temporary directory, removed with the process).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// One more command-line argument, after the data directory and the ports (for example
    /// `--partitions`, then `1`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The hub's `RUST_LOG` (default `error`).
    pub fn log(mut self, filter: impl Into<String>) -> Self {
        self.log = filter.into();
        self
    }

    /// Starts the process and waits until it is ready.
    ///
    /// # Errors
    /// The binary is missing or cannot start (`NotFound` names the build command), or it
    /// exited or printed something else before its ready lines.
    pub fn start(self) -> io::Result<HubProcess> {
        if !self.binary.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is missing: build it with `cargo build --release -p iothub-emulator`",
                    self.binary.display()
                ),
            ));
        }
        let (temp, data_dir) = match self.data_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir()?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let mut child = Command::new(&self.binary)
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--https-port",
                "0",
                "--amqps-port",
                "0",
                "--mqtts-port",
                "0",
            ])
            .args(&self.args)
            .env("RUST_LOG", &self.log)
            .env_remove("IOTHUB_EMULATOR_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let ready = Ready::read(&mut child);
        let ready = match ready {
            Ok(ready) => ready,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(HubProcess {
            child,
            ready,
            data_dir,
            _temp: temp,
        })
    }
}

/// What the process printed when it became ready.
struct Ready {
    connection_string: String,
    eventhub_connection_string: String,
    https_port: u16,
    amqps_port: u16,
    mqtts_port: u16,
}

impl Ready {
    fn read(child: &mut Child) -> io::Result<Ready> {
        let unexpected = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| unexpected("no stdout".into()))?,
        );
        let mut line = |prefix: &str| -> io::Result<String> {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            line.trim()
                .strip_prefix(prefix)
                .map(str::to_owned)
                .ok_or_else(|| {
                    unexpected(format!("the hub did not print {prefix}… when it started"))
                })
        };
        let connection_string = line("IOTHUB_CONNECTION_STRING=")?;
        let eventhub_connection_string = line("EVENTHUB_CONNECTION_STRING=")?;
        let https_port = connection_string
            .split(';')
            .find_map(|p| p.strip_prefix("HostName="))
            .and_then(|host| host.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| {
                unexpected("the connection string has no HostName with a port".into())
            })?;
        let port_after = |line: &str, prefix: &str| -> Option<u16> {
            let rest = line.strip_prefix(prefix)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let mut stderr = BufReader::new(
            child
                .stderr
                .take()
                .ok_or_else(|| unexpected("no stderr".into()))?,
        );
        let (mut amqps_port, mut mqtts_port) = (None, None);
        while amqps_port.is_none() || mqtts_port.is_none() {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                break;
            }
            amqps_port = amqps_port.or(port_after(&line, "AMQPS (cloud-to-device) on port "));
            mqtts_port = mqtts_port.or(port_after(&line, "MQTTS (devices) on port "));
        }
        // Keep reading both pipes, so the hub never blocks on a full one.
        std::thread::spawn(move || io::copy(&mut stderr, &mut io::sink()));
        std::thread::spawn(move || io::copy(&mut stdout, &mut io::sink()));
        Ok(Ready {
            connection_string,
            eventhub_connection_string,
            https_port,
            amqps_port: amqps_port
                .ok_or_else(|| unexpected("the hub printed no AMQPS port".into()))?,
            mqtts_port: mqtts_port
                .ok_or_else(|| unexpected("the hub printed no MQTTS port".into()))?,
        })
    }
}

/// The hub's resource use, from `/proc` (Linux; zeros elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident set size, in MB. The database file is memory-mapped, so this includes the
    /// file pages read (the kernel's page cache, shared and reclaimable).
    pub rss_mb: u64,
    /// Peak resident set size, in MB.
    pub peak_rss_mb: u64,
    /// Anonymous resident memory, in MB: the hub's own memory.
    pub anonymous_rss_mb: u64,
}

/// A running `iothub-emulator` process. Killed when dropped.
pub struct HubProcess {
    child: Child,
    ready: Ready,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for HubProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubProcess")
            .field("pid", &self.child.id())
            .field("https_port", &self.ready.https_port)
            .field("amqps_port", &self.ready.amqps_port)
            .field("mqtts_port", &self.ready.mqtts_port)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl HubProcess {
    /// A builder for the binary at `binary` (`target/release/iothub-emulator`, for example).
    pub fn builder(binary: impl Into<PathBuf>) -> HubProcessBuilder {
        HubProcessBuilder {
            binary: binary.into(),
            data_dir: None,
            args: Vec::new(),
            log: "error".into(),
        }
    }

    /// The service connection string (policy `iothubowner`; it holds a key).
    pub fn connection_string(&self) -> &str {
        &self.ready.connection_string
    }

    /// The built-in endpoint's Event Hubs-compatible connection string (it holds a key).
    pub fn eventhub_connection_string(&self) -> &str {
        &self.ready.eventhub_connection_string
    }

    /// HTTPS port (REST, and AMQP and MQTT over WebSockets).
    pub fn https_port(&self) -> u16 {
        self.ready.https_port
    }

    /// AMQPS port.
    pub fn amqps_port(&self) -> u16 {
        self.ready.amqps_port
    }

    /// MQTTS port.
    pub fn mqtts_port(&self) -> u16 {
        self.ready.mqtts_port
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The CA certificate's file ([`crate::CA_FILE`] in the data directory).
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join(crate::CA_FILE)
    }

    /// The CA certificate (PEM) the hub's TLS certificates chain to.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn ca_pem(&self) -> io::Result<String> {
        std::fs::read_to_string(self.ca_path())
    }

    /// The total size of the files in the data directory, in bytes.
    pub fn data_dir_bytes(&self) -> u64 {
        std::fs::read_dir(&self.data_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// CPU time and memory so far.
    pub fn usage(&self) -> ProcessUsage {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name (in parentheses): utime and stime are the 12th and 13th
        // fields, in clock ticks of 10 ms.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let mb = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                / 1024
        };
        ProcessUsage {
            cpu: Duration::from_millis(ticks * 10),
            rss_mb: mb("VmRSS:"),
            peak_rss_mb: mb("VmHWM:"),
            anonymous_rss_mb: mb("RssAnon:"),
        }
    }

    /// Kills the process with SIGKILL (`kill -9`) and waits for it.
    ///
    /// # Errors
    /// The signal or the wait failed.
    pub fn kill_9(mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
