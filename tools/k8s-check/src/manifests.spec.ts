import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import {
  APPS,
  COMPONENTS,
  SERVICES,
  docs,
  findOne,
  isRemote,
  isWorkload,
  k8sRoot,
  kustomizationAt,
  kustomizations,
  literals,
  objects,
  objectsIn,
  rel,
  selects,
  workloads,
  yamlErrors,
  type Container,
  type K8sObject,
  type Kustomization,
  type PodSpec,
  type SecurityContext,
  type Probe,
} from './source.ts';

/**
 * Static checks of the Kubernetes manifests under deploy/k8s, read as files (no kubectl): every
 * YAML document parses, every kustomization points at paths that exist, every workload is
 * hardened and highly available (resources, non-root, probes, topology spread, a non-blocking
 * PodDisruptionBudget), and every app has a base folder whose Deployment/Services/`app` label
 * match its name and carry its ports, credentials and backends. `npm run k8s:check` renders the
 * overlays and validates the output.
 */

const effective = <K extends keyof SecurityContext>(pod: PodSpec, container: Container, key: K): SecurityContext[K] =>
  container.securityContext?.[key] ?? pod.securityContext?.[key];

const hasProbeHandler = (probe: Probe | undefined): boolean =>
  probe !== undefined && [probe.httpGet, probe.grpc, probe.tcpSocket, probe.exec].some((h) => h !== undefined);

const envOf = (container: Container | undefined): Record<string, string | undefined> =>
  Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));

const ports = YAML.parse(readFileSync(join(k8sRoot, 'base/ports.yaml'), 'utf8')) as { data: Record<string, string> };

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

    it('the base lists ports.yaml and every app and generates crm-config', () => {
      const base = kustomizationAt('deploy/k8s/base');
      expect([...(base?.resources ?? [])].sort()).toEqual(['ports.yaml', ...APPS].sort());
      expect((base?.configMapGenerator ?? []).map((g) => g.name)).toContain('crm-config');
    });

    it('the overlays compose the expected components and namespaces, and import their own realm', () => {
      const componentNames = (k: Kustomization | undefined): string[] => (k?.components ?? []).map((c) => c.split('/').at(-1) ?? c).sort();
      const dev = kustomizationAt('deploy/k8s/overlays/dev');
      const prod = kustomizationAt('deploy/k8s/overlays/prod');
      expect(dev?.namespace).toBe('crm-dev');
      expect(componentNames(dev)).toEqual(['keycloak', 'nats', 'otel-collector', 'postgres']);
      expect(prod?.namespace).toBe('crm');
      expect(componentNames(prod)).toEqual([...COMPONENTS].sort());
      // network policies last: their port replacements read base/ports.yaml and see every object
      expect(prod?.components?.at(-1)).toBe('../../components/network-policies');
      expect(dev?.resources).toContain('realm-import.yaml');
      expect(prod?.resources).toContain('realm-import.yaml');
      for (const app of APPS) {
        const image = prod?.images?.find((i) => i.name === `crm/${app}`);
        expect({ app, pinned: Boolean(image?.newTag ?? image?.digest) && image?.newTag !== 'latest' }).toEqual({ app, pinned: true });
      }
    });
  });

  describe('ports (base/ports.yaml, the single source)', () => {
    it('is a local-config ConfigMap with the grpc, ops and http ports', () => {
      expect(ports).toMatchObject({ kind: 'ConfigMap', metadata: { name: 'crm-ports', annotations: { 'config.kubernetes.io/local-config': 'true' } } });
      for (const key of ['grpc', 'ops', 'http']) expect(Number(ports.data[key])).toBeGreaterThan(0);
    });

    it('is copied by replacements into the apps and the NetworkPolicies, matching names exactly (anchored)', () => {
      const fieldPaths = (k: Kustomization | undefined, key: string): string[] =>
        (k?.replacements ?? [])
          .filter((r) => r.source.name === 'crm-ports' && r.source.fieldPath === `data.${key}`)
          .flatMap((r) => r.targets.flatMap((t) => t.fieldPaths));
      const base = kustomizationAt('deploy/k8s/base');
      const policies = kustomizationAt('deploy/k8s/components/network-policies');
      const grpc = fieldPaths(base, 'grpc');
      for (const field of [
        'containerPort',
        'GRPC_PORT',
        'startupProbe.grpc.port',
        'livenessProbe.grpc.port',
        'readinessProbe.grpc.port',
        'spec.ports',
        'CONTACTS_GRPC_URL',
        'ANALYTICS_GRPC_URL',
      ]) {
        expect({ field, found: grpc.some((p) => p.includes(field)) }).toEqual({ field, found: true });
      }
      expect(fieldPaths(base, 'ops').some((p) => p.includes('OPS_PORT'))).toBe(true);
      expect(fieldPaths(base, 'http').some((p) => p.includes('^PORT$'))).toBe(true);
      for (const key of ['grpc', 'ops', 'http']) expect(fieldPaths(policies, key).length).toBeGreaterThan(0);
      // kustomize matches [name=…] as a regular expression: [name=PORT] would also hit OPS_PORT
      for (const path of [...grpc, ...fieldPaths(base, 'ops'), ...fieldPaths(base, 'http')]) {
        for (const match of path.matchAll(/\[name=([^\]]*)\]/g)) expect({ path, anchored: /^\^.*\$$/.test(match[1] ?? '') }).toEqual({ path, anchored: true });
      }
    });
  });

  describe('workloads (every Deployment/StatefulSet container)', () => {
    it('there are workloads to check', () => {
      expect(workloads.length).toBeGreaterThanOrEqual(APPS.length);
    });

    it.each(workloads.map((w) => [`${w.workload.kind}/${w.workload.metadata.name}`, w] as const))('%s: hardened and probed', (_name, { workload }) => {
      const pod = workload.spec.template.spec;
      expect(pod.containers.length).toBeGreaterThan(0);
      for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${workload.metadata.name}/${container.name}`;
        expect({ where, requests: Object.keys(container.resources?.requests ?? {}).sort() }).toEqual({ where, requests: ['cpu', 'memory'] });
        expect({ where, limits: Object.keys(container.resources?.limits ?? {}).length > 0 }).toEqual({ where, limits: true });
        expect({ where, runAsNonRoot: effective(pod, container, 'runAsNonRoot') }).toEqual({ where, runAsNonRoot: true });
        expect({ where, liveness: hasProbeHandler(container.livenessProbe) }).toEqual({ where, liveness: true });
      }
      // readiness decides the Service endpoints: the main container only (a sidecar such as the
      // NATS exporter must never take its server out of the Service)
      expect(hasProbeHandler(pod.containers[0]?.readinessProbe)).toBe(true);
      // The selector must select the pod template.
      for (const [key, value] of Object.entries(workload.spec.selector.matchLabels ?? {})) {
        expect(workload.spec.template.metadata?.labels?.[key]).toBe(value);
      }
    });

    it.each(workloads.map((w) => [`${w.workload.kind}/${w.workload.metadata.name}`, w] as const))(
      '%s: spread over nodes and zones, with a PodDisruptionBudget that never blocks a drain',
      (_name, { file, workload }) => {
        const labels = workload.spec.template.metadata?.labels;
        const spread = workload.spec.template.spec.topologySpreadConstraints ?? [];
        expect(spread.map((c) => c.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
        for (const constraint of spread) {
          expect(selects(constraint.labelSelector, labels)).toBe(true);
          expect(constraint.maxSkew).toBe(1);
          // DoNotSchedule on hostname leaves replicas Pending as soon as one eligible node is full
          expect(constraint.whenUnsatisfiable).toBe('ScheduleAnyway');
        }
        const pdbs = objectsIn(file).filter(
          (o) => o.kind === 'PodDisruptionBudget' && selects((o.spec as { selector?: { matchLabels?: Record<string, string> } }).selector, labels),
        );
        expect(pdbs).toHaveLength(1);
        const budget = pdbs[0]?.spec as { maxUnavailable?: number; minAvailable?: number; unhealthyPodEvictionPolicy?: string };
        expect(budget.minAvailable).toBeUndefined();
        expect(budget.maxUnavailable).toBe(1);
        expect(budget.unhealthyPodEvictionPolicy).toBe('AlwaysAllow');
      },
    );
  });

  describe.each(APPS)('app %s', (app) => {
    const file = join(k8sRoot, 'base', app, `${app}.yaml`);
    const own = objectsIn(file);
    const deployment = findOne(own, 'Deployment', app);
    const service = findOne(own, 'Service', app);
    const serviceAccount = findOne(own, 'ServiceAccount', app);
    const container = deployment && isWorkload(deployment) ? deployment.spec.template.spec.containers[0] : undefined;
    const env = envOf(container);
    const secretRef = (name: string): { name: string; key: string } | undefined => container?.env?.find((e) => e.name === name)?.valueFrom?.secretKeyRef;

    it('has a base folder with one manifest listed by its kustomization', () => {
      expect(kustomizationAt(`deploy/k8s/base/${app}`)?.resources).toEqual([`${app}.yaml`]);
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
      // two replicas: a PodDisruptionBudget lets a node drain without an outage
      expect(deployment.spec.replicas).toBe(2);
      expect(service.metadata.labels?.['app']).toBe(app);
      expect((service.spec as { selector?: Record<string, string> } | undefined)?.selector).toEqual({ app });
    });

    it('runs hardened: non-root uid 1000, read-only root fs, no privilege escalation, no capabilities, /tmp emptyDir', () => {
      if (deployment === undefined || !isWorkload(deployment) || container === undefined) throw new Error(`Deployment ${app} not found`);
      const pod = deployment.spec.template.spec;
      expect(pod.serviceAccountName).toBe(app);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.runAsUser).toBe(1000);
      expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
      expect(pod.containers).toHaveLength(1);
      expect(container.image).toBe(`crm/${app}`);
      expect(effective(pod, container, 'readOnlyRootFilesystem')).toBe(true);
      expect(effective(pod, container, 'allowPrivilegeEscalation')).toBe(false);
      expect(container.securityContext?.capabilities?.drop).toContain('ALL');
      const tmp = container.volumeMounts?.find((m) => m.mountPath === '/tmp');
      expect(tmp).toBeDefined();
      expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
    });

    it('probes the right endpoints and serves metrics on its ops port, open to Prometheus (no scrape annotations: PodMonitors)', () => {
      if (deployment === undefined || !isWorkload(deployment)) throw new Error(`Deployment ${app} not found`);
      expect(deployment.spec.template.metadata?.annotations?.['prometheus.io/scrape']).toBeUndefined();
      expect(container?.ports?.find((p) => p.name === 'ops')?.containerPort).toBe(Number(ports.data['ops']));
      expect(env['OPS_HOST']).toBe('0.0.0.0');
      expect(env['OPS_PORT']).toBe(ports.data['ops']);
      if (app === 'gateway') {
        expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz');
        expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
        expect(container?.readinessProbe?.httpGet?.port).toBe('http');
        expect(container?.ports?.map((p) => p.name).sort()).toEqual(['http', 'ops']);
        expect(container?.ports?.find((p) => p.name === 'http')?.containerPort).toBe(Number(ports.data['http']));
        expect(env['PORT']).toBe(ports.data['http']);
      } else {
        const grpc = Number(ports.data['grpc']);
        for (const probe of [container?.startupProbe, container?.livenessProbe, container?.readinessProbe]) expect(probe?.grpc?.port).toBe(grpc);
        expect(container?.ports?.map((p) => p.name).sort()).toEqual(['grpc', 'ops']);
        expect(container?.ports?.find((p) => p.name === 'grpc')?.containerPort).toBe(grpc);
        expect(env['GRPC_HOST']).toBe('0.0.0.0');
        expect(env['GRPC_PORT']).toBe(ports.data['grpc']);
      }
    });

    it('reads crm-config, DATABASE_URL from the <app>-db Secret and the internal token key from crm-internal-token', () => {
      expect(container?.envFrom?.map((e) => e.configMapRef?.name)).toContain('crm-config');
      expect(secretRef('DATABASE_URL')).toEqual({ name: `${app}-db`, key: 'DATABASE_URL' });
      expect(env['OTEL_SERVICE_NAME']).toBe(app);
      if (app === 'gateway') {
        expect(secretRef('INTERNAL_TOKEN_PRIVATE_KEY')).toEqual({ name: 'crm-internal-token', key: 'private.pem' });
        expect(secretRef('INTERNAL_TOKEN_PUBLIC_KEYS')).toBeUndefined();
      } else {
        expect(secretRef('INTERNAL_TOKEN_PUBLIC_KEYS')).toEqual({ name: 'crm-internal-token', key: 'public.pem' });
        expect(secretRef('INTERNAL_TOKEN_PRIVATE_KEY')).toBeUndefined();
      }
    });

    if (app !== 'gateway') {
      it('connects to NATS as its own user, the password from the <app>-nats Secret', () => {
        expect(env['NATS_USER']).toBe(app);
        expect(secretRef('NATS_PASSWORD')).toEqual({ name: `${app}-nats`, key: 'NATS_PASSWORD' });
      });

      it('has a headless Service <app>-headless on the gRPC port, for client-side load balancing', () => {
        const headless = findOne(own, 'Service', `${app}-headless`);
        const spec = headless?.spec as
          { clusterIP?: string; selector?: Record<string, string>; ports?: { name: string; port: number; targetPort: string }[] } | undefined;
        expect(spec?.clusterIP).toBe('None');
        expect(spec?.selector).toEqual({ app });
        // no port translation on a headless Service: clients dial the pod IP on this port
        expect(spec?.ports).toEqual([expect.objectContaining({ name: 'grpc', port: Number(ports.data['grpc']), targetPort: 'grpc' })]);
      });
    } else {
      it('does not connect to NATS and reaches every domain service through its headless Service', () => {
        expect(env['NATS_USER']).toBeUndefined();
        for (const svc of SERVICES) {
          const variable = `${svc.replace(/-svc$/, '').toUpperCase()}_GRPC_URL`;
          expect({ variable, value: env[variable] }).toEqual({ variable, value: `dns:///${svc}-headless:${ports.data['grpc']}` });
        }
      });
    }

    it('has Service ports that target named container ports, and no Service exposes the ops port', () => {
      if (deployment === undefined || !isWorkload(deployment)) throw new Error(`${app} not found`);
      const names = new Set((container?.ports ?? []).map((p) => p.name));
      const services = own.filter((o) => o.kind === 'Service');
      expect(services.length).toBe(app === 'gateway' ? 1 : 2);
      for (const s of services) {
        const servicePorts = (s.spec as { ports?: { name?: string; targetPort?: string | number }[] } | undefined)?.ports ?? [];
        expect(servicePorts.length).toBeGreaterThan(0);
        for (const port of servicePorts) {
          expect(names.has(String(port.targetPort))).toBe(true);
          expect(port.targetPort).not.toBe('ops');
        }
      }
    });
  });

  describe('crm-config and the Keycloak issuer', () => {
    const base = literals(kustomizationAt('deploy/k8s/base'), 'crm-config');
    const prod = literals(kustomizationAt('deploy/k8s/overlays/prod'), 'crm-config');
    const dev = literals(kustomizationAt('deploy/k8s/overlays/dev'), 'crm-config');

    it('points the gateway at the in-cluster Keycloak for keys and at the public URL for the issuer', () => {
      expect(base['KEYCLOAK_URL']).toBe('http://keycloak-service:8080');
      expect(base['KEYCLOAK_REALM']).toBe('crm');
      for (const overlay of [dev, prod]) {
        expect(overlay['KEYCLOAK_ISSUER_URL']).toMatch(/^https?:\/\/[^/]+$/);
        expect(overlay['KEYCLOAK_PUBLIC_URL']).toBe(overlay['KEYCLOAK_ISSUER_URL']);
      }
    });

    it('prod: the issuer URL is the Keycloak CR hostname', () => {
      const patch = (kustomizationAt('deploy/k8s/overlays/prod')?.patches ?? []).find((p) => p.target?.kind === 'Keycloak')?.patch ?? '';
      const hostname = (YAML.parse(patch) as { path: string; value: { hostname?: string } }[]).find((op) => op.path === '/spec/hostname')?.value.hostname;
      expect(hostname).toBe(prod['KEYCLOAK_ISSUER_URL']);
      expect(hostname).toMatch(/^https:\/\//);
    });

    it('sets the JetStream replicas to the NATS cluster size', () => {
      const nats = objects.find((o) => o.object.kind === 'StatefulSet' && o.object.metadata.name === 'nats')?.object as K8sObject & {
        spec: { replicas: number };
      };
      expect(base['NATS_STREAM_REPLICAS']).toBe(String(nats.spec.replicas));
    });
  });

  describe('availability', () => {
    it('prod: every app has a CPU HPA with at least 2 replicas, and the overlay leaves the replica count to it', () => {
      const hpas = objectsIn(join(k8sRoot, 'overlays/prod/hpa.yaml'));
      for (const app of APPS) {
        const hpa = findOne(hpas, 'HorizontalPodAutoscaler', app)?.spec as
          { scaleTargetRef: { name: string }; minReplicas: number; maxReplicas: number; metrics: { resource?: { name: string } }[] } | undefined;
        expect(hpa?.scaleTargetRef.name).toBe(app);
        expect(hpa?.minReplicas).toBeGreaterThanOrEqual(2);
        expect(hpa?.maxReplicas).toBeGreaterThan(hpa?.minReplicas ?? 0);
        expect(hpa?.metrics.map((m) => m.resource?.name)).toEqual(['cpu']);
      }
      const removal = (kustomizationAt('deploy/k8s/overlays/prod')?.patches ?? []).find((p) => p.patch?.includes('/spec/replicas'));
      expect(removal?.target?.name?.split('|').sort()).toEqual([...APPS].sort());
    });

    it('dev: a single PostgreSQL instance without the operator PodDisruptionBudget that would block drains', () => {
      const patch = (kustomizationAt('deploy/k8s/overlays/dev')?.patches ?? []).find((p) => p.target?.kind === 'Cluster')?.patch ?? '';
      expect(YAML.parse(patch)).toEqual(
        expect.arrayContaining([
          { op: 'replace', path: '/spec/instances', value: 1 },
          { op: 'replace', path: '/spec/enablePDB', value: false },
        ]),
      );
    });
  });

  describe('PostgreSQL backups (components/postgres-backup)', () => {
    const own = objects.filter((o) => rel(o.file).startsWith('deploy/k8s/components/postgres-backup/')).map((o) => o.object);
    const store = own.find((o) => o.kind === 'ObjectStore');
    const scheduled = own.find((o) => o.kind === 'ScheduledBackup')?.spec as
      { cluster: { name: string }; method: string; pluginConfiguration?: { name: string }; schedule: string } | undefined;

    it('archives WAL through the Barman Cloud plugin into the ObjectStore', () => {
      const patch = (kustomizationAt('deploy/k8s/components/postgres-backup')?.patches ?? []).find((p) => p.target?.kind === 'Cluster')?.patch ?? '';
      const plugins = (YAML.parse(patch) as { path: string; value: { name: string; isWALArchiver: boolean; parameters: Record<string, string> }[] }[]).find(
        (op) => op.path === '/spec/plugins',
      )?.value;
      expect(plugins).toEqual([{ name: 'barman-cloud.cloudnative-pg.io', isWALArchiver: true, parameters: { barmanObjectName: store?.metadata.name } }]);
      expect((store?.spec as { retentionPolicy?: string } | undefined)?.retentionPolicy).toMatch(/^[1-9][0-9]*[dwm]$/);
    });

    it('takes a scheduled base backup of crm-db with the plugin', () => {
      expect(scheduled?.cluster.name).toBe('crm-db');
      expect(scheduled?.method).toBe('plugin');
      expect(scheduled?.pluginConfiguration?.name).toBe('barman-cloud.cloudnative-pg.io');
      // six fields: CloudNativePG schedules have seconds
      expect(scheduled?.schedule.split(/\s+/)).toHaveLength(6);
    });
  });
});
