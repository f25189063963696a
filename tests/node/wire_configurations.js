'use strict';
// The configuration call sequence of the wire-fidelity test, made with azure-iothub's Registry.
// tests/tests/wire_fidelity.rs makes the same calls with the Rust RegistryManager against a
// second emulator and compares the journals' configuration requests. Keep both in step.
const assert = require('assert');
const { registry } = require('./conformance');

const reg = registry();

async function refused(status, promise) {
  try {
    await promise;
  } catch (err) {
    assert.strictEqual(err.response && err.response.statusCode, status, `status of a refused call: ${err}`);
    return;
  }
  assert.fail(`expected HTTP ${status}`);
}

function config(priority, etag) {
  const c = {
    id: 'wf-cfg',
    schemaVersion: '1.0',
    labels: { team: 'a' },
    content: { deviceContent: { 'properties.desired.x': 1 } },
    targetCondition: "tags.env = 'wf'",
    priority,
    metrics: { queries: { n: 'SELECT deviceId FROM devices' } },
  };
  if (etag) c.etag = etag;
  return c;
}

const modules = {
  modulesContent: {
    $edgeAgent: { 'properties.desired': { schemaVersion: '1.1' } },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1' } },
  },
};

(async () => {
  // Setup (not compared): an edge device and a plain one.
  await reg.create({ deviceId: 'wf-e', capabilities: { iotEdge: true } });
  await reg.create({ deviceId: 'wf-plain' });

  const created = (await reg.addConfiguration(config(5))).responseBody;
  await reg.getConfiguration('wf-cfg');
  await reg.getConfigurations();
  await reg.updateConfiguration(config(6, created.etag));
  await refused(412, reg.updateConfiguration(config(7, created.etag)));
  await reg.updateConfiguration(config(8, created.etag), true);
  await reg.applyConfigurationContentOnDevice('wf-e', modules);
  await refused(400, reg.applyConfigurationContentOnDevice('wf-plain', modules));
  await reg.removeConfiguration('wf-cfg');
  await refused(404, reg.getConfiguration('wf-cfg'));
  console.log('wire_configurations: done');
  process.exit();
})().catch((err) => {
  console.log(err && err.stack ? err.stack : err);
  process.exit(1);
});
