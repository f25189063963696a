"""The device side with Microsoft's Python device SDK (azure-iot-device, unmodified) against the
emulator, over MQTT (TLS, EMULATOR_MQTTS_PORT) and MQTT over WebSockets (``websockets=True``,
EMULATOR_HTTPS_PORT at /$iothub/websocket). ``mqtt_loopback`` redirects the SDK's fixed ports.

The service side is azure-iot-hub: it creates a device and a module with SAS keys, sends C2D
messages (``send_c2d_message``, AMQP through ``uamqp_loopback``), invokes direct methods, and
reads and patches twins. Each client answers method ``fail`` with status 500 and any other
method with 200 and ``{"echo": <payload>, "method": <name>}``. Modules cannot receive C2D on
IoT Hub, so they are checked for methods, twins and telemetry only. Telemetry is only checked
to be acknowledged here; the Rust test reads the emulator's event log.
"""

import os
import queue
import threading
import time

import uamqp_loopback  # noqa: F401 - must come first: ports and CA for uamqp
import mqtt_loopback  # noqa: E402 - ports for paho

from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message, MethodResponse  # noqa: E402
from azure.iot.device.exceptions import ClientError, CredentialError, ServiceError  # noqa: E402
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties  # noqa: E402

from conformance import Checks, assert_eq, assert_true, new_key, registry_manager  # noqa: E402

HUB = os.environ["IOTHUB_CONNECTION_STRING"]
WEBSOCKETS = {"mqtt": False, "mqttws": True}
WAIT = 15  # seconds for one SDK call or one expected arrival

rm = registry_manager()
checks = Checks("device-mqtt")


def within(seconds, what, fn, *args):
    """Runs ``fn(*args)`` in a daemon thread, so that a hub that never answers fails one check
    (TimeoutError) instead of hanging the whole run."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            outcome["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError("%s did not finish within %d s" % (what, seconds))
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def wait_for(inbox, matches, what):
    """The first item of ``inbox`` for which ``matches`` holds; other items are skipped."""
    deadline = time.monotonic() + WAIT
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %s within %d s; received instead: %r" % (what, WAIT, seen))
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            continue
        if matches(item):
            return item
        seen.append(item)


def new_client(transport, connection_string):
    cls = IoTHubModuleClient if "ModuleId=" in connection_string else IoTHubDeviceClient
    return cls.create_from_connection_string(
        connection_string,
        server_verification_cert=mqtt_loopback.CA_PEM,
        websockets=WEBSOCKETS[transport],
        connection_retry=False,
    )


class Session:
    """One connected device or module client whose handlers queue everything that arrives."""

    def __init__(self, transport, module):
        self.transport = transport
        self.device_id = "pdm-%s%s" % (transport, "-m" if module else "")
        self.module_id = "pmod" if module else None
        key = new_key()
        rm.create_device_with_sas(self.device_id, new_key() if module else key, new_key(), "enabled")
        if module:
            rm.create_module_with_sas(self.device_id, self.module_id, None, key, new_key())
        cs = mqtt_loopback.device_connection_string(HUB, self.device_id, key, self.module_id)
        self.client = new_client(transport, cs)
        self.c2d, self.method_requests, self.desired = queue.Queue(), queue.Queue(), queue.Queue()
        within(WAIT, "connect", self.client.connect)
        # Setting a handler subscribes, and returns once the SUBACK is in.
        if not module:
            within(WAIT, "subscribing to C2D", setattr, self.client, "on_message_received", self.c2d.put)
        within(WAIT, "subscribing to methods", setattr, self.client, "on_method_request_received", self.answer)
        within(WAIT, "subscribing to desired patches", setattr, self.client,
               "on_twin_desired_properties_patch_received", self.desired.put)

    def answer(self, request):
        self.method_requests.put(request)
        status = 500 if request.name == "fail" else 200
        payload = {"echo": request.payload, "method": request.name}
        self.client.send_method_response(MethodResponse.create_from_method_request(request, status, payload))

    # The service-side view of this identity.
    def service_twin(self):
        if self.module_id:
            return rm.get_module_twin(self.device_id, self.module_id)
        return rm.get_twin(self.device_id)

    def update_desired(self, desired, etag):
        twin = Twin(properties=TwinProperties(desired=desired))
        if self.module_id:
            return rm.update_module_twin(self.device_id, self.module_id, twin, etag)
        return rm.update_twin(self.device_id, twin, etag)

    def invoke(self, name, payload):
        method = CloudToDeviceMethod(
            method_name=name, payload=payload, response_timeout_in_seconds=10, connect_timeout_in_seconds=0
        )
        if self.module_id:
            return within(20, "invoke %s" % name, rm.invoke_device_module_method, self.device_id, self.module_id, method)
        return within(20, "invoke %s" % name, rm.invoke_device_method, self.device_id, method)


_sessions = {}


def session(transport, module=False):
    """The connected session for (transport, device or module), made on first use. A failure
    to connect is kept, so later checks fail at once and name the cause."""
    key = (transport, module)
    if key not in _sessions:
        try:
            _sessions[key] = Session(transport, module)
        except Exception as e:
            _sessions[key] = e
            raise
    found = _sessions[key]
    if isinstance(found, Exception):
        raise AssertionError("the %s %s client failed to connect earlier: %r" % (transport, "module" if module else "device", found))
    return found


def check(name):
    """Registers ``fn`` under ``name`` (the checks below are made once per transport)."""

    def register(fn):
        fn.__name__ = name
        return checks(fn)

    return register


def expect_credential_error(transport, connection_string):
    client = new_client(transport, connection_string)
    try:
        within(WAIT, "connect", client.connect)
    except CredentialError:
        return
    finally:
        within(WAIT, "shutdown", client.shutdown)
    raise AssertionError("connect succeeded, expected CredentialError (CONNACK 4 or 5)")


def define(transport):
    t = transport

    @check("%s_device_connects" % t)
    def _():
        session(t)

    @check("%s_device_receives_c2d_with_properties" % t)
    def _():
        s = session(t)
        body = '{"temp": 21.5}'
        mid = "pdm-%s-c2d" % t
        app = {"k": "v", "odd key": "a/b&c=d %e"}
        props = dict(app, **{
            "messageId": mid,
            "correlationId": "corr-%s" % t,
            "contentType": "application/json",
            "contentEncoding": "utf-8",
            "iothub-ack": "full",
        })
        rm.send_c2d_message(s.device_id, body, props)
        msg = wait_for(s.c2d, lambda m: m.message_id == mid, "C2D message %s" % mid)
        assert_eq(msg.data, body.encode(), "body")
        assert_eq(msg.correlation_id, "corr-%s" % t, "correlation id ($.cid)")
        assert_eq(msg.content_type, "application/json", "content type ($.ct)")
        assert_eq(msg.content_encoding, "utf-8", "content encoding ($.ce)")
        assert_eq(msg.ack, "full", "iothub-ack")
        assert_eq(msg.custom_properties, app, "application properties (percent-encoded in the topic)")

    @check("%s_c2d_sent_while_offline_arrives_after_subscribing" % t)
    def _():
        device_id = "pdm-%s-offline" % t
        key = new_key()
        rm.create_device_with_sas(device_id, key, new_key(), "enabled")
        rm.send_c2d_message(device_id, "queued", {"messageId": "queued-1"})
        client = new_client(t, mqtt_loopback.device_connection_string(HUB, device_id, key))
        inbox = queue.Queue()
        try:
            within(WAIT, "connect", client.connect)
            within(WAIT, "subscribing to C2D", setattr, client, "on_message_received", inbox.put)
            msg = wait_for(inbox, lambda m: m.message_id == "queued-1", "queued C2D message")
            assert_eq(msg.data, b"queued", "body")
        finally:
            within(WAIT, "shutdown", client.shutdown)

    for module in (False, True):
        who = "module" if module else "device"
        define_twin_and_methods(t, who, module)

    @check("%s_wrong_key_is_credential_error" % t)
    def _():
        device_id = "pdm-%s-wrong-key" % t
        rm.create_device_with_sas(device_id, new_key(), new_key(), "enabled")
        expect_credential_error(t, mqtt_loopback.device_connection_string(HUB, device_id, new_key()))

    @check("%s_unknown_device_is_credential_error" % t)
    def _():
        expect_credential_error(t, mqtt_loopback.device_connection_string(HUB, "pdm-%s-nobody" % t, new_key()))

    @check("%s_disabled_device_is_credential_error" % t)
    def _():
        device_id = "pdm-%s-disabled" % t
        key = new_key()
        rm.create_device_with_sas(device_id, key, new_key(), "disabled")
        expect_credential_error(t, mqtt_loopback.device_connection_string(HUB, device_id, key))


def define_twin_and_methods(t, who, module):
    @check("%s_%s_answers_direct_methods" % (t, who))
    def _():
        s = session(t, module)
        payload = {"x": 1, "nested": {"s": "text"}}
        result = s.invoke("echo", payload)
        assert_eq(result.status, 200, "method status")
        assert_eq(result.payload, {"echo": payload, "method": "echo"}, "method payload")
        request = wait_for(s.method_requests, lambda r: r.name == "echo", "method request")
        assert_eq(request.payload, payload, "request payload as the device saw it")
        result = s.invoke("fail", "a string payload")
        assert_eq(result.status, 500, "the device's own status")
        assert_eq(result.payload, {"echo": "a string payload", "method": "fail"}, "payload with status 500")

    @check("%s_%s_reported_properties_reach_the_service" % (t, who))
    def _():
        s = session(t, module)
        patch = {"firmware": "1.0-%s" % t, "nested": {"a": 1, "b": {"c": True}}}
        within(WAIT, "patch_twin_reported_properties", s.client.patch_twin_reported_properties, patch)
        reported = s.service_twin().properties.reported
        assert_eq(reported.get("firmware"), patch["firmware"], "reported firmware seen by the service")
        assert_eq(reported.get("nested"), patch["nested"], "reported nested object seen by the service")
        within(WAIT, "patch_twin_reported_properties", s.client.patch_twin_reported_properties, {"firmware": None})
        assert_true("firmware" not in s.service_twin().properties.reported, "null removes a reported property")
        twin = within(WAIT, "get_twin", s.client.get_twin)
        assert_true("firmware" not in twin["reported"], "device twin after the removal: %r" % (twin,))
        assert_eq(twin["reported"].get("nested"), patch["nested"], "device twin reported")
        assert_true(isinstance(twin["reported"].get("$version"), int), "reported $version in %r" % (twin,))
        assert_true(isinstance(twin["desired"].get("$version"), int), "desired $version in %r" % (twin,))

    @check("%s_%s_too_deep_reported_patch_fails" % (t, who))
    def _():
        s = session(t, module)
        deep = "leaf"
        for level in range(12, 0, -1):
            deep = {"l%d" % level: deep}
        try:
            within(WAIT, "patch_twin_reported_properties", s.client.patch_twin_reported_properties, {"deep": deep})
        except ClientError as e:
            # The SDK raises ClientError from ServiceError("twin operation returned status <n>").
            assert_true(isinstance(e.__cause__, ServiceError) and "status 4" in str(e.__cause__),
                        "cause of %r: %r" % (e, e.__cause__))
        else:
            raise AssertionError("a 12-level reported patch was accepted")
        assert_true("deep" not in s.service_twin().properties.reported, "the refused patch left no trace")

    @check("%s_%s_receives_desired_patches" % (t, who))
    def _():
        s = session(t, module)
        before = s.service_twin()
        s.update_desired({"interval": 30, "mode": {"eco": True}}, before.etag)
        patch = wait_for(s.desired, lambda p: p.get("interval") == 30, "desired patch")
        assert_eq(patch.get("mode"), {"eco": True}, "patch content")
        version = s.service_twin().properties.desired["$version"]
        assert_eq(patch.get("$version"), version, "$version in the patch")
        twin = within(WAIT, "get_twin", s.client.get_twin)
        assert_eq(twin["desired"].get("interval"), 30, "device twin desired")
        assert_eq(twin["desired"].get("$version"), version, "device twin desired $version")

    @check("%s_%s_sends_telemetry" % (t, who))
    def _():
        s = session(t, module)
        msg = Message('{"t": 1}', message_id="pdm-%s-%s-d2c" % (t, who),
                      content_encoding="utf-8", content_type="application/json")
        msg.correlation_id = "corr-d2c"
        msg.custom_properties["k"] = "v"
        msg.custom_properties["odd key"] = "a/b&c=d"
        within(WAIT, "send_message", s.client.send_message, msg)
        within(WAIT, "send_message", s.client.send_message, "plain text")


for name in WEBSOCKETS:
    define(name)


if __name__ == "__main__":
    try:
        checks.main()
    finally:
        for found in _sessions.values():
            if isinstance(found, Session):
                try:
                    within(WAIT, "shutdown", found.client.shutdown)
                except Exception as e:  # noqa: BLE001 - shutting down must not hide the results
                    print("shutdown of %s failed: %r" % (found.device_id, e))
        rm.amqp_svc_client.disconnect_sync()
