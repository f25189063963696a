//! The reader against the in-process local hub: simulated devices (real MQTT clients) send
//! telemetry, `EventReader` reads it back through the IoT Hub connection string (redirect)
//! or the Event Hubs-compatible connection string.

use std::time::Duration;

use futures::StreamExt;
use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice, Telemetry, Transport};
use iothub_emulator::Emulator;
use iothub_events::{Checkpoint, DeviceEvent, EventPosition, EventReader, EventReaderBuilder};
use iothub_registry::{DeviceStatus, RegistryManager};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const WAIT: Duration = Duration::from_secs(15);

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Hub {
    emu: Emulator,
    rm: RegistryManager,
    _dir: tempfile::TempDir,
}

async fn hub_with(builder: iothub_emulator::EmulatorBuilder) -> Hub {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = builder
        .data_dir(dir.path())
        .start()
        .await
        .expect("start the local hub");
    let rm = RegistryManager::builder()
        .connection_string(&emu.connection_string())
        .add_root_certificate_pem(emu.ca_pem())
        .amqps_port(emu.amqps_port())
        .build()
        .expect("registry manager");
    Hub { emu, rm, _dir: dir }
}

async fn hub() -> Hub {
    hub_with(Emulator::builder()).await
}

impl Hub {
    async fn device(&self, id: &str) -> SimulatedDevice {
        self.rm
            .create_device_with_sas(id, KEY, OTHER_KEY, DeviceStatus::Enabled)
            .await
            .expect("create device");
        let config = DeviceConfig::new(self.emu.host_name(), id, KEY)
            .with_transport(Transport::Mqtt)
            .with_ca_pem(self.emu.ca_pem())
            .with_port(self.emu.mqtts_port());
        SimulatedDevice::connect(config, DeviceOptions::default())
            .await
            .expect("device connects")
    }

    /// A reader through the IoT Hub connection string of `policy`.
    fn reader(&self, policy: &str) -> EventReaderBuilder {
        EventReader::builder()
            .connection_string(
                &self
                    .emu
                    .policy_connection_string(policy)
                    .expect("policy exists"),
            )
            .amqps_port(self.emu.amqps_port())
            .add_root_certificate_pem(self.emu.ca_pem())
    }

    /// The partition a device's telemetry goes to, as the reader names it.
    fn partition_of(&self, device: &str) -> String {
        self.emu.telemetry().partition_of(device).to_string()
    }
}

/// Reads `n` events (or fails after `WAIT`).
async fn take(stream: &mut iothub_events::EventStream, n: usize) -> Vec<DeviceEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(event))) => out.push(event),
            Ok(Some(Err(e))) => panic!("reader failed after {} events: {e}", out.len()),
            Ok(None) => panic!("stream ended after {} events", out.len()),
            Err(_) => panic!("only {} of {n} events arrived", out.len()),
        }
    }
    out
}

async fn send(device: &SimulatedDevice, n: usize, tag: &str) {
    for i in 0..n {
        device
            .send_telemetry(
                Telemetry::json(&serde_json::json!({ "i": i, "tag": tag }))
                    .with_message_id(format!("{tag}-{i}"))
                    .with_property("tag", tag),
            )
            .await
            .expect("telemetry acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_read_through_the_iot_hub_connection_string() -> TestResult {
    let hub = hub().await;
    let device = hub.device("reader-1").await;
    send(&device, 20, "a").await;

    let reader = hub.reader("service").build()?;
    let endpoint = reader.endpoint().await?;
    assert_eq!(endpoint.host, "localhost");
    assert_eq!(endpoint.port, hub.emu.amqps_port());
    assert_eq!(endpoint.entity, hub.emu.eventhub_name());
    assert_eq!(reader.partition_ids().await?, ["0", "1", "2", "3"]);

    let partition = hub.partition_of("reader-1");
    let props = reader.partition_properties(&partition).await?;
    assert_eq!(props.begin_sequence_number, 0);
    assert_eq!(props.last_enqueued_sequence_number, 19);
    assert!(!props.is_empty);
    let other = (0..4)
        .map(|p| p.to_string())
        .find(|p| *p != partition)
        .unwrap_or_default();
    assert!(reader.partition_properties(&other).await?.is_empty);
    let missing = reader
        .partition_properties("9")
        .await
        .expect_err("no partition 9");
    assert!(missing.is_not_found(), "{missing}");

    let mut stream = reader.stream();
    let events = take(&mut stream, 20).await;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.device_id.as_deref(), Some("reader-1"));
        assert_eq!(event.module_id, None);
        assert_eq!(event.partition, partition);
        assert_eq!(event.sequence_number, i64::try_from(i)?);
        assert_eq!(event.message_id.as_deref(), Some(format!("a-{i}").as_str()));
        assert_eq!(event.properties["tag"], "a");
        assert_eq!(event.content_type.as_deref(), Some("application/json"));
        assert_eq!(event.message_source(), Some("Telemetry"));
        assert!(event.system_properties.contains_key("iothub-enqueuedtime"));
        assert!(event.system_properties["iothub-connection-auth-method"].contains("sas"));
        let body: serde_json::Value = serde_json::from_slice(&event.body)?;
        assert_eq!(body["i"], i);
    }
    // Offsets grow with sequence numbers; enqueued times are now-ish.
    assert!(events.windows(2).all(|w| w[0].offset < w[1].offset));
    assert!((chrono::Utc::now() - events[0].enqueued_time).num_seconds() < 60);

    // Live events arrive on the open stream.
    send(&device, 3, "live").await;
    let live = take(&mut stream, 3).await;
    assert_eq!(live[2].message_id.as_deref(), Some("live-2"));
    assert_eq!(live[2].sequence_number, 22);
    Ok(())
}

/// Over WebSockets on the HTTPS port: the redirect is asked at `/$iothub/websocket`, the
/// Event Hubs-compatible endpoint is read at `/$servicebus/websocket`. Both connection
/// strings read the same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_read_over_websockets() -> TestResult {
    let hub = hub().await;
    let device = hub.device("reader-ws").await;
    send(&device, 5, "ws").await;
    let partition = hub.partition_of("reader-ws");
    let over_websockets = |builder: EventReaderBuilder| {
        builder
            .transport(iothub_events::Transport::AmqpWebSockets)
            .https_port(hub.emu.https_port())
            // Nothing listens here: reading over TLS would fail.
            .amqps_port(1)
            .partitions([partition.clone()])
    };
    let redirected = over_websockets(hub.reader("service")).build()?;
    let endpoint = redirected.endpoint().await?;
    assert_eq!(endpoint.entity, hub.emu.hub_name());
    let direct = over_websockets(
        EventReader::builder()
            .eventhub_connection_string(&hub.emu.eventhub_connection_string())
            .add_root_certificate_pem(hub.emu.ca_pem()),
    )
    .build()?;
    for reader in [redirected, direct] {
        let mut stream = reader.stream();
        let events = take(&mut stream, 5).await;
        let ids: Vec<Option<&str>> = events.iter().map(|e| e.message_id.as_deref()).collect();
        assert_eq!(
            ids,
            ["ws-0", "ws-1", "ws-2", "ws-3", "ws-4"].map(Some),
            "in order, over WebSockets"
        );
        assert_eq!(events[0].device_id.as_deref(), Some("reader-ws"));
        assert!(!reader.partition_ids().await?.is_empty());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_positions_checkpoints_and_the_eventhub_connection_string() -> TestResult {
    let hub = hub().await;
    let device = hub.device("reader-2").await;
    send(&device, 10, "b").await;
    let partition = hub.partition_of("reader-2");
    let eh = hub.emu.eventhub_connection_string();
    assert!(eh.starts_with("Endpoint=sb://localhost:"), "{eh}");
    assert!(eh.contains(";SharedAccessKeyName=service;"));
    assert!(eh.ends_with(&format!(";EntityPath={}", hub.emu.eventhub_name())));
    let written = std::fs::read_to_string(
        hub._dir
            .path()
            .join(iothub_emulator::EVENTHUB_CONNECTION_STRING_FILE),
    )?;
    assert_eq!(written.trim(), eh);

    let direct = || {
        EventReader::builder()
            .eventhub_connection_string(&eh)
            .add_root_certificate_pem(hub.emu.ca_pem())
            .partitions([partition.clone()])
    };
    // Resume after a checkpoint: exactly the events after it.
    let mut resumed = direct()
        .start_after([Checkpoint {
            partition: partition.clone(),
            sequence_number: 6,
        }])
        .build()?
        .stream();
    let after = take(&mut resumed, 3).await;
    assert_eq!(
        after.iter().map(|e| e.sequence_number).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    // A checkpoint past the end is refused rather than skipping the numbers in between.
    let mut ahead = direct()
        .start_after([Checkpoint {
            partition: partition.clone(),
            sequence_number: 50,
        }])
        .build()?
        .stream();
    let refused = tokio::time::timeout(WAIT, ahead.next())
        .await?
        .expect("an item")
        .expect_err("out of range");
    assert!(
        refused.to_string().contains("argument-out-of-range"),
        "{refused}"
    );
    // By offset, inclusive.
    let offset_of_5 = {
        let mut all = direct().build()?.stream();
        take(&mut all, 10).await[5].offset
    };
    let mut by_offset = direct()
        .start(EventPosition::Offset {
            offset: offset_of_5,
            inclusive: true,
        })
        .build()?
        .stream();
    assert_eq!(take(&mut by_offset, 1).await[0].sequence_number, 5);
    // Latest: only what comes after the reader attached.
    let mut latest = direct().start(EventPosition::Latest).build()?.stream();
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&device, 1, "new").await;
    let next = take(&mut latest, 1).await;
    assert_eq!(next[0].message_id.as_deref(), Some("new-0"));
    assert_eq!(next[0].sequence_number, 10);
    // By enqueued time: nothing before now, the new one after.
    let mut by_time = direct()
        .start(EventPosition::EnqueuedAfter(
            chrono::Utc::now() - chrono::Duration::hours(1),
        ))
        .build()?
        .stream();
    assert_eq!(take(&mut by_time, 11).await[10].sequence_number, 10);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_epochs_and_refusals() -> TestResult {
    let hub = hub_with(Emulator::builder().consumer_group("analytics")).await;
    let device = hub.device("reader-3").await;
    send(&device, 5, "c").await;
    let partition = hub.partition_of("reader-3");

    // Two consumer groups each read everything.
    let mut default = hub
        .reader("iothubowner")
        .partitions([partition.clone()])
        .build()?
        .stream();
    let mut analytics = hub
        .reader("service")
        .consumer_group("analytics")
        .partitions([partition.clone()])
        .build()?
        .stream();
    assert_eq!(take(&mut default, 5).await.len(), 5);
    assert_eq!(take(&mut analytics, 5).await.len(), 5);

    // An unknown consumer group is refused with amqp:not-found.
    let mut unknown = hub
        .reader("service")
        .consumer_group("nope")
        .partitions([partition.clone()])
        .build()?
        .stream();
    let error = tokio::time::timeout(WAIT, unknown.next())
        .await?
        .expect("an error")
        .expect_err("refused");
    assert!(error.is_not_found(), "{error}");

    // Partition ids are as the endpoint lists them: "01" is not partition 1.
    let mut alias = hub
        .reader("service")
        .partitions([format!("0{partition}")])
        .build()?
        .stream();
    let error = tokio::time::timeout(WAIT, alias.next())
        .await?
        .expect("an error")
        .expect_err("refused");
    assert!(error.is_not_found(), "{error}");

    // An owner-level reader takes the partition over; the plain reader is told so.
    let mut owner = hub
        .reader("service")
        .owner_level(7)
        .partitions([partition.clone()])
        .build()?
        .stream();
    assert_eq!(take(&mut owner, 5).await.len(), 5);
    let stolen = tokio::time::timeout(WAIT, async {
        loop {
            match default.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return e,
                None => panic!("stream ended without an error"),
            }
        }
    })
    .await?;
    assert!(stolen.is_stolen(), "{stolen}");
    // A lower epoch is refused while the owner reads.
    let mut lower = hub
        .reader("service")
        .owner_level(3)
        .partitions([partition.clone()])
        .build()?
        .stream();
    let refused = tokio::time::timeout(WAIT, lower.next())
        .await?
        .expect("an error")
        .expect_err("refused");
    assert!(refused.is_stolen(), "{refused}");
    // The owner still reads live events.
    send(&device, 1, "owner").await;
    assert_eq!(
        take(&mut owner, 1).await[0].message_id.as_deref(),
        Some("owner-0")
    );

    // A policy without service connect cannot read.
    let denied = hub
        .reader("registryRead")
        .build()?
        .endpoint()
        .await
        .expect_err("registryRead has no service connect");
    assert!(denied.is_unauthorized(), "{denied}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resumes_across_a_hub_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let start = |port: u16| {
        Emulator::builder()
            .data_dir(dir.path())
            .amqps_port(port)
            .start()
    };
    let emu = start(0).await?;
    let amqps_port = emu.amqps_port();
    let rm = RegistryManager::builder()
        .connection_string(&emu.connection_string())
        .add_root_certificate_pem(emu.ca_pem())
        .build()?;
    rm.create_device_with_sas("reader-4", KEY, OTHER_KEY, DeviceStatus::Enabled)
        .await?;
    let config = DeviceConfig::new(emu.host_name(), "reader-4", KEY)
        .with_transport(Transport::Mqtt)
        .with_ca_pem(emu.ca_pem())
        .with_port(emu.mqtts_port());
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    send(&device, 5, "before").await;
    let partition = emu.telemetry().partition_of("reader-4").to_string();
    let eh = emu.eventhub_connection_string();
    let reader = EventReader::builder()
        .eventhub_connection_string(&eh)
        .add_root_certificate_pem(emu.ca_pem())
        .partitions([partition.clone()])
        .retry(iothub_c2d::RetryPolicy::new(30))
        .build()?;
    let mut stream = reader.stream();
    let first = take(&mut stream, 5).await;
    assert_eq!(first[4].sequence_number, 4);
    let properties = reader.eventhub_properties().await?;
    assert_eq!(properties.partition_ids, ["0", "1", "2", "3"]);
    assert_eq!(properties.name, emu.hub_name());
    let created = properties.created_at.ok_or("no created_at")?;

    // The hub stops and comes back on the same ports; the stream reconnects and goes on
    // right after the last event it yielded.
    device.disconnect().await;
    let https = emu.https_port();
    let mqtts = emu.mqtts_port();
    emu.shutdown().await?;
    let emu = Emulator::builder()
        .data_dir(dir.path())
        .https_port(https)
        .amqps_port(amqps_port)
        .mqtts_port(mqtts)
        .start()
        .await?;
    let config = DeviceConfig::new(emu.host_name(), "reader-4", KEY)
        .with_transport(Transport::Mqtt)
        .with_ca_pem(emu.ca_pem())
        .with_port(emu.mqtts_port());
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    send(&device, 3, "after").await;
    let next = take(&mut stream, 3).await;
    assert_eq!(
        next.iter().map(|e| e.sequence_number).collect::<Vec<_>>(),
        [5, 6, 7],
        "every event exactly once after the restart"
    );
    assert_eq!(next[0].message_id.as_deref(), Some("after-0"));
    assert_eq!(
        reader.eventhub_properties().await?.created_at,
        Some(created),
        "the entity keeps its created_at across a restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_event_messages_reach_the_built_in_endpoint() -> TestResult {
    let mut builder = Emulator::builder();
    for source in iothub_emulator::EventSource::ALL {
        builder = builder.route_events(source);
    }
    let hub = hub_with(builder).await;
    // Connection states are recorded shortly after they change: wait for each, so the
    // order of the events is the order of the steps.
    let state_is = |wanted: &'static str| {
        let rm = hub.rm.clone();
        async move {
            for _ in 0..100 {
                let device = rm.get_device("events-1").await.expect("device");
                if device.connection_state.as_deref() == Some(wanted) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("events-1 never became {wanted}");
        }
    };
    let device = hub.device("events-1").await;
    state_is("Connected").await;
    hub.rm
        .create_module_with_sas("events-1", "m1", None, KEY, OTHER_KEY)
        .await?;
    let patch = iothub_registry::TwinPatch::new()
        .desired(serde_json::json!({"fan": "on"}))?
        .tags(serde_json::json!({"site": "a"}))?;
    hub.rm.update_twin("events-1", &patch).await?;
    device.disconnect().await;
    state_is("Disconnected").await;
    hub.rm.delete_device("events-1").await?;

    let reader = hub
        .reader("service")
        .partitions([hub.partition_of("events-1")])
        .build()?;
    let mut stream = reader.stream();
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let event = take(&mut stream, 1).await.remove(0);
        if event.device_id.as_deref() == Some("events-1") {
            seen.push(event);
        }
    }
    let ops: Vec<(&str, &str)> = seen
        .iter()
        .map(|e| {
            (
                e.message_source().unwrap_or_default(),
                e.properties
                    .get("opType")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("deviceLifecycleEvents", "createDeviceIdentity"),
            ("deviceConnectionStateEvents", "deviceConnected"),
            ("deviceLifecycleEvents", "createModuleIdentity"),
            ("twinChangeEvents", "updateTwin"),
            ("deviceConnectionStateEvents", "deviceDisconnected"),
            ("deviceLifecycleEvents", "deleteDeviceIdentity"),
        ]
    );
    let created = &seen[0];
    assert_eq!(created.properties["hubName"], hub.emu.hub_name());
    assert_eq!(created.properties["deviceId"], "events-1");
    assert_eq!(
        created.properties["iothub-message-schema"],
        "deviceLifecycleNotification"
    );
    assert!(created.properties.contains_key("operationTimestamp"));
    assert_eq!(created.content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&created.body)?;
    assert_eq!(body["deviceId"], "events-1");
    let module = &seen[2];
    assert_eq!(module.module_id.as_deref(), Some("m1"));
    assert_eq!(module.properties["moduleId"], "m1");
    let twin_change: serde_json::Value = serde_json::from_slice(&seen[3].body)?;
    assert_eq!(twin_change["properties"]["desired"]["fan"], "on");
    assert_eq!(twin_change["tags"]["site"], "a");
    assert!(twin_change["version"].as_u64().is_some_and(|v| v >= 2));
    let connected: serde_json::Value = serde_json::from_slice(&seen[1].body)?;
    let disconnected: serde_json::Value = serde_json::from_slice(&seen[4].body)?;
    assert!(
        connected["sequenceNumber"].as_str() < disconnected["sequenceNumber"].as_str(),
        "{connected} {disconnected}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_partitions_than_the_stored_telemetry_needs_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let emu = Emulator::builder().data_dir(dir.path()).start().await?;
    let rm = RegistryManager::builder()
        .connection_string(&emu.connection_string())
        .add_root_certificate_pem(emu.ca_pem())
        .build()?;
    let id = (0..)
        .map(|i| format!("p3-{i}"))
        .find(|id| emu.telemetry().partition_of(id) == 3)
        .unwrap_or_default();
    rm.create_device_with_sas(&id, KEY, OTHER_KEY, DeviceStatus::Enabled)
        .await?;
    let config = DeviceConfig::new(emu.host_name(), &id, KEY)
        .with_transport(Transport::Mqtt)
        .with_ca_pem(emu.ca_pem())
        .with_port(emu.mqtts_port());
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    send(&device, 1, "p3").await;
    device.disconnect().await;
    emu.shutdown().await?;
    let error = Emulator::builder()
        .data_dir(dir.path())
        .partitions(2)
        .start()
        .await
        .expect_err("partition 3 holds telemetry");
    assert!(error.to_string().contains("partition 3"), "{error}");
    // The same count still starts.
    Emulator::builder()
        .data_dir(dir.path())
        .start()
        .await?
        .shutdown()
        .await?;
    Ok(())
}
