import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { pino } from 'pino';
import { contactsV1 } from '@crm/contracts';
import {
  callUnary,
  connectNats,
  createLogger,
  insecure,
  newId,
  openDatabase,
  OutboxMessage,
  OutboxRelay,
  PlatformMetrics,
  platformMessagingMigration,
  type Orm,
  type ServiceHandle,
} from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startPostgresProxy, startTestInfra, waitFor, type TcpProxy, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';

/*
 * The outbox relay when Postgres or NATS goes away, for real: contacts-svc reaches Postgres through
 * a TCP proxy the test cuts and restores. Polling is set to a minute, so an event published
 * within seconds can only have been woken by NOTIFY — that is, by a LISTEN that came back.
 */

const POLL_MS = 60_000;

let infra: TestInfra;
let proxy: TcpProxy;
let contacts: ServiceHandle;
let companies: contactsV1.CompanyServiceClient;
let direct: pg.Client;

beforeAll(async () => {
  infra = await startTestInfra();
  proxy = await startPostgresProxy(infra.databaseUrl);
  contacts = await createContactsService(
    configSchema.parse({
      ...serviceEnv(infra),
      DATABASE_URL: proxy.url(infra.databaseUrl),
      OUTBOX_POLL_INTERVAL_MS: String(POLL_MS),
      OUTBOX_RETRY_MAX_MS: '200',
      DB_CONNECT_TIMEOUT_MS: '1000',
    }),
  );
  companies = new contactsV1.CompanyServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
  direct = new pg.Client({ connectionString: infra.databaseUrl }); // the test's own way in, never cut
  await direct.connect();
});

afterAll(async () => {
  companies?.close();
  await direct?.end();
  await contacts?.close();
  await proxy?.close();
  await infra?.close();
});

async function createCompany(name: string): Promise<string> {
  const res = await asAdminOf('acme', () =>
    callUnary(companies, companies.createCompany, { company: contactsV1.Company.fromPartial({ name, industry: 'relay' }) }),
  );
  return res.company!.id;
}

/** Waits until the outbox rows of `aggregateId` are published (JetStream acknowledged them), well before a poll could. */
async function published(aggregateId: string, timeoutMs = 5000): Promise<void> {
  await waitFor(
    `the event of ${aggregateId} to be published`,
    async () => {
      const { rows } = await direct.query<{ pending: string; total: string }>(
        'select count(*) filter (where published_at is null) as pending, count(*) as total from contacts.outbox where aggregate_id = $1',
        [aggregateId],
      );
      return Number(rows[0]?.total) > 0 && Number(rows[0]?.pending) === 0;
    },
    timeoutMs,
    10,
  );
}

/** An outbox row of `schema` as a service's write would leave it (the insert trigger NOTIFYs the relay). */
async function insertOutboxRow(schema: string, aggregateId: string): Promise<void> {
  const id = newId();
  // a subject contacts-svc may publish on (NATS permissions), that no consumer handles
  const subject = 'crm.contacts.relaytest.created';
  const headers = { 'ce-specversion': '1.0', 'ce-id': id, 'ce-type': subject, 'organization-id': organizationId('acme') };
  await direct.query(
    `insert into ${schema}.outbox (id, subject, organization_id, aggregate_id, headers, payload, occurred_at) values ($1, $2, $3, $4, $5, '\\x00', now())`,
    [id, subject, organizationId('acme'), aggregateId, JSON.stringify(headers)],
  );
}

describe('outbox relay after a Postgres outage', () => {
  it('listens again on its own: events leave within milliseconds, not at the next poll', async () => {
    expect(contacts.relay?.listening).toBe(true);
    await published(await createCompany('before the outage'));

    await proxy.cut();
    await waitFor('the relay to notice its LISTEN connection is gone', async () => contacts.relay?.listening === false);
    await expect(createCompany('during the outage')).rejects.toThrow(); // fails fast, the process stays up
    // a write that reached Postgres another way while the relay could not listen
    const missed = newId();
    await insertOutboxRow('contacts', missed);
    // an outage of more than a second or two: long enough for a first attempt to LISTEN again to fail
    const refusedBefore = proxy.refused;
    await waitFor('its attempts to reconnect to be refused a dozen times', async () => proxy.refused - refusedBefore >= 12, 10_000);

    proxy.restore();
    await waitFor('the relay to LISTEN again', async () => contacts.relay?.listening === true, 10_000);
    await published(missed); // picked up as soon as LISTEN was back
    const started = Date.now();
    await published(await createCompany('after the outage'));
    expect(Date.now() - started).toBeLessThan(POLL_MS / 10);
    const ready = await fetch(`http://127.0.0.1:${contacts.opsPort}/readyz`);
    expect(ready.status).toBe(200);
  });
});

describe('outbox relay while NATS is away', () => {
  let orm: Orm;
  let nc: NatsConnection;
  let relay: OutboxRelay | undefined;
  const failures: number[] = [];

  beforeAll(async () => {
    orm = await openDatabase({
      clientUrl: infra.databaseUrl,
      schema: 'relay_backoff',
      entities: [OutboxMessage],
      migrations: [platformMessagingMigration],
      logger: createLogger('relay-backoff', 'silent'),
    });
    nc = await connectNats(infra.nats.url, 'relay-backoff-test', createLogger('relay-backoff-test', 'silent'), infra.natsAuth);
  });

  afterAll(async () => {
    await relay?.stop();
    await nc?.close();
    await orm?.close();
  });

  it('backs off without being woken by every insert, and resumes when NATS is back', async () => {
    const sink = new Writable({
      write(line: Buffer, _encoding, done) {
        if ((JSON.parse(line.toString()) as { msg?: string }).msg === 'outbox relay could not publish; retrying') failures.push(Date.now());
        done();
      },
    });
    const backoffMs = 1000;
    relay = new OutboxRelay({
      orm,
      nc,
      clientUrl: infra.databaseUrl,
      logger: pino({ level: 'warn' }, sink),
      metrics: new PlatformMetrics('relay-backoff-test'),
      schema: 'relay_backoff',
      pollIntervalMs: POLL_MS,
      publishTimeoutMs: 100,
      minBackoffMs: backoffMs,
      maxBackoffMs: backoffMs,
    });
    await relay.start();
    const notifications = new pg.Client({ connectionString: infra.databaseUrl });
    let notified = 0;
    notifications.on('notification', () => notified++);
    await notifications.connect();
    await notifications.query('listen "outbox_relay_backoff"');
    try {
      await infra.nats.stop();
      await insertOutboxRow('relay_backoff', 'first');
      await waitFor('the first failed publish', async () => failures.length >= 1, 10_000, 5);

      // a burst of writes during the backoff: 20 transactions, 20 NOTIFYs
      for (let i = 0; i < 20; i++) await insertOutboxRow('relay_backoff', `burst ${i}`);
      await waitFor('the 20 NOTIFYs to arrive', async () => notified >= 21, 5000, 5);
      const burstDoneAt = Date.now();
      await waitFor('the next attempt', async () => failures.length >= 2, 10_000, 5);
      expect(burstDoneAt).toBeLessThan(failures[1]!); // the NOTIFYs came while it was backing off …
      expect(failures[1]! - failures[0]!).toBeGreaterThanOrEqual(backoffMs - 50); // … and none cut it short

      await infra.nats.start();
      await waitFor(
        'every row to be published once NATS is back',
        async () => {
          const { rows } = await direct.query<{ pending: string }>('select count(*) as pending from relay_backoff.outbox where published_at is null');
          return Number(rows[0]?.pending) === 0;
        },
        10_000,
      );
    } finally {
      await notifications.end();
    }
  });
});
