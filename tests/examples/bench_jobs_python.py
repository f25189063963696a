"""The registry round trip through bulk calls with the official Python SDK (azure-iot-hub),
for tests/examples/jobs_roundtrip.rs: read the first N devices of SOURCE (twin query pages of
1,000, then get_device for each one's keys), then write them into TARGET with
bulk_create_or_update_devices in sequential calls of 100.

    python bench_jobs_python.py SOURCE_CS TARGET_CS N

REQUESTS_CA_BUNDLE must name a file with both hubs' CA certificates. Prints
`python read=N wall_s=…` and `python write=N wall_s=…`.
"""

import sys
import time

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import (
    AuthenticationMechanism,
    ExportImportDevice,
    PropertyContainer,
    QuerySpecification,
    SymmetricKey,
)


def main(source_cs, target_cs, n):
    source = IoTHubRegistryManager.from_connection_string(source_cs)
    target = IoTHubRegistryManager.from_connection_string(target_cs)
    started = time.perf_counter()
    twins, token = [], None
    while len(twins) < n:
        page = source.query_iot_hub(QuerySpecification(query="SELECT * FROM devices"), token, 1000)
        twins.extend(page.items)
        token = page.continuation_token
        if not token:
            break
    twins = twins[:n]
    entries = []
    for twin in twins:
        device = source.get_device(twin.device_id)
        keys = device.authentication.symmetric_key
        desired = dict((twin.properties.desired or {})) if twin.properties else {}
        desired.pop("$metadata", None)
        desired.pop("$version", None)
        entries.append(
            ExportImportDevice(
                id=device.device_id,
                import_mode="create",
                status=device.status,
                authentication=AuthenticationMechanism(
                    type="sas",
                    symmetric_key=SymmetricKey(primary_key=keys.primary_key, secondary_key=keys.secondary_key),
                ),
                tags=twin.tags,
                properties=PropertyContainer(desired=desired),
            )
        )
    read = time.perf_counter() - started
    print("python read=%d wall_s=%.3f" % (len(entries), read), flush=True)
    started = time.perf_counter()
    for i in range(0, len(entries), 100):
        result = target.bulk_create_or_update_devices(entries[i : i + 100])
        if not result.is_successful:
            sys.exit("bulk call %d failed: %r" % (i // 100, result.errors[:3]))
    write = time.perf_counter() - started
    print("python write=%d wall_s=%.3f" % (len(entries), write), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
