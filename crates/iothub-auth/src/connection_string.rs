//! IoT Hub connection strings.

use std::fmt;
use std::str::FromStr;

use crate::{ConnectionStringError, SharedAccessKey};

/// A parsed IoT Hub connection string.
///
/// Service strings look like `HostName=h;SharedAccessKeyName=policy;SharedAccessKey=base64`;
/// device and module strings carry `DeviceId`, optionally `ModuleId` and `GatewayHostName`.
/// Part names are matched case-insensitively, values keep their case, and unknown parts
/// are ignored. `Display` and `Debug` replace the key with `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    host_name: String,
    shared_access_key_name: Option<String>,
    shared_access_key: Option<SharedAccessKey>,
    device_id: Option<String>,
    module_id: Option<String>,
    gateway_host_name: Option<String>,
}

impl ConnectionString {
    /// Parses a connection string; the error names the missing or malformed part.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        let mut host_name = None;
        let mut key_name = None;
        let mut key_text = None;
        let mut device_id = None;
        let mut module_id = None;
        let mut gateway = None;
        for (i, part) in text.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue; // tolerate a trailing `;`
            }
            let (name, value) = part
                .split_once('=')
                .ok_or(ConnectionStringError::MalformedPart { index: i + 1 })?;
            let (name, value) = (name.trim(), value.trim());
            let slot = match name.to_ascii_lowercase().as_str() {
                "hostname" => (&mut host_name, "HostName"),
                "sharedaccesskeyname" => (&mut key_name, "SharedAccessKeyName"),
                "sharedaccesskey" => (&mut key_text, "SharedAccessKey"),
                "deviceid" => (&mut device_id, "DeviceId"),
                "moduleid" => (&mut module_id, "ModuleId"),
                "gatewayhostname" => (&mut gateway, "GatewayHostName"),
                _ => continue,
            };
            if value.is_empty() {
                return Err(ConnectionStringError::EmptyValue(slot.1.to_owned()));
            }
            if slot.0.is_some() {
                return Err(ConnectionStringError::Duplicate(slot.1.to_owned()));
            }
            *slot.0 = Some(value.to_owned());
        }
        let host_name = host_name.ok_or(ConnectionStringError::Missing("HostName"))?;
        let shared_access_key = key_text
            .as_deref()
            .map(SharedAccessKey::from_base64)
            .transpose()
            .map_err(ConnectionStringError::InvalidKey)?;
        if key_name.is_some() && shared_access_key.is_none() {
            return Err(ConnectionStringError::Missing("SharedAccessKey"));
        }
        if key_name.is_none() && device_id.is_none() {
            return Err(if shared_access_key.is_some() {
                ConnectionStringError::KeyWithoutOwner
            } else {
                ConnectionStringError::Missing("SharedAccessKeyName")
            });
        }
        if module_id.is_some() && device_id.is_none() {
            return Err(ConnectionStringError::Missing("DeviceId"));
        }
        Ok(Self {
            host_name,
            shared_access_key_name: key_name,
            shared_access_key,
            device_id,
            module_id,
            gateway_host_name: gateway,
        })
    }

    /// Builds a service connection string from its parts.
    pub fn for_service(
        host_name: impl Into<String>,
        key_name: impl Into<String>,
        key: SharedAccessKey,
    ) -> Self {
        Self {
            host_name: host_name.into(),
            shared_access_key_name: Some(key_name.into()),
            shared_access_key: Some(key),
            device_id: None,
            module_id: None,
            gateway_host_name: None,
        }
    }

    /// `HostName`: the hub's host, possibly with a `:port` (e.g. a local emulator).
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// `SharedAccessKeyName`: the shared access policy, for service strings.
    pub fn shared_access_key_name(&self) -> Option<&str> {
        self.shared_access_key_name.as_deref()
    }

    /// `SharedAccessKey`, decoded.
    pub fn shared_access_key(&self) -> Option<&SharedAccessKey> {
        self.shared_access_key.as_ref()
    }

    /// `DeviceId`, for device and module strings.
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    /// `ModuleId`, for module strings.
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// `GatewayHostName`: where a device connects when it differs from `HostName`.
    pub fn gateway_host_name(&self) -> Option<&str> {
        self.gateway_host_name.as_deref()
    }

    /// True for a service (policy) connection string.
    pub fn is_service(&self) -> bool {
        self.shared_access_key_name.is_some()
    }

    /// The connection string with its key in clear text, for handing to another process.
    pub fn to_secret_string(&self) -> String {
        self.render(true)
    }

    fn render(&self, with_secret: bool) -> String {
        let mut out = format!("HostName={}", self.host_name);
        if let Some(v) = &self.device_id {
            out.push_str(&format!(";DeviceId={v}"));
        }
        if let Some(v) = &self.module_id {
            out.push_str(&format!(";ModuleId={v}"));
        }
        if let Some(v) = &self.shared_access_key_name {
            out.push_str(&format!(";SharedAccessKeyName={v}"));
        }
        if let Some(k) = &self.shared_access_key {
            if with_secret {
                out.push_str(&format!(";SharedAccessKey={}", k.to_base64()));
            } else {
                out.push_str(";SharedAccessKey=<redacted>");
            }
        }
        if let Some(v) = &self.gateway_host_name {
            out.push_str(&format!(";GatewayHostName={v}"));
        }
        out
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ConnectionString {
    /// Renders the string with the key replaced by `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectionString")
            .field(&self.render(false))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn parses_service_string() {
        let cs = ConnectionString::parse(&format!(
            "HostName=hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"
        ))
        .unwrap();
        assert_eq!(cs.host_name(), "hub.azure-devices.net");
        assert_eq!(cs.shared_access_key_name(), Some("iothubowner"));
        assert_eq!(cs.shared_access_key().unwrap().to_base64(), KEY);
        assert!(cs.is_service());
    }

    #[test]
    fn parses_device_and_module_strings() {
        let cs: ConnectionString = format!(
            "HostName=h;DeviceId=d1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=localhost:8883"
        )
        .parse()
        .unwrap();
        assert_eq!(cs.device_id(), Some("d1"));
        assert_eq!(cs.module_id(), Some("m1"));
        assert_eq!(cs.gateway_host_name(), Some("localhost:8883"));
        assert!(!cs.is_service());
    }

    #[test]
    fn errors_name_the_part() {
        use ConnectionStringError::*;
        let e = |s: &str| ConnectionString::parse(s).unwrap_err();
        assert_eq!(e(""), Empty);
        assert_eq!(
            e("SharedAccessKeyName=a;SharedAccessKey=AAAA"),
            Missing("HostName")
        );
        assert_eq!(
            e("HostName=h;SharedAccessKeyName=a"),
            Missing("SharedAccessKey")
        );
        assert_eq!(e("HostName=h"), Missing("SharedAccessKeyName"));
        assert_eq!(e("HostName=h;SharedAccessKey=AAAA"), KeyWithoutOwner);
        assert_eq!(e("HostName=h;oops"), MalformedPart { index: 2 });
        assert_eq!(
            e("HostName=;SharedAccessKeyName=a"),
            EmptyValue("HostName".into())
        );
        assert_eq!(e("HostName=a;HostName=b"), Duplicate("HostName".into()));
        assert_eq!(
            e("HostName=h;SharedAccessKeyName=a;SharedAccessKey=not base64!"),
            InvalidKey(crate::KeyError::NotBase64)
        );
        assert_eq!(
            e("HostName=h;ModuleId=m;SharedAccessKeyName=p;SharedAccessKey=AAAA"),
            Missing("DeviceId")
        );
    }

    #[test]
    fn secrets_never_printed() {
        let text = format!("HostName=h;SharedAccessKeyName=p;SharedAccessKey={KEY}");
        let cs = ConnectionString::parse(&text).unwrap();
        for shown in [
            format!("{cs}"),
            format!("{cs:?}"),
            format!("{:?}", cs.shared_access_key()),
        ] {
            assert!(!shown.contains(KEY), "{shown}");
            assert!(!shown.contains("MDEy"), "{shown}");
        }
        assert_eq!(cs.to_secret_string(), text);
        let err =
            ConnectionString::parse("HostName=h;SharedAccessKeyName=p;SharedAccessKey=s3cr3t!!")
                .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
    }
}
