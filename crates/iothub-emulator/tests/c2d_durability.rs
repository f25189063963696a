//! Cloud-to-device durability of the real binary: every message the hub accepted over AMQP
//! before a `kill -9` is still queued after a restart.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iothub_c2d::{C2dClient, Message, RetryPolicy};
use serde_json::{Value, json};

use common::{Running, TestResult, spawn_binary};

async fn rest(
    http: &reqwest::Client,
    hub: &Running,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    let cs = iothub_auth::ConnectionString::parse(&hub.cs)?;
    let credential = iothub_auth::HubCredential::from_connection_string(&cs)?;
    let header = credential.authorization_header().await?;
    let mut request = http
        .request(
            method,
            format!(
                "https://localhost:{}{path}?api-version=2021-04-12",
                hub.https_port
            ),
        )
        .header("authorization", header.expose());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("{status}: {value}").into());
    }
    Ok(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    let hub = spawn_binary(dir.path())?;
    let ca = std::fs::read(dir.path().join("ca.pem"))?;
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&ca)?])
        .build()?;
    let devices = 8;
    for d in 0..devices {
        let id = format!("k{d}");
        rest(
            &http,
            &hub,
            reqwest::Method::PUT,
            &format!("/devices/{id}"),
            Some(json!({"deviceId": id})),
        )
        .await?;
    }
    let client = C2dClient::builder()
        .connection_string(&hub.cs)
        .amqps_port(hub.amqps_port)
        .add_root_certificate_pem(ca.clone())
        .retry_policy(RetryPolicy::none())
        .send_timeout(Duration::from_secs(10))
        .build()?;

    // Several tasks stream sends, each to its own device, with many in flight at once.
    let acknowledged = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut tasks = Vec::new();
    for d in 0..devices {
        for _ in 0..4 {
            let client = client.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tasks.push(tokio::spawn(async move {
                let id = format!("k{d}");
                for i in 0..12 {
                    match client
                        .send(&id, Message::new(format!("{i}").into_bytes()))
                        .await
                    {
                        Ok(()) => {
                            *acknowledged
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(id.clone())
                                .or_default() += 1
                        }
                        Err(_) => break,
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    let total = |a: &Mutex<HashMap<String, u64>>| {
        a.lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum::<u64>()
    };
    while total(&acknowledged) < 60 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let Running { mut child, .. } = hub;
    child.kill()?; // SIGKILL
    child.wait()?;
    for task in tasks {
        let _ = task.await;
    }
    let acknowledged = acknowledged
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let acked_total: u64 = acknowledged.values().sum();
    assert!(
        acked_total >= 60,
        "only {acked_total} sends were acknowledged"
    );

    let hub = spawn_binary(dir.path())?;
    let mut missing = Vec::new();
    for (id, acked) in &acknowledged {
        let device = rest(
            &http,
            &hub,
            reqwest::Method::GET,
            &format!("/devices/{id}"),
            None,
        )
        .await?;
        let queued = device["cloudToDeviceMessageCount"].as_u64().unwrap_or(0);
        if queued < *acked {
            missing.push(format!("{id}: {acked} acknowledged, {queued} queued"));
        }
        assert!(queued <= 48, "{id}: {queued} queued, more than were sent");
    }
    let Running { mut child, .. } = hub;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "acknowledged messages lost: {missing:?}"
    );
    Ok(())
}
