import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

/**
 * Static checks of the Kubernetes manifests under deploy/k8s: every YAML document parses, every
 * kustomization points at paths that exist, every workload is hardened (resources, non-root,
 * probes), and every app has a base folder whose Deployment/Service/`app` label match its name.
 * kubectl is not needed: the files are read as they are, before kustomize.
 */

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const k8sRoot = join(repoRoot, 'deploy/k8s');

const SERVICES = ['contacts-svc', 'pipeline-svc', 'quotes-svc', 'activities-svc', 'analytics-svc'] as const;
const APPS = ['gateway', ...SERVICES] as const;
const COMPONENTS = ['nats', 'postgres', 'keycloak', 'otel-collector', 'network-policies'] as const;

type Json = Record<string, unknown>;

interface YamlDoc {
  file: string;
  index: number;
  value: unknown;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Json;
  [key: string]: unknown;
}

interface Probe {
  httpGet?: { path?: string; port?: number | string };
  grpc?: { port?: number; service?: string };
  tcpSocket?: { port?: number | string };
  exec?: { command?: string[] };
}

interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type?: string };
}

interface Container {
  name: string;
  image?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: SecurityContext;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: Json; configMap?: { name: string } }[];
}

interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

interface Kustomization {
  kind?: string;
  resources?: string[];
  components?: string[];
  configMapGenerator?: { name: string; behavior?: string; files?: string[]; literals?: string[] }[];
  patches?: { path?: string; patch?: string }[];
  namespace?: string;
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
}

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const isK8sObject = (value: unknown): value is K8sObject =>
  isRecord(value) &&
  typeof value['apiVersion'] === 'string' &&
  typeof value['kind'] === 'string' &&
  isRecord(value['metadata']) &&
  typeof value['metadata']['name'] === 'string';

const isWorkload = (o: K8sObject): o is Workload => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && isRecord(o.spec);

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
}

const rel = (path: string): string => relative(repoRoot, path);

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

const { docs, errors: yamlErrors } = existsSync(k8sRoot) ? loadYamlDocuments() : { docs: [], errors: ['deploy/k8s is missing'] };

const isKustomizationFile = (file: string): boolean => /(^|\/)kustomization\.ya?ml$/.test(file);

const kustomizations = docs.filter((d) => isKustomizationFile(d.file)).map((d) => ({ file: d.file, dir: dirname(d.file), k: d.value as Kustomization }));

const isRemote = (entry: string): boolean => /^[a-z]+:\/\//.test(entry) || entry.startsWith('github.com/');

/** The YAML files that some kustomization lists as a resource: these hold the Kubernetes objects. */
const resourceFiles = new Set(
  kustomizations.flatMap(({ dir, k }) =>
    (k.resources ?? [])
      .filter((r) => !isRemote(r))
      .map((r) => resolve(dir, r))
      .filter((p) => existsSync(p) && statSync(p).isFile()),
  ),
);

const objects: { file: string; object: K8sObject }[] = docs
  .filter((d) => resourceFiles.has(d.file))
  .flatMap((d) => (isK8sObject(d.value) ? [{ file: d.file, object: d.value }] : []));

const workloads = objects.flatMap(({ file, object }) => (isWorkload(object) ? [{ file, workload: object }] : []));

function objectsIn(file: string): K8sObject[] {
  return objects.filter((o) => o.file === file).map((o) => o.object);
}

function findOne(list: K8sObject[], kind: string, name: string): K8sObject | undefined {
  return list.find((o) => o.kind === kind && o.metadata.name === name);
}

const effective = <K extends keyof SecurityContext>(pod: PodSpec, container: Container, key: K): SecurityContext[K] =>
  container.securityContext?.[key] ?? pod.securityContext?.[key];

const hasProbeHandler = (probe: Probe | undefined): boolean =>
  probe !== undefined && [probe.httpGet, probe.grpc, probe.tcpSocket, probe.exec].some((h) => h !== undefined);

describe('deploy/k8s manifests', () => {
  it('parse as YAML', () => {
    expect(yamlErrors).toEqual([]);
    expect(docs.length).toBeGreaterThan(0);
  });

  describe('kustomizations', () => {
    it('exist for the base, every component and both overlays', () => {
      const dirs = kustomizations.map((k) => rel(k.dir));
      for (const expected of [
        'deploy/k8s/base',
        ...APPS.map((a) => `deploy/k8s/base/${a}`),
        ...COMPONENTS.map((c) => `deploy/k8s/components/${c}`),
        'deploy/k8s/overlays/dev',
        'deploy/k8s/overlays/prod',
      ]) {
        expect(dirs).toContain(expected);
      }
    });

    it.each(kustomizations.map((k) => [rel(k.file), k] as const))('%s: resources/components and files exist on disk', (_name, { dir, k }) => {
      const missing: string[] = [];
      for (const entry of [...(k.resources ?? []), ...(k.components ?? [])]) {
        if (isRemote(entry)) continue;
        const path = resolve(dir, entry);
        if (!existsSync(path)) {
          missing.push(entry);
        } else if (statSync(path).isDirectory() && !['kustomization.yaml', 'kustomization.yml', 'Kustomization'].some((f) => existsSync(join(path, f)))) {
          missing.push(`${entry} (no kustomization.yaml)`);
        }
      }
      for (const generator of k.configMapGenerator ?? []) {
        for (const file of generator.files ?? []) {
          const source = file.includes('=') ? file.slice(file.indexOf('=') + 1) : file;
          if (!existsSync(resolve(dir, source))) missing.push(`configMapGenerator ${generator.name}: ${source}`);
        }
      }
      for (const patch of k.patches ?? []) {
        if (patch.path !== undefined && !existsSync(resolve(dir, patch.path))) missing.push(`patch ${patch.path}`);
      }
      expect(missing).toEqual([]);
    });

    it('components are declared as kind Component, the rest as Kustomization', () => {
      for (const { file, k } of kustomizations) {
        const expected = rel(file).startsWith('deploy/k8s/components/') ? 'Component' : 'Kustomization';
        expect({ file: rel(file), kind: k.kind }).toEqual({ file: rel(file), kind: expected });
      }
    });

    it('the base lists every app and generates crm-config', () => {
      const base = kustomizations.find((k) => rel(k.dir) === 'deploy/k8s/base');
      expect(base).toBeDefined();
      expect([...(base?.k.resources ?? [])].sort()).toEqual([...APPS].sort());
      expect((base?.k.configMapGenerator ?? []).map((g) => g.name)).toContain('crm-config');
    });

    it('the overlays compose the expected components and namespaces', () => {
      const overlay = (name: string): Kustomization | undefined => kustomizations.find((k) => rel(k.dir) === `deploy/k8s/overlays/${name}`)?.k;
      const componentNames = (k: Kustomization | undefined): string[] => (k?.components ?? []).map((c) => c.split('/').at(-1) ?? c).sort();

      expect(overlay('dev')?.namespace).toBe('crm-dev');
      expect(componentNames(overlay('dev'))).toEqual(['keycloak', 'nats', 'otel-collector', 'postgres']);
      expect(overlay('prod')?.namespace).toBe('crm');
      expect(componentNames(overlay('prod'))).toEqual([...COMPONENTS].sort());
      for (const app of APPS) {
        const image = overlay('prod')?.images?.find((i) => i.name === `crm/${app}`);
        expect({ app, pinned: Boolean(image?.newTag ?? image?.digest) && image?.newTag !== 'latest' }).toEqual({ app, pinned: true });
      }
    });
  });

  describe('workloads (every Deployment/StatefulSet container)', () => {
    it('there are workloads to check', () => {
      expect(workloads.length).toBeGreaterThanOrEqual(APPS.length);
    });

    it.each(workloads.map((w) => [`${w.workload.kind}/${w.workload.metadata.name}`, w] as const))('%s', (_name, { workload }) => {
      const pod = workload.spec.template.spec;
      expect(pod.containers.length).toBeGreaterThan(0);
      for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${workload.metadata.name}/${container.name}`;
        expect({ where, requests: Object.keys(container.resources?.requests ?? {}).sort() }).toEqual({ where, requests: ['cpu', 'memory'] });
        expect({ where, limits: Object.keys(container.resources?.limits ?? {}).length > 0 }).toEqual({ where, limits: true });
        expect({ where, runAsNonRoot: effective(pod, container, 'runAsNonRoot') }).toEqual({ where, runAsNonRoot: true });
      }
      for (const container of pod.containers) {
        const where = `${workload.metadata.name}/${container.name}`;
        expect({ where, liveness: hasProbeHandler(container.livenessProbe) }).toEqual({ where, liveness: true });
        expect({ where, readiness: hasProbeHandler(container.readinessProbe) }).toEqual({ where, readiness: true });
      }
      // The selector must select the pod template.
      for (const [key, value] of Object.entries(workload.spec.selector.matchLabels ?? {})) {
        expect(workload.spec.template.metadata?.labels?.[key]).toBe(value);
      }
    });
  });

  describe.each(APPS)('app %s', (app) => {
    const file = join(k8sRoot, 'base', app, `${app}.yaml`);
    const own = objectsIn(file);
    const deployment = findOne(own, 'Deployment', app);
    const service = findOne(own, 'Service', app);
    const serviceAccount = findOne(own, 'ServiceAccount', app);

    it('has a base folder with one manifest listed by its kustomization', () => {
      const k = kustomizations.find((entry) => entry.dir === join(k8sRoot, 'base', app));
      expect(k?.k.resources).toEqual([`${app}.yaml`]);
      expect(existsSync(file)).toBe(true);
    });

    it('defines Deployment, Service and ServiceAccount named after the folder, with the app label', () => {
      expect(deployment).toBeDefined();
      expect(service).toBeDefined();
      expect(serviceAccount).toBeDefined();
      if (deployment === undefined || service === undefined || !isWorkload(deployment)) return;

      expect(deployment.metadata.labels?.['app']).toBe(app);
      expect(deployment.spec.selector.matchLabels).toEqual({ app });
      expect(deployment.spec.template.metadata?.labels?.['app']).toBe(app);
      expect(deployment.spec.replicas).toBe(2);
      expect(service.metadata.labels?.['app']).toBe(app);
      expect((service.spec as { selector?: Record<string, string> } | undefined)?.selector).toEqual({ app });
    });

    it('runs hardened: non-root uid 1000, read-only root fs, no privilege escalation, no capabilities, /tmp emptyDir', () => {
      if (deployment === undefined || !isWorkload(deployment)) throw new Error(`Deployment ${app} not found`);
      const pod = deployment.spec.template.spec;
      expect(pod.serviceAccountName).toBe(app);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.runAsUser).toBe(1000);
      expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
      expect(pod.containers).toHaveLength(1);
      const [container] = pod.containers;
      if (container === undefined) return;
      expect(container.image).toBe(`crm/${app}`);
      expect(effective(pod, container, 'readOnlyRootFilesystem')).toBe(true);
      expect(effective(pod, container, 'allowPrivilegeEscalation')).toBe(false);
      expect(container.securityContext?.capabilities?.drop).toContain('ALL');
      const tmp = container.volumeMounts?.find((m) => m.mountPath === '/tmp');
      expect(tmp).toBeDefined();
      expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
    });

    it('probes the right endpoints and exposes metrics to Prometheus', () => {
      if (deployment === undefined || !isWorkload(deployment)) throw new Error(`Deployment ${app} not found`);
      const [container] = deployment.spec.template.spec.containers;
      const annotations = deployment.spec.template.metadata?.annotations ?? {};
      expect(annotations['prometheus.io/scrape']).toBe('true');
      expect(annotations['prometheus.io/path']).toBe('/metrics');
      if (app === 'gateway') {
        expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz');
        expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
        expect(container?.ports?.map((p) => p.containerPort)).toEqual([3000]);
        expect(annotations['prometheus.io/port']).toBe('3000');
      } else {
        expect(container?.livenessProbe?.grpc?.port).toBe(50051);
        expect(container?.readinessProbe?.grpc?.port).toBe(50051);
        expect(container?.ports?.map((p) => p.containerPort).sort()).toEqual([50051, 9400].sort());
        expect(annotations['prometheus.io/port']).toBe('9400');
        const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
        expect(env['GRPC_HOST']).toBe('0.0.0.0');
        expect(env['GRPC_PORT']).toBe('50051');
        expect(env['OPS_HOST']).toBe('0.0.0.0');
        expect(env['OPS_PORT']).toBe('9400');
      }
    });

    it('reads crm-config and DATABASE_URL from the <app>-db Secret', () => {
      if (deployment === undefined || !isWorkload(deployment)) throw new Error(`Deployment ${app} not found`);
      const [container] = deployment.spec.template.spec.containers;
      expect(container?.envFrom?.map((e) => e.configMapRef?.name)).toContain('crm-config');
      const databaseUrl = container?.env?.find((e) => e.name === 'DATABASE_URL');
      expect(databaseUrl?.valueFrom?.secretKeyRef).toEqual({ name: `${app}-db`, key: 'DATABASE_URL' });
      expect(container?.env?.find((e) => e.name === 'OTEL_SERVICE_NAME')?.value).toBe(app);
    });

    it('has Service ports that target named container ports', () => {
      if (deployment === undefined || service === undefined || !isWorkload(deployment)) throw new Error(`${app} not found`);
      const names = new Set((deployment.spec.template.spec.containers[0]?.ports ?? []).map((p) => p.name));
      const ports = (service.spec as { ports?: { targetPort?: string | number }[] } | undefined)?.ports ?? [];
      expect(ports.length).toBeGreaterThan(0);
      for (const port of ports) expect(names.has(String(port.targetPort))).toBe(true);
    });
  });

  describe('keycloak realm import', () => {
    it('is the placeholder note or a KeycloakRealmImport of realm crm generated from deploy/keycloak/realm-crm.json', () => {
      const file = join(k8sRoot, 'components/keycloak/realm-import.yaml');
      expect(existsSync(file)).toBe(true);
      const imports = docs.filter((d) => d.file === file).map((d) => d.value);
      if (imports.length === 0) return; // committed placeholder: render-realm-import.sh fills it in
      expect(imports).toHaveLength(1);
      const [realmImport] = imports;
      expect(isK8sObject(realmImport) && realmImport.kind).toBe('KeycloakRealmImport');
      const spec = isRecord(realmImport) && isRecord(realmImport['spec']) ? realmImport['spec'] : {};
      expect(spec['keycloakCRName']).toBe('keycloak');
      const source = join(repoRoot, 'deploy/keycloak/realm-crm.json');
      if (existsSync(source)) {
        const realm: unknown = JSON.parse(readFileSync(source, 'utf8'));
        expect(spec['realm']).toEqual(realm);
      }
    });
  });
});
