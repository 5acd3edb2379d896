#!/usr/bin/env node
// MicroCare end to end on its embedded defaults, the way an EHR drives it:
//  1. a real FHIR server (Medplum's FHIR router, tests/ehr/server.mjs) plays the EHR, seeded
//     with the sample patients of config/examples (ids made unique per file);
//  2. `microcare serve` runs with the default rule pack;
//  3. each sample's microneedling encounter is sent the way an EHR does: alternately as a FHIR
//     message ($process-message) and as a Subscription notification (R4B backport);
//  4. what landed on the EHR (CarePlans, DetectedIssues, Tasks) is printed.
// `--check` also asserts the outcome (one CarePlan per encounter, also after a re-sent
// message; no CarePlan for the non-microneedling visit) and exits non-zero otherwise: the
// end-to-end test runs it that way.
//
//   node deploy/demo/scenario.mjs [--check] [--binary build/microcare] [--work DIR]

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const check = args.includes('--check');
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const binary = resolve(option('--binary', join(root, 'build/microcare')));
const work = resolve(option('--work', join(root, 'var/demo')));
mkdirSync(join(work, 'seed'), { recursive: true });

const children = [];
const stopAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));
const fail = (message) => {
  console.error(`scenario: ${message}`);
  process.exit(1);
};

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
function start(command, argv, ready, log) {
  const child = spawn(command, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const logLines = [];
  return new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start:\n${logLines.join('\n')}`)), 60000);
    const watch = (stream, toFile) => {
      createInterface({ input: stream }).on('line', (line) => {
        logLines.push(line);
        if (toFile) writeFileSync(log, line + '\n', { flag: 'a' });
        const port = ready(line);
        if (port) {
          clearTimeout(timer);
          resolvePort(port);
        }
      });
    };
    watch(child.stdout, false);
    watch(child.stderr, true);
    child.on('exit', (code) => reject(new Error(`${command} exited with ${code}:\n${logLines.join('\n')}`)));
  });
}

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
const config = {
  server: { listen: '127.0.0.1', port: 0, auth: { bearerTokens: ['${MICROCARE_INBOUND_TOKEN}'] } },
  store: { path: join(work, `microcare-${Date.now()}.db`) },
  audit: { path: join(work, `audit-${Date.now()}.log`) },
  worker: { backoffInitialMs: 200, backoffMaxMs: 2000 },
  ehr: { baseUrl: ehr },
  rules: { path: join(root, 'config/rules/microneedling.json') },
  log: { level: 'info' },
};
writeFileSync(join(work, 'microcare.json'), JSON.stringify(config, null, 2));
process.env.MICROCARE_INBOUND_TOKEN = token;
const microcarePort = await start(
  binary,
  ['serve', '--config', join(work, 'microcare.json')],
  (line) => {
    try {
      const entry = JSON.parse(line);
      return entry.msg === 'MicroCare is listening' ? entry.port : undefined;
    } catch {
      return undefined;
    }
  },
  join(work, 'microcare.log'),
).catch((e) => fail(e.message));
const microcare = `http://127.0.0.1:${microcarePort}/fhir`;

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
const search = async (query) => {
  const resources = [];
  let url = `${ehr}/${query}${query.includes('?') ? '&' : '?'}_count=100`;
  while (url) {
    const page = await (await fetch(url)).json();
    resources.push(...(page.entry ?? []).map((e) => e.resource));
    url = page.link?.find((l) => l.relation === 'next')?.url;
  }
  return resources;
};
const settled = async () => {
  const output = await new Promise((ok) => {
    const c = spawn(binary, ['jobs', 'list', '--store', config.store.path]);
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.on('exit', () => ok(text));
  });
  const states = output.split('\n').slice(1).filter(Boolean).map((l) => l.split('\t')[1]);
  return states.length >= plan.length && states.every((s) => s === 'done' || s === 'dead');
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
if (check) {
  if (problems.length) fail('end-to-end check failed:\n  ' + problems.join('\n  '));
  console.log('end-to-end check: 1 passed, 0 failed');
}
process.exit(0);
