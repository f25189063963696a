"""C2D sends with the official Python service SDK (azure-iot-hub send_c2d_message), one after
another on one IoTHubRegistryManager, against a local emulator. Prints one line:
`python sent=<n> wall_s=<s> cpu_s=<s>`. Usage: bench_python.py <connection string> <ca.pem>
<amqps port> <device prefix> <devices> <messages>."""
import sys
import time

import certifi

cs, ca, port, prefix, devices, messages = sys.argv[1:7]
certifi.where = lambda: ca  # uamqp reads the CA bundle only from certifi
import uamqp.constants  # noqa: E402

uamqp.constants.DEFAULT_AMQPS_PORT = int(port)  # uamqp ignores the port in HostName
from azure.iot.hub import IoTHubRegistryManager  # noqa: E402

devices, messages = int(devices), int(messages)
rm = IoTHubRegistryManager.from_connection_string(cs)
body = "x" * 100
rm.send_c2d_message(f"{prefix}0", body, {"contentType": "text/plain"})  # warm-up (opens AMQP)
start_wall, start_cpu = time.perf_counter(), time.process_time()
for i in range(messages):
    rm.send_c2d_message(f"{prefix}{i % devices}", body, {"contentType": "text/plain"})
wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
print(f"python sent={messages} wall_s={wall:.4f} cpu_s={cpu:.4f}", flush=True)
