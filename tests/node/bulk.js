'use strict';
// Bulk registry operations with azure-iothub: addDevices, updateDevices, removeDevices.
const assert = require('assert');
const { registry, newKey, expectHttpError, runChecks } = require('./conformance');

const reg = registry();

function sas(deviceId, status) {
  return { deviceId, status: status || 'enabled', authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } } };
}

// A bulk request with failing devices may be answered 200 or 400; either way the body is a
// BulkRegistryOperationResult. azure-iothub surfaces a 400 as an ArgumentError carrying it.
async function bulkResult(promise) {
  try {
    return (await promise).responseBody;
  } catch (err) {
    if (!err.response || err.response.statusCode !== 400) throw err;
    return JSON.parse(err.responseBody);
  }
}

async function exists(deviceId) {
  try {
    await reg.get(deviceId);
    return true;
  } catch (err) {
    // 400: the id is not even valid, so no such device can exist.
    if (err.response && (err.response.statusCode === 404 || err.response.statusCode === 400)) return false;
    throw err;
  }
}

const checks = {
  async addDevices() {
    const result = (await reg.addDevices([sas('nb-1'), sas('nb-2'), sas('nb-3', 'disabled')])).responseBody;
    assert.strictEqual(result.isSuccessful, true);
    assert.deepStrictEqual(result.errors, []);
    assert.strictEqual((await reg.get('nb-3')).responseBody.status, 'disabled');
  },

  async addDevicesWithoutKeysGeneratesThem() {
    // The SDK normalises a missing authentication to empty sas keys.
    const result = (await reg.addDevices([{ deviceId: 'nb-nokeys' }])).responseBody;
    assert.strictEqual(result.isSuccessful, true);
    const dev = (await reg.get('nb-nokeys')).responseBody;
    assert.ok(dev.authentication.symmetricKey.primaryKey, 'generated primaryKey');
  },

  async addDevicesWithAnExistingDevice() {
    await reg.create(sas('nb-exists'));
    const result = await bulkResult(reg.addDevices([sas('nb-fresh'), sas('nb-exists')]));
    assert.strictEqual(result.isSuccessful, false);
    const errs = result.errors.filter((e) => e.deviceId === 'nb-exists');
    assert.strictEqual(errs.length, 1, `errors: ${JSON.stringify(result.errors)}`);
    assert.strictEqual(errs[0].errorCode, 'DeviceAlreadyExists');
  },

  async addDevicesWithAnInvalidId() {
    const result = await bulkResult(reg.addDevices([sas('bad id')]));
    assert.notStrictEqual(result.isSuccessful, true);
    assert.strictEqual(await exists('bad id'), false);
  },

  async updateAndRemoveDevices() {
    await reg.addDevices([sas('nb-u1'), sas('nb-u2')]);
    const upd = (await reg.updateDevices([sas('nb-u1', 'disabled'), sas('nb-u2', 'disabled')], true)).responseBody;
    assert.strictEqual(upd.isSuccessful, true);
    assert.strictEqual((await reg.get('nb-u1')).responseBody.status, 'disabled');
    const rem = (await reg.removeDevices([{ deviceId: 'nb-u1' }, { deviceId: 'nb-u2' }], true)).responseBody;
    assert.strictEqual(rem.isSuccessful, true);
    assert.strictEqual(await exists('nb-u1'), false);
    assert.strictEqual(await exists('nb-u2'), false);
  },

  async removeDevicesWithStaleEtag() {
    const created = (await reg.create(sas('nb-etag'))).responseBody;
    await reg.update(Object.assign(sas('nb-etag'), { status: 'disabled' }));
    const result = await bulkResult(reg.removeDevices([{ deviceId: 'nb-etag', eTag: created.etag }], false));
    assert.strictEqual(result.isSuccessful, false);
    assert.strictEqual(result.errors[0].errorCode, 'PreconditionFailed');
    assert.strictEqual(await exists('nb-etag'), true);
  },

  async deleteDevice() {
    await reg.create(sas('nb-del'));
    await reg.delete('nb-del');
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', reg.get('nb-del'));
  },
};

runChecks('node-bulk', checks);
