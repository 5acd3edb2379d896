// Checks the test EHR (server.mjs) the way MicroCare uses it. Run: `node --test` in tests/ehr
// (after `npm ci`). The MicroCare binary is taken from $MICROCARE_BINARY, else build/microcare;
// the tests that need it are skipped when it is missing.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const example = (name) => join(root, 'config', 'examples', name);
const microcare = process.env.MICROCARE_BINARY ?? join(root, 'build', 'microcare');
const SYSTEM = 'https://microcare.example/fhir/sid/generated';
// One CarePlan per encounter, whatever the pack (issue 9): the identifier names no pack.
const CAREPLAN_ID = 'enc-mn-20261120:careplan';

// Starts server.mjs and resolves once it printed "LISTENING <port>".
function startServer(...args) {
  const child = spawn(process.execPath, [join(here, 'server.mjs'), '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /^LISTENING (\d+)$/m.exec(stdout);
      if (m) {
        resolve({ child, base: `http://127.0.0.1:${m[1]}/fhir`, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
}

function stopServer(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    child.on('exit', (code, signal) => resolve(code ?? signal));
    child.kill('SIGTERM');
  });
}

async function fhir(method, url, body, headers = {}) {
  const response = await fetch(url, {
    method,
    headers: { accept: 'application/fhir+json', ...(body ? { 'content-type': 'application/fhir+json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined };
}

// Every resource of a search, following Bundle.link next.
async function searchAll(url) {
  const resources = [];
  let pages = 0;
  for (let next = url; next; pages++) {
    const { status, json } = await fhir('GET', next);
    assert.equal(status, 200, JSON.stringify(json));
    resources.push(...(json.entry ?? []).map((e) => e.resource));
    next = json.link?.find((l) => l.relation === 'next')?.url;
  }
  return { resources, pages };
}

function evaluateBundle() {
  return execFileSync(microcare, ['evaluate', '--now', '2026-11-24T12:00:00Z', example('absolute-isotretinoin.json')], {
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
}

// A copy of `bundle` whose identifiers (and ifNoneExist) carry `suffix`: a fresh set of writes.
function withSuffix(bundle, suffix) {
  const copy = structuredClone(bundle);
  for (const entry of copy.entry) {
    const identifier = entry.resource.identifier[0];
    identifier.value += suffix;
    entry.request.ifNoneExist = `identifier=${identifier.system}|${identifier.value}`;
  }
  return copy;
}

// A transaction shaped like MicroCare's, independent of the binary.
function smallTransaction(key) {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001',
        resource: {
          resourceType: 'CarePlan',
          identifier: [{ system: SYSTEM, value: `${key}:careplan` }],
          status: 'active',
          intent: 'plan',
          subject: { reference: 'Patient/pat-chloe-besson' },
          encounter: { reference: 'Encounter/enc-mn-20261120' },
          supportingInfo: [{ reference: 'urn:uuid:00000000-0000-4000-8000-000000000002' }],
        },
        request: { method: 'POST', url: 'CarePlan', ifNoneExist: `identifier=${SYSTEM}|${key}:careplan` },
      },
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000002',
        resource: {
          resourceType: 'DetectedIssue',
          identifier: [{ system: SYSTEM, value: `${key}:issue` }],
          status: 'final',
          patient: { reference: 'Patient/pat-chloe-besson' },
          reference: 'https://microcare.example/fhir/rule-pack/microcare-microneedling|1.0.0#A8',
        },
        request: { method: 'POST', url: 'DetectedIssue', ifNoneExist: `identifier=${SYSTEM}|${key}:issue` },
      },
    ],
  };
}

describe('test EHR (Medplum fhir-router)', () => {
  let server;
  before(async () => {
    // Every sample record has an Encounter/enc-mn-20261120: the later file's wins.
    server = await startServer('--load', example('pregnancy.json'), example('absolute-isotretinoin.json'));
  });
  after(async () => {
    await stopServer(server.child);
  });

  test('reads a seeded Encounter by id', async () => {
    const { status, json, headers } = await fhir('GET', `${server.base}/Encounter/enc-mn-20261120`);
    assert.equal(status, 200);
    assert.match(headers.get('content-type'), /^application\/fhir\+json/);
    assert.equal(json.resourceType, 'Encounter');
    assert.equal(json.subject.reference, 'Patient/pat-chloe-besson');
    assert.equal((await fhir('GET', `${server.base}/Encounter/nope`)).status, 404);
  });

  test('rewrote urn:uuid references of a seed Bundle to Type/id', async () => {
    const { json } = await fhir('GET', `${server.base}/Observation/obs-pregstatus-20260820`);
    assert.equal(json.subject.reference, 'Patient/pat-amira-haddad');
  });

  test('searches by patient (Patient/x and bare x), by subject, with paging', async () => {
    const expected = ['cond-acne', 'cond-keloid-refuted', 'cond-pregnancy-eie', 'cond-rhinitis'];
    for (const query of ['patient=Patient/pat-chloe-besson', 'patient=pat-chloe-besson', 'subject=Patient/pat-chloe-besson']) {
      const { resources } = await searchAll(`${server.base}/Condition?${query}`);
      assert.deepEqual(resources.map((r) => r.id).sort(), expected, query);
    }
    const paged = await searchAll(`${server.base}/Condition?patient=Patient/pat-chloe-besson&_count=1`);
    assert.equal(paged.pages, 4);
    assert.deepEqual(paged.resources.map((r) => r.id).sort(), expected);
    const first = await fhir('GET', `${server.base}/Condition?patient=Patient/pat-chloe-besson&_count=3`);
    assert.equal(first.json.total, 4);
    assert.ok(first.json.entry[0].fullUrl.endsWith('/fhir/Condition/' + first.json.entry[0].resource.id));
  });

  test('refuses an unknown search parameter', async () => {
    const { status, json } = await fhir('GET', `${server.base}/Condition?colour=red`);
    assert.equal(status, 400);
    assert.equal(json.resourceType, 'OperationOutcome');
  });

  test('transaction: conditional creates, urn:uuid resolved, second post creates nothing', async () => {
    const bundle = smallTransaction('small');
    const first = await fhir('POST', server.base, bundle);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.equal(first.json.type, 'transaction-response');
    assert.deepEqual(first.json.entry.map((e) => e.response.status), ['201', '201']);
    const [carePlanAt, issueAt] = first.json.entry.map((e) => e.response.location);
    assert.match(issueAt, /^DetectedIssue\/[0-9a-f-]+$/);
    const carePlan = (await fhir('GET', `${server.base}/${carePlanAt}`)).json;
    assert.equal(carePlan.supportingInfo[0].reference, issueAt);
    const issue = (await fhir('GET', `${server.base}/${issueAt}`)).json;
    assert.equal(issue.reference, bundle.entry[1].resource.reference, 'DetectedIssue.reference kept');

    const second = await fhir('POST', server.base, bundle);
    assert.deepEqual(second.json.entry.map((e) => e.response.status), ['200', '200']);
    assert.deepEqual(second.json.entry.map((e) => e.response.location), [carePlanAt, issueAt]);
    const found = await fhir('GET', `${server.base}/CarePlan?identifier=${SYSTEM}|small:careplan`);
    assert.equal(found.json.total, 1);
  });

  test('concurrent transactions with the same conditional creates make one resource', async () => {
    const bundle = smallTransaction('concurrent');
    const replies = await Promise.all([1, 2, 3, 4].map(() => fhir('POST', server.base, bundle)));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
    const found = await fhir('GET', `${server.base}/CarePlan?identifier=${SYSTEM}|concurrent:careplan`);
    assert.equal(found.json.total, 1);
  });

  test('validates what it stores and rolls back a failed transaction', async () => {
    const invalid = smallTransaction('invalid');
    delete invalid.entry[0].resource.intent;
    invalid.entry[1].resource.colour = 'red';
    const refused = await fhir('POST', server.base, invalid);
    assert.equal(refused.status, 400);
    const texts = refused.json.issue.map((i) => `${i.expression?.[0]}: ${i.details?.text}`);
    assert.ok(texts.includes('Bundle.entry[0].resource.intent: Missing required property'), texts.join('\n'));
    assert.ok(texts.some((t) => t.includes('colour')), texts.join('\n'));

    // A reference to nothing: found after both entries were created, so both are rolled back.
    const dangling = smallTransaction('dangling');
    dangling.entry[0].resource.encounter.reference = 'Encounter/does-not-exist';
    const rolledBack = await fhir('POST', server.base, dangling);
    assert.equal(rolledBack.status, 400);
    assert.match(rolledBack.json.issue[0].details.text, /does not exist/);
    for (const type of ['CarePlan', 'DetectedIssue']) {
      const left = await fhir('GET', `${server.base}/${type}?identifier=${SYSTEM}|dangling:${type === 'CarePlan' ? 'careplan' : 'issue'}`);
      assert.equal(left.json.total, 0, type);
    }
  });

  test('plain create with If-None-Exist', async () => {
    const carePlan = smallTransaction('plain').entry[0].resource;
    delete carePlan.supportingInfo;
    const headers = { 'if-none-exist': `identifier=${SYSTEM}|plain:careplan` };
    const created = await fhir('POST', `${server.base}/CarePlan`, carePlan, headers);
    assert.equal(created.status, 201);
    const again = await fhir('POST', `${server.base}/CarePlan`, carePlan, headers);
    assert.equal(again.status, 200);
    assert.equal(again.json.id, created.json.id);
    assert.equal(again.headers.get('location'), created.headers.get('location'));
  });

  test("MicroCare's evaluate output is accepted, and posting it twice creates nothing new", { skip: !existsSync(microcare) && `${microcare} not built` }, async () => {
    const bundle = withSuffix(JSON.parse(evaluateBundle()), '');
    const first = await fhir('POST', server.base, bundle);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.ok(first.json.entry.every((e) => e.response.status === '201'));
    const second = await fhir('POST', server.base, bundle);
    assert.equal(second.status, 200, JSON.stringify(second.json));
    assert.ok(second.json.entry.every((e) => e.response.status === '200'));
    assert.deepEqual(
      second.json.entry.map((e) => e.response.location),
      first.json.entry.map((e) => e.response.location)
    );
    const found = await fhir('GET', `${server.base}/CarePlan?identifier=${SYSTEM}|${CAREPLAN_ID}`);
    assert.equal(found.json.total, 1);
  });
});

test('SIGTERM stops the server', async () => {
  const { child } = await startServer();
  const started = Date.now();
  const result = await stopServer(child);
  assert.ok(result === 0 || result === 'SIGTERM', String(result));
  assert.ok(Date.now() - started < 5000);
});

test('a seed file that is not a Bundle is refused at start', async () => {
  const path = join(here, 'package.json');
  await assert.rejects(startServer('--load', path), /not a Bundle/);
  assert.ok(readFileSync(path, 'utf8').length > 0);
});
