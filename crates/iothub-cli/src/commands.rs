//! The registry, twin, query, method, C2D, telemetry, configuration and statistics commands:
//! each one SDK call (or a few), printed through [`Output`].

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use iothub_registry::{
    AuthenticationType, CloudToDeviceMethod, Configuration, ConfigurationContent,
    ConfigurationMetrics, Device, DeviceStatus, ETag, RegistryManager, TwinPatch,
};
use serde_json::{Value, json};

use crate::args::{
    AuthMethod, C2dCommand, ConfigurationCommand, Credentials, DeviceIdentity, EdgeCommand,
    EventsArgs, FeedbackArgs, MethodArgs, ModuleIdentity, ModuleTwinCommand, QueryArgs,
    TwinCommand, TwinWriteArgs,
};
use crate::error::{CliError, Result};
use crate::hub::Hub;
use crate::output::Output;

/// Columns of device tables.
pub const DEVICE_COLUMNS: [&str; 5] = [
    "deviceId",
    "status",
    "authenticationType",
    "connectionState",
    "cloudToDeviceMessageCount",
];

/// A JSON argument: inline text, or `@FILE` for a file's content.
pub fn json_arg(text: &str, what: &str) -> Result<Value> {
    let content = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("cannot read {what} from {path}: {e}")))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&content)
        .map_err(|e| CliError::new(format!("{what} is not valid JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| CliError::new(format!("invalid {what}: {e}")))
}

/// `key=value;key2=value2` as pairs, in order.
///
/// # Errors
/// For a pair without `=` or with an empty key.
pub fn parse_props(text: Option<&str>) -> Result<Vec<(String, String)>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(CliError::new(format!(
                "property '{pair}' is not key=value (separate properties with ';')"
            ))),
        })
        .collect()
}

fn etag_or_any(etag: Option<&str>) -> ETag {
    etag.map_or_else(ETag::any, ETag::new)
}

/// `device-identity …` except import and export.
pub async fn device_identity(rm: &RegistryManager, out: Output, cmd: DeviceIdentity) -> Result<()> {
    match cmd {
        DeviceIdentity::Create {
            device_id,
            credentials,
            status,
            status_reason,
            edge_enabled,
        } => {
            let mut request = match credentials.auth_method.unwrap_or_default() {
                AuthMethod::SharedPrivateKey => rm.create_device_with_sas(
                    &device_id,
                    credentials.primary_key.unwrap_or_default(),
                    credentials.secondary_key.unwrap_or_default(),
                    status,
                ),
                AuthMethod::SelfSigned => {
                    let (primary, secondary) = thumbprints(&credentials)?;
                    rm.create_device_with_x509(&device_id, primary, secondary, status)
                }
                AuthMethod::X509Ca => {
                    rm.create_device_with_certificate_authority(&device_id, status)
                }
            }
            .iot_edge(edge_enabled);
            if let Some(reason) = status_reason {
                request = request.status_reason(reason);
            }
            out.one(&request.await?)
        }
        DeviceIdentity::Show { device_id } => out.one(&rm.get_device(device_id).await?),
        DeviceIdentity::List { top } => {
            let rows = query_rows(rm, "SELECT * FROM devices", 1000, top).await?;
            out.list(&rows, &DEVICE_COLUMNS)
        }
        DeviceIdentity::Update {
            device_id,
            credentials,
            status,
            status_reason,
            etag,
        } => {
            let current = rm.get_device(&device_id).await?;
            let etag = etag.map_or_else(|| current.etag.clone(), ETag::new);
            let status = status.or(current.status).unwrap_or(DeviceStatus::Enabled);
            let method = credentials
                .auth_method
                .unwrap_or_else(|| current_method(&current));
            let mut request = match method {
                AuthMethod::SharedPrivateKey => {
                    let (pk, sk) = current_keys(&current);
                    rm.update_device_with_sas(
                        &device_id,
                        etag,
                        credentials.primary_key.unwrap_or(pk),
                        credentials.secondary_key.unwrap_or(sk),
                        status,
                    )
                }
                AuthMethod::SelfSigned => {
                    let (primary, secondary) = match credentials.primary_thumbprint {
                        Some(_) => thumbprints(&credentials)?,
                        None => current_thumbprints(&current)?,
                    };
                    rm.update_device_with_x509(&device_id, etag, primary, secondary, status)
                }
                AuthMethod::X509Ca => {
                    rm.update_device_with_certificate_authority(&device_id, etag, status)
                }
            };
            if let Some(reason) = status_reason.or(current.status_reason.clone()) {
                request = request.status_reason(reason);
            }
            if let Some(scope) = current.device_scope.clone() {
                request = request.device_scope(scope);
            }
            if let Some(edge) = current.capabilities.as_ref().and_then(|c| c.iot_edge) {
                request = request.iot_edge(edge);
            }
            out.one(&request.await?)
        }
        DeviceIdentity::Delete { device_id, etag } => {
            let mut request = rm.delete_device(&device_id);
            if let Some(etag) = etag {
                request = request.etag(ETag::new(etag));
            }
            request.await?;
            out.event(
                &format!("deleted device {device_id}"),
                &json!({"deleted": device_id}),
            )
        }
        DeviceIdentity::Import(_) | DeviceIdentity::Export(_) => {
            unreachable!("import and export are dispatched to the bulk module")
        }
    }
}

fn thumbprints(credentials: &Credentials) -> Result<(String, String)> {
    let primary = credentials
        .primary_thumbprint
        .clone()
        .ok_or_else(|| CliError::new("self_signed authentication needs --primary-thumbprint"))?;
    let secondary = credentials
        .secondary_thumbprint
        .clone()
        .unwrap_or_else(|| primary.clone());
    Ok((primary, secondary))
}

fn current_method(device: &Device) -> AuthMethod {
    match device.authentication.as_ref().and_then(|a| a.auth_type) {
        Some(AuthenticationType::SelfSigned) => AuthMethod::SelfSigned,
        Some(AuthenticationType::CertificateAuthority) => AuthMethod::X509Ca,
        _ => AuthMethod::SharedPrivateKey,
    }
}

fn current_keys(device: &Device) -> (String, String) {
    let keys = device
        .authentication
        .as_ref()
        .and_then(|a| a.symmetric_key.clone())
        .unwrap_or_default();
    (
        keys.primary_key.unwrap_or_default(),
        keys.secondary_key.unwrap_or_default(),
    )
}

fn current_thumbprints(device: &Device) -> Result<(String, String)> {
    let t = device
        .authentication
        .as_ref()
        .and_then(|a| a.x509_thumbprint.clone())
        .unwrap_or_default();
    match (t.primary_thumbprint, t.secondary_thumbprint) {
        (Some(p), s) => {
            let s = s.unwrap_or_else(|| p.clone());
            Ok((p, s))
        }
        _ => Err(CliError::new(
            "the identity has no thumbprint: give --primary-thumbprint",
        )),
    }
}

/// `module-identity …`.
pub async fn module_identity(rm: &RegistryManager, out: Output, cmd: ModuleIdentity) -> Result<()> {
    match cmd {
        ModuleIdentity::Create {
            device_id,
            module_id,
            credentials,
            managed_by,
        } => {
            let managed_by = managed_by.as_deref();
            let request = match credentials.auth_method.unwrap_or_default() {
                AuthMethod::SharedPrivateKey => rm.create_module_with_sas(
                    &device_id,
                    &module_id,
                    managed_by,
                    credentials.primary_key.unwrap_or_default(),
                    credentials.secondary_key.unwrap_or_default(),
                ),
                AuthMethod::SelfSigned => {
                    let (primary, secondary) = thumbprints(&credentials)?;
                    rm.create_module_with_x509(
                        &device_id, &module_id, managed_by, primary, secondary,
                    )
                }
                AuthMethod::X509Ca => {
                    rm.create_module_with_certificate_authority(&device_id, &module_id, managed_by)
                }
            };
            out.one(&request.await?)
        }
        ModuleIdentity::Show {
            device_id,
            module_id,
        } => out.one(&rm.get_module(device_id, module_id).await?),
        ModuleIdentity::List { device_id } => out.list(
            &rm.get_modules(device_id).await?,
            &["deviceId", "moduleId", "managedBy", "connectionState"],
        ),
        ModuleIdentity::Update {
            device_id,
            module_id,
            credentials,
            etag,
        } => {
            let current = rm.get_module(&device_id, &module_id).await?;
            let etag = etag.map_or_else(|| current.etag.clone(), ETag::new);
            let managed_by = current.managed_by.as_deref();
            let kind = current.authentication.as_ref().and_then(|a| a.auth_type);
            let method = credentials.auth_method.unwrap_or(match kind {
                Some(AuthenticationType::SelfSigned) => AuthMethod::SelfSigned,
                Some(AuthenticationType::CertificateAuthority) => AuthMethod::X509Ca,
                _ => AuthMethod::SharedPrivateKey,
            });
            let request = match method {
                AuthMethod::SharedPrivateKey => {
                    let keys = current
                        .authentication
                        .as_ref()
                        .and_then(|a| a.symmetric_key.clone())
                        .unwrap_or_default();
                    rm.update_module_with_sas(
                        &device_id,
                        &module_id,
                        managed_by,
                        etag,
                        credentials
                            .primary_key
                            .or(keys.primary_key)
                            .unwrap_or_default(),
                        credentials
                            .secondary_key
                            .or(keys.secondary_key)
                            .unwrap_or_default(),
                    )
                }
                AuthMethod::SelfSigned => {
                    let (primary, secondary) = thumbprints(&credentials)?;
                    rm.update_module_with_x509(
                        &device_id, &module_id, managed_by, etag, primary, secondary,
                    )
                }
                AuthMethod::X509Ca => rm.update_module_with_certificate_authority(
                    &device_id, &module_id, managed_by, etag,
                ),
            };
            out.one(&request.await?)
        }
        ModuleIdentity::Delete {
            device_id,
            module_id,
            etag,
        } => {
            let mut request = rm.delete_module(&device_id, &module_id);
            if let Some(etag) = etag {
                request = request.etag(ETag::new(etag));
            }
            request.await?;
            out.event(
                &format!("deleted module {device_id}/{module_id}"),
                &json!({"deleted": {"deviceId": device_id, "moduleId": module_id}}),
            )
        }
    }
}

/// The patch a twin write describes.
fn twin_patch(write: &TwinWriteArgs) -> Result<TwinPatch> {
    if let Some(doc) = &write.json {
        return Ok(TwinPatch::from_json(json_arg(doc, "--json")?)?);
    }
    if write.tags.is_none() && write.desired.is_none() {
        return Err(CliError::new(
            "nothing to write: give --tags, --desired or --json",
        ));
    }
    let mut patch = TwinPatch::new();
    if let Some(tags) = &write.tags {
        patch = patch.tags(json_arg(tags, "--tags")?)?;
    }
    if let Some(desired) = &write.desired {
        patch = patch.desired(json_arg(desired, "--desired")?)?;
    }
    Ok(patch)
}

/// `device-twin …`.
pub async fn device_twin(rm: &RegistryManager, out: Output, cmd: TwinCommand) -> Result<()> {
    let twin = match cmd {
        TwinCommand::Show { device_id } => rm.get_twin(device_id).await?,
        TwinCommand::Update { device_id, write } => {
            rm.update_twin(device_id, twin_patch(&write)?)
                .etag(etag_or_any(write.etag.as_deref()))
                .await?
        }
        TwinCommand::Replace { device_id, write } => {
            rm.replace_twin(device_id, twin_patch(&write)?)
                .etag(etag_or_any(write.etag.as_deref()))
                .await?
        }
    };
    out.one(&twin)
}

/// `module-twin …`.
pub async fn module_twin(rm: &RegistryManager, out: Output, cmd: ModuleTwinCommand) -> Result<()> {
    let twin = match cmd {
        ModuleTwinCommand::Show {
            device_id,
            module_id,
        } => rm.get_module_twin(device_id, module_id).await?,
        ModuleTwinCommand::Update {
            device_id,
            module_id,
            write,
        } => {
            rm.update_module_twin(device_id, module_id, twin_patch(&write)?)
                .etag(etag_or_any(write.etag.as_deref()))
                .await?
        }
        ModuleTwinCommand::Replace {
            device_id,
            module_id,
            write,
        } => {
            rm.replace_module_twin(device_id, module_id, twin_patch(&write)?)
                .etag(etag_or_any(write.etag.as_deref()))
                .await?
        }
    };
    out.one(&twin)
}

/// Every row of `query` (following continuation tokens), or the first `top`.
pub async fn query_rows(
    rm: &RegistryManager,
    query: &str,
    page_size: u32,
    top: Option<usize>,
) -> Result<Vec<Value>> {
    let stream = rm
        .query_as::<Value>(query)
        .page_size(page_size)
        .into_stream();
    let rows: Vec<Value> = match top {
        Some(n) => stream.take(n).try_collect().await?,
        None => stream.try_collect().await?,
    };
    Ok(rows)
}

/// `query`.
pub async fn query(rm: &RegistryManager, out: Output, args: QueryArgs) -> Result<()> {
    let rows = query_rows(rm, &args.query, args.page_size, args.top).await?;
    let devices = rows
        .first()
        .is_some_and(|r| r.get("deviceId").is_some() && r.get("etag").is_some());
    let columns: &[&str] = if devices { &DEVICE_COLUMNS } else { &[] };
    out.list(&rows, columns)
}

fn method_of(args: &MethodArgs) -> Result<CloudToDeviceMethod> {
    Ok(CloudToDeviceMethod::new(&args.method_name)
        .payload(json_arg(&args.method_payload, "--method-payload")?)
        .response_timeout_in_seconds(args.timeout)
        .connect_timeout_in_seconds(args.connect_timeout))
}

/// `invoke-device-method` and `invoke-module-method`.
pub async fn invoke_method(
    rm: &RegistryManager,
    out: Output,
    args: MethodArgs,
    module_id: Option<String>,
) -> Result<()> {
    let method = method_of(&args)?;
    let result = match module_id {
        Some(module) => {
            rm.invoke_device_module_method(&args.device_id, module, &method)
                .await?
        }
        None => rm.invoke_device_method(&args.device_id, &method).await?,
    };
    out.one(&result)
}

/// `c2d-message …`.
pub async fn c2d_message(rm: &RegistryManager, out: Output, cmd: C2dCommand) -> Result<()> {
    match cmd {
        C2dCommand::Send {
            device_id,
            data,
            props,
            ack,
        } => {
            let mut props = parse_props(props.as_deref())?;
            let message_id = match props.iter().find(|(k, _)| k == "messageId") {
                Some((_, id)) => id.clone(),
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    props.push(("messageId".to_owned(), id.clone()));
                    id
                }
            };
            if let Some(ack) = ack {
                props.push(("ack".to_owned(), ack));
            }
            rm.send_c2d_message(&device_id, data, props).await?;
            out.event(
                &format!("sent message {message_id} to {device_id}"),
                &json!({"deviceId": device_id, "messageId": message_id}),
            )
        }
        C2dCommand::Purge { device_id } => {
            let purged = rm.c2d_client()?.purge_queue(&device_id).await?;
            out.event(
                &format!(
                    "purged {} message(s) from {device_id}'s queue",
                    purged.total_messages_purged
                ),
                &json!({"deviceId": purged.device_id, "totalMessagesPurged": purged.total_messages_purged}),
            )
        }
    }
}

/// `monitor-feedback`.
pub async fn monitor_feedback(rm: &RegistryManager, out: Output, args: FeedbackArgs) -> Result<()> {
    let client = rm.c2d_client()?;
    let mut receiver = client.feedback_receiver().await?;
    let deadline =
        (args.timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(args.timeout));
    if out.format == crate::args::OutputFormat::Table {
        eprintln!("waiting for feedback records (Ctrl-C to stop)…");
    }
    loop {
        let next = receiver.next_batch();
        let batch = tokio::select! {
            b = next => b?,
            () = sleep_until(deadline) => {
                if let Some(id) = &args.wait_on_id {
                    return Err(CliError::new(format!(
                        "no feedback for message {id} within {} s", args.timeout
                    )));
                }
                break;
            }
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(batch) = batch else { break };
        for record in &batch.records {
            let status = format!("{:?}", record.status);
            let id = record.original_message_id.clone().unwrap_or_default();
            out.event(
                &format!(
                    "feedback: message {id} to {}: {} {}",
                    record.device_id,
                    status.to_lowercase(),
                    record.description.as_deref().unwrap_or("")
                ),
                &json!({
                    "originalMessageId": record.original_message_id,
                    "deviceId": record.device_id,
                    "statusCode": status,
                    "description": record.description,
                    "enqueuedTimeUtc": record.enqueued_time_utc,
                }),
            )?;
            if args.wait_on_id.as_deref() == Some(id.as_str()) {
                receiver.close().await;
                return Ok(());
            }
        }
    }
    receiver.close().await;
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `latest`, `earliest`, or an RFC 3339 time.
fn start_position(text: &str) -> Result<iothub_events::EventPosition> {
    match text {
        "latest" | "now" => Ok(iothub_events::EventPosition::Latest),
        "earliest" | "beginning" => Ok(iothub_events::EventPosition::Earliest),
        other => chrono::DateTime::parse_from_rfc3339(other)
            .map(|t| iothub_events::EventPosition::EnqueuedAfter(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                CliError::new(format!(
                    "--start '{other}' is not latest, earliest or an RFC 3339 time"
                ))
            }),
    }
}

/// One telemetry event as printed: body (JSON when it is JSON), origin, and optionally its
/// properties.
pub fn event_json(event: &iothub_events::DeviceEvent, properties: bool) -> Value {
    let body = serde_json::from_slice::<Value>(&event.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.body).into_owned()));
    let mut line = json!({
        "origin": event.device_id,
        "module": event.module_id,
        "partition": event.partition,
        "enqueuedTime": event.enqueued_time.to_rfc3339(),
        "payload": body,
    });
    if properties {
        let mut system = serde_json::Map::new();
        for (name, value) in [
            ("message-id", &event.message_id),
            ("correlation-id", &event.correlation_id),
            ("content-type", &event.content_type),
            ("content-encoding", &event.content_encoding),
        ] {
            if let Some(v) = value {
                system.insert(name.to_owned(), json!(v));
            }
        }
        for (k, v) in &event.system_properties {
            system.insert(k.clone(), json!(v));
        }
        line["properties"] = json!({
            "system": system,
            "application": event.properties,
        });
    }
    line
}

/// `monitor-events`.
pub async fn monitor_events(hub: &Hub, out: Output, args: EventsArgs) -> Result<()> {
    let reader = hub
        .event_reader(args.amqps_port)
        .consumer_group(&args.consumer_group)
        .start(start_position(&args.start)?)
        .build()?;
    // Fail fast on a bad login or consumer group, before waiting for events.
    let partitions = reader.partition_ids().await?;
    if out.format == crate::args::OutputFormat::Table {
        eprintln!(
            "reading {} partition(s) of the built-in endpoint, consumer group {} (Ctrl-C to stop)…",
            partitions.len(),
            args.consumer_group
        );
    }
    let mut stream = reader.stream();
    let deadline =
        (args.timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(args.timeout));
    let mut seen = 0u64;
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            () = sleep_until(deadline) => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        let event = event?;
        if let Some(id) = &args.device_id
            && event.device_id.as_deref() != Some(id.as_str())
        {
            continue;
        }
        let line = event_json(&event, args.properties);
        let origin = match (&event.device_id, &event.module_id) {
            (Some(d), Some(m)) => format!("{d}/{m}"),
            (Some(d), None) => d.clone(),
            _ => "(unknown)".to_owned(),
        };
        let mut text = format!(
            "{} {origin}: {}",
            event.enqueued_time.format("%H:%M:%S%.3f"),
            String::from_utf8_lossy(&event.body)
        );
        if args.properties {
            let mut props: Vec<String> = event
                .properties
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            for (name, value) in [
                ("$.mid", &event.message_id),
                ("$.cid", &event.correlation_id),
                ("$.ct", &event.content_type),
                ("$.ce", &event.content_encoding),
            ] {
                if let Some(v) = value {
                    props.push(format!("{name}={v}"));
                }
            }
            if !props.is_empty() {
                text.push_str(&format!("  [{}]", props.join(";")));
            }
        }
        out.event(&text, &line)?;
        seen += 1;
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(())
}

/// `configuration …`.
pub async fn configuration(
    rm: &RegistryManager,
    out: Output,
    cmd: ConfigurationCommand,
) -> Result<()> {
    match cmd {
        ConfigurationCommand::Create {
            config_id,
            content,
            target_condition,
            priority,
            labels,
            metrics,
        } => {
            let configuration = Configuration {
                id: config_id,
                content: from_json::<ConfigurationContent>(
                    json_arg(&content, "--content")?,
                    "--content",
                )?,
                target_condition,
                priority,
                labels: match labels {
                    Some(l) => from_json(json_arg(&l, "--labels")?, "--labels")?,
                    None => Default::default(),
                },
                metrics: match metrics {
                    Some(m) => {
                        from_json::<ConfigurationMetrics>(json_arg(&m, "--metrics")?, "--metrics")?
                    }
                    None => Default::default(),
                },
                ..Default::default()
            };
            out.one(&rm.create_configuration(&configuration).await?)
        }
        ConfigurationCommand::Show { config_id } => {
            out.one(&rm.get_configuration(config_id).await?)
        }
        ConfigurationCommand::List { top } => {
            let mut request = rm.get_configurations();
            if let Some(top) = top {
                request = request.max_count(top);
            }
            out.list(
                &request.await?,
                &["id", "priority", "targetCondition", "createdTimeUtc"],
            )
        }
        ConfigurationCommand::Update {
            config_id,
            target_condition,
            priority,
            labels,
            etag,
        } => {
            let mut configuration = rm.get_configuration(&config_id).await?;
            if let Some(t) = target_condition {
                configuration.target_condition = t;
            }
            if let Some(p) = priority {
                configuration.priority = p;
            }
            if let Some(l) = labels {
                configuration.labels = from_json(json_arg(&l, "--labels")?, "--labels")?;
            }
            let etag = match etag {
                Some(e) => ETag::new(e),
                None => configuration.etag.clone().unwrap_or_else(ETag::any),
            };
            out.one(&rm.update_configuration(&configuration, etag).await?)
        }
        ConfigurationCommand::Delete { config_id, etag } => {
            let mut request = rm.delete_configuration(&config_id);
            if let Some(etag) = etag {
                request = request.etag(ETag::new(etag));
            }
            request.await?;
            out.event(
                &format!("deleted configuration {config_id}"),
                &json!({"deleted": config_id}),
            )
        }
    }
}

/// `edge …`.
pub async fn edge(rm: &RegistryManager, out: Output, cmd: EdgeCommand) -> Result<()> {
    match cmd {
        EdgeCommand::SetModules { device_id, content } => {
            let content: ConfigurationContent =
                from_json(json_arg(&content, "--content")?, "--content")?;
            rm.apply_configuration_on_edge_device(&device_id, &content)
                .await?;
            out.event(
                &format!("applied the deployment to {device_id}"),
                &json!({"deviceId": device_id, "applied": true}),
            )
        }
    }
}

/// `stats`.
pub async fn stats(rm: &RegistryManager, out: Output) -> Result<()> {
    let registry = rm.get_device_registry_statistics().await?;
    let service = rm.get_service_statistics().await?;
    out.one(&json!({
        "totalDeviceCount": registry.total_device_count,
        "enabledDeviceCount": registry.enabled_device_count,
        "disabledDeviceCount": registry.disabled_device_count,
        "connectedDeviceCount": service.connected_device_count,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn props_parse_in_order() -> Result<()> {
        let props = parse_props(Some("a=1;contentType=application/json;;b=x=y"))?;
        assert_eq!(
            props,
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("contentType".to_owned(), "application/json".to_owned()),
                ("b".to_owned(), "x=y".to_owned()),
            ]
        );
        assert!(parse_props(Some("novalue")).is_err());
        assert!(parse_props(Some("=v")).is_err());
        assert!(parse_props(None)?.is_empty());
        Ok(())
    }

    #[test]
    fn start_positions() {
        assert!(matches!(
            start_position("latest"),
            Ok(iothub_events::EventPosition::Latest)
        ));
        assert!(matches!(
            start_position("2026-01-02T03:04:05Z"),
            Ok(iothub_events::EventPosition::EnqueuedAfter(_))
        ));
        assert!(start_position("yesterday").is_err());
    }
}
