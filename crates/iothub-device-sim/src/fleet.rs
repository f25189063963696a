//! Many simulated devices in one process: [`Fleet`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use crate::{DeviceConfig, DeviceOptions, Error, SimulatedDevice};

/// How a fleet connects and behaves.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// How many connections are set up at once by [`Fleet::start`] (default 32, at least 1).
    pub concurrency: usize,
    /// How each device behaves.
    pub device: DeviceOptions,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            concurrency: 32,
            device: DeviceOptions::default(),
        }
    }
}

impl FleetOptions {
    /// Sets up at most `concurrency` connections at once.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Gives every device `options`.
    #[must_use]
    pub fn with_device_options(mut self, options: DeviceOptions) -> Self {
        self.device = options;
        self
    }
}

/// N simulated devices in one process, for load tests and reconnect storms.
///
/// ```no_run
/// # async fn demo(configs: Vec<iothub_device_sim::DeviceConfig>) {
/// use std::time::{Duration, Instant};
/// use iothub_device_sim::{Fleet, FleetOptions};
/// let fleet = Fleet::start(configs, FleetOptions::default().with_concurrency(64)).await;
/// println!("{} connected, {} failed", fleet.connected(), fleet.failures().len());
/// let storm = Instant::now();
/// fleet.reconnect_all();
/// let back = fleet.wait_reconnected(1, Duration::from_secs(60)).await;
/// println!("{back} reconnected in {:?}", storm.elapsed());
/// fleet.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<Arc<SimulatedDevice>>,
    failures: Vec<(String, Error)>,
}

impl Fleet {
    /// Connects a device for each configuration, [`FleetOptions::concurrency`] at a time.
    /// Devices that cannot connect are listed in [`Fleet::failures`]; the others, in the
    /// order of their configurations, in [`Fleet::devices`].
    pub async fn start(configs: Vec<DeviceConfig>, options: FleetOptions) -> Fleet {
        let device = &options.device;
        let results: Vec<_> = futures::stream::iter(configs)
            .map(|config| async move {
                let id = config.client_id();
                (id, SimulatedDevice::connect(config, device.clone()).await)
            })
            .buffered(options.concurrency.max(1))
            .collect()
            .await;
        let mut fleet = Fleet {
            devices: Vec::new(),
            failures: Vec::new(),
        };
        for (id, result) in results {
            match result {
                Ok(device) => fleet.devices.push(Arc::new(device)),
                Err(e) => fleet.failures.push((id, e)),
            }
        }
        fleet
    }

    /// Connects `n` devices, the configuration of the `i`-th being `config(i)`, as
    /// [`Fleet::start`] does.
    pub async fn start_with(
        n: usize,
        config: impl FnMut(usize) -> DeviceConfig,
        options: FleetOptions,
    ) -> Fleet {
        Fleet::start((0..n).map(config).collect(), options).await
    }

    /// The devices that connected (shared, so that each can be driven from its own task).
    pub fn devices(&self) -> &[Arc<SimulatedDevice>] {
        &self.devices
    }

    /// The client ids of the devices that could not connect, with the reason.
    pub fn failures(&self) -> &[(String, Error)] {
        &self.failures
    }

    /// How many devices are connected and subscribed now.
    pub fn connected(&self) -> usize {
        self.devices.iter().filter(|d| d.is_connected()).count()
    }

    /// Makes every device drop its connection at the same moment and reconnect (a reconnect
    /// storm). Returns at once; see [`Fleet::wait_reconnected`].
    pub fn reconnect_all(&self) {
        for device in &self.devices {
            device.reconnect();
        }
    }

    /// Waits up to `wait` until every device has made more than `connections` connections
    /// and is connected and subscribed; returns how many are. After one storm on a fresh
    /// fleet, pass 1.
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
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Disconnects every device (MQTT DISCONNECT), all at once, including those whose
    /// handles were cloned out of [`Fleet::devices`].
    pub async fn shutdown(self) {
        futures::future::join_all(self.devices.iter().map(|d| d.disconnect())).await;
    }
}
