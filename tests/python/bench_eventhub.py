"""The Python side of crates/iothub-events/examples/events_bench.rs: read N events from
partition 0 of the built-in endpoint, from the beginning, with azure-eventhub's
EventHubConsumerClient (unmodified); print {"events": n, "seconds": s} as the last line."""

import json
import os
import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient, TransportType

n = int(sys.argv[1])
client = EventHubConsumerClient.from_connection_string(
    os.environ["EVENTHUB_CONNECTION_STRING"],
    consumer_group="$Default",
    custom_endpoint_address="sb://localhost:%s" % os.environ["EMULATOR_AMQPS_PORT"],
    transport_type=TransportType.Amqp,
    connection_verify=os.environ["EMULATOR_CA_PATH"],
)
count = 0
done = threading.Event()
started = time.monotonic()


def on_event_batch(partition_context, events):
    global count
    count += len(events)
    if count >= n:
        done.set()


thread = threading.Thread(
    target=client.receive_batch,
    kwargs={"on_event_batch": on_event_batch, "partition_id": "0", "starting_position": "-1", "max_batch_size": 1000},
    daemon=True,
)
thread.start()
finished = done.wait(600)
seconds = time.monotonic() - started
client.close()
if not finished:
    sys.exit("only %d of %d events within 600 s" % (count, n))
print(json.dumps({"events": count, "seconds": seconds}))
