"""Shared access policies: IoTHubRegistryManager with a wrong key, an unknown policy and the
narrower built-in policies. IoT Hub answers 401 IotHubUnauthorizedAccess when the token is
invalid or the policy lacks the right for the operation."""

import os

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod

from conformance import (
    Checks,
    assert_eq,
    expect_http_error,
    new_key,
    registry_manager,
)

owner = registry_manager()
checks = Checks("access")
owner.create_device_with_sas("acc-1", new_key(), new_key(), "enabled")


def with_setting(cs, name, value):
    parts = [p for p in cs.split(";") if p]
    return ";".join("%s=%s" % (name, value) if p.split("=", 1)[0] == name else p for p in parts)


def policy(var):
    return IoTHubRegistryManager.from_connection_string(os.environ[var])


@checks
def wrong_key_is_401():
    cs = with_setting(os.environ["IOTHUB_CONNECTION_STRING"], "SharedAccessKey", new_key())
    rm = IoTHubRegistryManager.from_connection_string(cs)
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.get_device, "acc-1")
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.create_device_with_sas, "acc-x", new_key(), new_key(), "enabled")


@checks
def unknown_policy_is_401():
    cs = with_setting(os.environ["IOTHUB_CONNECTION_STRING"], "SharedAccessKeyName", "nosuchpolicy")
    rm = IoTHubRegistryManager.from_connection_string(cs)
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.get_device, "acc-1")


@checks
def registry_read_can_read_but_not_write():
    rm = policy("IOTHUB_REGISTRY_READ_CONNECTION_STRING")
    assert_eq(rm.get_device("acc-1").device_id, "acc-1", "get_device with registryRead")
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.create_device_with_sas, "acc-2", new_key(), new_key(), "enabled")
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.delete_device, "acc-1")


@checks
def service_policy_invokes_methods_but_cannot_touch_the_registry():
    rm = policy("IOTHUB_SERVICE_CONNECTION_STRING")
    expect_http_error(
        404, "DeviceNotOnline", rm.invoke_device_method, "acc-1", CloudToDeviceMethod(method_name="m", payload={})
    )
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.create_device_with_sas, "acc-3", new_key(), new_key(), "enabled")
    expect_http_error(401, "IotHubUnauthorizedAccess", rm.get_device, "acc-1")


if __name__ == "__main__":
    checks.main()
