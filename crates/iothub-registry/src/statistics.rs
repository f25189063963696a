//! Registry and service statistics.

use crate::RegistryManager;
use crate::error::Result;
use crate::model::{RegistryStatistics, ServiceStatistics};
use crate::operation::{Op, into_future, output};
use crate::retry::Idempotency;

/// A read of the registry's device counts (`get_device_registry_statistics`), ready to send:
/// `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct RegistryStatisticsRequest<'a> {
    rm: &'a RegistryManager,
}

impl RegistryStatisticsRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_device_registry_statistics`].
    pub async fn send(self) -> Result<RegistryStatistics> {
        let rest = self.rm.rest();
        self.rm
            .run(
                Op::new("get_device_registry_statistics", Idempotency::Safe),
                || async move { output(rest.statistics_get_device_statistics()).await },
            )
            .await
    }
}

into_future!(RegistryStatisticsRequest => RegistryStatistics);

/// A read of the service statistics (`get_service_statistics`), ready to send: `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct ServiceStatisticsRequest<'a> {
    rm: &'a RegistryManager,
}

impl ServiceStatisticsRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::get_service_statistics`].
    pub async fn send(self) -> Result<ServiceStatistics> {
        let rest = self.rm.rest();
        self.rm
            .run(
                Op::new("get_service_statistics", Idempotency::Safe),
                || async move { output(rest.statistics_get_service_statistics()).await },
            )
            .await
    }
}

into_future!(ServiceStatisticsRequest => ServiceStatistics);

impl RegistryManager {
    /// Device counts of the identity registry: total, enabled, disabled
    /// (`GET /statistics/devices`).
    ///
    /// # Errors
    ///
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (the policy needs
    /// `RegistryRead`), [`Error::is_throttled`](crate::Error::is_throttled) once retries are
    /// spent, and the transport errors of every call.
    pub fn get_device_registry_statistics(&self) -> RegistryStatisticsRequest<'_> {
        RegistryStatisticsRequest { rm: self }
    }

    /// Service statistics: devices connected now (`GET /statistics/service`).
    ///
    /// # Errors
    ///
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized) (the policy needs
    /// `ServiceConnect`), [`Error::is_throttled`](crate::Error::is_throttled) once retries are
    /// spent, and the transport errors of every call.
    pub fn get_service_statistics(&self) -> ServiceStatisticsRequest<'_> {
        ServiceStatisticsRequest { rm: self }
    }
}
