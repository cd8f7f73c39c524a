import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import {
  connectNats,
  createLogger,
  ensureEventStream,
  EVENT_STREAM,
  newId,
  onEvent,
  openDatabase,
  OutboxMessage,
  PlatformMetrics,
  platformMessagingMigration,
  PoisonEventError,
  startEventConsumer,
  type EventConsumer,
  type Orm,
} from '@crm/platform';
import { organizationId, startTestInfra, waitFor, type TestInfra } from '@crm/testing';

/*
 * The consumer applies what arrived while it was busy in one transaction per batch. A batch that
 * fails — here a poison event and an event failing once, among good ones and a duplicate — is
 * rolled back and applied one by one: each good event exactly once, the poison one terminated, the
 * failing one retried until it applies. Under no failure, events share transactions.
 */

const SCHEMA = 'consumer_batch';
const DURABLE = 'batch-test';
const SUBJECT = 'crm.batchtest.item.created';

let infra: TestInfra;
let orm: Orm;
let nc: NatsConnection;
let consumer: EventConsumer | undefined;
const metrics = new PlatformMetrics('consumer-batch-test');
/** Log messages of the consumer. */
const logged: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(line: Buffer, _encoding, done) {
      logged.push(String((JSON.parse(line.toString()) as { msg?: string }).msg));
      done();
    },
  }),
);
/** Event ids whose effect failed once already (the "fail once" events). */
const failedOnce = new Set<string>();

const json = { decode: (b: Uint8Array): { kind: string } => JSON.parse(new TextDecoder().decode(b)) as { kind: string } };
const handler = onEvent(SUBJECT, json, async (em, message, event) => {
  await em.execute(`insert into ${SCHEMA}.effect (event_id, txid) values (?, txid_current())`, [event.id]);
  if (message.kind === 'poison') throw new PoisonEventError('never applies');
  if (message.kind === 'fail-once' && !failedOnce.has(event.id)) {
    failedOnce.add(event.id);
    throw new Error('transient failure');
  }
});

beforeAll(async () => {
  infra = await startTestInfra();
  orm = await openDatabase({
    clientUrl: infra.databaseUrl,
    schema: SCHEMA,
    entities: [OutboxMessage],
    migrations: [platformMessagingMigration],
    logger: createLogger('consumer-batch', 'silent'),
  });
  await orm.em.fork().execute(`create table ${SCHEMA}.effect (event_id uuid not null, txid bigint not null)`);
  nc = await connectNats(infra.nats.url, 'consumer-batch-test', createLogger('consumer-batch-test', 'silent'), infra.natsAuth);
  await ensureEventStream(await jetstreamManager(nc));
});

afterAll(async () => {
  await consumer?.stop();
  await nc?.drain();
  await orm?.close();
  await infra?.close();
});

async function publish(kind: string, eventId = newId(), msgId = eventId): Promise<string> {
  const h = headers();
  h.set('ce-specversion', '1.0');
  h.set('ce-id', eventId);
  h.set('ce-type', SUBJECT);
  h.set('organization-id', organizationId('acme'));
  await jetstream(nc).publish(SUBJECT, new TextEncoder().encode(JSON.stringify({ kind })), { msgID: msgId, headers: h });
  return eventId;
}

async function drained(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await waitFor(
    'the consumer to settle every event',
    async () => {
      const info = await jsm.consumers.info(EVENT_STREAM, DURABLE);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    20_000,
  );
}

/** Committed effects: event id → how many times, and the transactions they committed in. */
async function effects(): Promise<{ times: Map<string, number>; txids: Map<string, string> }> {
  const rows = await orm.em.fork().execute<{ event_id: string; txid: string }[]>(`select event_id, txid::text as txid from ${SCHEMA}.effect`);
  const times = new Map<string, number>();
  const txids = new Map<string, string>();
  for (const r of rows) {
    times.set(r.event_id, (times.get(r.event_id) ?? 0) + 1);
    txids.set(r.event_id, r.txid);
  }
  return { times, txids };
}

async function counter(name: string, outcome?: string): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).filter((v) => outcome === undefined || v.labels['outcome'] === outcome).reduce((sum, v) => sum + v.value, 0);
}

describe('consumer batches', () => {
  it('apply a failing batch one by one: every good event once, the poison one terminated, the failing one retried', async () => {
    // all in the stream before the consumer starts, so they arrive together
    const good: string[] = [];
    for (let i = 0; i < 20; i++) good.push(await publish('good'));
    const poison = await publish('poison');
    const failing = await publish('fail-once');
    for (let i = 0; i < 20; i++) good.push(await publish('good'));
    good.push(await publish('good', newId().toUpperCase())); // ids are case-insensitive
    // the same event again under another message id (a re-send after the duplicate window)
    await publish('good', good[3], `${good[3]}-again`);

    consumer = await startEventConsumer({
      orm,
      nc,
      logger,
      metrics,
      schema: SCHEMA,
      durable: DURABLE,
      filterSubject: 'crm.batchtest.>',
      handlers: [handler],
      retry: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    await drained();

    const { times } = await effects();
    for (const id of [...good, failing]) expect({ id, times: times.get(id.toLowerCase()) }).toEqual({ id, times: 1 });
    expect(times.has(poison)).toBe(false);
    expect(times.size).toBe(good.length + 1);
    const inbox = await orm.em.fork().execute<{ n: string }[]>(`select count(*) as n from ${SCHEMA}.inbox where consumer = ?`, [DURABLE]);
    expect(Number(inbox[0]?.n)).toBe(good.length + 1);
    expect(await counter('consumer_poison_messages_total')).toBe(1);
    expect(await counter('consumer_messages_total', 'duplicate')).toBe(1);
    expect(await counter('consumer_messages_total', 'applied')).toBe(good.length + 1);
    expect(consumer.healthy()).toBe(true);
    // they were tried as a batch first
    expect(logged).toContain('batch not applied; applying its events one by one');
  });

  it('apply events that arrive together in shared transactions', async () => {
    const before = (await effects()).times.size;
    const burst = await Promise.all(Array.from({ length: 60 }, (_, i) => publish('good', i % 10 === 0 ? newId().toUpperCase() : newId())));
    await drained();
    const { times, txids } = await effects();
    for (const id of burst) expect({ id, times: times.get(id.toLowerCase()) }).toEqual({ id, times: 1 });
    expect(times.size).toBe(before + burst.length);
    const transactions = new Set(burst.map((id) => txids.get(id.toLowerCase())));
    expect(transactions.size).toBeLessThan(burst.length);
  });
});
