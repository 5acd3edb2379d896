#!/usr/bin/env node
// MicroCare polling an EHR that offers only its FHIR read and search API (issue 12):
//  1. a real FHIR server (Medplum's FHIR router, tests/ehr/server.mjs) plays the EHR, seeded with
//     the sample patients of config/examples (ids made unique per file). Two samples' visits are
//     already finished; the other visits are still in progress;
//  2. `microcare serve` runs with a `poll` section (every second, since the first start) and no
//     inbound trigger at all;
//  3. the clinic finishes the visits one by one (an update of each Encounter to `finished`);
//     with `--kill`, MicroCare is SIGKILLed in the middle and started again on the same store,
//     and some visits are finished while it is down;
//  4. what landed on the EHR and what the polls cost are printed.
// `--check` asserts the outcome and exits non-zero otherwise (the ctest entries run it so):
// every visit finished after the first start assessed exactly once (one job, one CarePlan
// where it is microneedling), the visits finished before it not at all, each poll job audited
// as a trigger, the audit chain intact.
//
//   node deploy/demo/poll-scenario.mjs [--check] [--kill] [--binary build/microcare] [--work DIR]

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { args, children, failWith, listeningPort, option, root, run, searchAll, start } from './support.mjs';

const check = args.includes('--check');
const kill = args.includes('--kill');
const binary = resolve(option('--binary', join(root, 'build/microcare')));
const work = resolve(option('--work', join(root, 'var/demo-poll')));
mkdirSync(join(work, 'seed'), { recursive: true });

const fail = failWith('poll-scenario');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- seed: ids unique per file; the visits of all but the first two samples in progress ----
const samples = readdirSync(join(root, 'config/examples'))
  .filter((f) => f.endsWith('.json') && f !== 'expected.json')
  .sort();
const expected = JSON.parse(readFileSync(join(root, 'config/examples/expected.json'), 'utf8'));
const visits = [];
samples.forEach((file, n) => {
  const text = readFileSync(join(root, 'config/examples', file), 'utf8');
  const bundle = JSON.parse(text);
  const suffix = `-p${n}`;
  const ids = [...new Set(bundle.entry.map((e) => e.resource?.id).filter(Boolean))];
  // Every id of the file, wherever it stands ("id" or the tail of a reference), gets the suffix.
  let renamed = JSON.stringify(bundle);
  for (const id of ids) renamed = renamed.replaceAll(new RegExp(`(["/])${id.replace(/\./g, '\\.')}"`, 'g'), `$1${id}${suffix}"`);
  const seeded = JSON.parse(renamed);
  const target = (expected[file]?.encounter ?? `Encounter/${bundle.entry.find((e) => e.resource?.resourceType === 'Encounter').resource.id}`) + suffix;
  const before = n < 2;  // finished before MicroCare's first start: not its to assess
  for (const entry of seeded.entry) {
    const r = entry.resource;
    if (!before && r?.resourceType === 'Encounter' && `Encounter/${r.id}` === target) r.status = 'in-progress';
  }
  writeFileSync(join(work, 'seed', file), JSON.stringify(seeded));
  visits.push({ file, encounter: target, before, microneedling: !expected[file]?.empty });
});

// ---- processes ---------------------------------------------------------------------------
const ehrLog = join(work, 'ehr.log');
const serviceLog = join(work, 'microcare.log');
writeFileSync(ehrLog, '');
writeFileSync(serviceLog, '');
const ehrPort = await start(
  'node',
  [join(root, 'tests/ehr/server.mjs'), '--port', '0', '--verbose', '--load', ...samples.map((f) => join(work, 'seed', f))],
  (line) => /^LISTENING (\d+)$/.exec(line)?.[1],
  ehrLog,
).catch((e) => fail(e.message));
const ehr = `http://127.0.0.1:${ehrPort}/fhir`;

const stamp = Date.now();
const config = {
  server: {
    listen: '127.0.0.1',
    port: 0,
    auth: { allowAnonymous: true },
    metricsToken: '${MICROCARE_METRICS_TOKEN}',
  },
  store: { path: join(work, `microcare-${stamp}.db`) },
  audit: { path: join(work, `audit-${stamp}.log`) },
  // Short leases: a job running when MicroCare is killed goes back to the queue within seconds.
  worker: { backoffInitialMs: 200, backoffMaxMs: 2000, leaseSeconds: 3 },
  ehr: { baseUrl: ehr },
  poll: { intervalMs: 1000, pageSize: 5, overlapMs: 5000, since: 'now' },
  log: { level: 'info' },
};
process.env.MICROCARE_METRICS_TOKEN = 'poll-scenario-metrics-token';
const configPath = join(work, 'microcare.json');
writeFileSync(configPath, JSON.stringify(config, null, 2));
// The service as { child, port }: the child is what --kill kills.
const serve = async () => {
  const port = await start(
    binary,
    ['serve', '--config', configPath],
    listeningPort,
    serviceLog,
  ).catch((e) => fail(e.message));
  return { child: children.at(-1), port };
};

const jobs = async () =>
  (await run(binary, ['jobs', 'list', '--store', config.store.path, '--limit', '100000'])).out
    .split('\n')
    .filter((l) => /^\d+\t/.test(l))
    .map((l) => {
      const [id, state, , kind, encounter] = l.split('\t');
      return { id, state, kind, encounter };
    });
const logLines = (msg) =>
  readFileSync(serviceLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`)).length;

if (check && !kill) {
  // What an admin runs first: the EHR reached, and the poll's search run once. A search the
  // EHR refuses is named at poll.query before anything starts.
  const connect = await run(binary, ['config', 'check', '--config', configPath, '--connect']);
  if (connect.code !== 0) fail(`config check --connect exited ${connect.code}:\n${connect.out}`);
  const badPath = join(work, 'microcare-bad-query.json');
  const bad = { ...config, poll: { ...config.poll, query: 'Encounter?_lastUpdated=gt{cursor}&no-such-parameter=1' } };
  writeFileSync(badPath, JSON.stringify(bad, null, 2));
  const refused = await run(binary, ['config', 'check', '--config', badPath, '--connect']);
  console.log(`config check --connect, a search the EHR refuses: exit ${refused.code}`);
  console.log(`  ${refused.out.split('\n').find((l) => l.includes('poll.query')) ?? refused.out}`);
  if (refused.code !== 2 || !refused.out.includes('poll.query')) fail(`a refused poll search was not named:\n${refused.out}`);
}

// The first start, then its first poll (it commits the cursor `since: now`, now on the EHR's
// clock as its Date header says: to the second, and rounded down, so that a visit stamped in
// that second is assessed rather than missed). The seeded visits were finished more than a
// second before it.
await sleep(1100);
let service = await serve();
console.log(`EHR (Medplum FHIR router): ${ehr}`);
console.log(`MicroCare polling it every ${config.poll.intervalMs} ms (page size ${config.poll.pageSize})\n`);
for (const deadline = Date.now() + 20000; logLines('polling starts') < 1; await sleep(100)) {
  if (Date.now() > deadline) fail('no poll within 20 s; see ' + serviceLog);
}
// Let Medplum's clock pass the cursor: a stamp equal to it is not "after" it.
await sleep(50);

// ---- the clinic finishes its visits -------------------------------------------------------
const finish = async (visit) => {
  const url = `${ehr}/${visit.encounter}`;
  const encounter = await (await fetch(url)).json();
  encounter.status = 'finished';
  const response = await fetch(url, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/fhir+json' },
    body: JSON.stringify(encounter),
  });
  if (response.status !== 200) fail(`finishing ${visit.encounter}: HTTP ${response.status}`);
  console.log(`finished ${visit.encounter} (${visit.file})`);
};
const later = visits.filter((v) => !v.before);
const half = Math.ceil(later.length / 2);
for (const [i, visit] of later.entries()) {
  if (kill && i === half) {
    // Killed once the first poll job is journaled, while the worker is at it: what a page
    // journaled stays (and is not queued again), nothing else counts.
    for (const deadline = Date.now() + 20000; (await jobs()).length === 0; await sleep(20)) {
      if (Date.now() > deadline) fail('no poll job within 20 s; see ' + serviceLog);
    }
    const before = await jobs();
    service.child.kill('SIGKILL');
    console.log(`(${before.length} job(s) journaled, ${before.filter((j) => j.state === 'done').length} done)`);
    await new Promise((r) => service.child.exitCode !== null ? r() : service.child.on('exit', r));
    console.log('MicroCare SIGKILLed; two visits finished while it is down');
  }
  if (kill && i === half + 2) {
    service = await serve();
    console.log('MicroCare started again on the same store');
  }
  await finish(visit);
  await sleep(kill ? 150 : 400);
}
if (kill && later.length < half + 3) service = await serve();

// ---- wait until every finished microneedling visit has its job done -----------------------
const wanted = later.filter((v) => v.microneedling).length;
for (const deadline = Date.now() + 60000; ; await sleep(250)) {
  const all = await jobs();
  if (all.length >= wanted && all.every((j) => j.state === 'done' || j.state === 'dead')) break;
  if (Date.now() > deadline) fail('the jobs did not finish within a minute; see ' + serviceLog);
}
// Two more polls: an encounter read again in the overlap window must make no second job.
await sleep(2 * config.poll.intervalMs + 500);

const all = await jobs();
const plans = await searchAll(ehr, 'CarePlan');
const trail = readdirSync(dirname(config.audit.path))
  .filter((f) => f.startsWith(config.audit.path.split('/').pop()))
  .map((f) => readFileSync(join(dirname(config.audit.path), f), 'utf8'))
  .join('')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const problems = [];
console.log('\nWhat the polls did:');
for (const visit of visits) {
  const mine = all.filter((j) => j.encounter === visit.encounter);
  const carePlans = plans.filter((p) => p.encounter?.reference === visit.encounter);
  // By note id: a crash between writing the trail and forgetting the note writes it twice.
  const audited = new Set(
    trail.filter((r) => r.event === 'trigger' && r.channel === 'poll' && r.encounter === visit.encounter).map((r) => r.note),
  );
  const when = visit.before ? 'finished before the first start' : 'finished while polled';
  console.log(`  ${visit.encounter} (${visit.file}, ${when}): ${mine.length} job(s), ${carePlans.length} CarePlan(s)`);
  const want = !visit.before && visit.microneedling ? 1 : 0;
  if (mine.length !== want) problems.push(`${visit.encounter}: ${mine.length} jobs, expected ${want}`);
  if (carePlans.length !== want) problems.push(`${visit.encounter}: ${carePlans.length} CarePlans, expected ${want}`);
  if (audited.size !== want) problems.push(`${visit.encounter}: ${audited.size} poll trigger records in the trail, expected ${want}`);
  if (mine.some((j) => j.state !== 'done')) problems.push(`${visit.encounter}: a job ended ${mine.map((j) => j.state)}`);
}

// What the polls cost the EHR: its log has one line per request.
const requests = readFileSync(ehrLog, 'utf8').split('\n');
const encounterSearches = requests.filter((l) => /GET \/fhir\/Encounter\?/.test(l)).length;
const procedureSearches = requests.filter((l) => /GET \/fhir\/Procedure\?encounter=/.test(l)).length;
const metrics = await (
  await fetch(`http://127.0.0.1:${service.port}/metrics`, {
    headers: { Authorization: `Bearer ${process.env.MICROCARE_METRICS_TOKEN}` },
  })
).text();
const metric = (name) => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
console.log(
  `\nPolls (this process): ${metric('microcare_polls_total')}, failed ${metric('microcare_poll_failures_total')}, ` +
    `search pages ${metric('microcare_poll_requests_total')}; encounters queued ${metric('microcare_poll_encounters_total{outcome="queued"}')}, ` +
    `seen again ${metric('microcare_poll_encounters_total{outcome="seen"}')}, skipped ${metric('microcare_poll_encounters_total{outcome="skipped"}')}`,
);
console.log(`EHR requests from the polls (all processes): ${encounterSearches} Encounter searches, ${procedureSearches} Procedure searches`);
const ready = await (await fetch(`http://127.0.0.1:${service.port}/readyz`)).json();
console.log(`/readyz: ${JSON.stringify(ready)}`);
if (ready.poll !== 'ok') problems.push(`/readyz says poll ${ready.poll}`);

service.child.kill('SIGTERM');
await new Promise((r) => service.child.exitCode !== null ? r() : service.child.on('exit', r));
const verify = await run(binary, ['audit', 'verify', config.audit.path]);
console.log(`Audit trail: ${verify.out.trim()}`);
if (verify.code !== 0) problems.push('audit chain: ' + verify.out.trim());
console.log(`Logs: ${serviceLog} (MicroCare), ${ehrLog} (EHR). Jobs: ${binary} jobs list --store ${config.store.path}`);

if (check) {
  if (problems.length) fail(`${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  console.log('\nCHECK PASSED: each visit finished while polled assessed exactly once; none finished before the first start.');
}
process.exit(0);
