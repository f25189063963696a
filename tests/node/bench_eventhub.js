'use strict';
// The Node side of crates/iothub-events/examples/events_bench.rs: read N events from
// partition 0 of the built-in endpoint, from the beginning, with @azure/event-hubs'
// EventHubConsumerClient (unmodified); print {"events": n, "seconds": s} as the last line.
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');

const n = Number(process.argv[2]);
const client = new EventHubConsumerClient('$Default', process.env.EVENTHUB_CONNECTION_STRING, {
  customEndpointAddress: `amqps://localhost:${process.env.EMULATOR_AMQPS_PORT}`,
});
const started = process.hrtime.bigint();
let count = 0;
const subscription = client.subscribe(
  '0',
  {
    processEvents: async (events) => {
      count += events.length;
      if (count >= n) {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        console.log(JSON.stringify({ events: count, seconds }));
        await subscription.close();
        await client.close();
        process.exit(0);
      }
    },
    processError: async (err) => {
      console.error(String(err));
    },
  },
  { startPosition: earliestEventPosition, maxBatchSize: 1000, maxWaitTimeInSeconds: 5 },
);
setTimeout(() => {
  console.error(`only ${count} of ${n} events within 600 s`);
  process.exit(1);
}, 600000);
