//! Simulated devices against the in-process local hub, with `iothub-registry` and
//! `iothub-c2d` as the service side.

use std::time::Duration;

use iothub_c2d::{Ack, C2dClient, Message};
use iothub_device_sim::{
    Auth, DeviceConfig, DeviceOptions, Error, Fleet, FleetOptions, MethodResponder,
    SimulatedDevice, Telemetry, Transport,
};
use iothub_emulator::Emulator;
use iothub_registry::{CloudToDeviceMethod, DeviceStatus, RegistryManager, TwinPatch};
use serde_json::json;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const WAIT: Duration = Duration::from_secs(10);

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Hub {
    emu: Emulator,
    rm: RegistryManager,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .amqps_port(0)
        .mqtts_port(0)
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

impl Hub {
    /// The configuration of a device over `transport`, without creating it.
    fn config(&self, id: &str, transport: Transport) -> DeviceConfig {
        let config = DeviceConfig::new(self.emu.host_name(), id, KEY)
            .with_transport(transport)
            .with_ca_pem(self.emu.ca_pem());
        match transport {
            Transport::Mqtt => config.with_port(self.emu.mqtts_port()),
            // The host name's port is the HTTPS port, which serves MQTT over WebSockets.
            _ => config,
        }
    }

    async fn device(&self, id: &str, transport: Transport) -> DeviceConfig {
        self.rm
            .create_device_with_sas(id, KEY, OTHER_KEY, DeviceStatus::Enabled)
            .await
            .expect("create device");
        self.config(id, transport)
    }

    fn c2d(&self) -> C2dClient {
        C2dClient::builder()
            .connection_string(&self.emu.connection_string())
            .amqps_port(self.emu.amqps_port())
            .add_root_certificate_pem(self.emu.ca_pem())
            .build()
            .expect("C2D client")
    }

    /// Waits until the service side sees `check` hold for the twin of `id`.
    async fn twin_eventually(
        &self,
        id: &str,
        check: impl Fn(&iothub_registry::Twin) -> bool,
    ) -> Result<bool, iothub_registry::Error> {
        for _ in 0..100 {
            if check(&self.rm.get_twin(id).await?) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
    }
}

async fn round_trip(transport: Transport) -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-1", transport).await;
    let options = DeviceOptions::default()
        .with_follow_desired(true)
        .with_methods(MethodResponder::callback(|method, payload| {
            (201, json!({"ran": method, "with": payload}))
        }));
    let device = SimulatedDevice::connect(config, options).await?;
    assert!(device.is_connected());
    assert_eq!(device.connections(), 1);

    // Direct method round trip.
    let answer = hub
        .rm
        .invoke_device_method(
            "sim-1",
            CloudToDeviceMethod::new("reboot").payload(json!({"in": 3})),
        )
        .await?;
    assert_eq!(answer.status, Some(201));
    assert_eq!(
        answer.payload,
        Some(json!({"ran": "reboot", "with": {"in": 3}}))
    );

    // Reported properties, seen by the service and by the device.
    let version = device.report(json!({"firmware": "2.0"})).await?;
    assert!(version >= 2, "reported version {version}");
    let twin = hub.rm.get_twin("sim-1").await?;
    assert_eq!(twin.reported()["firmware"], "2.0");
    let own = device.get_twin().await?;
    assert_eq!(own["reported"]["firmware"], "2.0");
    assert_eq!(own["reported"]["$version"], json!(version));

    // A desired patch arrives with its version, and follow_desired reports it back.
    hub.rm
        .update_twin("sim-1", TwinPatch::new().desired(json!({"interval": 5}))?)
        .await?;
    let desired = device.next_desired(WAIT).await.ok_or("no desired patch")?;
    assert_eq!(desired["interval"], 5);
    assert!(desired["$version"].is_u64(), "{desired}");
    assert!(
        hub.twin_eventually("sim-1", |t| t.reported().get("interval") == Some(&json!(5)))
            .await?,
        "the desired value was reported back"
    );
    assert_eq!(device.get_twin().await?["desired"]["interval"], 5);

    // C2D from iothub-c2d, with its properties.
    let c2d = hub.c2d();
    c2d.send(
        "sim-1",
        Message::new(b"hello device".to_vec())
            .with_message_id("m-1")
            .with_correlation_id("c-1")
            .with_content_type("text/plain")
            .with_ack(Ack::Full)
            .with_property("color", "blue green"),
    )
    .await?;
    let message = device.next_c2d(WAIT).await.ok_or("no C2D message")?;
    assert_eq!(message.body, b"hello device");
    assert_eq!(message.message_id.as_deref(), Some("m-1"));
    assert_eq!(message.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(message.property("$.ct"), Some("text/plain"));
    assert_eq!(message.property("iothub-ack"), Some("full"));
    assert_eq!(message.property("color"), Some("blue green"));
    assert!(
        message
            .topic
            .starts_with("devices/sim-1/messages/devicebound/"),
        "{}",
        message.topic
    );
    c2d.close().await;

    // Telemetry is acknowledged and stored with its properties.
    device
        .send_telemetry(
            Telemetry::json(&json!({"temp": 20}))
                .with_message_id("t-1")
                .with_property("site", "a"),
        )
        .await?;
    let stored = hub.emu.telemetry().from_device("sim-1").await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body, br#"{"temp":20}"#);
    assert_eq!(stored[0].application_properties["site"], "a");
    assert_eq!(stored[0].system_properties["message-id"], "t-1");
    assert_eq!(
        stored[0].system_properties["content-type"],
        "application/json"
    );

    // A patch that breaks the twin rules is a typed error with the status.
    match device.report(json!({"bad key": 1})).await {
        Err(Error::Status { status: 400, .. }) => {}
        other => panic!("expected status 400, got {other:?}"),
    }
    device.disconnect().await;
    assert!(!device.is_connected());
    assert!(matches!(
        device.send_telemetry(Telemetry::new("late")).await,
        Err(Error::Disconnected)
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mqtt_methods_twins_c2d_and_telemetry() -> TestResult {
    round_trip(Transport::Mqtt).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_websockets_methods_twins_c2d_and_telemetry() -> TestResult {
    round_trip(Transport::MqttWebSockets).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_and_unknown_devices_are_refused() -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-r", Transport::Mqtt).await;
    let wrong = config.clone().with_auth(Auth::SharedAccessKey(
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=".into(),
    ));
    match SimulatedDevice::connect(wrong, DeviceOptions::default()).await {
        Err(Error::Refused(4 | 5)) => {}
        other => panic!("expected CONNACK 4 or 5, got {other:?}"),
    }
    let mut unknown = config.clone();
    unknown.device_id = "nobody".into();
    match SimulatedDevice::connect(unknown, DeviceOptions::default()).await {
        Err(Error::Refused(4 | 5)) => {}
        other => panic!("expected CONNACK 4 or 5, got {other:?}"),
    }
    // The secondary key works too, and a connection string with GatewayHostName sends the
    // socket there while the token names the hub.
    let cs = format!(
        "HostName={};DeviceId=sim-r;SharedAccessKey={OTHER_KEY};GatewayHostName=localhost:{}",
        hub.emu.host_name(),
        hub.emu.mqtts_port()
    );
    let config = DeviceConfig::from_connection_string(&cs)?.with_ca_pem(hub.emu.ca_pem());
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    device.send_telemetry(Telemetry::new("via gateway")).await?;
    device.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_answer_methods_and_send_telemetry() -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-m", Transport::Mqtt).await;
    hub.rm
        .create_module_with_sas("sim-m", "mod", None, KEY, OTHER_KEY)
        .await?;
    let module = SimulatedDevice::connect(
        config.with_module("mod"),
        DeviceOptions::default().with_methods(MethodResponder::Fixed {
            status: 299,
            payload: json!({"module": true}),
        }),
    )
    .await?;
    let answer = hub
        .rm
        .invoke_device_module_method("sim-m", "mod", CloudToDeviceMethod::new("ping"))
        .await?;
    assert_eq!(answer.status, Some(299));
    assert_eq!(answer.payload, Some(json!({"module": true})));
    module.report(json!({"role": "module"})).await?;
    let twin = hub.rm.get_module_twin("sim-m", "mod").await?;
    assert_eq!(twin.reported()["role"], "module");
    module
        .send_telemetry(Telemetry::new("from the module"))
        .await?;
    let stored = hub.emu.telemetry().from_device("sim-m").await?;
    assert_eq!(
        stored[0].system_properties["iothub-connection-module-id"],
        "mod"
    );
    module.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_c2d_is_delivered_again() -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-a", Transport::Mqtt).await;
    let c2d = hub.c2d();
    c2d.send(
        "sim-a",
        Message::new(b"once".to_vec()).with_message_id("a-1"),
    )
    .await?;
    let options = DeviceOptions::default().with_ack_c2d(false);
    let device = SimulatedDevice::connect(config.clone(), options.clone()).await?;
    let first = device.next_c2d(WAIT).await.ok_or("no C2D message")?;
    assert_eq!(first.message_id.as_deref(), Some("a-1"));
    // Disconnect before acknowledging: the hub delivers it again.
    device.disconnect().await;
    let device = SimulatedDevice::connect(config.clone(), options).await?;
    let again = device.next_c2d(WAIT).await.ok_or("not delivered again")?;
    assert_eq!(again.message_id.as_deref(), Some("a-1"));
    // A message of an earlier connection of this device can no longer be acknowledged.
    device.reconnect();
    let third = device
        .next_c2d(WAIT)
        .await
        .ok_or("not delivered a third time")?;
    assert_eq!(third.message_id.as_deref(), Some("a-1"));
    assert_eq!(device.connections(), 2);
    assert!(matches!(
        device.complete(&again).await,
        Err(Error::ConnectionLost)
    ));
    device.complete(&third).await?;
    device.disconnect().await;
    // Completed: a fresh connection gets nothing.
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    assert!(device.next_c2d(Duration::from_secs(2)).await.is_none());
    device.disconnect().await;
    c2d.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_by_reconnecting_before_they_expire() -> TestResult {
    let hub = hub().await;
    let config = hub
        .device("sim-t", Transport::Mqtt)
        .await
        .with_token_lifetime(Duration::from_secs(3));
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(device.connections() >= 2, "reconnected with a new token");
    assert!(device.wait_connected(WAIT).await);
    hub.rm
        .send_c2d_message("sim-t", "after renewal", Vec::<(String, String)>::new())
        .await?;
    let message = device.next_c2d(WAIT).await.ok_or("no C2D after renewal")?;
    assert_eq!(message.body, b"after renewal");
    let answer = hub
        .rm
        .invoke_device_method("sim-t", CloudToDeviceMethod::new("still-there"))
        .await?;
    assert_eq!(answer.status, Some(200));
    device.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_survives_a_dropped_connection() -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-d", Transport::Mqtt).await;
    let device =
        std::sync::Arc::new(SimulatedDevice::connect(config, DeviceOptions::default()).await?);
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let device = std::sync::Arc::clone(&device);
            tokio::spawn(async move {
                device
                    .send_telemetry(Telemetry::new(format!("m{i}")).with_message_id(format!("{i}")))
                    .await
            })
        })
        .collect();
    device.reconnect();
    for send in sends {
        send.await??;
    }
    assert!(device.wait_connected(WAIT).await);
    assert!(device.connections() >= 2);
    let stored = hub.emu.telemetry().from_device("sim-d").await?;
    let mut ids: Vec<String> = stored
        .iter()
        .filter_map(|m| {
            m.system_properties["message-id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every message stored at least once");
    device.disconnect().await;
    Ok(())
}

/// A self-signed certificate and key for `cn`, and the SHA-256 thumbprint (hex).
fn self_signed(cn: &str) -> (String, String, String) {
    use sha2::Digest as _;
    let key = rcgen::KeyPair::generate().expect("key pair");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("certificate");
    let thumbprint = sha2::Sha256::digest(cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    (cert.pem(), key.serialize_pem(), thumbprint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_devices_connect_with_their_certificate() -> TestResult {
    let hub = hub().await;
    let (cert_pem, key_pem, thumbprint) = self_signed("sim-x");
    hub.rm
        .create_device_with_x509(
            "sim-x",
            thumbprint.clone(),
            thumbprint,
            DeviceStatus::Enabled,
        )
        .await?;
    let config = hub.config("sim-x", Transport::Mqtt).with_auth(Auth::X509 {
        cert_pem,
        key_pem: key_pem.clone(),
    });
    assert!(!format!("{config:?}").contains(&key_pem));
    let device = SimulatedDevice::connect(config.clone(), DeviceOptions::default()).await?;
    device.send_telemetry(Telemetry::new("certified")).await?;
    device.disconnect().await;

    let (other_cert, other_key, _) = self_signed("sim-x");
    let stranger = config.with_auth(Auth::X509 {
        cert_pem: other_cert,
        key_pem: other_key,
    });
    match SimulatedDevice::connect(stranger, DeviceOptions::default()).await {
        Err(Error::Refused(4 | 5)) => {}
        other => panic!("expected CONNACK 4 or 5, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_connects_and_survives_a_reconnect_storm() -> TestResult {
    const N: usize = 20;
    let hub = hub().await;
    for i in 0..N {
        hub.device(&format!("fleet-{i}"), Transport::Mqtt).await;
    }
    let fleet = Fleet::start_with(
        N,
        |i| hub.config(&format!("fleet-{i}"), Transport::Mqtt),
        FleetOptions::default().with_concurrency(8),
    )
    .await;
    assert!(fleet.failures().is_empty(), "{:?}", fleet.failures());
    assert_eq!(fleet.devices().len(), N);
    assert_eq!(fleet.connected(), N);
    fleet.reconnect_all();
    assert_eq!(fleet.wait_reconnected(1, Duration::from_secs(30)).await, N);
    assert_eq!(fleet.connected(), N);
    assert!(fleet.devices().iter().all(|d| d.connections() == 2));
    let answer = hub
        .rm
        .invoke_device_method("fleet-7", CloudToDeviceMethod::new("after-storm"))
        .await?;
    assert_eq!(answer.status, Some(200));
    fleet.devices()[3]
        .send_telemetry(Telemetry::new("after the storm"))
        .await?;
    fleet.shutdown().await;

    // A fleet with one bad identity connects the others and reports the failure.
    let fleet = Fleet::start(
        vec![
            hub.config("fleet-0", Transport::Mqtt),
            hub.config("nobody", Transport::Mqtt),
        ],
        FleetOptions::default(),
    )
    .await;
    assert_eq!(fleet.devices().len(), 1);
    assert!(matches!(
        fleet.failures(),
        [(id, Error::Refused(4 | 5))] if id == "nobody"
    ));
    fleet.shutdown().await;
    Ok(())
}
