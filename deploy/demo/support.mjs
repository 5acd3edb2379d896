// What the end-to-end scenarios (scenario.mjs, poll-scenario.mjs) share: their arguments, the
// processes they start (stopped when the scenario exits), the command line they run, and
// reading a search whole from the EHR.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const args = process.argv.slice(2);
export const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};

// Every process started, in order; those still running get SIGTERM when the scenario exits.
export const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));
process.on('SIGINT', () => process.exit(130));

export const failWith = (who) => (message) => {
  console.error(`${who}: ${message}`);
  process.exit(1);
};

// Starts `command` and resolves with what `ready` finds in one of its output lines (a port);
// its stderr goes to `log`.
export function start(command, argv, ready, log) {
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

// `microcare serve`'s port, from its "MicroCare is listening" log line (JSON).
export const listeningPort = (line) => {
  try {
    const entry = JSON.parse(line);
    return entry.msg === 'MicroCare is listening' ? entry.port : undefined;
  } catch {
    return undefined;
  }
};

// Runs a command to its end: its exit code and its output, stdout and stderr together.
export const run = (command, argv) =>
  new Promise((ok) => {
    const c = spawn(command, argv);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('exit', (code) => ok({ code, out }));
  });

// Every resource of a search on the EHR, following its `next` links.
export const searchAll = async (ehr, query) => {
  const resources = [];
  let url = `${ehr}/${query}${query.includes('?') ? '&' : '?'}_count=100`;
  while (url) {
    const page = await (await fetch(url)).json();
    resources.push(...(page.entry ?? []).map((e) => e.resource));
    url = page.link?.find((l) => l.relation === 'next')?.url;
  }
  return resources;
};
