//! Direct methods on devices and modules.

use std::time::Duration;

use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::error::Result;
use crate::model::{CloudToDeviceMethod, CloudToDeviceMethodResult};
use crate::operation::{Op, into_future, output};
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

/// A direct method invocation, ready to send: `.await` it. Resolves to the device's answer.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct InvokeMethodRequest<'a> {
    rm: &'a RegistryManager,
    device_id: String,
    module_id: Option<String>,
    attempt_timeout: Duration,
    body: wire::CloudToDeviceMethod,
}

impl InvokeMethodRequest<'_> {
    /// Sends the request (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::invoke_device_method`].
    pub async fn send(self) -> Result<CloudToDeviceMethodResult> {
        let rest = self.rm.rest();
        let body = &self.body;
        let device_id = self.device_id.as_str();
        let attempt_timeout = Some(self.attempt_timeout);
        match self.module_id.as_deref() {
            None => {
                self.rm
                    .run(
                        Op::new("invoke_device_method", Idempotency::Unsafe)
                            .device(device_id)
                            .attempt_timeout(attempt_timeout),
                        || async move { output(rest.devices_invoke_method(device_id, body)).await },
                    )
                    .await
            }
            Some(module_id) => {
                self.rm
                    .run(
                        Op::new("invoke_device_module_method", Idempotency::Unsafe)
                            .device(device_id)
                            .module(module_id)
                            .attempt_timeout(attempt_timeout),
                        || async move {
                            output(rest.modules_invoke_method(device_id, module_id, body)).await
                        },
                    )
                    .await
            }
        }
    }
}

into_future!(InvokeMethodRequest => CloudToDeviceMethodResult);

impl RegistryManager {
    /// Invokes a direct method on a device (`POST /twins/{id}/methods`) and waits for its
    /// answer: up to the method's `response_timeout_in_seconds` (IoT Hub's default 30 s) plus
    /// its `connect_timeout_in_seconds`. A `None` payload is sent as `""`, as in Python.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use iothub_registry::CloudToDeviceMethod;
    /// let call = CloudToDeviceMethod::new("reboot").payload(serde_json::json!({"delay": 5}));
    /// match rm.invoke_device_method("dev1", &call).await {
    ///     Ok(answer) => println!("status {:?} payload {:?}", answer.status, answer.payload),
    ///     Err(e) if e.is_device_not_online() => println!("dev1 is offline"),
    ///     Err(e) if e.is_not_found() => println!("dev1 does not exist"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_device_not_online`](crate::Error::is_device_not_online) (404103) when the
    /// device is not connected or has not subscribed to methods, or did not answer in time;
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404001) when it does not exist
    /// (false for 404103); [`Error::is_timeout`](crate::Error::is_timeout) when IoT Hub did
    /// not answer within the method's timeouts plus 15 s;
    /// [`Error::is_bad_request`](crate::Error::is_bad_request),
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. Not retried unless IoT Hub throttled it or the
    /// connection was never made, since the device may already have run it.
    pub fn invoke_device_method(
        &self,
        device_id: impl Into<String>,
        direct_method_request: impl Into<CloudToDeviceMethod>,
    ) -> InvokeMethodRequest<'_> {
        let method = direct_method_request.into();
        InvokeMethodRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: None,
            attempt_timeout: method_attempt_timeout(self, &method),
            body: wire::CloudToDeviceMethod::from(&method),
        }
    }

    /// Invokes a direct method on a module (`POST /twins/{id}/modules/{mid}/methods`), as
    /// [`invoke_device_method`](Self::invoke_device_method) does on a device.
    ///
    /// # Errors
    ///
    /// As [`invoke_device_method`](Self::invoke_device_method); a missing module is
    /// [`Error::is_not_found`](crate::Error::is_not_found) (404010).
    pub fn invoke_device_module_method(
        &self,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
        direct_method_request: impl Into<CloudToDeviceMethod>,
    ) -> InvokeMethodRequest<'_> {
        let method = direct_method_request.into();
        InvokeMethodRequest {
            rm: self,
            device_id: device_id.into(),
            module_id: Some(module_id.into()),
            attempt_timeout: method_attempt_timeout(self, &method),
            body: wire::CloudToDeviceMethod::from(&method),
        }
    }
}
