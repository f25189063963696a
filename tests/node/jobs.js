'use strict';
// Jobs with azure-iothub: JobClient.scheduleTwinUpdate / scheduleDeviceMethod / getJob /
// cancelJob / createQuery, with three devices connected through azure-iot-device over MQTT that
// answer the scheduled method; then Registry.exportDevicesToBlob / importDevicesFromBlob /
// getJob / listJobs against blob storage (Azurite; containers and SAS from @azure/storage-blob).
//
// The checks build on each other in order (devices first, the export sees what the jobs wrote).
// Environment besides conformance.js's: AZURITE_BLOB_ENDPOINT
// (http://127.0.0.1:<port>/devstoreaccount1), AZURITE_ACCOUNT_NAME, AZURITE_ACCOUNT_KEY.
//
// Where IoT Hub's documentation is silent, the checks follow the service SDKs' own end-to-end
// tests and what a published test against a live hub reported: a job scheduled ahead is
// `queued` when created and reaches `cancelled` some time after cancelJob; GET /jobs/v2/query
// answers a bare JSON array with the next page's token in x-ms-continuation (absent on the last
// page); importErrors.log holds {"deviceId", "errorCode" (six-digit number), "errorStatus"} per
// failed line; an unknown import/export job is 404 JobNotFound, an unknown scheduled job 200
// with type and status "unknown".
const assert = require('assert');
const {
  BlobServiceClient, StorageSharedKeyCredential, generateBlobSASQueryParameters, ContainerSASPermissions,
} = require('@azure/storage-blob');
const { JobClient } = require('azure-iothub');
const { registry, newKey, userProps, expectHttpError, runChecks } = require('./conformance');
const { deviceConnectionString, clientFor, withTimeout } = require('./device_loopback');

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run these scripts through cargo test, which starts Azurite)`);
  return value;
}

const WAIT = 15000; // device connections, method calls and desired patches
const JOB_WAIT = 10000; // a job to finish (the harness kills a script after 90 s)
const POLL = 200;
const BLOB_ENDPOINT = env('AZURITE_BLOB_ENDPOINT').replace(/\/+$/, '');
const ACCOUNT_NAME = env('AZURITE_ACCOUNT_NAME');
const credential = new StorageSharedKeyCredential(ACCOUNT_NAME, env('AZURITE_ACCOUNT_KEY'));
const blobs = new BlobServiceClient(BLOB_ENDPOINT, credential);
const reg = registry();
const jobs = JobClient.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING);

const SCHEDULED_STATUSES = new Set(['queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled']);
const IMPORT_EXPORT_STATUSES = new Set(['enqueued', 'running', 'completed', 'failed', 'cancelled']);
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const CONNECTED = ['nj-dev-0', 'nj-dev-1', 'nj-dev-2'];
const OTHERS = ['nj-dev-3', 'nj-dev-4', 'nj-dev-5', 'nj-dev-6'];
const ALL = CONNECTED.concat(OTHERS);
const keys = new Map(); // device id -> [primary, secondary]
const sessions = new Map(); // device id -> { client, methods: [], desired: [] }
const ran = {}; // job name -> job id

function progress(text) {
  console.log(`  - ${text}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls read(jobId) (which resolves to a job object) until its status is `want`.
async function waitForJob(read, jobId, want, allowed, timeout = JOB_WAIT) {
  const deadline = Date.now() + timeout;
  const seen = [];
  for (;;) {
    const job = await read(jobId);
    assert.strictEqual(job.jobId, jobId, `jobId of the polled job: ${JSON.stringify(job)}`);
    if (seen[seen.length - 1] !== job.status) seen.push(job.status);
    assert.ok(allowed.has(job.status), `job ${jobId} has status ${job.status}: ${JSON.stringify(job)}`);
    if (job.status === want) return { job, seen };
    if (TERMINAL.has(job.status)) {
      assert.fail(`job ${jobId} ended ${job.status} (failureReason ${job.failureReason}), expected ${want}; statuses seen: ${seen.join(' -> ')}`);
    }
    if (Date.now() > deadline) assert.fail(`job ${jobId} is still ${job.status} after ${timeout} ms; statuses seen: ${seen.join(' -> ')}`);
    await sleep(POLL);
  }
}

const readScheduled = async (id) => (await jobs.getJob(id)).jobStatus;
const readImportExport = (id) => reg.getJob(id);

function statistics(job) {
  const s = job.deviceJobStatistics;
  assert.ok(s, `deviceJobStatistics of ${job.jobId}: ${JSON.stringify(job)}`);
  return {
    deviceCount: s.deviceCount, succeededCount: s.succeededCount, failedCount: s.failedCount,
    runningCount: s.runningCount, pendingCount: s.pendingCount,
  };
}

function finishedTimes(job, start, end) {
  const a = Date.parse(job[start]);
  const b = Date.parse(job[end]);
  assert.ok(!Number.isNaN(a), `${start} of ${job.jobId}: ${job[start]}`);
  assert.ok(!Number.isNaN(b), `${end} of ${job.jobId}: ${job[end]}`);
  assert.ok(b >= a, `${end} ${job[end]} is before ${start} ${job[start]}`);
}

async function waitFor(list, matches, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const i = list.findIndex(matches);
    if (i >= 0) return list.splice(i, 1)[0];
    if (Date.now() > deadline) assert.fail(`no ${what} within ${WAIT} ms; received: ${JSON.stringify(list)}`);
    await sleep(50);
  }
}

// Every row of a registry query, following continuation tokens.
async function queryAll(sql) {
  const query = reg.createQuery(sql, 100);
  const rows = [];
  const types = [];
  for (let page = 0; query.hasMoreResults; page += 1) {
    assert.ok(page < 20, `${sql}: the query never stopped returning continuation tokens`);
    // The promise form of next() without an argument would ask for the first page again.
    const { result, message } = await query.next(query.continuationToken);
    assert.ok(Array.isArray(result), `${sql}: a page is not an array: ${JSON.stringify(result)}`);
    types.push(message.headers['x-ms-item-type']);
    rows.push(...result);
  }
  return { rows, types };
}

async function containerUri(name) {
  await blobs.getContainerClient(name).create();
  const sas = generateBlobSASQueryParameters({
    containerName: name,
    permissions: ContainerSASPermissions.parse('racwdl'),
    expiresOn: new Date(Date.now() + 2 * 3600 * 1000),
  }, credential).toString();
  return `${BLOB_ENDPOINT}/${name}?${sas}`;
}

async function readBlob(container, name) {
  const client = blobs.getContainerClient(container);
  const present = [];
  for await (const b of client.listBlobsFlat()) present.push(b.name);
  assert.ok(present.includes(name), `blob ${container}/${name} was not written; the container holds ${JSON.stringify(present)}`);
  return (await client.getBlobClient(name).downloadToBuffer()).toString('utf8');
}

function jsonLines(text, what) {
  return text.split('\n').filter((l) => l.trim()).map((line, i) => {
    let value;
    try {
      value = JSON.parse(line);
    } catch (e) {
      assert.fail(`${what} line ${i + 1} is not JSON: ${line}`);
    }
    assert.ok(value && typeof value === 'object' && !Array.isArray(value), `${what} line ${i + 1} is not an object: ${line}`);
    return value;
  });
}

async function runImportExport(start, type, what) {
  const created = await start();
  assert.ok(created && created.jobId, `${what}: the created job has a jobId: ${JSON.stringify(created)}`);
  assert.strictEqual(created.type, type, `${what}: type of the created job`);
  assert.ok(['enqueued', 'running', 'completed'].includes(created.status), `${what}: status at creation ${created.status}`);
  const { job, seen } = await waitForJob(readImportExport, created.jobId, 'completed', IMPORT_EXPORT_STATUSES);
  assert.strictEqual(job.type, type, `${what}: type of the finished job`);
  assert.strictEqual(job.progress, 100, `${what}: progress`);
  assert.ok(!job.failureReason, `${what}: failureReason ${job.failureReason}`);
  finishedTimes(job, 'startTimeUtc', 'endTimeUtc');
  progress(`${what} job ${job.jobId}: ${seen.join(' -> ')}`);
  return job;
}

const checks = {
  async sevenDevicesThreeConnectedOverMqtt() {
    for (const deviceId of ALL) {
      const k = [newKey(), newKey()];
      keys.set(deviceId, k);
      await reg.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: k[0], secondaryKey: k[1] } } });
      const tags = { role: 'nj' };
      if (CONNECTED.includes(deviceId)) tags.group = 'nj-m';
      await reg.updateTwin(deviceId, { tags }, '*');
    }
    for (const deviceId of CONNECTED) {
      const s = { methods: [], desired: [] };
      s.client = clientFor(deviceConnectionString('mqtt', deviceId, keys.get(deviceId)[0]), 'mqtt');
      s.client.on('error', (err) => console.log(`${deviceId}: client error: ${err}`));
      sessions.set(deviceId, s);
      await withTimeout(s.client.open(), WAIT, `${deviceId} open`);
      s.client.onDeviceMethod('nj-echo', (request, response) => {
        s.methods.push({ name: request.methodName, payload: request.payload });
        response.send(200, { echo: request.payload, device: deviceId }, (err) => {
          if (err) console.log(`${deviceId}: method response failed: ${err}`);
        });
      });
      const twin = await withTimeout(s.client.getTwin(), WAIT, `${deviceId} getTwin`);
      twin.on('properties.desired', (delta) => s.desired.push(delta));
      // The method and desired-property SUBSCRIBEs went out before this GET; once it is
      // answered the hub has them.
      await withTimeout(twin.get(), WAIT, `${deviceId} twin.get`);
    }
    progress(`${ALL.length} devices, ${CONNECTED.join(', ')} connected over MQTT`);
  },

  async scheduleTwinUpdateOverATagQuery() {
    const jobId = 'nj-twin';
    const condition = "tags.role = 'nj'";
    const patch = { etag: '*', tags: { wave: 'n1' }, properties: { desired: { nj_interval: 45 } } };
    const { jobStatus: created, response } = await jobs.scheduleTwinUpdate(jobId, condition, patch, new Date(), 60);
    assert.strictEqual(response.statusCode, 200, 'PUT /jobs/v2/{id} status');
    assert.strictEqual(created.jobId, jobId, 'jobId of the created job');
    assert.strictEqual(created.type, 'scheduleUpdateTwin', 'type of the created job');
    assert.strictEqual(created.queryCondition, condition, 'queryCondition of the created job');
    assert.ok(['queued', 'scheduled', 'running', 'completed'].includes(created.status), `status at creation ${created.status}`);
    const { job, seen } = await waitForJob(readScheduled, jobId, 'completed', SCHEDULED_STATUSES);
    ran.twin = jobId;
    assert.deepStrictEqual(statistics(job),
      { deviceCount: ALL.length, succeededCount: ALL.length, failedCount: 0, runningCount: 0, pendingCount: 0 },
      'statistics of the twin job');
    finishedTimes(job, 'startTime', 'endTime');
    progress(`twin job ${jobId}: created ${created.status}, then ${seen.join(' -> ')}`);
    for (const deviceId of ALL) {
      const twin = (await reg.getTwin(deviceId)).responseBody;
      assert.strictEqual(twin.tags.wave, 'n1', `${deviceId} tags.wave`);
      assert.strictEqual(twin.tags.role, 'nj', `${deviceId} keeps tags.role (a patch, not a replace)`);
      assert.deepStrictEqual(userProps(twin.properties.desired), { nj_interval: 45 }, `${deviceId} desired`);
    }
    for (const deviceId of CONNECTED) {
      const delta = await waitFor(sessions.get(deviceId).desired, (d) => d && d.nj_interval === 45, `desired patch on ${deviceId}`);
      assert.strictEqual(typeof delta.$version, 'number', `$version in the patch ${JSON.stringify(delta)}`);
    }
    progress('connected devices received the desired patch');
  },

  async scheduleDeviceMethodOnConnectedDevices() {
    const jobId = 'nj-method';
    const params = { methodName: 'nj-echo', payload: { n: 1 }, responseTimeoutInSeconds: 10 };
    const { jobStatus: created } = await jobs.scheduleDeviceMethod(jobId, "tags.group = 'nj-m'", params, new Date(), 60);
    assert.strictEqual(created.type, 'scheduleDeviceMethod', 'type of the created job');
    assert.strictEqual(created.cloudToDeviceMethod && created.cloudToDeviceMethod.methodName, 'nj-echo', 'cloudToDeviceMethod echoed');
    const { job, seen } = await waitForJob(readScheduled, jobId, 'completed', SCHEDULED_STATUSES);
    ran.method = jobId;
    assert.deepStrictEqual(statistics(job),
      { deviceCount: CONNECTED.length, succeededCount: CONNECTED.length, failedCount: 0, runningCount: 0, pendingCount: 0 },
      'statistics of the method job');
    for (const deviceId of CONNECTED) {
      const calls = sessions.get(deviceId).methods;
      assert.strictEqual(calls.length, 1, `${deviceId} method calls: ${JSON.stringify(calls)}`);
      assert.deepStrictEqual(calls[0], { name: 'nj-echo', payload: { n: 1 } }, `${deviceId} method request`);
      calls.length = 0;
    }
    progress(`method job ${jobId}: ${seen.join(' -> ')}; each connected device answered once`);
  },

  async deviceJobsQueryHasEachDevicesOutcome() {
    assert.ok(ran.method, 'the method job did not run');
    const { rows, types } = await queryAll(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${ran.method}'`);
    for (const t of types) assert.strictEqual(String(t).toLowerCase(), 'devicejob', 'x-ms-item-type');
    assert.deepStrictEqual(rows.map((r) => r.deviceId).sort(), CONNECTED, 'devices.jobs rows');
    for (const r of rows) {
      assert.strictEqual(r.jobId, ran.method, 'devices.jobs jobId');
      assert.strictEqual(r.jobType, 'scheduleDeviceMethod', `jobType of ${r.deviceId}`);
      assert.strictEqual(r.status, 'completed', `status of ${r.deviceId}: ${JSON.stringify(r)}`);
      const outcome = r.outcome && r.outcome.deviceMethodResponse;
      assert.ok(outcome, `outcome.deviceMethodResponse of ${r.deviceId}: ${JSON.stringify(r)}`);
      assert.strictEqual(outcome.status, 200, `method status of ${r.deviceId}`);
      assert.deepStrictEqual(outcome.payload, { echo: { n: 1 }, device: r.deviceId }, `method payload of ${r.deviceId}`);
    }
    progress(`devices.jobs: ${rows.length} rows with the devices' answers`);
  },

  async cancelJobsScheduledAnHourAhead() {
    const later = new Date(Date.now() + 3600 * 1000);
    const twin = (await jobs.scheduleTwinUpdate('nj-future-twin', "tags.role = 'nj'", { etag: '*', tags: { never: true } }, later, 120)).jobStatus;
    const method = (await jobs.scheduleDeviceMethod('nj-future-method', "tags.group = 'nj-m'", { methodName: 'nj-echo' }, later, 120)).jobStatus;
    const answers = [];
    for (const id of ['nj-future-twin', 'nj-future-method']) {
      const { jobStatus, response } = await jobs.cancelJob(id);
      assert.strictEqual(response.statusCode, 200, 'POST /jobs/v2/{id}/cancel status');
      assert.strictEqual(jobStatus.jobId, id, 'jobId in the cancel answer');
      answers.push(jobStatus.status);
      const { seen } = await waitForJob(readScheduled, id, 'cancelled', SCHEDULED_STATUSES, 10000);
      progress(`${id}: cancel answered ${jobStatus.status}, then ${seen.join(' -> ')}`);
    }
    ran.cancelled = ['nj-future-twin', 'nj-future-method'];
    for (const deviceId of ALL) {
      assert.ok(!('never' in (await reg.getTwin(deviceId)).responseBody.tags), `the cancelled job changed ${deviceId}`);
    }
    for (const deviceId of CONNECTED) {
      assert.deepStrictEqual(sessions.get(deviceId).methods, [], `the cancelled method job reached ${deviceId}`);
    }
    // As azure-iot-sdk-node's end-to-end test asserts against IoT Hub.
    assert.strictEqual(twin.status, 'queued', 'status of a twin job that starts in an hour, as created');
    assert.strictEqual(method.status, 'queued', 'status of a method job that starts in an hour, as created');
    assert.deepStrictEqual(answers, ['cancelled', 'cancelled'], 'status in the cancel answers');
  },

  async createQueryPagesAndFilters() {
    assert.ok(ran.twin && ran.method && ran.cancelled, 'the scheduled jobs did not all run');
    async function all(type, status, pageSize) {
      const query = jobs.createQuery(type, status, pageSize);
      const pages = [];
      while (query.hasMoreResults) {
        assert.ok(pages.length < 10, 'the job query never stopped returning continuation tokens');
        const { result, message } = await query.next(query.continuationToken);
        assert.ok(Array.isArray(result), `GET /jobs/v2/query body is not an array: ${JSON.stringify(result)}`);
        if (pageSize) assert.ok(result.length <= pageSize, `a page of ${result.length} jobs for page size ${pageSize}`);
        const token = message.headers['x-ms-continuation'];
        assert.ok(token === undefined || token.length > 0, 'x-ms-continuation is absent on the last page, never empty');
        pages.push(result);
      }
      return pages;
    }
    const everything = await all(undefined, undefined, 2);
    const ids = everything.flat().map((j) => j.jobId).sort();
    assert.deepStrictEqual(ids, [ran.method, ...ran.cancelled, ran.twin].sort(), 'all scheduled jobs, over pages of 2');
    assert.ok(everything.length >= 2, `four jobs came in ${everything.length} page(s) of at most 2`);
    const completedTwin = (await all('scheduleUpdateTwin', 'completed')).flat();
    assert.deepStrictEqual(completedTwin.map((j) => j.jobId), [ran.twin], 'completed scheduleUpdateTwin jobs');
    assert.strictEqual(completedTwin[0].status, 'completed', 'status of a listed job');
    const cancelled = (await all(undefined, 'cancelled')).flat().map((j) => j.jobId).sort();
    assert.deepStrictEqual(cancelled, [...ran.cancelled].sort(), 'cancelled jobs');
    const methods = (await all('scheduleDeviceMethod')).flat().map((j) => j.jobId).sort();
    assert.deepStrictEqual(methods, ['nj-future-method', ran.method].sort(), 'scheduleDeviceMethod jobs');
    progress(`createQuery: ${everything.length} pages of all jobs; filters by type and status`);
  },

  async exportDevicesToBlobWithKeys() {
    const uri = await containerUri('nj-export');
    const job = await runImportExport(() => reg.exportDevicesToBlob(uri, false), 'export', 'export');
    ran.export = job.jobId;
    const lines = jsonLines(await readBlob('nj-export', 'devices.txt'), 'devices.txt');
    const devices = lines.filter((l) => !l.moduleId);
    assert.deepStrictEqual(devices.map((l) => l.id).sort(), [...ALL].sort(), 'devices in devices.txt');
    assert.strictEqual(lines.length, devices.length, 'no module lines (no modules exist)');
    for (const line of devices) {
      const [primary, secondary] = keys.get(line.id);
      const sym = (line.authentication && line.authentication.symmetricKey) || {};
      assert.strictEqual(sym.primaryKey, primary, `${line.id} primaryKey`);
      assert.strictEqual(sym.secondaryKey, secondary, `${line.id} secondaryKey`);
      assert.strictEqual(line.status, 'enabled', `${line.id} status`);
      // What the twin job wrote is exported.
      assert.strictEqual(line.tags && line.tags.wave, 'n1', `${line.id} exported tags ${JSON.stringify(line.tags)}`);
      assert.strictEqual(line.properties.desired.nj_interval, 45, `${line.id} exported desired`);
    }
    progress(`devices.txt: ${lines.length} devices with keys and the twin job's tags`);
  },

  async importDevicesFromBlobAndItsErrorLog() {
    const input = await containerUri('nj-import');
    const output = await containerUri('nj-import-out');
    const k = [newKey(), newKey()];
    const text = [
      { id: 'nj-imp-1', importMode: 'create', status: 'enabled', authentication: { type: 'sas', symmetricKey: { primaryKey: k[0], secondaryKey: k[1] } } },
      { id: 'nj-dev-4', importMode: 'create', status: 'enabled', authentication: { type: 'sas' } },
      { id: 'nj-dev-6', importMode: 'delete', status: 'enabled' },
    ].map((l) => JSON.stringify(l)).join('\n');
    await blobs.getContainerClient('nj-import').getBlockBlobClient('devices.txt').upload(text, Buffer.byteLength(text));
    const job = await runImportExport(() => reg.importDevicesFromBlob(input, output), 'import', 'import');
    ran.import = job.jobId;
    const created = (await reg.get('nj-imp-1')).responseBody;
    assert.strictEqual(created.authentication.symmetricKey.primaryKey, k[0], 'imported primaryKey');
    assert.strictEqual((await reg.get('nj-dev-4')).responseBody.authentication.symmetricKey.primaryKey, keys.get('nj-dev-4')[0],
      'nj-dev-4 kept its keys');
    await assert.rejects(reg.get('nj-dev-6'), (err) => err.response && err.response.statusCode === 404, 'nj-dev-6 was deleted');
    const records = jsonLines(await readBlob('nj-import-out', 'importErrors.log'), 'importErrors.log');
    assert.strictEqual(records.length, 1, `one failed line: ${JSON.stringify(records)}`);
    assert.strictEqual(records[0].deviceId, 'nj-dev-4', `deviceId of the record ${JSON.stringify(records[0])}`);
    assert.strictEqual(records[0].errorCode, 409001, `errorCode (DeviceAlreadyExists) of ${JSON.stringify(records[0])}`);
    assert.ok(typeof records[0].errorStatus === 'string' && records[0].errorStatus, 'errorStatus');
    progress('import: created nj-imp-1, deleted nj-dev-6, logged the repeated create of nj-dev-4');
  },

  async registryListsAndReadsImportExportJobs() {
    assert.ok(ran.export && ran.import, 'the import and export jobs did not both run');
    const { responseBody: listed, httpResponse } = await reg.listJobs();
    assert.strictEqual(httpResponse.statusCode, 200, 'GET /jobs status');
    assert.ok(Array.isArray(listed), `GET /jobs body is not an array: ${JSON.stringify(listed)}`);
    const byId = new Map(listed.map((j) => [j.jobId, j]));
    assert.strictEqual(byId.get(ran.export) && byId.get(ran.export).type, 'export', 'the export job in listJobs');
    assert.strictEqual(byId.get(ran.import) && byId.get(ran.import).type, 'import', 'the import job in listJobs');
    for (const id of [ran.export, ran.import]) assert.strictEqual(byId.get(id).status, 'completed', `listed status of ${id}`);
    // Scheduled jobs are not import/export jobs.
    assert.ok(!byId.has(ran.twin), 'listJobs lists a scheduled job');
    progress(`listJobs: ${listed.length} import/export jobs`);
  },

  async unknownJobs() {
    // Unknown import/export job: 404 JobNotFound. Unknown scheduled job: 200 with type and status
    // "unknown" (the Azure CLI relies on it), not 404.
    await expectHttpError(404, 'JobNotFound', null, reg.getJob('nj-no-such-job'));
    const { jobStatus, response } = await jobs.getJob('nj-no-such-job');
    assert.strictEqual(response.statusCode, 200, 'GET /jobs/v2/{unknown} status');
    assert.deepStrictEqual([jobStatus.type, jobStatus.status], ['unknown', 'unknown'], `an unknown scheduled job: ${JSON.stringify(jobStatus)}`);
  },

  async closeDevices() {
    for (const [deviceId, s] of sessions) await withTimeout(s.client.close(), WAIT, `close ${deviceId}`);
  },
};

runChecks('node-jobs', checks);
