'use strict';
// The HTTPS device routes with Microsoft's Node device SDK (azure-iot-device with the Http
// transport of azure-iot-device-http, unmodified): telemetry (single and batch), C2D polling,
// complete, reject and abandon, checked end to end through azure-iothub (Registry for the
// device and its message count, Client over Amqp for sending and for feedback). The Http
// transport has no module routes, twins or direct methods, so only a device is checked.
const assert = require('assert');
const { Client: ServiceClient, Amqp, ConnectionString } = require('azure-iothub');
const { Message: ServiceMessage } = require('azure-iothub/dist/common-core/message');
const { Message } = require('azure-iot-device');
const { registry, newKey, feedbackFor, runChecks } = require('./conformance');
const { deviceConnectionString, clientFor, appProperties, withTimeout } = require('./device_loopback');

const WAIT = 15000;
const DEVICE = 'ndh-device';
const reg = registry();
const owner = ConnectionString.parse(process.env.IOTHUB_CONNECTION_STRING);
const amqpsPort = Number(process.env.EMULATOR_AMQPS_PORT);
if (!amqpsPort) throw new Error('EMULATOR_AMQPS_PORT is not set (run these scripts through cargo test)');
const c2d = ServiceClient.fromConnectionString(
  `HostName=localhost:${amqpsPort};SharedAccessKeyName=${owner.SharedAccessKeyName};SharedAccessKey=${owner.SharedAccessKey}`, Amqp);

let opened;
const received = [];
const waiters = [];

// The device client, polling for C2D (every second, the SDK's default) into `received`.
function device() {
  if (!opened) {
    opened = (async () => {
      const key = newKey();
      await reg.create({ deviceId: DEVICE, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: newKey() } } });
      const client = clientFor(deviceConnectionString('http', DEVICE, key), 'http');
      client.on('error', (err) => console.log(`${DEVICE}: client error: ${err}; status ${err.response && err.response.statusCode}`));
      await withTimeout(client.open(), WAIT, 'open');
      client.on('message', (msg) => {
        received.push(msg);
        for (const wake of waiters.splice(0)) wake();
      });
      return client;
    })();
  }
  return opened;
}

// The next delivery of `messageId`; deliveries of other messages are left for other checks.
async function delivery(messageId) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const i = received.findIndex((m) => m.messageId === messageId);
    if (i >= 0) return received.splice(i, 1)[0];
    const left = deadline - Date.now();
    if (left <= 0) assert.fail(`no delivery of ${messageId} within ${WAIT} ms; pending: ${received.map((m) => m.messageId)}`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      waiters.push(() => { clearTimeout(timer); resolve(); });
    });
  }
}

let feedbackReceiver;

// Sends `id` with full acknowledgement; `record` is a promise of its feedback record (wrapped,
// so that awaiting the send does not wait for the feedback).
async function sendWithFeedback(id, body) {
  feedbackReceiver = feedbackReceiver || c2d.getFeedbackReceiver().then((r) => r.result);
  const feedback = await feedbackReceiver;
  const msg = new ServiceMessage(body);
  msg.messageId = id;
  msg.ack = 'full';
  msg.properties.add('k', 'v');
  const record = feedbackFor(feedback, id, WAIT);
  record.catch(() => {}); // checks that do not await it must not leave an unhandled rejection
  await c2d.send(DEVICE, msg);
  return { record };
}

async function messageCount() {
  return (await reg.get(DEVICE)).responseBody.cloudToDeviceMessageCount;
}

const checks = {
  async httpSendsTelemetry() {
    const client = await device();
    const msg = new Message('{"t":1}');
    msg.messageId = 'ndh-d2c';
    msg.correlationId = 'corr-d2c';
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    msg.properties.add('k', 'v');
    const sent = await withTimeout(client.sendEvent(msg), WAIT, 'sendEvent');
    assert.strictEqual(sent && sent.constructor.name, 'MessageEnqueued', `sendEvent result ${sent}`);
  },

  async httpSendsABatch() {
    const client = await device();
    const first = new Message('one');
    first.properties.add('k', 'v');
    const sent = await withTimeout(client.sendEventBatch([first, new Message('two')]), WAIT, 'sendEventBatch');
    assert.strictEqual(sent && sent.constructor.name, 'MessageEnqueued', `sendEventBatch result ${sent}`);
  },

  async httpReceivesC2dAndCompleteGivesSuccessFeedback() {
    const client = await device();
    const { record: feedback } = await sendWithFeedback('ndh-complete', 'complete me');
    const got = await delivery('ndh-complete');
    assert.strictEqual(got.data.toString(), 'complete me', 'body');
    // The SDK keeps application properties under their header names.
    assert.strictEqual(appProperties(got)['iothub-app-k'], 'v', `properties ${JSON.stringify(appProperties(got))}`);
    assert.ok(got.lockToken, 'the lock token (from the quoted ETag)');
    const done = await withTimeout(client.complete(got), WAIT, 'complete');
    assert.strictEqual(done && done.constructor.name, 'MessageCompleted', `complete result ${done}`);
    assert.strictEqual((await feedback).statusCode, 'Success', 'feedback status');
    assert.strictEqual(await messageCount(), 0, 'cloudToDeviceMessageCount after completing');
  },

  async httpCompletingTwiceFails() {
    const client = await device();
    await sendWithFeedback('ndh-twice', 'once');
    const got = await delivery('ndh-twice');
    await withTimeout(client.complete(got), WAIT, 'complete');
    await assert.rejects(withTimeout(client.complete(got), WAIT, 'second complete'), (err) => {
      const status = err.response && err.response.statusCode;
      assert.ok([404, 412].includes(status), `a stale lock token is 404 or 412, got ${status}: ${err.responseBody}`);
      return true;
    });
  },

  async httpRejectGivesRejectedFeedback() {
    const client = await device();
    const { record: feedback } = await sendWithFeedback('ndh-reject', 'reject me');
    const got = await delivery('ndh-reject');
    const done = await withTimeout(client.reject(got), WAIT, 'reject');
    assert.strictEqual(done && done.constructor.name, 'MessageRejected', `reject result ${done}`);
    assert.strictEqual((await feedback).statusCode, 'Rejected', 'feedback status');
  },

  async httpAbandonRedeliversWithANewLockToken() {
    const client = await device();
    const { record: feedback } = await sendWithFeedback('ndh-abandon', 'abandon me');
    const first = await delivery('ndh-abandon');
    const done = await withTimeout(client.abandon(first), WAIT, 'abandon');
    assert.strictEqual(done && done.constructor.name, 'MessageAbandoned', `abandon result ${done}`);
    const again = await delivery('ndh-abandon');
    assert.strictEqual(again.data.toString(), 'abandon me', 'redelivered body');
    assert.notStrictEqual(again.lockToken, first.lockToken, 'each delivery has its own lock token');
    await withTimeout(client.complete(again), WAIT, 'complete');
    assert.strictEqual((await feedback).statusCode, 'Success', 'feedback after abandon then complete');
  },

  async httpWrongKeyIsUnauthorized() {
    await device();
    const client = clientFor(deviceConnectionString('http', DEVICE, newKey()), 'http');
    try {
      await assert.rejects(withTimeout(client.sendEvent(new Message('x')), WAIT, 'sendEvent'), (err) => {
        assert.strictEqual(err.constructor.name, 'UnauthorizedError', `error ${err.stack}`);
        assert.strictEqual(err.response && err.response.statusCode, 401, 'HTTP status');
        return true;
      });
    } finally {
      await client.close();
    }
  },

  async closeEverything() {
    const client = opened && await opened.catch(() => null);
    if (client) await client.close();
    await c2d.close();
  },
};

runChecks('node-device-http', checks);
