'use strict';
// The device side with Microsoft's Node device SDK (azure-iot-device with the Mqtt and MqttWs
// transports of azure-iot-device-mqtt, unmodified) against the emulator; device_loopback.js
// says how each transport reaches it. The service side is azure-iothub: Registry creates a
// device and a module with SAS keys and reads and patches their twins, Client (over Amqp)
// sends C2D messages and reads feedback, and Client invokes direct methods (REST).
//
// Each client answers method `echo` with 200 and `fail` with 500, both with
// {"echo": <payload>, "method": <name>}. Modules cannot receive C2D on IoT Hub, so they are
// checked for methods, twins and telemetry only. Telemetry is only checked to be acknowledged
// here; the Rust test reads the emulator's event log.
const assert = require('assert');
const { Client: ServiceClient, Amqp, ConnectionString } = require('azure-iothub');
const { Message: ServiceMessage } = require('azure-iothub/dist/common-core/message');
const { Message } = require('azure-iot-device');
const { registry, newKey, feedbackFor, runChecks } = require('./conformance');
const { deviceConnectionString, clientFor, appProperties, withTimeout } = require('./device_loopback');

const WAIT = 15000;
const reg = registry();
const owner = ConnectionString.parse(process.env.IOTHUB_CONNECTION_STRING);
const amqpsPort = Number(process.env.EMULATOR_AMQPS_PORT);
if (!amqpsPort) throw new Error('EMULATOR_AMQPS_PORT is not set (run these scripts through cargo test)');
// C2D goes over AMQP, whose port comes from HostName; direct methods are REST on the HTTPS port.
const c2d = ServiceClient.fromConnectionString(
  `HostName=localhost:${amqpsPort};SharedAccessKeyName=${owner.SharedAccessKeyName};SharedAccessKey=${owner.SharedAccessKey}`, Amqp);
const methods = ServiceClient.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING);
let feedbackReceiver;

// Items pushed by SDK callbacks, taken by the checks in arrival order.
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    for (const wake of this.waiters.splice(0)) wake();
  }

  // The first item that `matches` (skipping the others); fails after WAIT.
  async next(matches, what) {
    const skipped = [];
    const deadline = Date.now() + WAIT;
    for (;;) {
      while (this.items.length) {
        const item = this.items.shift();
        if (matches(item)) return item;
        skipped.push(item);
      }
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no ${what} within ${WAIT} ms; received instead: ${JSON.stringify(skipped)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }
}

async function createIdentity(deviceId, moduleId, key, status) {
  const sas = (primaryKey) => ({ symmetricKey: { primaryKey, secondaryKey: newKey() } });
  await reg.create({ deviceId, status: status || 'enabled', authentication: sas(moduleId ? newKey() : key) });
  if (moduleId) await reg.addModule({ deviceId, moduleId, authentication: sas(key) });
}

function answer(inbox) {
  return (request, response) => {
    inbox.push(request);
    const status = request.methodName === 'fail' ? 500 : 200;
    response.send(status, { echo: request.payload, method: request.methodName }, (err) => {
      if (err) console.log(`method response failed: ${err}`);
    });
  };
}

// A connected client with every receive feature on, and inboxes for what arrives.
async function openSession(transport, module) {
  const s = {
    transport,
    deviceId: `ndm-${transport}${module ? '-m' : ''}`,
    moduleId: module ? 'nmod' : undefined,
    c2d: new Inbox(),
    methodRequests: new Inbox(),
    desired: new Inbox(),
  };
  const key = newKey();
  await createIdentity(s.deviceId, s.moduleId, key);
  s.client = clientFor(deviceConnectionString(transport, s.deviceId, key, s.moduleId), transport);
  s.client.on('error', (err) => console.log(`${s.deviceId}: client error: ${err}`));
  await withTimeout(s.client.open(), WAIT, `${transport} open`);
  // Each of these subscribes in the background without telling when it is done.
  if (!module) s.client.on('message', (msg) => s.c2d.push(msg));
  for (const name of ['echo', 'fail']) {
    if (module) s.client.onMethod(name, answer(s.methodRequests));
    else s.client.onDeviceMethod(name, answer(s.methodRequests));
  }
  s.twin = await withTimeout(s.client.getTwin(), WAIT, 'getTwin');
  s.twin.on('properties.desired', (delta) => s.desired.push(delta));
  // The SUBSCRIBEs above went out on this connection before this twin GET, so once the GET is
  // answered the hub has them all.
  await withTimeout(s.twin.get(), WAIT, 'twin.get after subscribing');
  return s;
}

const sessions = new Map();

// The session for (transport, device or module), opened on first use. A failure to open is
// kept, so later checks fail at once and name the cause.
function session(transport, module) {
  const key = `${transport}/${module ? 'module' : 'device'}`;
  if (!sessions.has(key)) sessions.set(key, openSession(transport, module));
  return sessions.get(key).catch((err) => {
    throw new Error(`the ${key} client failed to open: ${err && err.stack ? err.stack : err}`);
  });
}

function serviceTwin(s) {
  return (s.moduleId ? reg.getModuleTwin(s.deviceId, s.moduleId) : reg.getTwin(s.deviceId)).then((r) => r.responseBody);
}

function updateDesired(s, desired, etag) {
  const patch = { properties: { desired } };
  return s.moduleId ? reg.updateModuleTwin(s.deviceId, s.moduleId, patch, etag) : reg.updateTwin(s.deviceId, patch, etag);
}

async function invoke(s, methodName, payload) {
  const params = { methodName, payload, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 0 };
  const call = s.moduleId ? methods.invokeDeviceMethod(s.deviceId, s.moduleId, params) : methods.invokeDeviceMethod(s.deviceId, params);
  return (await withTimeout(call, 20000, `invoke ${methodName}`)).result;
}

function report(s, patch) {
  return withTimeout(new Promise((resolve, reject) => {
    s.twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()));
  }), WAIT, 'reported update');
}

async function expectUnauthorized(transport, cs) {
  const client = clientFor(cs, transport);
  client.on('error', () => {});
  try {
    await withTimeout(client.open(), WAIT, 'open');
  } catch (err) {
    // The transport words every first-connection failure as 'not authorized'; the CONNACK
    // refusal itself is in the message.
    assert.strictEqual(err.constructor.name, 'UnauthorizedError', `error: ${err.stack}`);
    assert.ok(/Connection refused: (Not authorized|Bad username or password)/.test(err.message), `CONNACK 4 or 5 in: ${err.message}`);
    return;
  } finally {
    await client.close().catch(() => {});
  }
  assert.fail('open succeeded, expected UnauthorizedError (CONNACK 4 or 5)');
}

function nested(depth) {
  let value = 'leaf';
  for (let i = depth; i > 0; i -= 1) value = { [`l${i}`]: value };
  return value;
}

const checks = {};

for (const transport of ['mqtt', 'mqttWs']) {
  const t = transport;

  checks[`${t}DeviceConnects`] = async () => {
    await session(t, false);
  };

  checks[`${t}DeviceReceivesC2dWithProperties`] = async () => {
    const s = await session(t, false);
    const msg = new ServiceMessage('{"temp":21.5}');
    msg.messageId = `ndm-${t}-c2d`;
    msg.correlationId = `corr-${t}`;
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    msg.ack = 'full';
    msg.properties.add('k', 'v');
    msg.properties.add('odd key', 'a/b&c=d %e');
    await c2d.send(s.deviceId, msg);
    const got = await s.c2d.next((m) => m.messageId === msg.messageId, `C2D message ${msg.messageId}`);
    assert.strictEqual(got.data.toString(), '{"temp":21.5}', 'body');
    assert.strictEqual(got.correlationId, msg.correlationId, 'correlation id ($.cid)');
    assert.strictEqual(got.contentType, 'application/json', 'content type ($.ct)');
    assert.strictEqual(got.contentEncoding, 'utf-8', 'content encoding ($.ce)');
    const props = appProperties(got);
    assert.strictEqual(props.k, 'v', `property k in ${JSON.stringify(props)}`);
    assert.strictEqual(props['odd key'], 'a/b&c=d %e', `percent-encoded property in ${JSON.stringify(props)}`);
    assert.strictEqual(props['iothub-ack'], 'full', `iothub-ack in ${JSON.stringify(props)}`);
  };

  checks[`${t}CompletedMessageGetsSuccessFeedback`] = async () => {
    const s = await session(t, false);
    feedbackReceiver = feedbackReceiver || c2d.getFeedbackReceiver().then((r) => r.result);
    const feedback = await feedbackReceiver;
    const msg = new ServiceMessage('needs feedback');
    msg.messageId = `ndm-${t}-fb`;
    msg.ack = 'full';
    const waiting = feedbackFor(feedback, msg.messageId, WAIT);
    await c2d.send(s.deviceId, msg);
    const got = await s.c2d.next((m) => m.messageId === msg.messageId, 'the message that asked for feedback');
    // Over MQTT the PUBACK completes the message; complete() itself sends nothing.
    await s.client.complete(got);
    const record = await waiting;
    assert.strictEqual(record.statusCode, 'Success', `feedback record ${JSON.stringify(record)}`);
    assert.strictEqual(record.deviceId, s.deviceId, 'record deviceId');
  };

  for (const module of [false, true]) {
    const who = module ? 'Module' : 'Device';

    checks[`${t}${who}AnswersDirectMethods`] = async () => {
      const s = await session(t, module);
      const payload = { x: 1, nested: { s: 'text' } };
      const result = await invoke(s, 'echo', payload);
      assert.strictEqual(result.status, 200, `method result ${JSON.stringify(result)}`);
      assert.deepStrictEqual(result.payload, { echo: payload, method: 'echo' }, 'method payload');
      const request = await s.methodRequests.next((r) => r.methodName === 'echo', 'method request');
      assert.deepStrictEqual(request.payload, payload, 'request payload as the device saw it');
      const failed = await invoke(s, 'fail', 'a string payload');
      assert.strictEqual(failed.status, 500, `the device's own status in ${JSON.stringify(failed)}`);
      assert.deepStrictEqual(failed.payload, { echo: 'a string payload', method: 'fail' }, 'payload with status 500');
      // A method without a payload reaches the device as JSON null, not as an empty body.
      const empty = await invoke(s, 'echo', null);
      assert.strictEqual(empty.status, 200, `a null payload: ${JSON.stringify(empty)}`);
    };

    checks[`${t}${who}ReportedPropertiesReachTheService`] = async () => {
      const s = await session(t, module);
      const patch = { firmware: `1.0-${t}`, nested: { a: 1, b: { c: true } } };
      await report(s, patch);
      let reported = (await serviceTwin(s)).properties.reported;
      assert.strictEqual(reported.firmware, patch.firmware, 'reported firmware seen by the service');
      assert.deepStrictEqual(reported.nested, patch.nested, 'reported nested object seen by the service');
      await report(s, { firmware: null });
      reported = (await serviceTwin(s)).properties.reported;
      assert.ok(!('firmware' in reported), `null removes a reported property: ${JSON.stringify(reported)}`);
      await withTimeout(s.twin.get(), WAIT, 'twin.get');
      const mine = s.twin.properties.reported;
      assert.ok(!('firmware' in mine), `device twin after the removal: ${JSON.stringify(mine)}`);
      assert.deepStrictEqual(mine.nested, patch.nested, 'device twin reported');
      assert.strictEqual(typeof mine.$version, 'number', `reported $version in ${JSON.stringify(mine)}`);
    };

    checks[`${t}${who}TooDeepReportedPatchFails`] = async () => {
      const s = await session(t, module);
      // The Node transport reads only the response body: an error needs {"errorCode", "message"}.
      await assert.rejects(report(s, { deep: nested(12) }), (err) => !/did not finish within/.test(err.message), 'a 12-level reported patch');
      assert.ok(!('deep' in (await serviceTwin(s)).properties.reported), 'the refused patch left no trace');
    };

    checks[`${t}${who}ReceivesDesiredPatches`] = async () => {
      const s = await session(t, module);
      const before = await serviceTwin(s);
      await updateDesired(s, { interval: 30, mode: { eco: true } }, before.etag || '*');
      const delta = await s.desired.next((d) => d && d.interval === 30, 'desired patch');
      assert.deepStrictEqual(delta.mode, { eco: true }, 'patch content');
      const version = (await serviceTwin(s)).properties.desired.$version;
      assert.strictEqual(delta.$version, version, '$version in the patch');
      await withTimeout(s.twin.get(), WAIT, 'twin.get');
      assert.strictEqual(s.twin.properties.desired.interval, 30, 'device twin desired');
      assert.strictEqual(s.twin.properties.desired.$version, version, 'device twin desired $version');
    };

    checks[`${t}${who}SendsTelemetry`] = async () => {
      const s = await session(t, module);
      const msg = new Message('{"t":1}');
      msg.messageId = `ndm-${t}-${who}-d2c`;
      msg.correlationId = 'corr-d2c';
      msg.contentType = 'application/json';
      msg.contentEncoding = 'utf-8';
      msg.properties.add('k', 'v');
      msg.properties.add('odd key', 'a/b&c=d');
      const sent = await withTimeout(s.client.sendEvent(msg), WAIT, 'sendEvent');
      assert.strictEqual(sent && sent.constructor.name, 'MessageEnqueued', `sendEvent result ${sent}`);
      await withTimeout(s.client.sendEvent(new Message('plain text')), WAIT, 'sendEvent');
    };
  }

  checks[`${t}WrongKeyIsUnauthorized`] = async () => {
    const id = `ndm-${t}-wrong-key`;
    await createIdentity(id, undefined, newKey());
    await expectUnauthorized(t, deviceConnectionString(t, id, newKey()));
  };

  checks[`${t}UnknownDeviceIsUnauthorized`] = async () => {
    await expectUnauthorized(t, deviceConnectionString(t, `ndm-${t}-nobody`, newKey()));
  };

  checks[`${t}DisabledDeviceIsUnauthorized`] = async () => {
    const id = `ndm-${t}-disabled`;
    const key = newKey();
    await createIdentity(id, undefined, key, 'disabled');
    await expectUnauthorized(t, deviceConnectionString(t, id, key));
  };
}

checks.closeEverything = async () => {
  for (const opened of sessions.values()) {
    const s = await opened.catch(() => null);
    if (s) await withTimeout(s.client.close(), WAIT, `close ${s.deviceId}`);
  }
  await c2d.close();
};

runChecks('node-device-mqtt', checks);
