#!/usr/bin/env node
// Several replicas on PostgreSQL against a real FHIR server (issue 13), as real processes:
//  1. a real FHIR server (Medplum's FHIR router, tests/ehr/server.mjs) plays the EHR, seeded with
//     the sample patients of config/examples, each sample COPIES times (ids made unique);
//  2. a fresh database on the PostgreSQL server `--pg-url` names (the test suite's throw-away
//     one: tests/pg/pg-server.sh), and three `microcare serve` processes on it (store.url),
//     each with its own port, all writing one audit trail in the database;
//  3. every encounter is sent as a $process-message, the messages spread over the replicas as a
//     load balancer would; a third of the way through one replica is SIGKILLed with jobs in
//     flight, and what was sent to it is sent again to another (the same message: the reliable
//     messaging cache in the database answers it);
//  4. once every job is done: each acknowledged microneedling encounter has exactly one CarePlan
//     on the EHR, written by exactly one transaction (the CarePlan's history has one version),
//     and the time until the dead replica's jobs were taken over is printed.
// `--check` asserts it and exits non-zero otherwise (the ctest entry runs it so).
//
//   node deploy/demo/replicas-scenario.mjs --pg-url URL [--check] [--copies N]
//        [--binary build/microcare] [--work DIR]

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { args, children, failWith, listeningPort, option, root, run, searchAll, start } from './support.mjs';

const check = args.includes('--check');
const binary = resolve(option('--binary', join(root, 'build/microcare')));
const work = resolve(option('--work', join(root, 'var/demo-replicas')));
const copies = Number(option('--copies', '4'));
const fail = failWith('replicas-scenario');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let pgUrl = option('--pg-url', process.env.MICROCARE_TEST_PG_URL ?? '');
const pgDir = option('--pg-dir', process.env.MICROCARE_TEST_PG_DIR ?? '');
if (!pgUrl && pgDir) {
  try {
    pgUrl = readFileSync(join(pgDir, 'url'), 'utf8').trim();
  } catch {
    let reason = 'no url there';
    try {
      reason = readFileSync(join(pgDir, 'skip'), 'utf8').trim();
    } catch {}
    // Where the server binaries cannot be installed the PostgreSQL tests skip, saying why.
    console.log(`replicas-scenario: skipped: no PostgreSQL server (${reason})`);
    process.exit(0);
  }
}
if (!pgUrl) fail('name the PostgreSQL server: --pg-url URL or --pg-dir DIR (tests/pg/pg-server.sh)');
mkdirSync(join(work, 'seed'), { recursive: true });

// ---- a database of its own on that server ----------------------------------------------------
const stamp = Date.now();
const database = `replicas_${stamp}`;
const created = await run('psql', [pgUrl, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE DATABASE ${database}`]);
if (created.code !== 0) fail(`cannot create the database: ${created.out}`);
const storeUrl = pgUrl.replace(/^(postgres(?:ql)?:\/\/[^/]*\/)[^?]*/, `$1${database}`);

// ---- the EHR: every sample COPIES times ------------------------------------------------------
const samples = readdirSync(join(root, 'config/examples')).filter((f) => f.endsWith('.json') && f !== 'expected.json').sort();
const expected = JSON.parse(readFileSync(join(root, 'config/examples/expected.json'), 'utf8'));
const encounters = [];
const seeds = [];
for (let copy = 0; copy < copies; ++copy) {
  samples.forEach((file, n) => {
    const bundle = JSON.parse(readFileSync(join(root, 'config/examples', file), 'utf8'));
    const suffix = `-r${copy}s${n}`;
    const ids = [...new Set(bundle.entry.map((e) => e.resource?.id).filter(Boolean))];
    let renamed = JSON.stringify(bundle);
    for (const id of ids) renamed = renamed.replaceAll(new RegExp(`(["/])${id.replace(/\./g, '\\.')}"`, 'g'), `$1${id}${suffix}"`);
    const seed = join(work, 'seed', `${copy}-${file}`);
    writeFileSync(seed, renamed);
    seeds.push(seed);
    const target = (expected[file]?.encounter ?? `Encounter/${bundle.entry.find((e) => e.resource?.resourceType === 'Encounter').resource.id}`) + suffix;
    encounters.push({ encounter: target, microneedling: !expected[file]?.empty, file });
  });
}
const ehrLog = join(work, 'ehr.log');
writeFileSync(ehrLog, '');
const ehrPort = await start('node', [join(root, 'tests/ehr/server.mjs'), '--port', '0', '--verbose', '--load', ...seeds],
  (line) => /^LISTENING (\d+)$/.exec(line)?.[1], ehrLog).catch((e) => fail(e.message));
const ehr = `http://127.0.0.1:${ehrPort}/fhir`;

// ---- three replicas on the database ------------------------------------------------------
const token = `replicas-${stamp}`;
process.env.MICROCARE_INBOUND_TOKEN = token;
const replicas = [];
for (let r = 0; r < 3; ++r) {
  const config = {
    server: { listen: '127.0.0.1', port: 0, auth: { bearerTokens: ['${MICROCARE_INBOUND_TOKEN}'] } },
    store: { url: storeUrl },
    // A short lease: a dead replica's jobs are taken over within seconds (deploy/k8s/README.md).
    // Renewed before each write: a step slower than the lease (Medplum validates every write,
    // and CI's machine is busy) would still let a live job be taken over; fenced, but wasted.
    worker: { backoffInitialMs: 200, backoffMaxMs: 2000, leaseSeconds: 15, concurrency: 4 },
    ehr: { baseUrl: ehr },
    log: { level: 'info' },
  };
  const configPath = join(work, `replica-${r}.json`);
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const log = join(work, `replica-${r}.log`);
  writeFileSync(log, '');
  const port = await start(binary, ['serve', '--config', configPath], listeningPort, log).catch((e) => fail(e.message));
  replicas.push({ port, child: children.at(-1), configPath, log, alive: true, sent: 0 });
}
console.log(`EHR (Medplum FHIR router): ${ehr}, ${encounters.length} encounters`);
console.log(`PostgreSQL database ${database}; replicas on ports ${replicas.map((r) => r.port).join(', ')}\n`);

// ---- the messages, spread over the replicas --------------------------------------------------
const message = (i, encounter) => ({
  resourceType: 'Bundle', id: `replicas-${stamp}-${i}`, type: 'message', timestamp: new Date().toISOString(),
  entry: [{ fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, resource: {
    resourceType: 'MessageHeader', id: `replicas-header-${i}`,
    eventCoding: { system: 'https://ehr.example/events', code: 'encounter-end' },
    source: { endpoint: 'https://ehr.example/messaging' }, focus: [{ reference: `${ehr}/${encounter}` }] } }],
});
// Sends message i to the next live replica; a refused connection (the replica is dead) sends
// it to another, as a load balancer would.
let next = 0;
const send = async (i, encounter) => {
  for (let tries = 0; tries < 6; ++tries) {
    const replica = replicas[next++ % replicas.length];
    if (!replica.alive) continue;
    try {
      const response = await fetch(`http://127.0.0.1:${replica.port}/fhir/$process-message`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` },
        body: JSON.stringify(message(i, encounter)),
      });
      await response.text();
      if (response.status === 200) {
        ++replica.sent;
        return true;
      }
    } catch {
      // the replica died under us: another one
    }
  }
  return false;
};
// The jobs as `jobs list` shows them (any replica's configuration: one database).
const jobs = async () =>
  (await run(binary, ['jobs', 'list', '--config', replicas.find((r) => r.alive).configPath, '--limit', '100000'])).out
    .split('\n').filter((l) => /^\d+\t/.test(l))
    .map((l) => {
      const [id, state, attempts, kind, encounter, updated] = l.split('\t');
      return { id, state, attempts: Number(attempts), kind, encounter, updated: Date.parse(updated) };
    });
const victim = replicas[1];
let running = [];
let killedAt = 0;
const acknowledged = [];
const inFlight = [];
for (const [i, visit] of encounters.entries()) {
  if (i === Math.floor(encounters.length / 3)) {
    await Promise.all(inFlight.splice(0));
    // What runs at that moment, on any replica: the dead one's are those that take an attempt
    // more to finish.
    running = (await jobs()).filter((j) => j.state === 'running');
    victim.child.kill('SIGKILL');
    victim.alive = false;
    killedAt = Date.now();
    console.log(`replica 1 SIGKILLed after ${victim.sent} acknowledged message(s); the rest go to the others`);
  }
  inFlight.push(send(i, visit.encounter).then((ok) => ok && acknowledged.push(visit)));
  if (inFlight.length >= 6) await Promise.all(inFlight.splice(0));
}
await Promise.all(inFlight.splice(0));
console.log(`${acknowledged.length} of ${encounters.length} messages acknowledged`);

// ---- until every job is done --------------------------------------------------------------
let all = [];
for (const deadline = Date.now() + 120000; ; await sleep(500)) {
  all = (await jobs()).filter((j) => j.kind === 'assess');
  if (all.length >= acknowledged.length && all.every((j) => j.state === 'done' || j.state === 'dead')) break;
  if (Date.now() > deadline) fail(`the jobs did not finish within 2 minutes: ${JSON.stringify(all.filter((j) => j.state !== 'done'))}`);
}
const takenOver = all.filter((j) => running.some((r) => r.id === j.id && j.attempts > r.attempts));
const takeover = takenOver.length ? Math.max(...takenOver.map((j) => j.updated)) - killedAt : 0;
console.log(`${all.length} jobs done; ${takenOver.length} of the ${running.length} running when replica 1 died were ` +
  `its own and taken over, the last done ${(takeover / 1000).toFixed(1)} s after its death (leaseSeconds 15; ` +
  `times to the second)`);

// ---- what the EHR holds -----------------------------------------------------------------------
const problems = [];
const plans = await searchAll(ehr, 'CarePlan');
for (const visit of acknowledged) {
  const mine = plans.filter((p) => p.encounter?.reference === visit.encounter);
  const want = visit.microneedling ? 1 : 0;
  if (mine.length !== want) problems.push(`${visit.encounter}: ${mine.length} CarePlans, expected ${want}`);
  for (const plan of mine) {
    const history = await (await fetch(`${ehr}/CarePlan/${plan.id}/_history`)).json();
    if ((history.entry ?? []).length !== 1) problems.push(`${visit.encounter}: its CarePlan was written ${(history.entry ?? []).length} times`);
  }
  const theirs = all.filter((j) => j.encounter === visit.encounter);
  if (theirs.length !== 1 || theirs[0].state !== 'done') problems.push(`${visit.encounter}: jobs ${JSON.stringify(theirs)}`);
}
const microneedling = acknowledged.filter((v) => v.microneedling).length;
console.log(`CarePlans on the EHR: ${plans.length} for ${microneedling} microneedling encounters acknowledged`);
if (acknowledged.length !== encounters.length) problems.push(`${encounters.length - acknowledged.length} messages never acknowledged`);
if (killedAt && takenOver.length === 0) console.log('(the dead replica held no job when it died)');

for (const replica of replicas.filter((r) => r.alive)) replica.child.kill('SIGTERM');
await Promise.all(replicas.filter((r) => r.alive).map((r) => new Promise((ok) => (r.child.exitCode !== null ? ok() : r.child.on('exit', ok)))));
// One trail in the database, one chain for the three (a replica killed mid-append leaves an
// aborted transaction, never a torn record): intact, with each acknowledged encounter's decision.
const verify = await run(binary, ['audit', 'verify', '--config', replicas[0].configPath]);
console.log(`the audit trail in the database: ${verify.out.trim()}`);
if (verify.code !== 0) problems.push(`the audit trail: ${verify.out.trim()}`);
const shown = await run(binary, ['audit', 'show', '--config', replicas[0].configPath, '--format', 'json']);
const decided = new Set(JSON.parse(shown.out.slice(0, shown.out.lastIndexOf(']') + 1) || '[]')
  .filter((r) => r.event === 'decision').map((r) => r.fields.encounter));
const undecided = acknowledged.filter((v) => v.microneedling && !decided.has(v.encounter));
console.log(`decisions in the trail: ${decided.size} encounters (${undecided.length} acknowledged microneedling encounters without one)`);
if (undecided.length) problems.push(`no decision in the trail for ${undecided.map((v) => v.encounter).join(', ')}`);
await run('psql', [pgUrl, '-qc', `DROP DATABASE IF EXISTS ${database}`]);

if (check) {
  if (problems.length) fail(`${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  console.log('\nCHECK PASSED: three replicas on one database, one killed with jobs in flight: every acknowledged encounter has exactly one CarePlan, written once.');
}
process.exit(0);
