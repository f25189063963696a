//! The built-in endpoint benchmark: `iothub-events` beside Microsoft's Node
//! (`@azure/event-hubs`) and Python (`azure-eventhub`) Event Hubs clients, reading the same
//! partition of one local hub, in one run.
//!
//! ```text
//! cargo build --release -p iothub-emulator
//! cargo run --release -p iothub-events --example events_bench -- [--events 200000] [--latency 500]
//! ```
//!
//! Figures:
//! - read throughput from one partition: a reader starts at the beginning of `--events`
//!   retained events (sent by 100 simulated MQTT devices into the hub's one partition)
//!   and reads them all; events/s for each client (with `--events 1000000` this is the
//!   catch-up figure);
//! - end-to-end latency: one simulated device publishes `--latency` messages one after
//!   another; `iothub-events`, reading from the end of the partition, notes when each
//!   arrives; p50/p99 from the device's PUBLISH to the reader having the event.
//!
//! The hub is the `iothub-emulator` binary, as users run it (with its allocator, in a process
//! of its own, one partition, a temporary data dir): build it first with
//! `cargo build --release -p iothub-emulator`. Our reader runs in this process and the
//! official clients in theirs, so the hub's CPU per event and our reader's are printed apart.
//! The official clients are found in `.venv` and `tests/node/node_modules`
//! (`bash tests/setup.sh`); a missing one is reported, not skipped silently. On a noisy
//! 2-core machine compare ratios.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice, Telemetry};
use iothub_emulator::process::HubProcess;
use iothub_events::{EventPosition, EventReader};
use iothub_registry::{DeviceStatus, RegistryManager};
use serde_json::Value;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const DEVICES: usize = 100;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (in parentheses): utime and stime, in clock ticks
    // (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs an official client's read of `n` events from partition 0; `Err` says why not.
fn official(sdk: &str, hub: &HubProcess, n: usize) -> std::result::Result<Value, String> {
    let (program, args, dir): (PathBuf, Vec<String>, PathBuf) = match sdk {
        "python" => (
            repo().join(".venv/bin/python"),
            vec!["bench_eventhub.py".into()],
            repo().join("tests/python"),
        ),
        _ => (
            PathBuf::from("node"),
            vec!["bench_eventhub.js".into()],
            repo().join("tests/node"),
        ),
    };
    if sdk == "python" && !program.exists() {
        return Err("no .venv (run `bash tests/setup.sh`)".into());
    }
    let ca = hub.ca_path().display().to_string();
    let output = Command::new(&program)
        .args(&args)
        .arg(n.to_string())
        .current_dir(dir)
        .env(
            "EVENTHUB_CONNECTION_STRING",
            hub.eventhub_connection_string(),
        )
        .env("EMULATOR_AMQPS_PORT", hub.amqps_port().to_string())
        .env("EMULATOR_CA_PATH", &ca)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    String::from_utf8_lossy(&output.stdout)
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

#[tokio::main]
async fn main() -> Result<()> {
    let events = arg("--events", 200_000);
    let latency_samples = arg("--latency", 500);
    let binary = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("iothub-emulator"))
        .ok_or("cannot locate the target directory")?;
    let hub = HubProcess::builder(binary)
        .arg("--partitions")
        .arg("1")
        .start()?;
    let ca_pem = hub.ca_pem()?;
    let rm = RegistryManager::builder()
        .connection_string(hub.connection_string())
        .add_root_certificate_pem(ca_pem.clone())
        .amqps_port(hub.amqps_port())
        .build()?;
    // One partition: every device's telemetry lands in partition 0.
    let ids: Vec<String> = (0..DEVICES).map(|i| format!("bench-{i}")).collect();
    for id in &ids {
        rm.create_device_with_sas(id, KEY, KEY, DeviceStatus::Enabled)
            .await?;
    }
    let mut devices = Vec::new();
    for id in &ids {
        let config = DeviceConfig::new("localhost", id, KEY)
            .with_port(hub.mqtts_port())
            .with_ca_pem(ca_pem.clone());
        devices.push(Arc::new(
            SimulatedDevice::connect(config, DeviceOptions::default()).await?,
        ));
    }

    println!(
        "# built-in endpoint benchmark: {events} events in partition 0 from {DEVICES} devices"
    );
    let body = vec![b'x'; 100];
    let started = Instant::now();
    let per_device = events.div_ceil(DEVICES);
    let sends = devices.iter().map(|device| {
        let device = Arc::clone(device);
        let body = body.clone();
        async move {
            futures::stream::iter(0..per_device)
                .for_each_concurrent(64, |_| {
                    let device = Arc::clone(&device);
                    let body = body.clone();
                    async move {
                        device
                            .send_telemetry(Telemetry::new(body))
                            .await
                            .expect("telemetry acknowledged");
                    }
                })
                .await;
        }
    });
    futures::future::join_all(sends).await;
    let total = per_device * DEVICES;
    println!(
        "filled: {total} events in {:.1} s ({:.0} events/s ingest)",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64()
    );

    // Read throughput: ours.
    let reader = EventReader::builder()
        .eventhub_connection_string(hub.eventhub_connection_string())
        .add_root_certificate_pem(ca_pem.clone())
        .partitions(["0"])
        .prefetch(1000)
        .build()?;
    let (hub_cpu0, cpu0) = (hub.usage().cpu.as_secs_f64(), cpu_seconds());
    let t0 = Instant::now();
    let mut stream = reader.stream();
    let mut read = 0usize;
    while read < total {
        match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
            Ok(Some(Ok(_))) => read += 1,
            Ok(Some(Err(e))) => return Err(e.into()),
            _ => return Err(format!("our reader stalled after {read} events").into()),
        }
    }
    let ours = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let hub_cpu = hub.usage().cpu.as_secs_f64() - hub_cpu0;
    drop(stream);
    let ours_rate = total as f64 / ours;
    println!("\n## read throughput, one partition, from the beginning of {total} events");
    println!("| client | events/s | seconds | ratio (ours / theirs) |");
    println!("|---|---|---|---|");
    println!(
        "| iothub-events | {ours_rate:.0} | {ours:.2} | 1.0 (CPU per event: hub {:.1} µs, reader {:.1} µs) |",
        hub_cpu * 1e6 / total as f64,
        cpu * 1e6 / total as f64
    );
    for sdk in ["node", "python"] {
        match official(sdk, &hub, total) {
            Ok(v) => {
                let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
                let got = v["events"].as_f64().unwrap_or(0.0);
                let rate = got / secs;
                let name = if sdk == "node" {
                    "Node @azure/event-hubs"
                } else {
                    "Python azure-eventhub"
                };
                println!(
                    "| {name} | {rate:.0} | {secs:.2} | {:.1}x |",
                    ours_rate / rate
                );
            }
            Err(e) => println!("| {sdk} | – | – | could not run: {e} |"),
        }
    }

    // End-to-end latency: PUBLISH → our reader has it.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reader = EventReader::builder()
        .eventhub_connection_string(hub.eventhub_connection_string())
        .add_root_certificate_pem(ca_pem.clone())
        .partitions(["0"])
        .start(EventPosition::Latest)
        .build()?;
    let mut stream = reader.stream();
    let seen = Arc::clone(&arrivals);
    let collector = tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            if let Some(id) = event.message_id {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let device = &devices[0];
    let mut sent = Vec::new();
    for i in 0..latency_samples {
        let id = format!("lat-{i}");
        let t = Instant::now();
        device
            .send_telemetry(Telemetry::new(body.clone()).with_message_id(id.clone()))
            .await?;
        sent.push((id.clone(), t));
        // Wait for it, so each sample is one message alone on the path.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
        {
            if Instant::now() > deadline {
                return Err(format!("{id} never reached the reader").into());
            }
            tokio::task::yield_now().await;
        }
    }
    collector.abort();
    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, t)| arrivals.get(id).map(|a| a.duration_since(*t)))
        .collect();
    latencies.sort();
    println!(
        "\n## end-to-end latency, device PUBLISH → iothub-events has the event ({latency_samples} one at a time)"
    );
    println!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    Ok(())
}
