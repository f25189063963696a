'use strict';
// Cloud-to-device messaging with azure-iothub's Client over both of its transports:
//   Amqp   - AMQP 1.0 over TLS to `amqps://<HostName>` (the port comes from HostName, else
//            5671), so its HostName is `localhost:<EMULATOR_AMQPS_PORT>`;
//   AmqpWs - AMQP over WebSockets to `wss://<HostName>:443/$iothub/websocket`, so its HostName
//            is a bare `localhost` and preload-port.js sends port 443 to EMULATOR_HTTPS_PORT.
// Each is opened from a connection string and from a shared access signature. Sends are
// checked through the registry (`cloudToDeviceMessageCount`), errors through the SDK's error
// classes and the AMQP error, and feedback end to end (a purged message that asked for full
// acknowledgement comes back as a `Purged` record on the feedback receiver).
const assert = require('assert');
const https = require('https');
const { Client, Amqp, AmqpWs, ConnectionString, SharedAccessSignature } = require('azure-iothub');
// The Message class azure-iothub itself uses (its vendored azure-iot-common).
const { Message } = require('azure-iothub/dist/common-core/message');
const { registry, newKey, feedbackFor, runChecks } = require('./conformance');

const reg = registry();
const owner = ConnectionString.parse(process.env.IOTHUB_CONNECTION_STRING);
const amqpsPort = Number(process.env.EMULATOR_AMQPS_PORT);
if (!amqpsPort) throw new Error('EMULATOR_AMQPS_PORT is not set (run these scripts through cargo test)');

const TRANSPORTS = { amqp: Amqp, amqpWs: AmqpWs };

function hostFor(Transport) {
  return Transport === AmqpWs ? 'localhost' : `localhost:${amqpsPort}`;
}

function connectionString(Transport, envVar) {
  const cn = ConnectionString.parse(process.env[envVar || 'IOTHUB_CONNECTION_STRING']);
  return `HostName=${hostFor(Transport)};SharedAccessKeyName=${cn.SharedAccessKeyName};SharedAccessKey=${cn.SharedAccessKey}`;
}

function sharedAccessSignature(Transport) {
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  return SharedAccessSignature.create(hostFor(Transport), owner.SharedAccessKeyName, owner.SharedAccessKey, expiry).toString();
}

function clients(Transport) {
  return {
    connectionString: Client.fromConnectionString(connectionString(Transport), Transport),
    sharedAccessSignature: Client.fromSharedAccessSignature(sharedAccessSignature(Transport), Transport),
  };
}

async function createDevice(deviceId) {
  await reg.create({
    deviceId,
    status: 'enabled',
    authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
  });
}

async function messageCount(deviceId) {
  const dev = (await reg.get(deviceId)).responseBody;
  assert.strictEqual(typeof dev.cloudToDeviceMessageCount, 'number', `cloudToDeviceMessageCount in ${JSON.stringify(dev)}`);
  return dev.cloudToDeviceMessageCount;
}

// `DELETE /devices/{id}/commands` (the SDK has no purge call), signed with the SDK's own SAS.
function purge(deviceId) {
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sas = SharedAccessSignature.create(owner.HostName, owner.SharedAccessKeyName, owner.SharedAccessKey, expiry).toString();
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: owner.HostName,
      method: 'DELETE',
      path: `/devices/${encodeURIComponent(deviceId)}/commands?api-version=2021-04-12`,
      headers: { Authorization: sas, 'Content-Length': 0 },
    }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`purge: HTTP ${res.statusCode}: ${body}`));
        else resolve(JSON.parse(body));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

// Awaits `promise` and requires it to fail with the SDK error class `errorName` whose AMQP
// error has `condition` and a description naming the IoT Hub error `code`.
async function expectAmqpError(errorName, condition, code, promise) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    const amqpError = err.amqpError || {};
    const detail = `${err.constructor.name}: ${err.message}; amqpError: ${JSON.stringify(amqpError)}`;
    assert.strictEqual(err.constructor.name, errorName, `SDK error type (${detail})`);
    assert.strictEqual(amqpError.condition, condition, `AMQP error condition (${detail})`);
    assert.ok(String(amqpError.description).startsWith(`ErrorCode:${code};`), `AMQP error description names ${code} (${detail})`);
    return err;
  }
  assert.fail(`expected ${errorName}, but the call succeeded: ${JSON.stringify(result)}`);
}

const checks = {};

for (const [name, Transport] of Object.entries(TRANSPORTS)) {
  checks[`${name}OpensWithConnectionStringAndSas`] = async () => {
    for (const [how, client] of Object.entries(clients(Transport))) {
      try {
        await client.open();
      } catch (err) {
        throw new Error(`${name} open from a ${how}: ${err.constructor.name}: ${err.message}`);
      }
      await client.close();
    }
  };

  checks[`${name}SendIsCountedInTheRegistry`] = async () => {
    const id = `nc2d-${name}-send`;
    await createDevice(id);
    assert.strictEqual(await messageCount(id), 0, 'count before sending');
    let expected = 0;
    for (const [how, client] of Object.entries(clients(Transport))) {
      const msg = new Message(JSON.stringify({ via: how }));
      msg.messageId = `m-${how}`;
      msg.correlationId = 'corr-1';
      msg.contentType = 'application/json';
      msg.contentEncoding = 'utf-8';
      msg.expiryTimeUtc = Date.now() + 600000;
      msg.ack = 'full';
      msg.properties.add('k', 'v');
      const { result } = await client.send(id, msg);
      assert.strictEqual(result && result.constructor.name, 'MessageEnqueued', `send result: ${result}`);
      // A plain string and a Buffer are sent as messages too.
      await client.send(id, 'text body');
      await client.send(id, Buffer.from([0, 1, 2, 255]));
      expected += 3;
      assert.strictEqual(await messageCount(id), expected, `count after sending through a ${how} client`);
      await client.close();
    }
    const purged = await purge(id);
    assert.strictEqual(purged.totalMessagesPurged, expected, `purge result ${JSON.stringify(purged)}`);
    assert.strictEqual(await messageCount(id), 0, 'count after the purge');
  };

  checks[`${name}SendToAMissingDeviceIsDeviceNotFound`] = async () => {
    for (const [how, client] of Object.entries(clients(Transport))) {
      try {
        await expectAmqpError('DeviceNotFoundError', 'amqp:not-found', 'DeviceNotFound', client.send('nc2d-no-such-device', 'hello'));
        // The connection stays usable after a rejected message.
        const id = `nc2d-${name}-after-missing-${how}`;
        await createDevice(id);
        await client.send(id, 'hello');
        assert.strictEqual(await messageCount(id), 1, 'count after a send that followed a rejected one');
      } finally {
        await client.close();
      }
    }
  };

  checks[`${name}FeedbackReceiverGetsPurgedFeedback`] = async () => {
    const id = `nc2d-${name}-feedback`;
    await createDevice(id);
    for (const [how, client] of Object.entries(clients(Transport))) {
      try {
        const feedback = (await client.getFeedbackReceiver()).result;
        assert.ok(feedback && typeof feedback.on === 'function', `getFeedbackReceiver returned a receiver (${how})`);
        const msg = new Message('needs feedback');
        msg.messageId = `fb-${name}-${how}`;
        msg.ack = 'full';
        const waiting = feedbackFor(feedback, msg.messageId, 20000);
        await client.send(id, msg);
        assert.strictEqual((await purge(id)).totalMessagesPurged, 1, 'purged count');
        const record = await waiting;
        assert.strictEqual(record.deviceId, id, 'record deviceId');
        assert.strictEqual(record.statusCode, 'Purged', `record statusCode in ${JSON.stringify(record)}`);
        assert.ok(!Number.isNaN(Date.parse(record.enqueuedTimeUtc)), `record enqueuedTimeUtc in ${JSON.stringify(record)}`);
      } finally {
        await client.close();
      }
    }
  };
}

Object.assign(checks, {
  async amqpMessageOver64KbIsMessageTooLarge() {
    const id = 'nc2d-too-large';
    await createDevice(id);
    const client = Client.fromConnectionString(connectionString(Amqp), Amqp);
    try {
      await expectAmqpError('MessageTooLargeError', 'amqp:link:message-size-exceeded', 'MessageTooLarge', client.send(id, Buffer.alloc(65 * 1024, 1)));
      await client.send(id, Buffer.alloc(64 * 1024 - 1024, 1));
      assert.strictEqual(await messageCount(id), 1, 'only the message within the limit is queued');
    } finally {
      await client.close();
    }
  },

  async amqpFiftyFirstMessageIsDeviceMaximumQueueDepthExceeded() {
    const id = 'nc2d-queue-full';
    await createDevice(id);
    const client = Client.fromConnectionString(connectionString(Amqp), Amqp);
    try {
      for (let i = 0; i < 50; i += 1) await client.send(id, `m${i}`);
      assert.strictEqual(await messageCount(id), 50, 'count of a full queue');
      await expectAmqpError('DeviceMaximumQueueDepthExceededError', 'amqp:resource-limit-exceeded', 'DeviceMaximumQueueDepthExceeded', client.send(id, 'one too many'));
      assert.strictEqual(await messageCount(id), 50, 'count after the refused message');
    } finally {
      await client.close();
    }
  },

  async policyWithoutServiceConnectCannotOpen() {
    for (const Transport of [Amqp, AmqpWs]) {
      const client = Client.fromConnectionString(connectionString(Transport, 'IOTHUB_REGISTRY_READ_CONNECTION_STRING'), Transport);
      try {
        await client.open();
      } catch (err) {
        // The SDK wraps the put-token refusal (UnauthorizedError from a non-200 CBS status)
        // in a plain Error 'AMQP Transport: Could not connect' and keeps it as `amqpError`.
        const cause = err.amqpError;
        assert.strictEqual(cause && cause.constructor.name, 'UnauthorizedError', `error: ${err.constructor.name}: ${err.message}; cause: ${cause}`);
        continue;
      } finally {
        await client.close();
      }
      assert.fail('a registryRead connection string opened a C2D client');
    }
  },

  async serviceConnectionStringSends() {
    const id = 'nc2d-service-policy';
    await createDevice(id);
    const client = Client.fromConnectionString(connectionString(Amqp, 'IOTHUB_SERVICE_CONNECTION_STRING'), Amqp);
    try {
      await client.send(id, 'from the service policy');
      assert.strictEqual(await messageCount(id), 1);
    } finally {
      await client.close();
    }
  },
});

runChecks('node-c2d', checks);
