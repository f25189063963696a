'use strict';
// Device twins and queries with azure-iothub: getTwin / updateTwin with ETags, Twin.update,
// module twins, and createQuery(sql, pageSize) paged with nextAsTwin / next.
const assert = require('assert');
const { registry, newKey, expectHttpError, userProps, runChecks } = require('./conformance');

const reg = registry();
const QUERY_DEVICES = 23;

async function device(deviceId) {
  await reg.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } } });
  return deviceId;
}

async function allPages(query) {
  const pages = [];
  while (query.hasMoreResults) {
    const { result, message } = await query.nextAsTwin();
    pages.push({ twins: result, itemType: message.headers['x-ms-item-type'] });
    assert.ok(pages.length < 50, 'query never stopped');
  }
  return pages;
}

const checks = {
  async getTwinAndUpdateWithEtag() {
    await device('nt-1');
    const twin = (await reg.getTwin('nt-1')).responseBody;
    assert.strictEqual(twin.deviceId, 'nt-1');
    assert.ok(twin.etag && twin.etag !== '*', 'etag from the hub');
    assert.strictEqual(typeof twin.properties.desired.$version, 'number');

    const patch = { tags: { city: 'Oslo', site: { id: 7 } }, properties: { desired: { interval: 10 } } };
    const updated = (await reg.updateTwin('nt-1', patch, twin.etag)).responseBody;
    assert.deepStrictEqual(updated.tags, { city: 'Oslo', site: { id: 7 } });
    assert.deepStrictEqual(userProps(updated.properties.desired), { interval: 10 });
    assert.notStrictEqual(updated.etag, twin.etag, 'etag changes');
    assert.strictEqual(updated.properties.desired.$version, twin.properties.desired.$version + 1);

    await expectHttpError(412, 'PreconditionFailed', 'InvalidEtagError', reg.updateTwin('nt-1', { tags: { city: 'Bergen' } }, twin.etag));
    const merged = (await reg.updateTwin('nt-1', { tags: { site: { floor: 2 } } }, '*')).responseBody;
    assert.deepStrictEqual(merged.tags, { city: 'Oslo', site: { id: 7, floor: 2 } }, 'PATCH merges tags');
  },

  async twinObjectUpdate() {
    await device('nt-2');
    const twin = (await reg.getTwin('nt-2')).responseBody;
    const after = (await twin.update({ properties: { desired: { mode: 'eco' } } })).result;
    assert.deepStrictEqual(userProps(after.properties.desired), { mode: 'eco' });
    const fetched = (await after.get()).result;
    assert.strictEqual(fetched.etag, after.etag);
  },

  async moduleTwin() {
    await device('nt-mod');
    await reg.addModule({ deviceId: 'nt-mod', moduleId: 'tm' });
    const twin = (await reg.getModuleTwin('nt-mod', 'tm')).responseBody;
    assert.strictEqual(twin.moduleId, 'tm');
    const updated = (await reg.updateModuleTwin('nt-mod', 'tm', { properties: { desired: { a: 1 } } }, twin.etag)).responseBody;
    assert.deepStrictEqual(userProps(updated.properties.desired), { a: 1 });
    await expectHttpError(412, 'PreconditionFailed', 'InvalidEtagError', reg.updateModuleTwin('nt-mod', 'tm', { properties: { desired: { a: 2 } } }, twin.etag));
  },

  async twinErrors() {
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', reg.getTwin('nt-missing'));
    await expectHttpError(404, 'DeviceNotFound', 'DeviceNotFoundError', reg.updateTwin('nt-missing', { tags: { a: 1 } }, '*'));
    await device('nt-deep');
    let deep = 1;
    for (let i = 12; i >= 1; i -= 1) deep = { [`l${i}`]: deep };
    await expectHttpError(400, null, 'ArgumentError', reg.updateTwin('nt-deep', { properties: { desired: deep } }, '*'));
  },

  async queryPagingAsTwins() {
    for (let i = 0; i < QUERY_DEVICES; i += 1) {
      const id = await device(`nq-${String(i).padStart(2, '0')}`);
      await reg.updateTwin(id, { tags: { group: i % 2 === 0 ? 'even' : 'odd', n: i } }, '*');
    }
    const pages = await allPages(reg.createQuery("SELECT * FROM devices WHERE tags.group = 'even' OR tags.group = 'odd'", 5));
    assert.deepStrictEqual(pages.map((p) => p.twins.length), [5, 5, 5, 5, 3], 'page sizes');
    for (const p of pages) assert.strictEqual(String(p.itemType).toLowerCase(), 'twin', 'x-ms-item-type');
    const ids = pages.flatMap((p) => p.twins.map((t) => t.deviceId));
    assert.strictEqual(new Set(ids).size, QUERY_DEVICES, 'every device exactly once');
    for (const p of pages) for (const t of p.twins) assert.strictEqual(typeof t.update, 'function', 'nextAsTwin gives Twin objects');

    const even = await allPages(reg.createQuery("SELECT * FROM devices WHERE tags.group = 'even'", 100));
    assert.strictEqual(even.length, 1, 'one page');
    assert.strictEqual(even[0].twins.length, 12, 'even devices');
    for (const t of even[0].twins) assert.strictEqual(t.tags.group, 'even');
  },

  async queryRawNextAndAggregate() {
    const query = reg.createQuery("SELECT * FROM devices WHERE tags.n >= 20", 2);
    const first = await query.next();
    assert.strictEqual(first.result.length, 2);
    assert.ok(query.hasMoreResults, 'more results after the first page');
    // With promises, next() must be given the token: next() alone re-reads the first page.
    const second = await query.next(query.continuationToken);
    assert.strictEqual(second.result.length, 1);
    assert.strictEqual(query.hasMoreResults, false, 'no continuation after the last page');

    const count = await reg.createQuery("SELECT COUNT() AS total FROM devices WHERE tags.group = 'odd'").next();
    assert.deepStrictEqual(count.result, [{ total: 11 }], 'COUNT() AS total');
  },

  async invalidQueryIs400() {
    await expectHttpError(400, null, 'ArgumentError', reg.createQuery('SELECT FROM WHERE').next());
  },
};

runChecks('node-twins', checks);
