"""Points azure-iot-device (MQTT through paho-mqtt) at the emulator. Import it before a client
connects; it changes this process only and never the installed packages.

azure-iot-device always connects to port 8883, or 443 with ``websockets=True``
(``MQTTTransport.connect`` in azure/iot/device/common/mqtt_transport.py), and paho cannot take a
port inside the host name. paho's ``Client.connect`` hands host and port to
``Client.connect_async``, which stores them for every later reconnect, so wrapping that one
method is enough: for a loopback host,
  * 8883 -> EMULATOR_MQTTS_PORT   (MQTT over TLS)
  * 443  -> EMULATOR_HTTPS_PORT   (MQTT over WebSockets at /$iothub/websocket)
Everything else on the wire (TLS 1.2 context, user name, SAS password, topics) is the SDK's own.

The SDK connects its socket to ``GatewayHostName`` when the connection string has one and keeps
``HostName`` for the SAS ``sr`` and the MQTT user name, so a hub name with a port
(``localhost:8443``) keeps its port there while the socket goes to ``localhost``. It trusts only
the PEM text passed as ``server_verification_cert`` (``CA_PEM``).
"""

import os

import paho.mqtt.client as paho

LOOPBACK = {"localhost", "127.0.0.1"}
PORTS = {
    8883: int(os.environ["EMULATOR_MQTTS_PORT"]),
    443: int(os.environ["EMULATOR_HTTPS_PORT"]),
}
with open(os.environ["EMULATOR_CA_PATH"]) as f:
    CA_PEM = f.read()

_connect_async = paho.Client.connect_async


def _loopback_connect_async(self, host, port=1883, *args, **kwargs):
    if host in LOOPBACK:
        port = PORTS.get(port, port)
    return _connect_async(self, host, port, *args, **kwargs)


paho.Client.connect_async = _loopback_connect_async


def parse(connection_string):
    """A connection string as an ordered dict of its ``Key=Value`` parts."""
    return dict(part.split("=", 1) for part in connection_string.split(";") if part)


def for_loopback(connection_string):
    """Adds ``GatewayHostName=<host>`` when HostName carries a port and no gateway is named."""
    parts = parse(connection_string)
    host = parts["HostName"]
    if ":" in host and "GatewayHostName" not in parts:
        parts["GatewayHostName"] = host.rsplit(":", 1)[0]
    return ";".join("%s=%s" % kv for kv in parts.items())


def device_connection_string(hub_connection_string, device_id, key, module_id=None):
    """A device (or module) connection string on the hub of ``hub_connection_string``."""
    parts = {"HostName": parse(hub_connection_string)["HostName"], "DeviceId": device_id}
    if module_id:
        parts["ModuleId"] = module_id
    parts["SharedAccessKey"] = key
    return for_loopback(";".join("%s=%s" % kv for kv in parts.items()))
