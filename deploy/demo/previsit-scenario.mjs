#!/usr/bin/env node
// Pre-visit screening against a real FHIR server (issue 12): MicroCare polls the EHR's
// appointments and screens each booked microneedling appointment before the visit.
//  1. a real FHIR server (Medplum's FHIR router, tests/ehr/server.mjs) plays the EHR, seeded with
//     config/examples/absolute-isotretinoin.json (a patient on isotretinoin);
//  2. `microcare serve` runs with `poll.appointments` (every second; every booked appointment
//     re-screened every few seconds, where a clinic would say daily) and no inbound trigger;
//  3. the clinic books a microneedling appointment three days ahead: a `high` DetectedIssue
//     and a Task due at the appointment's start appear before it; the clinic moves it a day
//     later: the same Task and DetectedIssue are revised; the patient's record changes (a keloid
//     scar is confirmed): the re-screening adds the finding to the same Task; the clinic
//     cancels it: the Task is cancelled;
//  4. a second appointment arrives as a booking message (MessageHeader.focus the Appointment),
//     the path message-driven EHRs take: screened the same way.
// `--check` asserts each step and exits non-zero otherwise (the ctest entry runs it so).
//
//   node deploy/demo/previsit-scenario.mjs [--check] [--binary build/microcare] [--work DIR]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { args, failWith, listeningPort, option, root, run, searchAll, start } from './support.mjs';

const check = args.includes('--check');
const binary = resolve(option('--binary', join(root, 'build/microcare')));
const work = resolve(option('--work', join(root, 'var/demo-previsit')));
mkdirSync(work, { recursive: true });
const fail = failWith('previsit-scenario');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const problems = [];
const expect = (ok, what) => {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) problems.push(what);
};

const seed = join(root, 'config/examples/absolute-isotretinoin.json');
const patient = 'Patient/' + JSON.parse(readFileSync(seed, 'utf8')).entry.find((e) => e.resource.resourceType === 'Patient').resource.id;

const ehrLog = join(work, 'ehr.log');
const serviceLog = join(work, 'microcare.log');
writeFileSync(ehrLog, '');
writeFileSync(serviceLog, '');
const ehrPort = await start('node', [join(root, 'tests/ehr/server.mjs'), '--port', '0', '--verbose', '--load', seed],
  (line) => /^LISTENING (\d+)$/.exec(line)?.[1], ehrLog).catch((e) => fail(e.message));
const ehr = `http://127.0.0.1:${ehrPort}/fhir`;

const stamp = Date.now();
const token = `previsit-${stamp}`;
process.env.MICROCARE_INBOUND_TOKEN = token;
const config = {
  server: { listen: '127.0.0.1', port: 0, auth: { bearerTokens: ['${MICROCARE_INBOUND_TOKEN}'] } },
  store: { path: join(work, `microcare-${stamp}.db`) },
  audit: { path: join(work, `audit-${stamp}.log`) },
  worker: { backoffInitialMs: 200, backoffMaxMs: 2000 },
  ehr: { baseUrl: ehr },
  poll: { intervalMs: 1000, pageSize: 20, overlapMs: 5000, appointments: { horizonDays: 14, rescreenEveryMs: 4000 } },
  log: { level: 'info' },
};
const configPath = join(work, 'microcare.json');
writeFileSync(configPath, JSON.stringify(config, null, 2));
// The first start's cursor is the EHR's clock to the second: the seeded visit, finished more
// than a second before, is not MicroCare's to assess.
await sleep(1100);
const port = await start(binary, ['serve', '--config', configPath], listeningPort, serviceLog).catch((e) => fail(e.message));
const microcare = `http://127.0.0.1:${port}/fhir`;
console.log(`EHR (Medplum FHIR router): ${ehr}; MicroCare polling its appointments every second\n`);

const fhir = async (method, path, body) => {
  const response = await fetch(`${ehr}/${path}`, {
    method,
    headers: { 'Content-Type': 'application/fhir+json' },
    body: body && JSON.stringify(body),
  });
  const json = await response.json();
  if (response.status >= 300) fail(`${method} ${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
  return json;
};
const at = (days, hour) => {
  const d = new Date(Date.now() + days * 86400000);
  d.setUTCHours(hour, 0, 0, 0);
  return d.toISOString().replace('.000Z', 'Z');
};
const appointment = (start, status = 'booked') => ({
  resourceType: 'Appointment',
  status,
  serviceType: [{ coding: [{ system: 'https://microcare.example/CodeSystem/procedure', code: 'microneedling', display: 'Microneedling' }], text: 'Microneedling' }],
  start,
  end: start.replace(/T(\d\d)/, (_, h) => `T${String(Number(h) + 1).padStart(2, '0')}`),
  participant: [{ actor: { reference: patient }, status: 'accepted' }],
});
// What MicroCare wrote for an appointment, by its identifiers ("appointment-<id>:...").
const written = async (id) => {
  const mine = (r) => r.identifier?.some((i) => i.value.startsWith(`appointment-${id}:`));
  return {
    issues: (await searchAll(ehr, `DetectedIssue?patient=${patient}`)).filter(mine),
    tasks: (await searchAll(ehr, 'Task')).filter(mine),
    plans: (await searchAll(ehr, `CarePlan?subject=${patient}`)).filter(mine),
  };
};
// Waits until `ready(written)` holds (each poll is a second apart, the screening a job after it).
const until = async (id, what, ready) => {
  for (const deadline = Date.now() + 30000; ; await sleep(250)) {
    const w = await written(id);
    if (ready(w)) return w;
    if (Date.now() > deadline) {
      problems.push(`${what}: not within 30 s`);
      console.log(`  FAIL ${what}: not within 30 s; see ${serviceLog}`);
      return w;
    }
  }
};
const describe = (w) => {
  for (const i of w.issues) console.log(`    DetectedIssue/${i.id} v${i.meta.versionId} ${i.severity} ${i.status}: ${i.code?.coding?.[1]?.code}`);
  for (const t of w.tasks) console.log(`    Task/${t.id} v${t.meta.versionId} ${t.status} ${t.priority}, due ${t.restriction?.period?.end}, focus ${t.focus?.reference}`);
};

// ---- booked ----------------------------------------------------------------------------------
const start1 = at(3, 9);
const booked = await fhir('POST', 'Appointment', appointment(start1));
console.log(`booked Appointment/${booked.id} for ${start1} (${patient}: isotretinoin)`);
let w = await until(booked.id, 'a high DetectedIssue and a Task', (w) => w.issues.length > 0 && w.tasks.length > 0);
describe(w);
const task = w.tasks[0];
expect(w.issues.some((i) => i.severity === 'high' && i.status !== 'cancelled'), 'a high DetectedIssue');
expect(task?.restriction?.period?.end && Date.parse(task.restriction.period.end) === Date.parse(start1), 'the Task is due at the appointment\'s start');
expect(Date.parse(task?.restriction?.period?.end) > Date.now(), 'which is still ahead');
expect(task?.focus?.reference === `Appointment/${booked.id}`, 'the Task is about the Appointment');
expect(w.plans.length === 0, 'no CarePlan before the treatment');

// ---- moved -----------------------------------------------------------------------------------
const start2 = at(4, 14);
await fhir('PUT', `Appointment/${booked.id}`, { ...appointment(start2), id: booked.id });
console.log(`\nmoved Appointment/${booked.id} to ${start2}`);
w = await until(booked.id, 'the Task revised', (w) => Date.parse(w.tasks[0]?.restriction?.period?.end) === Date.parse(start2));
describe(w);
expect(w.tasks.length === 1 && w.tasks[0].id === task.id, 'the same Task, revised');
expect(w.issues.every((i) => i.detail.includes(start2.slice(0, 10))), 'the DetectedIssues measured from the new start');

// ---- the record changes -------------------------------------------------------------------
const keloid = await fhir('GET', 'Condition/cond-keloid-refuted');
keloid.verificationStatus = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] };
await fhir('PUT', 'Condition/cond-keloid-refuted', keloid);
const issuesBefore = w.issues.map((i) => i.id);
console.log(`\nthe record changes: the keloid scar is confirmed (the re-screening runs every ${config.poll.appointments.rescreenEveryMs} ms)`);
w = await until(booked.id, 'the re-screening finds the keloid', (w) => w.issues.length > issuesBefore.length);
describe(w);
expect(w.issues.length === issuesBefore.length + 1, 'one more DetectedIssue');
const added = w.issues.find((i) => !issuesBefore.includes(i.id))?.code?.coding?.[1]?.code ?? '?';
expect(w.tasks.length === 1 && w.tasks[0].id === task.id && (w.tasks[0].reasonCode?.text ?? '').includes(added),
  `the same Task names its rule (${added})`);

// ---- cancelled -------------------------------------------------------------------------------
await fhir('PUT', `Appointment/${booked.id}`, { ...appointment(start2, 'cancelled'), id: booked.id });
console.log(`\ncancelled Appointment/${booked.id}`);
w = await until(booked.id, 'the Task cancelled', (w) => w.tasks[0]?.status === 'cancelled');
describe(w);
expect(w.tasks[0]?.status === 'cancelled' && /cancelled/.test(w.tasks[0]?.statusReason?.text ?? ''), 'the Task is cancelled, and says why');

// ---- a booking message -------------------------------------------------------------------
const other = await fhir('POST', 'Appointment', appointment(at(10, 11)));
const reply = await fetch(`${microcare}/$process-message`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` },
  body: JSON.stringify({
    resourceType: 'Bundle', id: `booking-${stamp}`, type: 'message', timestamp: new Date().toISOString(),
    entry: [{ fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001', resource: {
      resourceType: 'MessageHeader', id: `booking-header-${stamp}`,
      eventCoding: { system: 'https://ehr.example/events', code: 'appointment-booked' },
      source: { endpoint: 'https://ehr.example/messaging' },
      focus: [{ reference: `${ehr}/Appointment/${other.id}` }] } }],
  }),
});
console.log(`\na booking message for Appointment/${other.id}: HTTP ${reply.status}`);
expect(reply.status === 200, 'the message is acknowledged');
w = await until(other.id, 'the booked appointment of the message screened', (w) => w.tasks.length === 1);
describe(w);

// ---- what it cost, and the trail -----------------------------------------------------------
// The poller keeps queueing re-screenings, and a job is marked done only after its write, which
// the EHR shows first: wait for a moment when none is queued or running.
const screenings = async () => (await run(binary, ['jobs', 'list', '--store', config.store.path, '--limit', '1000'])).out
  .split('\n').filter((l) => /^\d+\t/.test(l)).map((l) => l.split('\t')).filter((j) => j[3] === 'screen');
let jobs = await screenings();
for (const deadline = Date.now() + 30000; jobs.some((j) => j[1] === 'queued' || j[1] === 'running') && Date.now() < deadline; jobs = await screenings()) await sleep(100);
expect(jobs.every((j) => j[1] === 'done'), `every screening job done (${jobs.length}: ${[...new Set(jobs.map((j) => j[1]))].join(', ')})`);
const requests = readFileSync(ehrLog, 'utf8').split('\n');
const searches = requests.filter((l) => /GET \/fhir\/Appointment\?/.test(l)).length;
console.log(`EHR requests: ${searches} Appointment searches (one per poll, one per re-screening), ${requests.length} in all`);
const verify = await run(binary, ['audit', 'verify', config.audit.path]);
console.log(`Audit trail: ${verify.out.trim()}`);
expect(verify.code === 0, 'the audit chain is intact');
console.log(`Logs: ${serviceLog} (MicroCare), ${ehrLog} (EHR)`);

if (check) {
  if (problems.length) fail(`${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  console.log('\nCHECK PASSED: screened before the visit, revised when moved and when the record changed, the Task cancelled with the appointment.');
}
process.exit(0);
