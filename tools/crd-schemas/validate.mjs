// Checks Kubernetes custom resources against the upstream schemas of the @kubernetes-models packages.
//
// stdin: a JSON array of objects. stdout: a JSON array holding, for each object, its list of problems:
// the schema's own errors, every field the schema does not declare, or "no schema for ..." when no
// installed package models the kind.
//
// The packages ship each schema compiled into a validator function, not as JSON. So the strict check
// watches that function at work: it runs over a copy of the object whose every nested object notes
// the keys looked up in it. The validator looks up each field its schema declares, and each key of a
// map whose values it checks; so in an object it looked into, a key it never looked up is a field the
// schema does not declare. An object it never looked into is free-form (preserved unknown fields).

import { readFileSync } from "node:fs";

const here = new URL(".", import.meta.url);
const readJson = (path) => JSON.parse(readFileSync(new URL(path, here), "utf8"));

/** The import paths that export the kinds of each apiVersion, from every installed package. */
function modulesByApiVersion() {
  const found = new Map();
  for (const name of Object.keys(readJson("package.json").dependencies)) {
    for (const subpath of Object.keys(readJson(`node_modules/${name}/package.json`).exports)) {
      const match = subpath.match(/^\.\/([^/]+\.[^/]+\/v\d+(?:(?:alpha|beta)\d+)?)$/);
      if (match) found.set(match[1], [...(found.get(match[1]) ?? []), `${name}/${match[1]}`]);
    }
  }
  return found;
}

const modules = modulesByApiVersion();

/** The model class of a kind, or undefined when no package has one. */
async function modelOf(apiVersion, kind) {
  for (const path of modules.get(apiVersion) ?? []) {
    const model = (await import(path))[kind];
    if (model?.apiVersion === apiVersion && model?.kind === kind) return model;
  }
  return undefined;
}

/** A copy of value whose every object notes, in notes, which of its keys were looked up. */
function watched(value, path, notes) {
  if (Array.isArray(value)) return value.map((item, i) => watched(item, `${path}/${i}`, notes));
  if (value === null || typeof value !== "object") return value;
  const note = { path, value, looked: new Set() };
  notes.push(note);
  const copy = Object.fromEntries(Object.entries(value).map(([key, item]) => [key, watched(item, `${path}/${key}`, notes)]));
  return new Proxy(copy, {
    get(target, key, receiver) {
      note.looked.add(key);
      return Reflect.get(target, key, receiver);
    },
  });
}

/**
 * The packages' generator strips schema "description" keywords by key name, so it also drops every
 * property named "description" (AppProjectSpec.d.ts declares one, its compiled validator does not):
 * a string there is let through.
 */
function lostDescription(note, key) {
  return key === "description" && typeof note.value.description === "string";
}

/** Every problem of one object, as text. */
async function problemsOf(obj) {
  const model = await modelOf(obj?.apiVersion, obj?.kind);
  if (!model) return [`no schema for ${obj?.apiVersion} ${obj?.kind}`];
  const notes = [];
  const problems = [];
  try {
    model.prototype.validate.call(watched(obj, "", notes));
  } catch (err) {
    if (!err.errors) throw err;
    problems.push(...err.errors.map((e) => `${e.instancePath || "/"}: ${e.message}`));
  }
  for (const note of notes) {
    if (note.looked.size === 0) continue;
    for (const key of Object.keys(note.value).filter((k) => !note.looked.has(k) && !lostDescription(note, k))) {
      problems.push(`${note.path}/${key}: field not declared in the schema`);
    }
  }
  return problems;
}

const input = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const obj of input) results.push(await problemsOf(obj));
process.stdout.write(JSON.stringify(results) + "\n");
