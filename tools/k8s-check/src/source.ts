import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

/**
 * The manifests under deploy/k8s as files, before kustomize: every YAML document, the
 * kustomizations and the Kubernetes objects of the files they list as resources. Shared by the
 * Jest specs of this folder (the rendered output is checked by check.ts).
 */

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const k8sRoot = join(repoRoot, 'deploy/k8s');

export const SERVICES = ['contacts-svc', 'pipeline-svc', 'quotes-svc', 'activities-svc', 'analytics-svc'] as const;
export const APPS = ['gateway', ...SERVICES] as const;
export const COMPONENTS = ['nats', 'postgres', 'postgres-backup', 'keycloak', 'otel-collector', 'monitoring', 'network-policies'] as const;

export type Json = Record<string, unknown>;

export interface YamlDoc {
  file: string;
  index: number;
  value: unknown;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Json;
  [key: string]: unknown;
}

export interface Probe {
  httpGet?: { path?: string; port?: number | string };
  grpc?: { port?: number; service?: string };
  tcpSocket?: { port?: number | string };
  exec?: { command?: string[] };
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type?: string };
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}

export interface Container {
  name: string;
  image?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface TopologySpreadConstraint {
  maxSkew: number;
  topologyKey: string;
  whenUnsatisfiable: string;
  labelSelector?: LabelSelector;
  matchLabelKeys?: string[];
}

export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: SecurityContext;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: Json; configMap?: { name: string } }[];
  topologySpreadConstraints?: TopologySpreadConstraint[];
}

export interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

export interface Kustomization {
  kind?: string;
  resources?: string[];
  components?: string[];
  configMapGenerator?: { name: string; behavior?: string; files?: string[]; literals?: string[]; options?: { labels?: Record<string, string> } }[];
  patches?: { path?: string; patch?: string; target?: { kind?: string; name?: string } }[];
  replacements?: { source: { kind: string; name: string; fieldPath: string }; targets: { fieldPaths: string[] }[] }[];
  namespace?: string;
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
}

export const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

export const isK8sObject = (value: unknown): value is K8sObject =>
  isRecord(value) &&
  typeof value['apiVersion'] === 'string' &&
  typeof value['kind'] === 'string' &&
  isRecord(value['metadata']) &&
  typeof value['metadata']['name'] === 'string';

export const isWorkload = (o: K8sObject): o is Workload => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && isRecord(o.spec);

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
}

export const rel = (path: string): string => relative(repoRoot, path);

/** Every document of every YAML file under deploy/k8s (empty documents, e.g. comment-only placeholders, are skipped). */
function loadYamlDocuments(): { docs: YamlDoc[]; errors: string[] } {
  const docs: YamlDoc[] = [];
  const errors: string[] = [];
  for (const file of walk(k8sRoot).filter((f) => /\.ya?ml$/.test(f))) {
    YAML.parseAllDocuments(readFileSync(file, 'utf8')).forEach((doc, index) => {
      for (const error of doc.errors) errors.push(`${rel(file)}#${index}: ${error.message}`);
      const value: unknown = doc.toJSON();
      if (value !== null && value !== undefined) docs.push({ file, index, value });
    });
  }
  return { docs, errors };
}

export const { docs, errors: yamlErrors } = existsSync(k8sRoot) ? loadYamlDocuments() : { docs: [], errors: ['deploy/k8s is missing'] };

const isKustomizationFile = (file: string): boolean => /(^|\/)kustomization\.ya?ml$/.test(file);

export const kustomizations = docs.filter((d) => isKustomizationFile(d.file)).map((d) => ({ file: d.file, dir: dirname(d.file), k: d.value as Kustomization }));

export const isRemote = (entry: string): boolean => /^[a-z]+:\/\//.test(entry) || entry.startsWith('github.com/');

/** The YAML files that some kustomization lists as a resource: these hold the Kubernetes objects. */
const resourceFiles = new Set(
  kustomizations.flatMap(({ dir, k }) =>
    (k.resources ?? [])
      .filter((r) => !isRemote(r))
      .map((r) => resolve(dir, r))
      .filter((p) => existsSync(p) && statSync(p).isFile()),
  ),
);

export const objects: { file: string; object: K8sObject }[] = docs
  .filter((d) => resourceFiles.has(d.file))
  .flatMap((d) => (isK8sObject(d.value) ? [{ file: d.file, object: d.value }] : []));

export const workloads = objects.flatMap(({ file, object }) => (isWorkload(object) ? [{ file, workload: object }] : []));

export function objectsIn(file: string): K8sObject[] {
  return objects.filter((o) => o.file === file).map((o) => o.object);
}

export function findOne(list: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return list.find((o) => o.kind === kind && o.metadata.name === name);
}

export function kustomizationAt(dir: string): Kustomization | undefined {
  return kustomizations.find((k) => rel(k.dir) === dir)?.k;
}

/** True when `selector` (non-empty) selects `labels`. */
export function selects(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  const matchLabels = Object.entries(selector?.matchLabels ?? {});
  const expressions = selector?.matchExpressions ?? [];
  if (matchLabels.length === 0 && expressions.length === 0) return false;
  const l = labels ?? {};
  return (
    matchLabels.every(([k, v]) => l[k] === v) &&
    expressions.every((e) =>
      e.operator === 'In' ? l[e.key] !== undefined && (e.values ?? []).includes(l[e.key] as string) : e.operator === 'Exists' && e.key in l,
    )
  );
}

/** The literals of a configMapGenerator entry as a map. */
export function literals(k: Kustomization | undefined, name: string): Record<string, string> {
  const entry = (k?.configMapGenerator ?? []).find((g) => g.name === name);
  return Object.fromEntries((entry?.literals ?? []).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

export const readRepoFile = (path: string): string => readFileSync(join(repoRoot, path), 'utf8');
export const readJson = <T = Json>(path: string): T => JSON.parse(readRepoFile(path)) as T;
