import { describe, expect, it } from '@jest/globals';
import { checkInvariants, referencedSecrets, selects, type OverlayPolicy } from './invariants.ts';
import type { K8sObject } from './render.ts';

/** The rendered-overlay invariants of `npm run k8s:check`, on small hand-made overlays. */

const PROD: OverlayPolicy = { requireMonitoring: true, minReplicasWithPdb: 2, requirePinnedImages: true };

const spread = (app: string): unknown[] =>
  ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
    maxSkew: 1,
    topologyKey,
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: { app } },
  }));

function service(app: string, grpcPort = 50051): K8sObject[] {
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: app },
      spec: {
        selector: { matchLabels: { app } },
        template: {
          metadata: { labels: { app } },
          spec: {
            topologySpreadConstraints: spread(app),
            containers: [
              {
                name: 'server',
                image: `registry.example.com/crm/${app}:0.1.0`,
                ports: [
                  { name: 'grpc', containerPort: grpcPort },
                  { name: 'ops', containerPort: 9400 },
                ],
                env: [
                  { name: 'GRPC_PORT', value: String(grpcPort) },
                  { name: 'OPS_PORT', value: '9400' },
                ],
                readinessProbe: { grpc: { port: grpcPort } },
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `${app}-headless` },
      spec: { clusterIP: 'None', selector: { app }, ports: [{ name: 'grpc', port: 50051, targetPort: 'grpc' }] },
    },
    { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: app }, spec: { maxUnavailable: 1, selector: { matchLabels: { app } } } },
    {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: app },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: app },
        minReplicas: 2,
        maxReplicas: 4,
        metrics: [{ type: 'Resource', resource: { name: 'cpu' } }],
      },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: app },
      spec: { selector: { matchLabels: { app } }, podMetricsEndpoints: [{ port: 'ops' }] },
    },
  ];
}

const messages = (objects: K8sObject[], policy = PROD): string[] => checkInvariants(objects, policy).map((p) => `${p.object}: ${p.message}`);

describe('checkInvariants', () => {
  it('accepts a spread, budgeted, autoscaled, monitored, pinned service', () => {
    expect(messages(service('contacts-svc'))).toEqual([]);
  });

  it('finds a PodDisruptionBudget that blocks drains, and a missing one', () => {
    const objects = service('contacts-svc').map((o) =>
      o.kind === 'PodDisruptionBudget' ? { ...o, spec: { minAvailable: 2, selector: { matchLabels: { app: 'contacts-svc' } } } } : o,
    );
    expect(messages(objects)).toEqual([expect.stringContaining('minAvailable 2 with 2 replica(s) can block node drains')]);
    expect(messages(service('contacts-svc').filter((o) => o.kind !== 'PodDisruptionBudget'))).toEqual([
      'Deployment/contacts-svc: no PodDisruptionBudget selects its pods',
    ]);
  });

  it('finds a Deployment that keeps spec.replicas under an HPA, and one replica under a PDB', () => {
    const objects = service('contacts-svc')
      .filter((o) => o.kind !== 'HorizontalPodAutoscaler')
      .map((o) => (o.kind === 'Deployment' ? { ...o, spec: { ...(o['spec'] as object), replicas: 1 } } : o));
    expect(messages(objects)).toEqual([expect.stringContaining('1 replica(s): a PodDisruptionBudget needs at least 2')]);
  });

  it('finds a headless Service whose port differs from the containerPort, and a gRPC port that disagrees with GRPC_PORT', () => {
    const objects = service('contacts-svc', 50061).map((o) =>
      o.kind === 'Deployment' ? JSON.parse(JSON.stringify(o).replace('"GRPC_PORT","value":"50061"', '"GRPC_PORT","value":"50051"')) : o,
    );
    expect(messages(objects)).toEqual([
      'Service/contacts-svc-headless: headless: port 50051 differs from the containerPort 50061 clients connect to',
      'Deployment/contacts-svc: GRPC_PORT 50051 differs from the grpc containerPort 50061',
    ]);
  });

  it('finds an unmonitored workload and an unpinned image', () => {
    const objects = service('contacts-svc')
      .filter((o) => o.kind !== 'PodMonitor')
      .map((o) => (o.kind === 'Deployment' ? JSON.parse(JSON.stringify(o).replace(':0.1.0', ':latest')) : o));
    expect(messages(objects)).toEqual(['Deployment/contacts-svc: no PodMonitor selects its pods', expect.stringContaining('is not pinned')]);
  });

  it('finds a gateway backend URL that is not the headless Service on the service’s gRPC port', () => {
    const gateway: K8sObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'gateway' },
      spec: {
        selector: { matchLabels: { app: 'gateway' } },
        template: {
          metadata: { labels: { app: 'gateway' } },
          spec: {
            topologySpreadConstraints: spread('gateway'),
            containers: [{ name: 'server', image: 'crm/gateway:1', env: [{ name: 'CONTACTS_GRPC_URL', value: 'dns:///contacts-svc-headless:50052' }] }],
          },
        },
      },
    };
    const objects = [...service('contacts-svc'), gateway];
    expect(messages(objects, { ...PROD, requireMonitoring: false }).filter((m) => m.includes('GRPC_URL'))).toEqual([
      'Deployment/gateway: CONTACTS_GRPC_URL: port 50052, but contacts-svc listens on 50051',
    ]);
  });
});

describe('selects and referencedSecrets', () => {
  it('an empty selector selects nothing; expressions are honoured', () => {
    expect(selects({}, { app: 'x' })).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'app', operator: 'In', values: ['x', 'y'] }] }, { app: 'y' })).toBe(true);
    expect(selects({ matchLabels: { app: 'x' } }, { app: 'y' })).toBe(false);
  });

  it('collects Secrets of pods, CloudNativePG roles and object-store credentials', () => {
    const objects: K8sObject[] = [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p' },
        spec: { containers: [{ env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 'a', key: 'k' } } }] }] },
      },
      {
        apiVersion: 'postgresql.cnpg.io/v1',
        kind: 'Cluster',
        metadata: { name: 'c' },
        spec: { managed: { roles: [{ name: 'r', passwordSecret: { name: 'b' } }] } },
      },
      {
        apiVersion: 'barmancloud.cnpg.io/v1',
        kind: 'ObjectStore',
        metadata: { name: 's' },
        spec: { configuration: { s3Credentials: { accessKeyId: { name: 'c', key: 'ID' } } } },
      },
    ];
    expect(referencedSecrets(objects)).toEqual(['a', 'b', 'c']);
  });
});
