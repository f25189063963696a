'use strict';
// Configurations and IoT Edge deployments with azure-iothub's Registry: addConfiguration,
// getConfiguration(s), updateConfiguration (ETag and forced), removeConfiguration,
// applyConfigurationContentOnDevice; plus the nested-edge rules (leaf parentScopes, array_contains).
const assert = require('assert');
const { registry, newKey, expectHttpError, runChecks } = require('./conformance');

const reg = registry();

async function taggedDevice(deviceId, env, edge) {
  await reg.create({
    deviceId,
    status: 'enabled',
    capabilities: { iotEdge: !!edge },
    authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
  });
  await reg.updateTwin(deviceId, { tags: { env } }, '*');
}

const checks = {
  async configurationLifecycle() {
    await taggedDevice('nc-a', 'nc-prod');
    await taggedDevice('nc-b', 'nc-dev');
    const config = {
      id: 'nc-cfg',
      content: { deviceContent: { 'properties.desired.interval': 30 } },
      targetCondition: "tags.env = 'nc-prod'",
      priority: 2,
      labels: { team: 'n' },
    };
    const created = (await reg.addConfiguration(config)).responseBody;
    assert.ok(created.etag);
    assert.strictEqual(created.schemaVersion, '1.0');
    assert.strictEqual(created.systemMetrics.results.targetedCount, 1);
    assert.strictEqual(created.systemMetrics.results.appliedCount, 0);
    assert.ok(created.systemMetrics.queries.appliedCount.includes('[[nc-cfg]]'));
    await expectHttpError(409, 'ConfigurationAlreadyExists', null, reg.addConfiguration(config));

    const got = (await reg.getConfiguration('nc-cfg')).responseBody;
    assert.strictEqual(got.priority, 2);
    got.priority = 4;
    const updated = (await reg.updateConfiguration(got)).responseBody;
    assert.strictEqual(updated.priority, 4);
    assert.notStrictEqual(updated.etag, got.etag);
    got.priority = 5;
    await expectHttpError(412, 'PreconditionFailed', null, reg.updateConfiguration(got));
    const forced = (await reg.updateConfiguration(got, true)).responseBody;
    assert.strictEqual(forced.priority, 5);

    const all = (await reg.getConfigurations()).responseBody;
    assert.deepStrictEqual(all.map((c) => c.id), ['nc-cfg']);
    await reg.removeConfiguration('nc-cfg');
    await expectHttpError(404, 'ConfigurationNotFound', null, reg.getConfiguration('nc-cfg'));
  },

  async applyConfigurationContentOnDevice() {
    await taggedDevice('nc-edge', 'x', true);
    await taggedDevice('nc-leaf', 'x', false);
    const content = {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { schemaVersion: '1.1', modules: {} } },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: {} } },
      },
    };
    const res = await reg.applyConfigurationContentOnDevice('nc-edge', content);
    assert.strictEqual(res.httpResponse.statusCode, 204);
    const agent = (await reg.getModuleTwin('nc-edge', '$edgeAgent')).responseBody;
    assert.strictEqual(agent.properties.desired.schemaVersion, '1.1');
    await expectHttpError(400, 'ArgumentInvalid', null, reg.applyConfigurationContentOnDevice('nc-leaf', content));
  },

  async leafParentScopesAndArrayContains() {
    const edge = (await reg.create({ deviceId: 'nc-parent', capabilities: { iotEdge: true } })).responseBody;
    const scope = edge.deviceScope;
    assert.ok(scope);
    const leaf = (await reg.create({ deviceId: 'nc-child', deviceScope: scope })).responseBody;
    assert.deepStrictEqual(leaf.parentScopes, [scope]);
    const query = reg.createQuery(`SELECT deviceId FROM devices WHERE array_contains(parentScopes, '${scope}')`);
    const page = (await query.next()).result;
    assert.deepStrictEqual(page.map((d) => d.deviceId), ['nc-child']);
    const cleared = (await reg.update({ deviceId: 'nc-child', deviceScope: '', etag: '*' })).responseBody;
    assert.deepStrictEqual(cleared.parentScopes, []);
  },
};

runChecks('configurations', checks);
