import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { APPS, kustomizationAt, objects, readRepoFile, repoRoot, rel, selects, workloads, type K8sObject } from './source.ts';

/**
 * components/monitoring: a PodMonitor for every workload on a port it has, alert rules on what
 * the issue asks for (outbox age and backlog, consumer lag, poison messages, 5xx rate, p99
 * latency), and every CRM metric the rules and the dashboard use is one the code exports.
 */

const monitoring = objects.filter((o) => rel(o.file).startsWith('deploy/k8s/components/monitoring/')).map((o) => o.object);
const podMonitors = monitoring.filter((o) => o.kind === 'PodMonitor');
const rules = monitoring.find((o) => o.kind === 'PrometheusRule');

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const alertRules: Rule[] = ((rules?.spec as { groups?: { rules: Rule[] }[] } | undefined)?.groups ?? []).flatMap((g) => g.rules);

const dashboardFile = 'deploy/k8s/components/monitoring/dashboards/crm-overview.json';
const dashboard = JSON.parse(readRepoFile(dashboardFile)) as {
  uid: string;
  title: string;
  templating: { list: { name: string; type: string }[] };
  panels: { type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }[];
};
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** Source files of the apps and the platform (not specs): where metrics are declared. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === 'node_modules' || entry === 'test' ? [] : sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.spec.ts') ? [path] : [];
  });
}

/** Metric families the code declares with prom-client (`new Counter|Gauge|Histogram|Summary({ name: '…' })`), histograms with their series. */
function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  const files = [
    ...sourceFiles(join(repoRoot, 'libs/platform/src')),
    ...readdirSync(join(repoRoot, 'apps')).flatMap((app) => sourceFiles(join(repoRoot, 'apps', app, 'src'))),
  ];
  for (const file of files) {
    for (const m of readFileSync(file, 'utf8').matchAll(/new (Counter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\{\s*name:\s*'([a-zA-Z_:][a-zA-Z0-9_:]*)'/g)) {
      const [, type, name] = m as unknown as [string, string, string];
      names.add(name);
      if (type === 'Histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(`${name}${suffix}`);
      if (type === 'Summary') for (const suffix of ['_count', '_sum']) names.add(`${name}${suffix}`);
    }
  }
  return names;
}

/** Prefixes of the metric families the CRM code exports (the rest come from exporters, prom-client defaults, Prometheus). */
const CRM_PREFIXES = ['http_server_', 'grpc_server_', 'outbox_', 'consumer_', 'auth_'];

/** CRM metric names in a PromQL expression: label matchers and grouping clauses (label names) removed first. */
const metricNamesIn = (expr: string): string[] =>
  [
    ...expr
      .replace(/\{[^}]*\}/g, '')
      .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
      .matchAll(/\b([a-z_:][a-z0-9_:]*)\b/g),
  ]
    .map((m) => m[1] ?? '')
    .filter((n) => CRM_PREFIXES.some((p) => n.startsWith(p)));

describe('components/monitoring', () => {
  it('is part of the prod overlay', () => {
    expect(kustomizationAt('deploy/k8s/overlays/prod')?.components).toContain('../../components/monitoring');
  });

  it.each(workloads.map((w) => [`${w.workload.kind}/${w.workload.metadata.name}`, w.workload] as const))(
    '%s is scraped by a PodMonitor on one of its ports',
    (_name, workload) => {
      const labels = workload.spec.template.metadata?.labels;
      const monitor = podMonitors.find((m) => selects((m.spec as { selector?: { matchLabels?: Record<string, string> } }).selector, labels));
      expect(monitor).toBeDefined();
      const ports = new Set(workload.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const endpoint of (monitor?.spec as { podMetricsEndpoints?: { port?: string; path?: string }[] } | undefined)?.podMetricsEndpoints ?? []) {
        expect(ports.has(endpoint.port)).toBe(true);
      }
    },
  );

  it('every app is scraped on its ops port at /metrics, with its app label on the series', () => {
    for (const app of APPS) {
      const monitor = podMonitors.find((m) => m.metadata.name === app) as (K8sObject & { spec: Record<string, unknown> }) | undefined;
      expect(monitor?.spec).toMatchObject({
        selector: { matchLabels: { app } },
        podMetricsEndpoints: [{ port: 'ops', path: '/metrics', relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_label_app'], targetLabel: 'app' }] }],
      });
    }
  });

  it('PostgreSQL, Keycloak and the collector are scraped too', () => {
    expect(podMonitors.map((m) => m.metadata.name)).toEqual(expect.arrayContaining(['crm-db', 'keycloak', 'nats', 'otel-collector']));
  });

  describe('alert rules (PrometheusRule crm)', () => {
    const byMetric = (pattern: RegExp): Rule[] => alertRules.filter((r) => pattern.test(r.expr));

    it('alert on outbox age and backlog, consumer lag, poison messages, the 5xx rate and the p99 latency', () => {
      expect(byMetric(/outbox_oldest_age_seconds/).length).toBeGreaterThan(0);
      expect(byMetric(/outbox_backlog/).length).toBeGreaterThan(0);
      expect(byMetric(/consumer_pending_messages/).length).toBeGreaterThan(0);
      expect(byMetric(/consumer_poison_messages_total/).length).toBeGreaterThan(0);
      expect(byMetric(/http_server_request_duration_seconds_count\{[^}]*status=~"5\.\."/).length).toBeGreaterThan(0);
      expect(byMetric(/histogram_quantile\(0\.99,[\s\S]*http_server_request_duration_seconds_bucket/).length).toBeGreaterThan(0);
    });

    it('every rule has a unique name, a severity and a summary and description', () => {
      const names = alertRules.map((r) => r.alert);
      expect(new Set(names).size).toBe(names.length);
      for (const rule of alertRules) {
        expect({ alert: rule.alert, severity: ['critical', 'warning', 'info'].includes(rule.labels?.['severity'] ?? '') }).toEqual({
          alert: rule.alert,
          severity: true,
        });
        expect({ alert: rule.alert, summary: Boolean(rule.annotations?.['summary']), description: Boolean(rule.annotations?.['description']) }).toEqual({
          alert: rule.alert,
          summary: true,
          description: true,
        });
      }
    });
  });

  it('the rules and the dashboard use only CRM metrics the code exports', () => {
    const exported = exportedMetrics();
    expect(exported.has('http_server_request_duration_seconds_bucket')).toBe(true);
    expect(exported.has('consumer_unhandled_events_total')).toBe(true);
    const unknown = [...alertRules.map((r) => r.expr), ...dashboardExprs].flatMap(metricNamesIn).filter((name) => !exported.has(name));
    expect([...new Set(unknown)]).toEqual([]);
  });

  describe('Grafana dashboard', () => {
    it('is a ConfigMap with the grafana_dashboard label, from dashboards/*.json, under a stable name', () => {
      const generator = (kustomizationAt('deploy/k8s/components/monitoring')?.configMapGenerator ?? [])[0] as
        { name: string; files?: string[]; options?: { labels?: Record<string, string>; disableNameSuffixHash?: boolean } } | undefined;
      expect(generator?.files).toEqual(['dashboards/crm-overview.json']);
      expect(generator?.options?.labels).toEqual({ grafana_dashboard: '1' });
      expect(generator?.options?.disableNameSuffixHash).toBe(true);
    });

    it('selects its data source and namespace by variables, and every panel queries through them', () => {
      expect(dashboard.uid).toBe('crm-overview');
      expect(dashboard.templating.list.map((v) => `${v.name}:${v.type}`)).toEqual(['datasource:datasource', 'namespace:query']);
      const panels = dashboard.panels.filter((p) => p.type !== 'row');
      expect(panels.length).toBeGreaterThan(10);
      for (const panel of panels) {
        expect({ panel: panel.title, datasource: panel.datasource?.uid }).toEqual({ panel: panel.title, datasource: '${datasource}' });
        expect((panel.targets ?? []).length).toBeGreaterThan(0);
        for (const target of panel.targets ?? []) if (metricNamesIn(target.expr).length > 0) expect(target.expr).toContain('namespace="$namespace"');
      }
    });
  });
});
