//! The device-side benchmark: our crates (iothub-registry, iothub-c2d, iothub-device-sim)
//! and Microsoft's official Python and Node SDKs on the same paths, against one local hub
//! process, in one run.
//!
//! ```text
//! cargo build --release -p iothub-emulator
//! cargo run --release -p iothub-device-sim --example device_bench -- [--connections 10000] [--quick]
//! ```
//!
//! Figures:
//! - direct-method round trips (service → hub → device → service), one after another:
//!   p50/p99 latency and calls/s, ours beside Python (`invoke_device_method` with an
//!   `azure-iot-device` device) and Node (`Client.invokeDeviceMethod` with an
//!   `azure-iot-device-mqtt` device);
//! - C2D delivery: messages/s from the first send (iothub-c2d, pipelined) until every
//!   device acknowledged its messages (PUBACK);
//! - durable telemetry ingest: 100-byte QoS 1 messages from 100 simulated devices (many in
//!   flight each), beside one official Python and one Node device sending one after another,
//!   and the hub's CPU per message;
//! - concurrent connections from a fleet, the hub's RSS with them, and a reconnect storm
//!   (all drop and reconnect at once): time until every device is back, refusals.
//!
//! The official SDKs are found in `.venv` and `tests/node/node_modules` (`bash tests/setup.sh`);
//! a missing one is reported, not skipped silently. On a noisy 2-core machine compare ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use iothub_c2d::{C2dClient, Message};
use iothub_device_sim::{
    DeviceConfig, DeviceOptions, Fleet, FleetOptions, SimulatedDevice, Telemetry,
};
use iothub_emulator::process::HubProcess;
use iothub_registry::{CloudToDeviceMethod, DeviceStatus, RegistryManager};
use serde_json::{Value, json};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The hub process, and what the benchmark needs of it at hand.
struct Hub {
    process: HubProcess,
    cs: String,
    host: String,
    https: u16,
    amqps: u16,
    mqtts: u16,
    ca: String,
    ca_path: PathBuf,
}

impl Hub {
    fn start(max_connections: usize) -> Result<Hub> {
        let process = HubProcess::builder(repo().join("target/release/iothub-emulator"))
            .arg("--max-connections")
            .arg(max_connections.to_string())
            .log("warn")
            .start()?;
        let cs = process.connection_string().to_owned();
        let host = cs
            .split(';')
            .find_map(|p| p.strip_prefix("HostName="))
            .ok_or("no host")?
            .to_owned();
        Ok(Hub {
            cs,
            host,
            https: process.https_port(),
            amqps: process.amqps_port(),
            mqtts: process.mqtts_port(),
            ca: process.ca_pem()?,
            ca_path: process.ca_path(),
            process,
        })
    }

    /// (CPU seconds, RSS in MB) of the hub process.
    fn usage(&self) -> (f64, f64) {
        let usage = self.process.usage();
        (usage.cpu.as_secs_f64(), usage.rss_mb as f64)
    }

    fn registry(&self) -> Result<RegistryManager> {
        Ok(RegistryManager::builder()
            .connection_string(&self.cs)
            .add_root_certificate_pem(self.ca.clone())
            .amqps_port(self.amqps)
            .build()?)
    }

    fn device(&self, id: &str) -> DeviceConfig {
        DeviceConfig::new(&self.host, id, KEY)
            .with_port(self.mqtts)
            .with_ca_pem(self.ca.clone())
    }

    fn script_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IOTHUB_CONNECTION_STRING", self.cs.clone()),
            ("EMULATOR_HTTPS_PORT", self.https.to_string()),
            ("EMULATOR_AMQPS_PORT", self.amqps.to_string()),
            ("EMULATOR_MQTTS_PORT", self.mqtts.to_string()),
            ("EMULATOR_CA_PATH", self.ca_path.display().to_string()),
            ("REQUESTS_CA_BUNDLE", self.ca_path.display().to_string()),
            ("NODE_EXTRA_CA_CERTS", self.ca_path.display().to_string()),
        ]
    }

    /// Runs an official SDK's side of a figure; `Err` says why it could not run.
    fn official(
        &self,
        sdk: &str,
        mode: &str,
        n: usize,
        device: &str,
    ) -> std::result::Result<Value, String> {
        let (program, args, dir): (PathBuf, Vec<String>, PathBuf) = match sdk {
            "python" => (
                repo().join(".venv/bin/python"),
                vec!["bench_device.py".into()],
                repo().join("tests/python"),
            ),
            _ => (
                PathBuf::from("node"),
                vec![
                    "-r".into(),
                    "./preload-port.js".into(),
                    "bench_device.js".into(),
                ],
                repo().join("tests/node"),
            ),
        };
        if sdk == "python" && !program.exists() {
            return Err("no .venv (run `bash tests/setup.sh`)".into());
        }
        let output = Command::new(&program)
            .args(&args)
            .args([mode, &n.to_string(), device, KEY])
            .current_dir(dir)
            .envs(self.script_env())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .ok_or_else(|| {
                format!(
                    "{sdk} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                        .lines()
                        .last()
                        .unwrap_or_default()
                )
            })
    }
}

async fn create_devices(rm: &RegistryManager, ids: &[String]) -> Result<()> {
    let results: Vec<_> = futures::stream::iter(ids)
        .map(|id| {
            rm.create_device_with_sas(id, KEY, KEY, DeviceStatus::Enabled)
                .into_future()
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn show(name: &str, figure: std::result::Result<Value, String>, fields: &[&str]) {
    match figure {
        Ok(v) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| format!("{f} {:.2}", v[*f].as_f64().unwrap_or(f64::NAN)))
                .collect();
            println!("  {name:<28} {}", parts.join(", "));
        }
        Err(why) => println!("  {name:<28} not measured: {why}"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let connections: usize = args
        .iter()
        .position(|a| a == "--connections")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 500 } else { 10_000 });
    let scale = if quick { 5 } else { 1 };
    let hub = Hub::start(connections + 500)?;
    let rm = hub.registry()?;
    println!(
        "local hub on {} (MQTTS {}), one process; 2-core machine: compare ratios\n",
        hub.host, hub.mqtts
    );

    // ---------------------------------------------------------------- direct methods
    println!("direct-method round trips, one after another (service -> hub -> device -> service)");
    create_devices(
        &rm,
        &["bench-m".into(), "bench-py".into(), "bench-node".into()],
    )
    .await?;
    let device = SimulatedDevice::connect(hub.device("bench-m"), DeviceOptions::default()).await?;
    let n = 2000 / scale;
    let call = CloudToDeviceMethod::new("bench")
        .payload(json!({"n": 1}))
        .response_timeout_in_seconds(30);
    rm.invoke_device_method("bench-m", call.clone()).await?;
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let r = rm.invoke_device_method("bench-m", call.clone()).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, Some(200));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let ours = json!({"rate": rate, "p50_ms": percentile(&mut latencies, 0.5), "p99_ms": percentile(&mut latencies, 0.99)});
    show(
        "iothub-registry + sim",
        Ok(ours.clone()),
        &["p50_ms", "p99_ms", "rate"],
    );
    let python = hub.official("python", "methods", 300 / scale, "bench-py");
    show("Python SDKs", python.clone(), &["p50_ms", "p99_ms", "rate"]);
    let node = hub.official("node", "methods", 300 / scale, "bench-node");
    show("Node SDKs", node.clone(), &["p50_ms", "p99_ms", "rate"]);
    for (name, other) in [("Python", &python), ("Node", &node)] {
        if let Ok(o) = other {
            println!(
                "  ratio: ours {:.1}x {name}'s rate, {:.1}x lower p50",
                rate / o["rate"].as_f64().unwrap_or(f64::NAN),
                o["p50_ms"].as_f64().unwrap_or(f64::NAN)
                    / ours["p50_ms"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    device.disconnect().await;

    // ---------------------------------------------------------------- C2D delivery
    println!(
        "\ncloud-to-device delivery: first send -> every PUBACK (20 devices x 50 messages, the queue limit)"
    );
    let ids: Vec<String> = (0..20).map(|i| format!("bench-c2d-{i}")).collect();
    create_devices(&rm, &ids).await?;
    let fleet = Fleet::start(
        ids.iter().map(|id| hub.device(id)).collect(),
        FleetOptions::default(),
    )
    .await;
    let c2d = C2dClient::builder()
        .connection_string(&hub.cs)
        .amqps_port(hub.amqps)
        .add_root_certificate_pem(hub.ca.clone())
        .build()?;
    c2d.send(&ids[0], Message::new(b"warm".to_vec())).await?;
    fleet
        .devices()
        .iter()
        .find(|d| d.config().device_id == ids[0])
        .ok_or("device")?
        .next_c2d(Duration::from_secs(10))
        .await;
    let started = Instant::now();
    let sends = futures::stream::iter(
        ids.iter()
            .flat_map(|id| (0..50).map(move |i| (id.clone(), i))),
    )
    .map(|(id, i)| {
        c2d.send(id, Message::new(format!("{i:0100}").into_bytes()))
            .into_future()
    })
    .buffer_unordered(256)
    .collect::<Vec<_>>();
    let receive = futures::future::join_all(fleet.devices().iter().map(|d| async move {
        let mut got = 0;
        while got < 50 && d.next_c2d(Duration::from_secs(30)).await.is_some() {
            got += 1;
        }
        got
    }));
    let (sent, received) = tokio::join!(sends, receive);
    let elapsed = started.elapsed().as_secs_f64();
    let failed = sent.iter().filter(|r| r.is_err()).count();
    let got: usize = received.iter().sum();
    println!(
        "  iothub-c2d + sim              {:.0} messages/s delivered ({got} of 1000, {failed} sends failed)",
        got as f64 / elapsed
    );
    println!(
        "  official SDKs                 not measured here (one device each sends and receives sequentially)"
    );
    fleet.shutdown().await;

    // ---------------------------------------------------------------- telemetry
    println!("\ndurable telemetry ingest, 100-byte QoS 1 messages");
    let ids: Vec<String> = (0..100).map(|i| format!("bench-t-{i}")).collect();
    create_devices(&rm, &ids).await?;
    create_devices(&rm, &["bench-t-py".into(), "bench-t-node".into()]).await?;
    let fleet = Arc::new(
        Fleet::start(
            ids.iter().map(|id| hub.device(id)).collect(),
            FleetOptions::default(),
        )
        .await,
    );
    let per_device = 1000 / scale;
    let (cpu0, _) = hub.usage();
    let started = Instant::now();
    let tasks: Vec<_> = fleet
        .devices()
        .iter()
        .cloned()
        .map(|d| {
            tokio::spawn(async move {
                let body = vec![b'x'; 100];
                let results: Vec<_> = futures::stream::iter(0..per_device)
                    .map(|_| d.send_telemetry(Telemetry::new(body.clone())))
                    .buffer_unordered(32)
                    .collect()
                    .await;
                results.iter().filter(|r| r.is_ok()).count()
            })
        })
        .collect();
    let mut acked = 0;
    for t in tasks {
        acked += t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, _) = hub.usage();
    println!(
        "  100 simulated devices         {:.0} messages/s ({acked} acknowledged), hub CPU {:.1} us/message",
        acked as f64 / elapsed,
        (cpu1 - cpu0) / acked.max(1) as f64 * 1e6
    );
    show(
        "1 Python device",
        hub.official("python", "telemetry", 2000 / scale, "bench-t-py"),
        &["rate", "client_cpu_us"],
    );
    show(
        "1 Node device",
        hub.official("node", "telemetry", 2000 / scale, "bench-t-node"),
        &["rate", "client_cpu_us"],
    );
    if let Ok(fleet) = Arc::try_unwrap(fleet) {
        fleet.shutdown().await;
    }

    // ---------------------------------------------------------------- connections
    println!("\nconcurrent connections from the fleet mode");
    let (_, rss0) = hub.usage();
    let ids: Vec<String> = (0..connections).map(|i| format!("bench-c-{i}")).collect();
    let started = Instant::now();
    create_devices(&rm, &ids).await?;
    println!(
        "  created {connections} devices in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let options = FleetOptions {
        concurrency: 128,
        device: DeviceOptions {
            connect_timeout: Duration::from_secs(120),
            ..DeviceOptions::default()
        },
    };
    let fleet = Fleet::start(ids.iter().map(|id| hub.device(id)).collect(), options).await;
    let connect_time = started.elapsed().as_secs_f64();
    let stats = rm.get_service_statistics().await?;
    let (_, rss1) = hub.usage();
    println!(
        "  {} connected in {connect_time:.1} s ({} failed); hub reports connectedDeviceCount {}; hub RSS {rss1:.0} MB ({:.1} KB per connection over the {rss0:.0} MB before)",
        fleet.connected(),
        fleet.failures().len(),
        stats.connected_device_count,
        (rss1 - rss0) * 1024.0 / fleet.connected().max(1) as f64
    );
    if let Some((id, e)) = fleet.failures().first() {
        println!("  first failure: {id}: {e}");
    }
    let started = Instant::now();
    fleet.reconnect_all();
    let back = fleet.wait_reconnected(1, Duration::from_secs(60)).await;
    println!(
        "  reconnect storm: {back} of {} back in {:.1} s",
        fleet.devices().len(),
        started.elapsed().as_secs_f64()
    );
    fleet.shutdown().await;
    Ok(())
}
