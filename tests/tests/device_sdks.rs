//! Microsoft's official *device* SDKs (Python `azure-iot-device`, Node `azure-iot-device-mqtt`
//! and `azure-iot-device-http`, unmodified) against the emulator's device side.
//!
//! Two ways: scenario scripts where the official service SDK plays the service
//! (`device_mqtt.py`, `device_mqtt.js`, `device_http.js`), and device agents driven from Rust,
//! where this project's `iothub-registry` (methods, twins, C2D through `iothub-c2d`) plays the
//! service and the emulator's event log is checked for the telemetry.

use std::time::Duration;

use iothub_conformance::{AgentSdk, DeviceAgent, Hub, node_scenario, python_scenario};
use iothub_registry::{CloudToDeviceMethod, DeviceStatus, RegistryManager, TwinPatch};
use serde_json::{Value, json};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_device_mqtt_and_websockets() {
    python_scenario("device_mqtt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_device_mqtt_and_websockets() {
    node_scenario("device_mqtt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_device_http() {
    node_scenario("device_http").await;
}

fn registry(hub: &Hub) -> RegistryManager {
    RegistryManager::builder()
        .connection_string(&hub.connection_string())
        .add_root_certificate_pem(hub.emulator().ca_pem())
        .amqps_port(hub.amqps_port())
        .build()
        .expect("registry manager")
}

/// The device (or module) connection string an SDK is given.
fn device_cs(hub: &Hub, device: &str, module: Option<&str>) -> String {
    let host = hub.emulator().host_name();
    match module {
        Some(m) => format!("HostName={host};DeviceId={device};ModuleId={m};SharedAccessKey={KEY}"),
        None => format!("HostName={host};DeviceId={device};SharedAccessKey={KEY}"),
    }
}

/// One official device SDK over one transport, with our crates as the service: a C2D
/// message (devices only), a direct method, reported properties read back with `get_twin`,
/// a desired patch made with `update_twin`, and telemetry found in the event log with IoT
/// Hub's system properties.
async fn scenario(sdk: AgentSdk, transport: &str, module: bool) {
    let hub = Hub::start().await;
    let rm = registry(&hub);
    let device = format!("agent-{transport}");
    rm.create_device_with_sas(&device, KEY, KEY, DeviceStatus::Enabled)
        .await
        .expect("create device");
    let module_id = module.then_some("mod1");
    if let Some(m) = module_id {
        rm.create_module_with_sas(&device, m, None, KEY, KEY)
            .await
            .expect("create module");
    }
    let mut agent =
        DeviceAgent::start(&hub, sdk, &device_cs(&hub, &device, module_id), transport).await;

    if !module {
        rm.send_c2d_message(&device, "to the device", [("color", "blue")])
            .await
            .expect("send C2D");
        let c2d = agent.expect("c2d", WAIT).await;
        assert_eq!(c2d["body"], "to the device", "{c2d}");
        assert_eq!(c2d["properties"]["color"], "blue", "{c2d}");
    }

    if transport != "http" {
        let call = CloudToDeviceMethod::new("echo")
            .payload(json!({"n": 7}))
            .response_timeout_in_seconds(15);
        let invoke = async {
            match module_id {
                Some(m) => rm.invoke_device_module_method(&device, m, call).await,
                None => rm.invoke_device_method(&device, call).await,
            }
        };
        let (result, request) = tokio::join!(invoke, agent.expect("method", WAIT));
        assert_eq!(request["name"], "echo");
        let result = result.expect("direct method");
        assert_eq!(result.status, Some(200));
        assert_eq!(
            result.payload,
            Some(json!({"echo": {"n": 7}, "method": "echo"}))
        );

        agent
            .command(json!({"cmd": "report", "patch": {"firmware": "1.2.3"}}))
            .await;
        let reported = agent.expect("reported", WAIT).await;
        assert_eq!(reported["ok"], true, "{reported}");
        let twin = match module_id {
            Some(m) => rm.get_module_twin(&device, m).await,
            None => rm.get_twin(&device).await,
        }
        .expect("get twin");
        assert_eq!(twin.reported()["firmware"], "1.2.3");

        let patch = TwinPatch::new()
            .desired(json!({"interval": 15}))
            .expect("patch");
        match module_id {
            Some(m) => rm.update_module_twin(&device, m, &patch).await.map(|_| ()),
            None => rm.update_twin(&device, &patch).await.map(|_| ()),
        }
        .expect("update twin");
        let desired = agent.expect("desired", WAIT).await;
        assert_eq!(desired["patch"]["interval"], 15, "{desired}");
    }

    agent
        .command(json!({"cmd": "send", "body": "{\"temp\":20.5}", "properties": {"alert": "no"}, "messageId": "t-1"}))
        .await;
    let sent = agent.expect("sent", WAIT).await;
    assert_eq!(sent["ok"], true, "{sent}");
    let stored = hub
        .emulator()
        .telemetry()
        .from_device(&device)
        .await
        .expect("read the event log");
    let message = stored.last().expect("the telemetry is in the event log");
    assert_eq!(message.body, br#"{"temp":20.5}"#);
    assert_eq!(message.application_properties["alert"], "no");
    let system = &message.system_properties;
    assert_eq!(system["message-id"], "t-1");
    assert_eq!(
        system["iothub-connection-device-id"],
        Value::String(device.clone())
    );
    if let Some(m) = module_id {
        assert_eq!(system["iothub-connection-module-id"], m);
    }
    assert!(system.contains_key("iothub-connection-auth-generation-id"));
    assert!(system.contains_key("iothub-enqueuedtime"));
    agent.exit().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_device_with_our_service_over_mqtt() {
    scenario(AgentSdk::Python, "mqtt", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_device_with_our_service_over_mqtt_websockets() {
    scenario(AgentSdk::Python, "mqttws", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_module_with_our_service_over_mqtt() {
    scenario(AgentSdk::Python, "mqtt", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_device_with_our_service_over_mqtt() {
    scenario(AgentSdk::Node, "mqtt", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_device_with_our_service_over_mqtt_websockets() {
    scenario(AgentSdk::Node, "mqttws", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_module_with_our_service_over_mqtt() {
    scenario(AgentSdk::Node, "mqtt", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_device_with_our_service_over_http() {
    scenario(AgentSdk::Node, "http", false).await;
}
