'use strict';
// Registry device and module identities with azure-iothub: create, get, update, list,
// delete, statistics and the error answers the SDK maps to its error types.
const assert = require('assert');
const { Client } = require('azure-iothub');
const { registry, newKey, newThumbprint, expectHttpError, runChecks } = require('./conformance');

const reg = registry();

function sasDevice(deviceId, status) {
  return {
    deviceId,
    status: status || 'enabled',
    authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
  };
}

const checks = {
  async createGetUpdateDelete() {
    const desc = sasDevice('n-dev-1');
    const created = await reg.create(desc);
    const dev = created.responseBody;
    assert.strictEqual(created.httpResponse.statusCode, 200, 'create status');
    assert.strictEqual(dev.deviceId, 'n-dev-1');
    assert.strictEqual(dev.status, 'enabled');
    assert.strictEqual(dev.authentication.type, 'sas');
    assert.strictEqual(dev.authentication.symmetricKey.primaryKey, desc.authentication.symmetricKey.primaryKey);
    assert.ok(dev.etag, 'etag');
    assert.ok(dev.generationId, 'generationId');
    assert.strictEqual(dev.connectionState, 'Disconnected');

    const got = (await reg.get('n-dev-1')).responseBody;
    assert.strictEqual(got.etag, dev.etag, 'etag of get vs create');
    assert.strictEqual(got.authentication.symmetricKey.secondaryKey, desc.authentication.symmetricKey.secondaryKey);

    const newPrimary = newKey();
    const updated = (await reg.update({
      deviceId: 'n-dev-1',
      status: 'disabled',
      statusReason: 'maintenance',
      authentication: { symmetricKey: { primaryKey: newPrimary, secondaryKey: newKey() } },
    })).responseBody;
    assert.strictEqual(updated.status, 'disabled');
    assert.strictEqual(updated.statusReason, 'maintenance');
    assert.strictEqual(updated.authentication.symmetricKey.primaryKey, newPrimary);
    assert.strictEqual(updated.generationId, dev.generationId, 'generationId survives update');
    assert.notStrictEqual(updated.etag, dev.etag, 'etag changes on update');

    await reg.delete('n-dev-1');
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', reg.get('n-dev-1'));
  },

  async createWithoutAuthenticationGeneratesKeys() {
    // The SDK sends symmetricKey {primaryKey: "", secondaryKey: ""} when no authentication is given.
    const dev = (await reg.create({ deviceId: 'n-gen', status: 'enabled' })).responseBody;
    assert.strictEqual(dev.authentication.type, 'sas');
    assert.ok(dev.authentication.symmetricKey.primaryKey, 'generated primaryKey');
    assert.ok(dev.authentication.symmetricKey.secondaryKey, 'generated secondaryKey');
    assert.notStrictEqual(dev.authentication.symmetricKey.primaryKey, dev.authentication.symmetricKey.secondaryKey);
  },

  async x509AndCertificateAuthorityDevices() {
    const t1 = newThumbprint();
    const x = (await reg.create({
      deviceId: 'n-x509',
      authentication: { x509Thumbprint: { primaryThumbprint: t1, secondaryThumbprint: newThumbprint() } },
    })).responseBody;
    assert.strictEqual(x.authentication.type, 'selfSigned');
    assert.strictEqual(x.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), t1);
    const ca = (await reg.create({ deviceId: 'n-ca', authentication: { type: 'certificateAuthority' } })).responseBody;
    assert.strictEqual(ca.authentication.type, 'certificateAuthority');
    assert.strictEqual((await reg.get('n-ca')).responseBody.authentication.type, 'certificateAuthority');
  },

  async listDevices() {
    await reg.create(sasDevice('n-list-1'));
    await reg.create(sasDevice('n-list-2'));
    const list = (await reg.list()).responseBody;
    const ids = list.map((d) => d.deviceId);
    assert.ok(ids.includes('n-list-1') && ids.includes('n-list-2'), `listed ids: ${ids}`);
  },

  async registryStatistics() {
    const before = (await reg.getRegistryStatistics()).responseBody;
    await reg.create(sasDevice('n-stat-1'));
    await reg.create(sasDevice('n-stat-2', 'disabled'));
    const after = (await reg.getRegistryStatistics()).responseBody;
    assert.strictEqual(after.totalDeviceCount - before.totalDeviceCount, 2, 'totalDeviceCount delta');
    assert.strictEqual(after.enabledDeviceCount - before.enabledDeviceCount, 1, 'enabledDeviceCount delta');
    assert.strictEqual(after.disabledDeviceCount - before.disabledDeviceCount, 1, 'disabledDeviceCount delta');
  },

  async errors() {
    await reg.create(sasDevice('n-dup'));
    await expectHttpError(409, 'DeviceAlreadyExists', 'DeviceAlreadyExistsError', reg.create(sasDevice('n-dup')));
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', reg.get('n-missing'));
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', reg.delete('n-missing'));
    await expectHttpError(400, null, 'ArgumentError', reg.create(sasDevice('has space')));
    await expectHttpError(400, null, 'ArgumentError', reg.create(sasDevice('n'.repeat(129))));
    const longest = 'N'.repeat(128);
    assert.strictEqual((await reg.create(sasDevice(longest))).responseBody.deviceId, longest);
  },

  async modules() {
    await reg.create(sasDevice('n-mod-dev'));
    const pk = newKey();
    await reg.addModule({
      deviceId: 'n-mod-dev',
      moduleId: 'm1',
      managedBy: 'me',
      authentication: { type: 'sas', symmetricKey: { primaryKey: pk, secondaryKey: newKey() } },
    });
    await reg.addModule({ deviceId: 'n-mod-dev', moduleId: 'm2', authentication: { type: 'certificateAuthority' } });
    const m1 = (await reg.getModule('n-mod-dev', 'm1')).responseBody;
    assert.strictEqual(m1.moduleId, 'm1');
    assert.strictEqual(m1.deviceId, 'n-mod-dev');
    assert.strictEqual(m1.managedBy, 'me');
    assert.strictEqual(m1.authentication.symmetricKey.primaryKey, pk);
    const listed = (await reg.getModulesOnDevice('n-mod-dev')).responseBody.map((m) => m.moduleId).sort();
    assert.deepStrictEqual(listed, ['m1', 'm2']);

    // updateModule(module, false) sends the module's etag in If-Match.
    m1.managedBy = 'you';
    const updated = (await reg.updateModule(m1, false)).responseBody;
    assert.strictEqual(updated.managedBy, 'you');
    await expectHttpError(412, 'PreconditionFailed', 'InvalidEtagError', reg.updateModule(Object.assign({}, m1, { managedBy: 'stale' }), false));
    await expectHttpError(409, 'ModuleAlreadyExistsOnDevice', 'DeviceAlreadyExistsError', reg.addModule({ deviceId: 'n-mod-dev', moduleId: 'm1' }));

    await reg.removeModule('n-mod-dev', 'm1');
    await expectHttpError(404, 'ModuleNotFound', null, reg.getModule('n-mod-dev', 'm1'));
  },

  async directMethodOnOfflineDevice() {
    // Client.invokeDeviceMethod is REST (POST /twins/{id}/methods); no AMQP connection is opened.
    const client = Client.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING);
    await reg.create(sasDevice('n-meth'));
    const params = { methodName: 'reboot', payload: { now: true }, responseTimeoutInSeconds: 5 };
    await expectHttpError(404, 'DeviceNotOnline', null, client.invokeDeviceMethod('n-meth', params));
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', client.invokeDeviceMethod('n-meth-missing', params));
  },

  async wrongKeyIsUnauthorized() {
    const cs = process.env.IOTHUB_CONNECTION_STRING.replace(/SharedAccessKey=[^;]*/, `SharedAccessKey=${newKey()}`);
    const { Registry } = require('azure-iothub');
    const bad = Registry.fromConnectionString(cs);
    await expectHttpError(401, 'IotHubUnauthorizedAccess', 'UnauthorizedError', bad.get('n-dev-any'));
  },
};

runChecks('node-devices', checks);
