//! Quickstart: the main registry operations, end to end.
//!
//! ```sh
//! cargo run -p iothub-registry --example quickstart
//! ```
//!
//! Without `IOTHUB_CONNECTION_STRING` it starts an embedded local IoT Hub (the
//! `iothub-emulator` crate) in a temporary directory and works against it; with a real
//! hub's service connection string (policy `iothubowner`: the quickstart needs registry write and
//! service connect) it works against that hub instead, creating and then deleting devices named `quickstart-*`.

use futures::TryStreamExt as _;
use iothub_device_sim::{DeviceConfig, DeviceOptions, MethodResponder, SimulatedDevice};
use iothub_registry::{
    AuthenticationMechanism, CloudToDeviceMethod, DeviceStatus, ETag, ExportImportDevice,
    ImportMode, RegistryManager, Twin, TwinPatch,
};
use serde_json::json;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    // Connect: to a real hub when asked, else to an embedded emulator.
    let mut embedded = None;
    let rm = match std::env::var("IOTHUB_CONNECTION_STRING") {
        Ok(cs) => {
            println!("using the hub from IOTHUB_CONNECTION_STRING");
            RegistryManager::from_connection_string(&cs)?
        }
        Err(_) => {
            let dir = tempfile::tempdir()?;
            let emulator = iothub_emulator::Emulator::builder()
                .data_dir(dir.path())
                .https_port(0)
                .amqps_port(0)
                .mqtts_port(0)
                .start()
                .await?;
            println!(
                "started an embedded local IoT Hub on https://{}",
                emulator.host_name()
            );
            let rm = RegistryManager::builder()
                .connection_string(&emulator.connection_string())
                .add_root_certificate_pem(emulator.ca_pem())
                .amqps_port(emulator.amqps_port())
                .build()?;
            embedded = Some((emulator, dir));
            rm
        }
    };

    // Devices: create with generated SAS keys, read back, update with the ETag.
    let device = rm
        .create_device_with_sas("quickstart-1", "", "", DeviceStatus::Enabled)
        .await?;
    println!(
        "created {} (etag {}, auth {:?})",
        device.device_id,
        device.etag,
        device.authentication.as_ref().and_then(|a| a.auth_type)
    );
    let device = rm
        .update_device_with_sas("quickstart-1", &device.etag, "", "", DeviceStatus::Disabled)
        .status_reason("maintenance")
        .await?;
    println!("disabled {}: {:?}", device.device_id, device.status_reason);
    match rm
        .update_device_with_sas(
            "quickstart-1",
            ETag::new("stale-etag"),
            "",
            "",
            DeviceStatus::Enabled,
        )
        .await
    {
        Err(e) if e.is_precondition_failed() => println!("stale etag refused: {e}"),
        other => return Err(format!("expected 412, got {other:?}").into()),
    }

    // Twins: patch tags and desired properties (from JSON or your own Serialize types);
    // nested JSON is kept as is. Only the version we read is patched.
    #[derive(serde::Serialize)]
    struct Telemetry {
        #[serde(rename = "telemetryInterval")]
        interval_s: u32,
    }
    let twin = rm.get_twin("quickstart-1").await?;
    let patch = TwinPatch::new()
        .tags(json!({"site": {"building": 4, "floor": 2}}))?
        .desired(Telemetry { interval_s: 30 })?;
    let twin = rm
        .update_twin("quickstart-1", patch)
        .etag(&twin.etag)
        .await?;
    println!(
        "twin tags now {}",
        serde_json::Value::Object(twin.tags.clone())
    );

    // Bulk: 250 devices, split into requests of 100, with progress.
    let entries: Vec<ExportImportDevice> = (0..250)
        .map(|i| ExportImportDevice {
            id: format!("quickstart-bulk-{i:03}"),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(AuthenticationMechanism::sas("", "")),
            tags: json!({"fleet": if i % 2 == 0 { "even" } else { "odd" }})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    let result = rm
        .bulk_create_or_update_devices_chunked(entries)
        .on_progress(|p| {
            println!(
                "bulk progress: {}/{} ({} failed)",
                p.done, p.total, p.failed
            )
        })
        .send()
        .await?;
    println!(
        "bulk: successful={} in {} requests",
        result.is_successful(),
        result.requests
    );

    // Query: a stream that follows continuation tokens, and an aggregate decoded into our
    // own type.
    let even: Vec<Twin> = rm
        .query_iot_hub("SELECT * FROM devices WHERE tags.fleet = 'even'")
        .page_size(50)
        .into_stream()
        .try_collect()
        .await?;
    println!("query: {} devices in the even fleet", even.len());
    #[derive(serde::Deserialize)]
    struct PerFleet {
        fleet: Option<String>,
        n: u64,
    }
    let per_fleet: Vec<PerFleet> = rm
        .query_as("SELECT tags.fleet, COUNT() AS n FROM devices GROUP BY tags.fleet")
        .into_stream()
        .try_collect()
        .await?;
    for row in &per_fleet {
        let fleet = row.fleet.as_deref().unwrap_or("(none)");
        println!("query: {} devices in fleet {fleet}", row.n);
    }

    // Statistics and direct methods.
    let stats = rm.get_device_registry_statistics().await?;
    println!(
        "registry: {} devices ({} enabled, {} disabled)",
        stats.total_device_count, stats.enabled_device_count, stats.disabled_device_count
    );
    let method = CloudToDeviceMethod::new("reboot");
    match rm.invoke_device_method("quickstart-1", &method).await {
        Ok(result) => println!("method answered {:?}", result.status),
        Err(e) if e.is_device_not_online() => println!("direct method to a disabled device: {e}"),
        Err(e) => return Err(e.into()),
    }
    // On the embedded hub, a simulated device (a real MQTT client) connects and answers.
    let simulated = match &embedded {
        Some((emulator, _)) => {
            let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
            rm.create_device_with_sas("quickstart-sensor", key, key, DeviceStatus::Enabled)
                .await?;
            let config = DeviceConfig::new(emulator.host_name(), "quickstart-sensor", key)
                .with_port(emulator.mqtts_port())
                .with_ca_pem(emulator.ca_pem());
            let options = DeviceOptions {
                methods: MethodResponder::callback(|name, _| {
                    (200, serde_json::json!({"done": name}))
                }),
                ..DeviceOptions::default()
            };
            let device = SimulatedDevice::connect(config, options).await?;
            let answer = rm
                .invoke_device_method("quickstart-sensor", CloudToDeviceMethod::new("reboot"))
                .await?;
            println!(
                "direct method 'reboot' to the simulated device: status {}, payload {}",
                answer.status.unwrap_or_default(),
                answer.payload.unwrap_or_default()
            );
            rm.send_c2d_message("quickstart-sensor", "blink", [("ack", "full")])
                .await?;
            if let Some(m) = device.next_c2d(std::time::Duration::from_secs(10)).await {
                println!(
                    "the simulated device received a cloud-to-device message: {}",
                    String::from_utf8_lossy(&m.body)
                );
            }
            Some(device)
        }
        None => None,
    };

    // Cloud-to-device messages over AMQP: system properties as in Python's send_c2d_message.
    rm.send_c2d_message(
        "quickstart-1",
        r#"{"command":"blink"}"#,
        [
            ("contentType", "application/json"),
            ("ack", "full"),
            ("priority", "high"),
        ],
    )
    .await?;
    let queued = rm.get_device("quickstart-1").await?;
    println!(
        "cloud-to-device message queued ({} waiting for the device)",
        queued.cloud_to_device_message_count.unwrap_or(0)
    );
    match rm
        .send_c2d_message("no-such-device", "hello", Vec::<(String, String)>::new())
        .await
    {
        Err(e) if e.is_not_found() => println!("c2d to a missing device refused: {e}"),
        other => return Err(format!("expected DeviceNotFound, got {other:?}").into()),
    }

    // Clean up.
    let deletes: Vec<ExportImportDevice> = (0..250)
        .map(|i| ExportImportDevice {
            id: format!("quickstart-bulk-{i:03}"),
            import_mode: Some(ImportMode::Delete),
            ..Default::default()
        })
        .collect();
    let deleted = rm
        .bulk_create_or_update_devices_chunked(deletes)
        .send()
        .await?;
    rm.delete_device("quickstart-1").await?;
    println!(
        "cleaned up (bulk delete successful={})",
        deleted.is_successful()
    );

    if let Some(device) = simulated {
        device.disconnect().await;
        rm.delete_device("quickstart-sensor").await?;
    }
    if let Some((emulator, _dir)) = embedded {
        emulator.shutdown().await?;
    }
    Ok(())
}
