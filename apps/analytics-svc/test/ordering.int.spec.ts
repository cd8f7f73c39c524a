import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { type analyticsV1 } from '@crm/contracts';
import { callUnary, createLogger, EVENT_STREAM, newId, onEvent, startEventConsumer, type EventConsumer, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, waitFor, type TestInfra } from '@crm/testing';
import { ANALYTICS_CONSUMER } from '../src/app.ts';
import { startAnalyticsUnderTest, stopAnalyticsUnderTest } from './support/analytics-under-test.ts';
import { drained, expectedState, metricValue, projectedState, publishChange, sortOverview, type Change } from './support/history.ts';

/*
 * Delivery order and duplicates, on a private JetStream: events published in the wrong order
 * (as a nak'ed event is overtaken by later ones) must project to the state of the newest version,
 * a delete must stay a delete, the overview's counters must equal the live rows, and an event
 * applied before is never applied again, however late and under whatever Nats-Msg-Id it returns.
 */

let infra: TestInfra;
let analytics: ServiceHandle;
let nc: NatsConnection;
let client: analyticsV1.AnalyticsServiceClient;

beforeAll(async () => {
  ({ infra, analytics, nc, client } = await startAnalyticsUnderTest('ordering-test'));
});

afterAll(() => stopAnalyticsUnderTest({ infra, analytics, nc, client }));

const company = (kind: 'created' | 'updated', id: string, version: number, industry: string): Change => ({ aggregate: 'company', kind, id, version, industry });
const contact = (kind: 'created' | 'updated', id: string, version: number): Change => ({ aggregate: 'contact', kind, id, version });
const deleted = (aggregate: 'company' | 'contact', id: string): Change => ({ aggregate, kind: 'deleted', id });

/** Publishes `changes` of `org` in exactly this order and waits until analytics acknowledged all of them. */
async function deliver(org: string, changes: readonly Change[]): Promise<void> {
  for (const change of changes) await publishChange(nc, org, change);
  await drained(nc, ANALYTICS_CONSUMER);
}

describe('analytics projections under out-of-order delivery', () => {
  it('keeps the newest version and never resurrects a deleted record, over the real API', async () => {
    const acme = organizationId('acme');
    const [stale, gone, late, kept] = [newId(), newId(), newId(), newId()];
    const [goneContact, keptContact] = [newId(), newId()];
    // each aggregate's events in an order a redelivery can produce; the comment gives the causal order
    const delivered: Change[] = [
      company('updated', stale, 3, 'software'), // created v1 retail → updated v2 medical → updated v3 software
      company('created', stale, 1, 'retail'),
      company('updated', stale, 2, 'medical'),
      deleted('company', gone), // created v1 → updated v2 → deleted
      company('created', gone, 1, 'retail'),
      company('updated', gone, 2, 'energy'),
      company('created', late, 1, 'energy'), // created v1 → updated v2 → deleted, delete before the update
      deleted('company', late),
      company('updated', late, 2, 'retail'),
      company('created', kept, 1, 'retail'),
      deleted('contact', goneContact), // created → updated → deleted
      contact('updated', goneContact, 2),
      contact('created', goneContact, 1),
      contact('updated', keptContact, 2),
      contact('created', keptContact, 1),
    ];
    await deliver(acme, delivered);

    const overview = await asAdminOf('acme', () => callUnary(client, client.getOverview, {}));
    expect(overview).toEqual({
      companyCount: '2',
      contactCount: '1',
      companiesByIndustry: [
        { industry: 'retail', companyCount: '1' },
        { industry: 'software', companyCount: '1' },
      ],
    });
    const state = await projectedState(analytics.orm, acme);
    expect(state.companies).toEqual({ [stale]: 'software', [kept]: 'retail' });
    expect(state.contacts).toEqual([keptContact]);
    expect(state.recount).toEqual(state.overview.companiesByIndustry);
    // the deleted ones stay as tombstones, so a later stale event finds them
    const [tombstones] = await analytics.orm.em
      .fork()
      .execute<{ n: string }[]>('select count(*) as n from analytics.company_projection where organization_id = ? and deleted', [acme]);
    expect(Number(tombstones?.n)).toBe(2);
    expect(await metricValue(analytics.metrics, 'consumer_poison_messages_total')).toBe(0);
  });

  it('projects any delivery order of any history to the state of its newest versions, counters included', async () => {
    const lives = fc
      .array(
        fc.record({
          industries: fc.array(fc.constantFrom('', 'energy', 'medical', 'retail'), { minLength: 1, maxLength: 4 }),
          deleted: fc.boolean(),
          isContact: fc.boolean(),
        }),
        { minLength: 1, maxLength: 5 },
      )
      .map((specs) =>
        specs.flatMap((spec): Change[] => {
          const id = newId();
          const versions: Change[] = spec.industries.map((industry, i) =>
            spec.isContact ? contact(i === 0 ? 'created' : 'updated', id, i + 1) : company(i === 0 ? 'created' : 'updated', id, i + 1, industry),
          );
          return spec.deleted ? [...versions, deleted(spec.isContact ? 'contact' : 'company', id)] : versions;
        }),
      );
    const deliveries = lives.chain((changes) => fc.shuffledSubarray(changes, { minLength: changes.length, maxLength: changes.length }));

    await fc.assert(
      fc.asyncProperty(deliveries, async (delivered) => {
        const org = newId(); // a fresh organization per run: runs never see each other's rows
        await deliver(org, delivered);
        const want = expectedState(delivered);
        const got = await projectedState(analytics.orm, org);
        expect(got.companies).toEqual(want.companies);
        expect(got.contacts).toEqual(want.contacts);
        expect(got.overview).toEqual(want.overview);
        expect(got.recount).toEqual(sortOverview(got.overview.companiesByIndustry));
      }),
      { numRuns: 25 },
    );
  });
});

describe('dedup by event id beyond the JetStream duplicate window', () => {
  /**
   * A consumer whose effect is not idempotent at all (it appends a row per run), on the analytics
   * schema's inbox: only the inbox can keep a returning event from running twice.
   */
  async function probeConsumer(durable: string, subject: string): Promise<{ consumer: EventConsumer; runs(eventId: string): Promise<number> }> {
    await analytics.orm.em.fork().execute('create table if not exists public.effect_log (event_id uuid not null)');
    const consumer = await startEventConsumer({
      orm: analytics.orm,
      nc,
      logger: createLogger(durable, 'silent'),
      metrics: analytics.metrics,
      schema: 'analytics',
      durable,
      filterSubject: subject,
      handlers: [
        onEvent(subject, { decode: (b) => b }, async (em, _message, event) => {
          await em.execute('insert into public.effect_log (event_id) values (?)', [event.id]);
        }),
      ],
    });
    const runs = async (eventId: string) => {
      const [row] = await analytics.orm.em.fork().execute<{ n: string }[]>('select count(*) as n from public.effect_log where event_id = ?', [eventId]);
      return Number(row?.n);
    };
    return { consumer, runs };
  }

  it('does not apply an event again when it returns with a new Nats-Msg-Id after the consumer moved on', async () => {
    const acme = organizationId('acme');
    const { consumer, runs } = await probeConsumer('inbox-probe-new-msg-id', 'crm.contacts.company.created');
    try {
      const first = company('created', newId(), 1, 'medical');
      const { eventId } = await publishChange(nc, acme, first);
      await drained(nc, 'inbox-probe-new-msg-id');
      // the consumer moves on: later events are applied after it
      for (let i = 0; i < 5; i++) await publishChange(nc, acme, company('created', newId(), 1, 'retail'));
      await drained(nc, 'inbox-probe-new-msg-id');
      const appliedBefore = await metricValue(analytics.metrics, 'consumer_messages_total', { consumer: 'inbox-probe-new-msg-id', outcome: 'applied' });

      // the same event (same ce-id) again, as a re-sent outbox row would be: JetStream cannot tell
      const again = await publishChange(nc, acme, first, { eventId, msgId: newId() });
      expect(again.duplicate).toBe(false);
      await drained(nc, 'inbox-probe-new-msg-id');
      await drained(nc, ANALYTICS_CONSUMER);

      expect(await runs(eventId)).toBe(1);
      expect(await metricValue(analytics.metrics, 'consumer_messages_total', { consumer: 'inbox-probe-new-msg-id', outcome: 'duplicate' })).toBe(1);
      expect(await metricValue(analytics.metrics, 'consumer_messages_total', { consumer: 'inbox-probe-new-msg-id', outcome: 'applied' })).toBe(appliedBefore);
      // analytics' own consumer saw it as a duplicate too (and its inbox row is still there)
      const [inbox] = await analytics.orm.em
        .fork()
        .execute<{ n: string }[]>('select count(*) as n from analytics.inbox where consumer = ? and event_id = ?', [ANALYTICS_CONSUMER, eventId]);
      expect(Number(inbox?.n)).toBe(1);
      expect(await metricValue(analytics.metrics, 'consumer_messages_total', { consumer: ANALYTICS_CONSUMER, outcome: 'duplicate' })).toBeGreaterThanOrEqual(1);
    } finally {
      await consumer.stop();
    }
  });

  it('does not apply an event again when the stream accepts its Nats-Msg-Id anew after the duplicate window', async () => {
    const acme = organizationId('acme');
    const jsm = await jetstreamManager(nc);
    const { consumer, runs } = await probeConsumer('inbox-probe-window', 'crm.contacts.company.updated');
    try {
      const change = company('updated', newId(), 7, 'energy');
      const { eventId } = await publishChange(nc, acme, change);
      await drained(nc, 'inbox-probe-window');
      expect((await publishChange(nc, acme, change, { eventId })).duplicate).toBe(true); // inside the window: JetStream drops it

      // the smallest window JetStream allows (100 ms) stands in for "two minutes later"
      await jsm.streams.update(EVENT_STREAM, { duplicate_window: nanos(100) });
      await waitFor('the stream to accept the same Nats-Msg-Id again', async () => !(await publishChange(nc, acme, change, { eventId })).duplicate, 5000, 20);
      await drained(nc, 'inbox-probe-window');
      await drained(nc, ANALYTICS_CONSUMER);

      expect(await runs(eventId)).toBe(1);
      expect(await metricValue(analytics.metrics, 'consumer_messages_total', { consumer: 'inbox-probe-window', outcome: 'duplicate' })).toBe(1);
    } finally {
      await jsm.streams.update(EVENT_STREAM, { duplicate_window: nanos(120_000) });
      await consumer.stop();
    }
  });
});
