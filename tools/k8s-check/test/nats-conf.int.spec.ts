import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { findNatsServer, freePort } from '@crm/dev/infra';
import { repoRoot } from '../src/source.ts';

/**
 * The Kubernetes nats.conf (deploy/k8s/components/nats) on a real nats-server: it starts with
 * JetStream enabled for the account, and each service user can do what its code does — ensure
 * the event stream, publish its own events, create, pull and ack its own durable — and nothing
 * else. One server (the cluster block is left out); the JetStream API calls are the ones
 * libs/platform/src/messaging makes, through the same client library.
 */

const STREAM = 'CRM_EVENTS';
const USERS = ['contacts-svc', 'pipeline-svc', 'quotes-svc', 'activities-svc', 'analytics-svc', 'crm-stream-admin'];
const password = (user: string): string => `p${user.replace(/-/g, '')}0test`;

/** The nats-server binary (`@crm/dev/infra`'s search: PATH, /usr/sbin, /usr/local/bin). */
function natsServerBinary(): string {
  const found = findNatsServer();
  if (found === undefined) throw new Error('nats-server not found: apt-get install -y nats-server');
  return found;
}

let dir: string;
let server: ChildProcess;
let url: string;
let log = '';
const connections: NatsConnection[] = [];

async function connectAs(user: string): Promise<NatsConnection> {
  // the platform's inbox prefix: _INBOX.<user> (replies and pulled messages)
  const nc = await connect({ servers: url, user, pass: password(user), inboxPrefix: `_INBOX.${user}`, reconnect: false });
  connections.push(nc);
  return nc;
}

/** Resolves to the error message of `action`, or to "allowed". */
const outcome = (action: () => Promise<unknown>): Promise<string> =>
  action().then(
    () => 'allowed',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-nats-conf-'));
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  const conf = readFileSync(join(repoRoot, 'deploy/k8s/components/nats/nats.conf'), 'utf8')
    .replace(/\ncluster \{[\s\S]*?\n\}\n/, '\n')
    .replace(/^listen: .*$/m, `listen: 127.0.0.1:${port}`)
    .replace(/^http: .*$/m, '')
    .replace(/^pid_file: .*$/m, '')
    .replace(/store_dir: \/data/, `store_dir: ${join(dir, 'js')}`);
  expect(conf).not.toContain('cluster {');
  writeFileSync(join(dir, 'nats.conf'), conf);
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', POD_NAME: 'nats-test' };
  for (const user of USERS) env[`${user.toUpperCase().replace(/-/g, '_')}_NATS_PASSWORD`] = password(user);
  server = spawn(natsServerBinary(), ['-c', join(dir, 'nats.conf')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  server.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  // ready when its log says so; an exit or 10 s without it fails the suite with the log
  const started = server;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      started.stderr?.off('data', check);
      started.stdout?.off('data', check);
      started.off('exit', exited);
    };
    const check = () => {
      if (!/Server is ready/.test(log)) return;
      done();
      resolve();
    };
    const exited = (code: number | null) => {
      done();
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`nats-server did not start:\n${log}`));
    }, 10_000);
    started.stderr?.on('data', check);
    started.stdout?.on('data', check);
    started.once('exit', exited);
    check();
  });
});

afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('deploy/k8s/components/nats/nats.conf on nats-server', () => {
  it('starts with JetStream for the account (its limits fit the server)', () => {
    expect(log).not.toMatch(/\[(FTL|ERR)\]/);
  });

  it('lets contacts-svc ensure the event stream and publish its own events, and nothing else', async () => {
    const nc = await connectAs('contacts-svc');
    const jsm = await jetstreamManager(nc);
    // ensureEventStream: info → add when missing → update subjects and duplicate window
    if ((await outcome(() => jsm.streams.info(STREAM))) !== 'allowed') {
      await jsm.streams.add({ name: STREAM, subjects: ['crm.>'], num_replicas: 1, duplicate_window: 120_000_000_000 });
    }
    await jsm.streams.update(STREAM, { subjects: ['crm.>'], duplicate_window: 120_000_000_000 });
    const js = jetstream(nc);
    expect((await js.publish('crm.contacts.company.created', 'x', { msgID: 'e1' })).seq).toBeGreaterThan(0);
    expect(await outcome(() => js.publish('crm.pipeline.opportunity.won', 'x', { timeout: 2000 }))).toMatch(/permissions violation/i);
    expect(await outcome(() => jsm.streams.delete(STREAM))).toMatch(/permissions violation/i);
    expect(await outcome(() => jsm.streams.purge(STREAM))).toMatch(/permissions violation/i);
    expect(await outcome(() => jsm.consumers.add(STREAM, { durable_name: 'contacts-svc', ack_policy: AckPolicy.Explicit }))).toMatch(/permissions violation/i);
  });

  it('lets analytics-svc create, pull and ack its own durable, and not another one or the events of others', async () => {
    const nc = await connectAs('analytics-svc');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.update(STREAM, { subjects: ['crm.>'], duplicate_window: 120_000_000_000 });
    // ensureDurableConsumer: info → add when missing
    if ((await outcome(() => jsm.consumers.info(STREAM, 'analytics-svc'))) !== 'allowed') {
      await jsm.consumers.add(STREAM, {
        durable_name: 'analytics-svc',
        filter_subject: 'crm.>',
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
    }
    const consumer = await jetstream(nc).consumers.get(STREAM, 'analytics-svc');
    const message = await consumer.next({ expires: 5000 });
    expect(message?.subject).toBe('crm.contacts.company.created');
    expect(await message?.ackAck()).toBe(true);
    expect(await outcome(() => jsm.consumers.add(STREAM, { durable_name: 'other', ack_policy: AckPolicy.Explicit }))).toMatch(/permissions violation/i);
    expect(await outcome(() => jetstream(nc).publish('crm.analytics.x', 'x', { timeout: 2000 }))).toMatch(/permissions violation/i);
  });

  it('lets the stream admin apply the stream limits of stream-config.json', async () => {
    const nc = await connectAs('crm-stream-admin');
    const jsm = await jetstreamManager(nc);
    const {
      name,
      num_replicas: _replicas,
      ...limits
    } = JSON.parse(readFileSync(join(repoRoot, 'deploy/k8s/components/nats/stream-config.json'), 'utf8')) as Record<string, unknown>;
    const info = await jsm.streams.update(String(name), limits);
    expect(info.config.max_bytes).toBe(limits['max_bytes']);
    expect(info.config.discard).toBe('new');
  });

  it('refuses a wrong password', async () => {
    expect(await outcome(() => connect({ servers: url, user: 'contacts-svc', pass: 'pwrong', reconnect: false }))).toMatch(/authorization/i);
  });
});
