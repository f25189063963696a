//! Direct methods and statistics.

use std::time::Duration;

use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::client::Op;
use crate::devices::output;
use crate::error::Result;
use crate::model::{
    CloudToDeviceMethod, CloudToDeviceMethodResult, RegistryStatistics, ServiceStatistics,
};
use crate::retry::Idempotency;

/// IoT Hub's default response timeout for a direct method.
const DEFAULT_METHOD_RESPONSE_TIMEOUT: u64 = 30;

/// Attempt timeout for a direct method: the method's own timeouts plus a margin, so the
/// client does not give up before IoT Hub does. The retry policy's total deadline is
/// stretched to at least this long for the call.
fn method_attempt_timeout(rm: &RegistryManager, method: &CloudToDeviceMethod) -> Duration {
    let seconds =
        |v: Option<i32>, default: u64| v.map_or(default, |s| u64::try_from(s).unwrap_or(0));
    let budget = Duration::from_secs(
        seconds(
            method.response_timeout_in_seconds,
            DEFAULT_METHOD_RESPONSE_TIMEOUT,
        ) + seconds(method.connect_timeout_in_seconds, 0)
            + 15,
    );
    budget.max(rm.attempt_timeout)
}

impl RegistryManager {
    /// Invokes a direct method on a device (`POST /twins/{id}/methods`). A `None` payload is
    /// sent as `""`, as in Python. Not retried unless IoT Hub throttled it or the connection
    /// was never made, since the device may already have run it. A device that is not
    /// connected fails with
    /// [`ServiceError::is_device_not_online`](crate::ServiceError::is_device_not_online) (404103).
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::CloudToDeviceMethod;
    /// let call = CloudToDeviceMethod::new("reboot").payload(serde_json::json!({"delay": 5}));
    /// match rm.invoke_device_method("dev1", &call).await {
    ///     Ok(answer) => println!("status {:?} payload {:?}", answer.status, answer.payload),
    ///     Err(e) if e.is_device_not_online() => println!("dev1 is offline"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn invoke_device_method(
        &self,
        device_id: &str,
        direct_method_request: &CloudToDeviceMethod,
    ) -> Result<CloudToDeviceMethodResult> {
        let rest = self.rest();
        let body = wire::CloudToDeviceMethod::from(direct_method_request);
        let body = &body;
        self.run(
            Op::new("invoke_device_method", Idempotency::Unsafe)
                .device(device_id)
                .attempt_timeout(Some(method_attempt_timeout(self, direct_method_request))),
            || async move { output(rest.devices_invoke_method(device_id, body)).await },
        )
        .await
    }

    /// Invokes a direct method on a module (`POST /twins/{id}/modules/{mid}/methods`).
    pub async fn invoke_device_module_method(
        &self,
        device_id: &str,
        module_id: &str,
        direct_method_request: &CloudToDeviceMethod,
    ) -> Result<CloudToDeviceMethodResult> {
        let rest = self.rest();
        let body = wire::CloudToDeviceMethod::from(direct_method_request);
        let body = &body;
        self.run(
            Op::new("invoke_device_module_method", Idempotency::Unsafe)
                .device(device_id)
                .module(module_id)
                .attempt_timeout(Some(method_attempt_timeout(self, direct_method_request))),
            || async move { output(rest.modules_invoke_method(device_id, module_id, body)).await },
        )
        .await
    }

    /// Device counts of the identity registry (`GET /statistics/devices`).
    pub async fn get_device_registry_statistics(&self) -> Result<RegistryStatistics> {
        let rest = self.rest();
        self.run(
            Op::new("get_device_registry_statistics", Idempotency::Safe),
            || async move { output(rest.statistics_get_device_statistics()).await },
        )
        .await
    }

    /// Service statistics: connected devices (`GET /statistics/service`).
    pub async fn get_service_statistics(&self) -> Result<ServiceStatistics> {
        let rest = self.rest();
        self.run(
            Op::new("get_service_statistics", Idempotency::Safe),
            || async move { output(rest.statistics_get_service_statistics()).await },
        )
        .await
    }
}
