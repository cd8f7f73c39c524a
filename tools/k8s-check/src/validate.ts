import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { K8sObject } from './render.ts';
import { repoRoot, toolchainDir, toolchainModulePath } from './toolchain.ts';

/**
 * Validation of rendered objects, offline:
 * - built-in kinds against the Kubernetes 1.34 OpenAPI schemas of `kubernetes-models` (types,
 *   enums, formats, required fields), and monitoring.coreos.com kinds against those of
 *   `@kubernetes-models/prometheus-operator`;
 * - the same kinds for unknown fields: their objects, as TypeScript object literals, must satisfy
 *   the packages' interfaces (`tsc` excess-property checks: a misspelled or misplaced field fails);
 * - CloudNativePG, Barman Cloud plugin and Keycloak operator kinds against the hand-written,
 *   strict subset schemas in tools/k8s-check/schemas (ajv);
 * - PromQL of the alert rules and the dashboard with the Prometheus UI's parser;
 * - nats.conf with `nats-server -t`.
 * A kind with no schema at all is an error, never skipped.
 */

/** A problem found in one object. */
export interface Problem {
  object: string;
  message: string;
}

export const describeObject = (o: K8sObject): string => `${o.kind}/${o.metadata.name}`;

interface ModelTarget {
  /** Module path under the toolchain's node_modules (ESM, exports the model class `kind`). */
  modulePath: string;
  /** Module specifier of its TypeScript declarations (interface `I<kind>`). */
  typesSpecifier: string;
}

function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** The kubernetes-models class of `apiVersion`/`kind`, when a package has one. */
function modelTarget(apiVersion: string, kind: string): ModelTarget | undefined {
  const { group, version } = splitApiVersion(apiVersion);
  const candidates: [string, string][] =
    group === 'monitoring.coreos.com'
      ? [['@kubernetes-models/prometheus-operator', `monitoring.coreos.com/${version}/${kind}`]]
      : [['kubernetes-models', group === '' ? `${version}/${kind}` : `${group}/${version}/${kind}`]];
  for (const [pkg, sub] of candidates) {
    const modulePath = toolchainModulePath(`${pkg}/${sub}.js`);
    if (existsSync(modulePath)) return { modulePath, typesSpecifier: `${pkg}/${sub}` };
  }
  return undefined;
}

interface AjvError {
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}

const formatAjvErrors = (errors: readonly AjvError[] | null | undefined): string[] =>
  (errors ?? []).map((e) => {
    const extra = e.params?.['additionalProperty'] ?? e.params?.['allowedValues'];
    return `${e.instancePath || '/'} ${e.message ?? 'invalid'}${extra === undefined ? '' : ` (${JSON.stringify(extra)})`}`;
  });

type ModelClass = new (data: unknown) => { validate(): void };

/** Vendored CRD subset schemas: `<group>/<kind lowercased>_<version>.json`. */
const schemaDir = join(import.meta.dirname, '../schemas');

function vendoredSchemaPath(apiVersion: string, kind: string): string | undefined {
  const { group, version } = splitApiVersion(apiVersion);
  const path = join(schemaDir, group, `${kind.toLowerCase()}_${version}.json`);
  return existsSync(path) ? path : undefined;
}

/** Every vendored schema file, relative to tools/k8s-check/schemas. */
export function vendoredSchemas(): string[] {
  return readdirSync(schemaDir)
    .filter((group) => statSync(join(schemaDir, group)).isDirectory())
    .flatMap((group) => readdirSync(join(schemaDir, group)).map((file) => `${group}/${file}`))
    .sort();
}

/** Validates every object against its JSON schema (see the module comment). */
export async function validateSchemas(objects: readonly K8sObject[]): Promise<{ problems: Problem[]; bySource: Record<string, number> }> {
  const require = createRequire(join(toolchainDir, 'package.json'));
  const Ajv = require('ajv') as new (options: Record<string, unknown>) => {
    compile(schema: unknown): ((data: unknown) => boolean) & { errors?: AjvError[] | null };
  };
  const ajv = new Ajv({ allErrors: true, strict: true });
  const compiled = new Map<string, ((data: unknown) => boolean) & { errors?: AjvError[] | null }>();
  const problems: Problem[] = [];
  const bySource: Record<string, number> = {};
  const count = (source: string): void => {
    bySource[source] = (bySource[source] ?? 0) + 1;
  };
  for (const object of objects) {
    const where = describeObject(object);
    const model = modelTarget(object.apiVersion, object.kind);
    if (model !== undefined) {
      const module = (await import(pathToFileURL(model.modulePath).href)) as Record<string, ModelClass | undefined>;
      const Model = module[object.kind];
      if (Model === undefined) throw new Error(`${model.modulePath} does not export ${object.kind}`);
      try {
        new Model(object).validate();
      } catch (error) {
        const errors = (error as { errors?: AjvError[] }).errors;
        const messages = errors ? formatAjvErrors(errors) : [String(error)];
        for (const message of messages) problems.push({ object: where, message });
      }
      count(model.typesSpecifier.startsWith('@kubernetes-models/prometheus-operator') ? '@kubernetes-models/prometheus-operator' : 'kubernetes-models');
      continue;
    }
    const schemaPath = vendoredSchemaPath(object.apiVersion, object.kind);
    if (schemaPath !== undefined) {
      let validate = compiled.get(schemaPath);
      if (validate === undefined) {
        validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
        compiled.set(schemaPath, validate);
      }
      if (!validate(object)) for (const message of formatAjvErrors(validate.errors)) problems.push({ object: where, message });
      count(`tools/k8s-check/schemas`);
      continue;
    }
    problems.push({ object: where, message: `no schema for ${object.apiVersion} ${object.kind}: add one to tools/k8s-check/schemas` });
  }
  return { problems, bySource };
}

/** Pretty-prints `value` as a JSON literal, remembering the JSON path of every line. */
function printLiteral(value: unknown, path: string, indent: string, lead: string, trail: string, lines: string[], paths: string[]): void {
  const push = (text: string): void => {
    lines.push(text);
    paths.push(path);
  };
  if (Array.isArray(value)) {
    if (value.length === 0) return push(`${indent}${lead}[]${trail}`);
    push(`${indent}${lead}[`);
    value.forEach((item, i) => printLiteral(item, `${path}[${i}]`, `${indent}  `, '', i < value.length - 1 ? ',' : '', lines, paths));
    push(`${indent}]${trail}`);
  } else if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return push(`${indent}${lead}{}${trail}`);
    push(`${indent}${lead}{`);
    entries.forEach(([key, item], i) =>
      printLiteral(item, `${path}.${key}`, `${indent}  `, `${JSON.stringify(key)}: `, i < entries.length - 1 ? ',' : '', lines, paths),
    );
    push(`${indent}}${trail}`);
  } else {
    push(`${indent}${lead}${JSON.stringify(value)}${trail}`);
  }
}

/**
 * Unknown fields: writes every model-backed object as `export const oN = {…} satisfies I<Kind>;`
 * and type-checks the file with the repository's TypeScript. Excess-property errors are mapped
 * back to the object and the JSON path of the field.
 */
export function checkUnknownFields(objects: readonly K8sObject[]): { problems: Problem[]; checked: number } {
  const work = join(toolchainDir, 'node_modules/.cache/k8s-check/strict');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const lines: string[] = [];
  const paths: string[] = [];
  const owners: string[] = [];
  const imports = new Map<string, string>();
  let checked = 0;
  objects.forEach((object, index) => {
    const model = modelTarget(object.apiVersion, object.kind);
    if (model === undefined) return;
    const alias = `T${imports.size}`;
    const type = imports.get(model.typesSpecifier) ?? alias;
    if (!imports.has(model.typesSpecifier)) imports.set(model.typesSpecifier, type);
    const before = lines.length;
    printLiteral(object, '', '', `export const o${index} = `, ` satisfies ${type};`, lines, paths);
    for (let i = before; i < lines.length; i++) owners.push(describeObject(object));
    checked++;
  });
  const header = [...imports].map(([specifier, alias]) => {
    const kind = specifier.slice(specifier.lastIndexOf('/') + 1);
    return `import type { I${kind} as ${alias} } from '${specifier}';`;
  });
  const file = join(work, 'objects.ts');
  writeFileSync(file, [...header, ...lines, ''].join('\n'));
  writeFileSync(
    join(work, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: true, types: [] },
      files: ['objects.ts'],
    }),
  );
  const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(work, 'tsconfig.json'), '--pretty', 'false'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const problems: Problem[] = [];
  for (const line of `${result.stdout}\n${result.stderr}`.split('\n')) {
    const match = /objects\.ts\((\d+),\d+\): error (TS\d+: .*)$/.exec(line.trim());
    if (match === null) {
      if (line.includes('error TS')) problems.push({ object: relative(repoRoot, file), message: line.trim() });
      continue;
    }
    const lineIndex = Number(match[1]) - 1 - header.length;
    problems.push({ object: owners[lineIndex] ?? 'objects.ts', message: `${paths[lineIndex] || '/'}: ${match[2]}` });
  }
  if (result.status !== 0 && problems.length === 0) problems.push({ object: 'tsc', message: `exited with ${result.status}: ${result.stderr}` });
  return { problems, checked };
}

interface LezerNode {
  type: { isError: boolean };
  from: number;
}
interface LezerParser {
  parse(input: string): { iterate(spec: { enter(node: LezerNode): void }): void };
}

/** Grafana variables replaced by values PromQL accepts before parsing a dashboard query. */
const grafanaVariables: [RegExp, string][] = [
  [/\$__rate_interval|\$__interval|\$__range/g, '5m'],
  [/\$\{?[A-Za-z_]\w*\}?/g, 'x'],
];

/** PromQL expressions of PrometheusRules and of dashboards in ConfigMaps (data *.json) with their location. */
export function promqlExpressions(objects: readonly K8sObject[]): { where: string; expr: string }[] {
  const found: { where: string; expr: string }[] = [];
  for (const object of objects) {
    if (object.kind === 'PrometheusRule') {
      const groups =
        (object['spec'] as { groups?: { name: string; rules?: { alert?: string; record?: string; expr?: unknown }[] }[] } | undefined)?.groups ?? [];
      for (const group of groups)
        for (const rule of group.rules ?? []) found.push({ where: `${describeObject(object)} ${rule.alert ?? rule.record ?? '?'}`, expr: String(rule.expr) });
    }
    if (object.kind === 'ConfigMap') {
      for (const [key, text] of Object.entries((object['data'] as Record<string, string> | undefined) ?? {})) {
        if (!key.endsWith('.json')) continue;
        const dashboard = JSON.parse(text) as { panels?: { title?: string; targets?: { expr?: string }[] }[] };
        for (const panel of dashboard.panels ?? [])
          for (const target of panel.targets ?? []) {
            if (target.expr === undefined) continue;
            const expr = grafanaVariables.reduce((e, [pattern, value]) => e.replace(pattern, value), target.expr);
            found.push({ where: `${describeObject(object)} ${key} "${panel.title ?? ''}"`, expr });
          }
      }
    }
  }
  return found;
}

/** Parses every expression with `@prometheus-io/lezer-promql`; a syntax error node is a problem. */
export async function checkPromql(objects: readonly K8sObject[]): Promise<{ problems: Problem[]; checked: number }> {
  const { parser } = (await import(pathToFileURL(toolchainModulePath('@prometheus-io/lezer-promql/dist/index.es.js')).href)) as { parser: LezerParser };
  const problems: Problem[] = [];
  const expressions = promqlExpressions(objects);
  for (const { where, expr } of expressions) {
    const errors: number[] = [];
    parser.parse(expr).iterate({
      enter: (node) => {
        if (node.type.isError) errors.push(node.from);
      },
    });
    if (errors.length > 0) problems.push({ object: where, message: `PromQL syntax error at ${errors[0]}: ${expr.replace(/\s+/g, ' ').trim()}` });
  }
  return { problems, checked: expressions.length };
}

/** The nats-server binary (PATH or Debian's /usr/sbin), if installed. */
function natsServerBinary(): string | undefined {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/local/bin']) {
    if (dir && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  return undefined;
}

/**
 * `nats-server -t` on the rendered nats.conf, with every variable the StatefulSet's environment
 * provides set to a dummy value: an unknown key, a syntax error or a variable the pods do not
 * get fails. The local nats-server (2.9 on the development machines) parses it, so the file uses
 * nothing newer.
 */
export function checkNatsConfig(objects: readonly K8sObject[]): Problem[] {
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && typeof (o['data'] as Record<string, string> | undefined)?.['nats.conf'] === 'string');
  const statefulSet = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'nats');
  if (configMap === undefined || statefulSet === undefined) return [];
  const binary = natsServerBinary();
  if (binary === undefined) return [{ object: 'nats.conf', message: 'nats-server not found (apt-get install -y nats-server): cannot test the configuration' }];
  const containers = (statefulSet['spec'] as { template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } } }).template.spec
    .containers;
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  // literal values as they are; values from Secrets and the downward API as a dummy
  for (const variable of containers.find((c) => c.name === 'nats')?.env ?? []) env[variable.name] = variable.value ?? 'k8s-check';
  const work = mkdtempSync(join(tmpdir(), 'k8s-check-nats-'));
  try {
    const file = join(work, 'nats.conf');
    writeFileSync(file, (configMap['data'] as Record<string, string>)['nats.conf'] ?? '');
    const result = spawnSync(binary, ['-t', '-c', file], { encoding: 'utf8', env });
    if (result.status === 0) return [];
    return [{ object: describeObject(configMap), message: `nats-server -t: ${`${result.stderr}${result.stdout}`.trim().replace(file, 'nats.conf')}` }];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
