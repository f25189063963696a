//! `iothub-c2d` against the local hub: sends, IoT Hub's queue rules, feedback, purge, both
//! transports, token renewal and reconnection after the hub restarts.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use iothub_c2d::{Ack, C2dClient, FeedbackStatus, Message, RetryPolicy, Transport};
use iothub_emulator::Emulator;
use serde_json::{Value, json};

struct Hub {
    emu: Emulator,
    http: reqwest::Client,
    credential: iothub_auth::HubCredential,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start() -> Hub {
        Self::start_with(|b| b).await
    }

    async fn start_with(
        configure: impl FnOnce(iothub_emulator::EmulatorBuilder) -> iothub_emulator::EmulatorBuilder,
    ) -> Hub {
        let dir = tempfile::tempdir().expect("temp dir");
        let emu = configure(Emulator::builder().data_dir(dir.path()))
            .start()
            .await
            .expect("start the emulator");
        Self::around(emu, dir)
    }

    fn around(emu: Emulator, dir: tempfile::TempDir) -> Hub {
        let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA");
        let http = reqwest::Client::builder()
            .tls_certs_merge([ca])
            .build()
            .expect("http client");
        let cs = iothub_auth::ConnectionString::parse(&emu.connection_string()).expect("cs");
        let credential = iothub_auth::HubCredential::from_connection_string(&cs).expect("cred");
        Hub {
            emu,
            http,
            credential,
            _dir: dir,
        }
    }

    fn client(&self) -> iothub_c2d::C2dClientBuilder {
        self.client_for(&self.emu.connection_string())
    }

    fn client_for(&self, connection_string: &str) -> iothub_c2d::C2dClientBuilder {
        C2dClient::builder()
            .connection_string(connection_string)
            .amqps_port(self.emu.amqps_port())
            .add_root_certificate_pem(self.emu.ca_pem())
    }

    async fn rest(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!(
            "https://localhost:{}{path}?api-version=2021-04-12",
            self.emu.https_port()
        );
        let header = self.credential.authorization_header().await.expect("token");
        let mut request = self
            .http
            .request(method, url)
            .header("Authorization", header.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The first page of `query`'s results (the test fails on an error).
    async fn query(&self, query: &str) -> Vec<Value> {
        let (status, items) = self
            .rest(
                reqwest::Method::POST,
                "/devices/query",
                Some(json!({ "query": query })),
            )
            .await;
        assert_eq!(status, 200, "{query}: {items}");
        items.as_array().cloned().unwrap_or_default()
    }

    async fn create_device(&self, id: &str) {
        let (status, body) = self
            .rest(
                reqwest::Method::PUT,
                &format!("/devices/{id}"),
                Some(json!({ "deviceId": id })),
            )
            .await;
        assert_eq!(status, 200, "create {id}: {body}");
    }

    async fn message_count(&self, id: &str) -> u64 {
        let (status, body) = self
            .rest(reqwest::Method::GET, &format!("/devices/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["cloudToDeviceMessageCount"].as_u64().expect("count")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_existing_and_missing_devices() {
    let hub = Hub::start().await;
    hub.create_device("d1").await;
    let client = hub.client().build().expect("client");

    let msg = Message::new(b"hello".to_vec())
        .with_content_type("text/plain")
        .with_property("k", "v");
    client.send("d1", msg).await.expect("send to d1");
    assert_eq!(hub.message_count("d1").await, 1);
    // The twin reports the same count.
    let (_, twin) = hub.rest(reqwest::Method::GET, "/twins/d1", None).await;
    assert_eq!(twin["cloudToDeviceMessageCount"], 1);
    // So do the device list and queries: whole twins, a projection, a condition and a group.
    hub.create_device("d0").await;
    let (_, list) = hub.rest(reqwest::Method::GET, "/devices", None).await;
    let counts: Vec<(String, u64)> = list
        .as_array()
        .expect("device list")
        .iter()
        .map(|d| {
            (
                d["deviceId"].as_str().unwrap_or_default().to_owned(),
                d["cloudToDeviceMessageCount"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(counts, [("d1".to_owned(), 1), ("d0".to_owned(), 0)]);
    for (query, expected) in [
        (
            "SELECT * FROM devices WHERE cloudToDeviceMessageCount > 0",
            json!([{"deviceId": "d1", "cloudToDeviceMessageCount": 1}]),
        ),
        (
            "SELECT deviceId, cloudToDeviceMessageCount FROM devices",
            json!([
                {"deviceId": "d0", "cloudToDeviceMessageCount": 0},
                {"deviceId": "d1", "cloudToDeviceMessageCount": 1}
            ]),
        ),
        (
            "SELECT cloudToDeviceMessageCount AS n, COUNT() AS devices FROM devices GROUP BY cloudToDeviceMessageCount",
            json!([{"n": 0, "devices": 1}, {"n": 1, "devices": 1}]),
        ),
    ] {
        let items = hub.query(query).await;
        assert_eq!(
            Some(items.len()),
            expected.as_array().map(Vec::len),
            "{query}: {items:?}"
        );
        // Whole twins are compared on the two fields the expectation names.
        let items: Vec<Value> = items
            .iter()
            .zip(expected.as_array().expect("expected"))
            .map(|(item, want)| {
                let keys = want.as_object().expect("object").keys();
                Value::Object(keys.map(|k| (k.clone(), item[k].clone())).collect())
            })
            .collect();
        assert_eq!(Value::Array(items), expected, "{query}");
    }

    let err = client
        .send("nobody", Message::new(b"x".to_vec()))
        .await
        .expect_err("missing device");
    assert!(err.is_device_not_found(), "{err:?}");
    assert_eq!(err.code().and_then(|c| c.number()), Some(404001));
    assert!(!err.is_outcome_unknown());

    // The connection survives a rejection.
    client
        .send("d1", Message::new(b"again".to_vec()))
        .await
        .expect("second send");
    assert_eq!(hub.message_count("d1").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_size_limit_and_purge() {
    let hub = Hub::start().await;
    hub.create_device("full").await;
    let client = hub.client().build().expect("client");

    // 50 in flight at once: all accepted, then the 51st is refused.
    let sends = (0..50).map(|i| client.send("full", Message::new(format!("m{i}").into_bytes())));
    for result in futures::future::join_all(sends.map(|s| s.send())).await {
        result.expect("one of the first 50");
    }
    let err = client
        .send("full", Message::new(b"51".to_vec()))
        .await
        .expect_err("51st");
    assert!(err.is_queue_full(), "{err:?}");
    assert_eq!(err.code().and_then(|c| c.number()), Some(403004));
    assert_eq!(hub.message_count("full").await, 50);

    // 64 KB is the limit, for body and properties together.
    hub.create_device("big").await;
    client
        .send("big", Message::new(vec![b'a'; 64 * 1024 - 200]))
        .await
        .expect("just under 64 KB");
    let err = client
        .send(
            "big",
            Message::new(vec![b'a'; 60 * 1024]).with_property("padding", "p".repeat(5 * 1024)),
        )
        .await
        .expect_err("properties count toward 64 KB");
    assert!(err.is_message_too_large(), "{err:?}");
    let err = client
        .send("big", Message::new(vec![b'a'; 64 * 1024 + 1]))
        .await
        .expect_err("over 64 KB");
    assert!(err.is_message_too_large(), "{err:?}");
    assert_eq!(hub.message_count("big").await, 1);

    let purged = client.purge_queue("full").await.expect("purge");
    assert_eq!(purged.total_messages_purged, 50);
    assert_eq!(purged.device_id, "full");
    assert_eq!(hub.message_count("full").await, 0);
    client
        .send("full", Message::new(b"room again".to_vec()))
        .await
        .expect("send after purge");

    let err = client
        .purge_queue("nobody")
        .await
        .expect_err("purge missing");
    assert!(err.is_device_not_found(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_pipelined_link() {
    let hub = Hub::start().await;
    for i in 0..20 {
        hub.create_device(&format!("p{i}")).await;
    }
    let client = hub.client().build().expect("client");
    let mut tasks = Vec::new();
    for t in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                client
                    .send(
                        format!("p{t}"),
                        Message::new(format!("{t}-{i}").into_bytes()),
                    )
                    .await?;
            }
            Ok::<_, iothub_c2d::Error>(())
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("sends");
    }
    for i in 0..20 {
        assert_eq!(hub.message_count(&format!("p{i}")).await, 25);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_transport() {
    let hub = Hub::start().await;
    hub.create_device("ws1").await;
    let client = hub
        .client()
        .transport(Transport::AmqpWebSockets)
        .build()
        .expect("client");
    client
        .send("ws1", Message::new(b"over 443".to_vec()))
        .await
        .expect("send over WebSockets");
    let err = client
        .send("nobody", Message::new(b"x".to_vec()))
        .await
        .expect_err("missing device");
    assert!(err.is_device_not_found(), "{err:?}");
    assert_eq!(hub.message_count("ws1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_unauthorized() {
    let hub = Hub::start().await;
    let cs = hub.emu.connection_string();
    let bad = cs.replace(
        cs.split("SharedAccessKey=").nth(1).expect("key"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let client = hub.client_for(&bad).build().expect("client");
    let err = client
        .send("d1", Message::new(b"x".to_vec()))
        .await
        .expect_err("bad key");
    assert!(err.is_unauthorized(), "{err:?}");
    // The refused key does not leak into the error text.
    assert!(!format!("{err} {err:?}").contains("AAAAAAAAAAAA"));
    // A policy without service connect is refused too.
    let read_only = hub
        .emu
        .policy_connection_string("registryRead")
        .expect("policy");
    let client = hub.client_for(&read_only).build().expect("client");
    let err = client
        .send("d1", Message::new(b"x".to_vec()))
        .await
        .expect_err("no service connect");
    assert!(err.is_unauthorized(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_renewed_on_a_connection_that_outlives_it() {
    let hub = Hub::start().await;
    hub.create_device("renew").await;
    // Tokens live 3 s; the emulator refuses sends on a connection whose token expired.
    let client = hub
        .client()
        .sas_ttl(Duration::from_secs(3))
        .build()
        .expect("client");
    client
        .send("renew", Message::new(b"1".to_vec()))
        .await
        .expect("first send");
    tokio::time::sleep(Duration::from_secs(5)).await;
    client
        .send("renew", Message::new(b"2".to_vec()))
        .await
        .expect("send after the first token expired");
    tokio::time::sleep(Duration::from_secs(4)).await;
    client
        .send("renew", Message::new(b"3".to_vec()))
        .await
        .expect("send after the second token expired");
    assert_eq!(hub.message_count("renew").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_for_expired_and_purged_messages() {
    let hub = Hub::start_with(|b| b.feedback_batch_interval(Duration::from_millis(100))).await;
    hub.create_device("fb").await;
    let client = hub.client().build().expect("client");
    let mut feedback = client.feedback_receiver().await.expect("feedback receiver");

    let expiring = Message::new(b"soon gone".to_vec())
        .with_ack(Ack::Full)
        .with_expiry_time(SystemTime::now() + Duration::from_millis(300));
    let expiring_id = expiring.message_id().to_owned();
    client.send("fb", expiring).await.expect("send expiring");
    let quiet = Message::new(b"no feedback".to_vec())
        .with_ack(Ack::None)
        .with_expiry_time(SystemTime::now() + Duration::from_millis(300));
    client.send("fb", quiet).await.expect("send quiet");
    let purged = Message::new(b"to purge".to_vec()).with_ack(Ack::Negative);
    let purged_id = purged.message_id().to_owned();

    let batch = tokio::time::timeout(Duration::from_secs(10), feedback.next_batch())
        .await
        .expect("feedback in time")
        .expect("batch")
        .expect("open link");
    assert_eq!(batch.records.len(), 1, "{batch:?}");
    let record = &batch.records[0];
    assert_eq!(
        record.original_message_id.as_deref(),
        Some(expiring_id.as_str())
    );
    assert_eq!(record.status, FeedbackStatus::Expired);
    assert_eq!(record.device_id, "fb");
    assert!(record.enqueued_time_utc.is_some());
    assert_eq!(hub.message_count("fb").await, 0);

    client.send("fb", purged).await.expect("send to purge");
    assert_eq!(
        client
            .purge_queue("fb")
            .await
            .expect("purge")
            .total_messages_purged,
        1
    );
    let mut stream = Box::pin(feedback.into_stream());
    let batch = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("feedback in time")
        .expect("stream item")
        .expect("batch");
    assert_eq!(batch.records.len(), 1, "{batch:?}");
    assert_eq!(
        batch.records[0].original_message_id.as_deref(),
        Some(purged_id.as_str())
    );
    assert_eq!(batch.records[0].status, FeedbackStatus::Purged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_hub_restarts_and_keeps_acknowledged_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let emu = Emulator::builder()
        .data_dir(&data)
        .start()
        .await
        .expect("start");
    let (https, amqps) = (emu.https_port(), emu.amqps_port());
    let hub = Hub::around(emu, tempfile::tempdir().expect("temp"));
    for i in 0..5 {
        hub.create_device(&format!("r{i}")).await;
    }
    let client = hub
        .client()
        .retry_policy(
            RetryPolicy::new(20)
                .with_delays(Duration::from_millis(100), Duration::from_millis(500)),
        )
        .send_timeout(Duration::from_secs(20))
        .build()
        .expect("client");

    // A stream of sends from several tasks while the hub goes down.
    let mut tasks = Vec::new();
    for t in 0..5 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = 0u64;
            for i in 0..40 {
                match client
                    .send(
                        format!("r{t}"),
                        Message::new(format!("{t}-{i}").into_bytes()),
                    )
                    .await
                {
                    Ok(()) => acknowledged += 1,
                    Err(e) => assert!(
                        e.is_outcome_unknown() || e.is_transient(),
                        "unexpected error: {e:?}"
                    ),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Hub { emu, .. } = hub;
    emu.shutdown().await.expect("stop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emu = Emulator::builder()
        .data_dir(&data)
        .https_port(https)
        .amqps_port(amqps)
        .start()
        .await
        .expect("restart on the same ports");
    let hub = Hub::around(emu, tempfile::tempdir().expect("temp"));
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.push(task.await.expect("task"));
    }
    // Sends after the restart succeed on a new connection.
    client
        .send("r0", Message::new(b"after restart".to_vec()))
        .await
        .expect("send after restart");
    acknowledged[0] += 1;
    for (i, acked) in acknowledged.iter().enumerate() {
        let queued = hub.message_count(&format!("r{i}")).await;
        // Every acknowledged message is there; a message whose outcome was lost with the
        // connection may be there too, but nothing is duplicated by the client.
        assert!(
            queued >= *acked,
            "device r{i}: {queued} queued, {acked} acknowledged"
        );
        assert!(queued <= 41, "device r{i}: {queued} queued");
    }
    assert!(acknowledged.iter().sum::<u64>() > 5, "{acknowledged:?}");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_sends_are_retried_and_reported() {
    use iothub_emulator::{OperationClass, Quota, ThrottleConfig};
    // A quota of 20 sends per second: 40 sends at once are partly refused as throttled; the
    // client repeats those, and nothing is enqueued twice.
    let quota =
        ThrottleConfig::off().with_quota(OperationClass::CloudToDeviceSend, Quota::per_second(20));
    let hub = Hub::start_with(|b| b.throttle(quota)).await;
    hub.create_device("t1").await;
    let client = hub
        .client()
        .retry_policy(
            RetryPolicy::new(30).with_delays(Duration::from_millis(50), Duration::from_millis(200)),
        )
        .build()
        .expect("client");
    let sends = (0..40).map(|i| {
        client
            .send("t1", Message::new(format!("{i}").into_bytes()))
            .send()
    });
    for result in futures::future::join_all(sends).await {
        result.expect("throttled sends are retried");
    }
    assert_eq!(hub.message_count("t1").await, 40);

    // Every send refused: the typed error after the policy's attempts.
    let hub = Hub::start_with(|b| b.throttle(ThrottleConfig::off().with_failure_rate(1.0))).await;
    let client = hub
        .client()
        .retry_policy(RetryPolicy::new(2))
        .build()
        .expect("client");
    let err = client
        .send("t1", Message::new(b"x".to_vec()))
        .await
        .expect_err("throttled");
    assert!(err.is_throttled(), "{err:?}");
    assert_eq!(err.code().and_then(|c| c.number()), Some(429001));
    assert!(err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_queues_are_separate() {
    let hub = Hub::start().await;
    hub.create_device("dm").await;
    let (status, body) = hub
        .rest(
            reqwest::Method::PUT,
            "/devices/dm/modules/m1",
            Some(json!({ "deviceId": "dm", "moduleId": "m1" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let client = hub.client().build().expect("client");
    client
        .send_to_module("dm", "m1", Message::new(b"for the module".to_vec()))
        .await
        .expect("send to module");
    let (_, module) = hub
        .rest(reqwest::Method::GET, "/devices/dm/modules/m1", None)
        .await;
    assert_eq!(module["cloudToDeviceMessageCount"], 1, "{module}");
    assert_eq!(hub.message_count("dm").await, 0);
    // The module twin and module queries count the module's queue, not the device's.
    let (_, twin) = hub
        .rest(reqwest::Method::GET, "/twins/dm/modules/m1", None)
        .await;
    assert_eq!(twin["cloudToDeviceMessageCount"], 1, "{twin}");
    for query in [
        "SELECT * FROM devices.modules WHERE cloudToDeviceMessageCount = 1",
        "SELECT moduleId, cloudToDeviceMessageCount FROM devices.modules WHERE cloudToDeviceMessageCount > 0",
    ] {
        let items = hub.query(query).await;
        assert_eq!(items.len(), 1, "{query}: {items:?}");
        assert_eq!(items[0]["moduleId"], "m1", "{query}");
        assert_eq!(items[0]["cloudToDeviceMessageCount"], 1, "{query}");
    }
    let err = client
        .send_to_module("dm", "nope", Message::new(b"x".to_vec()))
        .await
        .expect_err("missing module");
    assert!(err.is_device_not_found(), "{err:?}");
    assert_eq!(
        err.code().map(|c| c.name().to_owned()).as_deref(),
        Some("ModuleNotFound")
    );
}

/// A TLS connection to the hub's AMQPS port, for raw AMQP peers.
async fn tls_stream(hub: &Hub) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(hub.emu.ca_pem().as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("localhost", hub.emu.amqps_port()))
        .await
        .expect("tcp");
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("tls handshake")
}

/// A raw AMQP peer that skips CBS: the hub refuses its link to `/messages/devicebound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_before_a_token_are_refused() {
    use fe2o3_amqp::{Connection, Sender, Session};
    let hub = Hub::start().await;
    let stream = tls_stream(&hub).await;
    // The bare AMQP header, as Node's rhea sends it (no SASL layer).
    let mut connection = Connection::builder()
        .container_id("no-token")
        .open_with_stream(stream)
        .await
        .expect("open");
    let mut session = Session::begin(&mut connection).await.expect("session");
    let refused = match Sender::attach(&mut session, "s", "/messages/devicebound").await {
        Err(e) => format!("{e:?}"),
        Ok(mut sender) => format!("{:?}", sender.on_detach().await),
    };
    assert!(refused.contains("UnauthorizedAccess"), "{refused}");
    let _ = connection.close().await;
}

/// A reader of the built-in endpoint logged in with SASL PLAIN (as the `az` CLI does) and a
/// token that expires is detached with `amqp:unauthorized-access` when the token expires,
/// as Event Hubs detaches it: it does not go on reading on an expired token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_reader_is_detached_when_its_token_expires() {
    use fe2o3_amqp::sasl_profile::SaslProfile;
    use fe2o3_amqp::types::messaging::Body;
    use fe2o3_amqp::types::primitives::Value;
    use fe2o3_amqp::{Connection, Receiver, Session};
    let hub = Hub::start().await;
    let cs = iothub_auth::ConnectionString::parse(&hub.emu.connection_string()).expect("cs");
    let policy = cs.shared_access_key_name().expect("policy");
    let key = cs.shared_access_key().expect("key");
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3;
    let token = iothub_auth::sas::generate_sas_token(cs.host_name(), key, Some(policy), expiry);
    let mut connection = Connection::builder()
        .container_id("plain-reader")
        .hostname("localhost")
        .sasl_profile(SaslProfile::Plain {
            username: format!("{policy}@sas.root.localhost"),
            password: token.expose().to_owned(),
        })
        .open_with_stream(tls_stream(&hub).await)
        .await
        .expect("SASL PLAIN login with a valid token");
    let mut session = Session::begin(&mut connection).await.expect("session");
    let address = format!(
        "{}/ConsumerGroups/$Default/Partitions/0",
        hub.emu.hub_name()
    );
    let mut receiver = Receiver::attach(&mut session, "reader", address)
        .await
        .expect("attach while the token is valid");
    let attached = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), receiver.recv::<Body<Value>>())
        .await
        .expect("detached within 20 s")
        .expect_err("the partition is empty: the link can only end");
    assert!(
        format!("{ended:?}").contains("UnauthorizedAccess"),
        "{ended:?}"
    );
    assert!(
        attached.elapsed() >= Duration::from_secs(1),
        "detached at expiry, not at once: {:?}",
        attached.elapsed()
    );
    let _ = connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_checked_before_sending() {
    let hub = Hub::start().await;
    hub.create_device("ok").await;
    let client = hub.client().build().expect("client");
    for bad in ["", "dev/with/slash", &"x".repeat(129)] {
        let err = client
            .send(bad, Message::new(b"x".to_vec()))
            .await
            .expect_err("invalid device id");
        assert!(
            matches!(err, iothub_c2d::Error::InvalidMessage(_)),
            "{err:?}"
        );
    }
    for bad in ["", "has space", &"m".repeat(129)] {
        let err = client
            .send("ok", Message::new(b"x".to_vec()).with_message_id(bad))
            .await
            .expect_err("invalid message id");
        assert!(
            matches!(err, iothub_c2d::Error::InvalidMessage(_)),
            "{err:?}"
        );
    }
    // Nothing reached the hub.
    assert_eq!(hub.message_count("ok").await, 0);
}
