'use strict';
// Reading telemetry from the built-in endpoint with Microsoft's Node clients, unmodified:
//   * the IoT Hub connection string becomes an Event Hubs connection string the way the
//     @azure/event-hubs sample `iothubConnectionString` does it: rhea-promise opens AMQP with
//     SASL PLAIN (`{policy}@sas.root.{hub}`, a SAS token for `{HostName}/messages/events`),
//     attaches a receiver to `amqps://{HostName}/messages/events/$management` and takes the
//     `amqp:link:redirect` error's hostname and address;
//   * @azure/event-hubs' EventHubConsumerClient reads with it, and with the
//     EVENTHUB_CONNECTION_STRING the local hub prints;
//   * the telemetry comes from the official device SDK (azure-iot-device over MQTT).
// The local hub's AMQPS port is given as `customEndpointAddress` (the option the Event Hubs
// client has for private endpoints); its CA comes from NODE_EXTRA_CA_CERTS.
const assert = require('assert');
const crypto = require('crypto');
const { Connection, ReceiverEvents, parseConnectionString } = require('rhea-promise');
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { registry, newKey, runChecks } = require('./conformance');

const reg = registry();
const amqpsPort = Number(process.env.EMULATOR_AMQPS_PORT);
const mqttsPort = Number(process.env.EMULATOR_MQTTS_PORT);
const WAIT = 30000;

function sasToken(resourceUri, key, policy, minutes) {
  const uri = encodeURIComponent(resourceUri);
  const expiry = Math.ceil(Date.now() / 1000 + minutes * 60);
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${uri}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${uri}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=${policy}`;
}

// The sample's conversion, with the socket pointed at the local hub's AMQPS port.
async function convert(connectionString) {
  const { HostName, SharedAccessKeyName, SharedAccessKey } = parseConnectionString(connectionString);
  const [iotHubName] = HostName.split('.');
  const connection = new Connection({
    transport: 'tls',
    host: 'localhost',
    hostname: 'localhost',
    username: `${SharedAccessKeyName}@sas.root.${iotHubName}`,
    port: amqpsPort,
    reconnect: false,
    password: sasToken(`${HostName}/messages/events`, SharedAccessKey, SharedAccessKeyName, 5),
  });
  await connection.open();
  const receiver = await connection.createReceiver({
    source: { address: `amqps://${HostName}/messages/events/$management` },
  });
  return new Promise((resolve, reject) => {
    receiver.on(ReceiverEvents.receiverError, (context) => {
      const error = context.receiver && context.receiver.error;
      connection.close().catch(() => {});
      if (error && error.condition === 'amqp:link:redirect' && error.info) {
        const match = /:\d+\/(.*)\/\$management/i.exec(error.info.address);
        if (!match) return reject(new Error(`unexpected redirect address ${error.info.address}`));
        resolve({
          cs: `Endpoint=sb://${error.info.hostname}/;EntityPath=${match[1]};SharedAccessKeyName=${SharedAccessKeyName};SharedAccessKey=${SharedAccessKey}`,
          port: Number(error.info.port),
        });
      } else {
        reject(error);
      }
    });
  });
}

async function deviceSends(deviceId, count) {
  const key = newKey();
  await reg.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: newKey() } } });
  const { HostName } = parseConnectionString(process.env.IOTHUB_CONNECTION_STRING);
  const cs = `HostName=${HostName};DeviceId=${deviceId};SharedAccessKey=${key};GatewayHostName=localhost:${mqttsPort}`;
  const client = DeviceClient.fromConnectionString(cs, Mqtt);
  await client.open();
  for (let i = 0; i < count; i += 1) {
    const message = new Message(JSON.stringify({ n: i }));
    message.messageId = `${deviceId}-${i}`;
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('seq', String(i));
    await client.sendEvent(message);
  }
  await client.close();
}

// Subscribes from the earliest event until `count` events of `deviceId` arrived.
async function readFrom(consumer, deviceId, count) {
  const mine = [];
  const errors = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${mine.length} of ${count} events (errors: ${errors})`)), WAIT);
    const subscription = consumer.subscribe(
      {
        processEvents: async (events) => {
          for (const event of events) {
            if (event.systemProperties['iothub-connection-device-id'] === deviceId) mine.push(event);
          }
          if (mine.length >= count) {
            clearTimeout(timer);
            subscription.close().then(resolve, resolve);
          }
        },
        processError: async (err) => {
          errors.push(String(err));
        },
      },
      { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1 },
    );
  });
  await consumer.close();
  return mine;
}

runChecks('eventhub', {
  async the_sample_conversion_follows_the_redirect_and_reads_device_sdk_telemetry() {
    const { cs, port } = await convert(process.env.IOTHUB_CONNECTION_STRING);
    assert.strictEqual(port, amqpsPort, 'redirect port');
    const entity = cs.match(/EntityPath=([^;]+)/)[1];
    assert.ok(process.env.EVENTHUB_CONNECTION_STRING.endsWith(`;EntityPath=${entity}`), 'same entity as printed');
    await deviceSends('neh-1', 3);
    const consumer = new EventHubConsumerClient('$Default', cs, { customEndpointAddress: `amqps://localhost:${port}` });
    const events = await readFrom(consumer, 'neh-1', 3);
    assert.deepStrictEqual(events.map((e) => e.body), [{ n: 0 }, { n: 1 }, { n: 2 }], 'bodies in order');
    assert.deepStrictEqual(events.map((e) => e.properties.seq), ['0', '1', '2'], 'device properties');
    assert.strictEqual(events[0].messageId, 'neh-1-0');
    assert.strictEqual(events[0].contentType, 'application/json');
    assert.strictEqual(events[0].systemProperties['iothub-message-source'], 'Telemetry');
    assert.ok(events[0].systemProperties['iothub-connection-auth-generation-id'], 'generation id');
    assert.strictEqual(events[1].sequenceNumber, events[0].sequenceNumber + 1, 'sequence numbers');
    assert.ok(Math.abs(Date.now() - events[0].enqueuedTimeUtc.getTime()) < 120000, 'enqueued time');
  },

  async the_printed_eventhub_connection_string_reads_too() {
    await deviceSends('neh-2', 2);
    const consumer = new EventHubConsumerClient('$Default', process.env.EVENTHUB_CONNECTION_STRING, {
      customEndpointAddress: `amqps://localhost:${amqpsPort}`,
    });
    const events = await readFrom(consumer, 'neh-2', 2);
    assert.deepStrictEqual(events.map((e) => e.messageId), ['neh-2-0', 'neh-2-1']);
  },

  async partition_ids_and_properties() {
    const consumer = new EventHubConsumerClient('$Default', process.env.EVENTHUB_CONNECTION_STRING, {
      customEndpointAddress: `amqps://localhost:${amqpsPort}`,
    });
    try {
      const ids = await consumer.getPartitionIds();
      assert.deepStrictEqual(ids, ['0', '1', '2', '3']);
      const props = await consumer.getEventHubProperties();
      assert.deepStrictEqual(props.partitionIds, ids);
      let nonEmpty = 0;
      for (const id of ids) {
        const p = await consumer.getPartitionProperties(id);
        assert.strictEqual(p.partitionId, id);
        if (!p.isEmpty) nonEmpty += 1;
      }
      assert.ok(nonEmpty >= 1, 'some partition holds telemetry');
    } finally {
      await consumer.close();
    }
  },

  async an_unknown_consumer_group_is_an_error() {
    const consumer = new EventHubConsumerClient('nope', process.env.EVENTHUB_CONNECTION_STRING, {
      customEndpointAddress: `amqps://localhost:${amqpsPort}`,
    });
    const err = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), WAIT);
      const subscription = consumer.subscribe(
        {
          processEvents: async () => {},
          processError: async (e) => {
            clearTimeout(timer);
            subscription.close().finally(() => resolve(e));
          },
        },
        { startPosition: earliestEventPosition },
      );
    });
    await consumer.close();
    assert.ok(err, 'an error was reported');
    assert.ok(/not-found|NotFound|does not exist/i.test(`${err.code} ${err.message}`), `${err.code} ${err.message}`);
  },
});
