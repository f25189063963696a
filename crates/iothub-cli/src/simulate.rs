//! `device simulate` and `device send-d2c-message`: acting as devices, over MQTT, with the
//! device simulator crate. A device's SAS key is read from the registry with the service
//! connection string, so only the device id is needed.

use std::sync::Arc;
use std::time::Duration;

use iothub_device_sim::{
    DeviceConfig, DeviceOptions, MethodResponder, SimulatedDevice, Telemetry, Transport,
};
use iothub_registry::{
    AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode, RegistryManager,
};
use serde_json::{Value, json};

use crate::args::SimulateArgs;
use crate::commands::parse_props;
use crate::error::{CliError, Result};
use crate::hub::Hub;
use crate::output::Output;

/// How simulated devices reach the hub: MQTTS on `mqtts_port`, or MQTT over WebSockets on
/// the HTTPS port (the default for a hub whose host name carries a port, i.e. the local
/// hub, whose MQTTS port the connection string does not tell).
#[derive(Debug, Clone, Copy)]
pub struct DeviceTransport {
    /// Use WebSockets.
    pub websockets: bool,
    /// MQTTS port, when not 8883.
    pub mqtts_port: Option<u16>,
}

impl DeviceTransport {
    /// From the command's flags.
    pub fn choose(hub: &Hub, websockets: bool, mqtts_port: Option<u16>) -> Self {
        DeviceTransport {
            websockets: websockets || (mqtts_port.is_none() && hub.host_has_port()),
            mqtts_port,
        }
    }
}

/// The SAS key of `device_id`, read from the registry.
///
/// # Errors
/// When the device does not exist or does not authenticate with SAS keys.
pub async fn device_key(rm: &RegistryManager, device_id: &str) -> Result<String> {
    let device = rm.get_device(device_id).await?;
    device
        .authentication
        .and_then(|a| a.symmetric_key)
        .and_then(|k| k.primary_key)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            CliError::new(format!(
                "device {device_id} does not use SAS keys; only SAS devices can be simulated from the CLI"
            ))
        })
}

/// A device configuration for `device_id` with `key` on `hub`.
pub fn device_config(
    hub: &Hub,
    transport: DeviceTransport,
    device_id: &str,
    key: String,
) -> DeviceConfig {
    let mut config = DeviceConfig::new(hub.host_name(), device_id, key);
    if let Some(ca) = hub.ca_pem() {
        config = config.with_ca_pem(ca);
    }
    if transport.websockets {
        config = config.with_transport(Transport::MqttWebSockets);
    } else if let Some(port) = transport.mqtts_port {
        config = config.with_port(port);
    }
    config
}

/// Device options for the CLI: answers every method with status 200 and
/// `{"method": name, "received": payload}`, reports desired properties back, prints both.
/// Lines start with `prefix`.
pub fn device_options(out: Output, device_id: &str, prefix: &'static str) -> DeviceOptions {
    let id = device_id.to_owned();
    DeviceOptions::default()
        .with_follow_desired(true)
        .with_methods(MethodResponder::callback(move |name, payload| {
            let _ = out.event(
                &format!("{prefix}{id}: direct method '{name}' called with {payload}; answering 200"),
                &json!({"deviceId": id, "event": "directMethod", "method": name, "payload": payload}),
            );
            (200, json!({"method": name, "received": payload}))
        }))
}

/// Prints what reaches a device (C2D messages, desired patches) until `stop` resolves.
async fn print_incoming(out: Output, device: Arc<SimulatedDevice>) {
    let id = device.config().device_id.clone();
    loop {
        tokio::select! {
            Some(m) = device.next_c2d(Duration::from_secs(3600)) => {
                let body = String::from_utf8_lossy(&m.body).into_owned();
                let _ = out.event(
                    &format!("{id}: cloud-to-device message: {body}"),
                    &json!({"deviceId": id, "event": "c2dMessage", "body": body,
                            "messageId": m.message_id, "properties": m.properties}),
                );
            }
            Some(patch) = device.next_desired(Duration::from_secs(3600)) => {
                let _ = out.event(
                    &format!("{id}: desired properties changed: {patch}; reported back"),
                    &json!({"deviceId": id, "event": "desiredPatch", "patch": patch}),
                );
            }
            else => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The default telemetry body: a reading with a counter.
fn reading(device_id: &str, n: u64) -> Value {
    // A deterministic wave, so the numbers look alive without a random generator.
    let temperature = 20.0 + 5.0 * ((n as f64) / 3.0).sin();
    json!({"deviceId": device_id, "temperature": (temperature * 10.0).round() / 10.0, "counter": n})
}

/// Sends telemetry from one device as `args` asks.
async fn send_loop(out: Output, device: Arc<SimulatedDevice>, args: &SimulateArgs) -> Result<()> {
    let id = device.config().device_id.clone();
    for n in 0..args.msg_count {
        let message = match &args.data {
            Some(text) => Telemetry::new(text.clone().into_bytes()),
            None => Telemetry::json(&reading(&id, n)),
        };
        let body = String::from_utf8_lossy(&message.body).into_owned();
        device.send_telemetry(message).await?;
        out.event(
            &format!("{id}: sent telemetry {}: {body}", n + 1),
            &json!({"deviceId": id, "event": "telemetrySent", "n": n + 1, "body": body}),
        )?;
        if n + 1 < args.msg_count {
            tokio::time::sleep(Duration::from_millis(args.msg_interval_ms)).await;
        }
    }
    Ok(())
}

/// `device simulate`.
///
/// # Errors
/// When a device cannot be created, read or connected.
pub async fn simulate(
    hub: &Hub,
    rm: &RegistryManager,
    out: Output,
    args: SimulateArgs,
) -> Result<()> {
    let transport = DeviceTransport::choose(hub, args.websockets, args.mqtts_port);
    let ids: Vec<String> = match args.count {
        None => vec![args.device_id.clone()],
        Some(n) => (0..n)
            .map(|i| format!("{}-{i:04}", args.device_id))
            .collect(),
    };
    if args.count.is_some() {
        // Create the fleet's missing devices (existing ones are kept as they are).
        let entries = ids.iter().map(|id| ExportImportDevice {
            id: id.clone(),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(AuthenticationMechanism::sas("", "")),
            ..Default::default()
        });
        rm.bulk_create_or_update_devices_chunked(entries).await?;
    }
    let mut devices = Vec::with_capacity(ids.len());
    for id in &ids {
        let key = device_key(rm, id).await?;
        let config = device_config(hub, transport, id, key);
        let device = SimulatedDevice::connect(config, device_options(out, id, ""))
            .await
            .map_err(|e| CliError::from(e).context(format!("cannot connect {id}")))?;
        devices.push(Arc::new(device));
    }
    out.event(
        &format!(
            "{} device(s) connected over {} (Ctrl-C to stop)",
            devices.len(),
            if transport.websockets {
                "MQTT over WebSockets"
            } else {
                "MQTTS"
            }
        ),
        &json!({"event": "connected", "devices": ids}),
    )?;
    let printers: Vec<_> = devices
        .iter()
        .map(|d| tokio::spawn(print_incoming(out, Arc::clone(d))))
        .collect();
    let sends =
        futures::future::try_join_all(devices.iter().map(|d| send_loop(out, Arc::clone(d), &args)));
    let deadline = async {
        match args.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let result = tokio::select! {
        r = sends => match r {
            Ok(_) if args.keep_running => {
                tokio::select! {
                    () = &mut deadline => Ok(()),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        () = &mut deadline => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    for p in printers {
        p.abort();
    }
    for d in &devices {
        d.disconnect().await;
    }
    result
}

/// `device send-d2c-message`.
///
/// # Errors
/// When the device cannot be read or connected, or the hub does not acknowledge the message.
pub async fn send_d2c(
    hub: &Hub,
    rm: &RegistryManager,
    out: Output,
    device_id: &str,
    data: String,
    props: Option<&str>,
) -> Result<()> {
    let transport = DeviceTransport::choose(hub, false, None);
    let key = device_key(rm, device_id).await?;
    let device = SimulatedDevice::connect(
        device_config(hub, transport, device_id, key),
        DeviceOptions::default(),
    )
    .await?;
    let mut message = Telemetry::new(data.into_bytes());
    for (k, v) in parse_props(props)? {
        match k.as_str() {
            "$.ct" | "contentType" => message.content_type = Some(v),
            "$.ce" | "contentEncoding" => message.content_encoding = Some(v),
            "$.mid" | "messageId" => message.message_id = Some(v),
            "$.cid" | "correlationId" => message.correlation_id = Some(v),
            _ => message = message.with_property(k, v),
        }
    }
    let sent = device.send_telemetry(message).await;
    device.disconnect().await;
    sent?;
    out.event(
        &format!("{device_id}: message sent and acknowledged by the hub"),
        &json!({"deviceId": device_id, "sent": true}),
    )
}
