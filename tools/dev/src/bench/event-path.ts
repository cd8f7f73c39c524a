import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import pg from 'pg';
import { contactsEventsV1, contactsV1 } from '@crm/contracts';
import {
  connectNats,
  createLogger,
  ensureEventStream,
  EVENT_STREAM,
  newId,
  OutboxMessage,
  openDatabase,
  OutboxRelay,
  PlatformMetrics,
  platformMessagingMigration,
  type NatsCredentials,
} from '@crm/platform';
import { closedLoops, sleep, type LoopResult } from './stats.ts';

/**
 * The bench's measurements of the event path and the raw-SQL baselines, on a private database and
 * nats-server: the platform's real {@link OutboxRelay} in-process over a pre-filled outbox; the
 * analytics consumer as its real process (bench.ts starts it) over the events that relay published,
 * timed here from its inbox; and what JetStream and Postgres do without our code. (Tools may not
 * import the apps: the apps' tests import the tools.)
 */

/** Where phase A runs: a private database URL, a private nats-server and its users' credentials. */
export interface EventPathInfra {
  databaseUrl: string;
  natsUrl: string;
  credentials(user: string): NatsCredentials;
  /** A NATS user without restrictions (raw baselines). */
  benchUser: NatsCredentials;
  organizationId: string;
}

/** Events of a throughput run: how many, in how long, per second. */
export interface Throughput {
  events: number;
  seconds: number;
  perSecond: number;
  /** All of them done before the time limit. */
  complete: boolean;
}

const silent = createLogger('bench', 'silent');
const INDUSTRIES = ['software', 'medical', 'retail', 'energy', 'finance', 'telecom', 'services', 'technology', 'marketing', 'entertainment'];

/** One outbox row as a write of contacts-svc leaves it: company created (3 of 4) or updated to version 2 (1 of 4). */
function outboxRow(i: number, companies: string[], org: string): unknown[] {
  const id = newId();
  const update = i % 4 === 3;
  const companyId = update ? companies[i - 1]! : newId();
  if (!update) companies[i] = companyId;
  const now = new Date();
  const company = contactsV1.Company.fromPartial({
    id: companyId,
    name: `Bench ${i}`,
    domain: '',
    industry: INDUSTRIES[(i + (update ? 1 : 0)) % INDUSTRIES.length]!,
    parentCompanyId: '',
    employees: 10,
    annualRevenue: undefined,
    address: undefined,
    ownerId: 'bench',
    audit: { createTime: now, updateTime: now, createdBy: 'bench', version: update ? '2' : '1' },
  });
  const subject = update ? 'crm.contacts.company.updated' : 'crm.contacts.company.created';
  const payload = update
    ? contactsEventsV1.CompanyUpdated.encode({ company, changedFields: ['industry'], changes: [] }).finish()
    : contactsEventsV1.CompanyCreated.encode({ company }).finish();
  const headers = {
    'ce-specversion': '1.0',
    'ce-id': id,
    'ce-type': subject,
    'ce-source': '/crm/contacts-svc',
    'ce-time': now.toISOString(),
    'ce-subject': companyId,
    'ce-dataschema': `proto:crm.events.v1.${update ? 'CompanyUpdated' : 'CompanyCreated'}`,
    'content-type': 'application/protobuf',
    'organization-id': org,
    'x-request-id': randomUUID(),
  };
  return [id, subject, org, companyId, JSON.stringify(headers), Buffer.from(payload), now];
}

/** Schema of the relay run: the platform's outbox (and inbox) tables only. */
const RELAY_SCHEMA = 'bench_relay';

/** Fills the outbox of {@link RELAY_SCHEMA} with `count` unpublished rows, 1000 per statement. */
async function fillOutbox(pool: pg.Pool, count: number, org: string): Promise<void> {
  const companies: string[] = [];
  for (let start = 0; start < count; start += 1000) {
    const rows = Array.from({ length: Math.min(1000, count - start) }, (_, k) => outboxRow(start + k, companies, org));
    const column = (c: number) => rows.map((r) => r[c]);
    await pool.query(
      `insert into ${RELAY_SCHEMA}.outbox (id, subject, organization_id, aggregate_id, headers, payload, occurred_at)
       select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[], $6::bytea[], $7::timestamptz[])`,
      [column(0), column(1), column(2), column(3), column(4), column(5), column(6)],
    );
  }
}

async function count(pool: pg.Pool, sql: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(sql);
  return Number(rows[0]?.n ?? 0);
}

/** Polls `done()` (a count) until it reaches `target` or `limitSeconds` pass; the throughput from `start`. */
async function until(target: number, done: () => Promise<number>, start: number, limitSeconds: number): Promise<Throughput> {
  let n = 0;
  while ((n = await done()) < target && performance.now() - start < limitSeconds * 1000) await sleep(10);
  const seconds = (performance.now() - start) / 1000;
  return { events: n, seconds, perSecond: n / seconds, complete: n >= target };
}

/**
 * Outbox relay throughput: `events` rows waiting in the outbox (written before the relay starts,
 * as after a burst of writes: contacts-svc's company events, 1 in 4 an update), then the real
 * OutboxRelay of the platform publishes them to JetStream as contacts-svc; events/s until every
 * row is marked published (or `limitSeconds`).
 */
export async function measureRelay(infra: EventPathInfra, events: number, limitSeconds: number): Promise<Throughput> {
  const orm = await openDatabase({
    clientUrl: infra.databaseUrl,
    schema: RELAY_SCHEMA,
    entities: [OutboxMessage],
    migrations: [platformMessagingMigration],
    logger: silent,
  });
  const nc = await connectNats(infra.natsUrl, 'bench-relay', silent, infra.credentials('contacts-svc'));
  const pool = new pg.Pool({ connectionString: infra.databaseUrl, max: 2 });
  try {
    await ensureEventStream(await jetstreamManager(nc));
    await fillOutbox(pool, events, infra.organizationId);
    const relay = new OutboxRelay({ orm, nc, clientUrl: infra.databaseUrl, logger: silent, metrics: new PlatformMetrics('bench-relay'), schema: RELAY_SCHEMA });
    const start = performance.now();
    await relay.start();
    const unpublished = `select count(*) as n from ${RELAY_SCHEMA}.outbox where published_at is null`;
    const result = await until(events, async () => events - (await count(pool, unpublished)), start, limitSeconds);
    await relay.stop();
    return result;
  } finally {
    await pool.end();
    await nc.close();
    await orm.close();
  }
}

/**
 * Consumer apply throughput, timed on a running analytics-svc (started by the caller on this
 * database and nats-server after the relay run, so its durable finds those `events` events in the
 * stream): from the first poll that sees inbox rows to the one that sees all of them, so its boot
 * is not counted; events/s (or what it did by `limitSeconds`).
 */
export async function measureConsumer(infra: EventPathInfra, events: number, limitSeconds: number): Promise<Throughput> {
  const pool = new pg.Pool({ connectionString: infra.databaseUrl, max: 1 });
  const applied = async () => count(pool, 'select count(*) as n from analytics.inbox').catch(() => 0);
  try {
    const deadline = performance.now() + limitSeconds * 1000;
    let first = 0;
    while ((first = await applied()) === 0 && performance.now() < deadline) await sleep(5);
    const start = performance.now();
    const result = await until(events, applied, start, Math.max(0, (deadline - start) / 1000));
    const done = result.events - first;
    return { events: done, seconds: result.seconds, perSecond: result.seconds > 0 ? done / result.seconds : 0, complete: result.complete };
  } finally {
    await pool.end();
  }
}

/** Baseline of the relay: `events` JetStream publishes with acks, up to 1000 in flight, no database. */
export async function measureRawPublish(infra: EventPathInfra, events: number): Promise<Throughput> {
  const nc = await connectNats(infra.natsUrl, 'bench-raw-publish', silent, infra.benchUser);
  try {
    const js = jetstream(nc);
    const payload = new Uint8Array(200);
    const start = performance.now();
    for (let i = 0; i < events; i += 1000) {
      await Promise.all(
        Array.from({ length: Math.min(1000, events - i) }, () => {
          const h = natsHeaders();
          h.set('ce-id', newId());
          return js.publish('crm.bench.raw.published', payload, { msgID: newId(), headers: h });
        }),
      );
    }
    const seconds = (performance.now() - start) / 1000;
    return { events, seconds, perSecond: events / seconds, complete: true };
  } finally {
    await nc.close();
  }
}

/** Baseline of the consumer: pulling and acking the raw events of {@link measureRawPublish}, no database. */
export async function measureRawPull(infra: EventPathInfra, events: number, limitSeconds: number): Promise<Throughput> {
  const nc = await connectNats(infra.natsUrl, 'bench-raw-pull', silent, infra.benchUser);
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(EVENT_STREAM, {
      durable_name: 'bench-raw',
      filter_subject: 'crm.bench.raw.>',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 1000,
    });
    const consumer = await jetstream(nc).consumers.get(EVENT_STREAM, 'bench-raw');
    const start = performance.now();
    const messages = await consumer.consume({ max_messages: 200 });
    let n = 0;
    const timer = setTimeout(() => void messages.close(), limitSeconds * 1000);
    for await (const msg of messages) {
      msg.ack();
      if (++n >= events) break;
    }
    clearTimeout(timer);
    const seconds = (performance.now() - start) / 1000;
    await messages.close();
    return { events: n, seconds, perSecond: n / seconds, complete: n >= events };
  } finally {
    await nc.close();
  }
}

/** Raw-SQL baselines of the record paths: a create (company + outbox row, one transaction) and a read by id. */
export interface RawSqlResult {
  create: LoopResult;
  get: LoopResult;
}

/**
 * What Postgres does for the record paths with nothing of ours in between (pg, 16 connections,
 * 16 closed loops) in contacts-svc's schema of `databaseUrl`: `begin; insert company; insert
 * outbox row (already marked published, so the relay leaves it); commit` per create, then
 * `select … where organization_id = $1 and id = $2 and deleted_at is null` per read over the rows
 * created.
 */
export async function measureRawSql(databaseUrl: string, org: string, concurrency: number, seconds: number): Promise<RawSqlResult> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency });
  const ids: string[] = [];
  try {
    const create = await closedLoops(concurrency, seconds, async (_loop, n) => {
      const client = await pool.connect();
      try {
        const id = newId();
        await client.query('begin');
        await client.query({
          name: 'raw-create',
          text: `insert into contacts.company (id, organization_id, name, domain, industry, employees, owner_id, created_at, updated_at, created_by, version)
                 values ($1, $2, $3, $4, 'bench', 10, 'bench', now(), now(), 'bench', 1)`,
          values: [id, org, `Raw ${n}`, `raw-${n}-${process.pid}.bench.test`],
        });
        await client.query({
          name: 'raw-outbox',
          text: `insert into contacts.outbox (id, subject, organization_id, aggregate_id, headers, payload, occurred_at, published_at)
                 values ($1, 'crm.contacts.company.created', $2, $3, '{}', '\\x00', now(), now())`,
          values: [newId(), org, id],
        });
        await client.query('commit');
        ids.push(id);
      } finally {
        client.release();
      }
    });
    const get = await closedLoops(concurrency, seconds, async (_loop, n) => {
      await pool.query({
        name: 'raw-get',
        text: 'select * from contacts.company where organization_id = $1 and id = $2 and deleted_at is null',
        values: [org, ids[n % ids.length]],
      });
    });
    return { create, get };
  } finally {
    await pool.end();
  }
}
