//! Simulated devices against the local hub, with `iothub-registry` as the service.

use std::time::Duration;

use iothub_device_sim::{
    DeviceConfig, DeviceOptions, Error, Fleet, FleetOptions, MethodResponder, SimulatedDevice,
    Telemetry, Transport,
};
use iothub_emulator::Emulator;
use iothub_registry::{CloudToDeviceMethod, DeviceStatus, RegistryManager, TwinPatch};
use serde_json::json;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const WAIT: Duration = Duration::from_secs(10);

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Hub {
    emu: Emulator,
    rm: RegistryManager,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::builder()
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

impl Hub {
    async fn device(&self, id: &str, transport: Transport) -> DeviceConfig {
        self.rm
            .create_device_with_sas(id, KEY, KEY, DeviceStatus::Enabled)
            .await
            .expect("create device");
        let port = match transport {
            Transport::Mqtt => self.emu.mqtts_port(),
            Transport::MqttWebSockets => self.emu.https_port(),
        };
        DeviceConfig::new(self.emu.host_name(), id, KEY)
            .with_transport(transport)
            .with_port(port)
            .with_ca_pem(self.emu.ca_pem())
    }
}

async fn round_trip(transport: Transport) -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-1", transport).await;
    let options = DeviceOptions {
        methods: MethodResponder::callback(|method, payload| {
            (201, json!({"ran": method, "with": payload}))
        }),
        follow_desired: true,
        ..DeviceOptions::default()
    };
    let device = SimulatedDevice::connect(config, options).await?;

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

    let version = device.report(json!({"firmware": "2.0"})).await?;
    assert!(version >= 2);
    let twin = hub.rm.get_twin("sim-1").await?;
    assert_eq!(twin.reported()["firmware"], "2.0");

    hub.rm
        .update_twin("sim-1", &TwinPatch::new().desired(json!({"interval": 5}))?)
        .await?;
    let desired = device.next_desired(WAIT).await.ok_or("no desired patch")?;
    assert_eq!(desired["interval"], 5);
    // follow_desired reports it back.
    let mut followed = false;
    for _ in 0..50 {
        if hub.rm.get_twin("sim-1").await?.reported()["interval"] == 5 {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(followed, "the desired value was reported back");
    let twin = device.get_twin().await?;
    assert_eq!(twin["desired"]["interval"], 5);

    hub.rm
        .send_c2d_message("sim-1", "hello device", [("k", "v")])
        .await?;
    let message = device.next_c2d(WAIT).await.ok_or("no C2D message")?;
    assert_eq!(message.body, b"hello device");
    assert_eq!(message.property("k"), Some("v"));

    device
        .send_telemetry(Telemetry::json(&json!({"temp": 20})).with_property("site", "a"))
        .await?;
    let stored = hub.emu.telemetry().from_device("sim-1").await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].application_properties["site"], "a");
    assert_eq!(
        stored[0].system_properties["content-type"],
        "application/json"
    );

    assert!(matches!(
        device.report(json!({"bad key": 1})).await,
        Err(Error::Status { status: 400, .. })
    ));
    device.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_over_mqtt_answers_methods_follows_twins_receives_c2d_and_sends_telemetry()
-> TestResult {
    round_trip(Transport::Mqtt).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_over_websockets() -> TestResult {
    round_trip(Transport::MqttWebSockets).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_and_refusals() -> TestResult {
    let hub = hub().await;
    let config = hub.device("sim-m", Transport::Mqtt).await;
    hub.rm
        .create_module_with_sas("sim-m", "mod", None, KEY, KEY)
        .await?;
    let module =
        SimulatedDevice::connect(config.clone().with_module("mod"), DeviceOptions::default())
            .await?;
    let answer = hub
        .rm
        .invoke_device_module_method("sim-m", "mod", CloudToDeviceMethod::new("ping"))
        .await?;
    assert_eq!(answer.status, Some(200));
    module
        .send_telemetry(Telemetry::new("from the module"))
        .await?;
    let stored = hub.emu.telemetry().from_device("sim-m").await?;
    assert_eq!(
        stored[0].system_properties["iothub-connection-module-id"],
        "mod"
    );

    let mut wrong = config.clone();
    wrong.auth = iothub_device_sim::Auth::SharedAccessKey(
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=".into(),
    );
    assert!(matches!(
        SimulatedDevice::connect(wrong, DeviceOptions::default()).await,
        Err(Error::Refused(5))
    ));
    let mut unknown = config;
    unknown.device_id = "nobody".into();
    assert!(matches!(
        SimulatedDevice::connect(unknown, DeviceOptions::default()).await,
        Err(Error::Refused(5))
    ));
    module.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_renewed_by_reconnecting_and_nothing_is_missed() -> TestResult {
    let hub = hub().await;
    let mut config = hub.device("sim-t", Transport::Mqtt).await;
    config.token_lifetime = Duration::from_secs(2);
    let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    hub.rm
        .send_c2d_message("sim-t", "after expiry", Vec::<(String, String)>::new())
        .await?;
    let message = device
        .next_c2d(WAIT)
        .await
        .ok_or("the message after the token expired")?;
    assert_eq!(message.body, b"after expiry");
    assert!(
        device.connections() >= 2,
        "the device reconnected with a new token"
    );
    let answer = hub
        .rm
        .invoke_device_method("sim-t", CloudToDeviceMethod::new("still"))
        .await?;
    assert_eq!(answer.status, Some(200));
    device.disconnect().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_connects_and_survives_a_reconnect_storm() -> TestResult {
    let hub = hub().await;
    let mut configs = Vec::new();
    for i in 0..20 {
        configs.push(hub.device(&format!("fleet-{i}"), Transport::Mqtt).await);
    }
    let fleet = Fleet::start(configs, FleetOptions::default()).await;
    assert!(fleet.failures().is_empty(), "{:?}", fleet.failures());
    assert_eq!(fleet.connected(), 20);
    let stats = hub.rm.get_service_statistics().await?;
    assert_eq!(stats.connected_device_count, 20);
    fleet.reconnect_all();
    assert_eq!(fleet.wait_reconnected(1, Duration::from_secs(20)).await, 20);
    let answer = hub
        .rm
        .invoke_device_method("fleet-7", CloudToDeviceMethod::new("x"))
        .await?;
    assert_eq!(answer.status, Some(200));
    fleet.shutdown().await;
    Ok(())
}
