//! A reader of the built-in endpoint that resumes from its checkpoint after `kill -9` of the
//! hub sees every acknowledged event after that point exactly once, in order.

mod common;

use std::time::Duration;

use common::{Running, TestResult, spawn_binary};
use futures::StreamExt as _;
use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice, Telemetry};
use iothub_events::{Checkpoint, EventPosition, EventReader};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const DEVICE: &str = "resume-1";

async fn device(
    hub: &Running,
    ca: &str,
) -> Result<SimulatedDevice, Box<dyn std::error::Error + Send + Sync>> {
    let config = DeviceConfig::new(format!("localhost:{}", hub.https_port), DEVICE, KEY)
        .with_port(hub.mqtts_port)
        .with_ca_pem(ca);
    Ok(SimulatedDevice::connect(config, DeviceOptions::default()).await?)
}

async fn send(device: &SimulatedDevice, range: std::ops::Range<u32>) -> TestResult {
    for i in range {
        // Returns once the hub acknowledged it (PUBACK).
        device
            .send_telemetry(Telemetry::new(format!("e{i}").into_bytes()))
            .await?;
    }
    Ok(())
}

/// Reads `n` events of the device, starting as `start` says.
async fn read(
    hub: &Running,
    ca: &str,
    start: Result<EventPosition, Checkpoint>,
    n: usize,
) -> Result<Vec<(String, Checkpoint)>, Box<dyn std::error::Error + Send + Sync>> {
    let mut builder = EventReader::builder()
        .connection_string(&hub.cs)
        .amqps_port(hub.amqps_port)
        .add_root_certificate_pem(ca.as_bytes().to_vec());
    builder = match start {
        Ok(position) => builder.start(position),
        Err(checkpoint) => builder.start_after([checkpoint]),
    };
    let reader = builder.build()?;
    let mut stream = reader.stream();
    let mut seen = Vec::new();
    while seen.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .map_err(|_| format!("only {} of {n} events arrived", seen.len()))?
            .ok_or("the stream ended")??;
        if event.device_id.as_deref() == Some(DEVICE) {
            seen.push((
                String::from_utf8_lossy(&event.body).into_owned(),
                event.checkpoint(),
            ));
        }
    }
    // Nothing more for the device arrives (no duplicate after the last one).
    if let Ok(Some(Ok(extra))) =
        tokio::time::timeout(Duration::from_millis(500), stream.next()).await
        && extra.device_id.as_deref() == Some(DEVICE)
    {
        return Err(format!("unexpected extra event {:?}", extra.body).into());
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_resumes_after_kill_9_exactly_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut hub = spawn_binary(dir.path())?;
    let ca = std::fs::read_to_string(dir.path().join("ca.pem"))?;
    let rm = iothub_registry::RegistryManager::builder()
        .connection_string(&hub.cs)
        .add_root_certificate_pem(ca.clone())
        .build()?;
    rm.create_device_with_sas(DEVICE, KEY, KEY, iothub_registry::DeviceStatus::Enabled)
        .await?;

    let first = device(&hub, &ca).await?;
    send(&first, 0..50).await?;
    let read_before = read(&hub, &ca, Ok(EventPosition::Earliest), 50).await?;
    let bodies: Vec<&str> = read_before.iter().map(|(b, _)| b.as_str()).collect();
    let expected: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
    assert_eq!(bodies, expected);
    // The reader saved its place after the 20th event.
    let checkpoint = read_before[19].1.clone();

    hub.child.kill()?; // SIGKILL
    hub.child.wait()?;
    first.disconnect().await;

    let hub = spawn_binary(dir.path())?;
    let second = device(&hub, &ca).await?;
    send(&second, 50..80).await?;
    let resumed = read(&hub, &ca, Err(checkpoint), 60).await?;
    let bodies: Vec<&str> = resumed.iter().map(|(b, _)| b.as_str()).collect();
    let expected: Vec<String> = (20..80).map(|i| format!("e{i}")).collect();
    assert_eq!(
        bodies, expected,
        "every event after the checkpoint, once, in order"
    );
    second.disconnect().await;
    let Running { mut child, .. } = hub;
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
