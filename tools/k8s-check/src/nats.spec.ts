import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { SERVICES, findOne, isWorkload, k8sRoot, objectsIn, readJson, readRepoFile, type Workload } from './source.ts';

/**
 * components/nats: every service is a NATS user with exactly the permissions its code needs (the
 * rule of tools/dev/src/nats-auth.ts, which the local servers and the tests use), every password
 * reaches the server from the service's Secret, and the stream limits use only what
 * nats-server 2.9 (local development) knows.
 */

const conf = readRepoFile('deploy/k8s/components/nats/nats.conf');
const natsObjects = objectsIn(join(k8sRoot, 'components/nats/nats.yaml'));
const statefulSet = findOne(natsObjects, 'StatefulSet', 'nats') as Workload;
const natsEnv = statefulSet.spec.template.spec.containers.find((c) => c.name === 'nats')?.env ?? [];
const EVENT_STREAM = /export const EVENT_STREAM = '([^']+)'/.exec(readRepoFile('libs/platform/src/messaging/event.ts'))?.[1];

/** What each service does on NATS: the same table as SERVICE_NATS_ACCESS in tools/dev/src/nats-auth.ts. */
const ACCESS: Record<(typeof SERVICES)[number], { publishes: string[]; durables: string[]; subscribes: string[] }> = {
  'contacts-svc': { publishes: ['crm.contacts.>'], durables: [], subscribes: [] },
  'pipeline-svc': { publishes: ['crm.pipeline.>'], durables: [], subscribes: [] },
  'quotes-svc': { publishes: ['crm.quotes.>'], durables: [], subscribes: [] },
  'activities-svc': { publishes: ['crm.activities.>'], durables: [], subscribes: [] },
  'analytics-svc': { publishes: [], durables: ['analytics-svc'], subscribes: ['crm.>'] },
};

/** The permissions the rule gives a service (tools/dev/src/nats-auth.ts natsPermissions). */
function expectedPermissions(
  user: string,
  access: { publishes: string[]; durables: string[]; subscribes: string[] },
): { publish: string[]; subscribe: string[] } {
  const stream = EVENT_STREAM ?? 'CRM_EVENTS';
  return {
    publish: [
      ...access.publishes,
      '$JS.API.INFO',
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.STREAM.CREATE.${stream}`,
      `$JS.API.STREAM.UPDATE.${stream}`,
      ...access.durables.flatMap((d) => [
        `$JS.API.CONSUMER.INFO.${stream}.${d}`,
        `$JS.API.CONSUMER.CREATE.${stream}.${d}`,
        `$JS.API.CONSUMER.CREATE.${stream}.${d}.>`,
        `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${d}`,
        `$JS.API.CONSUMER.MSG.NEXT.${stream}.${d}`,
        `$JS.ACK.${stream}.${d}.>`,
        `$JS.ACK.*.*.${stream}.${d}.>`,
      ]),
    ],
    subscribe: [`_INBOX.${user}.>`, ...access.subscribes],
  };
}

interface ConfUser {
  user: string;
  passwordVariable: string;
  publish: string[];
  subscribe: string[];
}

/** The users of nats.conf (the block layout this file uses). */
function confUsers(): ConfUser[] {
  const quoted = (list: string): string[] => [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1] ?? '');
  const pattern = /user: (\S+)\s+password: \$(\w+)\s+permissions: \{\s+publish: \{\s+allow: \[([^\]]*)\]\s+\}\s+subscribe: \{\s+allow: \[([^\]]*)\]/g;
  return [...conf.matchAll(pattern)].map((m) => ({
    user: m[1] ?? '',
    passwordVariable: m[2] ?? '',
    publish: quoted(m[3] ?? ''),
    subscribe: quoted(m[4] ?? ''),
  }));
}

const passwordVariableOf = (user: string): string => `${user.toUpperCase().replace(/-/g, '_')}_NATS_PASSWORD`;

describe('components/nats', () => {
  const users = confUsers();

  it('has exactly one user per service plus the stream-config CronJob’s, and no other way in', () => {
    expect(users.map((u) => u.user).sort()).toEqual([...SERVICES, 'crm-stream-admin'].sort());
    expect(conf).not.toMatch(/no_auth_user|authorization\s*\{/);
  });

  it.each(SERVICES)('%s may do exactly what its code does: its subjects, the event stream, its own durable, its own inboxes', (service) => {
    const user = users.find((u) => u.user === service);
    const expected = expectedPermissions(service, ACCESS[service]);
    expect(user?.publish).toEqual(expected.publish);
    expect(user?.subscribe).toEqual(expected.subscribe);
    // nobody deletes or purges the stream
    expect(user?.publish.some((s) => /DELETE|PURGE/.test(s))).toBe(false);
  });

  it('the stream admin manages the event stream only', () => {
    const admin = users.find((u) => u.user === 'crm-stream-admin');
    expect(admin?.publish.every((s) => s.startsWith('$JS.API.'))).toBe(true);
    expect(admin?.publish.some((s) => /DELETE|PURGE|CONSUMER/.test(s))).toBe(false);
    expect(admin?.subscribe).toEqual(['_INBOX.crm-stream-admin.>']);
  });

  it('gets every password from the user’s Secret, and every variable of nats.conf from the environment', () => {
    for (const { user, passwordVariable } of users) {
      expect(passwordVariable).toBe(passwordVariableOf(user));
      expect(natsEnv.find((e) => e.name === passwordVariable)?.valueFrom?.secretKeyRef).toEqual({ name: `${user}-nats`, key: 'NATS_PASSWORD' });
    }
    const unquoted = conf.replace(/#.*$/gm, '').replace(/"[^"]*"/g, '');
    const variables = new Set([...unquoted.matchAll(/\$([A-Za-z_]\w*)/g)].map((m) => m[1]));
    for (const variable of variables) expect({ variable, provided: natsEnv.some((e) => e.name === variable) }).toEqual({ variable, provided: true });
  });

  it('runs the Prometheus exporter as a sidecar without readiness (it must never take a server out of the Service)', () => {
    const exporter = statefulSet.spec.template.spec.containers.find((c) => c.name === 'prom-exporter');
    expect(exporter?.ports?.map((p) => p.name)).toEqual(['prom-metrics']);
    expect(exporter?.readinessProbe).toBeUndefined();
    expect(exporter?.livenessProbe).toBeDefined();
  });

  describe('stream limits (stream-config.json, applied by the CronJob nats-stream-config)', () => {
    const stream = readJson<Record<string, unknown>>('deploy/k8s/components/nats/stream-config.json');
    // StreamConfig fields of nats-server 2.9; 2.10 added e.g. compression, first_seq,
    // subject_transform, metadata, consumer_limits: not to be relied on (local dev runs 2.9)
    const FIELDS_2_9 = [
      'name',
      'description',
      'subjects',
      'retention',
      'max_consumers',
      'max_msgs',
      'max_bytes',
      'max_age',
      'max_msgs_per_subject',
      'max_msg_size',
      'discard',
      'storage',
      'num_replicas',
      'no_ack',
      'duplicate_window',
      'placement',
      'mirror',
      'sources',
      'sealed',
      'deny_delete',
      'deny_purge',
      'allow_rollup_hdrs',
      'allow_direct',
      'mirror_direct',
      'republish',
    ];

    it('uses only fields nats-server 2.9 knows', () => {
      expect(Object.keys(stream).filter((k) => !FIELDS_2_9.includes(k))).toEqual([]);
    });

    it('is the services’ event stream, with their subjects and duplicate window, on every NATS server', () => {
      expect(stream['name']).toBe(EVENT_STREAM);
      expect(stream['subjects']).toEqual(['crm.>']);
      expect(stream['retention']).toBe('limits');
      expect(stream['storage']).toBe('file');
      expect(stream['duplicate_window']).toBe(120_000_000_000);
      expect(stream['num_replicas']).toBe(statefulSet.spec.replicas);
    });

    it('limits bytes below the servers’ file store, refuses instead of dropping when full, and never expires events by age', () => {
      const maxFileStore = /max_file_store: (\d+)GB/.exec(conf)?.[1];
      expect(Number(stream['max_bytes'])).toBeGreaterThan(0);
      expect(Number(stream['max_bytes'])).toBeLessThan(Number(maxFileStore) * 1e9);
      expect(stream['discard']).toBe('new');
      expect(stream['max_age']).toBe(0);
      expect(Number(stream['max_msg_size'])).toBeGreaterThan(0);
      // the alert on the stream's size uses the same limit
      expect(readRepoFile('deploy/k8s/components/monitoring/prometheus-rules.yaml')).toContain(`0.8 * ${String(stream['max_bytes'])}`);
    });

    it('is applied as the stream admin, from its Secret, with its own inbox prefix', () => {
      const cronJob = objectsIn(join(k8sRoot, 'components/nats/stream-config.yaml')).find((o) => o.kind === 'CronJob');
      const text = JSON.stringify(cronJob);
      expect(text).toContain('"name":"NATS_USER","value":"crm-stream-admin"');
      expect(text).toContain('"secretKeyRef":{"name":"crm-stream-admin-nats","key":"NATS_PASSWORD"}');
      expect(text).toContain('--inbox-prefix _INBOX.crm-stream-admin');
      expect(text).toContain('/etc/stream-config/stream-config.json');
    });
  });
});

describe('NATS clients', () => {
  it.each(SERVICES)('%s connects as its NATS user', (service) => {
    const deployment = findOne(objectsIn(join(k8sRoot, 'base', service, `${service}.yaml`)), 'Deployment', service);
    const env = deployment && isWorkload(deployment) ? (deployment.spec.template.spec.containers[0]?.env ?? []) : [];
    expect(env.find((e) => e.name === 'NATS_USER')?.value).toBe(service);
    expect(env.find((e) => e.name === 'NATS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: `${service}-nats`, key: 'NATS_PASSWORD' });
  });
});
