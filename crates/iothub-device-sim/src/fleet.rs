//! Many simulated devices in one process: [`Fleet`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use crate::{DeviceConfig, DeviceOptions, Error, SimulatedDevice};

/// How a fleet connects.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Connections being set up at once (default 64).
    pub concurrency: usize,
    /// How each device behaves.
    pub device: DeviceOptions,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            concurrency: 64,
            device: DeviceOptions::default(),
        }
    }
}

/// N simulated devices in one process.
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<Arc<SimulatedDevice>>,
    failures: Vec<(String, Error)>,
}

impl Fleet {
    /// Connects every configuration, `options.concurrency` at a time. Devices that cannot
    /// connect are listed in [`Fleet::failures`]; the others are in the fleet.
    pub async fn start(configs: Vec<DeviceConfig>, options: FleetOptions) -> Fleet {
        let device_options = options.device.clone();
        let results: Vec<(String, Result<SimulatedDevice, Error>)> = futures::stream::iter(configs)
            .map(|config| {
                let options = device_options.clone();
                async move {
                    let id = config.client_id();
                    (id, SimulatedDevice::connect(config, options).await)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let mut devices = Vec::new();
        let mut failures = Vec::new();
        for (id, result) in results {
            match result {
                Ok(device) => devices.push(Arc::new(device)),
                Err(e) => failures.push((id, e)),
            }
        }
        Fleet { devices, failures }
    }

    /// The connected devices (in no particular order).
    pub fn devices(&self) -> &[Arc<SimulatedDevice>] {
        &self.devices
    }

    /// The devices that could not connect, with why.
    pub fn failures(&self) -> &[(String, Error)] {
        &self.failures
    }

    /// How many devices are connected now.
    pub fn connected(&self) -> usize {
        self.devices.iter().filter(|d| d.is_connected()).count()
    }

    /// Makes every device drop its connection and reconnect at once (a reconnect storm).
    pub fn reconnect_all(&self) {
        for device in &self.devices {
            device.reconnect();
        }
    }

    /// Waits until every device has made more than `connections` connections and is
    /// connected, up to `wait`. Returns how many are.
    pub async fn wait_reconnected(&self, connections: u64, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let back = self
                .devices
                .iter()
                .filter(|d| d.connections() > connections && d.is_connected())
                .count();
            if back == self.devices.len() || tokio::time::Instant::now() >= deadline {
                return back;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Disconnects every device.
    pub async fn shutdown(self) {
        let stops = self
            .devices
            .into_iter()
            .filter_map(|d| Arc::try_unwrap(d).ok())
            .map(SimulatedDevice::disconnect);
        futures::future::join_all(stops).await;
    }
}
