import type { K8sObject } from './render.ts';
import { describeObject, type Problem } from './validate.ts';

/**
 * Properties of a rendered overlay that no schema expresses: availability (spread, PDBs that never
 * block a drain, replicas or HPAs), monitoring coverage, references between objects (ConfigMaps,
 * ServiceAccounts, Service selectors and target ports), port consistency (the gRPC port in the
 * services, probes, Services, the gateway's backend URLs and the NetworkPolicies) and pinned
 * images. Pure functions over the objects `kubectl kustomize` produced.
 */

export interface OverlayPolicy {
  /** Every Deployment/StatefulSet must be selected by a PodMonitor whose port the pods have. */
  requireMonitoring: boolean;
  /** Smallest replica count (or HPA minReplicas) of a workload that has a PodDisruptionBudget. */
  minReplicasWithPdb: number;
  /** Every image has a tag other than latest, or a digest. */
  requirePinnedImages: boolean;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface ContainerPort {
  name?: string;
  containerPort: number;
}

interface Container {
  name: string;
  image?: string;
  ports?: ContainerPort[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string }; configMapKeyRef?: { name: string } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: { grpc?: { port: number } };
  livenessProbe?: { grpc?: { port: number } };
  readinessProbe?: { grpc?: { port: number } };
}

interface PodSpec {
  serviceAccountName?: string;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
  topologySpreadConstraints?: { topologyKey: string; labelSelector?: LabelSelector }[];
}

interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: PodSpec;
}

/** A workload and its pod template (Deployment, StatefulSet, or the job template of a CronJob). */
interface Workload {
  object: K8sObject;
  template: PodTemplate;
  replicas: number | undefined;
}

const spec = <T>(o: K8sObject): T => (o['spec'] ?? {}) as T;

export function selects(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined) return false;
  const l = labels ?? {};
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => l[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every((e) => {
    switch (e.operator) {
      case 'In':
        return l[e.key] !== undefined && (e.values ?? []).includes(l[e.key] as string);
      case 'NotIn':
        return l[e.key] === undefined || !(e.values ?? []).includes(l[e.key] as string);
      case 'Exists':
        return e.key in l;
      case 'DoesNotExist':
        return !(e.key in l);
      default:
        return false;
    }
  });
  const empty = Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
  return !empty && byLabels && byExpressions;
}

export function workloadsOf(objects: readonly K8sObject[]): Workload[] {
  return objects.flatMap((object): Workload[] => {
    if (object.kind === 'Deployment' || object.kind === 'StatefulSet') {
      const s = spec<{ replicas?: number; template: PodTemplate }>(object);
      return [{ object, template: s.template, replicas: s.replicas }];
    }
    if (object.kind === 'CronJob') {
      const s = spec<{ jobTemplate: { spec: { template: PodTemplate } } }>(object);
      return [{ object, template: s.jobTemplate.spec.template, replicas: undefined }];
    }
    return [];
  });
}

const containersOf = (pod: PodSpec): Container[] => [...pod.containers, ...(pod.initContainers ?? [])];

/** Names of the Secrets the objects reference (pods, CloudNativePG, Keycloak, the backup object store). */
export function referencedSecrets(objects: readonly K8sObject[]): string[] {
  const names = new Set<string>();
  const walk = (value: unknown, key: string): void => {
    if (Array.isArray(value)) return value.forEach((v) => walk(v, key));
    if (typeof value !== 'object' || value === null) return;
    const record = value as Record<string, unknown>;
    // secretKeyRef / secretRef (pods), passwordSecret / usernameSecret (CNPG, Keycloak), and
    // the { name, key } credential references of the ObjectStore.
    if (
      /^(secretKeyRef|secretRef|passwordSecret|usernameSecret|accessKeyId|secretAccessKey|region|sessionToken)$/.test(key) &&
      typeof record['name'] === 'string'
    ) {
      names.add(record['name']);
    }
    if (key === 'secret' && typeof record['secretName'] === 'string') names.add(record['secretName']);
    for (const [k, v] of Object.entries(record)) walk(v, k);
  };
  for (const object of objects) if (object.kind !== 'KeycloakRealmImport' && object.kind !== 'ConfigMap') walk(object['spec'], 'spec');
  return [...names].sort();
}

/** The gRPC backend URLs of the gateway: env `<NAME>_GRPC_URL` = `dns:///<service>:<port>`. */
function gatewayBackends(workloads: readonly Workload[]): { variable: string; value: string }[] {
  const gateway = workloads.find((w) => w.object.kind === 'Deployment' && w.object.metadata.name === 'gateway');
  return (gateway?.template.spec.containers[0]?.env ?? []).filter((e) => e.name.endsWith('_GRPC_URL')).map((e) => ({ variable: e.name, value: e.value ?? '' }));
}

export function checkInvariants(objects: readonly K8sObject[], policy: OverlayPolicy): Problem[] {
  const problems: Problem[] = [];
  const problem = (o: K8sObject | string, message: string): void => {
    problems.push({ object: typeof o === 'string' ? o : describeObject(o), message });
  };
  const byKind = (kind: string): K8sObject[] => objects.filter((o) => o.kind === kind);
  const workloads = workloadsOf(objects);
  const scaled = workloads.filter((w) => w.object.kind !== 'CronJob');
  const pdbs = byKind('PodDisruptionBudget');
  const hpas = byKind('HorizontalPodAutoscaler');
  const podMonitors = byKind('PodMonitor');
  const names = (kind: string): Set<string> => new Set(byKind(kind).map((o) => o.metadata.name));
  const configMaps = names('ConfigMap');
  const serviceAccounts = names('ServiceAccount');

  // Availability: spread, PDBs, replicas.
  for (const w of scaled) {
    const labels = w.template.metadata?.labels;
    const spread = w.template.spec.topologySpreadConstraints ?? [];
    if (spread.length === 0) problem(w.object, 'no topologySpreadConstraints');
    for (const c of spread) if (!selects(c.labelSelector, labels)) problem(w.object, `topology spread on ${c.topologyKey} does not select the pods`);
    const hpa = hpas.find((h) => spec<{ scaleTargetRef: { kind: string; name: string } }>(h).scaleTargetRef.name === w.object.metadata.name);
    const replicas = hpa ? (spec<{ minReplicas?: number }>(hpa).minReplicas ?? 1) : (w.replicas ?? 1);
    const pdb = pdbs.find((p) => selects(spec<{ selector?: LabelSelector }>(p).selector, labels));
    if (pdb === undefined) {
      problem(w.object, 'no PodDisruptionBudget selects its pods');
      continue;
    }
    const budget = spec<{ minAvailable?: number | string; maxUnavailable?: number | string }>(pdb);
    if (budget.minAvailable !== undefined && (typeof budget.minAvailable === 'string' || budget.minAvailable >= replicas)) {
      problem(pdb, `minAvailable ${budget.minAvailable} with ${replicas} replica(s) can block node drains: use maxUnavailable`);
    }
    if (budget.maxUnavailable !== undefined && (budget.maxUnavailable === 0 || budget.maxUnavailable === '0%'))
      problem(pdb, 'maxUnavailable 0 blocks every node drain');
    if (replicas < policy.minReplicasWithPdb)
      problem(w.object, `${replicas} replica(s): a PodDisruptionBudget needs at least ${policy.minReplicasWithPdb} for a drain without an outage`);
  }

  // HPAs: existing CPU-scaled targets whose replicas they own.
  for (const h of hpas) {
    const s = spec<{
      scaleTargetRef: { kind: string; name: string };
      minReplicas?: number;
      maxReplicas: number;
      metrics?: { type: string; resource?: { name: string } }[];
    }>(h);
    const target = scaled.find((w) => w.object.kind === s.scaleTargetRef.kind && w.object.metadata.name === s.scaleTargetRef.name);
    if (target === undefined) problem(h, `targets ${s.scaleTargetRef.kind}/${s.scaleTargetRef.name}, which is not rendered`);
    else if (target.replicas !== undefined) problem(target.object, 'has spec.replicas while an HPA scales it: every apply would reset the count');
    if ((s.minReplicas ?? 1) < 2) problem(h, 'minReplicas below 2');
    if (s.maxReplicas <= (s.minReplicas ?? 1)) problem(h, 'maxReplicas not above minReplicas');
    if (!(s.metrics ?? []).some((m) => m.type === 'Resource' && m.resource?.name === 'cpu')) problem(h, 'does not scale on CPU');
  }

  // Monitoring coverage.
  if (policy.requireMonitoring) {
    for (const w of scaled) {
      const monitor = podMonitors.find((m) => selects(spec<{ selector?: LabelSelector }>(m).selector, w.template.metadata?.labels));
      if (monitor === undefined) {
        problem(w.object, 'no PodMonitor selects its pods');
        continue;
      }
      const portNames = new Set(w.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const endpoint of spec<{ podMetricsEndpoints?: { port?: string }[] }>(monitor).podMetricsEndpoints ?? []) {
        if (endpoint.port !== undefined && !portNames.has(endpoint.port))
          problem(monitor, `port "${endpoint.port}" is not a port of ${describeObject(w.object)}`);
      }
    }
  }

  // References.
  for (const w of workloads) {
    const pod = w.template.spec;
    if (pod.serviceAccountName !== undefined && !serviceAccounts.has(pod.serviceAccountName))
      problem(w.object, `ServiceAccount ${pod.serviceAccountName} is not rendered`);
    for (const c of containersOf(pod)) {
      for (const from of c.envFrom ?? [])
        if (from.configMapRef && !configMaps.has(from.configMapRef.name)) problem(w.object, `ConfigMap ${from.configMapRef.name} is not rendered`);
      for (const e of c.env ?? [])
        if (e.valueFrom?.configMapKeyRef && !configMaps.has(e.valueFrom.configMapKeyRef.name))
          problem(w.object, `ConfigMap ${e.valueFrom.configMapKeyRef.name} is not rendered`);
    }
    for (const v of pod.volumes ?? [])
      if (v.configMap && !configMaps.has(v.configMap.name)) problem(w.object, `ConfigMap ${v.configMap.name} (volume ${v.name}) is not rendered`);
  }
  for (const service of byKind('Service')) {
    const s = spec<{ selector?: Record<string, string>; clusterIP?: string; ports?: { name?: string; port: number; targetPort?: number | string }[] }>(service);
    if (s.selector === undefined) continue;
    const pods = scaled.filter((w) => selects({ matchLabels: s.selector }, w.template.metadata?.labels));
    if (pods.length === 0) {
      problem(service, 'its selector matches no pod template');
      continue;
    }
    for (const port of s.ports ?? []) {
      for (const w of pods) {
        const ports = w.template.spec.containers.flatMap((c) => c.ports ?? []);
        const target =
          typeof port.targetPort === 'string'
            ? ports.find((p) => p.name === port.targetPort)
            : ports.find((p) => p.containerPort === (port.targetPort ?? port.port));
        if (target === undefined) problem(service, `targetPort ${port.targetPort ?? port.port} is not a port of ${describeObject(w.object)}`);
        else if (s.clusterIP === 'None' && target.containerPort !== port.port)
          problem(service, `headless: port ${port.port} differs from the containerPort ${target.containerPort} clients connect to`);
      }
    }
  }

  // Ports: one gRPC port per service everywhere it appears.
  const grpcPortOf = new Map<string, number>();
  for (const w of scaled) {
    const c = w.template.spec.containers[0];
    if (c === undefined) continue;
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    const grpc = c.ports?.find((p) => p.name === 'grpc');
    if (grpc !== undefined) {
      grpcPortOf.set(w.object.metadata.name, grpc.containerPort);
      if (env['GRPC_PORT'] !== String(grpc.containerPort))
        problem(w.object, `GRPC_PORT ${env['GRPC_PORT']} differs from the grpc containerPort ${grpc.containerPort}`);
      for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe])
        if (probe?.grpc && probe.grpc.port !== grpc.containerPort)
          problem(w.object, `a gRPC probe checks port ${probe.grpc.port}, the server listens on ${grpc.containerPort}`);
    }
    const ops = c.ports?.find((p) => p.name === 'ops');
    if (ops !== undefined && env['OPS_PORT'] !== String(ops.containerPort))
      problem(w.object, `OPS_PORT ${env['OPS_PORT']} differs from the ops containerPort ${ops.containerPort}`);
  }
  const services = new Map(byKind('Service').map((s) => [s.metadata.name, s]));
  for (const { variable, value } of gatewayBackends(workloads)) {
    const match = /^dns:\/\/\/([a-z0-9-]+):(\d+)$/.exec(value);
    if (match === null) {
      problem('Deployment/gateway', `${variable}=${value} is not dns:///<headless service>:<port>`);
      continue;
    }
    const [, name, port] = match as unknown as [string, string, string];
    const service = services.get(name);
    if (service === undefined || spec<{ clusterIP?: string }>(service).clusterIP !== 'None') {
      problem('Deployment/gateway', `${variable}: ${name} is not a headless Service`);
      continue;
    }
    const app = spec<{ selector?: Record<string, string> }>(service).selector?.['app'] ?? '';
    if (grpcPortOf.get(app) !== Number(port)) problem('Deployment/gateway', `${variable}: port ${port}, but ${app} listens on ${grpcPortOf.get(app)}`);
  }
  const policies = new Map(byKind('NetworkPolicy').map((p) => [p.metadata.name, p]));
  const ingressPorts = (name: string): number[] =>
    (spec<{ ingress?: { ports?: { port?: number }[] }[] }>(policies.get(name) ?? ({} as K8sObject)).ingress ?? []).flatMap((r) =>
      (r.ports ?? []).map((p) => p.port ?? 0),
    );
  if (policies.has('services-grpc-from-gateway')) {
    for (const [app, port] of grpcPortOf)
      if (!ingressPorts('services-grpc-from-gateway').includes(port))
        problem('NetworkPolicy/services-grpc-from-gateway', `does not admit ${app}'s gRPC port ${port}`);
  }
  if (policies.has('metrics-from-monitoring')) {
    for (const w of scaled) {
      const ops = w.template.spec.containers[0]?.ports?.find((p) => p.name === 'ops');
      if (ops !== undefined && !ingressPorts('metrics-from-monitoring').includes(ops.containerPort))
        problem('NetworkPolicy/metrics-from-monitoring', `does not admit ${describeObject(w.object)}'s ops port ${ops.containerPort}`);
    }
  }

  // Images.
  if (policy.requirePinnedImages) {
    for (const w of workloads)
      for (const c of containersOf(w.template.spec)) {
        const image = c.image ?? '';
        const tag = image.includes('@sha256:') ? 'digest' : /:([^/:]+)$/.exec(image)?.[1];
        if (tag === undefined || tag === 'latest') problem(w.object, `image ${image} is not pinned (tag or digest)`);
      }
  }
  return problems;
}
