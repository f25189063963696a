//! Device-side durability of the real binary: telemetry the hub acknowledged (PUBACK), and
//! cloud-to-device completions it processed, survive a `kill -9`; messages that were
//! delivered but not acknowledged are still queued.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::{Raw, device_token};
use common::{Running, TestResult, now, spawn_binary};
use iothub_c2d::{C2dClient, Message, RetryPolicy};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Packet;
use serde_json::json;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_telemetry_and_completions_survive_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    let hub = spawn_binary(dir.path())?;
    let ca = std::fs::read_to_string(dir.path().join("ca.pem"))?;
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .build()?;
    let cs = iothub_auth::ConnectionString::parse(&hub.cs)?;
    let credential = iothub_auth::HubCredential::from_connection_string(&cs)?;
    let host = format!("localhost:{}", hub.https_port);
    for id in ["dur-t", "dur-c"] {
        let header = credential.authorization_header().await?;
        let status = http
            .put(format!(
                "https://{host}/devices/{id}?api-version=2021-04-12"
            ))
            .header("authorization", header.expose())
            .json(&json!({"deviceId": id, "authentication": {"type": "sas",
                "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}}}))
            .send()
            .await?
            .status();
        assert!(status.is_success(), "create {id}: {status}");
    }

    // Five cloud-to-device messages: two completed, three delivered but never acknowledged.
    let sender = C2dClient::builder()
        .connection_string(&hub.cs)
        .amqps_port(hub.amqps_port)
        .add_root_certificate_pem(ca.clone())
        .retry_policy(RetryPolicy::none())
        .build()?;
    for i in 0..5 {
        sender
            .send("dur-c", Message::new(format!("c{i}").into_bytes()))
            .await?;
    }
    let token = device_token(&host, "dur-c", None, KEY, now() + 600);
    let (mut c2d, code) = Raw::connect(hub.mqtts_port, &ca, &host, "dur-c", &token).await;
    assert_eq!(code, 0);
    c2d.subscribe(1, "devices/dur-c/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let mut delivered = Vec::new();
    for _ in 0..5 {
        delivered.push(c2d.next_publish().await);
    }
    c2d.puback(delivered[0].pkid).await;
    c2d.puback(delivered[1].pkid).await;
    // The hub handles a connection's packets in order and commits a completion before reading
    // on, so the PINGRESP proves both completions are durable.
    c2d.send(Packet::PingReq).await;
    loop {
        match c2d.recv().await {
            Some(Packet::PingResp) => break,
            Some(_) => {}
            None => panic!("closed before PINGRESP"),
        }
    }

    // Telemetry streamed in windows of 20; every PUBACK is recorded.
    let acked = Arc::new(Mutex::new(Vec::<u32>::new()));
    let token = device_token(&host, "dur-t", None, KEY, now() + 600);
    let (mut device, code) = Raw::connect(hub.mqtts_port, &ca, &host, "dur-t", &token).await;
    assert_eq!(code, 0);
    let streamer = {
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            let mut next = 0u32;
            loop {
                for _ in 0..20 {
                    let pkid = u16::try_from(next % 60000 + 1).unwrap_or(1);
                    device
                        .publish(
                            "devices/dur-t/messages/events/",
                            QoS::AtLeastOnce,
                            pkid,
                            next.to_string().as_bytes(),
                        )
                        .await;
                    next += 1;
                }
                for _ in 0..20 {
                    match device.recv_within(Duration::from_secs(10)).await {
                        Some(Some(Packet::PubAck(ack))) => {
                            // Windows are acknowledged in order: the n-th PUBACK of the window
                            // is for message next - 20 + n.
                            let base = next - 20;
                            let mut list = acked.lock().unwrap_or_else(|p| p.into_inner());
                            let n = u32::try_from(list.iter().filter(|v| **v >= base).count())
                                .unwrap_or(0);
                            assert_eq!(u32::from(ack.pkid), (base + n) % 60000 + 1);
                            list.push(base + n);
                        }
                        _ => return,
                    }
                }
            }
        })
    };
    let started = Instant::now();
    while acked.lock().unwrap_or_else(|p| p.into_inner()).len() < 300
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let Running { mut child, .. } = hub;
    child.kill()?; // SIGKILL
    child.wait()?;
    let _ = streamer.await;
    drop(c2d);
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        acked.len() >= 300,
        "only {} messages were acknowledged",
        acked.len()
    );

    let emu = iothub_emulator::Emulator::builder()
        .data_dir(dir.path())
        .start()
        .await?;
    let stored = emu.telemetry().from_device("dur-t").await?;
    let bodies: std::collections::HashSet<u32> = stored
        .iter()
        .filter_map(|m| std::str::from_utf8(&m.body).ok()?.parse().ok())
        .collect();
    let lost: Vec<&u32> = acked.iter().filter(|i| !bodies.contains(i)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged telemetry lost after kill -9: {lost:?}"
    );
    assert!(
        stored
            .windows(2)
            .all(|w| w[0].sequence_number < w[1].sequence_number)
    );

    // Completed messages are gone; the three unacknowledged ones come back, in order.
    let (mut again, code) = Raw::connect(
        emu.mqtts_port(),
        &emu.ca_pem(),
        &emu.host_name(),
        "dur-c",
        &device_token(&emu.host_name(), "dur-c", None, KEY, now() + 600),
    )
    .await;
    assert_eq!(code, 0);
    again
        .subscribe(1, "devices/dur-c/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let p = again.next_publish().await;
        bodies.push(String::from_utf8_lossy(&p.payload).into_owned());
        again.puback(p.pkid).await;
    }
    assert_eq!(bodies, ["c2", "c3", "c4"]);
    assert!(
        again
            .recv_within(Duration::from_millis(500))
            .await
            .is_none(),
        "a completed message came back"
    );
    Ok(())
}
