//! The command line of the `iothub-emulator` binary, as a library: [`EmulatorArgs`] (the
//! flags, which other binaries such as `iothub emulator start` flatten into their own) and
//! [`run`] (start, print the connection strings, serve until Ctrl-C or SIGTERM).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::{
    DEFAULT_AMQPS_PORT, DEFAULT_HTTPS_PORT, DEFAULT_HUB_NAME, DEFAULT_MQTTS_PORT, EmulatorBuilder,
    ThrottleConfig, ThrottleProfile,
};

/// Data directory used when `--data-dir` is not given (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "iothub-emulator-data";

/// A local Azure IoT Hub emulator (service-side HTTPS registry API).
///
/// When the listeners are ready it prints one line,
/// `IOTHUB_CONNECTION_STRING=HostName=localhost:PORT;SharedAccessKeyName=iothubowner;SharedAccessKey=…`,
/// on stdout, then logs requests on stderr (filter with RUST_LOG).
#[derive(Clone, Parser)]
#[command(name = "iothub-emulator", version)]
pub struct EmulatorArgs {
    /// Directory for the database and TLS certificates, created if missing
    /// [default: iothub-emulator-data, unless --in-memory].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// HTTPS port for the service REST API (0 picks a free port).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HTTPS_PORT)]
    pub https_port: u16,

    /// AMQPS port for cloud-to-device messaging (0 picks a free port).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_AMQPS_PORT)]
    pub amqps_port: u16,

    /// MQTT-over-TLS port for devices (MQTT 3.1.1); `0` picks a free port (printed on stderr).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MQTTS_PORT)]
    pub mqtts_port: u16,

    /// Logical hub name used in error messages.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_HUB_NAME)]
    pub hub_name: String,

    /// Most connections open at once over all listeners; over it, the connection idle
    /// longest is closed.
    #[arg(long, value_name = "N", default_value_t = crate::ConnectionLimits::default().max_connections)]
    pub max_connections: usize,

    /// Trust this CA (PEM file) for devices with certificateAuthority authentication; repeat
    /// for several. PEM files in DIR/trusted-cas/ are trusted too.
    #[arg(long = "trusted-ca", value_name = "FILE")]
    pub trusted_ca: Vec<std::path::PathBuf>,

    /// Keep devices in memory and certificates in a temporary directory; ca.pem is still
    /// written to --data-dir when given.
    #[arg(long)]
    pub in_memory: bool,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Append one JSON line per request to FILE (Authorization and keys are never written).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Apply IoT Hub's per-operation quotas: off, s1 (also free, s2) or s3.
    #[arg(long, value_name = "PROFILE", default_value = "off")]
    pub throttle: ThrottleProfile,

    /// Answer this fraction (0.0–1.0) of requests with 429 at random.
    #[arg(long, value_name = "FRACTION", value_parser = parse_rate)]
    pub throttle_rate: Option<f64>,

    /// Time between cloud-to-device feedback batches, in milliseconds (IoT Hub's is 15 s;
    /// a batch also goes out as soon as 64 records wait).
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    pub feedback_interval_ms: u64,

    /// Add a consumer group to the built-in endpoint ($Default always exists); repeat for
    /// several. Names in DIR/consumer-groups.txt are added too.
    #[arg(long = "consumer-group", value_name = "NAME")]
    pub consumer_groups: Vec<String>,

    /// Route IoT Hub's event messages of this data source to the built-in endpoint:
    /// DeviceLifecycleEvents, TwinChangeEvents or DeviceConnectionStateEvents; repeat for
    /// several.
    #[arg(long = "route", value_name = "SOURCE")]
    pub routes: Vec<crate::EventSource>,

    /// Partitions of the built-in endpoint (telemetry event log), 1–32.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub partitions: u32,

    /// How long the built-in endpoint keeps telemetry, in hours (IoT Hub's default is 24).
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub retention_hours: u64,

    /// Primary key of every shared access policy (base64, 16–64 bytes). Defaults to the
    /// well-known development key.
    #[arg(
        long,
        value_name = "BASE64",
        env = "IOTHUB_EMULATOR_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

impl std::fmt::Debug for EmulatorArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorArgs")
            .field("data_dir", &self.data_dir)
            .field("https_port", &self.https_port)
            .field("amqps_port", &self.amqps_port)
            .field("mqtts_port", &self.mqtts_port)
            .field("trusted_ca", &self.trusted_ca)
            .field("max_connections", &self.max_connections)
            .field("hub_name", &self.hub_name)
            .field("in_memory", &self.in_memory)
            .field("bind", &self.bind)
            .field("journal", &self.journal)
            .field("throttle", &self.throttle)
            .field("throttle_rate", &self.throttle_rate)
            .field("consumer_groups", &self.consumer_groups)
            .field("routes", &self.routes)
            .field("partitions", &self.partitions)
            .field("retention_hours", &self.retention_hours)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Logs to stderr (with colours only on a terminal), filtered by `RUST_LOG` (default
/// `info`), as the `iothub-emulator` binary and `iothub emulator start` do.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Starts the local hub these arguments describe, prints its connection strings, and serves
/// until Ctrl-C or SIGTERM; then shuts it down.
///
/// On stdout, once every listener is ready, exactly two lines in one write:
/// `IOTHUB_CONNECTION_STRING=…` and `EVENTHUB_CONNECTION_STRING=…`. On stderr, the CA path
/// and the AMQPS and MQTTS ports (`AMQPS (cloud-to-device) on port N; …`, a prefix tools
/// may parse). Returns the process exit status: failure when the hub cannot start (the
/// reason is printed on stderr as one line, with the flag to change when a port is taken)
/// or cannot shut down cleanly.
pub async fn run(args: EmulatorArgs) -> ExitCode {
    let emulator = match args.builder().start().await {
        Ok(e) => e,
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            if let crate::Error::Bind { protocol, .. } = &e {
                let flag = match *protocol {
                    "AMQPS" => "--amqps-port",
                    "MQTTS" => "--mqtts-port",
                    _ => "--https-port",
                };
                message.push_str(&format!(
                    " (choose another port with {flag}, or 0 for a free one)"
                ));
            }
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("CA certificate: {}", emulator.ca_path().display());
    eprintln!(
        "AMQPS (cloud-to-device) on port {}; AMQP over WebSockets on the HTTPS port at /$iothub/websocket; the built-in endpoint '{}' is served on both",
        emulator.amqps_port(),
        emulator.eventhub_name()
    );
    eprintln!(
        "MQTTS (devices) on port {}; MQTT over WebSockets on the HTTPS port at /$iothub/websocket",
        emulator.mqtts_port()
    );
    {
        let mut stdout = std::io::stdout().lock();
        // Both lines in one write, so a reader that takes the first line and closes the
        // pipe never makes the second one fail.
        let lines = format!(
            "IOTHUB_CONNECTION_STRING={}\nEVENTHUB_CONNECTION_STRING={}\n",
            emulator.connection_string(),
            emulator.eventhub_connection_string()
        );
        let printed = stdout
            .write_all(lines.as_bytes())
            .and_then(|()| stdout.flush());
        if let Err(e) = printed {
            eprintln!("error: cannot write the connection string to stdout: {e}");
            return ExitCode::FAILURE;
        }
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    match emulator.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("'{text}' is not a fraction between 0.0 and 1.0")),
    }
}

impl EmulatorArgs {
    /// The builder these arguments describe.
    pub fn builder(&self) -> EmulatorBuilder {
        let mut throttle = ThrottleConfig::profile(self.throttle);
        if let Some(rate) = self.throttle_rate {
            throttle = throttle.with_failure_rate(rate);
        }
        let mut builder = crate::Emulator::builder()
            .in_memory(self.in_memory)
            .bind(self.bind)
            .https_port(self.https_port)
            .amqps_port(self.amqps_port)
            .mqtts_port(self.mqtts_port)
            .hub_name(self.hub_name.clone())
            .partitions(self.partitions)
            .retention(std::time::Duration::from_secs(
                self.retention_hours.saturating_mul(3600),
            ))
            .throttle(throttle)
            .feedback_batch_interval(std::time::Duration::from_millis(self.feedback_interval_ms));
        for group in &self.consumer_groups {
            builder = builder.consumer_group(group.clone());
        }
        for source in &self.routes {
            builder = builder.route_events(*source);
        }
        match (&self.data_dir, self.in_memory) {
            (Some(dir), _) => builder = builder.data_dir(dir.clone()),
            (None, false) => builder = builder.data_dir(DEFAULT_DATA_DIR),
            (None, true) => {}
        }
        if let Some(key) = &self.key {
            builder = builder.key(key.clone());
        }
        if let Some(journal) = &self.journal {
            builder = builder.journal(journal.clone());
        }
        builder = builder.connection_limits(crate::ConnectionLimits {
            max_connections: self.max_connections,
            ..crate::ConnectionLimits::default()
        });
        for ca in &self.trusted_ca {
            builder = builder.trusted_ca_file(ca.clone());
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() -> Result<(), clap::Error> {
        let cli = EmulatorArgs::try_parse_from(["iothub-emulator"])?;
        assert_eq!(cli.https_port, 443);
        assert_eq!(cli.amqps_port, 5671);
        assert_eq!(cli.mqtts_port, 8883);
        assert_eq!(cli.hub_name, "emulator");
        assert_eq!(cli.throttle, ThrottleProfile::Off);
        Ok(())
    }

    #[test]
    fn all_flags() -> Result<(), clap::Error> {
        let cli = EmulatorArgs::try_parse_from([
            "iothub-emulator",
            "--data-dir",
            "d",
            "--https-port",
            "0",
            "--amqps-port",
            "1",
            "--mqtts-port",
            "2",
            "--hub-name",
            "myhub",
            "--in-memory",
            "--bind",
            "0.0.0.0",
            "--journal",
            "j.jsonl",
            "--throttle",
            "s1",
            "--throttle-rate",
            "0.3",
        ])?;
        assert!(cli.in_memory);
        assert_eq!(cli.throttle, ThrottleProfile::S1);
        assert_eq!(cli.throttle_rate, Some(0.3));
        let _ = cli.builder();
        Ok(())
    }

    #[test]
    fn debug_hides_the_key() -> Result<(), clap::Error> {
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let cli = EmulatorArgs::try_parse_from(["iothub-emulator", "--key", key])?;
        for shown in [format!("{cli:?}"), format!("{:?}", cli.builder())] {
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(!shown.contains(key), "{shown}");
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_values() {
        assert!(
            EmulatorArgs::try_parse_from(["iothub-emulator", "--https-port", "70000"]).is_err()
        );
        assert!(EmulatorArgs::try_parse_from(["iothub-emulator", "--throttle", "s9"]).is_err());
        assert!(EmulatorArgs::try_parse_from(["iothub-emulator", "--throttle-rate", "2"]).is_err());
    }
}
