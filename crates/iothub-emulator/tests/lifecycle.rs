//! Start-up, restart persistence, in-memory mode, the journal, throttling, and crash
//! durability of the real binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hub, Running, TestResult, client, spawn_binary};
use iothub_emulator::{Emulator, OperationClass, Quota, ThrottleConfig};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn restart_keeps_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let emu = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .start()
        .await?;
    assert!(emu.connection_string().starts_with(&format!(
        "HostName=localhost:{};SharedAccessKeyName=iothubowner;SharedAccessKey=",
        emu.https_port()
    )));
    assert_eq!(emu.ca_path(), dir.path().join("ca.pem"));
    assert_eq!(std::fs::read_to_string(emu.ca_path())?, emu.ca_pem());
    let hub = Hub {
        client: client(&emu.ca_pem()),
        emu,
        dir: tempfile::tempdir()?,
    };
    let device = hub.create_device("p1").await;
    hub.call(
        Method::PUT,
        "/devices/p1/modules/m1",
        Some(json!({"moduleId": "m1"})),
    )
    .await
    .expect(200, None);
    hub.call(
        Method::PATCH,
        "/twins/p1",
        Some(json!({"tags": {"a": 1}, "properties": {"desired": {"b": 2}}})),
    )
    .await
    .expect(200, None);
    hub.call(
        Method::PUT,
        "/configurations/c1",
        Some(json!({"priority": 1})),
    )
    .await
    .expect(200, None);
    let twin_before = hub.call(Method::GET, "/twins/p1", None).await.body;
    let module_before = hub
        .call(Method::GET, "/devices/p1/modules/m1", None)
        .await
        .body;
    let ca_before = hub.emu.ca_pem();
    let Hub { emu, .. } = hub;
    emu.shutdown().await?;

    let emu = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .start()
        .await?;
    assert_eq!(emu.ca_pem(), ca_before, "the CA is kept");
    let hub = Hub {
        client: client(&emu.ca_pem()),
        emu,
        dir: tempfile::tempdir()?,
    };
    assert_eq!(
        hub.call(Method::GET, "/devices/p1", None).await.body,
        device
    );
    assert_eq!(
        hub.call(Method::GET, "/twins/p1", None).await.body,
        twin_before
    );
    assert_eq!(
        hub.call(Method::GET, "/devices/p1/modules/m1", None)
            .await
            .body,
        module_before
    );
    hub.call(Method::GET, "/configurations/c1", None)
        .await
        .expect(200, None);
    // Drop without shutdown is fine too.
    Ok(())
}

#[tokio::test]
async fn in_memory_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let emu = Emulator::builder()
        .in_memory(true)
        .data_dir(dir.path())
        .https_port(0)
        .start()
        .await?;
    assert_eq!(emu.ca_path(), dir.path().join("ca.pem"));
    assert!(!dir.path().join(iothub_emulator::DATABASE_FILE).exists());
    let hub = Hub {
        client: client(&emu.ca_pem()),
        emu,
        dir,
    };
    hub.create_device("mem").await;
    hub.call(Method::GET, "/devices/mem", None)
        .await
        .expect(200, None);
    let Hub { emu, .. } = hub;
    emu.shutdown().await?;

    // Without a data dir, ca.pem goes to a temporary directory.
    let emu = Emulator::builder()
        .in_memory(true)
        .https_port(0)
        .start()
        .await?;
    assert!(emu.ca_path().exists());
    assert!(emu.data_dir().is_none());
    emu.shutdown().await?;

    // A data dir is required otherwise.
    assert!(Emulator::builder().https_port(0).start().await.is_err());
    Ok(())
}

#[tokio::test]
async fn startup_errors_are_clear() -> TestResult {
    let hub = Hub::start().await;
    let taken = hub.emu.https_port();
    let dir = tempfile::tempdir()?;
    let err = Emulator::builder()
        .data_dir(dir.path())
        .https_port(taken)
        .start()
        .await
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    // Library errors name what failed, not the binary's flags.
    assert!(text.contains("cannot listen for HTTPS"), "{text}");
    assert!(!text.contains("--"), "{text}");
    let err = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .key("short")
        .start()
        .await
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("hub key"), "{text}");
    let err = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .amqps_port(9000)
        .mqtts_port(9000)
        .start()
        .await
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("AMQPS and MQTTS ports are both 9000"),
        "{text}"
    );
    let err = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .hub_name("bad name")
        .start()
        .await
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("hub name 'bad name'"), "{text}");
    Ok(())
}

/// The binary, unlike the library, points at its own flag when a port is taken.
#[tokio::test]
async fn binary_names_the_flag_of_a_taken_port() -> TestResult {
    let hub = Hub::start().await;
    let dir = tempfile::tempdir()?;
    let output = Command::new(env!("CARGO_BIN_EXE_iothub-emulator"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--https-port", &hub.emu.https_port().to_string()])
        .args(["--amqps-port", "0", "--mqtts-port", "0"])
        .env("RUST_LOG", "off")
        .env_remove("IOTHUB_EMULATOR_KEY")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen for HTTPS"), "{stderr}");
    assert!(stderr.contains("--https-port"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn custom_key() -> TestResult {
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let hub = Hub::start_with(|b| b.key(key)).await;
    assert!(
        hub.emu
            .connection_string()
            .ends_with(&format!("SharedAccessKey={key}"))
    );
    hub.create_device("k").await;
    Ok(())
}

#[tokio::test]
async fn journal_records_requests_without_secrets() -> TestResult {
    let journal_dir = tempfile::tempdir()?;
    let path = journal_dir.path().join("journal.jsonl");
    let journal = path.clone();
    let hub = Hub::start_with(move |b| b.journal(journal)).await;
    let body = json!({"deviceId": "j1", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "secondaryKey": ""}}});
    hub.call(Method::PUT, "/devices/j1", Some(body))
        .await
        .expect(200, None);
    hub.call_as(
        "iothubowner",
        Method::PATCH,
        "/twins/j1",
        Some(json!({"tags": {"a": 1}})),
        &[("if-match", "\"AAAAAAAAAAE=\"")],
    )
    .await
    .expect(200, None);
    hub.call_as(
        "iothubowner",
        Method::POST,
        "/devices/query",
        Some(json!({"query": "SELECT * FROM devices"})),
        &[("x-ms-max-item-count", "5")],
    )
    .await;
    hub.call(Method::GET, "/nowhere", None)
        .await
        .expect(404, None);

    let text = std::fs::read_to_string(&path)?;
    assert!(!text.contains("SharedAccessSignature"));
    assert!(!text.contains("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="));
    assert!(!text.contains(iothub_emulator::WELL_KNOWN_KEY));
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["method"], "PUT");
    assert_eq!(lines[0]["path"], "/devices/j1");
    assert_eq!(lines[0]["query"], json!({"api-version": "2021-04-12"}));
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(
        lines[0]["body"]["authentication"]["symmetricKey"]["primaryKey"],
        "***"
    );
    assert_eq!(
        lines[0]["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(lines[0]["headers"].get("authorization").is_none());
    assert_eq!(lines[1]["headers"]["if-match"], "\"AAAAAAAAAAE=\"");
    assert_eq!(lines[2]["headers"]["x-ms-max-item-count"], "5");
    assert_eq!(lines[3]["status"], 404);
    assert_eq!(lines[3]["body"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn throttling() -> TestResult {
    let config = ThrottleConfig::off().with_quota(OperationClass::Registry, Quota::per_minute(3));
    let hub = Hub::start_with(move |b| b.throttle(config)).await;
    for _ in 0..3 {
        hub.call(Method::GET, "/statistics/devices", None)
            .await
            .expect(200, None);
    }
    let r = hub.call(Method::GET, "/devices", None).await;
    r.expect(429, Some("ThrottlingException"));
    assert!(
        r.body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("Wait 10 seconds and try again. Operation type: CRUD")
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    // Twin reads are metered separately.
    hub.call(Method::GET, "/twins/none", None)
        .await
        .expect(404, None);

    let always =
        Hub::start_with(|b| b.throttle(ThrottleConfig::off().with_failure_rate(1.0))).await;
    always
        .call(Method::GET, "/twins/none", None)
        .await
        .expect(429, Some("ThrottlingException"));
    // Unauthenticated requests are rejected before throttling.
    let url = always.url("/devices");
    always
        .raw(None, Method::GET, &url, None, &[])
        .await
        .expect(401, None);
    Ok(())
}

#[tokio::test]
async fn binary_survives_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    let Running {
        mut child,
        https_port: port,
        cs,
        ..
    } = spawn_binary(dir.path())?;
    assert!(cs.contains(";SharedAccessKeyName=iothubowner;SharedAccessKey="));
    let ca = std::fs::read_to_string(dir.path().join("ca.pem"))?;
    let http = client(&ca);
    let key = iothub_auth::SharedAccessKey::from_base64(iothub_emulator::WELL_KNOWN_KEY)?;
    let auth = iothub_auth::sas::generate_sas_token(
        &format!("localhost:{port}"),
        &key,
        Some("iothubowner"),
        common::now() + 600,
    );
    let auth = auth.expose().to_owned();

    // Stream creates from several tasks; kill the process while they are in flight.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let http = http.clone();
        let auth = auth.clone();
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let id = format!("k{worker}-{i}");
                let url = format!("https://localhost:{port}/devices/{id}?api-version=2021-04-12");
                let sent = http
                    .put(url)
                    .header("authorization", &auth)
                    .json(&json!({"deviceId": id}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().map(|mut v| v.push(id)).unwrap_or(())
                    }
                    _ => break,
                }
            }
        }));
    }
    let started = Instant::now();
    while acknowledged.lock().map(|v| v.len()).unwrap_or(0) < 40
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill()?; // SIGKILL on Unix
    child.wait()?;
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged = acknowledged.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        acknowledged.len() >= 40,
        "only {} creates were acknowledged",
        acknowledged.len()
    );

    let Running {
        mut child,
        https_port: port,
        ..
    } = spawn_binary(dir.path())?;
    let auth = iothub_auth::sas::generate_sas_token(
        &format!("localhost:{port}"),
        &key,
        Some("iothubowner"),
        common::now() + 600,
    );
    let list = http
        .get(format!(
            "https://localhost:{port}/devices?top=1000&api-version=2021-04-12"
        ))
        .header("authorization", auth.expose())
        .send()
        .await?
        .json::<Value>()
        .await?;
    let stored: std::collections::HashSet<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["deviceId"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    // SIGTERM stops the binary cleanly.
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(terminated.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}"
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged devices lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    Ok(())
}

/// `kill -9` while bulk registry operations from several clients share group commits:
/// after a restart every device of an acknowledged request is there with its whole twin, and
/// each request is all there or not at all (a group commit is one transaction).
///
/// The kill comes after 20 acknowledged requests of 100 devices; set
/// `IOTHUB_KILL9_AFTER_REQUESTS` to kill later, e.g. 5000 (500,000 devices) in a release run:
/// `IOTHUB_KILL9_AFTER_REQUESTS=5000 cargo test --release -p iothub-emulator --test lifecycle
/// bulk_imports_survive_kill_9_whole`.
#[tokio::test]
async fn bulk_imports_survive_kill_9_whole() -> TestResult {
    let kill_after: usize = std::env::var("IOTHUB_KILL9_AFTER_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Time for the requests to be acknowledged before the kill: 30 s, and 30 ms per request
    // beyond the default count.
    let patience = Duration::from_secs(30) + Duration::from_millis(30) * kill_after as u32;
    let dir = tempfile::tempdir()?;
    let Running {
        mut child,
        https_port: port,
        ..
    } = spawn_binary(dir.path())?;
    let ca = std::fs::read_to_string(dir.path().join("ca.pem"))?;
    let http = client(&ca);
    let key = iothub_auth::SharedAccessKey::from_base64(iothub_emulator::WELL_KNOWN_KEY)?;
    let token = |port: u16| {
        iothub_auth::sas::generate_sas_token(
            &format!("localhost:{port}"),
            &key,
            Some("iothubowner"),
            common::now() + 600,
        )
        .expose()
        .to_owned()
    };
    let auth = token(port);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (http, auth, acknowledged) = (http.clone(), auth.clone(), acknowledged.clone());
        tasks.push(tokio::spawn(async move {
            for request in 0.. {
                let batch = format!("w{worker}-{request}");
                let devices: Vec<Value> = (0..100)
                    .map(|i| {
                        json!({"id": format!("{batch}-{i}"), "importMode": "create",
                               "tags": {"batch": batch, "complete": true},
                               "properties": {"desired": {"n": i}}})
                    })
                    .collect();
                let sent = http
                    .post(format!(
                        "https://localhost:{port}/devices?api-version=2021-04-12"
                    ))
                    .header("authorization", &auth)
                    .json(&devices)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().map(|mut v| v.push(batch)).unwrap_or(())
                    }
                    _ => break,
                }
            }
        }));
    }
    let started = Instant::now();
    while acknowledged.lock().map(|v| v.len()).unwrap_or(0) < kill_after
        && started.elapsed() < patience
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill()?; // SIGKILL on Unix
    child.wait()?;
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged = acknowledged.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        acknowledged.len() >= kill_after,
        "only {} requests acknowledged",
        acknowledged.len()
    );

    let Running {
        mut child,
        https_port: port,
        ..
    } = spawn_binary(dir.path())?;
    let auth = token(port);
    let query = |text: &'static str, continuation: Option<String>| {
        let request = http
            .post(format!(
                "https://localhost:{port}/devices/query?api-version=2021-04-12"
            ))
            .header("authorization", &auth)
            .header("x-ms-max-item-count", "1000")
            .json(&json!({"query": text}));
        match continuation {
            Some(c) => request.header("x-ms-continuation", c),
            None => request,
        }
        .send()
    };
    // Every page of the groups.
    let mut counts = std::collections::HashMap::<String, i64>::new();
    let mut continuation = None;
    loop {
        let page = query(
            "SELECT tags.batch, COUNT() AS n FROM devices GROUP BY tags.batch",
            continuation,
        )
        .await?;
        continuation = page
            .headers()
            .get("x-ms-continuation")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let groups: Value = page.json().await?;
        counts.extend(
            groups
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| Some((g["batch"].as_str()?.to_owned(), g["n"].as_i64()?))),
        );
        if continuation.is_none() {
            break;
        }
    }
    let incomplete: Value = query(
        "SELECT COUNT() AS n FROM devices WHERE NOT (tags.complete = true) OR NOT IS_DEFINED(properties.desired.n)",
        None,
    )
    .await?
    .json()
    .await?;
    let _ = child.kill();
    let _ = child.wait();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|b| counts.get(*b) != Some(&100))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged requests not whole after restart: {lost:?}"
    );
    let partial: Vec<(&String, &i64)> = counts.iter().filter(|(_, n)| **n != 100).collect();
    assert!(partial.is_empty(), "requests applied in part: {partial:?}");
    assert_eq!(incomplete[0]["n"], 0, "devices without their whole twin");
    eprintln!(
        "kill -9 after {} acknowledged requests: {} requests ({} devices) stored whole, none in part",
        acknowledged.len(),
        counts.len(),
        counts.values().sum::<i64>()
    );
    Ok(())
}

#[tokio::test]
async fn connection_string_token_works_with_policy_helper() -> TestResult {
    let hub = Hub::start().await;
    for policy in iothub_emulator::POLICY_NAMES {
        let cs = hub.emu.policy_connection_string(policy).ok_or("policy")?;
        assert!(cs.contains(&format!("SharedAccessKeyName={policy};")));
        // A token signed with the connection string's key is accepted: every policy may query.
        hub.call_as(
            policy,
            Method::POST,
            "/devices/query",
            Some(json!({"query": "SELECT * FROM devices"})),
            &[],
        )
        .await
        .expect(200, None);
    }
    assert!(hub.emu.policy_connection_string("nobody").is_none());
    Ok(())
}
