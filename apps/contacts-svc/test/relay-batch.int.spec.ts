import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import {
  connectNats,
  createLogger,
  ensureEventStream,
  EVENT_STREAM,
  newId,
  openDatabase,
  OutboxMessage,
  OutboxRelay,
  PlatformMetrics,
  platformMessagingMigration,
  type Orm,
} from '@crm/platform';
import { organizationId, startTestInfra, type TestInfra } from '@crm/testing';

/*
 * The relay publishes a batch concurrently, one chain per aggregate. A publish that fails leaves
 * its event and every later event of the same aggregate unpublished (they go out later, in order);
 * other aggregates' acknowledged events are marked published. Only acknowledged rows are marked.
 */

const SCHEMA = 'relay_batch';
const OK = 'crm.relaybatch.thing.changed';
/** A subject no stream captures: JetStream refuses the publish at once (no responders). */
const REFUSED = 'nowhere.relaybatch.thing.changed';

let infra: TestInfra;
let orm: Orm;
let nc: NatsConnection;
let direct: pg.Client;
let relay: OutboxRelay;

beforeAll(async () => {
  infra = await startTestInfra();
  orm = await openDatabase({
    clientUrl: infra.databaseUrl,
    schema: SCHEMA,
    entities: [OutboxMessage],
    migrations: [platformMessagingMigration],
    logger: createLogger('relay-batch', 'silent'),
  });
  nc = await connectNats(infra.nats.url, 'relay-batch-test', createLogger('relay-batch-test', 'silent'), infra.natsAuth);
  await ensureEventStream(await jetstreamManager(nc));
  direct = new pg.Client({ connectionString: infra.databaseUrl });
  await direct.connect();
  // never started: the test runs its batches itself
  relay = new OutboxRelay({
    orm,
    nc,
    clientUrl: infra.databaseUrl,
    logger: createLogger('relay-batch', 'silent'),
    metrics: new PlatformMetrics('relay-batch-test'),
    schema: SCHEMA,
    publishTimeoutMs: 1000,
  });
});

afterAll(async () => {
  await direct?.end();
  await nc?.drain();
  await orm?.close();
  await infra?.close();
});

/** An outbox row of `aggregate` (ids in insertion order: UUIDv7). */
async function insert(aggregate: string, label: string, subject = OK): Promise<string> {
  const id = newId();
  const headers = { 'ce-specversion': '1.0', 'ce-id': id, 'ce-type': subject, 'organization-id': organizationId('acme'), label };
  await direct.query(
    `insert into ${SCHEMA}.outbox (id, subject, organization_id, aggregate_id, headers, payload, occurred_at) values ($1, $2, $3, $4, $5, $6, now())`,
    [id, subject, organizationId('acme'), aggregate, JSON.stringify(headers), Buffer.from(label)],
  );
  return id;
}

async function unpublished(): Promise<string[]> {
  const { rows } = await direct.query<{ label: string }>(`select headers->>'label' as label from ${SCHEMA}.outbox where published_at is null order by id`);
  return rows.map((r) => r.label);
}

/** Labels of the stream's messages on the test subjects, in stream order. */
async function streamed(): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const durable = `relay-batch-${newId().slice(-12)}`;
  await jsm.consumers.add(EVENT_STREAM, {
    durable_name: durable,
    filter_subject: 'crm.relaybatch.>',
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
  });
  const info = await jsm.consumers.info(EVENT_STREAM, durable);
  const labels: string[] = [];
  if (info.num_pending > 0) {
    const messages = await (await jetstream(nc).consumers.get(EVENT_STREAM, durable)).fetch({ max_messages: info.num_pending, expires: 2000 });
    for await (const msg of messages) {
      labels.push(new TextDecoder().decode(msg.data));
      if (labels.length === info.num_pending) break;
    }
  }
  await jsm.consumers.delete(EVENT_STREAM, durable);
  return labels;
}

describe('outbox relay batches', () => {
  it('keep each aggregate in order when a publish fails, and mark only what JetStream acknowledged', async () => {
    const a = newId();
    const b = newId();
    await insert(a, 'a1');
    await insert(b, 'b1');
    const a2 = await insert(a, 'a2', REFUSED);
    await insert(b, 'b2');
    await insert(a, 'a3');
    await insert(b, 'b3');

    const first = await relay.relayBatch();
    expect(first.failure).toBeDefined();
    // a2 failed: a3 must not overtake it; b's chain went through
    expect(await unpublished()).toEqual(['a2', 'a3']);
    const afterFirst = await streamed();
    expect(afterFirst.filter((l) => l.startsWith('a'))).toEqual(['a1']);
    expect(afterFirst.filter((l) => l.startsWith('b'))).toEqual(['b1', 'b2', 'b3']);
    expect(first.published).toBe(4);

    // the cause goes away (here: the event's subject now reaches the stream)
    await direct.query(`update ${SCHEMA}.outbox set subject = $2 where id = $1`, [a2, OK]);
    const second = await relay.relayBatch();
    expect(second).toEqual({ published: 2, failure: undefined });
    expect(await unpublished()).toEqual([]);
    expect((await streamed()).filter((l) => l.startsWith('a'))).toEqual(['a1', 'a2', 'a3']);
  });

  it('publish a large batch of many aggregates, each in order', async () => {
    const aggregates = Array.from({ length: 25 }, () => newId());
    const expected = new Map<string, string[]>();
    for (let round = 0; round < 8; round++) {
      for (const [i, aggregate] of aggregates.entries()) {
        const label = `c${i}-${round}`;
        await insert(aggregate, label);
        expected.set(`c${i}`, [...(expected.get(`c${i}`) ?? []), label]);
      }
    }
    expect(await relay.relayBatch()).toEqual({ published: 200, failure: undefined });
    const stream = (await streamed()).filter((l) => l.startsWith('c'));
    for (const [key, labels] of expected) expect(stream.filter((l) => l.split('-')[0] === key)).toEqual(labels);
  });
});
