"""The device-side paths of the device benchmark (crates/iothub-device-sim/examples/device_bench.rs)
through Microsoft's official Python SDKs: azure-iot-device as the device, azure-iot-hub as the
service. Prints one JSON line with the figures.

    bench_device.py methods N DEVICE_ID KEY    N direct-method round trips, one after another
    bench_device.py telemetry N DEVICE_ID KEY  N 100-byte telemetry messages, one after another (each
                                               waits for its PUBACK, as send_message does)

Environment as for the conformance scripts (IOTHUB_CONNECTION_STRING, EMULATOR_MQTTS_PORT,
EMULATOR_HTTPS_PORT, EMULATOR_CA_PATH, REQUESTS_CA_BUNDLE).
"""

import json
import os
import sys
import time

import mqtt_loopback

from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    mode, n, device_id, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    hub_cs = os.environ["IOTHUB_CONNECTION_STRING"]
    cs = mqtt_loopback.device_connection_string(hub_cs, device_id, key)
    device = IoTHubDeviceClient.create_from_connection_string(cs, server_verification_cert=mqtt_loopback.CA_PEM)
    device.connect()
    cpu0 = time.process_time()
    if mode == "methods":
        device.on_method_request_received = lambda req: device.send_method_response(
            MethodResponse.create_from_method_request(req, 200, {"echo": req.payload})
        )
        rm = IoTHubRegistryManager(hub_cs)
        call = CloudToDeviceMethod(method_name="bench", payload={"n": 1}, response_timeout_in_seconds=30)
        rm.invoke_device_method(device_id, call)  # warm-up
        cpu0 = time.process_time()
        latencies = []
        started = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            result = rm.invoke_device_method(device_id, call)
            latencies.append(time.perf_counter() - t)
            assert result.status == 200, result.status
        elapsed = time.perf_counter() - started
        out = {"rate": n / elapsed, "p50_ms": percentile(latencies, 0.5) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3}
    elif mode == "telemetry":
        body = "x" * 100
        started = time.perf_counter()
        for _ in range(n):
            device.send_message(body)
        elapsed = time.perf_counter() - started
        out = {"rate": n / elapsed}
    else:
        raise SystemExit("mode must be methods or telemetry")
    out["client_cpu_us"] = (time.process_time() - cpu0) / n * 1e6
    print(json.dumps(out), flush=True)
    device.shutdown()


if __name__ == "__main__":
    main()
