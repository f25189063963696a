'use strict';
// Shared helpers for the Node conformance scenarios. Every scenario drives the emulator
// through the unmodified azure-iothub Registry; this file only reads the environment set by
// the Rust harness, makes keys, and runs and reports checks.
const assert = require('assert');
const crypto = require('crypto');
const { Registry } = require('azure-iothub');

function registry() {
  const cs = process.env.IOTHUB_CONNECTION_STRING;
  if (!cs) throw new Error('IOTHUB_CONNECTION_STRING is not set (run these scripts through cargo test)');
  return Registry.fromConnectionString(cs);
}

function newKey() {
  return crypto.randomBytes(32).toString('base64');
}

function newThumbprint() {
  return crypto.randomBytes(20).toString('hex').toUpperCase();
}

// Numeric IoT Hub error codes, for bodies that carry the number instead of the name.
const ERROR_NUMBERS = { 404103: 'DeviceNotOnline', 404001: 'DeviceNotFound', 404010: 'ModuleNotFound', 504101: 'GatewayTimeout' };

// The error code named by an error body's Message: "ErrorCode:<Name>;<text>" for registry
// errors; direct-method errors nest a JSON object whose errorCode is the six-digit number.
function messageErrorCode(message, status, body) {
  assert.ok(typeof message === 'string', `error body has no string Message: ${body}`);
  const m = /^ErrorCode:([^;]+);/.exec(message);
  if (m) return m[1];
  let nested;
  try {
    nested = JSON.parse(message);
  } catch (e) {
    assert.fail(`error Message is neither 'ErrorCode:<code>;<text>' nor JSON: ${body}`);
  }
  const n = nested && nested.errorCode;
  assert.ok(Number.isInteger(n) && Math.floor(n / 1000) === status, `nested errorCode does not match HTTP ${status}: ${body}`);
  assert.ok(ERROR_NUMBERS[n], `nested errorCode ${n} is not a known code: ${body}`);
  return ERROR_NUMBERS[n];
}

// Awaits `promise` and requires it to fail with HTTP `status`. The IoT Hub error code
// (`code`, or any code when null) must be named by the `iothub-errorcode` header and by the
// body's `Message` ("ErrorCode:<code>;<text>"). `errorName` is the SDK's error class name.
async function expectHttpError(status, code, errorName, promise) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    if (!err.response) throw err;
    const body = err.responseBody;
    assert.strictEqual(err.response.statusCode, status, `HTTP status; body: ${body}`);
    if (errorName) assert.strictEqual(err.constructor.name, errorName, `SDK error type; body: ${body}`);
    const header = err.response.headers['iothub-errorcode'];
    let message;
    try {
      message = JSON.parse(body).Message;
    } catch (e) {
      assert.fail(`error body is not JSON: ${body}`);
    }
    if (code) assert.strictEqual(header, code, 'iothub-errorcode header');
    else assert.ok(header, 'iothub-errorcode header missing');
    assert.strictEqual(messageErrorCode(message, status, body), header, 'error code in body vs header');
    return err;
  }
  assert.fail(`expected HTTP ${status} ${code || ''}, but the call succeeded: ${JSON.stringify(result && result.responseBody)}`);
}

// Strips `$version` / `$metadata` from a desired/reported section.
function userProps(section) {
  const out = {};
  for (const [k, v] of Object.entries(section || {})) if (!k.startsWith('$')) out[k] = v;
  return out;
}

// Completes feedback batches on `receiver` until one holds a record for `messageId`, and
// returns that record; fails after `ms`. Feedback is hub-wide, so batches may also carry
// records of other checks' messages.
function feedbackFor(receiver, messageId, ms) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => {
      receiver.removeListener('message', onMessage);
      reject(new Error(`no feedback record for ${messageId} within ${ms} ms; batches seen: ${JSON.stringify(seen)}`));
    }, ms);
    function onMessage(batch) {
      receiver.complete(batch).catch(() => {});
      let records;
      try {
        records = JSON.parse(batch.data.toString());
      } catch (e) {
        records = null;
      }
      if (!Array.isArray(records)) {
        clearTimeout(timer);
        receiver.removeListener('message', onMessage);
        reject(new Error(`feedback body is not a JSON array: ${batch.data}`));
        return;
      }
      seen.push(records);
      const mine = records.filter((r) => r.originalMessageId === messageId);
      if (mine.length) {
        clearTimeout(timer);
        receiver.removeListener('message', onMessage);
        if (mine.length > 1) reject(new Error(`${mine.length} records for ${messageId}: ${JSON.stringify(records)}`));
        else resolve(mine[0]);
      }
    }
    receiver.on('message', onMessage);
  });
}

// Runs the registered checks in order, reports each, and sets the exit code.
async function runChecks(suite, checks) {
  const only = new Set(process.argv.slice(2));
  let passed = 0;
  const failed = [];
  for (const [name, fn] of Object.entries(checks)) {
    if (only.size && !only.has(name)) continue;
    try {
      await fn();
      passed += 1;
      console.log(`ok   ${suite}::${name}`);
    } catch (err) {
      failed.push(name);
      console.log(`FAIL ${suite}::${name}`);
      console.log(err && err.stack ? err.stack : err);
      if (err && err.responseBody) console.log(`response body: ${err.responseBody}`);
    }
  }
  console.log(`${suite}: ${passed} passed, ${failed.length} failed`);
  if (failed.length) {
    console.log(`failed checks: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
  // The SDK keeps its HTTPS connections alive; do not wait for them to time out.
  process.exit();
}

module.exports = { registry, newKey, newThumbprint, expectHttpError, userProps, feedbackFor, runChecks };
