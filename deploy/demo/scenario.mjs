#!/usr/bin/env node
// MicroCare end to end on its embedded defaults, the way an EHR drives it:
//  1. a real FHIR server (Medplum's FHIR router, tests/ehr/server.mjs) plays the EHR, seeded
//     with the sample patients of config/examples (ids made unique per file);
//  2. `microcare serve` runs with the default rule pack;
//  3. each sample's microneedling encounter is sent the way an EHR does: alternately as a FHIR
//     message ($process-message) and as a Subscription notification (R4B backport);
//  4. what landed on the EHR (CarePlans, DetectedIssues, Tasks) is printed;
//  5. CDS Hooks: the EHR books a microneedling appointment for three of the sample patients
//     (absolute, relative and no contraindication) and shows MicroCare's cards, the record read
//     from the EHR's FHIR server with the access token of the hook request, the call signed
//     with an ES384 JWT whose key the configuration names.
// `--check` also asserts the outcome (one CarePlan per encounter, also after a re-sent
// message; no CarePlan for the non-microneedling visit) and exits non-zero otherwise: the
// end-to-end test runs it that way.
// `--revise` then puts pack B in force (R4 made absolute, R11 removed, R24 added) by reloading
// the running service (SIGHUP), re-sends every encounter and checks that what MicroCare wrote was revised in
// place (one CarePlan per encounter under B; R11's DetectedIssue cancelled, R4's amended, R24's
// created), and that re-sending once more writes nothing (every version on the EHR unchanged).
// `--replay` instead asks `microcare rules replay` what pack B would change (a dry run beside the
// running service, which must write nothing), queues the re-assessments with `--apply` (service
// stopped: the trail has one writer), starts the service under pack B and checks that what it
// then writes on the EHR is exactly what the dry run printed, encounter by encounter.
//
//   node deploy/demo/scenario.mjs [--check] [--revise | --replay] [--binary build/microcare] [--work DIR]

import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { args, children, failWith, listeningPort, option, root, run, searchAll, start } from './support.mjs';

const check = args.includes('--check');
const revise = args.includes('--revise');
const replay = args.includes('--replay');
const binary = resolve(option('--binary', join(root, 'build/microcare')));
const work = resolve(option('--work', join(root, 'var/demo')));
mkdirSync(join(work, 'seed'), { recursive: true });

// The identifier system of what MicroCare writes.
const GENERATED = 'https://microcare.example/fhir/sid/generated';
const fail = failWith('scenario');

// ---- seed: the sample records, with ids unique per file --------------------------------
const expected = JSON.parse(readFileSync(join(root, 'config/examples/expected.json'), 'utf8'));
const samples = readdirSync(join(root, 'config/examples'))
  .filter((f) => f.endsWith('.json') && f !== 'expected.json')
  .sort();
const reference = /^(.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/;
const plan = [];
samples.forEach((file, n) => {
  const bundle = JSON.parse(readFileSync(join(root, 'config/examples', file), 'utf8'));
  const suffix = `-s${n}`;
  const ids = new Set(bundle.entry.map((e) => e.resource?.id).filter(Boolean));
  const rename = (value) => {
    const m = reference.exec(value);
    return m && ids.has(m[3]) ? `${m[1] ?? ''}${m[2]}/${m[3]}${suffix}` : value;
  };
  const walk = (node) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if ((key === 'reference' || key === 'fullUrl') && typeof value === 'string') node[key] = rename(value);
        else walk(value);
      }
    }
  };
  for (const entry of bundle.entry) {
    walk(entry);
    if (entry.resource?.id) entry.resource.id += suffix;
  }
  writeFileSync(join(work, 'seed', file), JSON.stringify(bundle));
  const firstEncounter = bundle.entry.find((e) => e.resource?.resourceType === 'Encounter')?.resource;
  const encounter = expected[file]?.encounter
    ? expected[file].encounter + suffix
    : `Encounter/${firstEncounter.id}`;
  plan.push({ file, encounter, expect: expected[file] });
});

// ---- processes -------------------------------------------------------------------------

writeFileSync(join(work, 'ehr.log'), '');
writeFileSync(join(work, 'microcare.log'), '');
const ehrPort = await start(
  'node',
  [join(root, 'tests/ehr/server.mjs'), '--port', '0', '--load', ...samples.map((f) => join(work, 'seed', f))],
  (line) => /^LISTENING (\d+)$/.exec(line)?.[1],
  join(work, 'ehr.log'),
).catch((e) => fail(e.message));
const ehr = `http://127.0.0.1:${ehrPort}/fhir`;

const token = randomBytes(24).toString('hex');
// The EHR's CDS signing key (P-384), made for this run.
const cdsKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const cdsJwk = { ...cdsKey.publicKey.export({ format: 'jwk' }), kid: 'demo-ehr', use: 'sig', alg: 'ES384' };
const config = {
  server: { listen: '127.0.0.1', port: 0, auth: { bearerTokens: ['${MICROCARE_INBOUND_TOKEN}'] } },
  store: { path: join(work, `microcare-${Date.now()}.db`) },
  audit: { path: join(work, `audit-${Date.now()}.log`) },
  worker: { backoffInitialMs: 200, backoffMaxMs: 2000 },
  ehr: { baseUrl: ehr },
  // A copy of the default pack: `--revise` puts pack B in its place and reloads (SIGHUP).
  rules: { path: join(work, 'pack.json') },
  log: { level: 'info' },
  // CDS Hooks: the EHR's public key inline; `aud` is checked against serviceBaseUrl, the URL
  // the EHR would call MicroCare at behind a proxy.
  cds: {
    serviceBaseUrl: 'https://microcare.demo',
    issuers: [{ iss: 'https://ehr.demo/cds-client', jwks: { keys: [cdsJwk] }, fhirServers: [ehr] }],
  },
};
writeFileSync(config.rules.path, readFileSync(join(root, 'config/rules/microneedling.json')));
writeFileSync(join(work, 'microcare.json'), JSON.stringify(config, null, 2));
process.env.MICROCARE_INBOUND_TOKEN = token;
if (check) {
  // What an admin runs before the first start (deploy/OPERATIONS.md): the offline checks, then
  // the EHR reached as serve reaches it; this FHIR server must pass.
  const connect = await new Promise((ok) => {
    const c = spawn(binary, ['config', 'check', '--config', join(work, 'microcare.json'), '--connect']);
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.stderr.on('data', (d) => (text += d));
    c.on('exit', (code) => ok({ code, text: text.trim() }));
  });
  console.log(`config check --connect: ${connect.text}`);
  if (connect.code !== 0) fail(`config check --connect exited ${connect.code}:\n${connect.text}`);
}
const serve = (configFile) => start(
  binary,
  ['serve', '--config', configFile],
  listeningPort,
  join(work, 'microcare.log'),
).catch((e) => fail(e.message));
const microcarePort = await serve(join(work, 'microcare.json'));
let microcare = `http://127.0.0.1:${microcarePort}/fhir`;

// ---- triggers ----------------------------------------------------------------------------
const post = async (path, body) => {
  const response = await fetch(`${microcare}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
};
const message = (i, encounter) => ({
  resourceType: 'Bundle',
  id: `demo-message-${i}`,
  type: 'message',
  timestamp: new Date().toISOString(),
  entry: [
    {
      fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      resource: {
        resourceType: 'MessageHeader',
        id: `demo-header-${i}`,
        eventCoding: { system: 'https://ehr.example/events', code: 'encounter-end' },
        source: { endpoint: 'https://ehr.example/messaging' },
        focus: [{ reference: encounter }],
      },
    },
  ],
});
let eventNumber = 0;
const notification = (encounter) => ({
  resourceType: 'Bundle',
  type: 'history',
  entry: [
    {
      fullUrl: `urn:uuid:00000000-0000-4000-9000-${String(++eventNumber).padStart(12, '0')}`,
      resource: {
        resourceType: 'SubscriptionStatus',
        status: 'active',
        type: 'event-notification',
        eventsSinceSubscriptionStart: String(eventNumber),
        notificationEvent: [{ eventNumber: String(eventNumber), focus: { reference: encounter } }],
        subscription: { reference: 'Subscription/microneedling-encounters' },
        topic: 'https://ehr.example/SubscriptionTopic/encounter-finished',
      },
    },
  ],
});

console.log(`EHR (Medplum FHIR router): ${ehr}`);
console.log(`MicroCare: ${microcare}\n`);
for (const [i, step] of plan.entries()) {
  const viaMessage = i % 2 === 0;
  const reply = viaMessage
    ? await post('/$process-message', message(i, step.encounter))
    : await post('/notifications', notification(step.encounter));
  step.channel = viaMessage ? '$process-message' : 'subscription';
  console.log(`sent ${step.encounter} (${step.file}) by ${step.channel}: HTTP ${reply.status}`);
  if (reply.status !== 200) fail(`MicroCare refused the trigger: ${JSON.stringify(reply.json)}`);
}
// An EHR that did not hear back re-sends: the same message must change nothing.
const resent = await post('/$process-message', message(0, plan[0].encounter));
console.log(`re-sent the first message: HTTP ${resent.status}\n`);

// ---- wait for the jobs, then read what landed --------------------------------------------
const search = (query) => searchAll(ehr, query);
// audit.fhirAuditEvents: every version of every resource MicroCare wrote has exactly one
// AuditEvent on the EHR (a create for its first version, an update for each later one, as the
// resource's history shows them), and none names a version that does not exist.
const auditEventProblems = async () => {
  const problems = [];
  const events = new Map();
  const mine = (await search('AuditEvent')).filter((e) => e.entity?.[0]?.name?.startsWith('microcare:'));
  for (const e of mine) {
    const what = e.entity[0].what?.reference ?? '';
    events.set(what, [...(events.get(what) ?? []), e.action]);
  }
  let versions = 0;
  for (const type of ['CarePlan', 'DetectedIssue', 'Task']) {
    const mine = (await search(type)).filter((r) => (r.identifier ?? []).some((i) => i.system === GENERATED));
    for (const r of mine) {
      const history = await (await fetch(`${ehr}/${type}/${r.id}/_history?_count=100`)).json();
      const ids = (history.entry ?? [])
        .map((e) => e.resource.meta)
        .sort((a, b) => a.lastUpdated.localeCompare(b.lastUpdated))
        .map((m) => m.versionId); // oldest first, whatever order the server lists them in
      ids.forEach((vid, n) => {
        ++versions;
        const what = `${type}/${r.id}/_history/${vid}`;
        const actions = events.get(what) ?? [];
        events.delete(what);
        const want = n === 0 ? 'C' : 'U';
        if (actions.length !== 1 || actions[0] !== want)
          problems.push(`${what}: AuditEvents ${JSON.stringify(actions)}, not one ${want}`);
      });
    }
  }
  for (const what of events.keys()) problems.push(`an AuditEvent names ${what}, which MicroCare did not write`);
  // As R4, with the third-party validator of the test suite (deploy/test.sh installs it).
  const validator = join(root, 'tests/validator/validate.mjs');
  if (existsSync(join(root, 'tests/validator/node_modules'))) {
    const dir = join(work, 'auditevents');
    mkdirSync(dir, { recursive: true });
    const files = mine.map((e, i) => {
      const file = join(dir, `auditevent-${i}.json`);
      writeFileSync(file, JSON.stringify(e));
      return file;
    });
    const checked = spawnSync(process.execPath, [validator, ...files], { encoding: 'utf8' });
    if (checked.status !== 0) problems.push(`AuditEvents not valid R4:\n${checked.stdout}${checked.stderr}`);
    else console.log(`  the ${files.length} AuditEvents validate as R4: ${checked.stdout.trim()}`);
  }
  return { problems, versions };
};
const jobStates = async () => {
  const output = await new Promise((ok) => {
    const c = spawn(binary, ['jobs', 'list', '--store', config.store.path, '--limit', '100000']);
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.on('exit', () => ok(text));
  });
  // One line a job under a header, then the totals per state.
  return output.split('\n').filter((l) => /^\d+\t/.test(l)).map((l) => l.split('\t')[1]);
};
const settled = async (atLeast = plan.length) => {
  const states = await jobStates();
  return states.length >= atLeast && states.every((s) => s === 'done' || s === 'dead');
};
const deadline = Date.now() + 60000;
while (!(await settled())) {
  if (Date.now() > deadline) fail('jobs did not finish within a minute; see ' + join(work, 'microcare.log'));
  await new Promise((r) => setTimeout(r, 200));
}

const [plans, issues, tasks] = await Promise.all([search('CarePlan'), search('DetectedIssue'), search('Task')]);
const problems = [];
console.log('What landed on the EHR:');
for (const step of plan) {
  const mine = plans.filter((p) => p.encounter?.reference === step.encounter);
  const patient = mine[0]?.subject?.reference;
  const found = issues.filter((d) => mine.some((p) => (p.supportingInfo ?? []).some((s) => s.reference === `DetectedIssue/${d.id}`)));
  const task = tasks.find((t) => t.encounter?.reference === step.encounter);
  console.log(`\n  ${step.encounter}  (${step.file}, via ${step.channel})`);
  if (mine.length === 0) {
    console.log('    no CarePlan (not a microneedling treatment)');
  } else {
    console.log(`    CarePlan/${mine[0].id} for ${patient}: ${mine[0].description}`);
    for (const activity of mine[0].activity ?? []) {
      const d = activity.detail;
      if (d.kind) console.log(`      - ${d.code?.coding?.[0]?.display}: ${d.scheduledPeriod.start.slice(0, 10)} to ${d.scheduledPeriod.end.slice(0, 10)} (${d.status})`);
    }
    for (const d of found) {
      const rule = d.code.coding.find((c) => c.system.endsWith('/CodeSystem/rule'));
      console.log(`      ! DetectedIssue/${d.id}: ${d.severity} ${rule?.code} ${rule?.display}`);
    }
    if (task) console.log(`      > Task/${task.id} (${task.priority}): ${task.description}`);
  }
  if (check) {
    const shouldPlan = !step.expect?.empty;
    if (mine.length !== (shouldPlan ? 1 : 0)) problems.push(`${step.encounter}: ${mine.length} CarePlans`);
    const rules = new Set(found.map((d) => d.code.coding.find((c) => c.system.endsWith('/CodeSystem/rule'))?.code));
    for (const id of step.expect?.found ?? []) if (!rules.has(id)) problems.push(`${step.encounter}: ${id} not found`);
    if (Boolean(task) !== Boolean(step.expect?.task)) problems.push(`${step.encounter}: Task ${task ? 'present' : 'missing'}`);
  }
}
console.log(`\nTotals on the EHR: ${plans.length} CarePlans, ${issues.length} DetectedIssues, ${tasks.length} Tasks.`);
console.log(`Logs: ${join(work, 'microcare.log')} (MicroCare, JSON lines), ${join(work, 'ehr.log')} (EHR).`);
console.log(`Jobs: ${binary} jobs list --store ${config.store.path}`);
const verify = await new Promise((ok) => {
  const c = spawn(binary, ['audit', 'verify', config.audit.path]);
  let text = '';
  c.stdout.on('data', (d) => (text += d));
  c.stderr.on('data', (d) => (text += d));
  c.on('exit', (code) => ok({ code, text: text.trim() }));
});
console.log(`Audit trail: ${verify.text}`);
if (check && verify.code !== 0) problems.push('audit chain: ' + verify.text);

// ---- CDS Hooks: advice while the appointment is being booked ---------------------------
const b64url = (data) => Buffer.from(data).toString('base64url');
const cdsJwt = (service) => {
  const header = b64url(JSON.stringify({ alg: 'ES384', typ: 'JWT', kid: 'demo-ehr' }));
  const claims = b64url(JSON.stringify({
    iss: 'https://ehr.demo/cds-client',
    sub: 'demo-ehr',
    aud: `https://microcare.demo/cds-services/${service}`,
    exp: Math.floor(Date.now() / 1000) + 120,
    jti: randomUUID(),
  }));
  const signature = sign('sha384', Buffer.from(`${header}.${claims}`), { key: cdsKey.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${header}.${claims}.${b64url(signature)}`;
};
const cdsBase = microcare.replace(/\/fhir$/, '');
const discovery = await (await fetch(`${cdsBase}/cds-services`)).json();
console.log(`\nCDS Hooks: ${discovery.services.length} services (${discovery.services.map((s) => s.hook).join(', ')})`);
for (const file of ['absolute-isotretinoin.json', 'relative-anticoagulant.json', 'clean-first-session.json']) {
  const seed = JSON.parse(readFileSync(join(work, 'seed', file), 'utf8'));
  const patient = seed.entry.find((e) => e.resource?.resourceType === 'Patient').resource.id;
  const request = {
    hookInstance: randomUUID(),
    hook: 'appointment-book',
    fhirServer: ehr,
    fhirAuthorization: { access_token: randomBytes(16).toString('hex'), token_type: 'Bearer', expires_in: 300, scope: 'user/*.read', subject: 'microcare' },
    context: {
      userId: 'PractitionerRole/demo',
      patientId: patient,
      appointments: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: {
          resourceType: 'Appointment', id: `apt-${patient}`, status: 'proposed',
          serviceType: [{ coding: [{ system: 'https://microcare.example/CodeSystem/procedure', code: 'microneedling', display: 'Microneedling' }] }],
          start: '2026-11-27T10:00:00+01:00', end: '2026-11-27T11:00:00+01:00',
          participant: [{ actor: { reference: `Patient/${patient}` }, status: 'needs-action' }],
        } }],
      },
    },
  };
  const response = await fetch(`${cdsBase}/cds-services/microcare-appointment-book`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${cdsJwt('microcare-appointment-book')}` },
    body: JSON.stringify(request),
  });
  const answer = await response.json();
  console.log(`\n  appointment-book for Patient/${patient} (${file}) on 2026-11-27: HTTP ${response.status}`);
  for (const card of answer.cards ?? []) console.log(`    [${card.indicator}] ${card.summary}`);
  if (response.status !== 200) console.log(`    ${JSON.stringify(answer).slice(0, 300)}`);
  const want = expected[file]?.found?.some((id) => id.startsWith('A')) ? 'critical' : expected[file]?.task ? 'warning' : 'info';
  if (check && (response.status !== 200 || !(answer.cards ?? []).some((c) => c.indicator === want)))
    problems.push(`CDS appointment-book for ${file}: no ${want} card (HTTP ${response.status})`);
}
const unsigned = await fetch(`${cdsBase}/cds-services/microcare-appointment-book`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
});
console.log(`  the same call without a JWT: HTTP ${unsigned.status}`);
if (check && unsigned.status !== 401) problems.push(`CDS without a JWT: HTTP ${unsigned.status}`);

// ---- the auditor's view: PHI never in a log or the trail; one command answers per encounter --
const runMicrocare = (argv) => run(binary, argv);
if (check) {
  // Every name, birth date, address, contact and note text of the sample records.
  const phi = new Set();
  const collect = (node, key) => {
    if (Array.isArray(node)) return node.forEach((n) => collect(n, key));
    if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) collect(v, k);
      return;
    }
    if (typeof node !== 'string' || node.length < 4) return;
    if (['family', 'given', 'birthDate', 'line', 'city', 'postalCode', 'text', 'div'].includes(key)) phi.add(node);
  };
  for (const file of samples) {
    for (const entry of JSON.parse(readFileSync(join(work, 'seed', file), 'utf8')).entry ?? []) {
      const r = entry.resource ?? {};
      if (r.resourceType === 'Patient') collect([r.name, r.birthDate, r.address, r.telecom]);
      collect(r.note);
      collect(r.text);
    }
  }
  const logs = readFileSync(join(work, 'microcare.log'), 'utf8');
  const trail = readdirSync(dirname(config.audit.path))
    .filter((f) => f.startsWith(config.audit.path.split('/').pop()))
    .map((f) => readFileSync(join(dirname(config.audit.path), f), 'utf8'))
    .join('');
  for (const value of phi) {
    if (logs.includes(value)) problems.push(`PHI in MicroCare's log: ${JSON.stringify(value.slice(0, 40))}`);
    if (trail.includes(value)) problems.push(`PHI in the audit trail: ${JSON.stringify(value.slice(0, 40))}`);
  }
  console.log(`PHI check: ${phi.size} names, dates, addresses and texts of the samples searched in the log and the trail`);
  // `audit show --encounter` answers the auditor's question for each encounter in one command.
  for (const step of plan) {
    if (step.expect?.empty) continue;
    const shown = await runMicrocare(['audit', 'show', config.audit.path, '--encounter', step.encounter, '--format', 'json']);
    let records = [];
    try {
      records = JSON.parse(shown.out);
    } catch {}
    const decision = records.find((r) => r.event === 'decision')?.fields;
    if (shown.code !== 0 || !decision) {
      problems.push(`audit show --encounter ${step.encounter}: no decision (${shown.out.slice(0, 200)})`);
      continue;
    }
    if (!decision.packSha256 || !decision.patient) problems.push(`${step.encounter}: the decision lacks the pack or the patient`);
    for (const id of step.expect?.found ?? []) {
      if (!String(decision.findings).includes(`${id}:`)) problems.push(`${step.encounter}: audit show does not name ${id}`);
    }
  }
}
if (check) {
  const audited = await auditEventProblems();
  problems.push(...audited.problems);
  console.log(`FHIR AuditEvents: ${audited.versions} versions written, each recorded once on the EHR`);
  if (problems.length) fail('end-to-end check failed:\n  ' + problems.join('\n  '));
  console.log('end-to-end check: 1 passed, 0 failed');
}
if (revise) await reviseUnderPackB();
if (replay) await replayUnderPackB();
process.exit(0);

// Pack B from pack A: R4 made absolute, R11 removed, R24 (R4's copy) added.
function packBOf(packA) {
  const packB = structuredClone(packA);
  packB.version = `${packA.version}-b`;
  const r4 = packB.contraindications.find((r) => r.id === 'R4');
  packB.contraindications.push({ ...structuredClone(r4), id: 'R24', title: `${r4.title} (pack B)` });
  r4.severity = 'absolute';
  packB.contraindications = packB.contraindications.filter((r) => r.id !== 'R11');
  for (const r of packB.contraindications) r.suppressedBy = (r.suppressedBy ?? []).filter((id) => id !== 'R11');
  return packB;
}

// MicroCare's CarePlans, DetectedIssues and Tasks on the EHR, by `Type/id`.
async function snapshotMine() {
  const all = (await Promise.all(['CarePlan', 'DetectedIssue', 'Task'].map((t) => search(t)))).flat();
  return new Map(all.filter((r) => (r.identifier ?? []).some((i) => i.system === GENERATED)).map((r) => [`${r.resourceType}/${r.id}`, r]));
}

// ---- dry run, then --apply: what is printed is what is written ----------------------------
async function replayUnderPackB() {
  const packA = JSON.parse(readFileSync(config.rules.path, 'utf8'));
  const packB = packBOf(packA);
  const packBPath = join(work, 'pack-b.json');
  writeFileSync(packBPath, JSON.stringify(packB, null, 2));
  const configPath = join(work, 'microcare.json');
  const replayArgs = ['rules', 'replay', '--config', configPath, '--rules', packBPath];
  const problems = [];

  // Printed lines: "Encounter/x: 2 changes" then "  + finding R24@Condition/c: relative".
  const changesOf = (out) => {
    const changes = new Map();
    let current;
    for (const line of out.split('\n')) {
      const head = /^(Encounter\/\S+): \d+ changes?$/.exec(line);
      if (head) changes.set((current = head[1]), []);
      else if (current && line.startsWith('  ')) changes.get(current).push(line.trim());
      else current = undefined;
    }
    return changes;
  };
  const before = await snapshotMine();
  const jobsBefore = (await jobStates()).length;
  const dry = await runMicrocare(replayArgs);
  if (dry.code !== 0) fail(`rules replay exited ${dry.code}:\n${dry.out}`);
  const printed = changesOf(dry.out);
  console.log(`\nrules replay (dry run) under pack ${packB.id} ${packB.version}:\n${dry.out.trim()}`);
  if (printed.size === 0) problems.push('the dry run printed no change, though pack B changes R4, R11 and R24');
  const untouched = await snapshotMine();
  for (const [key, r] of untouched) {
    if (before.get(key)?.meta.versionId !== r.meta.versionId) problems.push(`the dry run wrote ${key}`);
  }
  if ((await jobStates()).length !== jobsBefore) problems.push('the dry run queued jobs');

  // --apply while the service runs is refused (one writer of the trail) and queues nothing.
  const refused = await runMicrocare([...replayArgs, '--apply']);
  if (refused.code === 0 || (await jobStates()).length !== jobsBefore)
    problems.push(`--apply beside the running service was not refused: ${refused.code} ${refused.out.slice(-200)}`);

  // The service stopped, --apply queues one re-assessment per changed encounter.
  const service = children.find((c) => c.spawnargs.includes('serve') && c.exitCode === null);
  const stopped = new Promise((ok) => service.once('exit', ok));
  service.kill('SIGTERM');
  await stopped;
  const applied = await runMicrocare([...replayArgs, '--apply']);
  if (applied.code !== 0) fail(`rules replay --apply exited ${applied.code}:\n${applied.out}`);
  const queued = Number(/queued (\d+) re-assessment/.exec(applied.out)?.[1]);
  if (JSON.stringify([...changesOf(applied.out)]) !== JSON.stringify([...printed]))
    problems.push('--apply printed other changes than the dry run');
  if (queued !== printed.size) problems.push(`--apply queued ${queued} re-assessments for ${printed.size} changed encounters`);

  // Pack B in force, the service started again: it takes the queued re-assessments.
  writeFileSync(config.rules.path, JSON.stringify(packB, null, 2));
  microcare = `http://127.0.0.1:${await serve(configPath)}/fhir`;
  const until = Date.now() + 60000;
  while (!(await settled(jobsBefore + queued))) {
    if (Date.now() > until) fail('the queued re-assessments did not finish within a minute; see ' + join(work, 'microcare.log'));
    await new Promise((r) => setTimeout(r, 200));
  }
  const after = await snapshotMine();

  // What the EHR shows changed, in the dry run's words: findings per rule and evidence
  // (DetectedIssue.implicated), activities by status and window.
  const wire = { absolute: 'high', relative: 'moderate', info: 'low' };
  const findingsOn = (snapshot, encounter) => {
    const key = `${encounter.split('/')[1]}:issue:`;
    const out = new Map();
    for (const r of snapshot.values()) {
      const id = r.identifier.find((i) => i.system === GENERATED).value;
      if (r.resourceType !== 'DetectedIssue' || !id.startsWith(key) || r.status === 'cancelled') continue;
      const rule = id.slice(key.length);
      const evidence = (r.implicated ?? []).map((i) => `${rule}@${i.reference}`);
      for (const subject of evidence.length ? evidence : [rule]) out.set(subject, r.severity);
    }
    return out;
  };
  const activitiesOn = (snapshot, encounter) => {
    const plan = [...snapshot.values()].find((r) => r.resourceType === 'CarePlan' && r.encounter?.reference === encounter);
    return new Set((plan?.activity ?? []).map((a) => `${a.detail.status} ${a.detail.scheduledPeriod?.start} to ${a.detail.scheduledPeriod?.end}`));
  };
  const changedOnEhr = new Set();
  for (const [key, r] of after) {
    const id = r.identifier.find((i) => i.system === GENERATED).value;
    if (before.get(key)?.meta.versionId !== r.meta.versionId) changedOnEhr.add(`Encounter/${id.split(':')[0]}`);
  }
  for (const step of plan.filter((s) => !s.expect?.empty)) {
    const encounter = step.encounter;
    const lines = printed.get(encounter) ?? [];
    const [was, now] = [findingsOn(before, encounter), findingsOn(after, encounter)];
    const written = [];
    for (const [subject, severity] of now) {
      if (!was.has(subject)) written.push(`+ finding ${subject}: ${severity}`);
      else if (was.get(subject) !== severity) written.push(`~ finding ${subject}: ${was.get(subject)} -> ${severity}`);
    }
    for (const [subject, severity] of was) if (!now.has(subject)) written.push(`- finding ${subject}: ${severity}`);
    const said = lines
      .filter((l) => / finding /.test(l))
      .map((l) => l.replace(/\b(absolute|relative|info)\b/g, (s) => wire[s]));
    if (JSON.stringify([...said].sort()) !== JSON.stringify([...written].sort()))
      problems.push(`${encounter}: the dry run said ${JSON.stringify(said)}, the EHR shows ${JSON.stringify(written)}`);
    const [planWas, planNow] = [activitiesOn(before, encounter), activitiesOn(after, encounter)];
    for (const line of lines.filter((l) => / activity /.test(l))) {
      const [, sign, windows] = /^([+~-]) activity [^:]+: (.*)$/.exec(line) ?? [];
      const [from, to] = sign === '~' ? windows.replace(/ \(text changed\)$/, '').split(' -> ') : sign === '+' ? [undefined, windows] : [windows, undefined];
      if (from && !planWas.has(from)) problems.push(`${encounter}: "${line}" but the CarePlan had no ${from}`);
      if (to && !planNow.has(to)) problems.push(`${encounter}: "${line}" but the CarePlan has no ${to}`);
    }
    if (!lines.some((l) => / activity /.test(l)) && JSON.stringify([...planWas].sort()) !== JSON.stringify([...planNow].sort()))
      problems.push(`${encounter}: the CarePlan's activities changed though the dry run printed none`);
    if (lines.length === 0 && changedOnEhr.has(encounter)) problems.push(`${encounter}: written though the dry run printed no change`);
    if (lines.length) console.log(`  ${encounter}: ${lines.length} change(s) printed, the same written`);
  }
  const audited = await auditEventProblems();
  problems.push(...audited.problems);
  console.log(`  FHIR AuditEvents: ${audited.versions} versions written, each recorded once`);
  if (problems.length) fail('replay check failed:\n  ' + problems.join('\n  '));
  console.log('replay check: 1 passed, 0 failed');
}

// ---- re-assessment under a new pack --------------------------------------------------------
async function reviseUnderPackB() {
  const packB = packBOf(JSON.parse(readFileSync(config.rules.path, 'utf8')));
  // Pack B in force without a restart: the pack file is replaced and the service told by
  // SIGHUP, as an admin does (deploy/OPERATIONS.md); jobs that start afterwards use B.
  const reloads = () => (readFileSync(join(work, 'microcare.log'), 'utf8').match(/"msg":"reload applied"/g) ?? []).length;
  const before = reloads();
  writeFileSync(config.rules.path, JSON.stringify(packB, null, 2));
  children.find((c) => c.spawnargs.includes('serve')).kill('SIGHUP');
  const reloadDeadline = Date.now() + 20000;
  while (reloads() === before) {
    if (Date.now() > reloadDeadline) fail('SIGHUP did not put pack B in force; see ' + join(work, 'microcare.log'));
    await new Promise((r) => setTimeout(r, 100));
  }

  const SYSTEM = GENERATED;
  const snapshot = snapshotMine;
  // Someone else's resources on the EHR, beside MicroCare's: a revision must not touch them.
  const others = [];
  for (const step of plan.filter((s) => !s.expect?.empty)) {
    const patient = (await search(`CarePlan?encounter=${step.encounter}`))[0].subject.reference;
    const made = await fetch(`${ehr}/DetectedIssue`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'DetectedIssue',
        identifier: [{ system: 'https://ehr.example/sid/issue', value: `${step.encounter}:clinician` }],
        status: 'final',
        severity: 'low',
        patient: { reference: patient },
        detail: 'Noted by a clinician, not by MicroCare.',
      }),
    });
    if (made.status !== 201) fail(`could not add a clinician's DetectedIssue: HTTP ${made.status}`);
    others.push(await made.json());
  }
  const auditRevisions = async () => {
    const output = await new Promise((ok) => {
      const c = spawn(binary, ['audit', 'export', config.audit.path]);
      let text = '';
      c.stdout.on('data', (d) => (text += d));
      c.on('exit', () => ok(text));
    });
    return output.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.event === 'revision');
  };
  const reassess = async (round) => {
    // The jobs of this round come after those already there (a re-sent message made none).
    const jobs = (await jobStates()).length + plan.length;
    for (const [i, step] of plan.entries()) {
      const reply = await post('/$process-message', message(1000 * round + i, step.encounter));
      if (reply.status !== 200) fail(`MicroCare refused the re-assessment: ${JSON.stringify(reply.json)}`);
    }
    const until = Date.now() + 60000;
    while (!(await settled(jobs))) {
      if (Date.now() > until) fail('re-assessments did not finish within a minute; see ' + join(work, 'microcare.log'));
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const underA = await snapshot();
  const auditedBefore = (await auditRevisions()).length;
  await reassess(1);
  const after = await snapshot();
  const problems = [];
  const byIdentifier = (value) => [...after.values()].filter((r) => r.identifier.some((i) => i.system === SYSTEM && i.value === value));
  const identifierOf = (r) => r.identifier.find((i) => i.system === SYSTEM).value;
  const shaOf = (r) => r.meta?.tag?.find((t) => t.system.endsWith('/CodeSystem/rule-pack-sha256'))?.code;
  const shaA = shaOf([...underA.values()][0]);
  // No identifier twice; every resource MicroCare wrote is re-tagged with pack B (id, version,
  // sha256); what was there under A is revised in place, with the time it was first written.
  const seen = new Set();
  for (const r of after.values()) {
    const id = `${r.resourceType} ${identifierOf(r)}`;
    if (seen.has(id)) problems.push(`${id} twice on the EHR`);
    seen.add(id);
    const tag = r.meta?.tag?.find((t) => t.system.endsWith('/CodeSystem/rule-pack'));
    if (tag?.code !== packB.id || tag?.version !== packB.version || !shaOf(r) || shaOf(r) === shaA)
      problems.push(`${id} tagged ${tag?.code} ${tag?.version} ${shaOf(r)}, not pack B`);
    const was = underA.get(`${r.resourceType}/${r.id}`);
    const time = { CarePlan: 'created', DetectedIssue: 'identifiedDateTime', Task: 'authoredOn' }[r.resourceType];
    if (was && was[time] !== r[time]) problems.push(`${id}: ${time} moved from ${was[time]} to ${r[time]}`);
  }
  for (const r of underA.values()) {
    if (!after.has(`${r.resourceType}/${r.id}`)) problems.push(`${r.resourceType}/${r.id} gone after the revision`);
  }
  console.log(`\nRe-assessed under pack ${packB.id} ${packB.version}:`);
  for (const step of plan) {
    const enc = step.encounter.split('/')[1];
    const plans = byIdentifier(`${enc}:careplan`);
    const active = plans.filter((p) => p.status === 'active');
    if (step.expect?.empty) {
      if (plans.length) problems.push(`${enc}: ${plans.length} CarePlans for a visit that is not microneedling`);
      continue;
    }
    if (active.length !== 1) problems.push(`${enc}: ${active.length} active CarePlans`);
    const tag = active[0]?.meta?.tag?.find((t) => t.system.endsWith('/CodeSystem/rule-pack'));
    if (tag?.version !== packB.version) problems.push(`${enc}: CarePlan tagged ${tag?.version}, not ${packB.version}`);
    const issue = (rule) => byIdentifier(`${enc}:issue:${rule}`);
    const found = step.expect?.found ?? [];
    if (found.includes('R11')) {
      const r11 = issue('R11');
      if (r11.length !== 1 || r11[0].status !== 'cancelled' || !/Retired by rule pack \S+ \S+-b/.test(r11[0].detail))
        problems.push(`${enc}: R11 not retired: ${JSON.stringify(r11.map((d) => [d.status, d.detail?.slice(-120)]))}`);
      else console.log(`  ${enc}: R11 cancelled (${r11[0].detail.slice(r11[0].detail.indexOf('Retired'))})`);
    }
    if (found.includes('R4')) {
      const r4s = issue('R4');
      if (r4s.length !== 1 || r4s[0].status !== 'amended' || r4s[0].severity !== 'high')
        problems.push(`${enc}: R4 not amended: ${JSON.stringify(r4s.map((d) => [d.status, d.severity]))}`);
      else console.log(`  ${enc}: R4 amended to ${r4s[0].severity}`);
      const r24 = issue('R24');
      if (r24.length !== 1 || r24[0].status !== 'final' || underA.has(`DetectedIssue/${r24[0].id}`))
        problems.push(`${enc}: R24 not created`);
      else console.log(`  ${enc}: R24 created`);
    }
    // The review Task follows its reason: cancelled when nothing is left to review, updated
    // when the findings behind it changed.
    const tasks = byIdentifier(`${enc}:task`);
    const left = found.filter((r) => r !== 'R11').length + (found.includes('R4') ? 1 : 0);
    if (step.expect?.task && !left) {
      if (tasks.length !== 1 || tasks[0].status !== 'cancelled')
        problems.push(`${enc}: Task not cancelled: ${JSON.stringify(tasks.map((t) => t.status))}`);
      else console.log(`  ${enc}: Task cancelled (${tasks[0].statusReason?.text})`);
    } else if (step.expect?.task) {
      const reason = tasks[0]?.reasonCode?.text ?? '';
      if (tasks.length !== 1 || tasks[0].status !== 'requested' || (found.includes('R11') && (reason.includes('R11') || !reason.includes('R24'))))
        problems.push(`${enc}: Task not revised: ${JSON.stringify(tasks.map((t) => [t.status, t.reasonCode?.text]))}`);
      else if (found.includes('R11')) console.log(`  ${enc}: Task updated (${reason})`);
    }
  }
  // The audit trail names what became of each resource.
  const revised = (await auditRevisions()).slice(auditedBefore);
  const said = revised.map((r) => r.changes).join('; ');
  for (const word of ['created', 'updated', 'retired'])
    if (!said.includes(` ${word}`)) problems.push(`the audit trail has no resource ${word} on the revision`);

  // Nothing changed since: a second re-assessment writes nothing (no version moves).
  await reassess(2);
  const again = await snapshot();
  for (const [key, r] of again) {
    const before = after.get(key);
    if (!before) problems.push(`${key} appeared on a re-assessment that changed nothing`);
    else if (before.meta.versionId !== r.meta.versionId) problems.push(`${key} was written again (${before.meta.versionId} -> ${r.meta.versionId})`);
  }
  const second = (await auditRevisions()).slice(auditedBefore + revised.length);
  if (second.length !== plan.length - 1 || second.some((r) => r.written !== 'nothing' || /created|updated|retired/.test(r.changes)))
    problems.push(`the second re-assessment's audit: ${JSON.stringify(second.map((r) => [r.written, r.changes]))}`);
  for (const other of others) {
    const now = await (await fetch(`${ehr}/DetectedIssue/${other.id}`)).json();
    if (now.meta?.versionId !== other.meta.versionId || now.status !== 'final')
      problems.push(`DetectedIssue/${other.id} (not MicroCare's) was touched`);
  }
  console.log(`  a second re-assessment: ${again.size} resources, ${problems.length ? 'see problems' : 'none written'}; others' ${others.length} DetectedIssues untouched`);
  const audited = await auditEventProblems();
  problems.push(...audited.problems);
  console.log(`  FHIR AuditEvents: ${audited.versions} versions written (creates and revisions), each recorded once`);
  if (problems.length) fail('re-assessment check failed:\n  ' + problems.join('\n  '));
  console.log('re-assessment check: 1 passed, 0 failed');
}
