//! Which hub the CLI talks to: from `--connection-string` / `IOTHUB_CONNECTION_STRING`, or
//! from a running local hub's data directory (`--local`), plus an optional private CA.

use std::path::{Path, PathBuf};

use iothub_registry::RegistryManager;

use crate::args::HubArgs;
use crate::error::{CliError, Result};

/// A resolved hub: its service connection string, the CA to trust, and what is known of its
/// AMQPS port.
#[derive(Clone)]
pub struct Hub {
    connection_string: String,
    ca_pem: Option<String>,
    /// The AMQPS port, when known (the local hub's, read from its data directory).
    pub amqps_port: Option<u16>,
    /// The built-in endpoint's Event Hubs-compatible connection string, when known.
    eventhub_connection_string: Option<String>,
    /// The local hub's data directory, with `--local`.
    pub local_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("amqps_port", &self.amqps_port)
            .field("local_dir", &self.local_dir)
            .finish_non_exhaustive()
    }
}

fn read_text(path: &Path, what: &str, hint: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| CliError::new(format!("cannot read {what} {}: {e}{hint}", path.display())))
}

/// The port of `Endpoint=sb://host:port/` in an Event Hubs connection string; 5671 without one.
fn endpoint_port(eventhub_connection_string: &str) -> Option<u16> {
    let endpoint = eventhub_connection_string
        .split(';')
        .find_map(|part| part.strip_prefix("Endpoint="))?;
    let authority = endpoint
        .strip_prefix("sb://")?
        .split('/')
        .next()
        .unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None => Some(iothub_emulator::DEFAULT_AMQPS_PORT),
    }
}

impl Hub {
    /// Resolves the global options.
    ///
    /// # Errors
    /// When no hub is named, or the local hub's files or the CA file cannot be read.
    pub fn resolve(args: &HubArgs) -> Result<Hub> {
        let mut hub = if let Some(dir) = &args.local {
            Hub::local(dir)?
        } else if let Some(cs) = &args.connection_string {
            Hub {
                connection_string: cs.trim().to_owned(),
                ca_pem: None,
                amqps_port: None,
                eventhub_connection_string: None,
                local_dir: None,
            }
        } else {
            return Err(CliError::new(
                "no hub: pass --connection-string, set IOTHUB_CONNECTION_STRING, or use --local \
                 for a local hub started with `iothub emulator start`",
            ));
        };
        if let Some(ca) = &args.ca {
            hub.ca_pem = Some(read_text(ca, "CA certificate", "")?);
        }
        Ok(hub)
    }

    /// The local hub whose data directory is `dir`.
    fn local(dir: &Path) -> Result<Hub> {
        let hint = format!(
            " (is a local hub using this data directory? start one with `iothub emulator start --data-dir {}`)",
            dir.display()
        );
        let connection_string = read_text(
            &dir.join(iothub_emulator::CONNECTION_STRING_FILE),
            "the local hub's connection string",
            &hint,
        )?;
        let ca_pem = read_text(
            &dir.join(iothub_emulator::CA_FILE),
            "the local hub's CA certificate",
            &hint,
        )?;
        let eventhub =
            std::fs::read_to_string(dir.join(iothub_emulator::EVENTHUB_CONNECTION_STRING_FILE))
                .ok()
                .map(|t| t.trim().to_owned());
        Ok(Hub {
            connection_string,
            ca_pem: Some(ca_pem),
            amqps_port: eventhub.as_deref().and_then(endpoint_port),
            eventhub_connection_string: eventhub,
            local_dir: Some(dir.to_owned()),
        })
    }

    /// A hub given directly (the quickstart's embedded one).
    pub fn direct(
        connection_string: String,
        ca_pem: String,
        amqps_port: u16,
        eventhub_connection_string: String,
    ) -> Hub {
        Hub {
            connection_string,
            ca_pem: Some(ca_pem),
            amqps_port: Some(amqps_port),
            eventhub_connection_string: Some(eventhub_connection_string),
            local_dir: None,
        }
    }

    /// The CA certificate to trust, in PEM, if any.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The host name in the connection string (`myhub.azure-devices.net`, `localhost:8443`).
    pub fn host_name(&self) -> String {
        self.connection_string
            .split(';')
            .find_map(|p| p.trim().strip_prefix("HostName="))
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether the host name carries a port (the local hub on a port other than 443), so
    /// AMQPS and MQTTS ports cannot be assumed and WebSockets on the HTTPS port are used.
    pub fn host_has_port(&self) -> bool {
        self.host_name().contains(':')
    }

    /// A registry manager for this hub.
    ///
    /// # Errors
    /// For a malformed connection string or CA certificate.
    pub fn registry(&self) -> Result<RegistryManager> {
        let mut builder = RegistryManager::builder().connection_string(&self.connection_string);
        if let Some(ca) = &self.ca_pem {
            builder = builder.add_root_certificate_pem(ca.clone().into_bytes());
        }
        if let Some(port) = self.amqps_port {
            builder = builder.amqps_port(port);
        } else if self.host_has_port() {
            builder = builder.c2d_transport(iothub_c2d::Transport::AmqpWebSockets);
        }
        // A command line should not wait long on a hub that is down: four attempts, about
        // a second and a half (bulk imports restore the SDK's default policy).
        builder =
            builder.retry_policy(iothub_registry::RetryPolicy::default().with_max_attempts(4));
        builder.build().map_err(CliError::from)
    }

    /// Adds what the user can do about a connection or TLS failure to `error`.
    pub fn hint(&self, error: CliError) -> CliError {
        let text = error.to_string();
        let hint = if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
            Some(
                "the hub's certificate is not trusted: pass its CA with --ca FILE, or use --local"
                    .to_owned(),
            )
        } else if text.contains("onnection refused") || text.contains("cannot connect") {
            Some(match &self.local_dir {
                Some(dir) => format!(
                    "is the local hub running? start it with `iothub emulator start --data-dir {}`",
                    dir.display()
                ),
                None if self.host_has_port() => "is the hub running? for a local hub, --local=DIR also finds its AMQPS port (or pass --amqps-port)".to_owned(),
                None => "is the hub reachable from here?".to_owned(),
            })
        } else {
            None
        };
        match hint {
            Some(h) => CliError::new(format!("{text} ({h})")).with_status(error.status),
            None => error,
        }
    }

    /// A reader of the built-in endpoint, through the hub's redirect (or the local hub's
    /// Event Hubs-compatible connection string).
    ///
    /// # Errors
    /// For a malformed connection string or CA certificate.
    pub fn event_reader(&self, amqps_port: Option<u16>) -> iothub_events::EventReaderBuilder {
        let mut builder = iothub_events::EventReader::builder();
        builder = match (&self.eventhub_connection_string, amqps_port) {
            (Some(eh), None) => builder.eventhub_connection_string(eh),
            _ => builder.connection_string(&self.connection_string),
        };
        if let Some(port) = amqps_port.or(self.amqps_port) {
            builder = builder.amqps_port(port);
        }
        if let Some(ca) = &self.ca_pem {
            builder = builder.add_root_certificate_pem(ca.clone().into_bytes());
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ports() {
        assert_eq!(
            endpoint_port("Endpoint=sb://localhost:5999/;SharedAccessKeyName=s;EntityPath=e"),
            Some(5999)
        );
        assert_eq!(
            endpoint_port("Endpoint=sb://localhost/;SharedAccessKeyName=s"),
            Some(5671)
        );
        assert_eq!(endpoint_port("SharedAccessKeyName=s"), None);
    }
}
