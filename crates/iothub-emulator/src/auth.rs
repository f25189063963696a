//! Shared access policies and checking of `Authorization: SharedAccessSignature …` headers.
//!
//! The emulator has the four policies a new IoT hub has. Every policy's primary key is the
//! hub key (the well-known development key unless `--key` / `IOTHUB_EMULATOR_KEY` says
//! otherwise); its secondary key is derived from the hub key (base64 of
//! HMAC-SHA256(hub key, `"iothub-emulator secondary key"`)), so it changes with it.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use iothub_auth::SharedAccessKey;
use iothub_auth::sas::ParsedSasToken;

use crate::error::ApiError;

/// The well-known development key: the default primary key of every shared access policy.
///
/// Like Azurite's account key it is public: anyone can use it, so it only suits local
/// development and tests.
pub const WELL_KNOWN_KEY: &str = "fn7wc1CC5ph2SKbjGWFAc4d8rOEm2PzOMsg7g7KAD9I=";

/// Rights a shared access policy grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights(u8);

impl Rights {
    /// Read the identity registry.
    pub const REGISTRY_READ: Rights = Rights(1);
    /// Read and write the identity registry.
    pub const REGISTRY_WRITE: Rights = Rights(2);
    /// Service-facing endpoints: twins, queries, direct methods, cloud-to-device.
    pub const SERVICE_CONNECT: Rights = Rights(4);
    /// Device-facing endpoints.
    pub const DEVICE_CONNECT: Rights = Rights(8);

    /// Union of two sets.
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Whether every right in `other` is in `self`. Write access to the registry implies read.
    pub const fn contains(self, other: Rights) -> bool {
        let effective = if self.0 & Rights::REGISTRY_WRITE.0 != 0 {
            self.0 | Rights::REGISTRY_READ.0
        } else {
            self.0
        };
        effective & other.0 == other.0
    }

    /// Whether any right in `other` is in `self`.
    pub const fn intersects(self, other: Rights) -> bool {
        let mut i = 0;
        while i < 8 {
            let bit = 1u8 << i;
            if other.0 & bit != 0 && self.contains(Rights(bit)) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// A shared access policy with its keys.
pub struct Policy {
    name: &'static str,
    rights: Rights,
    primary: SharedAccessKey,
    secondary: SharedAccessKey,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("rights", &self.rights)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Policy name (`skn`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Rights granted.
    pub fn rights(&self) -> Rights {
        self.rights
    }

    /// Primary key, base64.
    pub fn primary_key(&self) -> String {
        self.primary.to_base64()
    }

    /// Secondary key, base64.
    pub fn secondary_key(&self) -> String {
        self.secondary.to_base64()
    }
}

/// The hub's shared access policies.
#[derive(Debug)]
pub struct Policies {
    list: Vec<Policy>,
}

/// Names of the built-in policies, in the order IoT Hub lists them.
pub const POLICY_NAMES: [&str; 4] = [
    "iothubowner",
    "service",
    "registryRead",
    "registryReadWrite",
];

impl Policies {
    /// The four standard policies, all keyed from `hub_key`.
    pub fn new(hub_key: &SharedAccessKey) -> Self {
        let secondary_bytes = hub_key.sign(b"iothub-emulator secondary key");
        let make = |name: &'static str, rights: Rights| -> Policy {
            Policy {
                name,
                rights,
                primary: hub_key.clone(),
                secondary: SharedAccessKey::from_bytes(secondary_bytes.to_vec())
                    .unwrap_or_else(|_| hub_key.clone()),
            }
        };
        Policies {
            list: vec![
                make(
                    "iothubowner",
                    Rights::REGISTRY_WRITE
                        .union(Rights::SERVICE_CONNECT)
                        .union(Rights::DEVICE_CONNECT),
                ),
                make("service", Rights::SERVICE_CONNECT),
                make("registryRead", Rights::REGISTRY_READ),
                make("registryReadWrite", Rights::REGISTRY_WRITE),
            ],
        }
    }

    /// Looks a policy up by name (case-sensitive, as IoT Hub does).
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.list.iter().find(|p| p.name == name)
    }

    /// All policies.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.list.iter()
    }
}

/// Facts about the request needed to check its token.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// `Host` header, if any.
    pub host_header: Option<&'a str>,
    /// The port the HTTPS listener is bound to.
    pub https_port: u16,
    /// The request path (for path-scoped tokens).
    pub path: &'a str,
    /// Current time.
    pub now: SystemTime,
}

/// Splits `host[:port]` (with `[v6]` support) into lower-case host and optional port.
fn split_host_port(authority: &str) -> (String, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host.to_ascii_lowercase(), after.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_ascii_lowercase(), Some(p)),
        _ => (authority.to_ascii_lowercase(), None),
    }
}

/// Checks the `Authorization` header and returns the policy it was signed with.
pub fn authenticate<'p>(
    policies: &'p Policies,
    header: Option<&str>,
    req: RequestInfo<'_>,
) -> Result<&'p Policy, ApiError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Err(ApiError::unauthorized(
            "The request has no Authorization header; send a SharedAccessSignature made with a shared access policy key.",
        ));
    };
    if header
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        return Err(ApiError::unauthorized(
            "Azure AD (Bearer) tokens are not supported by the emulator; use a SharedAccessSignature made with a shared access policy key.",
        ));
    }
    let token = ParsedSasToken::parse(header).map_err(|e| {
        ApiError::unauthorized(format!(
            "The Authorization header is not a valid SharedAccessSignature: {e}."
        ))
    })?;
    let Some(key_name) = token.key_name.as_deref() else {
        return Err(ApiError::unauthorized(
            "Device-scoped tokens (without skn) cannot call the service API; use a shared access policy.",
        ));
    };
    let Some(policy) = policies.get(key_name) else {
        return Err(ApiError::unauthorized(format!(
            "The shared access policy '{}' does not exist on this hub.",
            key_name.escape_default()
        )));
    };
    if !(token.verify(&policy.primary) || token.verify(&policy.secondary)) {
        return Err(ApiError::unauthorized(format!(
            "The signature of the SharedAccessSignature does not match policy '{}'.",
            policy.name
        )));
    }
    if token.is_expired(req.now) {
        return Err(ApiError::unauthorized(
            "The SharedAccessSignature has expired.",
        ));
    }
    check_resource(&token.resource_uri, req)?;
    Ok(policy)
}

/// A token's resource URI in parts: lower-case host, optional port, and the path scope.
struct Resource {
    host: String,
    port: Option<String>,
    scope: String,
}

fn parse_resource(resource_uri: &str) -> Resource {
    let lower = resource_uri.trim().to_ascii_lowercase();
    let without_scheme = ["https://", "http://", "amqps://", "sb://"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
        .unwrap_or(&lower);
    let (authority, scope) = match without_scheme.find('/') {
        Some(i) => (&without_scheme[..i], &without_scheme[i..]),
        None => (without_scheme, ""),
    };
    let (host, port) = split_host_port(authority);
    Resource {
        host,
        port: port.map(str::to_owned),
        scope: scope.trim_end_matches('/').to_owned(),
    }
}

fn check_resource(resource_uri: &str, req: RequestInfo<'_>) -> Result<(), ApiError> {
    let Resource { host, port, scope } = parse_resource(resource_uri);
    let port = port.as_deref();
    let (header_host, header_port) = match req.host_header {
        Some(h) => {
            let (host, port) = split_host_port(h.trim());
            (Some(host), port.map(str::to_owned))
        }
        None => (None, None),
    };
    let host_ok = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1")
        || header_host.as_deref() == Some(host.as_str());
    let port_ok = match port {
        None => true,
        Some(p) => {
            p.parse::<u16>().ok() == Some(req.https_port) || header_port.as_deref() == Some(p)
        }
    };
    if !(host_ok && port_ok) {
        return Err(ApiError::unauthorized(format!(
            "The SharedAccessSignature is for '{}', not for this hub (use localhost or 127.0.0.1, optionally with port {}).",
            resource_uri.escape_default(),
            req.https_port
        )));
    }
    if !scope.is_empty() {
        let scope = scope.as_str();
        let path = req.path.to_ascii_lowercase();
        let within = path == scope
            || path
                .strip_prefix(scope)
                .is_some_and(|rest| rest.starts_with('/'));
        if !within {
            return Err(ApiError::unauthorized(format!(
                "The SharedAccessSignature is scoped to '{scope}', which does not cover this request."
            )));
        }
    }
    Ok(())
}

/// Why [`authenticate_token`] refused a token, with the status a CBS `put-token` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefusal {
    /// 401, or 404 for an `sb://` token naming an Event Hubs entity this hub does not have
    /// (Event Hubs answers `put-token` for an unknown entity with 404 "The messaging entity
    /// … could not be found", which its clients report as such).
    pub status: i32,
    /// Why, never the token itself.
    pub message: String,
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for TokenRefusal {
    fn from(message: String) -> Self {
        Self {
            status: 401,
            message,
        }
    }
}

impl From<&str> for TokenRefusal {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// A token presented through CBS `put-token` or SASL PLAIN (AMQP), checked like a REST
/// `Authorization` header: a shared access policy token whose signature matches, not
/// expired, for one of this hub's host names (`localhost`, `127.0.0.1`, `::1`, optionally
/// with one of `ports`, with or without an `amqps://` or `sb://` scheme), and whose policy
/// grants `needed`. The token's scope is the hub itself, a path under `/messages/`, or the
/// Event Hubs-compatible entity `entity` (`sb://localhost/{entity}`, as the Event Hubs
/// clients ask for it). Returns the policy and the token's expiry.
///
/// # Errors
/// A [`TokenRefusal`] that says why the token was refused (never the token itself).
pub fn authenticate_token<'p>(
    policies: &'p Policies,
    token: &str,
    ports: &[u16],
    entity: &str,
    needed: Rights,
    now: SystemTime,
) -> Result<(&'p Policy, SystemTime), TokenRefusal> {
    if token
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        return Err("Azure AD (Bearer) tokens are not supported by the emulator; put a SharedAccessSignature made with a shared access policy key.".into());
    }
    if !token.trim_start().starts_with("SharedAccessSignature") {
        return Err("The token is not a SharedAccessSignature (`SharedAccessSignature sr=…&sig=…&se=…&skn=…`).".into());
    }
    let token = ParsedSasToken::parse(token).map_err(|e| {
        TokenRefusal::from(format!(
            "The token is not a valid SharedAccessSignature: {e}."
        ))
    })?;
    let key_name = token.key_name.as_deref().ok_or_else(|| {
        TokenRefusal::from("Device-scoped tokens (without skn) cannot use the service endpoints; use a shared access policy.")
    })?;
    let policy = policies.get(key_name).ok_or_else(|| {
        TokenRefusal::from(format!(
            "The shared access policy '{}' does not exist on this hub.",
            key_name.escape_default()
        ))
    })?;
    // IoT Hub signs with the key's bytes (base64-decoded); Event Hubs clients, on the
    // built-in endpoint, sign with the key's text, as Service Bus does. Both are accepted.
    let as_text =
        |key: &SharedAccessKey| SharedAccessKey::from_bytes(key.to_base64().into_bytes()).ok();
    let signed = [&policy.primary, &policy.secondary].into_iter().any(|key| {
        token.verify(key) || as_text(key).is_some_and(|text_key| token.verify(&text_key))
    });
    if !signed {
        return Err(format!(
            "The signature of the SharedAccessSignature does not match policy '{}'.",
            policy.name
        )
        .into());
    }
    if token.is_expired(now) {
        return Err("The SharedAccessSignature has expired.".into());
    }
    let Resource { host, port, scope } = parse_resource(&token.resource_uri);
    let host_ok = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1");
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| ports.contains(&p)));
    let entity = format!("/{}", entity.to_ascii_lowercase());
    let scope_ok = scope.is_empty()
        || scope.starts_with("/messages/")
        || scope == entity
        || scope.starts_with(&format!("{entity}/"));
    let event_hubs_audience = token
        .resource_uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("sb://"));
    if host_ok && port_ok && !scope_ok && event_hubs_audience {
        return Err(TokenRefusal {
            status: 404,
            message: format!(
                "The messaging entity '{}' could not be found; this hub's Event Hubs-compatible entity is '{}'.",
                token.resource_uri.escape_default(),
                &entity[1..]
            ),
        });
    }
    if !(host_ok && port_ok && scope_ok) {
        return Err(format!(
            "The SharedAccessSignature is for '{}', not for this hub's service endpoints.",
            token.resource_uri.escape_default()
        )
        .into());
    }
    if !policy.rights.contains(needed) {
        return Err(format!(
            "The shared access policy '{}' does not grant the rights this operation needs (service connect).",
            policy.name
        )
        .into());
    }
    let expiry = std::time::UNIX_EPOCH + std::time::Duration::from_secs(token.expiry);
    Ok((policy, expiry))
}

/// A SASL PLAIN login as IoT Hub takes it from service clients (the `az iot` CLI, the
/// Event Hubs samples that resolve the built-in endpoint): the user name is
/// `{policy}@sas.root.{hub}` and the password a SAS token signed with that policy's key.
/// `{hub}` is what the client took for the hub's name: the first label of the host name it
/// was given (`localhost`, `localhost:8443`, `127`) or the emulator's `hub_name`. The token
/// is checked by [`authenticate_token`] and must be signed by the policy the user names.
/// Returns the token's expiry.
///
/// # Errors
/// A message that says why the login was refused (never the password).
pub fn authenticate_sasl_plain(
    policies: &Policies,
    user: &str,
    password: &str,
    ports: &[u16],
    hub_name: &str,
    now: SystemTime,
) -> Result<SystemTime, String> {
    let Some((policy, hub)) = user.split_once("@sas.root.") else {
        return Err(format!(
            "The SASL PLAIN user '{}' is not of the form {{policy}}@sas.root.{{hub}}.",
            user.escape_default()
        ));
    };
    let label = hub.split(':').next().unwrap_or_default();
    let hub_ok = ["localhost", "127", hub_name]
        .iter()
        .any(|h| label.eq_ignore_ascii_case(h));
    if !hub_ok {
        return Err(format!(
            "The SASL PLAIN user names hub '{}'; this hub is '{hub_name}' (or localhost).",
            hub.escape_default()
        ));
    }
    let (signed_by, until) = authenticate_token(
        policies,
        password,
        ports,
        hub_name,
        Rights::SERVICE_CONNECT,
        now,
    )
    .map_err(|refusal| refusal.message)?;
    if !signed_by.name.eq_ignore_ascii_case(policy) {
        return Err(format!(
            "The SASL PLAIN user names policy '{}' but the token is signed by policy '{}'.",
            policy.escape_default(),
            signed_by.name
        ));
    }
    Ok(until)
}

/// Why a device-side login was refused. Each maps to the answer IoT Hub gives (the MQTT
/// CONNACK return code, the HTTPS 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceAuthError {
    /// The password is not a well-formed SAS token, or the token names another identity or
    /// hub (CONNACK 4, bad user name or password).
    #[error("{0}")]
    Malformed(String),
    /// The token's signature matches none of the identity's keys, or the identity does not
    /// use SAS (CONNACK 5, not authorized).
    #[error("{0}")]
    WrongKey(String),
    /// The token has expired (CONNACK 5).
    #[error("The SharedAccessSignature has expired.")]
    Expired,
}

/// The identity a device-scoped token is for: `sr` is `{host}/devices/{id}` or
/// `{host}/devices/{id}/modules/{mid}` (URL-encoded or raw, any host: the local hub answers
/// for whatever host name the client was given).
fn token_identity(resource_uri: &str) -> Option<(String, Option<String>)> {
    let lower = resource_uri.trim();
    let without_scheme = ["https://", "http://", "amqps://", "mqtts://"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
        .unwrap_or(lower);
    let (_, path) = without_scheme.split_once('/')?;
    let rest = path.strip_prefix("devices/")?;
    let rest = rest.trim_end_matches('/');
    match rest.split_once("/modules/") {
        Some((device, module))
            if !device.is_empty() && !module.is_empty() && !module.contains('/') =>
        {
            Some((device.to_owned(), Some(module.to_owned())))
        }
        None if !rest.is_empty() && !rest.contains('/') => Some((rest.to_owned(), None)),
        _ => None,
    }
}

/// Checks a device-side SAS token (MQTT password, HTTPS `Authorization` of the device
/// routes) for `device_id`/`module_id`: either device-scoped (`sr` = the identity's resource,
/// no `skn`, signed with one of `keys`, the identity's primary and secondary keys) or a
/// shared access policy token with *device connect* (`skn`, signed with the policy's key).
/// Returns the token's expiry.
///
/// # Errors
/// [`DeviceAuthError`] saying why (never the token or key).
pub fn authenticate_device(
    policies: &Policies,
    token: &str,
    device_id: &str,
    module_id: Option<&str>,
    keys: &[&str],
    now: SystemTime,
) -> Result<SystemTime, DeviceAuthError> {
    let parsed = ParsedSasToken::parse(token).map_err(|e| {
        DeviceAuthError::Malformed(format!(
            "The password is not a valid SharedAccessSignature: {e}."
        ))
    })?;
    let verified = match parsed.key_name.as_deref() {
        None => {
            let names = token_identity(&parsed.resource_uri);
            let expected = (device_id.to_owned(), module_id.map(str::to_owned));
            if names.as_ref() != Some(&expected) {
                return Err(DeviceAuthError::Malformed(format!(
                    "The SharedAccessSignature is for '{}', not for {}.",
                    parsed.resource_uri.escape_default(),
                    match module_id {
                        Some(m) => format!("module '{device_id}/{m}'"),
                        None => format!("device '{device_id}'"),
                    }
                )));
            }
            if keys.is_empty() {
                return Err(DeviceAuthError::WrongKey(
                    "The identity does not authenticate with symmetric keys.".into(),
                ));
            }
            keys.iter()
                .filter_map(|k| SharedAccessKey::from_base64(k).ok())
                .any(|k| parsed.verify(&k))
        }
        Some(name) => match policies.get(name) {
            Some(p) if p.rights.contains(Rights::DEVICE_CONNECT) => {
                parsed.verify(&p.primary) || parsed.verify(&p.secondary)
            }
            _ => {
                return Err(DeviceAuthError::WrongKey(format!(
                    "The shared access policy '{}' does not exist or does not grant device connect.",
                    name.escape_default()
                )));
            }
        },
    };
    if !verified {
        return Err(DeviceAuthError::WrongKey(
            "The signature of the SharedAccessSignature does not match the identity's keys.".into(),
        ));
    }
    if parsed.is_expired(now) {
        return Err(DeviceAuthError::Expired);
    }
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(parsed.expiry))
}

/// Decodes and checks a hub key given on the command line or to the builder.
pub fn parse_hub_key(text: &str) -> Result<SharedAccessKey, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| "the key is not valid base64".to_owned())?;
    if !(16..=64).contains(&bytes.len()) {
        return Err(format!(
            "the key decodes to {} bytes; use 16 to 64 bytes (IoT Hub keys are 32)",
            bytes.len()
        ));
    }
    SharedAccessKey::from_bytes(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_auth::sas::generate_sas_token;
    use std::time::{Duration, UNIX_EPOCH};

    fn policies() -> Policies {
        Policies::new(&parse_hub_key(WELL_KNOWN_KEY).unwrap_or_else(|_| panic!("well-known key")))
    }

    fn info(now: u64) -> RequestInfo<'static> {
        RequestInfo {
            host_header: Some("localhost:8443"),
            https_port: 8443,
            path: "/devices/d1",
            now: UNIX_EPOCH + Duration::from_secs(now),
        }
    }

    fn token(p: &Policies, name: &str, sr: &str, expiry: u64) -> String {
        let policy = p.get(name).unwrap_or_else(|| panic!("policy"));
        generate_sas_token(sr, &policy.primary, Some(name), expiry)
            .expose()
            .to_owned()
    }

    #[test]
    fn rights() {
        let owner = Rights::REGISTRY_WRITE.union(Rights::SERVICE_CONNECT);
        assert!(owner.contains(Rights::REGISTRY_READ));
        assert!(!Rights::REGISTRY_READ.contains(Rights::REGISTRY_WRITE));
        assert!(
            Rights::REGISTRY_WRITE.intersects(Rights::REGISTRY_READ.union(Rights::SERVICE_CONNECT))
        );
        assert!(!Rights::SERVICE_CONNECT.intersects(Rights::REGISTRY_READ));
    }

    #[test]
    fn accepts_valid_tokens() {
        let p = policies();
        for sr in [
            "localhost:8443",
            "localhost",
            "LOCALHOST",
            "127.0.0.1:8443",
            "localhost/devices",
        ] {
            let t = token(&p, "iothubowner", sr, 2000);
            assert!(authenticate(&p, Some(&t), info(1000)).is_ok(), "{sr}");
        }
    }

    #[test]
    fn rejects_bad_tokens() {
        let p = policies();
        let expired = token(&p, "iothubowner", "localhost", 999);
        assert!(authenticate(&p, Some(&expired), info(1000)).is_err());
        let other_host = token(&p, "iothubowner", "myhub.azure-devices.net", 2000);
        assert!(authenticate(&p, Some(&other_host), info(1000)).is_err());
        let other_port = token(&p, "iothubowner", "localhost:9999", 2000);
        assert!(authenticate(&p, Some(&other_port), info(1000)).is_err());
        let scoped_elsewhere = token(&p, "iothubowner", "localhost/twins", 2000);
        assert!(authenticate(&p, Some(&scoped_elsewhere), info(1000)).is_err());
        let good = token(&p, "iothubowner", "localhost", 2000);
        let other_key = parse_hub_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .unwrap_or_else(|_| panic!("key"));
        let forged = generate_sas_token("localhost", &other_key, Some("iothubowner"), 2000);
        assert!(authenticate(&p, Some(forged.expose()), info(1000)).is_err());
        let tampered = good.replace("se=2000", "se=3000");
        assert!(authenticate(&p, Some(&tampered), info(1000)).is_err());
        let unknown = good.replace("skn=iothubowner", "skn=nobody");
        assert!(authenticate(&p, Some(&unknown), info(1000)).is_err());
        assert!(authenticate(&p, Some("Bearer abc"), info(1000)).is_err());
        assert!(authenticate(&p, None, info(1000)).is_err());
        let key = parse_hub_key(WELL_KNOWN_KEY).unwrap_or_else(|_| panic!("key"));
        let device = generate_sas_token("localhost/devices/d1", &key, None, 2000);
        assert!(authenticate(&p, Some(device.expose()), info(1000)).is_err());
    }

    /// CBS `put-token` statuses: the hub and its entity are accepted; another `sb://`
    /// entity on this host is 404 (as Event Hubs answers), any other scope or host 401.
    #[test]
    fn amqp_token_statuses() {
        let p = policies();
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let check = |sr: &str| {
            let t = token(&p, "service", sr, 2000);
            authenticate_token(&p, &t, &[5671], "hubentity", Rights::SERVICE_CONNECT, now)
                .map(|_| ())
                .map_err(|refusal| refusal.status)
        };
        for sr in [
            "localhost",
            "sb://localhost/hubentity",
            "sb://localhost:5671/HubEntity/ConsumerGroups/$Default/Partitions/0",
            "amqps://localhost/messages/events",
        ] {
            assert_eq!(check(sr), Ok(()), "{sr}");
        }
        for (sr, status) in [
            ("sb://localhost/no-such-entity", 404),
            ("sb://localhost:5671/other/ConsumerGroups/$Default", 404),
            ("sb://otherhost/hubentity", 401),
            ("localhost/twins", 401),
            ("sb://localhost:9999/other", 401),
        ] {
            assert_eq!(check(sr), Err(status), "{sr}");
        }
        let refusal = authenticate_token(
            &p,
            &token(&p, "service", "sb://localhost/no-such-entity", 2000),
            &[],
            "hubentity",
            Rights::SERVICE_CONNECT,
            now,
        )
        .err();
        assert!(
            refusal.is_some_and(|r| r.message.contains("could not be found")),
            "Event Hubs' wording"
        );
    }

    #[test]
    fn device_tokens() {
        let p = policies();
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let k = SharedAccessKey::from_base64(key).unwrap_or_else(|_| panic!("key"));
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let device = generate_sas_token("localhost:8443/devices/d1", &k, None, 2000);
        let ok = authenticate_device(&p, device.expose(), "d1", None, &[key], now);
        assert_eq!(ok, Ok(UNIX_EPOCH + Duration::from_secs(2000)));
        assert!(matches!(
            authenticate_device(&p, device.expose(), "d2", None, &[key], now),
            Err(DeviceAuthError::Malformed(_))
        ));
        assert!(matches!(
            authenticate_device(&p, device.expose(), "d1", Some("m"), &[key], now),
            Err(DeviceAuthError::Malformed(_))
        ));
        let other = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
        assert!(matches!(
            authenticate_device(&p, device.expose(), "d1", None, &[other], now),
            Err(DeviceAuthError::WrongKey(_))
        ));
        let late = UNIX_EPOCH + Duration::from_secs(2000);
        assert_eq!(
            authenticate_device(&p, device.expose(), "d1", None, &[key], late),
            Err(DeviceAuthError::Expired)
        );
        let module = generate_sas_token(
            "myhub.azure-devices.net/devices/d1/modules/m1",
            &k,
            None,
            2000,
        );
        assert!(
            authenticate_device(&p, module.expose(), "d1", Some("m1"), &[other, key], now).is_ok()
        );
        let owner = token(&p, "iothubowner", "localhost/devices/d9", 2000);
        assert!(authenticate_device(&p, &owner, "d9", None, &[], now).is_ok());
        let service = token(&p, "service", "localhost", 2000);
        assert!(authenticate_device(&p, &service, "d9", None, &[], now).is_err());
        assert!(authenticate_device(&p, "not a token", "d9", None, &[], now).is_err());
    }

    #[test]
    fn default_secondary_key_is_the_documented_one() {
        let p = policies();
        let secondary = p.get("iothubowner").map(|p| p.secondary_key());
        assert_eq!(
            secondary.as_deref(),
            Some("0lXhxQl7gVSqArm8/NJfl3OTtl00NWol+D3Md3TsTsw=")
        );
    }

    #[test]
    fn secondary_key_works_and_differs() {
        let p = policies();
        let policy = p.get("service").unwrap_or_else(|| panic!("policy"));
        assert_ne!(policy.primary_key(), policy.secondary_key());
        let t = generate_sas_token("localhost", &policy.secondary, Some("service"), 2000);
        assert!(authenticate(&p, Some(t.expose()), info(1000)).is_ok());
    }
}
