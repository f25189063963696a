"""A device (or module) of Microsoft's Python device SDK (azure-iot-device, unmodified) driven over
stdin/stdout, so that a Rust test can play the service.

Environment: DEVICE_CONNECTION_STRING (a module when it has ModuleId=), DEVICE_TRANSPORT
(``mqtt``, the default, or ``mqttws``), EMULATOR_MQTTS_PORT, EMULATOR_HTTPS_PORT and
EMULATOR_CA_PATH (see mqtt_loopback; a HostName with a port gets GatewayHostName=<host>).

One JSON object per line on stdout:
  {"event":"connected"}
  {"event":"c2d","body":..,"properties":{..},"messageId":..,"correlationId":..,"contentType":..,"contentEncoding":..}
  {"event":"method","name":..,"payload":..}   answered with 200 {"echo": <payload>, "method": <name>}
  {"event":"desired","patch":{..}}
  {"event":"reported","ok":true} | {"event":"sent","ok":true} | {"event":"twin","twin":{..}}
  (a failed command answers with "ok":false and "error")
Commands on stdin: {"cmd":"report","patch":{..}}, {"cmd":"send","body":"..","properties":{..}} (optional "messageId"),
{"cmd":"twin"}, {"cmd":"exit"} (end of input exits too). Diagnostics go to stderr.
"""

import json
import os
import sys
import threading
import traceback

import mqtt_loopback

from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message, MethodResponse

_out = threading.Lock()


def emit(**event):
    line = json.dumps(event)
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def on_c2d(msg):
    data = msg.data
    emit(
        event="c2d",
        body=data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data),
        properties=msg.custom_properties,
        messageId=msg.message_id,
        correlationId=msg.correlation_id,
        contentType=msg.content_type,
        contentEncoding=msg.content_encoding,
    )


def main():
    transport = os.environ.get("DEVICE_TRANSPORT", "mqtt")
    if transport not in ("mqtt", "mqttws"):
        raise SystemExit("DEVICE_TRANSPORT must be mqtt or mqttws, not %r" % transport)
    cs = mqtt_loopback.for_loopback(os.environ["DEVICE_CONNECTION_STRING"])
    is_module = "ModuleId" in mqtt_loopback.parse(cs)
    cls = IoTHubModuleClient if is_module else IoTHubDeviceClient
    client = cls.create_from_connection_string(
        cs, server_verification_cert=mqtt_loopback.CA_PEM, websockets=transport == "mqttws"
    )

    def on_method(request):
        emit(event="method", name=request.name, payload=request.payload)
        response = {"echo": request.payload, "method": request.name}
        client.send_method_response(MethodResponse.create_from_method_request(request, 200, response))

    client.connect()
    if not is_module:
        client.on_message_received = on_c2d
    client.on_method_request_received = on_method
    client.on_twin_desired_properties_patch_received = lambda patch: emit(event="desired", patch=patch)
    emit(event="connected")

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            cmd = command.get("cmd")
        except ValueError as e:
            print("not a JSON command: %r (%s)" % (line, e), file=sys.stderr)
            continue
        if cmd == "exit":
            break
        answer = {"report": "reported", "send": "sent", "twin": "twin"}.get(cmd)
        if answer is None:
            print("unknown command %r" % (command,), file=sys.stderr)
            continue
        try:
            if cmd == "report":
                client.patch_twin_reported_properties(command.get("patch") or {})
                emit(event=answer, ok=True)
            elif cmd == "send":
                msg = Message(command.get("body", ""), message_id=command.get("messageId"))
                msg.custom_properties.update(command.get("properties") or {})
                client.send_message(msg)
                emit(event=answer, ok=True)
            else:
                emit(event=answer, ok=True, twin=client.get_twin())
        except Exception as e:  # noqa: BLE001 - reported on the protocol, details on stderr
            traceback.print_exc(file=sys.stderr)
            error = "%s: %s" % (type(e).__name__, e)
            if e.__cause__ is not None:
                error += " (%s: %s)" % (type(e.__cause__).__name__, e.__cause__)
            emit(event=answer, ok=False, error=error)

    client.shutdown()


if __name__ == "__main__":
    main()
