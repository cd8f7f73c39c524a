import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { connectNats, createLogger, ensureEventStream, jetstreamManager, openDatabase, PlatformMetrics, startEventConsumer, type Orm } from '@crm/platform';
import { startTestInfra, type TestInfra } from '@crm/testing';
import { analyticsSchema } from '../src/app.ts';
import { companyCreated } from '../src/consumers/company-created.handler.ts';
import { companyDeleted } from '../src/consumers/company-deleted.handler.ts';
import { companyUpdated } from '../src/consumers/company-updated.handler.ts';
import { contactCreated } from '../src/consumers/contact-created.handler.ts';
import { contactDeleted } from '../src/consumers/contact-deleted.handler.ts';
import { contactUpdated } from '../src/consumers/contact-updated.handler.ts';
import { drained, expectedState, history, projectedState, publishChange, seededRandom, sortOverview, type Change } from './support/history.ts';

/*
 * The analytics projections applied in batches: a whole shuffled history (duplicates included) is
 * in the stream before the consumer starts, so it arrives in a few large batches — created events
 * inserted together in one statement, the rest one by one — and must project exactly as one event
 * at a time does: the newest version of each aggregate, deletes final, counters equal to the rows.
 */

let infra: TestInfra;
let orm: Orm;
let nc: NatsConnection;
let runs = 0;

beforeAll(async () => {
  infra = await startTestInfra();
  orm = await openDatabase({ clientUrl: infra.databaseUrl, ...analyticsSchema, logger: createLogger('batch-ordering', 'silent') });
  nc = await connectNats(infra.nats.url, 'batch-ordering-test', createLogger('batch-ordering-test', 'silent'), infra.natsAuth);
  await ensureEventStream(await jetstreamManager(nc));
});

afterAll(async () => {
  await nc?.drain();
  await orm?.close();
  await infra?.close();
});

/** Publishes `changes` of `org` (each event also a second time, under another event id when `twice`), then consumes all of it with a new durable. */
async function deliverInBatches(org: string, changes: readonly Change[]): Promise<void> {
  for (const change of changes) await publishChange(nc, org, change);
  // a redelivered event: the same event id under another message id
  const again = changes[0];
  if (again) {
    const { eventId } = await publishChange(nc, org, again);
    await publishChange(nc, org, again, { eventId, msgId: `${eventId}-again` });
  }
  const durable = `batch-ordering-${++runs}`;
  const consumer = await startEventConsumer({
    orm,
    nc,
    logger: createLogger(durable, 'silent'),
    metrics: new PlatformMetrics(durable),
    schema: 'analytics',
    durable,
    filterSubject: 'crm.contacts.>',
    handlers: [companyCreated, companyUpdated, companyDeleted, contactCreated, contactUpdated, contactDeleted],
  });
  try {
    await drained(nc, durable);
  } finally {
    await consumer.stop();
  }
}

describe('analytics projections applied in batches', () => {
  it('project any shuffled history exactly as one event at a time would', async () => {
    const seeds = fc.integer({ min: 1, max: 2 ** 31 - 1 });
    await fc.assert(
      fc.asyncProperty(seeds, fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 8 }), async (seed, companies, contacts) => {
        const random = seededRandom(seed);
        const changes = history(companies, contacts, random);
        // any delivery order: shuffled
        const delivered = [...changes].sort(() => random() - 0.5);
        const org = `0190b4a0-0000-7000-8000-${String(runs + 1).padStart(12, '0')}`;
        await deliverInBatches(org, delivered);
        const want = expectedState(delivered);
        const got = await projectedState(orm, org);
        expect(got.companies).toEqual(want.companies);
        expect(got.contacts).toEqual(want.contacts);
        expect(got.overview).toEqual(want.overview);
        expect(got.recount).toEqual(sortOverview(got.overview.companiesByIndustry));
      }),
      { numRuns: 15 },
    );
  });
});
