import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { service as healthService } from 'grpc-health-check';
import pg from 'pg';
import { connectNats, createLogger, ensureEventStream, EVENT_STREAM, insecure, retryDelayMs, type ServiceHandle } from '@crm/platform';
import { POSTGRES_ADMIN_URL, serviceEnv, startPostgresProxy, startTestInfra, waitFor, type TcpProxy, type TestInfra } from '@crm/testing';
import { ANALYTICS_CONSUMER, configSchema, createAnalyticsService } from '../src/app.ts';
import { drained, expectedState, history, metricValue, projectedState, publishChange, seededRandom, type Change } from './support/history.ts';

/*
 * analytics-svc losing its own database, for real: its DATABASE_URL goes through a TCP proxy the
 * test cuts (every connection reset, new ones refused) and restores, and its backends are killed
 * mid-transaction with pg_terminate_backend. Nothing may be dropped, the process must not exit,
 * and afterwards the projection must equal the stream. Backoffs are shortened so each fault takes
 * seconds, not minutes.
 */

const RETRY = { initialDelayMs: 10, maxDelayMs: 100 };
/** Deliveries after which the consumer used to terminate a failing event as poison. */
const OLD_MAX_DELIVER = 10;

let infra: TestInfra;
let proxy: TcpProxy;
let analytics: ServiceHandle;
let nc: NatsConnection;
let admin: pg.Client;
const org = '0190b4a0-0000-7000-8000-00000000a11c';
const published: Change[] = [];

beforeAll(async () => {
  infra = await startTestInfra();
  proxy = await startPostgresProxy(infra.databaseUrl);
  nc = await connectNats(infra.nats.url, 'recovery-test', createLogger('recovery-test', 'silent'), infra.natsAuth);
  // the durable as an earlier version created it: with a delivery limit
  const jsm = await jetstreamManager(nc);
  await ensureEventStream(jsm);
  await jsm.consumers.add(EVENT_STREAM, {
    durable_name: ANALYTICS_CONSUMER,
    filter_subject: 'crm.>',
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_deliver: OLD_MAX_DELIVER,
  });
  analytics = await createAnalyticsService(
    configSchema.parse({
      ...serviceEnv(infra),
      DATABASE_URL: proxy.url(infra.databaseUrl),
      CONSUMER_RETRY_INITIAL_MS: String(RETRY.initialDelayMs),
      CONSUMER_RETRY_MAX_MS: String(RETRY.maxDelayMs),
      DB_CONNECT_TIMEOUT_MS: '2000',
    }),
  );
  admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  await nc?.drain();
  await analytics?.close();
  await proxy?.close();
  await infra?.close();
});

async function publish(changes: readonly Change[]): Promise<void> {
  for (const change of changes) {
    await publishChange(nc, org, change);
    published.push(change);
  }
}

/** `/readyz` of analytics' ops server: its HTTP status and the result of each check. */
async function readiness(): Promise<{ status: number; checks: Record<string, boolean> }> {
  const res = await fetch(`http://127.0.0.1:${analytics.opsPort}/readyz`);
  return { status: res.status, checks: ((await res.json()) as { checks: Record<string, boolean> }).checks };
}

/** grpc.health.v1 status of `service` on analytics' gRPC port (e.g. SERVING, NOT_SERVING). */
function grpcHealth(service: string): Promise<string> {
  const Ctor = makeGenericClientConstructor(healthService, 'Health');
  const client = new Ctor(`127.0.0.1:${analytics.grpcPort}`, insecure()) as unknown as {
    check(req: { service: string }, opts: { deadline: Date }, cb: (err: ServiceError | null, res: { status: string | number }) => void): void;
    close(): void;
  };
  return new Promise<string>((resolve, reject) =>
    client.check({ service }, { deadline: new Date(Date.now() + 2000) }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(String(res.status));
    }),
  );
}

/** The projection of `org` equals what every event published so far describes: rows, overview and counters. */
async function expectProjectionEqualsStream(): Promise<void> {
  const want = expectedState(published);
  const got = await projectedState(analytics.orm, org);
  expect(Object.keys(got.companies).length).toBe(Object.keys(want.companies).length);
  expect(got.companies).toEqual(want.companies);
  expect(got.contacts).toEqual(want.contacts);
  expect(got.overview).toEqual(want.overview);
  expect(got.recount).toEqual(got.overview.companiesByIndustry);
}

describe('analytics consumer when its database goes away', () => {
  it('lifts the delivery limit of a durable created with one, so no retry can end as poison', async () => {
    const info = await (await jetstreamManager(nc)).consumers.info(EVENT_STREAM, ANALYTICS_CONSUMER);
    expect(info.config.max_deliver).toBe(-1);
  });

  it('projects every event after an outage longer than the whole old retry budget, unready meanwhile', async () => {
    const random = seededRandom(6);
    await publish(history(20, 10, random));
    await drained(nc, ANALYTICS_CONSUMER);
    expect((await readiness()).status).toBe(200);

    await proxy.cut();
    const cutAt = Date.now();
    const failedBefore = await metricValue(analytics.metrics, 'consumer_messages_total', { outcome: 'retried' });
    await publish(history(30, 15, random));

    await waitFor('the consumer to report itself unready', async () => {
      const { status, checks } = await readiness();
      return status === 503 && checks[`consumer:${ANALYTICS_CONSUMER}`] === false;
    });
    expect(await grpcHealth(`consumer:${ANALYTICS_CONSUMER}`)).toBe('NOT_SERVING');
    expect(await grpcHealth('')).toBe('SERVING'); // the read side is not taken down with it
    // three times the attempts after which the event used to be dropped
    await waitFor(
      `${3 * OLD_MAX_DELIVER} failed attempts on the database`,
      async () => (await metricValue(analytics.metrics, 'consumer_messages_total', { outcome: 'retried' })) - failedBefore >= 3 * OLD_MAX_DELIVER,
      20_000,
    );
    const oldBudgetMs = Array.from({ length: OLD_MAX_DELIVER - 1 }, (_, i) => retryDelayMs(i + 1, RETRY)).reduce((a, b) => a + b, 0);
    expect(Date.now() - cutAt).toBeGreaterThan(oldBudgetMs);

    proxy.restore();
    await drained(nc, ANALYTICS_CONSUMER, 20_000);
    await waitFor('the consumer to report itself ready again', async () => (await readiness()).status === 200);
    expect(await grpcHealth(`consumer:${ANALYTICS_CONSUMER}`)).toBe('SERVING');
    expect(await metricValue(analytics.metrics, 'consumer_poison_messages_total')).toBe(0);
    await expectProjectionEqualsStream();
  });

  it('recovers from connections killed inside transactions, more often than its pool has connections', async () => {
    const database = new URL(infra.databaseUrl).pathname.slice(1);
    const random = seededRandom(7);
    let killedInTransaction = 0;
    let killing = true;
    // keeps events coming while the killer works, so there is always a transaction to kill, but
    // never far ahead of the consumer (the test waits for all of them afterwards)
    const jsm = await jetstreamManager(nc);
    const publisher = (async () => {
      while (killing) {
        await publish(history(5, 3, random));
        await waitFor(
          'the consumer to catch up',
          async () => !killing || (await jsm.consumers.info(EVENT_STREAM, ANALYTICS_CONSUMER)).num_pending < 20,
          30_000,
          10,
        );
      }
    })();
    try {
      await waitFor(
        'analytics backends to be killed inside a transaction 30 times',
        async () => {
          const { rows } = await admin.query<{ killed: boolean }>(
            `select pg_terminate_backend(pid) as killed from pg_stat_activity
              where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend' and xact_start is not null`,
            [database],
          );
          killedInTransaction += rows.filter((r) => r.killed).length;
          return killedInTransaction >= 30; // the pool has 10 connections: each used to lose one for good
        },
        30_000,
        25, // the killer's pace, not a synchronization
      );
    } finally {
      killing = false;
      await publisher;
    }
    expect(killedInTransaction).toBeGreaterThanOrEqual(30);

    await drained(nc, ANALYTICS_CONSUMER, 20_000);
    expect(await metricValue(analytics.metrics, 'consumer_poison_messages_total')).toBe(0);
    await expectProjectionEqualsStream();
    expect((await readiness()).status).toBe(200);
  });
});
